"""`kubelab class grade` never dies on one learner: whatever a learner's folder holds, that learner gets a
row with a status from a fixed set (passed/failed = graded, flagged, missing, error with a one-line
reason), and names are data, never markup.

Proof: evidence recorded for real with this machine standing for every node (the local target, as in
test_evidence.py), copied into a submissions folder next to real odd files made on this machine (a folder,
a looping symlink, a symlink to /dev/zero, a symlink to another learner's evidence, a non-JSON file, a
forged file with its digest recomputed); graded by the real command (in process, tests/cli_inproc.py, with
its real worker processes). The unreadable file is made unreadable for real: the command runs as the
unprivileged user `nobody` (setpriv) against a file only root may read."""

from __future__ import annotations

import csv
import json
import os
import shutil
import tempfile
from pathlib import Path

import pytest

from cli_inproc import run
from lab90_graders import LINUX_AND_FILE
from helpers import make_course
from kubelab.course import load_course
from kubelab.engine.targets import LocalTarget
from kubelab.evidence import record_lab, save
from test_evidence_honesty import forge

GRADER = LINUX_AND_FILE
LAB = "lab90"
EV = f"{LAB}.evidence.json"
STATUSES = {"passed", "failed", "flagged", "missing", "error"}


@pytest.fixture(scope="module")
def klass(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("odd-class")
    answer = tmp / "answer"
    answer.write_text("no")
    course = load_course(make_course(tmp, GRADER.format(path=str(answer))))
    good = save(record_lab(course, LAB, LocalTarget(course))[1], tmp / "good.json")
    subs = tmp / "submitted"

    def put(rel: str, source: Path = good) -> Path:
        path = subs / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, path)
        return path

    put(f"alice/{LAB}/{EV}")
    put(f"Jöhn Dœ/{LAB}/{EV}")
    forge(put(f"bob/{LAB}/{EV}"), lambda d: [o.update(stdout="yes\n") for o in d["nodes"]["master"]
                                              if "answer" in o["cmd"]])
    forge(put(f"carol/{LAB}/{EV}"), lambda d: d.update(identity={"nodes": [1, 2], "cluster": "x"}))
    forge(put(f"mike/{LAB}/{EV}"), lambda d: d.update(lab="[/x]"))
    put(f"[bold]mallory/{LAB}/{EV}")
    put(f"frank/{LAB}/{EV}")
    put("frank.json")
    put(f"gina/{LAB}/{EV}")
    put(f"gina/old/{EV}")
    (subs / "hank" / EV).mkdir(parents=True)
    (subs / "ivan").mkdir()
    os.symlink(EV, subs / "ivan" / EV)
    (subs / "judy").mkdir()
    os.symlink("/dev/zero", subs / "judy" / EV)
    (subs / "kate.json").write_text("hello, this is not JSON\n")
    (subs / "leo").mkdir()
    os.symlink(subs / "alice" / LAB / EV, subs / "leo" / EV)
    (subs / "nina" / LAB).mkdir(parents=True)
    (subs / "nina" / LAB / "notebook.ipynb").write_text("{}")
    out = tmp / "out"
    r = run("class", "grade", "--lab", LAB, "--submissions", subs, "--out", out, "--course", course.root,
            "--jobs", "2", env={"COLUMNS": "400"})
    rows = {row["learner"]: row for row in csv.DictReader(open(out / "gradebook.csv", encoding="utf-8"))}
    return {"run": r, "rows": rows, "out": out, "subs": subs}


def test_every_learner_has_a_row_and_the_run_ends(klass):
    r, rows = klass["run"], klass["rows"]
    assert r.crash is None, r.crash
    assert r.code == 3, r.output  # some learners could not be graded: their reasons are in the report
    assert set(rows) == {"alice", "Jöhn Dœ", "bob", "carol", "mike", "[bold]mallory", "frank", "gina", "hank",
                         "ivan", "judy", "kate", "leo", "nina"}
    assert {row["status"] for row in rows.values()} <= STATUSES


