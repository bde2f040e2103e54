"""Evidence: recorded observations replay to the same result; damaged evidence is a one-line error;
secrets never enter the file.

Proof: real `kubelab grade --record/--replay` runs with this machine standing for every node (the local
target); the twins' record/replay of Lab 1 is in test_lab01.py."""

from __future__ import annotations

import json

import pytest

from lab90_graders import LINUX_AND_FILE
from helpers import kubelab, make_course
from kubelab.course import load_course
from kubelab.engine.targets import LocalTarget
from kubelab.errors import UsageError
from kubelab.evidence import comparable, load, record_lab, replay_and_verify, replay_lab, save
from kubelab.evidence.redact import REDACTED, find_secrets, redact

GRADER = LINUX_AND_FILE + '''
@check("Secrets are read", on="worker", points=1, hint="h")
def test_secrets(host):
    host.run("cat {secrets}")
'''

PEM = "-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEAxyz\nabc==\n-----END RSA PRIVATE KEY-----"
SECRETS = f"""{PEM}
users:
- name: kubernetes-admin
  user:
    client-certificate-data: LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0t
    client-key-data: LS0tLS1CRUdJTiBSU0EgUFJJVkFURSBLRVktLS0tLQo=
    token: abcdef.0123456789abcdef
kubeadm join 192.168.56.10:6443 --token abcdef.0123456789abcdef --discovery-token-ca-cert-hash sha256:1234
eyJhbGciOiJSUzI1NiIsImtpZCI6IiJ9.eyJpc3MiOiJrdWJlcm5ldGVzL3NlcnZpY2VhY2NvdW50In0.c2lnbmF0dXJlX2hlcmU
http://127.0.0.1:8888/lab?token=0123456789abcdef0123456789abcdef0123456789abcdef
"""


@pytest.fixture
def setup(tmp_path):
    answer = tmp_path / "answer"
    secrets = tmp_path / "secrets.txt"
    secrets.write_text(SECRETS)
    root = make_course(tmp_path, GRADER.format(path=str(answer), secrets=str(secrets)))
    return load_course(root), answer


def test_replay_gives_the_live_result_for_failing_and_passing_states(setup, tmp_path):
    course, answer = setup
    for state, content in (("failing", "no"), ("passing", "yes")):
        answer.write_text(content)
        live, evidence = record_lab(course, "lab90", LocalTarget(course))
        path = save(evidence, tmp_path / f"{state}.json")
        replayed, _, flags = replay_and_verify(course, "lab90", path)
        # the result stored in the file, read back, against the replay: what honesty.verify compares too
        assert comparable(replayed.to_dict()) == comparable(load(path).result) and flags == []
        assert comparable(load(path).result) == comparable(live.to_dict())
        assert replayed.status == ("failed" if state == "failing" else "passed")
    # replay never touches the node: the state changed since, the replayed result did not
    answer.write_text("no")
    assert replay_lab(course, "lab90", tmp_path / "passing.json")[0].status == "passed"


def test_cli_record_and_replay_exit_codes(setup, tmp_path):
    course, answer = setup
    answer.write_text("no")
    ev = tmp_path / "ev.json"
    live = kubelab("grade", "lab90", "--local", "--record", str(ev), "--course", str(course.root))
    assert live.returncode == 1 and ev.is_file()
    again = kubelab("grade", "lab90", "--replay", str(ev), "--course", str(course.root))
    assert again.returncode == 1 and "write yes into the file" in again.stdout
    assert f"evidence {ev.name}" in again.stdout


def test_identity_and_provenance_are_recorded(setup):
    course, answer = setup
    answer.write_text("yes")
    _, evidence = record_lab(course, "lab90", LocalTarget(course))
    machine_id = open("/etc/machine-id").read().strip()
    assert evidence.identity["nodes"]["master"]["machine_id"] == machine_id
    assert set(evidence.identity["cluster"]) == {"kube_system_uid", "etcd_cluster_id"}
    assert evidence.course_digest.startswith("sha256:") and evidence.kubelab_version
    assert evidence.recorded_at and evidence.target == "local"


