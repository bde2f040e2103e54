"""Lab 8 — the scheduler: the solution notebook's own cells run for real on the twins' kubeadm v1.20.2 cluster
(`shared_cluster`), graded, then realistic mistakes made for real and graded again; the cluster is put back.

Kinds of proof, named in every test's docstring:

- "real 1.20 cluster on twins": the state was made on the real cluster (the notebook's cells through a real
  kernel, or kubectl over SSH), graded live, the recording replayed to the same result. 1.20 does all of this
  lab the way 1.36 does (static pods, the scheduler's Lease, Binding, events, PodScheduled, managedFields).
- "recorded evidence modelled on shared/realdata/<file>": the live recording with one observation changed, for
  what the twins' 1.20 cannot show (a 1.36 FailedScheduling message with its preemption note) or cannot be made
  to show without breaking something else (a Lease whose holder stopped while its static pod stays Ready).
- "simulation": the grader's pure helpers on hand-made input.

The notebook uses busybox:1.37 (pulled on real VMs); here every pod runs the twins' local busybox image
(kubelab.cluster.build.BUSYBOX_IMAGE, already on both nodes) with `imagePullPolicy: Never`: the notebook writes
every container in one line, `{name: main, image: busybox:1.37, ...}`, so the image is one string to substitute.
"""

from __future__ import annotations

import json
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import nbformat
import pytest

from helpers import brief, by_check, execute_notebook, grade_live, load_grader, on_node, wait_for
from kubelab.cluster import build
from kubelab.course import load_course
from kubelab.evidence import comparable, replay_lab, save
from kubelab.evidence.model import Evidence, load

REPO = Path(__file__).resolve().parents[1]
LAB = "lab08"
NS = "lab08"
NOTEBOOK_IMAGE = "busybox:1.37"
KUBECTL = "kubectl --kubeconfig=/etc/kubernetes/admin.conf"
MANIFEST = "/etc/kubernetes/manifests/kube-scheduler.yaml"
PARKED = "/etc/kubernetes/kube-scheduler.yaml"
# the twins cannot pull: their local image, never pulled (as kubelab.cluster's own pods run it)
TWIN_IMAGE = f"image: {build.BUSYBOX_IMAGE}, imagePullPolicy: Never"
ANSWER_CHECKS = {"lease_holder_answer", "scheduled_node_answer", "unavailable_nodes_answer"}


G = load_grader("lab08_scheduler.py")
COURSE_MODEL = load_course(REPO).model


# -------------------------------------------------------------------------------------------------
# simulation: the grader's helpers
# -------------------------------------------------------------------------------------------------

def test_unavailable_nodes_reads_the_failed_scheduling_message():
    """simulation, on messages from shared/realdata/pods-json (v1.28: with a preemption note) and the 1.20 shape:
    the nodes not available are N minus the available ones of the first 'a/N nodes are available'."""
    real = ("0/1 nodes are available: 1 node(s) had untolerated taint {node.kubernetes.io/not-ready: }. "
            "preemption: 0/1 nodes are available: 1 Preemption is not helpful for scheduling..")
    assert G.unavailable_nodes(real) == 1
    assert G.unavailable_nodes("0/2 nodes are available: 2 Insufficient cpu.") == 2
    assert G.unavailable_nodes("1/3 nodes are available: 2 Insufficient memory.") == 2
    assert G.unavailable_nodes("no nodes available to schedule pods") is None
    assert G.unavailable_nodes("") is None


def test_node_name_writer_tells_a_manifest_nodename_from_a_binding():
    """simulation: managedFields as the API server returns them (the kubernetes client's objects): nodeName
    under a client's manager means it was in the manifest; a Binding leaves no manager owning it."""
    from kubernetes.client import V1ManagedFieldsEntry, V1ObjectMeta, V1Pod

    def pod(entries):
        return V1Pod(metadata=V1ObjectMeta(name="manual", managed_fields=entries))

    in_manifest = V1ManagedFieldsEntry(manager="kubectl-client-side-apply", operation="Update",
                                       fields_v1={"f:spec": {"f:containers": {}, "f:nodeName": {}}})
    status_only = V1ManagedFieldsEntry(manager="kubelet", operation="Update", fields_v1={"f:status": {}})
    assert G.node_name_writer(pod([in_manifest, status_only])) == "kubectl-client-side-apply"
    assert G.node_name_writer(pod([status_only])) is None
    assert G.node_name_writer(pod(None)) is None


