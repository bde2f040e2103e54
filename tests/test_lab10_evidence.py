"""Lab 10 from evidence, no twins: every check's passing and failing case, replayed through the engine.

Proof: "recorded evidence from the real 1.20 cluster on twins" — tests/data/lab10/solved-v1.20-twins.recording.json
was recorded by test_lab10.py's live run (the solution notebook's cells run on the twins' kubeadm v1.20.2 cluster,
then graded with recording; redacted as every recording is). The failing cases change one observation of it to
what a realistic mistake shows on a real cluster (the shapes seen on the twins: a mirror pod's metadata, a Lease,
a configz error, a missing file's `cat` error), then replay it.
"""

from __future__ import annotations

import json

import pytest

from evidence_edit import EvidenceEdit
from helpers import REPO, by_id, not_passing
from kubelab.course import load_course
from kubelab.evidence import replay_lab

LAB = "lab10"
RECORDING = REPO / "tests" / "data" / "lab10" / "solved-v1.20-twins.recording.json"
MANIFEST_CAT = "sudo -n cat /etc/kubernetes/manifests/static-web.yaml"
MIRROR = "/api/v1/namespaces/default/pods/static-web-worker"
CONFIGZ = "/api/v1/nodes/worker/proxy/configz"
LEASE = "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/worker"
ANSWERS_CAT = "cat ~vagrant/.kubelab/answers/lab10.json"
COURSE = load_course(REPO)


class Edit(EvidenceEdit):
    recording, lab, course = RECORDING, LAB, COURSE


def test_the_recording_replays_to_full_marks():
    """recorded evidence from the real 1.20 cluster on twins, unchanged: every check passes, 10 of 10 — and the
    mirror pod in it carries what the grader looks for (annotation, owner Node worker)."""
    result, ev = replay_lab(COURSE, LAB, RECORDING)
    assert not_passing(result) == {} and result.score == result.max_score == 10
    pod = json.loads(next(o.data for o in ev.api if o.path == MIRROR))
    assert pod["metadata"]["annotations"]["kubernetes.io/config.mirror"] == \
        pod["metadata"]["annotations"]["kubernetes.io/config.hash"]
    assert [(o["kind"], o["name"]) for o in pod["metadata"]["ownerReferences"]] == [("Node", "worker")]


def test_manifest_missing_on_both_nodes_fails(tmp_path):
    """recorded evidence from the real 1.20 cluster on twins, the manifest absent from the worker (and not on the
    master either: `cat`'s real error) — static_pod_file fails 'missing', its dependants are blocked."""
    e = Edit().cmd("worker", MANIFEST_CAT, rc=1,
                   stderr="cat: /etc/kubernetes/manifests/static-web.yaml: No such file or directory")
    e.cmd("master", "sudo -n test -e /etc/kubernetes/manifests/static-web.yaml", rc=1)
    result = e.replay(tmp_path)
    f = by_id(result)["static_pod_file[worker]"]
    assert str(f.status) == "fail" and f.actual == "missing"
    assert not_passing(result) == {"static_pod_file[worker]": "fail", "mirror_pod[cluster]": "blocked",
                                    "answer_config_hash[cluster]": "blocked"}


def test_manifest_of_another_kind_fails(tmp_path):
    """recorded evidence from the real 1.20 cluster on twins, the manifest file holding a Deployment named
    static-web (a static pod must be a Pod) — static_pod_file fails showing kind and name."""
    text = Edit().stdout("worker", MANIFEST_CAT)
    e = Edit().cmd("worker", MANIFEST_CAT, text.replace("apiVersion: v1\nkind: Pod", "apiVersion: apps/v1\nkind: Deployment"))
    f = by_id(e.replay(tmp_path))["static_pod_file[worker]"]
    assert str(f.status) == "fail" and "Deployment" in f.actual and "Pod" in f.expected


def test_mirror_pod_not_running_fails(tmp_path):
    """recorded evidence from the real 1.20 cluster on twins, the mirror pod Pending with ErrImageNeverPull (an
    image the node does not have under imagePullPolicy: Never) — mirror_pod fails expected Running; the
    config.hash answer, which needs only the mirror's annotations, is blocked by it."""
    def pending(d):
        d["status"]["phase"] = "Pending"
        d["status"]["containerStatuses"][0]["state"] = {"waiting": {"reason": "ErrImageNeverPull"}}
    result = Edit().api(MIRROR, pending).replay(tmp_path)
    m = by_id(result)["mirror_pod[cluster]"]
    assert str(m.status) == "fail" and "Pending" in m.actual and "Running" in m.expected
    assert not_passing(result) == {"mirror_pod[cluster]": "fail", "answer_config_hash[cluster]": "blocked"}


