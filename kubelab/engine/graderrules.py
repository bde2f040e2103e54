"""What a grader module may use: only what both drivers run the same way.

Live grading runs a grader under pytest, a replay runs it directly (kubelab.engine.direct). Both give a check
the engine's fixtures, in definition order, one instance per node; pytest would also honour its own fixtures,
marks, test classes, hooks and conftest.py, which the direct driver does not know. `kubelab lint` reports
each such use (the rules below), so a grader can never grade differently live and from evidence."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

from kubelab.engine.checks import spec_of
from kubelab.engine.direct import is_test_name
from kubelab.engine.fixtures import FIXTURES, argnames

# pytest features whose effect lives in pytest's session (`pytest.skip(...)` inside a check is fine: the engine
# turns it into `skipped` in both drivers)
_PYTEST_ONLY = {"fixture", "yield_fixture", "mark", "usefixtures", "fail", "xfail", "exit", "importorskip", "param"}


def grader_rules(path: Path, module) -> list[tuple[str, str, str]]:
    """(where, problem, fix) for each feature of the grader at `path` (already imported as `module`) that
    the direct driver cannot honour."""
    problems: list[tuple[str, str, str]] = []
    if (path.parent / "conftest.py").is_file():
        problems.append(("", f"{path.parent / 'conftest.py'} is read by pytest (live) but not by a replay",
                         "move what it does into the engine or into the grader's own helper functions"))
    problems += _source_rules(path)
    for name, obj in vars(module).items():
        if name == "pytestmark":
            problems.append((name, "marks the whole module for pytest, which a replay ignores",
                             "remove it; use @check(needs=...) or pytest.skip() inside the check"))
        elif name.startswith("pytest_") and callable(obj):
            problems.append((name, "is a pytest hook, which a replay does not call",
                             "remove it; the engine parametrizes checks over nodes itself"))
        elif inspect.isclass(obj) and name.startswith("Test"):
            problems.append((name, "is a test class, which a replay does not collect",
                             "write its tests as module-level functions with @check"))
        elif is_test_name(name) and callable(obj):
            problems += _check_rules(name, obj)
    return problems


def _check_rules(name: str, fn) -> list[tuple[str, str, str]]:
    if not inspect.isfunction(fn):
        return [(name, "is not a plain function", "define checks with `def` at module level")]
    if inspect.isgeneratorfunction(fn):
        return [(name, "yields (a yield fixture or generator), which a check cannot",
                 "return from the check; set up state in the lab, not in the grader")]
    if getattr(fn, "pytestmark", None):
        return [(name, "carries pytest marks, which a replay ignores",
                 "remove them; use @check(needs=...) or pytest.skip() inside the check")]
    spec = spec_of(fn)
    if spec is None:
        return []  # reported by lint as "a test without @check"
    names = argnames(fn)
    unknown = [n for n in names if n not in FIXTURES]
    if unknown:
        return [(name, f"asks for {', '.join(map(repr, unknown))}, not a fixture of the engine",
                 f"take only {', '.join(FIXTURES)}")]
    if "node" in names and "host" not in names:
        return [(name, "asks for `node` without `host`", "take `host` too, or `course` for every node")]
    return []


def _source_rules(path: Path) -> list[tuple[str, str, str]]:
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    except (OSError, SyntaxError, UnicodeDecodeError):
        return []  # an unreadable grader fails its import, which lint reports already
    aliases = {a.asname or a.name for node in ast.walk(tree) if isinstance(node, ast.Import)
               for a in node.names if a.name == "pytest"}
    problems = []
    for node in ast.walk(tree):
        used = None
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in aliases:
            used = node.attr
        elif isinstance(node, ast.ImportFrom) and node.module == "pytest":
            used = next((a.name for a in node.names if a.name in _PYTEST_ONLY), None)
        if used in _PYTEST_ONLY:
            problems.append((f"line {node.lineno}", f"uses pytest.{used}, which only a pytest session honours "
                             "(a replay runs without one)", "use the engine's fixtures, @check(needs=...) and "
                             "pytest.skip() inside a check"))
    return problems
