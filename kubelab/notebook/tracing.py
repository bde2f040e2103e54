"""`trace("pod", "web-1")` and `%trace pod web-1 [-n NS]`: the learner's own sequence diagram in the notebook.

The output carries the diagram as `text/vnd.mermaid` (JupyterLab >= 4.1 draws it with its mermaid renderer),
as a ```mermaid block in `text/markdown` for front ends that only draw Markdown, and as the timeline in
`text/plain`. Live over SSH as `%%node` reaches the nodes (KUBELAB_COURSE, KUBELAB_SSH_CONFIG), or from a
trace's evidence file."""

from __future__ import annotations

import io
from pathlib import Path

from kubelab.errors import KubelabError
from kubelab.trace import AUDIT_LOG_PATH

MERMAID_MIME = "text/vnd.mermaid"


class TraceError(Exception):
    """One line in the notebook, no traceback."""

    def __init__(self, err: KubelabError):
        self.line = f"✗ {err.problem}" + (f" (fix: {err.fix})" if err.fix else "")
        super().__init__(self.line)

    def _render_traceback_(self) -> list[str]:
        return [self.line]


class TraceView:
    """What a cell shows for a trace; `.trace` is the model, `.mermaid` the diagram's source."""

    def __init__(self, trace):
        from kubelab.trace.mermaid import fenced, to_mermaid

        self.trace = trace
        self.mermaid = to_mermaid(trace)
        self.markdown = fenced(trace)

    def timeline(self) -> str:
        from rich.console import Console

        from kubelab.trace.timeline import render

        out = io.StringIO()
        render(self.trace, Console(file=out, width=160, color_system=None, highlight=False, force_jupyter=False))
        return out.getvalue()

    def _repr_mimebundle_(self, include=None, exclude=None):
        return {MERMAID_MIME: self.mermaid, "text/markdown": self.markdown, "text/plain": self.timeline()}


def trace(kind: str, name: str, namespace: str = "default", *, evidence: str | Path | None = None,
          record: str | Path | None = None, audit_log: str = AUDIT_LOG_PATH) -> TraceView:
    from kubelab.course import find_course_root, load_course
    from kubelab.trace.record import trace_from_evidence, trace_live

    try:
        course = load_course(find_course_root())
        if evidence is not None:
            return TraceView(trace_from_evidence(course, evidence, kind, name, namespace))
        from kubelab.engine.targets import SshConfigTarget
        from kubelab.sshconfig import ssh_config_path

        target = SshConfigTarget(course, ssh_config_path(None))
        try:
            return TraceView(trace_live(course, target, kind, name, namespace, audit_log, record))
        finally:
            target.close()
    except KubelabError as e:
        raise TraceError(e) from None
