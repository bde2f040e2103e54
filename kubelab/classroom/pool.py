"""Bounded concurrency with a hard timeout per task: one worker process per learner.

Why processes, not threads: grading one learner runs the grader under `pytest.main` in-process
(kubelab.engine.runner), and pytest is not re-entrant across threads — it swaps sys.stdout/stderr,
imports and deletes the grader module in sys.modules, toggles os.environ and installs import hooks.
Threads would have to take turns. A process also isolates one learner completely (a hung SSH
session, a crash, a leak dies with it), runs replays (CPU-bound) on every core, and can be stopped
for real at its timeout (SIGKILL); a thread could only be abandoned, still holding its connections.

Processes come from a `forkserver` that has imported kubelab, pytest, testinfra and paramiko once:
starting a worker is a fork of that clean, single-threaded server (milliseconds), never of this
process, whose progress-bar thread would make a plain fork unsafe.
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import multiprocessing.connection
import os
import signal
import sys
import time
from collections import deque
from dataclasses import dataclass
from typing import Any, Callable, Iterable

PRELOAD = ["kubelab.classroom.worker"]
_JOIN_S = 5.0


@dataclass
class Task:
    key: str
    fn: Callable[..., Any]      # a module-level function (it is pickled by reference)
    args: tuple


@dataclass
class Outcome:
    kind: str                   # "ok" | "timeout" | "died" | "raised"
    value: Any = None           # the function's return value ("ok"), else a one-line reason

    @property
    def ok(self) -> bool:
        return self.kind == "ok"


@dataclass
class _Running:
    task: Task
    proc: Any
    conn: Any
    deadline: float


_context = None


def context():
    global _context
    if _context is None:
        ctx = mp.get_context("forkserver")
        ctx.set_forkserver_preload(PRELOAD)
        _context = ctx
    return _context


@contextlib.contextmanager
def _without_main_module():
    """Start workers without multiprocessing's "main module fixup": by default every forkserver/spawn child
    imports the parent's __main__ again (for `kubelab`, the console script and the whole CLI; for a script
    without an `if __name__ == "__main__"` guard, the script itself runs again). Workers run module-level
    functions of kubelab only and need none of it, so __main__ is hidden while a worker is being started."""
    main = sys.modules.get("__main__")
    if main is None:
        yield
        return
    missing = object()
    saved_file = main.__dict__.pop("__file__", missing)
    saved_spec = main.__dict__.get("__spec__", missing)
    main.__spec__ = None
    try:
        yield
    finally:
        if saved_file is not missing:
            main.__file__ = saved_file
        if saved_spec is missing:
            main.__dict__.pop("__spec__", None)
        else:
            main.__spec__ = saved_spec


def _child(fn: Callable[..., Any], args: tuple, conn) -> None:
    # The parent owns the terminal (its progress bar) and Ctrl-C; a worker writes nothing there.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.dup2(devnull, 2)
    try:
        result = ("ok", fn(*args))
    except BaseException as e:  # noqa: BLE001 - any failure becomes this learner's one-line error
        line = (str(e).strip().splitlines() or [""])[0]
        result = ("raised", f"{type(e).__name__}: {line}" if line else type(e).__name__)
    try:
        conn.send(result)
    finally:
        conn.close()


def run_tasks(tasks: Iterable[Task], jobs: int, timeout_s: float,
              on_done: Callable[[Task, Outcome], None]) -> None:
    """Run every task in its own process, at most `jobs` at once; call `on_done` (in this process) as
    each one ends. A task still running at `timeout_s` is killed and reported as a timeout."""
    ctx = context()
    queue = deque(tasks)
    running: list[_Running] = []
    try:
        while queue or running:
            while queue and len(running) < jobs:
                task = queue.popleft()
                recv, send = ctx.Pipe(duplex=False)
                proc = ctx.Process(target=_child, args=(task.fn, task.args, send), daemon=True,
                                   name=f"kubelab-grade-{task.key}")
                with _without_main_module():
                    proc.start()
                send.close()
                running.append(_Running(task, proc, recv, time.monotonic() + timeout_s))
            wait_s = max(0.0, min(r.deadline for r in running) - time.monotonic())
            mp.connection.wait([r.conn for r in running] + [r.proc.sentinel for r in running], timeout=wait_s)
            for r in list(running):
                outcome = _check(r, timeout_s)
                if outcome is not None:
                    running.remove(r)
                    on_done(r.task, outcome)
    finally:
        for r in running:  # interrupted: stop what is still running, leave nothing behind
            _stop(r)


def _check(r: _Running, timeout_s: float) -> Outcome | None:
    if r.conn.poll():
        try:
            kind, value = r.conn.recv()
            outcome = Outcome(kind, value)
        except (EOFError, OSError):
            r.proc.join(_JOIN_S)
            outcome = Outcome("died", _died(r.proc.exitcode))
        r.proc.join(_JOIN_S)
        r.conn.close()
        return outcome
    if not r.proc.is_alive():
        if r.conn.poll():  # it sent its result just before it ended
            return _check(r, timeout_s)
        r.conn.close()
        return Outcome("died", _died(r.proc.exitcode))
    if time.monotonic() >= r.deadline:
        _stop(r)
        return Outcome("timeout", f"timed out after {timeout_s:g}s (the grading was stopped)")
    return None


def _stop(r: _Running) -> None:
    if r.proc.is_alive():
        r.proc.kill()
    r.proc.join(_JOIN_S)
    r.conn.close()


def _died(exitcode) -> str:
    if exitcode is not None and exitcode < 0:
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = f"signal {-exitcode}"
        return f"the grading process was killed by {name}"
    return f"the grading process ended without a result (exit code {exitcode})"