def test_secrets_never_enter_evidence(setup, tmp_path):
    course, answer = setup
    assert len(set(find_secrets(SECRETS))) >= 5, "the scanner must see every kind of secret in the raw text"
    _, evidence = record_lab(course, "lab90", LocalTarget(course))
    text = save(evidence, tmp_path / "ev.json").read_text()
    assert find_secrets(text) == []
    assert "MIIEpAIBAAKCAQEAxyz" not in text and "abcdef.0123456789abcdef" not in text
    assert "0123456789abcdef0123456789abcdef" not in text and "eyJhbGciOiJSUzI1NiIsImtpZCI6IiJ9" not in text
    assert REDACTED in text
    # what is not secret stays readable
    assert "client-certificate-data: LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0t" in text
    assert "sha256:1234" in text


def test_redact_leaves_ordinary_text_alone():
    text = "net.ipv4.ip_forward = 1\nversion 1.36.4\nkube-proxy-abcde\n"
    assert redact(text) == text


def damaged(path, how):
    text = path.read_text()
    if how == "truncated":
        path.write_text(text[: len(text) // 2])
    elif how == "corrupt":
        path.write_bytes(b"\x00\xff" + text.encode()[:100])
    elif how == "wrong-version":
        data = json.loads(text)
        data["version"] = 99
        path.write_text(json.dumps(data))
    elif how == "tampered":
        data = json.loads(text)
        data["nodes"]["master"][0]["stdout"] = "Linux"
        data["result"]["checks"][0]["status"] = "pass"
        path.write_text(json.dumps(data))
    elif how == "not-evidence":
        path.write_text('{"hello": 1}')
    elif how == "missing":
        path.unlink()


@pytest.mark.parametrize("how, words", [
    ("truncated", "is truncated"), ("corrupt", "corrupt"), ("wrong-version", "format version 99"),
    ("tampered", "modified after it was recorded"), ("not-evidence", "not a kubelab evidence file"),
    ("missing", "does not exist"),
])
def test_damaged_evidence_is_one_line_exit_2(setup, tmp_path, how, words):
    course, answer = setup
    path = save(record_lab(course, "lab90", LocalTarget(course))[1], tmp_path / "ev.json")
    damaged(path, how)
    before = path.read_bytes() if path.exists() else None
    p = kubelab("grade", "lab90", "--replay", str(path), "--course", str(course.root))
    assert p.returncode == 2, p.stdout + p.stderr
    assert words in p.stderr and "Traceback" not in p.stderr
    assert len(p.stderr.strip().splitlines()) == 2
    assert (path.read_bytes() if path.exists() else None) == before, "nothing lost: the file is untouched"


def test_missing_observation_is_an_error_not_a_pass_or_zero(setup, tmp_path):
    course, answer = setup
    answer.write_text("yes")
    _, evidence = record_lab(course, "lab90", LocalTarget(course))
    evidence.nodes["master"] = [o for o in evidence.nodes["master"] if "answer" not in o.cmd]
    evidence.nodes.pop("worker")
    path = save(evidence, tmp_path / "ev.json")
    result, _ = replay_lab(course, "lab90", path)
    by_id = {c.id: c for c in result.checks}
    assert by_id["file[master]"].status.value == "error" and "not in evidence" in by_id["file[master]"].message
    assert by_id["linux[worker]"].status.value == "error"
    assert by_id["linux[master]"].status.value == "pass"
    assert result.status == "error" and result.exit_code == 3


def test_evidence_of_another_lab_is_refused(setup, tmp_path):
    course, _ = setup
    path = save(record_lab(course, "lab90", LocalTarget(course))[1], tmp_path / "ev.json")
    with pytest.raises(UsageError, match=r"evidence file .*ev\.json is for lab90, not lab01"):
        replay_lab(load_course(course.root), "lab01", path)
    assert load(path).lab == "lab90"
