"""Bounded concurrency with a hard timeout per task: tasks run in chunks, one worker process per chunk.

Why processes, not threads: live grading runs the grader under `pytest.main` in-process
(kubelab.engine.runner), and pytest is not re-entrant across threads — it swaps sys.stdout/stderr,
imports and deletes the grader module in sys.modules, toggles os.environ and installs import hooks.
A process also isolates its learners (a hung SSH session, a crash, a leak dies with it), runs replays
(CPU-bound) on every core, and can be stopped for real at its timeout (SIGKILL); a thread could only be
abandoned, still holding its connections.

Why chunks: a replay takes milliseconds, a process per learner cost more than the grading. A worker grades
its chunk's learners one after the other and sends each result as it is done; the per-learner timeout runs
from the previous result. A chunk that dies or overruns is stopped, and its unfinished learners are graded
again one per process, so no learner is lost to a neighbour and a learner that really hangs or crashes ends
as its own `timeout` or `died`, after at most its own timeout.

Processes come from a `forkserver` that has imported kubelab, pytest, testinfra, paramiko, the Kubernetes
client and the course's graders once (kubelab.classroom.worker): starting a worker is a fork of that clean,
single-threaded server (milliseconds), never of this process, whose progress-bar thread would make a plain
fork unsafe.
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
    tasks: deque                # of Task: those of the chunk not yet done, the one running first
    proc: Any
    conn: Any
    deadline: float
    single: bool                # a chunk of one (a regrade): its outcome is its task's
    outcome: Outcome | None = None


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


def _child(items: list[tuple[str, Callable[..., Any], tuple]], conn) -> None:
    # The parent owns the terminal (its progress bar) and Ctrl-C; a worker writes nothing there.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.dup2(devnull, 2)
    try:
        for key, fn, args in items:
            try:
                result = ("ok", fn(*args))
            except BaseException as e:  # noqa: BLE001 - any failure becomes this learner's one-line error
                line = (str(e).strip().splitlines() or [""])[0]
                result = ("raised", f"{type(e).__name__}: {line}" if line else type(e).__name__)
            conn.send((key, *result))
    finally:
        conn.close()


def chunk_size(n_tasks: int, jobs: int) -> int:
    """About four chunks per job (a slow chunk at the end leaves the others little to wait for), at most 64
    learners each (what a crash makes us regrade one by one)."""
    return max(1, min(64, n_tasks // (jobs * 4)))


def run_tasks(tasks: Iterable[Task], jobs: int, timeout_s: float,
              on_done: Callable[[Task, Outcome], None], chunk: int | None = None) -> None:
    """Run every task, in chunks of `chunk` tasks per process (default: chunk_size), at most `jobs` processes at
    once; call `on_done` (in this process) as each task ends. A task still running `timeout_s` after its
    chunk's previous result is stopped; a stopped or dead chunk's unfinished tasks run again one per process,
    where a task that still overruns or dies is reported as a timeout or a death."""
    ctx = context()
    tasks = list(tasks)
    size = chunk or chunk_size(len(tasks), jobs)
    queue = deque(tasks[i:i + size] for i in range(0, len(tasks), size))
    running: list[_Running] = []
    try:
        while queue or running:
            while queue and len(running) < jobs:
                running.append(_start(ctx, queue.popleft(), timeout_s))
            wait_s = max(0.0, min(r.deadline for r in running) - time.monotonic())
            mp.connection.wait([r.conn for r in running] + [r.proc.sentinel for r in running], timeout=wait_s)
            for r in list(running):
                if _progress(r, timeout_s, on_done):
                    continue
                running.remove(r)
                if not r.tasks:
                    continue
                if len(r.tasks) == 1 and r.single:  # already alone: its own outcome
                    on_done(r.tasks[0], r.outcome)
                else:  # regrade the unfinished ones alone, before anything else
                    queue.extendleft([t] for t in reversed(r.tasks))
    finally:
        for r in running:  # interrupted: stop what is still running, leave nothing behind
            _stop(r)


def _start(ctx, chunk: list[Task], timeout_s: float) -> _Running:
    recv, send = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_child, args=([(t.key, t.fn, t.args) for t in chunk], send), daemon=True,
                       name=f"kubelab-grade-{chunk[0].key}" + (f"+{len(chunk) - 1}" if len(chunk) > 1 else ""))
    with _without_main_module():
        proc.start()
    send.close()
    return _Running(deque(chunk), proc, recv, time.monotonic() + timeout_s, single=len(chunk) == 1)


def _progress(r: _Running, timeout_s: float, on_done) -> bool:
    """Hand on every result the chunk sent; False once it is over (r.tasks then holds what it left unfinished,
    r.outcome why)."""
    while True:
        try:
            if not r.conn.poll():
                break
            key, kind, value = r.conn.recv()
        except (EOFError, OSError):  # the pipe closed: the process ended, with or without its last results
            _stop(r)
            r.outcome = Outcome("died", _died(r.proc.exitcode)) if r.tasks else None
            return False
        task = r.tasks.popleft()
        assert task.key == key, (task.key, key)
        r.deadline = time.monotonic() + timeout_s
        # outside the try: an OSError of the caller's (a closed terminal, a full disk) is not this chunk dying,
        # and must not drop the task just taken off the queue
        on_done(task, Outcome(kind, value))
    if not r.tasks:
        _stop(r)
        return False
    if not r.proc.is_alive():
        if r.conn.poll():  # it sent results just before it ended
            return _progress(r, timeout_s, on_done)
        _stop(r)
        r.outcome = Outcome("died", _died(r.proc.exitcode))
        return False
    if time.monotonic() >= r.deadline:
        _stop(r)
        r.outcome = Outcome("timeout", f"timed out after {timeout_s:g}s (the grading was stopped)")
        return False
    return True


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
