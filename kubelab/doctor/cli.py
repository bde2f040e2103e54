"""`kubelab doctor`: check this computer before `vagrant up`.

The lead mounts it with `app.command("doctor")(doctor_command)`. Also runnable alone:
`python -m kubelab.doctor.cli --facts FILE`.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from kubelab.cliutil import user_errors
from kubelab.errors import UsageError

SYMBOL = {"ok": "[green]✓[/green]", "warning": "[yellow]![/yellow]", "error": "[red]✗[/red]"}
PLAIN_SYMBOL = {"ok": "OK", "warning": "!", "error": "X"}


def _symbols(console: Console) -> dict[str, str]:
    enc = (getattr(console.file, "encoding", None) or sys.getdefaultencoding() or "").lower()
    try:
        "✓✗".encode(enc or "ascii")
    except (LookupError, UnicodeEncodeError):
        return PLAIN_SYMBOL  # e.g. a cp1252 Windows console: no ✓/✗, no crash
    return SYMBOL


def print_findings(findings, console: Console) -> None:
    symbols = _symbols(console)
    table = Table(show_header=True, header_style="bold", show_lines=True, expand=False)
    table.add_column("", no_wrap=True)
    # fold, never "…": a fix is a command or URL to copy, it must stay whole
    table.add_column("check", overflow="fold")
    table.add_column("why it matters", overflow="fold")
    table.add_column("fix", overflow="fold")
    for f in findings:
        # Text(): a title such as an interface name must never be read as rich markup.
        table.add_row(symbols[f.severity], Text(f.title), Text(f.why), Text(f.fix))
    console.print(table)


@user_errors
def doctor_command(
    course: Optional[Path] = typer.Option(None, "--course", help="The folder holding course.yaml (default: found "
                                                                   "upward from here, or KUBELAB_COURSE)."),
    facts: Optional[Path] = typer.Option(None, "--facts", help="Judge the host facts in this JSON file (a "
                                                                 "`--json` report or bare facts) instead of this "
                                                                 "computer."),
    json_out: Optional[Path] = typer.Option(None, "--json", help="Also write the facts and findings as JSON (send "
                                                                   "this file to a helper; they replay it with "
                                                                   "--facts)."),
    provider: Optional[str] = typer.Option(None, "--provider", help="Check for this provider, like `vagrant up "
                                                                      "--provider` (virtualbox, libvirt, "
                                                                      "vmware_desktop, parallels)."),
) -> None:
    """Check this computer before `vagrant up`: Vagrant, a provider, memory, CPUs and networks.
    Exit 0 ready (warnings allowed), 1 something to fix, 2 bad usage or input."""
    from kubelab.course import load_course
    from kubelab.doctor.facts import PROVIDERS, gather, load_facts
    from kubelab.doctor.rules import evaluate, is_ready, normalize_provider

    loaded = load_course(course)
    if provider is not None and normalize_provider(provider) not in PROVIDERS:
        raise UsageError(f"unknown provider {provider!r}", f"use one of: {', '.join(PROVIDERS)}")
    host = load_facts(facts) if facts else gather()
    findings = evaluate(host, loaded.model, provider)
    console = Console(highlight=False)
    print_findings(findings, console)
    ready = is_ready(findings)
    if json_out:
        report = {"ready": ready, "facts": host.model_dump(mode="json"),
                  "findings": [f.model_dump(mode="json") for f in findings]}
        try:
            json_out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
        except OSError as e:
            raise UsageError(f"cannot write {json_out}: {e.strerror}", "choose a writable path")
    errors = sum(f.severity == "error" for f in findings)
    if ready:
        console.print(Text("ready for `vagrant up`", style="bold green"))
    else:
        console.print(Text(f"{errors} problem(s) to fix before `vagrant up`", style="bold red"))
    raise typer.Exit(0 if ready else 1)


if __name__ == "__main__":
    typer.run(doctor_command)
