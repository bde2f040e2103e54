"""nbgrader end to end: three learners hand in Lab 1 — one complete, one partial, one without evidence —
and `nbgrader autograde` scores each from its evidence alone, into the gradebook as partial credit;
`nbgrader generate_feedback` shows every check's hint and expected vs actual, and none of the grader's code.
Also the grading cell's modes (live, autograde, validate) and where it writes the evidence.

Proof: live — the real `nbgrader` 0.9 CLI from the venv (generate_assignment, autograde, generate_feedback)
in a temporary course directory built from this repository's course.yaml, nbgrader_config.py, graders/ and
solutions/, and the real nbgrader Gradebook API. The evidence was recorded for real on the lab twins by
the notebooks' own grading cell (fixture `lab01_evidence`, lab01_recordings.py). Autograde runs with no
route to any node (KUBELAB_SSH_CONFIG points nowhere): the scores can only come from the evidence."""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import nbformat
import pytest
from nbgrader.api import Gradebook

from helpers import REPO, execute_notebook
from kubelab.course import load_course
from kubelab.engine.runner import run_lab
from kubelab.engine.targets import SshConfigTarget

pytestmark = pytest.mark.twins

LAB = "lab01"
LEARNERS = ("complete", "partial", "missing")
GRADER_CODE = ("expect_equal", "expect_contains", "def test_", "@check", "from kubelab.engine", "active_fstab_swaps",
               "effective_sysctl_config", "SYSCTL_GREP", "REQUIRED_SYSCTLS")


def nbgrader(root: Path, *args: str) -> subprocess.CompletedProcess:
    exe = Path(sys.executable).parent / "nbgrader"
    env = {k: v for k, v in os.environ.items() if k not in ("KUBELAB_COURSE", "NBGRADER_EXECUTION")}
    env.update(KUBELAB_NBGRADER_HOME=str(root / ".nbgrader"), JUPYTER_NO_CONFIG="1",
               JUPYTER_CONFIG_DIR=str(root / ".jupyter"), JUPYTER_DATA_DIR=str(root / ".jupyter-data"),
               # the instructor's machine reaches no learner's nodes
               KUBELAB_SSH_CONFIG=str(root / "no-such-ssh-config"),
               PATH=os.pathsep.join([str(exe.parent), env.get("PATH", "")]))
    p = subprocess.run([str(exe), *args], cwd=root, env=env, capture_output=True, text=True, timeout=900)
    assert p.returncode == 0, f"nbgrader {' '.join(args)} failed:\n{p.stdout}\n{p.stderr}"
    return p


