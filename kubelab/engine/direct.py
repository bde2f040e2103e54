"""The direct driver: a grader module's checks run as plain function calls, no pytest session.

Replays use it: a replay is pure computation (about a millisecond of checks), and a pytest session per
learner cost 40-130x that (plugin registration, collection, teardown with two full garbage collections).
It runs what the pytest plugin runs, in the same order (checks in definition order, each over the nodes its
`on` selects), through the same kubelab.engine.checkrun and kubelab.engine.fixtures; a test
(tests/test_replay_drivers.py) holds both drivers to identical results on every evidence file of the suite,
and `kubelab lint` rejects grader features this driver does not run (kubelab.engine.graderrules).

A grader module is imported once per process and reused while its file is unchanged (path, mtime, size):
a class run's workers import every grader before they fork."""

from __future__ import annotations

import contextlib
import importlib.util
import io
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

from kubelab.engine.checkrun import CheckRunner
from kubelab.engine.checks import CheckSpec, spec_of
from kubelab.engine.fixtures import Fixtures, argnames, check_nodes
from kubelab.engine.results import LabResult
from kubelab.errors import UsageError

_FIX = "fix the grader module (run `kubelab lint`)"


@dataclass(frozen=True)
class Check:
    fn: Callable
    spec: CheckSpec
    argnames: tuple[str, ...]


@dataclass(frozen=True)
class Grader:
    path: Path
    module: object
    checks: tuple[Check, ...]


_cache: dict[Path, tuple[tuple[int, int], Grader]] = {}


def is_test_name(name: str) -> bool:
    """pytest's default `python_functions = test`: what it collects as a test function."""
    return name.startswith("test")


def load_grader(path: Path) -> Grader:
    """The grader module at `path` with its checks in definition order (cached while the file is unchanged)."""
    path = Path(path).resolve()
    try:
        st = path.stat()
    except OSError as e:
        raise UsageError(f"the grader {path} cannot be read: {e.strerror}", "check course.yaml's labs[].grader")
    stamp = (st.st_mtime_ns, st.st_size)
    cached = _cache.get(path)
    if cached is not None and cached[0] == stamp:
        return cached[1]
    grader = _import(path)
    _cache[path] = (stamp, grader)
    return grader


def _import(path: Path) -> Grader:
    name = f"kubelab_grader_{path.stem}"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses and pickling in a grader look their module up there
    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            spec.loader.exec_module(module)
    except Exception as e:  # noqa: BLE001 - any import failure is the grader's, reported as one line
        sys.modules.pop(name, None)
        text = (str(e).strip().splitlines() or [""])[0]
        raise UsageError(f"the grader {path.name} could not be loaded: {type(e).__name__}: {text}", _FIX)
    checks = []
    for attr, obj in list(vars(module).items()):
        if not (is_test_name(attr) and callable(obj)):
            continue
        spec_ = spec_of(obj)
        if spec_ is None:
            raise UsageError(f"the grader {path.name} could not be loaded: {attr} is a test without @check", _FIX)
        checks.append(Check(obj, spec_, argnames(obj)))
    return Grader(path, module, tuple(checks))


def run_lab_direct(course, lab_id: str, target, clock: Callable[[], float] = time.monotonic,
                   sleep: Callable[[float], None] = time.sleep) -> LabResult:
    """What kubelab.engine.runner.run_lab returns, without pytest."""
    lab = course.model.lab(lab_id)
    path = course.grader_path(lab_id)
    if not path.is_file():
        raise UsageError(f"the grader of {lab_id} ({path}) does not exist",
                         f"create graders/{lab.grader} or fix labs[{lab_id}].grader in course.yaml")
    grader = load_grader(path)
    started_at = datetime.now(timezone.utc).isoformat(timespec="seconds")
    t0 = time.monotonic()
    # every instance is known before any runs, as pytest collects before it runs: a bad `on=` is the
    # grader's error whatever the checks before it would have found
    plan = [(c, node) for c in grader.checks for node in check_nodes(c.spec, c.argnames, course.model)]
    if not plan:
        raise UsageError(f"the grader {path.name} has no checks", "add @check tests to it")
    runner = CheckRunner(clock, sleep)
    fixtures = Fixtures(course, target, lab_id)
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        for c, node in plan:
            try:
                args = fixtures.values(c.argnames, node)
            except Exception as e:  # noqa: BLE001 - as pytest: a fixture that cannot be built errs the check
                runner.setup_failed(c.spec, node, e, skipped=False)
                continue
            except BaseException as e:
                from kubelab.engine.checkrun import is_skip

                if not is_skip(e):
                    raise
                runner.setup_failed(c.spec, node, e, skipped=True)
                continue
            runner.run(c.fn, args, c.spec, node)
    return LabResult(lab=lab_id, title=lab.title, target=target.description, started_at=started_at,
                     duration_s=time.monotonic() - t0, checks=runner.results)