# -------------------------------------------------------------------------------------------------
# live on the real cluster
# -------------------------------------------------------------------------------------------------

# on the control plane, `sudo -n` before the command (the lab user's shell parses it)
_ssh = on_node("master", sudo="first")
_ok = on_node("master", sudo="first", must_succeed=True)


def _lease(ts) -> tuple[str, datetime]:
    out = _ok(ts, f"{KUBECTL} -n kube-system get lease kube-scheduler -o "
                  "jsonpath='{.spec.holderIdentity} {.spec.renewTime}'").split()
    return out[0], datetime.fromisoformat(out[1].replace("Z", "+00:00"))


def _scheduler_ready(ts) -> str:
    return _ssh(ts, f"{KUBECTL} -n kube-system get pods -l component=kube-scheduler -o "
                    "jsonpath='{.items[*].status.conditions[?(@.type==\"Ready\")].status}'").stdout.strip()


def _scheduler_back(ts) -> None:
    """The manifest in place, the static pod Ready and the Lease renewed within the last 10 s (by the master's
    clock, where the API server runs)."""
    _ok(ts, f"sh -c 'test -f {MANIFEST} || mv {PARKED} {MANIFEST}'")
    wait_for(lambda: _scheduler_ready(ts), "the kube-scheduler static pod Ready", until=lambda s: s == "True",
             timeout_s=180)

    def lease_age():
        now = float(_ok(ts, "date +%s").strip())
        return now - _lease(ts)[1].timestamp()
    wait_for(lease_age, "the scheduler's Lease renewed", until=lambda a: a <= 10, timeout_s=120)


def _pod_yaml(name: str, *, scheduler: str | None = None, node_name: str | None = None, extra: str = "") -> str:
    lines = ["apiVersion: v1", "kind: Pod", f"metadata: {{name: {name}, namespace: {NS}}}", "spec:"]
    if scheduler:
        lines.append(f"  schedulerName: {scheduler}")
    if node_name:
        lines.append(f"  nodeName: {node_name}")
    lines += ["  containers:", f"  - {{name: main, {TWIN_IMAGE}, command: [sh, -c, 'sleep 3600']}}"]
    return "\n".join(lines) + "\n" + extra


def _recreate(ts, name: str, yaml_text: str) -> None:
    _ok(ts, f"{KUBECTL} -n {NS} delete pod {name} --ignore-not-found --grace-period=0 --force", timeout=120)
    _ok(ts, f"{KUBECTL} apply -f -", input=yaml_text)


def _bind(ts, pod: str, node: str) -> None:
    binding = json.dumps({"apiVersion": "v1", "kind": "Binding", "metadata": {"name": pod},
                          "target": {"apiVersion": "v1", "kind": "Node", "name": node}})
    _ok(ts, f"sh -c 'cat > /tmp/b.json && {KUBECTL} create --raw /api/v1/namespaces/{NS}/pods/{pod}/binding "
            "-f /tmp/b.json'", input=binding)


def _ready(ts, pod: str) -> None:
    _ok(ts, f"{KUBECTL} -n {NS} wait --for=condition=Ready pod/{pod} --timeout=120s", timeout=150)


def _unschedulable(ts, pod: str) -> str:
    return wait_for(lambda: _ssh(ts, f"{KUBECTL} -n {NS} get pod {pod} -o jsonpath="
                                     "'{.status.conditions[?(@.type==\"PodScheduled\")].reason}'").stdout.strip(),
                    f"{pod} Unschedulable", until=lambda r: r == "Unschedulable", timeout_s=60)


def _write_answers(ts, answers: dict[str, str] | None) -> None:
    user = "vagrant"
    if answers is None:
        _ok(ts, f"rm -f ~{user}/.kubelab/answers/{LAB}.json")
        return
    data = {k: {"value": v, "recorded_at": "2026-11-30T06:00:00+00:00"} for k, v in answers.items()}
    _ok(ts, f"sh -c 'mkdir -p ~{user}/.kubelab/answers && cat > ~{user}/.kubelab/answers/{LAB}.json && "
            f"chown -R {user}: ~{user}/.kubelab'", input=json.dumps(data))


