"""What `kubelab lint` reads besides course.yaml — grader modules and notebooks — turned into Problems,
never into a traceback or a silent exit: a grader that calls sys.exit() at import would otherwise end
lint with that exit code and no word, a notebook of the wrong JSON shape would raise a KeyError."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from kubelab import inputfiles
from kubelab.course import Problem
from kubelab.errors import UsageError

MAX_NOTEBOOK_BYTES = 32 * inputfiles.MIB
_NOT_NOTEBOOK_FIX = "restore it from git or regenerate it"


def import_problem(grader: Path, load: Callable[[], None]) -> Problem | None:
    """Run `load` (the grader's import); any way it ends other than normally is a Problem."""
    try:
        load()
    except SystemExit as e:
        return Problem(str(grader), "", f"exits while being imported (sys.exit({e.code!r}) at module level)",
                       "a grader module only defines checks: remove the exit")
    except RecursionError:
        return Problem(str(grader), "", "cannot be imported: RecursionError", "fix the module")
    except Exception as e:  # noqa: BLE001 - any import failure is a problem to report, not to raise
        first = (str(e).splitlines() or [""])[0][:200]
        return Problem(str(grader), "", f"cannot be imported: {type(e).__name__}: {first}", "fix the module")
    return None


def read_notebook(nb: Path) -> tuple[list[dict], Problem | None]:
    """The notebook's cells, or a Problem saying why it is not a notebook lint can read."""
    try:
        data = inputfiles.parse_json(inputfiles.read_text(nb, str(nb), MAX_NOTEBOOK_BYTES, _NOT_NOTEBOOK_FIX),
                                     str(nb), _NOT_NOTEBOOK_FIX)
    except UsageError as e:
        return [], Problem(str(nb), "", e.problem.removeprefix(str(nb)).lstrip(": "), e.fix)
    shape = _shape_problem(data)
    if shape:
        return [], Problem(str(nb), shape[0], f"is not a notebook: {shape[1]}", _NOT_NOTEBOOK_FIX)
    return data["cells"], None


def _shape_problem(data) -> tuple[str, str] | None:
    if not isinstance(data, dict):
        return "", f"the file holds a JSON {type(data).__name__}, not an object"
    cells = data.get("cells")
    if not isinstance(cells, list):
        return "cells", "missing" if cells is None else f"a {type(cells).__name__}, not a list"
    for i, cell in enumerate(cells):
        where = f"cells[{i}]"
        if not isinstance(cell, dict):
            return where, f"a {type(cell).__name__}, not an object"
        source = cell.get("source", [])
        if not (isinstance(source, str) or (isinstance(source, list) and all(isinstance(s, str) for s in source))):
            return f"{where}.source", "neither text nor a list of lines"
        meta = cell.get("metadata", {})
        if not isinstance(meta, dict) or not isinstance(meta.get("nbgrader", {}), dict):
            return f"{where}.metadata", "not an object"
        points = meta.get("nbgrader", {}).get("points")
        if points is not None and (isinstance(points, bool) or not isinstance(points, (int, float))):
            return f"{where}.metadata.nbgrader.points", f"{points!r} is not a number"
    return None