@pytest.mark.parametrize("learner, status, words", [
    ("alice", "failed", "1 of 3 checks not passed"),
    ("Jöhn Dœ", "failed", "1 of 3 checks not passed"),
    ("bob", "flagged", "the replayed result differs from the result stored at recording"),
    ("carol", "flagged", "identity is missing or malformed"),
    ("mike", "error", "is the evidence of [/x], not of lab90"),
    ("[bold]mallory", "error", "does not name a learner"),
    ("frank", "error", "handed in both"),
    ("gina", "error", "two evidence files for lab90"),
    ("hank", "error", "is a folder, not an evidence file"),
    ("ivan", "error", "is a symbolic link that loops"),
    ("judy", "error", "is not a regular file"),
    ("kate", "error", "is not JSON"),
    ("leo", "error", "outside leo's own folder"),
    ("nina", "missing", "no lab90.evidence.json handed in"),
])
def test_each_odd_submission_is_that_learners_row(klass, learner, status, words):
    row = klass["rows"][learner]
    assert row["status"] == status and words in row["reason"], row
    assert "\n" not in row["reason"] and "Traceback" not in row["reason"]


def test_both_places_are_named(klass):
    subs = klass["subs"]
    assert str(subs / "frank") in klass["rows"]["frank"]["reason"] and "frank.json" in klass["rows"]["frank"]["reason"]
    gina = klass["rows"]["gina"]["reason"]
    assert str(subs / "gina" / LAB / EV) in gina and str(subs / "gina" / "old" / EV) in gina


def test_flagged_learners_keep_their_score_and_appear_in_the_report(klass):
    bob = klass["rows"]["bob"]
    assert float(bob["score"]) == 10.0, "graded: the forged observations replay to full marks, and are flagged"
    report = json.loads((klass["out"] / "report.json").read_text())
    assert {f["learner"] for f in report["flagged"]} == {"bob", "carol"}
    assert report["by_status"]["flagged"] == 2
    md = (klass["out"] / "report.md").read_text()
    assert "## Flagged evidence" in md and "| bob | 10 |" in md
    assert "flagged: bob:" in klass["run"].stdout


def test_names_and_fields_are_printed_as_data(klass):
    """Was: rich.errors.MarkupError on `[/x]` in a lab field, and `[bold]` eaten as markup in a name."""
    out = klass["run"].stdout
    assert "[bold]mallory" in out and "[/x]" in out


def test_copy_detection_survives_a_wrong_shaped_identity(klass):
    """Was: carol's identity {"nodes": [1, 2]} killed the whole run at copy detection, on every rerun.
    alice, Jöhn Dœ and bob hand in copies of one recording: they share its machine-id, and are found."""
    report = json.loads((klass["out"] / "report.json").read_text())
    shared = [c for c in report["copies"] if c["kind"] == "machine-id"]
    assert shared and {"alice", "Jöhn Dœ", "bob"} <= set(shared[0]["learners"])
    assert "carol" not in shared[0]["learners"]


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to take the identity of nobody")
def test_a_file_the_instructor_cannot_read_is_that_learners_error():
    """Was: PermissionError traceback aborting every learner. Real: the submissions are listed as the
    unprivileged user `nobody` (os.seteuid, in this process) while one file is mode 0600 root; the class is
    then graded from what that listing found."""
    from kubelab.classroom.learners import find_submissions
    from kubelab.classroom.run import grade_class

    base = Path(tempfile.mkdtemp(prefix="kubelab-perm-", dir="/tmp"))  # pytest's tmp is root-only
    try:
        os.chmod(base, 0o755)
        answer = base / "answer"
        answer.write_text("yes")
        course = load_course(make_course(base, GRADER.format(path=str(answer))))
        good = save(record_lab(course, LAB, LocalTarget(course))[1], base / "good.json")
        subs = base / "submitted"
        for learner in ("olga", "pete"):
            (subs / learner).mkdir(parents=True)
            shutil.copyfile(good, subs / learner / EV)
            os.chmod(subs / learner, 0o755)
            os.chmod(subs / learner / EV, 0o644)
        os.chmod(subs, 0o755)
        os.chmod(subs / "pete" / EV, 0o600)
        os.seteuid(65534)
        try:
            inputs = find_submissions(subs, LAB)
        finally:
            os.seteuid(0)
        run = grade_class(course, LAB, inputs, base / "out", jobs=1)
        rows = {r["learner"]: r for r in run.records}
        assert rows["olga"]["status"] == "passed", rows["olga"]
        assert rows["pete"]["status"] == "error" and "permission denied" in rows["pete"]["reason"], rows["pete"]
    finally:
        shutil.rmtree(base, ignore_errors=True)