def _solution_notebook():
    """The solution notebook without its grading cell (the tests grade through the engine), on the twins' image."""
    src = nbformat.read(REPO / "solutions" / LAB / "lab08_scheduler.ipynb", as_version=4)
    cells = []
    for c in src.cells:
        if c.metadata.get("nbgrader", {}).get("grade_id") == f"grade_{LAB}":
            continue
        c.source = c.source.replace(f"image: {NOTEBOOK_IMAGE},", TWIN_IMAGE + ",")
        cells.append(c)
    assert not any(f"image: {NOTEBOOK_IMAGE}" in c.source for c in cells), "a container not in the one-line form"
    return nbformat.v4.new_notebook(cells=cells, metadata=src.metadata)


@pytest.fixture(scope="module")
def lab(shared_cluster, tmp_path_factory):
    """The solution notebook run for real by a kernel against the shared cluster; the cluster put back afterwards
    (scheduler manifest in place and leading, namespace lab08 and the answers gone)."""
    state = shared_cluster
    ts = state["ts"]
    folder = tmp_path_factory.mktemp("lab08-run")
    before = _lease(ts)[0]
    try:
        t0 = time.monotonic()
        nb = execute_notebook(_solution_notebook(), folder,
                              {"KUBELAB_SSH_CONFIG": str(ts.ssh_config_file()), "KUBELAB_COURSE": str(REPO)},
                              timeout=600, drop=("NBGRADER_EXECUTION",))
        ran_s = time.monotonic() - t0
        nbformat.write(nb, folder / "ran.ipynb")
        out = {c.metadata.get("nbgrader", {}).get("grade_id"): "".join(o.get("text", "") for o in c.get("outputs", []))
               for c in nb.cells if c.cell_type == "code"}
        print(f"lab08 solution notebook ran in {ran_s:.1f}s")
        for gid in ("create-first", "stop-scheduler", "bind-by-hand", "scheduler-back", "filtering"):
            print(f"--- {gid}\n{out.get(gid, '')}")
        t0 = time.monotonic()
        path = folder / "solution.evidence.json"
        live = grade_live(state, LAB, record=path)
        print(f"lab08 graded live (recording) in {time.monotonic() - t0:.1f}s")
        yield {"state": state, "ts": ts, "out": out, "live": live, "path": path, "holder_before": before}
    finally:
        try:
            _scheduler_back(ts)
            # the pods first, without their grace period: `sleep` as PID 1 ignores SIGTERM, so a plain namespace
            # delete waited out 30 s per pod wave (~85 s)
            _ok(ts, f"{KUBECTL} -n {NS} delete pods --all --ignore-not-found --grace-period=0 --force", timeout=120)
            _ok(ts, f"{KUBECTL} delete namespace {NS} --ignore-not-found --timeout=180s", timeout=240)
            _write_answers(ts, None)
        except BaseException:
            state["dirty"] = True
            raise


@pytest.mark.cluster
def test_solution_notebook_passes_every_check_and_replays(lab):
    """real 1.20 cluster on twins: the solution notebook's cells (scheduler manifest moved out, `manual` bound with
    `kubectl create --raw .../binding`, the manifest back, `after`, `picky`, `too-big`, the three %answer lines)
    run by a real kernel; every check passes and the recording replays to the same result."""
    live = lab["live"]
    assert all(str(c.status) == "pass" for c in live.checks), brief(live)
    assert live.score == live.max_score
    assert {c.check for c in live.checks} == {"scheduler_running", "scheduler_leading", "manual_binding",
                                              "scheduled_normally", "unschedulable"} | ANSWER_CHECKS
    out = lab["out"]
    assert "Successfully assigned lab08/first to" in out["create-first"], out["create-first"]
    assert "Insufficient cpu" in out["filtering"], out["filtering"]
    replayed, _ = replay_lab(lab["state"]["course"], LAB, lab["path"])
    assert comparable(replayed.to_dict()) == comparable(live.to_dict())


