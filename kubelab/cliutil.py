"""What every kubelab command shares: errors a person reads as one line, never a traceback."""

from __future__ import annotations

import functools

import typer

from kubelab.errors import KubelabError


# every character str.splitlines() breaks on, not only \n and \r: a form feed in a key of a forged file is one too
_BREAKS = str.maketrans({c: repr(c)[1:-1] for c in "\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029"})


def one_line(text: str) -> str:
    """A problem quoting the user's input (a provider name, a learner's folder, a key of an evidence file) may
    hold a line break: shown escaped (`\\n`, `\\x0c`), it stays one line."""
    return text.translate(_BREAKS)


def user_errors(fn=None, *, on_interrupt: str = "run the command again"):
    """A KubelabError becomes `error: ...` + `fix: ...` on stderr and its exit code; Ctrl-C becomes exit 130."""

    def decorate(f):
        @functools.wraps(f)
        def wrapper(*args, **kwargs):
            try:
                return f(*args, **kwargs)
            except KubelabError as e:
                typer.echo(f"error: {one_line(e.problem)}", err=True)
                if e.fix:
                    typer.echo(f"fix: {one_line(e.fix)}", err=True)
                raise typer.Exit(e.exit_code)
            except KeyboardInterrupt:
                typer.echo("error: interrupted", err=True)
                typer.echo(f"fix: {on_interrupt}", err=True)
                raise typer.Exit(130)

        return wrapper

    return decorate(fn) if fn is not None else decorate
