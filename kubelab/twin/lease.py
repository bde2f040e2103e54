"""Hold a twin set for a whole session of use (a test run, a benchmark).

Every twin operation is locked on its own, but a session needs the twins unchanged from its `up`
to its `down`: two sessions on one host would otherwise re-copy and reboot each other's twins
mid-run. The kernel drops the lock when the holder dies, so a killed session never blocks the next."""

from __future__ import annotations

import fcntl
import os
import time
from typing import IO

from kubelab.errors import InfrastructureError
from kubelab.twin.paths import twin_root


def acquire(course_id: str, wait_s: float = 30 * 60, poll_s: float = 1.0) -> IO:
    """Block until this process holds the twin set of `course_id`; close the returned file to release it."""
    path = twin_root() / f".{course_id}.test-session.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    f = open(path, "a+")
    deadline = time.monotonic() + wait_s
    while True:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except BlockingIOError:
            if time.monotonic() > deadline:
                f.seek(0)
                holder = f.read().strip() or "?"
                f.close()
                raise InfrastructureError(f"another session (pid {holder}) has held the lab twins for "
                                          f"{wait_s / 60:g} min", "wait for it to finish or stop it")
            time.sleep(poll_s)
    f.seek(0)
    f.truncate()
    f.write(f"{os.getpid()}\n")
    f.flush()
    return f
