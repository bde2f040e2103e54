"""The real `kubelab` command run in this process (typer's CliRunner on kubelab.cli.app): the same code
path as the console script, fast enough for hundreds of generated inputs. `clean()` says whether a run
ended the way bad input must end: the designed exit code, a short `error:` message, no traceback."""

from __future__ import annotations

import os
import traceback
from dataclasses import dataclass

from typer.testing import CliRunner

from kubelab.cli import app


@dataclass
class Run:
    code: int
    stdout: str
    stderr: str
    crash: str | None  # the traceback of an exception that escaped the command, None when it exited

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


def run(*args: str, env: dict | None = None) -> Run:
    r = CliRunner().invoke(app, [str(a) for a in args], env={**os.environ, **(env or {})}, catch_exceptions=True)
    crash = None
    if r.exception is not None and not isinstance(r.exception, SystemExit):
        crash = "".join(traceback.format_exception(r.exception))
    return Run(r.exit_code, r.stdout, r.stderr, crash)


def clean(r: Run, codes=(2,)) -> bool:
    """Exit code as designed, no traceback, and the error said in one `error:` line (plus its `fix:`), or,
    for `kubelab lint`, one line per problem and the count."""
    if r.crash is not None or r.code not in codes or "Traceback" in r.output:
        return False
    err = [line for line in r.stderr.splitlines() if line.strip()]
    if err and err[0].startswith("error:"):
        return len(err) <= 2 and (len(err) == 1 or err[1].startswith("fix:"))
    out = [line for line in r.stdout.splitlines() if line.strip()]
    return (len(err) == 1 and err[0].endswith("problem(s) found") and len(out) >= 1
            and all(len(line) < 1000 for line in out))


def parser_refused(r: Run) -> bool:
    """typer's own argument parser refused the command line (unknown option, a value out of its range):
    exit 2, its "Usage:" box naming the problem, no traceback. That output is typer's, not one line."""
    return r.crash is None and r.code == 2 and "Traceback" not in r.output and r.stderr.startswith("Usage:") \
        and "Error" in r.stderr