def test_an_ordinary_pod_named_like_the_mirror_fails(tmp_path):
    """recorded evidence from the real 1.20 cluster on twins, static-web-worker as a pod created through the API
    (`kubectl run static-web-worker`): no config.mirror annotation, no owner — mirror_pod fails on the annotation."""
    def ordinary(d):
        d["metadata"]["annotations"] = {}
        d["metadata"].pop("ownerReferences")
    m = by_id(Edit().api(MIRROR, ordinary).replay(tmp_path))["mirror_pod[cluster]"]
    assert str(m.status) == "fail" and m.expected == "annotation kubernetes.io/config.mirror"


def test_mirror_pod_owned_by_another_node_fails(tmp_path):
    """recorded evidence from the real 1.20 cluster on twins, the mirror's ownerReference naming the master (the
    file ran there) — mirror_pod fails naming the owner it wanted."""
    def other(d):
        d["metadata"]["ownerReferences"][0]["name"] = "master"
    m = by_id(Edit().api(MIRROR, other).replay(tmp_path))["mirror_pod[cluster]"]
    assert str(m.status) == "fail" and m.expected == "an ownerReference to Node worker" and "master" in m.actual


def test_configz_unreachable_fails_the_in_effect_check(tmp_path):
    """recorded evidence from the real 1.20 cluster on twins, configz answered by the API server with 503 (the
    kubelet does not answer on 10250) — setting_in_effect fails with the HTTP status and message."""
    body = json.dumps({"kind": "Status", "status": "Failure", "code": 503,
                       "message": "error trying to reach service: dial tcp 192.168.56.11:10250: connect: connection refused"})
    e = by_id(Edit().api(CONFIGZ, status=503, data=body).replay(tmp_path))["setting_in_effect[worker]"]
    assert str(e.status) == "fail" and e.actual.startswith("HTTP 503") and "10250" in e.actual


def test_stale_lease_fails_the_health_check(tmp_path):
    """recorded evidence from the real 1.20 cluster on twins, the worker's Lease last renewed 2 minutes before the
    control plane's clock (a kubelet that stopped, before the node turns NotReady) — kubelet_healthy fails."""
    e = Edit()
    now = int(e.stdout("master", "date +%s"))

    def stale(d):
        import datetime

        t = datetime.datetime.fromtimestamp(now - 120, datetime.timezone.utc)
        d["spec"]["renewTime"] = t.strftime("%Y-%m-%dT%H:%M:%S.000000Z")
    h = by_id(e.api(LEASE, stale).replay(tmp_path))["kubelet_healthy[worker]"]
    assert str(h.status) == "fail" and h.actual == "renewed 120s ago"


def test_no_answers_recorded_fails_the_answer_checks(tmp_path):
    """recorded evidence from the real 1.20 cluster on twins, no answers file on the control plane (`cat`'s real
    error) — the three answer checks fail saying how to record one; nothing else changes."""
    e = Edit().cmd("master", ANSWERS_CAT, rc=1,
                   stderr="cat: /home/vagrant/.kubelab/answers/lab10.json: No such file or directory")
    result = e.replay(tmp_path)
    assert not_passing(result) == {f"{c}[cluster]": "fail" for c in
                                    ("answer_config_hash", "answer_lease_duration", "answer_client_serial")}
    c = by_id(result)["answer_lease_duration[cluster]"]
    assert c.actual == "none recorded" and "%answer lab10 lease_duration_seconds" in c.expected


@pytest.mark.parametrize("serial", ["5e24f9b66939685c2700c9ed7c9b73cc", "5E:24:F9:B6:69:39:68:5C:27:00:C9:ED:7C:9B:73:CC"])
def test_the_serial_in_another_spelling_still_passes(tmp_path, serial):
    """recorded evidence from the real 1.20 cluster on twins, the serial answer in lower case / with colons (as
    other tools print it) — answer_client_serial still passes."""
    e = Edit()
    answers = json.loads(e.stdout("master", ANSWERS_CAT))
    answers["kubelet_client_serial"]["value"] = serial
    result = e.cmd("master", ANSWERS_CAT, json.dumps(answers)).replay(tmp_path)
    assert str(by_id(result)["answer_client_serial[cluster]"].status) == "pass"
