"""The grading cell at the end of every lab notebook.

`grade("lab01")` shows the checks as an HTML table and returns the score scaled to the lab's points
in course.yaml, which nbgrader takes as partial credit. It writes nothing to stderr (nbgrader would
score the cell zero) and never shows a traceback: a problem is one line.

Where it grades from depends on who runs the notebook:

- **the learner** (no ``NBGRADER_EXECUTION``): live, over SSH, recording every observation. The evidence
  is written next to the notebook as ``<lab>.evidence.json`` (the kernel's working folder, which Jupyter,
  nbclient and nbgrader all set to the notebook's folder), so `nbgrader submit`/`collect` take it with
  the notebook. A run that could not observe every node writes no evidence (an earlier, complete one
  stays) and ends with one line. A source notebook in the course's ``solutions/`` never writes evidence:
  nbgrader would copy it into every learner's release and over every submission when autograding.
- **nbgrader autograde** (``NBGRADER_EXECUTION=autograde``, on the instructor's machine): from that
  evidence file alone, never touching a node. No evidence, or evidence that cannot be read (corrupt,
  truncated, edited, another lab's), scores 0: the cell shows one line saying why (an HTML paragraph, no
  traceback, nothing on stderr) and returns ``0.0``, so the feedback says why the lab scored nothing.
  Evidence that lacks an observation the grader needs grades what it can: those checks show
  ``error: not in evidence`` in the table and earn nothing, and a line asks the instructor to look
  (``kubelab class grade --submissions`` lists such submissions as errors).
- **nbgrader validate** (``NBGRADER_EXECUTION=validate``): like autograde when the evidence exists,
  otherwise live as for the learner.
"""

from __future__ import annotations

import contextlib
import html
import io
import os
import warnings
from pathlib import Path

from kubelab.errors import KubelabError

EVIDENCE_SUFFIX = ".evidence.json"


def evidence_file_name(lab_id: str) -> str:
    return f"{lab_id}{EVIDENCE_SUFFIX}"


class GradingIncomplete(Exception):
    """Raised so that "Run all" and nbgrader see the cell did not grade; rendered as one line."""

    def __init__(self, line: str):
        super().__init__(line)
        self.line = line

    def _render_traceback_(self) -> list[str]:  # IPython shows this instead of a traceback
        return [self.line]


@contextlib.contextmanager
def _silent():
    """Nothing reaches stderr while grading: not a library's warning, not a stray print."""
    sink = io.StringIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with contextlib.redirect_stderr(sink):
            yield


def _mode(evidence: Path) -> str:
    execution = os.environ.get("NBGRADER_EXECUTION", "")
    if execution == "autograde" or (execution == "validate" and evidence.is_file()):
        return "evidence"
    return "live"


def _in_sources(course, folder: Path) -> bool:
    sources = (course.root / "solutions").resolve()
    folder = folder.resolve()
    return folder == sources or sources in folder.parents


def _scaled(result, points: float) -> float:
    return round(result.score / result.max_score * points, 2) if result.max_score else 0.0


def _zero(lab_id: str, points: float, reason: str) -> float:
    """Score 0 under autograde, with one line that the nbgrader feedback shows."""
    from IPython.display import HTML, display

    display(HTML(f"<p class='kubelab-grade-zero' style='color:#cf222e'><b>✗ {html.escape(lab_id)}: "
                 f"{html.escape(reason)}</b> — score 0 of {points:g}.</p>"))
    return 0.0


def grade(lab_id: str, ssh_config: str | Path | None = None, course: str | Path | None = None,
          evidence_dir: str | Path | None = None) -> float:
    """Grade `lab_id`; return its score scaled to the lab's points (nbgrader's partial credit).

    `evidence_dir` is where the evidence file is written and read (default: the working folder,
    which is the notebook's folder)."""
    evidence = Path(evidence_dir or Path.cwd()) / evidence_file_name(lab_id)
    with _silent():
        if _mode(evidence) == "evidence":
            return _grade_from_evidence(lab_id, evidence, course)
        return _grade_live(lab_id, evidence, ssh_config, course)