@pytest.mark.cluster
def test_mistakes_bound_to_master_no_scheduled_event_other_reason_wrong_answers(lab):
    """real 1.20 cluster on twins, four mistakes made for real, graded once:
    `manual` bound (by a Binding) to the control plane; `after` placed by hand too (no Scheduled event, only the
    kubelet's); `too-big` unschedulable for another reason (a nodeSelector no node matches, a small request); the
    answers: the Lease holder seen before the scheduler was restarted, the control plane as `after`'s node, and 0
    (the available nodes) for the unavailable ones. Each check fails with its hint; no live value shows."""
    ts, state = lab["ts"], lab["state"]
    _recreate(ts, "manual", _pod_yaml("manual", scheduler="nobody"))
    _bind(ts, "manual", "master")
    _recreate(ts, "after", _pod_yaml("after", scheduler="nobody"))
    _bind(ts, "after", "worker")
    _ready(ts, "manual")
    _ready(ts, "after")
    _recreate(ts, "too-big", _pod_yaml("too-big", extra="  nodeSelector: {disktype: ssd}\n"))
    _unschedulable(ts, "too-big")
    _write_answers(ts, {"lease_holder": lab["holder_before"], "scheduled_node": "master", "unavailable_nodes": "0"})
    result = grade_live(state, LAB)
    got = by_check(result)
    print(brief(result))
    assert {c: str(got[c].status) for c in got} == {
        "scheduler_running": "pass", "scheduler_leading": "pass", "manual_binding": "fail",
        "scheduled_normally": "fail", "unschedulable": "fail", "lease_holder_answer": "fail",
        "scheduled_node_answer": "fail", "unavailable_nodes_answer": "fail"}, brief(result)
    assert got["manual_binding"].actual == "master" and "worker" in got["manual_binding"].expected
    assert "Scheduled event from default-scheduler" in got["scheduled_normally"].expected
    assert "(kubelet)" in got["scheduled_normally"].actual and "Scheduled" not in got["scheduled_normally"].actual
    assert "Insufficient cpu" in got["unschedulable"].expected
    assert "didn't match" in got["unschedulable"].actual and "Insufficient cpu" not in got["unschedulable"].actual
    live_holder = _lease(ts)[0]
    assert live_holder != lab["holder_before"]
    assert got["lease_holder_answer"].actual == lab["holder_before"]
    for c in ANSWER_CHECKS:
        assert live_holder not in (got[c].expected + got[c].actual + (got[c].message or ""))
    assert got["unavailable_nodes_answer"].actual == "0" and "2" not in got["unavailable_nodes_answer"].expected
    for c in ("manual_binding", "scheduled_normally", "unschedulable"):
        assert got[c].hint


@pytest.mark.cluster
def test_mistakes_nodename_in_the_manifest_events_gone_no_answers(lab):
    """real 1.20 cluster on twins: `manual` created with spec.nodeName: worker (it runs there with no Scheduled
    event, but it is not a Binding: the lab does not count it); `after`'s events deleted, as the API server does
    after --event-ttl (1 h); no answers recorded. Each check fails saying why; the events one says they are gone
    and how to make them again."""
    ts, state = lab["ts"], lab["state"]
    _recreate(ts, "manual", _pod_yaml("manual", node_name="worker"))
    _ready(ts, "manual")
    _recreate(ts, "after", _pod_yaml("after"))
    _ready(ts, "after")
    _ok(ts, f"{KUBECTL} -n {NS} delete events --field-selector involvedObject.name=after")
    _write_answers(ts, None)
    result = grade_live(state, LAB)
    got = by_check(result)
    print(brief(result))
    m = got["manual_binding"]
    assert str(m.status) == "fail" and "not a Binding" in m.actual and "kubectl" in m.actual, brief(result)
    a = got["scheduled_normally"]
    assert str(a.status) == "fail" and "none left" in a.actual and "--event-ttl" in a.actual, brief(result)
    assert "create it again" in a.hint
    for c in ANSWER_CHECKS:
        assert str(got[c].status) == "fail" and got[c].actual == "none recorded", brief(result)


