"""Answers the grader recomputes: `%answer` in a real Jupyter kernel writes them on the control-plane twin, the
engine's `answers` fixture reads them back through the grading target, live and from evidence.

Proof: live — a notebook run by nbclient in an ipykernel reaches the lab twins (real systemd + sshd nodes) over
SSH as a learner's kernel reaches the VMs; the grader is a throwaway lab whose check compares the answer with a
value it reads from the node itself (the master's machine-id), so a right and a wrong answer are both real.
The file format's edge cases are unit cases."""

from __future__ import annotations

import json
import subprocess
from datetime import datetime, timezone
from pathlib import Path

import pytest

from helpers import make_course
from kubelab import answers as fmt
from kubelab.course import load_course
from kubelab.engine.runner import run_lab
from kubelab.engine.targets import SshConfigTarget
from kubelab.errors import UsageError
from kubelab.evidence import record_lab, replay_lab, save
from nbclient.exceptions import CellExecutionError

from test_notebook_magic import client_for, notebook

REPO = Path(__file__).resolve().parents[1]

GRADER = '''
from kubelab.engine import check

@check("The machine ID you found is the master's", on="cluster", points=1,
       hint="cat /etc/machine-id on the master")
def test_machine_id(answers, hosts):
    live = hosts["master"].run("cat /etc/machine-id").stdout.strip()
    answers.expect("machine_id", live, where="/etc/machine-id on the master")
'''


def run(nb, ssh_config, monkeypatch, course) -> CellExecutionError | None:
    client = client_for(nb, ssh_config, monkeypatch)
    monkeypatch.setenv("KUBELAB_COURSE", str(course.path))  # the throwaway course, not the repository's
    try:
        client.execute()
    except CellExecutionError as e:
        return e
    return None


def _ssh(twins, node: str, cmd: str) -> subprocess.CompletedProcess:
    return subprocess.run(["ssh", "-F", str(twins.ssh_config_file()), node, cmd],
                          capture_output=True, text=True, timeout=60)


@pytest.fixture(scope="module")
def lab90(tmp_path_factory):
    return load_course(make_course(tmp_path_factory.mktemp("answers"), GRADER))


def _grade(twins, course):
    target = SshConfigTarget(course, twins.ssh_config_file())
    try:
        return run_lab(course, "lab90", target).checks[0]
    finally:
        target.close()


def test_answer_recorded_in_a_notebook_is_graded_live_and_from_evidence(twins, lab90, monkeypatch, tmp_path):
    """live on twins: no answer → fails 'none recorded'; a wrong one → fails showing the learner's value and never
    the live one; `%answer` with the right value (a Python variable, expanded by IPython) → passes, and the
    recording replays to the same result."""
    _ssh(twins, "master", "rm -rf ~/.kubelab/answers")
    missing = _grade(twins, lab90)
    assert (str(missing.status), missing.actual) == ("fail", "none recorded"), missing
    assert "%answer lab90 machine_id" in missing.expected

    err = run(notebook("%load_ext kubelab.notebook", "%answer lab90 machine_id 0123456789abcdef"),
              twins.ssh_config_file(), monkeypatch, lab90)
    assert err is None, err
    live = _ssh(twins, "master", "cat /etc/machine-id").stdout.strip()
    wrong = _grade(twins, lab90)
    assert (str(wrong.status), wrong.actual) == ("fail", "0123456789abcdef"), wrong
    assert live not in json.dumps(wrong.to_dict())  # the failure never gives the answer away

    err = run(notebook("%load_ext kubelab.notebook", f"mid = {live!r}",
                       "%answer lab90 machine_id $mid", "%answer lab90 other_key kept"),
              twins.ssh_config_file(), monkeypatch, lab90)
    assert err is None, err
    stored = json.loads(_ssh(twins, "master", "cat ~/.kubelab/answers/lab90.json").stdout)
    assert {k: v["value"] for k, v in stored.items()} == {"machine_id": live, "other_key": "kept"}
    right = _grade(twins, lab90)
    assert str(right.status) == "pass", right

    target = SshConfigTarget(lab90, twins.ssh_config_file())
    try:
        result, evidence = record_lab(lab90, "lab90", target)
    finally:
        target.close()
    assert str(result.checks[0].status) == "pass"
    path = save(evidence, tmp_path / "lab90.evidence.json")
    replayed, _ = replay_lab(lab90, "lab90", path)
    assert str(replayed.checks[0].status) == "pass"


def test_corrupt_answers_file_fails_with_how_to_fix(twins, lab90):
    """live on twins: an answers file that is not ours fails the check naming the file and the fix."""
    _ssh(twins, "master", "mkdir -p ~/.kubelab/answers && echo '{oops' > ~/.kubelab/answers/lab90.json")
    try:
        bad = _grade(twins, lab90)
    finally:
        _ssh(twins, "master", "rm -rf ~/.kubelab/answers")
    assert str(bad.status) == "fail", bad
    assert "not JSON" in bad.actual and "record your answers again" in bad.actual


def test_answer_magic_refuses_bad_input_in_one_line(twins, lab90, monkeypatch):
    """live kernel: an unknown lab, a bad key, a missing value: one line each, no traceback."""
    for line, wanted in [("%answer lab99 key v", "lab99"), ("%answer lab90 Bad-Key v", "not an answer key"),
                         ("%answer lab90 key", "needs a lab, a key and a value")]:
        err = run(notebook("%load_ext kubelab.notebook", line), twins.ssh_config_file(), monkeypatch, lab90)
        assert err is not None and wanted in str(err), (line, err)
        assert "Traceback" not in str(err), line


def test_file_format_edges():
    """unit: keys, values and files the format refuses or repairs."""
    with pytest.raises(UsageError):
        fmt.check_key("1abc")
    with pytest.raises(UsageError):
        fmt.normalize("   ")
    with pytest.raises(UsageError):
        fmt.normalize("x" * (fmt.MAX_VALUE_CHARS + 1))
    now = datetime(2026, 11, 30, tzinfo=timezone.utc)
    text = fmt.merged("{not json", "rev", " 496 \n", now=now)
    assert fmt.parse(text) == {"rev": "496"}
    assert fmt.parse(fmt.merged(text, "user", "alice", now=now)) == {"rev": "496", "user": "alice"}
    for bad in ("[]", '{"rev": 496}', '{"Rev": {"value": "1"}}'):
        with pytest.raises(ValueError):
            fmt.parse(bad)