@pytest.fixture(scope="module")
def course_dir(lab01_evidence, tmp_path_factory):
    """A temporary nbgrader course: released, submitted by three learners, autograded, feedback generated."""
    root = tmp_path_factory.mktemp("nbgrader-course")
    course = load_course(REPO)
    for name in ("course.yaml", "nbgrader_config.py"):
        shutil.copy2(REPO / name, root / name)
    shutil.copytree(REPO / "graders", root / "graders", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(REPO / "solutions" / LAB, root / "solutions" / LAB,
                    ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
    nbgrader(root, "generate_assignment", LAB, "--force")
    notebook = course.model.lab(LAB).notebook
    released = root / "labs" / LAB / notebook
    assert released.is_file()

    # what `nbgrader collect` leaves in submitted/<student>/<lab>/: the learner's whole lab folder
    submitted = root / "submitted"
    partial = submitted / "partial" / LAB
    shutil.copytree(lab01_evidence.failing.folder, partial)  # the notebook as run, and its evidence
    complete = submitted / "complete" / LAB
    complete.mkdir(parents=True)
    shutil.copy2(released, complete / notebook)
    shutil.copy2(lab01_evidence.passing.evidence, complete / "lab01.evidence.json")
    missing = submitted / "missing" / LAB
    missing.mkdir(parents=True)
    shutil.copy2(released, missing / notebook)  # handed in without running the grading cell
    for learner in LEARNERS:
        (submitted / learner / LAB / "timestamp.txt").write_text("2026-11-28 12:00:00.000000 UTC")

    nbgrader(root, "autograde", LAB, "--force")
    nbgrader(root, "generate_feedback", LAB, "--force")
    return root


def gradebook_score(root: Path, learner: str) -> tuple[float, float]:
    with Gradebook(f"sqlite:///{root / '.nbgrader' / 'gradebook.db'}", course_id="kubelab") as gb:
        sub = gb.find_submission(LAB, learner)
        return sub.score, sub.max_score


def feedback_html(root: Path, learner: str) -> str:
    notebook = load_course(REPO).model.lab(LAB).notebook
    return (root / "feedback" / learner / LAB / notebook.replace(".ipynb", ".html")).read_text()


def page_text(page: str) -> str:
    """The text of an HTML page as a reader sees it: tags dropped, entities decoded."""
    return html.unescape(re.sub(r"<[^>]+>", "", page))


def grading_cell(root: Path, learner: str):
    notebook = load_course(REPO).model.lab(LAB).notebook
    nb = nbformat.read(root / "autograded" / learner / LAB / notebook, as_version=4)
    return nb.cells[-1]


def test_gradebook_scores_come_from_the_evidence(course_dir, lab01_evidence):
    points = load_course(REPO).model.lab(LAB).points
    assert gradebook_score(course_dir, "complete") == (points, points)
    partial, max_score = gradebook_score(course_dir, "partial")
    expected = lab01_evidence.failing.scaled
    assert max_score == points and 0 < expected < points
    assert partial == pytest.approx(expected, abs=0.01)
    # the same partial credit the learner saw in the notebook when the evidence was recorded
    assert partial == pytest.approx(lab01_evidence.failing.cell_score, abs=0.01)
    assert gradebook_score(course_dir, "missing") == (0.0, points)


def test_autograded_grading_cells_write_nothing_to_stderr_and_raise_nothing(course_dir):
    for learner in LEARNERS:
        cell = grading_cell(course_dir, learner)
        assert cell.source == f'from kubelab.notebook import grade\ngrade("{LAB}")'
        kinds = [(o.output_type, o.get("name")) for o in cell.outputs]
        assert ("stream", "stderr") not in kinds and not any(k == "error" for k, _ in kinds), (learner, cell.outputs)
        assert any(o.output_type == "execute_result" for o in cell.outputs)


def test_missing_evidence_scores_zero_with_one_line_reason(course_dir):
    cell = grading_cell(course_dir, "missing")
    shown = [o["data"]["text/html"] for o in cell.outputs if "text/html" in o.get("data", {})]
    assert len(shown) == 1 and "\n" not in shown[0]
    assert "no evidence in this submission" in shown[0] and "score 0 of 10" in shown[0]
    page = feedback_html(course_dir, "missing")
    assert "no evidence in this submission" in page and "most recent call last" not in page


def test_feedback_shows_hints_and_expected_vs_actual(course_dir, lab01_evidence):
    page = feedback_html(course_dir, "partial")
    text = page_text(page)  # nbconvert re-serializes the HTML output: compare what a reader sees
    failed = [c for c in lab01_evidence.failing.result["checks"] if c["status"] == "fail"]
    assert failed
    for c in failed:
        row = f"{c['title']}{c['node']}"
        assert row in text, c["check"]
        note = f"note {c['message']}" if c.get("message") else ""  # what the grader looked at, when it said
        assert f"expected {c['expected']}actual {c['actual']}{note}hint {c['hint']}" in text, c["check"]
    assert "<b>expected</b>" in page and "<b>actual</b>" in page and "<b>hint</b>" in page
    assert "Graded from the evidence recorded" in page
    passing = lab01_evidence.passing.result
    assert f"{passing['max_score']:g}/{passing['max_score']:g}</span>" in feedback_html(course_dir, "complete")


def test_feedback_shows_none_of_the_graders_code(course_dir):
    grader_source = (REPO / "graders" / "lab01_prepare_nodes.py").read_text()
    for learner in LEARNERS:
        page = feedback_html(course_dir, learner)
        for word in GRADER_CODE:
            assert word in grader_source or word == "def test_", word  # the words are really the grader's
            assert word not in page, (learner, word)
        assert "most recent call last" not in page


def test_autograde_touched_no_node(course_dir):
    """%%node cells are not run under autograde, and the grading cell replays: no SSH anywhere."""
    cell_sources = [c for c in nbformat.read(course_dir / "autograded" / "partial" / LAB /
                                              load_course(REPO).model.lab(LAB).notebook, as_version=4).cells
                    if c.cell_type == "code" and c.source.startswith("%%node")]
    assert cell_sources
    for c in cell_sources:
        text = "".join(o.get("text", "") for o in c.outputs if o.output_type == "stream")
        assert "not run while nbgrader autogrades" in text


# -- the grading cell's modes, called as the notebook calls it ------------------------------------

def grading_cell_notebook(folder: Path) -> Path:
    """The lab's notebook reduced to its grading cell (nbgrader metadata and all), in `folder`."""
    source = load_course(REPO).solution_path(LAB)
    nb = nbformat.read(source, as_version=4)
    nb.cells = nb.cells[-1:]
    assert nb.cells[0].source == f'from kubelab.notebook import grade\ngrade("{LAB}")'
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / source.name
    nbformat.write(nb, path)
    return path


def run_grading_cell(folder: Path, env: dict[str, str]):
    """The grading cell run in a real kernel whose working folder is `folder` (as Jupyter runs it there)."""
    nb = nbformat.read(grading_cell_notebook(folder), as_version=4)
    drop = () if "NBGRADER_EXECUTION" in env else ("NBGRADER_EXECUTION",)  # none: the learner's side
    return execute_notebook(nb, folder, env, allow_errors=True, drop=drop).cells[0]


def test_validate_replays_existing_evidence_and_grades_live_without_it(lab01_evidence, tmp_path):
    """The real `nbgrader validate` on the grading cell, with nodes that refuse every connection: with the
    learner's evidence beside the notebook it passes from the evidence (live it could not) and leaves the file
    as it was; without it, it grades live and fails with the one line, writing no evidence."""
    unreachable = tmp_path / "unreachable.ssh"
    unreachable.write_text("".join(f"Host {n}\n  HostName 127.0.0.1\n  Port 1\n  User vagrant\n"
                                   "  StrictHostKeyChecking no\n" for n in ("master", "worker")))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KUBELAB_", "NBGRADER_"))}
    env.update(KUBELAB_COURSE=str(REPO), KUBELAB_SSH_CONFIG=str(unreachable), JUPYTER_NO_CONFIG="1",
               JUPYTER_CONFIG_DIR=str(tmp_path / ".jupyter"), JUPYTER_DATA_DIR=str(tmp_path / ".jupyter-data"),
               PATH=os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]))

    def validate(folder: Path) -> str:
        notebook = grading_cell_notebook(folder)
        p = subprocess.run([str(Path(sys.executable).parent / "nbgrader"), "validate", notebook.name], cwd=folder,
                           env=env, capture_output=True, text=True, timeout=600)
        assert p.returncode == 0, p.stdout + p.stderr  # nbgrader validate reports a failing cell on stdout
        return p.stdout

    with_evidence = tmp_path / "handed-in"
    with_evidence.mkdir()
    shutil.copy2(lab01_evidence.passing.evidence, with_evidence / "lab01.evidence.json")
    out = validate(with_evidence)
    assert "Success! Your notebook passes all the tests." in out, out
    assert (with_evidence / "lab01.evidence.json").read_bytes() == lab01_evidence.passing.evidence.read_bytes()

    out = validate(tmp_path / "not-run")
    assert "VALIDATION FAILED ON 1 CELL(S)!" in out and "could not be graded completely" in out, out
    assert "Traceback" not in out
    assert not (tmp_path / "not-run" / "lab01.evidence.json").exists(), "an incomplete live run writes no evidence"


