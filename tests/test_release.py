"""Learner notebooks: nbgrader's generate_assignment, run by kubelab.notebook.release, gives exactly the
committed labs/; the learner version holds no solution and keeps the grading cell; nbgrader_config.py
says what the course layout needs.

Proof: live — the real nbgrader 0.9 command runs on the real solution notebooks of this repository."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import nbformat
import pytest
import yaml
from traitlets.config.loader import PyFileConfigLoader

from kubelab.course import load_course
from kubelab.notebook.release import generate_student_versions, main

REPO = Path(__file__).resolve().parents[1]
STUB = "# YOUR COMMANDS HERE"
GRADE_SOURCE = 'from kubelab.notebook import grade\ngrade("{lab}")'
BEGIN, END = "### BEGIN SOLUTION", "### END SOLUTION"


@pytest.fixture(scope="module")
def course():
    return load_course(REPO)


@pytest.fixture(scope="module")
def generated(course, tmp_path_factory):
    """The learner versions, regenerated from solutions/ into a temporary folder."""
    before = sorted(p.name for p in REPO.iterdir())
    out = tmp_path_factory.mktemp("labs")
    written = generate_student_versions(course, out)
    after = sorted(p.name for p in REPO.iterdir())
    return out, written, before, after


def _solution_lines(source: str) -> list[str]:
    """The non-blank lines between BEGIN and END SOLUTION."""
    lines, inside = [], False
    for line in source.splitlines():
        if line.strip() == BEGIN:
            inside = True
        elif line.strip() == END:
            inside = False
        elif inside and line.strip():
            lines.append(line.strip())
    return lines


def test_regenerating_gives_the_committed_labs_byte_for_byte(course, generated):
    out, written, _, _ = generated
    assert written, "nothing was generated"
    for lab in course.model.labs:
        assert (out / lab.id / lab.notebook) in written
    for path in written:
        committed = REPO / "labs" / path.relative_to(out)
        assert committed.is_file(), f"{committed} is not in the repository: run `python -m kubelab.notebook.release`"
        assert path.read_bytes() == committed.read_bytes(), \
            f"{committed} differs from what solutions/ generates: run `python -m kubelab.notebook.release`"


def test_generated_json_is_canonical(generated):
    _, written, _, _ = generated
    for path in written:
        text = path.read_text(encoding="utf-8")
        nb = nbformat.reads(text, as_version=nbformat.NO_CONVERT)
        assert nbformat.writes(nb) + "\n" == text  # sorted keys, indent 1, final newline: stable diffs
        nbformat.validate(nb)


def test_generating_writes_nothing_into_the_course_but_the_output(generated):
    _, _, before, after = generated
    assert after == before  # no gradebook.db, .nbgrader.log, release/ or source/ left in the checkout


def test_learner_version_has_no_solution_and_keeps_the_grading_cell(course):
    for lab in course.model.labs:
        source = nbformat.read(course.solution_path(lab.id), as_version=4)
        student = nbformat.read(course.student_path(lab.id), as_version=4)
        assert [c.id for c in student.cells] == [c.id for c in source.cells]
        solution_cells = [c for c in source.cells if c.metadata.get("nbgrader", {}).get("solution")]
        assert solution_cells, f"{lab.id} has no solution cell"
        student_by_id = {c.id: c for c in student.cells}
        for cell in solution_cells:
            hidden = _solution_lines(cell.source)
            assert hidden, f"solution cell {cell.id} has no {BEGIN} region"
            learner = student_by_id[cell.id].source
            for line in hidden:
                assert line not in learner, f"solution text leaked into {lab.id}/{cell.id}: {line}"
            assert STUB in learner
            first = cell.source.splitlines()[0]
            if first.startswith("%%node"):  # the cell still runs on the nodes, with only the stub left
                assert learner == f"{first}\n{STUB}"
        full = nbformat.writes(student)
        assert BEGIN not in full and END not in full
        if lab.id == "lab01":
            learner_code = "\n".join(student_by_id[c.id].source for c in solution_cells)
            for command in ("swapoff", "modprobe", "sysctl -p", "modules-load.d", "tee"):
                assert command not in learner_code

        last = student.cells[-1]
        meta = last.metadata["nbgrader"]
        assert last.cell_type == "code" and last.source == GRADE_SOURCE.format(lab=lab.id)
        assert meta["grade"] is True and meta["solution"] is False and meta["locked"] is True
        assert meta["points"] == lab.points and meta["grade_id"] == f"grade_{lab.id}"
        assert last.metadata.get("editable") is False and last.metadata.get("deletable") is False


def test_lab01_source_takes_nodes_from_course_yaml_not_from_the_notebook(course):
    nb = nbformat.read(course.solution_path("lab01"), as_version=4)
    code = [c.source for c in nb.cells if c.cell_type == "code"]
    assert code[0].splitlines()[:2] == ["%load_ext kubelab.notebook", "%nodes"]
    for node in course.model.nodes:
        for src in code:
            assert str(node.ip) not in src, "a node IP is hard-coded in a code cell"
    for src in code:
        if src.startswith("%%node"):
            assert src.split()[1] == "all", "Lab 1 prepares every node"
    assert any("```mermaid" in c.source for c in nb.cells if c.cell_type == "markdown")
    for c in nb.cells:
        if c.cell_type == "markdown":
            assert c.metadata["nbgrader"]["locked"] is True


def test_nbgrader_config(tmp_path, monkeypatch):
    monkeypatch.setenv("KUBELAB_NBGRADER_HOME", str(tmp_path / "nbg"))
    loader = PyFileConfigLoader("nbgrader_config.py", path=str(REPO))
    c = loader.load_config()
    assert Path(c.CourseDirectory.root) == REPO
    assert c.CourseDirectory.source_directory == "solutions"
    assert c.CourseDirectory.release_directory == "labs"
    assert c.CourseDirectory.course_id == yaml.safe_load((REPO / "course.yaml").read_text())["course"]["id"]
    assert c.ClearSolutions.code_stub == {"python": STUB}
    assert c.ExecutePreprocessor.timeout == 600
    db = Path(re.sub(r"^sqlite:///", "", c.CourseDirectory.db_url))
    assert db == tmp_path / "nbg" / "gradebook.db"
    assert Path(c.Exchange.root) == tmp_path / "nbg" / "exchange"
    for p in (db, Path(c.Exchange.root)):
        assert REPO not in p.parents


def test_missing_source_notebook_is_one_clear_error(tmp_path, capsys):
    root = tmp_path / "course"
    root.mkdir()
    data = yaml.safe_load((REPO / "course.yaml").read_text())
    data["labs"].append({"id": "lab99", "title": "Not written yet", "notebook": "lab99_none.ipynb",
                         "grader": "lab99_none.py", "depends_on": [], "points": 1})
    (root / "course.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    shutil.copy2(REPO / "nbgrader_config.py", root)
    shutil.copytree(REPO / "solutions", root / "solutions")
    assert main(["--course", str(root), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "lab99" in err and "lab99_none.ipynb" in err and "fix:" in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()


def test_evidence_left_in_solutions_is_never_released(tmp_path):
    """A solution notebook graded in solutions/ leaves its evidence there: learners must not receive it."""
    root = tmp_path / "course"
    root.mkdir()
    data = yaml.safe_load((REPO / "course.yaml").read_text())
    data["labs"] = data["labs"][:1]
    (root / "course.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    shutil.copy2(REPO / "nbgrader_config.py", root)
    shutil.copytree(REPO / "solutions" / "lab01", root / "solutions" / "lab01")
    (root / "solutions" / "lab01" / "lab01.evidence.json").write_text("{}")
    (root / "solutions" / "lab01" / "notes.txt").write_text("kept")
    assert main(["--course", str(root), "--out", str(tmp_path / "out")]) == 0
    released = {p.name for p in (tmp_path / "out" / "lab01").iterdir()}
    assert "notes.txt" in released and "lab01.evidence.json" not in released