@pytest.mark.cluster
def test_scheduler_left_out_fails_and_blocks_the_lease_checks(lab):
    """real 1.20 cluster on twins: the scheduler's manifest left in /etc/kubernetes (Step 5 skipped): no
    kube-scheduler pod, so scheduler_running fails with the hint to move it back, and the checks that need it
    (leading, the holder answer) are blocked. Put back and leading again afterwards. Graded on virtual time: the
    scheduler stays out, so scheduler_running's polls give up at once instead of waiting 60 s."""
    ts, state = lab["ts"], lab["state"]
    _ok(ts, f"mv {MANIFEST} {PARKED}")
    try:
        # polled, not `kubectl wait --for=delete`: kubectl 1.20 fails when the kubelet already deleted the mirror pod
        # (NotFound; ignored only from 1.21, kubernetes PR #96702)
        wait_for(lambda: _ssh(ts, f"{KUBECTL} -n kube-system get pod kube-scheduler-master").returncode,
                 "the scheduler's mirror pod to go after its manifest was moved out", until=lambda rc: rc != 0,
                 timeout_s=120)
        result = grade_live(state, LAB, settled=True)  # nothing puts the manifest back while it grades
    finally:
        _scheduler_back(ts)
    got = by_check(result)
    print(brief(result))
    r = got["scheduler_running"]
    assert str(r.status) == "fail" and "none" in r.actual and "/etc/kubernetes/manifests" in r.hint, brief(result)
    assert str(got["scheduler_leading"].status) == "blocked"
    assert str(got["lease_holder_answer"].status) == "blocked"


# -------------------------------------------------------------------------------------------------
# from the live recording, one observation changed
# -------------------------------------------------------------------------------------------------

LEASE_PATH = "/apis/coordination.k8s.io/v1/namespaces/kube-system/leases/kube-scheduler"


def _edit(path: Path, prefix: str, fn) -> Evidence:
    ev = load(path)
    hits = [o for o in ev.api if o.path.split("?")[0] == prefix]
    assert hits, f"the recording has no GET {prefix}"
    for o in hits:
        d = json.loads(o.data)
        fn(d)
        o.data = json.dumps(d)
    return ev


def _replay(lab, ev: Evidence, tmp_path: Path):
    result, _ = replay_lab(lab["state"]["course"], LAB, save(ev, tmp_path / "edited.evidence.json"))
    return by_check(result)


@pytest.mark.cluster
def test_a_lease_whose_holder_stopped_fails_the_leading_check(lab, tmp_path):
    """recorded evidence: the live recording with the scheduler's Lease last renewed an hour ago (its holder
    stopped while its pod still shows Ready — a state the twins reach only for a moment), then held by a
    scheduler on another node. Both fail scheduler_leading with what was seen."""
    def stale(d):
        then = datetime.fromisoformat(d["spec"]["renewTime"].replace("Z", "+00:00")) - timedelta(hours=1)
        d["spec"]["renewTime"] = then.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    got = _replay(lab, _edit(lab["path"], LEASE_PATH, stale), tmp_path)
    assert str(got["scheduler_leading"].status) == "fail"
    assert "its holder stopped" in got["scheduler_leading"].actual and "15 s" in got["scheduler_leading"].expected

    def elsewhere(d):
        d["spec"]["holderIdentity"] = "worker_5b0c1f0e-1d55-4a38-9f5e-0c9a4d1f2b77"
    got = _replay(lab, _edit(lab["path"], LEASE_PATH, elsewhere), tmp_path)
    assert str(got["scheduler_leading"].status) == "fail" and got["scheduler_leading"].actual.startswith("worker_")


@pytest.mark.cluster
def test_a_1_36_failed_scheduling_message_with_its_preemption_note_passes(lab, tmp_path):
    """recorded evidence modelled on shared/realdata/pods-json (PodScheduled=False/Unschedulable with
    '... preemption: 0/1 nodes are available: ...', v1.28): `too-big`'s condition as 1.36 words it, the control
    plane's taint under its 1.24+ name. The unschedulable check and the unavailable-nodes answer (2) still pass."""
    message = ("0/2 nodes are available: 1 Insufficient cpu, 1 node(s) had untolerated taint "
               "{node-role.kubernetes.io/control-plane: }. preemption: 0/2 nodes are available: "
               "1 No preemption victims found for incoming pod, 1 Preemption is not helpful for scheduling..")

    def reword(d):
        for c in d["status"]["conditions"]:
            if c["type"] == "PodScheduled":
                c["message"] = message
    got = _replay(lab, _edit(lab["path"], f"/api/v1/namespaces/{NS}/pods/too-big", reword), tmp_path)
    assert str(got["unschedulable"].status) == "pass"
    assert str(got["unavailable_nodes_answer"].status) == "pass"


