"""A Trace as a mermaid sequence diagram (JupyterLab >= 4.1 draws it: `text/vnd.mermaid` output, or a
```mermaid fenced block in Markdown)."""

from __future__ import annotations

from kubelab.trace.model import Trace, parse_time

ARROWS = {"call": "->>", "write": "->>", "reply": "-->>", "watch": "--)"}


def clock(at: str) -> str:
    t = parse_time(at)
    if t is None:
        return ""
    return t.strftime("%H:%M:%S") + (f".{t.microsecond // 1000:03d}" if t.microsecond else "")


def _text(text: str) -> str:
    # `;` ends a mermaid statement and `#` starts an entity code: neither may reach it from an event message
    # and an arrow inside a message would read as a second one
    return " ".join(text.replace(";", ",").replace("#", "No.").replace("->", "→").split())[:300]


def to_mermaid(trace: Trace) -> str:
    lines = ["sequenceDiagram"]
    for ident, label in trace.participants:
        lines.append(f"    participant {ident} as {_text(label)}")
    for step in trace.steps:
        stamp = clock(step.at)
        text = _text((f"{stamp} " if stamp else "") + step.text + (f" [rev {step.revision}]" if step.revision and
                                                                   "mod_revision" not in step.text else ""))
        if step.kind == "note":
            lines.append(f"    Note over {step.frm}: {text}")
        else:
            lines.append(f"    {step.frm}{ARROWS.get(step.kind, '->>')}{step.to}: {text}")
    for note in trace.notes:
        lines.append(f"    Note over {trace.participants[0][0]},{trace.participants[-1][0]}: {_text(note)}")
    return "\n".join(lines) + "\n"


def fenced(trace: Trace) -> str:
    title = f"**Trace of pod {trace.namespace}/{trace.name}**" + (f" (node {trace.node})" if trace.node else "")
    return f"{title}\n\n```mermaid\n{to_mermaid(trace)}```\n"
