"""Lab 12 from evidence, no twins: every check's passing and failing case, replayed through the engine.

Proof, named per test:

- "recorded evidence from the real 1.20 cluster on twins": tests/data/lab12/solved-v1.20-twins.recording.json was
  recorded by test_lab12.py's live run (the solution notebook's cells run on the twins' kubeadm v1.20.2 cluster with
  containerd 1.6.20, cgroup v1 and the cgroupfs driver, then graded with recording; redacted as every recording
  is). The failing cases change one observation of it to what a realistic mistake shows on a real node (a Burstable
  pod, a task that is not running, a pod re-created through the API), then replay it.
- "recorded evidence modelled on shared/realdata/containerd-config/containerd-2.1.4_…toml and kubelet-config": the
  course's 1.36 nodes run containerd 2.x with `SystemdCgroup = true` and the kubelet with `cgroupDriver: systemd` on
  cgroup v2 — facts no twin has. The recording's kubelet config.yaml and /proc/<pid>/cgroup are replaced by those
  shapes (a kubeadm-written config.yaml; the unified `0::` line with kubepods.slice/…/cri-containerd-<id>.scope, the
  naming of containerd's CRI plugin with the systemd driver), then replayed. `ctr tasks ls` and `ctr containers
  info` keep the 1.6 recording's shape: the same columns and the same labels and annotation in containerd 2.x
  (internal/cri/labels: io.cri-containerd.kind; the OCI annotation io.kubernetes.cri.sandbox-id).
"""

from __future__ import annotations

import json

from evidence_edit import EvidenceEdit
from helpers import REPO, by_id, not_passing
from kubelab.course import load_course
from kubelab.evidence import replay_lab

LAB = "lab12"
RECORDING = REPO / "tests" / "data" / "lab12" / "solved-v1.20-twins.recording.json"
POD_PATH = "/api/v1/namespaces/lab12-cri/pods/cri-demo"
TASKS = "sudo -n ctr -n k8s.io tasks ls"
CONFIG_CAT = "sudo -n cat /var/lib/kubelet/config.yaml"
ANSWERS_CAT = "cat ~vagrant/.kubelab/answers/lab12.json"
COURSE = load_course(REPO)
ANSWER_CHECKS = ("answer_pid", "answer_cgroup", "answer_sandbox", "answer_netns_ip")

# a kubeadm >= 1.22 config.yaml (systemd is kubeadm's default driver), the shape of shared/realdata/kubelet-config
KUBEADM_136_CONFIG = """apiVersion: kubelet.config.k8s.io/v1beta1
authentication:
  x509:
    clientCAFile: /etc/kubernetes/pki/ca.crt
cgroupDriver: systemd
clusterDNS:
- 10.96.0.10
clusterDomain: cluster.local
containerRuntimeEndpoint: unix:///run/containerd/containerd.sock
kind: KubeletConfiguration
staticPodPath: /etc/kubernetes/manifests
"""


class Edit(EvidenceEdit):
    recording, lab, course = RECORDING, LAB, COURSE

    def pod(self, fn=None, status: int | None = None, data: str | None = None) -> "Edit":
        return self.api(POD_PATH, fn, status, data)

    def pod_json(self) -> dict:
        return self.api_data(POD_PATH)

    def answers(self, **values) -> "Edit":
        a = json.loads(self.stdout_starting_with("master", ANSWERS_CAT))
        for k, v in values.items():
            a[k]["value"] = v
        return self.set_starting_with("master", ANSWERS_CAT, json.dumps(a))


def _ids(e: Edit) -> tuple[str, str, str]:
    """(pod uid, container id, sandbox id) as the recording has them."""
    pod = e.pod_json()
    cid = pod["status"]["containerStatuses"][0]["containerID"].removeprefix("containerd://")
    info = json.loads(e.stdout_starting_with("worker", f"sudo -n ctr -n k8s.io containers info {cid}"))
    return pod["metadata"]["uid"], cid, info["Spec"]["annotations"]["io.kubernetes.cri.sandbox-id"]


