"""Evidence an instructor can trust as far as it goes: the forgeries of issue 11 are graded AND flagged.

Proof:
- forgeries: real `kubelab grade --record` runs with this machine standing for every node (the local
  target), then the file edited exactly as a learner would — json + hashlib, the digest recomputed — and
  replayed by the real command (in process, tests/cli_inproc.py);
- consistency of facts seen twice: evidence built here whose observations copy the shape of real output
  (`ip -o -4 addr show`, a v1.29 `kubectl get nodes -o json`, a kubeadm admin.conf, etcd's
  /v3/maintenance/status, a Namespace), with a CA certificate generated here; each case changes one fact
  in one place and must raise exactly its flag, the unchanged evidence none (simulation);
- no false flags on the Lab 4 evidence modelled on real captures (tests/lab04_evidence.py), healthy and
  with each learner mistake."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json

import pytest
import yaml

from cli_inproc import run
from lab90_graders import LINUX_AND_FILE
from helpers import REPO, make_course
from kubelab.course import load_course
from kubelab.engine.results import LabResult
from kubelab.engine.targets import LocalTarget
from kubelab.evidence import record_lab, replay_and_verify, save
from kubelab.evidence.honesty import EXIT_FLAGGED, verify
from kubelab.evidence.model import ApiObservation, CommandObservation, Evidence, course_digest

GRADER = LINUX_AND_FILE + '''
@check("Its hostname is known", on="all", points=1, hint="h")
def test_hostname(host):
    assert host.run("hostname").stdout.strip()
'''


@pytest.fixture
def recorded(tmp_path):
    """A failing recording (the file says no): 4 of 6 points, as recorded on this machine."""
    answer = tmp_path / "answer"
    answer.write_text("no")
    root = make_course(tmp_path, GRADER.format(path=str(answer)))
    course = load_course(root)
    live, evidence = record_lab(course, "lab90", LocalTarget(course))
    assert live.status == "failed" and (live.score, live.max_score) == (4, 6)
    return course, save(evidence, tmp_path / "ev.json")


def forge(path, edit) -> None:
    """What a learner does: edit the JSON, recompute the digest with json + hashlib (model.py documents how)."""
    data = json.loads(path.read_text())
    edit(data)
    body = {k: v for k, v in data.items() if k != "digest"}
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    data["digest"] = "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()
    path.write_text(json.dumps(data))


def replay(course, path, *extra):
    return run("grade", "lab90", "--replay", path, "--course", course.root, *extra)


def test_unedited_evidence_replays_unflagged(recorded):
    """The passing case of every flag below: the real recording, untouched, exits 1 (a check failed), no flag."""
    course, path = recorded
    r = replay(course, path)
    assert r.code == 1 and "flagged" not in r.output, r.output
    assert replay_and_verify(course, "lab90", path)[2] == []


def _answer_yes(data):
    for obs in data["nodes"]["master"]:
        if "answer" in obs["cmd"]:
            obs["stdout"] = "yes\n"


def test_edited_observation_with_recomputed_digest_is_flagged(recorded):
    """Was: a failing recording replayed as full marks, exit 0. Now: the replayed score, exit 4, and why."""
    course, path = recorded
    forge(path, _answer_yes)
    r = replay(course, path)
    assert r.code == EXIT_FLAGGED, r.output
    assert "flagged: the replayed result differs from the result stored at recording (file[master])" in r.stderr
    assert "Traceback" not in r.output


def test_flags_travel_with_the_json_result(recorded, tmp_path):
    course, path = recorded
    forge(path, _answer_yes)
    out = tmp_path / "result.json"
    assert replay(course, path, "--json", out).code == EXIT_FLAGGED
    data = json.loads(out.read_text())
    assert data["score"] == 6 and data["flags"][0].startswith("the replayed result differs")


def test_edited_result_without_the_observations_is_flagged(recorded):
    course, path = recorded

    def full_marks(data):
        for c in data["result"]["checks"]:
            c.update(status="pass", points=c["max_points"], expected=None, actual=None)
    forge(path, full_marks)
    r = replay(course, path)
    assert r.code == EXIT_FLAGGED and "differs from the result stored" in r.stderr, r.output


def test_a_result_of_any_shape_is_flagged_not_a_crash(recorded):
    course, path = recorded
    for odd in ({"checks": [{"id": [1]}, {"id": {"x": 1}}]}, {"checks": "all passed"}, {}):
        forge(path, lambda d: d.update(result=odd))
        r = replay(course, path)
        assert r.crash is None and r.code == EXIT_FLAGGED and "result" in r.stderr, r


def test_evidence_recorded_against_another_course_is_flagged(recorded, tmp_path):
    """Was: replaying against a course.yaml with another worker IP silently gave another score."""
    course, path = recorded
    data = yaml.safe_load(course.path.read_text())
    worker = next(n for n in data["nodes"] if n["role"] == "worker")
    worker["ip"] = "192.168.56.99"
    course.path.write_text(yaml.safe_dump(data, sort_keys=False))
    r = replay(course, path)
    assert r.code == EXIT_FLAGGED and "recorded against another course.yaml" in r.stderr, r.output


def test_the_same_course_spelled_otherwise_is_not_another_course(recorded):
    """A Windows checkout (CRLF line endings, rsynced to the master where the notebook records) or an edited
    comment is the same course: honest evidence stays unflagged. The canonical digest still moves with a value
    (the test above)."""
    course, path = recorded
    text = course.path.read_text()
    course.path.write_bytes(("# a comment the instructor added\n" + text).replace("\n", "\r\n").encode())
    r = replay(course, path)
    assert r.crash is None and r.code != EXIT_FLAGGED and "flagged" not in r.stderr, r.output


@pytest.mark.parametrize("identity, words", [
    ({}, "identity is missing or malformed"),
    ({"nodes": [], "cluster": {}}, "identity is missing or malformed"),
    ({"nodes": {"master": {"hostname": None, "machine_id": None}, "worker": {"hostname": None, "machine_id": None}},
      "cluster": {"kube_system_uid": None, "etcd_cluster_id": None}},
     "identity of node master has no machine-id although the node was observed"),
    ({"nodes": {"master": "x", "worker": {}}, "cluster": {}}, "identity of node master is malformed"),
    ({"nodes": {"master": {"machine_id": "not-hex"}}, "cluster": {}}, "malformed machine-id 'not-hex'"),
    ({"nodes": {}, "cluster": {"kube_system_uid": 7}}, "cluster.kube_system_uid is malformed"),
])
def test_blank_or_malformed_identity_is_flagged(recorded, identity, words):
    """Was: identity could be blanked, which blinds copy detection."""
    course, path = recorded
    forge(path, lambda d: d.update(identity=identity))
    r = replay(course, path)
    assert r.code == EXIT_FLAGGED and words in r.stderr, r.output


def test_identity_contradicting_a_recorded_command_is_flagged(recorded):
    """The grader ran `hostname` on each node; identity claiming another hostname is flagged."""
    course, path = recorded
    forge(path, lambda d: d["identity"]["nodes"]["worker"].update(hostname="someone-else"))
    r = replay(course, path)
    assert r.code == EXIT_FLAGGED and "node worker: identity says hostname 'someone-else'" in r.stderr, r.output


# -- facts seen twice (simulation with realistic shapes) ----------------------------------------------

def _ca_pem() -> str:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kubernetes")])
    now = dt.datetime(2026, 11, 1, tzinfo=dt.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now)
            .not_valid_after(now + dt.timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True).sign(key, hashes.SHA256()))
    return cert.public_bytes(serialization.Encoding.PEM).decode()


CA, OTHER_CA = _ca_pem(), _ca_pem()
UID = "5e3c1a0b-8f2d-4c6e-9a7b-1d2e3f4a5b6c"
ETCD = "14841639068965178418"
MASTER_ID, WORKER_ID = "4f1c" + "0" * 24 + "a1b2", "9d2e" + "0" * 24 + "c3d4"


def _kubeconfig(ca: str) -> str:
    b64 = base64.b64encode(ca.encode()).decode()
    return (f"apiVersion: v1\nclusters:\n- cluster:\n    certificate-authority-data: {b64}\n"
            "    server: https://192.168.56.10:6443\n  name: kubernetes\ncontexts:\n- context:\n    cluster: kubernetes\n"
            "    user: kubernetes-admin\n  name: kubernetes-admin@kubernetes\ncurrent-context: kubernetes-admin@kubernetes\n"
            "kind: Config\nusers:\n- name: kubernetes-admin\n  user:\n    client-certificate-data: LS0t\n"
            "    client-key-data: <redacted>\n")


def _ip_addr(ip: str) -> str:
    return (f"1: lo    inet 127.0.0.1/8 scope host lo\\       valid_lft forever preferred_lft forever\n"
            f"2: eth0    inet 10.0.2.15/24 brd 10.0.2.255 scope global dynamic eth0\\       valid_lft 86000sec\n"
            f"3: eth1    inet {ip}/24 brd 192.168.56.255 scope global eth1\\       valid_lft forever preferred_lft forever\n")


def _node(name: str, ip: str, uid: str, created: str = "2026-11-20T10:00:00Z") -> dict:
    return {"metadata": {"name": name, "uid": uid, "creationTimestamp": created,
                         "labels": {"kubernetes.io/hostname": name}},
            "status": {"addresses": [{"type": "InternalIP", "address": ip}, {"type": "Hostname", "address": name}]}}


def _healthy() -> dict:
    """Parts of evidence from a healthy two-node cluster; each test changes one fact in one place."""
    def cmd(c, out, rc=0):
        return {"cmd": c, "rc": rc, "stdout": out, "stderr": ""}
    etcd = json.dumps({"header": {"cluster_id": ETCD, "member_id": "1", "revision": "9", "raft_term": "2"},
                       "version": "3.5.15", "dbSize": "2109440"})
    nodes = {"kind": "NodeList", "apiVersion": "v1", "metadata": {"resourceVersion": "900"},
             "items": [_node("master", "192.168.56.10", "a1f0c2d3-1111-4a5b-8c9d-0e1f2a3b4c5d"),
                       _node("worker", "192.168.56.11", "b2e1d3c4-2222-4a5b-8c9d-0e1f2a3b4c5d")]}
    ns = {"kind": "Namespace", "apiVersion": "v1",
          "metadata": {"name": "kube-system", "uid": UID, "creationTimestamp": "2026-11-20T09:59:50Z"}}
    return {
        "identity": {"nodes": {"master": {"hostname": "master", "machine_id": MASTER_ID},
                               "worker": {"hostname": "worker", "machine_id": WORKER_ID}},
                     "cluster": {"kube_system_uid": UID, "etcd_cluster_id": ETCD}},
        "nodes": {"master": [cmd("hostname", "master\n"), cmd("cat /etc/machine-id", MASTER_ID + "\n"),
                             cmd("ip -o -4 addr show", _ip_addr("192.168.56.10")),
                             cmd("sudo -n cat /etc/kubernetes/admin.conf", _kubeconfig(CA)),
                             cmd("sudo -n cat /etc/kubernetes/pki/ca.crt", CA),
                             cmd("sudo -n curl -sS -X POST https://127.0.0.1:2379/v3/maintenance/status", etcd)],
                  "worker": [cmd("hostname", "worker\n"), cmd("ip -o -4 addr show", _ip_addr("192.168.56.11")),
                             cmd("sudo -n cat /etc/kubernetes/kubelet.conf", _kubeconfig(CA))]},
        "api": [{"method": "GET", "path": "/api/v1/nodes", "body": None, "status": 200, "data": json.dumps(nodes)},
                {"method": "GET", "path": "/api/v1/nodes/master", "body": None, "status": 200,
                 "data": json.dumps({"kind": "Node", "apiVersion": "v1", **nodes["items"][0]})},
                {"method": "GET", "path": "/api/v1/namespaces/kube-system", "body": None, "status": 200,
                 "data": json.dumps(ns)}],
    }


def _flags(parts: dict, course) -> list[str]:
    replayed = LabResult(lab="lab01", title="t", target="evidence", started_at="2026-11-20T10:05:00+00:00",
                         duration_s=1.0, checks=[])
    ev = Evidence(format="kubelab-evidence", version=1, kubelab_version="0.1.0",
                  course_digest=course_digest(course.path), lab="lab01",
                  recorded_at=parts.get("recorded_at", "2026-11-20T10:05:03+00:00"), target="ssh-config",
                  identity=parts["identity"],
                  nodes={n: [CommandObservation(**o) for o in obs] for n, obs in parts["nodes"].items()},
                  api=[ApiObservation(**a) for a in parts["api"]],
                  result={**replayed.to_dict(), "started_at": parts.get("started_at", replayed.started_at)})
    return verify(course, ev, replayed, now=dt.datetime(2026, 11, 21, tzinfo=dt.timezone.utc))


def _api(parts, path, change):
    obs = next(a for a in parts["api"] if a["path"] == path)
    data = json.loads(obs["data"])
    change(data)
    obs["data"] = json.dumps(data)


def _cmd(parts, node, prefix, change):
    obs = next(o for o in parts["nodes"][node] if o["cmd"].startswith(prefix))
    obs["stdout"] = change(obs["stdout"])


CASES = {
    "machine-id": (lambda p: p["identity"]["nodes"]["master"].update(machine_id="ab" * 16),
                   "node master: identity says machine-id 'abababab"),
    "hostname": (lambda p: _cmd(p, "worker", "hostname", lambda s: "laptop-of-bob\n"),
                 "identity says hostname 'worker', `hostname` said 'laptop-of-bob'"),
    "kube-system UID": (lambda p: _api(p, "/api/v1/namespaces/kube-system",
                                       lambda d: d["metadata"].update(uid="0f0f0f0f-0000-4000-8000-000000000000")),
                        "identity says kube-system UID 5e3c1a0b"),
    "etcd cluster ID": (lambda p: _cmd(p, "master", "sudo -n curl", lambda s: s.replace(ETCD, "1234567890123")),
                        "identity says etcd cluster ID 14841639068965178418, etcd answered 1234567890123"),
    "CA of one kubeconfig": (lambda p: _cmd(p, "worker", "sudo -n cat /etc/kubernetes/kubelet.conf",
                                            lambda s: _kubeconfig(OTHER_CA)),
                             "kubeconfigs embed 2 different CAs"),
    "CA in the PKI": (lambda p: _cmd(p, "master", "sudo -n cat /etc/kubernetes/pki/ca.crt", lambda s: OTHER_CA),
                      "the CA in the kubeconfigs is not /etc/kubernetes/pki/ca.crt"),
    "InternalIP": (lambda p: _api(p, "/api/v1/nodes",
                                  lambda d: d["items"][1]["status"]["addresses"][0].update(address="192.168.56.12")),
                   "the API says node worker has InternalIP 192.168.56.12, but `ip addr` on worker lists"),
    "one object, two names": (lambda p: _api(p, "/api/v1/nodes/master", lambda d: d["metadata"].update(name="boss")),
                              "object UID a1f0c2d3-1111-4a5b-8c9d-0e1f2a3b4c5d is /master"),
    "recorded in the future": (lambda p: p.update(recorded_at="2027-06-01T00:00:00+00:00"), "is in the future"),
    "recorded before grading began": (lambda p: p.update(started_at="2026-11-20T11:00:00+00:00"),
                                      "before the grading started"),
    "object created after the recording": (
        lambda p: _api(p, "/api/v1/nodes", lambda d: d["items"][1]["metadata"].update(
            creationTimestamp="2026-12-25T00:00:00Z")), "the API shows worker created 2026-12-25"),
    "recorded_at not a time": (lambda p: p.update(recorded_at="yesterday"), "is not a timestamp"),
}


@pytest.fixture(scope="module")
def repo_course():
    return load_course(REPO)


def test_consistent_facts_raise_no_flag(repo_course):
    assert _flags(_healthy(), repo_course) == []


@pytest.mark.parametrize("case", list(CASES))
def test_a_fact_changed_in_one_place_is_flagged(repo_course, case):
    change, words = CASES[case]
    parts = _healthy()
    change(parts)
    flags = _flags(parts, repo_course)
    assert len(flags) == 1 and words in flags[0], flags


def test_no_false_flags_on_lab04_evidence_modelled_on_real_captures(repo_course, tmp_path, monkeypatch):
    """Lab 4's simulated control plane (healthy and each learner mistake), recorded and replayed: no flag."""
    import kubelab.evidence as ev
    from kubelab.engine.runner import run_lab
    from kubelab.evidence.replay import ReplayClock
    from lab04_evidence import MISTAKES, Sim136, SimTarget

    for mistake in (None, *MISTAKES):
        clock = ReplayClock()
        monkeypatch.setattr(ev, "run_lab", lambda c, lab, t: run_lab(c, lab, t, clock=clock.now, sleep=clock.sleep))
        _, evidence = record_lab(repo_course, "lab04", SimTarget(repo_course, Sim136(repo_course.model, mistake)))
        monkeypatch.undo()
        path = save(evidence, tmp_path / f"{mistake}.json")
        assert replay_and_verify(repo_course, "lab04", path)[2] == [], mistake


@pytest.mark.parametrize("change", [
    lambda p: p["api"].append({"method": "GET", "path": "/api/v1/nodes", "body": None, "status": 200,
                               "data": json.dumps({"kind": 5, "items": [{}]})}),
    lambda p: p["api"].append({"method": "GET", "path": "/api/v1/nodes", "body": None, "status": 200,
                               "data": json.dumps({"kind": "NodeList", "items": [{"metadata": {"name": ["x"]},
                                                                             "status": {"addresses": []}}]})}),
    lambda p: p["api"].append({"method": "GET", "path": "/api/v1/nodes/master", "body": None, "status": 200,
                               "data": json.dumps({"kind": "Node", "metadata": {"name": {"a": 1}},
                                                           "status": {"addresses": []}})}),
], ids=["kind-not-a-string", "name-a-list", "name-a-dict"])
def test_an_observation_of_a_shape_no_recording_makes_is_flagged_not_a_crash(repo_course, change):
    """Crafted API observations whose fields have impossible types: verify() names the part and flags it."""
    parts = _healthy()
    change(parts)
    flags = _flags(parts, repo_course)
    assert flags and all("unexpected shape" in f and "\n" not in f for f in flags), flags

