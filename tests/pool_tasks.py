"""Module-level task functions for test_pool_chunks.py (a worker process imports them by reference)."""

from __future__ import annotations

import os
import signal
import time


def who(key: str) -> tuple[str, int]:
    return key, os.getpid()


def who_or(key: str, misbehave: str, marker: str) -> tuple[str, int]:
    """Misbehave as `misbehave` says (die / hang / raise) the first time only when `marker` names a file
    (so a regrade alone succeeds: the chunk's own state was to blame); always when it is empty."""
    once = bool(marker)
    if not once or not os.path.exists(marker):
        if once:
            open(marker, "w").close()
        if misbehave == "die":
            os.kill(os.getpid(), signal.SIGKILL)
        if misbehave == "hang":
            time.sleep(600)
        if misbehave == "raise":
            raise ValueError("bad evidence\nsecond line")
    return key, os.getpid()