def test_the_recording_replays_to_full_marks():
    """recorded evidence from the real 1.20 cluster on twins, unchanged: every check passes, 10 of 10 — and what the
    grader read is what containerd 1.6 shows: the container's cgroup under /kubepods/pod<uid>/ (cgroupfs driver,
    Guaranteed), the sandbox labelled kind sandbox."""
    result, _ = replay_lab(COURSE, LAB, RECORDING)
    assert not_passing(result) == {} and result.score == result.max_score == 10
    e = Edit()
    uid, cid, sid = _ids(e)
    cg = e.stdout_starting_with("worker", "sudo -n cat /proc/")
    assert f"/kubepods/pod{uid}/{cid}" in cg
    sandbox = json.loads(e.stdout_starting_with("worker", f"sudo -n ctr -n k8s.io containers info {sid}"))
    assert sandbox["Labels"]["io.cri-containerd.kind"] == "sandbox"


def test_no_pod_fails_and_blocks_the_rest(tmp_path):
    """recorded evidence from the real 1.20 cluster on twins, the pod not there (the API server's real 404) —
    pod_running fails 'none', every other check is blocked by it."""
    body = json.dumps({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound", "code": 404,
                       "message": 'pods "cri-demo" not found', "details": {"name": "cri-demo", "kind": "pods"}})
    result = Edit().pod(status=404, data=body).replay(tmp_path)
    p = by_id(result)["pod_running[cluster]"]
    assert str(p.status) == "fail" and p.actual == "none"
    assert {k: v for k, v in not_passing(result).items() if k != "pod_running[cluster]"} == \
        {c.id: "blocked" for c in result.checks if c.id != "pod_running[cluster]"}


def test_pod_pending_on_an_image_fails(tmp_path):
    """recorded evidence from the real 1.20 cluster on twins, the pod Pending with ErrImageNeverPull (an image the
    node does not have) — pod_running fails showing phase and readiness."""
    def pending(d):
        d["status"]["phase"] = "Pending"
        d["status"]["containerStatuses"][0]["ready"] = False
    p = by_id(Edit().pod(pending).replay(tmp_path))["pod_running[cluster]"]
    assert str(p.status) == "fail" and "Pending" in p.actual and "Running" in p.expected


def test_burstable_pod_fails_the_qos_check(tmp_path):
    """recorded evidence from the real 1.20 cluster on twins, a pod with requests but no limits: the API says
    Burstable and the kubelet put it under /kubepods/burstable/pod<uid>/ — guaranteed_cgroup fails on the class."""
    e = Edit()
    uid = e.pod_json()["metadata"]["uid"]
    e.pod(lambda d: d["status"].__setitem__("qosClass", "Burstable"))
    cg = e.stdout_starting_with("worker", "sudo -n cat /proc/").replace(f"/kubepods/pod{uid}/", f"/kubepods/burstable/pod{uid}/")
    e.set_starting_with("worker", "sudo -n cat /proc/", cg)
    q = by_id(e.replay(tmp_path))["guaranteed_cgroup[worker]"]
    assert str(q.status) == "fail" and q.expected == "Guaranteed" and q.actual == "Burstable"


def test_container_task_not_running_fails(tmp_path):
    """recorded evidence from the real 1.20 cluster on twins, the container's task STOPPED in `ctr tasks ls` (the
    moment between a kill and the kubelet's restart) — guaranteed_cgroup fails expected RUNNING."""
    e = Edit()
    _, cid, _ = _ids(e)
    lines = [ln if not ln.startswith(cid) else f"{cid}    0    STOPPED" for ln in e.stdout_starting_with("worker", TASKS).splitlines()]
    q = by_id(e.set_starting_with("worker", TASKS, "\n".join(lines) + "\n").replay(tmp_path))["guaranteed_cgroup[worker]"]
    assert str(q.status) == "fail" and q.expected == "RUNNING" and q.actual == "STOPPED"


def test_sandbox_task_gone_fails_the_containerd_check(tmp_path):
    """recorded evidence from the real 1.20 cluster on twins, the sandbox's pause task missing from `ctr tasks ls`
    — sandbox_in_containerd fails 'no task'."""
    e = Edit()
    _, _, sid = _ids(e)
    kept = [ln for ln in e.stdout_starting_with("worker", TASKS).splitlines() if not ln.startswith(sid)]
    s = by_id(e.set_starting_with("worker", TASKS, "\n".join(kept) + "\n").replay(tmp_path))["sandbox_in_containerd[worker]"]
    assert str(s.status) == "fail" and s.actual == "no task"


