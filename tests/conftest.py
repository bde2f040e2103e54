"""Shared fixtures. `twins`: the course's lab twins, booted once per test session and always torn down."""

from __future__ import annotations

import atexit
import os
import signal
from pathlib import Path

import pytest

from kubelab.course import load_course
from kubelab.errors import KubelabError
from kubelab.twin import TwinSet, lease
from kubelab.twin.hostcmd import missing_tools

REPO = Path(__file__).resolve().parents[1]
pytest_plugins = ["both_drivers"]  # every replay in the suite is checked on both drivers (both_drivers.py)
LEASE_WAIT_S = 30 * 60


def _twins_unavailable() -> str | None:
    if os.geteuid() != 0:
        return "the twins tests need root (they create a bridge, cgroups and systemd-nspawn containers): run pytest as root"
    missing = missing_tools()
    if missing:
        return f"the twins tests need {', '.join(missing)}: apt-get install -y debootstrap systemd-container"
    return None


def _lease(ts: TwinSet):
    """Hold the twin set for this whole test session (see kubelab.twin.lease)."""
    try:
        return lease.acquire(ts.course_id, wait_s=LEASE_WAIT_S)
    except KubelabError as e:
        pytest.fail(str(e), pytrace=False)


@pytest.fixture(scope="session")
def twins():
    """TwinSet of the repository's course, up from fresh root file systems; `.ssh_config_file()` for SSH.

    Tests using it are marked `@pytest.mark.twins`. A missing precondition fails (never skips).
    """
    reason = _twins_unavailable()
    if reason:
        pytest.fail(reason, pytrace=False)
    ts = TwinSet(load_course(REPO))
    held = _lease(ts)
    torn_down = False

    # Teardown must run whatever happens: finally (test failures, Ctrl-C), atexit (an exit that
    # skips fixture finalizers), SIGTERM turned into KeyboardInterrupt so both of those run.
    def _at_exit() -> None:
        if not torn_down:  # never after the lease is gone: the twins may be another session's by then
            try:
                ts.down()
            except Exception as e:  # at exit there is nobody left to raise to
                print(f"kubelab twins teardown at exit failed: {e}")

    atexit.register(_at_exit)
    previous = signal.getsignal(signal.SIGTERM)

    def _on_sigterm(signum, frame):
        raise KeyboardInterrupt("SIGTERM")

    signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        try:
            ts.up(fresh=True)
        except KubelabError as e:
            pytest.fail(f"twins did not come up: {e}", pytrace=False)
        yield ts
    finally:
        try:
            ts.down()
        finally:
            torn_down = True
            signal.signal(signal.SIGTERM, previous)
            held.close()  # releases the session lock


_twins_changed = {"by": None}


@pytest.fixture(scope="module")
def fresh_twins(twins, request):
    """The session twins in their starting state (a fresh Vagrant Debian box) for a module that changes them.

    The session fixture boots fresh copies; a later module that needs fresh nodes again gets new copies
    only if an earlier module took the twins through this fixture (and so may have changed them)."""
    if _twins_changed["by"] is not None:
        twins.up(fresh=True, progress=None)
    _twins_changed["by"] = request.module.__name__
    return twins


@pytest.fixture(scope="session")
def lab01_evidence(twins, tmp_path_factory):
    """Lab 1 evidence recorded once per session on the twins by the notebooks' own grading cell:
    `.failing` (the learner notebook run on fresh twins, tasks undone) and `.passing` (the solution
    notebook run after it); see lab01_recordings.py. The twins are left prepared, so the next module
    taking `fresh_twins` gets fresh copies."""
    from lab01_recordings import record_lab01

    if _twins_changed["by"] is not None:
        twins.up(fresh=True, progress=None)
    _twins_changed["by"] = "lab01_evidence"
    return record_lab01(twins.ssh_config_file(), tmp_path_factory.mktemp("lab01-evidence"))
