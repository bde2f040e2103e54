"""Run a whole notebook in a real kernel, as "Run all" would: the maintainers' VM proof (scripts/e2e_labs.py)
and the test suite both do it this way."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path


@contextlib.contextmanager
def environ(env: dict[str, str], drop: tuple[str, ...] = ()):
    """os.environ with `env` set and `drop` removed for the block (a notebook kernel inherits it), then as before."""
    keys = set(env) | set(drop)
    saved = {k: os.environ.get(k) for k in keys}
    for k in drop:
        os.environ.pop(k, None)
    os.environ.update(env)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def run_notebook(nb, folder: Path, env: dict[str, str], *, timeout: int = 600, allow_errors: bool = False,
                 drop: tuple[str, ...] = ()):
    """Execute every cell of `nb` in a python3 kernel working in `folder`, which sees `env` (the ssh-config and
    course a learner's kernel would find) and not the variables in `drop`; returns nb with its outputs.
    A failing cell raises nbclient's CellExecutionError unless allow_errors."""
    from nbclient import NotebookClient

    with environ(env, drop):
        NotebookClient(nb, timeout=timeout, kernel_name="python3", allow_errors=allow_errors,
                       resources={"metadata": {"path": str(folder)}}).execute()
    return nb