def test_container_never_restarted_fails(tmp_path):
    """recorded evidence from the real 1.20 cluster on twins, restartCount 0 (the container never stopped, or the
    pod re-created through the API) — restarted fails, nothing else."""
    result = Edit().pod(lambda d: d["status"]["containerStatuses"][0].__setitem__("restartCount", 0)).replay(tmp_path)
    r = by_id(result)["restarted[cluster]"]
    assert str(r.status) == "fail" and r.actual == "restartCount 0"
    assert not_passing(result) == {"restarted[cluster]": "fail"}


def test_no_answers_recorded_fails_the_answer_checks(tmp_path):
    """recorded evidence from the real 1.20 cluster on twins, no answers file on the control plane (`cat`'s real
    error) — the four answer checks fail saying how to record one; nothing else changes."""
    e = Edit().set_starting_with("master", ANSWERS_CAT, rc=1,
                                 stderr="cat: /home/vagrant/.kubelab/answers/lab12.json: No such file or directory")
    result = e.replay(tmp_path)
    assert not_passing(result) == {f"{c}[cluster]": "fail" for c in ANSWER_CHECKS}
    c = by_id(result)["answer_sandbox[cluster]"]
    assert c.actual == "none recorded" and "%answer lab12 sandbox_id" in c.expected


def test_sandbox_id_as_crictl_pods_prints_it_passes(tmp_path):
    """recorded evidence from the real 1.20 cluster on twins, the sandbox answer in the 13 characters `crictl pods`
    shows — answer_sandbox passes; 8 characters — fails."""
    _, _, sid = _ids(Edit())
    assert str(by_id(Edit().answers(sandbox_id=sid[:13]).replay(tmp_path))["answer_sandbox[cluster]"].status) == "pass"
    assert str(by_id(Edit().answers(sandbox_id=sid[:8]).replay(tmp_path))["answer_sandbox[cluster]"].status) == "fail"


def _systemd_v2(e: Edit, qos_slice: str | None = None) -> str:
    """The recording as a containerd 2.x node with the systemd driver on cgroup v2 shows it; the container's path."""
    uid, cid, _ = _ids(e)
    u = uid.replace("-", "_")
    pod_slice = qos_slice or f"kubepods-pod{u}.slice"
    path = f"/kubepods.slice/{pod_slice}/cri-containerd-{cid}.scope"
    e.set_starting_with("worker", CONFIG_CAT, KUBEADM_136_CONFIG)
    e.set_starting_with("worker", "sudo -n cat /proc/", f"0::{path}\n")
    return path


def test_systemd_driver_on_cgroup_v2_passes_from_evidence(tmp_path):
    """recorded evidence modelled on shared/realdata/containerd-config (SystemdCgroup = true) and kubelet-config
    (cgroupDriver: systemd), cgroup v2: the container under kubepods.slice/kubepods-pod<uid>.slice/cri-containerd-<id>
    .scope and the learner's answer copied as `0::<path>` — every check passes, as on the twins."""
    e = Edit()
    path = _systemd_v2(e)
    result = e.answers(cgroup_path=f"0::{path}").replay(tmp_path)
    assert not_passing(result) == {} and result.score == 10


def test_systemd_driver_burstable_slice_fails_from_evidence(tmp_path):
    """recorded evidence modelled on shared/realdata/containerd-config and kubelet-config (systemd driver, cgroup
    v2), the container in kubepods-burstable.slice although the class should be Guaranteed — guaranteed_cgroup fails,
    expected naming the Guaranteed pod slice; the bare path answer of the Guaranteed place fails too."""
    e = Edit()
    uid, _, _ = _ids(e)
    u = uid.replace("-", "_")
    _systemd_v2(e, f"kubepods-burstable.slice/kubepods-burstable-pod{u}.slice")
    result = e.answers(cgroup_path=f"/kubepods.slice/kubepods-pod{u}.slice").replay(tmp_path)
    q = by_id(result)["guaranteed_cgroup[worker]"]
    assert str(q.status) == "fail" and f"/kubepods.slice/kubepods-pod{u}.slice/" in q.expected
    assert "kubepods-burstable" in q.actual and "(systemd cgroup driver)" in q.expected, (q.actual, q.expected)
    assert str(by_id(result)["answer_cgroup[cluster]"].status) == "fail"