def test_autograde_of_tampered_evidence_scores_zero_with_the_reason(lab01_evidence, tmp_path):
    """The grading cell in a real kernel under NBGRADER_EXECUTION=autograde, beside evidence edited after it was
    recorded: it returns 0.0 and shows the one-line reason (HTML), nothing on stderr."""
    data = json.loads(lab01_evidence.passing.evidence.read_text())
    data["result"]["checks"][0]["status"] = "pass"
    data["nodes"]["master"][0]["stdout"] = "edited"
    (tmp_path / "lab01.evidence.json").write_text(json.dumps(data))
    cell = run_grading_cell(tmp_path, {"KUBELAB_COURSE": str(REPO), "NBGRADER_EXECUTION": "autograde"})
    results = [o for o in cell.outputs if o.output_type == "execute_result"]
    assert results and results[0]["data"]["text/plain"] == "0.0", cell.outputs
    shown = [o["data"]["text/html"] for o in cell.outputs if o.output_type == "display_data"]
    assert len(shown) == 1 and "modified after it was recorded" in shown[0] and "score 0 of 10" in shown[0], shown
    assert not [o for o in cell.outputs if o.output_type == "error" or o.get("name") == "stderr"], cell.outputs


def test_live_grading_writes_evidence_next_to_the_notebook_but_never_into_solutions(twins, tmp_path):
    """nbgrader copies a source folder's other files into the release and over every submission: an
    evidence file left in solutions/ would be handed to every learner. The grading cell, run live in a real
    kernel, writes none there, and writes one next to any other notebook."""
    course = tmp_path / "course"
    for name in ("course.yaml", "nbgrader_config.py"):
        (course / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / name, course / name)
    shutil.copytree(REPO / "graders", course / "graders", ignore=shutil.ignore_patterns("__pycache__"))
    # the score the twins' state implies, whatever an earlier module left: the engine grading the same twins, here
    # while a thread has the kernels grade (grading only reads the twins, so all three see the same state; each
    # grading of fresh twins waits out its polling checks, ~30 s). pytest (live grading) stays on the main thread.
    loaded = load_course(course)
    env = {"KUBELAB_COURSE": str(course), "KUBELAB_SSH_CONFIG": str(twins.ssh_config_file())}
    folders = (course / "solutions" / LAB, course / "labs" / LAB)
    with ThreadPoolExecutor(max_workers=1) as pool:
        kernels = pool.submit(lambda: {folder: run_grading_cell(folder, env) for folder in folders})
        target = SshConfigTarget(loaded, twins.ssh_config_file())
        try:
            now = run_lab(loaded, LAB, target)
        finally:
            target.close()
        cells = kernels.result()
    implied = round(now.score / now.max_score * loaded.model.lab(LAB).points, 2)
    for folder, cell in cells.items():
        results = [o for o in cell.outputs if o.output_type == "execute_result"]
        assert results and float(results[0]["data"]["text/plain"]) == implied, \
            (cell.outputs, [(c.id, str(c.status)) for c in now.checks])
    assert not (course / "solutions" / LAB / "lab01.evidence.json").exists()
    written = course / "labs" / LAB / "lab01.evidence.json"
    assert json.loads(written.read_text())["lab"] == LAB
