"""Shared fixtures. `twins`: the course's lab twins, booted once per test session and always torn down."""

from __future__ import annotations

import atexit
import fcntl
import os
import signal
import time
from pathlib import Path

import pytest

from kubelab.course import load_course
from kubelab.errors import KubelabError
from kubelab.twin import TwinSet
from kubelab.twin.hostcmd import missing_tools
from kubelab.twin.paths import twin_root

REPO = Path(__file__).resolve().parents[1]
LEASE_WAIT_S = 30 * 60


def _twins_unavailable() -> str | None:
    if os.geteuid() != 0:
        return "the twins tests need root (they create a bridge, cgroups and systemd-nspawn containers): run pytest as root"
    missing = missing_tools()
    if missing:
        return f"the twins tests need {', '.join(missing)}: apt-get install -y debootstrap systemd-container"
    return None


def _lease(ts: TwinSet):
    """Hold the twin set for this whole test session.

    Every twin operation is locked on its own, but a test session needs the twins unchanged from
    its fresh `up` to its `down`: two sessions on one host (developers sharing a machine) would
    otherwise re-copy and reboot each other's twins mid-test. The kernel drops the lock when the
    holder dies, so a killed session never blocks the next one.
    """
    path = twin_root() / f".{ts.course_id}.test-session.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    f = open(path, "a+")
    deadline = time.monotonic() + LEASE_WAIT_S
    while True:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except BlockingIOError:
            if time.monotonic() > deadline:
                f.seek(0)
                holder = f.read().strip() or "?"
                f.close()
                pytest.fail(f"another test session (pid {holder}) has held the lab twins for "
                            f"{LEASE_WAIT_S // 60} min: wait for it to finish or stop it", pytrace=False)
            time.sleep(1)
    f.seek(0)
    f.truncate()
    f.write(f"{os.getpid()}\n")
    f.flush()
    return f


@pytest.fixture(scope="session")
def twins():
    """TwinSet of the repository's course, up from fresh root file systems; `.ssh_config_file()` for SSH.

    Tests using it are marked `@pytest.mark.twins`. A missing precondition fails (never skips).
    """
    reason = _twins_unavailable()
    if reason:
        pytest.fail(reason, pytrace=False)
    ts = TwinSet(load_course(REPO))
    lease = _lease(ts)
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
            lease.close()  # releases the session lock


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
