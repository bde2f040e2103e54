"""A Trace as a table in the terminal (rich)."""

from __future__ import annotations

from kubelab.trace.mermaid import clock
from kubelab.trace.model import Trace

STYLE = {"audit": "green", "event": "cyan", "managedFields": "yellow", "object": "yellow", "lease": "magenta",
         "status": "blue", "endpointslice": "cyan", "kube-proxy": "red",
         "inferred": "dim"}


def render(trace: Trace, console) -> None:
    from rich.table import Table
    from rich.text import Text

    labels = dict(trace.participants)
    title = f"pod {trace.namespace}/{trace.name}" + (f" on {trace.node}" if trace.node else "") + \
        f", resourceVersion {trace.resource_version}"
    table = Table(title=title, title_justify="left", show_lines=False)
    for col in ("time", "who", "", "to", "what", "rev", "source"):
        table.add_column(col, overflow="fold")
    for step in trace.steps:
        arrow = "note" if step.kind == "note" else ("~>" if step.kind == "watch" else "->")
        to = "" if step.kind == "note" else labels.get(step.to, step.to)
        # Text, not markup: an event message may hold square brackets
        table.add_row(clock(step.at), Text(labels.get(step.frm, step.frm)), arrow, Text(to), Text(step.text),
                      step.revision, Text(step.source, style=STYLE.get(step.source, "")))
    console.print(table)
    for note in trace.notes:
        console.print(Text(f"note: {note}"))