# -------------------------------------------------------------------------------------------------
# simulation: every check called on hand-made API objects (the shapes 1.20 and 1.36 return), pass and fail
# -------------------------------------------------------------------------------------------------

NOW = datetime(2026, 11, 30, 6, 0, 0, tzinfo=timezone.utc)


class _Host:
    def run(self, cmd, *args):
        from types import SimpleNamespace
        assert cmd == "date +%s"
        return SimpleNamespace(stdout=f"{int(NOW.timestamp())}\n", stderr="", rc=0)


class _Kube:
    """CoreV1Api/CoordinationV1Api stand-ins answering from dicts of kubernetes client objects."""

    def __init__(self, pods, events=(), lease=None, system_pods=()):
        from types import SimpleNamespace
        self._pods, self._events, self._lease, self._system = pods, list(events), lease, list(system_pods)
        self.core = SimpleNamespace(read_namespaced_pod=self.read_pod, list_namespaced_event=self.events,
                                    list_namespaced_pod=self.system)
        self.coordination = SimpleNamespace(read_namespaced_lease=self.lease)

    def read_pod(self, name, ns):
        from kubernetes.client.exceptions import ApiException
        if name not in self._pods:
            raise ApiException(status=404)
        return self._pods[name]

    def events(self, ns, field_selector):
        from types import SimpleNamespace
        name = field_selector.split("involvedObject.name=")[1]
        return SimpleNamespace(items=[e for e in self._events if e.involved_object.name == name])

    def system(self, ns, label_selector):
        from types import SimpleNamespace
        return SimpleNamespace(items=[p for p in self._system if p.metadata.labels.get("component") in label_selector])

    def lease(self, name, ns):
        return self._lease


class _Answers:
    def __init__(self, values):
        self.values = values

    def expect(self, key, live, where, same=None):
        from kubelab.engine.checks import CheckFailed
        given = self.values.get(key)
        if given is None:
            raise CheckFailed(f"an answer {key!r}", "none recorded", what=f"answer {key}")
        if given != str(live).strip():
            raise CheckFailed(f"the value of {where}", given, what=f"answer {key}")


def _sim_pod(name, node=None, created_s=0, managed=None, cond=None, uid=None):
    from kubernetes.client import (V1Container, V1ManagedFieldsEntry, V1ObjectMeta, V1Pod, V1PodCondition,
                                   V1PodSpec, V1PodStatus)
    return V1Pod(metadata=V1ObjectMeta(name=name, namespace=NS, uid=uid or f"uid-{name}",
                                       creation_timestamp=NOW - timedelta(seconds=600 - created_s),
                                       managed_fields=[V1ManagedFieldsEntry(manager=m, fields_v1=f)
                                                       for m, f in (managed or [])]),
                 spec=V1PodSpec(node_name=node, containers=[V1Container(name="main")]),
                 status=V1PodStatus(conditions=[V1PodCondition(type="PodScheduled", **cond)] if cond else None))


def _sim_event(pod, reason, component, message="", new_api=True):
    from kubernetes.client import CoreV1Event, V1EventSource, V1ObjectMeta, V1ObjectReference
    return CoreV1Event(metadata=V1ObjectMeta(name=f"{pod}.{reason}", creation_timestamp=NOW),
                       involved_object=V1ObjectReference(kind="Pod", name=pod, namespace=NS, uid=f"uid-{pod}"),
                       reason=reason, message=message, last_timestamp=NOW,
                       # events.k8s.io/v1 recorders (the scheduler since 1.19) leave `source` empty
                       source=V1EventSource() if new_api else V1EventSource(component=component),
                       reporting_component=component if new_api else None)


def _kubelet_events(pod):
    return [_sim_event(pod, r, "kubelet", new_api=False) for r in ("Pulled", "Created", "Started")]


def _sim_scheduler(ready="True", node="master"):
    from kubernetes.client import V1Container, V1ObjectMeta, V1Pod, V1PodCondition, V1PodSpec, V1PodStatus
    return V1Pod(metadata=V1ObjectMeta(name=f"kube-scheduler-{node}", labels={"component": "kube-scheduler"}),
                 spec=V1PodSpec(node_name=node, containers=[V1Container(name="kube-scheduler")]),
                 status=V1PodStatus(conditions=[V1PodCondition(type="Ready", status=ready)]))


