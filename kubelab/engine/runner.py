"""Run one lab's grader module under pytest, in this process, and return its LabResult.

Live grading and `--record` take this driver; a replay takes the direct one (kubelab.engine.direct),
which runs the same checks through the same kubelab.engine.checkrun without a pytest session."""

from __future__ import annotations

import contextlib
import io
import logging
import os
import sys
import time
from datetime import datetime, timezone

from kubelab.course import LoadedCourse
from kubelab.engine.results import LabResult
from kubelab.engine.targets import Target
from kubelab.errors import UsageError


@contextlib.contextmanager
def _quiet():
    """Nothing of the grader's machinery may reach the user's terminal or, in a notebook, stderr
    (nbgrader scores a cell that writes to stderr as zero)."""
    saved_env = os.environ.get("PYTEST_DISABLE_PLUGIN_AUTOLOAD")
    os.environ["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"  # no stray plugins (testinfra's own `host` fixture)
    paramiko_log = logging.getLogger("paramiko")
    saved_log = (paramiko_log.propagate, list(paramiko_log.handlers))
    paramiko_log.propagate = False
    paramiko_log.handlers = [logging.NullHandler()]
    sink = io.StringIO()
    try:
        with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
            yield sink
    finally:
        paramiko_log.propagate, paramiko_log.handlers = saved_log
        if saved_env is None:
            os.environ.pop("PYTEST_DISABLE_PLUGIN_AUTOLOAD", None)
        else:
            os.environ["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = saved_env


def run_lab(course: LoadedCourse, lab_id: str, target: Target, **plugin_kwargs) -> LabResult:
    import pytest  # only live grading pays for pytest

    from kubelab.engine.plugin import KubelabPlugin

    lab = course.model.lab(lab_id)
    grader = course.grader_path(lab_id)
    if not grader.is_file():
        raise UsageError(f"the grader of {lab_id} ({grader}) does not exist",
                         f"create graders/{lab.grader} or fix labs[{lab_id}].grader in course.yaml")
    plugin = KubelabPlugin(course, target, lab_id, **plugin_kwargs)
    started_at = datetime.now(timezone.utc).isoformat(timespec="seconds")
    t0 = time.monotonic()
    # importlib mode never touches sys.path, so a re-run in the same process (a notebook grading twice)
    # imports the grader afresh instead of reusing a stale module.
    for name in [m for m in sys.modules if m.endswith(grader.stem)]:
        del sys.modules[name]
    args = [str(grader), "-q", "--import-mode=importlib", "--capture=sys", "-c", os.devnull,
            "--rootdir", str(grader.parent), "-p", "no:cacheprovider", "-p", "no:faulthandler",
            "-p", "no:stepwise", "-W", "ignore"]
    with _quiet() as sink:
        rc = pytest.main(args, plugins=[plugin])
    if plugin.collect_problems or rc in (pytest.ExitCode.INTERNAL_ERROR, pytest.ExitCode.USAGE_ERROR,
                                         pytest.ExitCode.INTERRUPTED):
        detail = plugin.collect_problems[0] if plugin.collect_problems else _last_line(sink.getvalue())
        raise UsageError(f"the grader {grader.name} could not be loaded: {detail}",
                         "fix the grader module (run `kubelab lint`)")
    if not plugin.results:
        raise UsageError(f"the grader {grader.name} has no checks", "add @check tests to it")
    return LabResult(lab=lab_id, title=lab.title, target=target.description, started_at=started_at,
                     duration_s=time.monotonic() - t0, checks=plugin.results)


def _last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else "pytest gave no reason"
