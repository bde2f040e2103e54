"""The grading cell at the end of every lab notebook.

`grade("lab01")` shows the checks as an HTML table and returns the score scaled to the lab's points
in course.yaml, which nbgrader takes as partial credit. It writes nothing to stderr (nbgrader would
score the cell zero) and never shows a traceback: a problem is one line."""

from __future__ import annotations

from pathlib import Path

from kubelab.errors import KubelabError


class GradingIncomplete(Exception):
    """Raised so that "Run all" and nbgrader see the cell did not grade; rendered as one line."""

    def __init__(self, line: str):
        super().__init__(line)
        self.line = line

    def _render_traceback_(self) -> list[str]:  # IPython shows this instead of a traceback
        return [self.line]


def grade(lab_id: str, ssh_config: str | Path | None = None, course: str | Path | None = None) -> float:
    from IPython.display import HTML, display

    from kubelab.course import load_course
    from kubelab.engine import report
    from kubelab.engine.runner import run_lab
    from kubelab.engine.targets import SshConfigTarget
    from kubelab.sshconfig import ssh_config_path

    try:
        loaded = load_course(course)
        lab = loaded.model.lab(lab_id)
        target = SshConfigTarget(loaded, ssh_config_path(ssh_config))
        try:
            result = run_lab(loaded, lab_id, target)
        finally:
            target.close()
    except KubelabError as e:
        raise GradingIncomplete(f"✗ could not grade {lab_id}: {e.problem}" + (f" — fix: {e.fix}" if e.fix else ""))
    display(HTML(report.to_html(result)))
    if result.status == "error":
        raise GradingIncomplete(f"✗ {lab_id} could not be graded completely: some nodes could not be observed "
                                "(see the table). Fix the nodes and run this cell again.")
    return round(result.score / result.max_score * lab.points, 2) if result.max_score else 0.0
