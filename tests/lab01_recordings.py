"""Lab 1 evidence recorded for real on the lab twins, by the notebooks' own grading cell.

`record_lab01` runs, with nbclient and a real kernel, exactly what a learner runs:

- the learner notebook (labs/lab01) on fresh twins, its tasks left undone — the "Check yourself" cells
  fail, the grading cell grades the untouched nodes and writes ``lab01.evidence.json`` next to the
  notebook: the *failing* (partial credit) state;
- then the solution notebook (solutions/lab01, copied out of the repository) — its `%%node` cells
  prepare the nodes, its grading cell writes the *passing* state's evidence.

Each notebook runs in its own folder, which is what a learner hands in: the executed notebook and its
evidence. Used by test_nbgrader_e2e.py and test_class_grading.py through the `lab01_evidence` fixture."""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import nbformat

from helpers import REPO, execute_notebook
from kubelab.course import load_course

EVIDENCE = "lab01.evidence.json"


@dataclass(frozen=True)
class Recording:
    folder: Path            # the learner's folder: the executed notebook and its evidence
    notebook: Path
    evidence: Path
    cell_score: float       # what the grading cell returned (nbgrader's partial credit)
    result: dict            # the live LabResult stored in the evidence

    @property
    def scaled(self) -> float:
        points = load_course(REPO).model.lab("lab01").points
        return round(self.result["score"] / self.result["max_score"] * points, 2)


@dataclass(frozen=True)
class Lab01Evidence:
    failing: Recording
    passing: Recording


def run_notebook(source: Path, folder: Path, ssh_config: Path) -> Recording:
    folder.mkdir(parents=True, exist_ok=True)
    notebook = folder / source.name
    shutil.copyfile(source, notebook)
    nb = nbformat.read(notebook, as_version=4)
    env = {"KUBELAB_SSH_CONFIG": str(ssh_config), "KUBELAB_COURSE": str(REPO)}
    # allow_errors: in the learner notebook the "Check yourself" cells fail, as they would for a learner
    # who skipped the tasks; the grading cell still runs. No NBGRADER_EXECUTION: the learner's side, live.
    execute_notebook(nb, folder, env, allow_errors=True, drop=("NBGRADER_EXECUTION",))
    nbformat.write(nb, notebook)
    grading = nb.cells[-1]
    assert 'grade("lab01")' in grading.source
    problems = [o for o in grading.outputs if o.output_type == "error"
                or (o.output_type == "stream" and o.name == "stderr")]
    assert not problems, f"the grading cell of {source.name} failed: {problems}"
    scores = [float(o["data"]["text/plain"]) for o in grading.outputs if o.output_type == "execute_result"]
    evidence = folder / EVIDENCE
    assert scores and evidence.is_file(), "the grading cell must return a score and write the evidence"
    return Recording(folder, notebook, evidence, scores[0], json.loads(evidence.read_text())["result"])


def record_lab01(ssh_config: Path, tmp: Path) -> Lab01Evidence:
    course = load_course(REPO)
    failing = run_notebook(course.student_path("lab01"), tmp / "failing", ssh_config)
    passing = run_notebook(course.solution_path("lab01"), tmp / "passing", ssh_config)
    assert failing.result["status"] == "failed" and 0 < failing.result["score"] < failing.result["max_score"]
    assert passing.result["status"] == "passed"
    return Lab01Evidence(failing, passing)