def _sim_lease(holder="master_9d0c6a5e-61b7-4c1e-bd2f-1f0a2f7d8e11", age_s=1):
    from kubernetes.client import V1Lease, V1LeaseSpec, V1ObjectMeta
    return V1Lease(metadata=V1ObjectMeta(name="kube-scheduler", namespace="kube-system"),
                   spec=V1LeaseSpec(holder_identity=holder, lease_duration_seconds=15,
                                    renew_time=NOW - timedelta(seconds=age_s)))


BINDING_FIELDS = [("kubelet", {"f:status": {"f:phase": {}}})]
MANIFEST_NODENAME = [("kubectl-client-side-apply", {"f:spec": {"f:containers": {}, "f:nodeName": {}}})]
TOO_BIG = {"status": "False", "reason": "Unschedulable",
           "message": "0/2 nodes are available: 1 Insufficient cpu, 1 node(s) had taint "
                      "{node-role.kubernetes.io/master: }, that the pod didn't tolerate."}


def _sim_cluster(**change):
    pods = {"manual": _sim_pod("manual", "worker", 0, BINDING_FIELDS),
            "after": _sim_pod("after", "worker", 120, BINDING_FIELDS),
            "too-big": _sim_pod("too-big", cond=TOO_BIG)}
    pods.update(change.pop("pods", {}))
    events = change.pop("events", _kubelet_events("manual") + _kubelet_events("after") + [
        _sim_event("after", "Scheduled", "default-scheduler", "Successfully assigned lab08/after to worker")])
    return _Kube({k: v for k, v in pods.items() if v is not None}, events, change.pop("lease", _sim_lease()),
                 change.pop("system", [_sim_scheduler()]))


def _outcome(fn, *args):
    from kubelab.engine.checks import CheckFailed
    try:
        fn(*args)
    except CheckFailed as e:
        return e
    return "pass"


def test_sim_scheduler_checks_pass_and_fail():
    """simulation: the scheduler's static pod Ready (pass), missing (its manifest moved out) and not Ready (fail);
    its Lease held on the control plane and fresh (pass), an hour stale, or held from another node (fail)."""
    course = COURSE_MODEL
    hosts = {"master": _Host()}
    assert _outcome(G.test_scheduler_running, _sim_cluster(), course) == "pass"
    e = _outcome(G.test_scheduler_running, _sim_cluster(system=[]), course)
    assert "manifests" in e.actual
    e = _outcome(G.test_scheduler_running, _sim_cluster(system=[_sim_scheduler(ready="False")]), course)
    assert "Ready=False" in e.actual
    assert _outcome(G.test_scheduler_leading, _sim_cluster(), hosts, course) == "pass"
    e = _outcome(G.test_scheduler_leading, _sim_cluster(lease=_sim_lease(age_s=3600)), hosts, course)
    assert "3600 s ago" in e.actual
    e = _outcome(G.test_scheduler_leading, _sim_cluster(lease=_sim_lease(holder="worker_1")), hosts, course)
    assert e.actual == "worker_1"


def test_sim_manual_binding_pass_and_fail():
    """simulation: `manual` bound to the worker with only the kubelet's events (pass); on the control plane, with
    nodeName from its manifest, placed by the scheduler, or with no events left (fail, each saying which)."""
    course, hosts = COURSE_MODEL, {"master": _Host()}
    assert _outcome(G.test_manual_binding, _sim_cluster(), hosts, course) == "pass"
    e = _outcome(G.test_manual_binding, _sim_cluster(pods={"manual": _sim_pod("manual", "master")}), hosts, course)
    assert e.actual == "master"
    e = _outcome(G.test_manual_binding,
                 _sim_cluster(pods={"manual": _sim_pod("manual", "worker", 0, MANIFEST_NODENAME)}), hosts, course)
    assert "kubectl-client-side-apply" in e.actual and "not a Binding" in e.actual
    scheduled = _kubelet_events("manual") + [_sim_event("manual", "Scheduled", "default-scheduler",
                                                        "Successfully assigned lab08/manual to worker")]
    e = _outcome(G.test_manual_binding, _sim_cluster(events=scheduled), hosts, course)
    assert "Successfully assigned" in e.actual
    e = _outcome(G.test_manual_binding, _sim_cluster(events=[]), hosts, course)
    assert "none left" in e.actual and "--event-ttl" in e.actual
    e = _outcome(G.test_manual_binding, _sim_cluster(pods={"manual": None}), hosts, course)
    assert e.actual == "none"