def _grade_live(lab_id: str, evidence_path: Path, ssh_config, course) -> float:
    from IPython.display import HTML, display

    from kubelab.course import load_course
    from kubelab.engine import report
    from kubelab.engine.targets import SshConfigTarget
    from kubelab.evidence import record_lab, save
    from kubelab.sshconfig import ssh_config_path

    try:
        loaded = load_course(course)
        lab = loaded.model.lab(lab_id)
        target = SshConfigTarget(loaded, ssh_config_path(ssh_config))
        try:
            result, evidence = record_lab(loaded, lab_id, target)
        finally:
            target.close()
    except KubelabError as e:
        raise GradingIncomplete(f"✗ could not grade {lab_id}: {e.problem}" + (f" — fix: {e.fix}" if e.fix else ""))
    if result.status == "error":
        display(HTML(report.to_html(result)))
        kept = " (the evidence saved earlier is kept)" if evidence_path.is_file() else ""
        raise GradingIncomplete(f"✗ {lab_id} could not be graded completely: some nodes could not be observed "
                                f"(see the table), so no evidence was written{kept}. Fix the nodes and run this "
                                "cell again.")
    if _in_sources(loaded, evidence_path.parent):
        note = "Evidence not written: this is a source notebook in solutions/ (nbgrader would hand it out)."
    else:
        try:
            save(evidence, evidence_path)
        except OSError as e:
            display(HTML(report.to_html(result)))
            raise GradingIncomplete(f"✗ {lab_id} was graded, but its evidence could not be written to {evidence_path}: "
                                    f"{e.strerror or e} — fix: make the notebook's folder writable and run this cell "
                                    "again (without the evidence the lab scores 0 when it is collected)")
        note = (f"Evidence of what the grader saw is saved in {evidence_path.name}, next to this notebook: "
                "it is handed in with the notebook and graded again from it. Run this cell again after any change.")
    display(HTML(report.to_html(result) + f"<p class='kubelab-evidence'><i>{html.escape(note)}</i></p>"))
    return _scaled(result, lab.points)


def _grade_from_evidence(lab_id: str, evidence_path: Path, course) -> float:
    from IPython.display import HTML, display

    from kubelab.course import load_course
    from kubelab.engine import report
    from kubelab.engine.direct import run_lab_direct
    from kubelab.evidence import load
    from kubelab.evidence.replay import ReplayClock, ReplayTarget

    try:
        loaded = load_course(course)
        lab = loaded.model.lab(lab_id)
    except KubelabError as e:  # the instructor's course, not the learner's submission
        raise GradingIncomplete(f"✗ could not grade {lab_id}: {e.problem}" + (f" — fix: {e.fix}" if e.fix else ""))
    if not evidence_path.is_file():
        return _zero(lab_id, lab.points, f"no evidence in this submission ({evidence_path.name} was not handed in; "
                                         "it is written when the grading cell runs with the nodes up)")
    try:
        evidence = load(evidence_path)
    except KubelabError as e:
        return _zero(lab_id, lab.points, f"the evidence cannot be graded: {_short(e.problem, evidence_path)}")
    if evidence.lab != lab_id:
        return _zero(lab_id, lab.points, f"the evidence cannot be graded: {evidence_path.name} is the evidence of "
                                         f"{evidence.lab}, not of {lab_id}")
    target = ReplayTarget(loaded, evidence, source=f"evidence {evidence_path.name}")
    clock = ReplayClock()
    try:
        result = run_lab_direct(loaded, lab_id, target, clock=clock.now, sleep=clock.sleep)
    except KubelabError as e:  # the grader itself (instructor side) failed
        raise GradingIncomplete(f"✗ could not grade {lab_id}: {e.problem}" + (f" — fix: {e.fix}" if e.fix else ""))
    from kubelab.evidence.honesty import verify

    note = f"Graded from the evidence recorded {evidence.recorded_at} (no node was contacted)."
    flags = verify(loaded, evidence, result)
    if flags:  # graded, and the instructor is told why this evidence is not to be taken at face value
        note += " FLAGGED for the instructor: " + "; ".join(flags) + "."
    if result.status == "error":
        note += (" Some checks could not be graded from this evidence (see the table): they earn nothing here; "
                 "the instructor reviews this submission.")
    display(HTML(report.to_html(result) + f"<p class='kubelab-evidence'><i>{html.escape(note)}</i></p>"))
    return _scaled(result, lab.points)


def _short(problem: str, path: Path) -> str:
    """The loader names the full path; the feedback needs only the file's name."""
    return problem.replace(str(path), path.name)