def test_sim_scheduled_normally_pass_and_fail():
    """simulation: `after` with a Scheduled event from default-scheduler, reported the events.k8s.io way or the
    core/v1 way (pass); with only the kubelet's events, created before `manual`, or its events expired (fail)."""
    course, hosts = COURSE_MODEL, {"master": _Host()}
    assert _outcome(G.test_scheduled_normally, _sim_cluster(), hosts, course) == "pass"
    old_style = _kubelet_events("after") + [_sim_event("after", "Scheduled", "default-scheduler",
                                                       "Successfully assigned lab08/after to worker", new_api=False)]
    assert _outcome(G.test_scheduled_normally, _sim_cluster(events=old_style), hosts, course) == "pass"
    e = _outcome(G.test_scheduled_normally, _sim_cluster(events=_kubelet_events("after")), hosts, course)
    assert "(kubelet)" in e.actual and "Scheduled event" in e.expected
    e = _outcome(G.test_scheduled_normally,
                 _sim_cluster(pods={"after": _sim_pod("after", "worker", -60, BINDING_FIELDS)}), hosts, course)
    assert "created after manual" in e.expected
    e = _outcome(G.test_scheduled_normally, _sim_cluster(events=_kubelet_events("manual")), hosts, course)
    assert "none left" in e.actual


def test_sim_unschedulable_pass_and_fail():
    """simulation: `too-big` Pending with PodScheduled=False/Unschedulable naming Insufficient cpu, in 1.20's words
    and 1.36's (pass); Pending for a nodeSelector instead, scheduled after all, or never looked at (fail)."""
    assert _outcome(G.test_unschedulable, _sim_cluster()) == "pass"
    v136 = dict(TOO_BIG, message="0/2 nodes are available: 1 Insufficient cpu, 1 node(s) had untolerated taint "
                                 "{node-role.kubernetes.io/control-plane: }. preemption: 0/2 nodes are available: "
                                 "1 No preemption victims found for incoming pod, 1 Preemption is not helpful for "
                                 "scheduling..")
    assert _outcome(G.test_unschedulable, _sim_cluster(pods={"too-big": _sim_pod("too-big", cond=v136)})) == "pass"
    selector = dict(TOO_BIG, message="0/2 nodes are available: 2 node(s) didn't match node selector.")
    e = _outcome(G.test_unschedulable, _sim_cluster(pods={"too-big": _sim_pod("too-big", cond=selector)}))
    assert "didn't match" in e.actual
    e = _outcome(G.test_unschedulable, _sim_cluster(pods={"too-big": _sim_pod("too-big", "worker")}))
    assert "scheduled on worker" in e.actual
    e = _outcome(G.test_unschedulable, _sim_cluster(pods={"too-big": _sim_pod("too-big")}))
    assert "no scheduler has looked" in e.actual


def test_sim_answers_pass_and_fail():
    """simulation: the three answers right (pass), wrong (fail, the learner's value shown, never the live one),
    missing (fail)."""
    kube = _sim_cluster()
    right = _Answers({"lease_holder": "master_9d0c6a5e-61b7-4c1e-bd2f-1f0a2f7d8e11", "scheduled_node": "worker",
                      "unavailable_nodes": "2"})
    for fn in (G.test_lease_holder_answer, G.test_scheduled_node_answer, G.test_unavailable_nodes_answer):
        assert _outcome(fn, kube, right) == "pass"
    wrong = _Answers({"lease_holder": "master_0ld", "scheduled_node": "master", "unavailable_nodes": "0"})
    for fn, given in ((G.test_lease_holder_answer, "master_0ld"), (G.test_scheduled_node_answer, "master"),
                      (G.test_unavailable_nodes_answer, "0")):
        e = _outcome(fn, kube, wrong)
        assert e.actual == given and "9d0c6a5e" not in e.expected and "worker" not in e.expected
    e = _outcome(G.test_scheduled_node_answer, kube, _Answers({}))
    assert e.actual == "none recorded"
