"""A real kubeadm v1.20.2 cluster on the lab twins (issue 5): the engine's `kube` client against the real API
server, grader-style checks passing on the healthy cluster and failing after deliberate breaks (each put back and
checked), evidence replaying to the same result. On the session's shared cluster (tests/conftest.py); that `down`
leaves the host clean is tests/test_cluster_down.py, which takes the shared cluster down last.

The cluster is built offline from Debian's archive (kubelab/cluster/build.py; ~8 min cold, cached after) and
is a test target only. Not in Debian and so not used here: crictl (the checks use `ctr -n k8s.io`) and CoreDNS
(Services are reached by ClusterIP). Every missing precondition fails with a one-line reason, never skips.
"""

from __future__ import annotations

import base64
import calendar
import ssl
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from helpers import make_course, settled_time, wait_for
from kubelab.course import load_course
from kubelab.engine.kube import Kube
from kubelab.engine.runner import run_lab
from kubelab.engine.targets import SshConfigTarget
from kubelab.evidence import comparable, record_lab, replay_lab, save

pytestmark = [pytest.mark.twins, pytest.mark.cluster]

REPO = Path(__file__).resolve().parents[1]
GRADER = (Path(__file__).parent / "cluster_probe_grader.py").read_text()
KUBECTL = "kubectl --kubeconfig=/etc/kubernetes/admin.conf"
@pytest.fixture(scope="module")
def cluster(shared_cluster):
    """The session's shared kubeadm cluster. Every break here is put back and the restore checked; a restore that
    does not come marks the cluster dirty, so the next module gets a new one."""
    return shared_cluster


@pytest.fixture
def restored(cluster):
    """For a test that breaks the cluster and checks its own restore: a test that fails (its restore unchecked or
    failed) marks the shared cluster dirty."""
    ok = {"passed": False}
    yield ok
    if not ok["passed"]:
        cluster["dirty"] = True


def _ssh(ts, node: str, cmd: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(["ssh", "-F", str(ts.ssh_config_file()), node, f"sudo -n {cmd}"],
                          capture_output=True, text=True, timeout=timeout)


def _probe_course(tmp_path: Path):
    return load_course(make_course(tmp_path, GRADER))


def _statuses(result) -> dict[str, str]:
    return {c.check: str(c.status) for c in result.checks}


def test_kube_client_talks_tls_to_the_real_api_server(cluster):
    course = cluster["course"]
    target = SshConfigTarget(course, cluster["ts"].ssh_config_file())
    kube = Kube(target.host("master"), "master")
    try:
        assert kube.version.git_version == "v1.20.2"
        names = sorted(n.metadata.name for n in kube.core.list_node().items)
        assert names == ["master", "worker"]
        conf = kube.kubeconfig
        assert conf["clusters"][0]["cluster"]["server"] == "https://192.168.56.10:6443"
        assert "client-certificate-data" in conf["users"][0]["user"]
        # without the admin client certificate the API server refuses (TLS verified against the cluster CA)
        ca = base64.b64decode(conf["clusters"][0]["cluster"]["certificate-authority-data"])
        with tempfile.NamedTemporaryFile() as f:
            f.write(ca)
            f.flush()
            ctx = ssl.create_default_context(cafile=f.name)
            with pytest.raises(urllib.error.HTTPError) as e:
                urllib.request.urlopen("https://192.168.56.10:6443/api/v1/nodes", context=ctx, timeout=10)
            assert e.value.code in (401, 403)
    finally:
        kube.close()
        target.close()


def test_service_answers_from_every_node(cluster):
    ts = cluster["ts"]
    ip = _ssh(ts, "master", "kubectl --kubeconfig=/etc/kubernetes/admin.conf get svc bb -o jsonpath={.spec.clusterIP}").stdout
    assert ip, "no ClusterIP for bb"
    for node in ("master", "worker"):
        answers = {_ssh(ts, node, f"curl -s -m 3 http://{ip}/").stdout.strip() for _ in range(6)}
        assert answers and all(a.startswith("bb-") for a in answers), (node, answers)


def test_probe_grader_passes_on_the_healthy_cluster_and_replays(cluster, tmp_path):
    course = _probe_course(tmp_path)
    target = SshConfigTarget(course, cluster["ts"].ssh_config_file())
    try:
        live, evidence = record_lab(course, "lab90", target)
    finally:
        target.close()
    got = _statuses(live)
    expected = {c: "pass" for c in got if c != "needs_newer"} | {"needs_newer": "skipped"}
    assert got == expected, [(c.check, c.status, c.expected, c.actual, c.message) for c in live.checks
                             if str(c.status) != expected[c.check]]
    skipped = next(c for c in live.checks if c.check == "needs_newer")
    assert skipped.message.startswith("needs >= 1.30"), skipped.message
    assert live.max_score == sum(c.max_points for c in live.checks if c.check != "needs_newer")
    path = save(evidence, tmp_path / "cluster.json")
    replayed, _ = replay_lab(course, "lab90", path)
    assert comparable(replayed.to_dict()) == comparable(live.to_dict())


def test_scheduler_moved_out_leaves_a_new_pod_pending(cluster, restored, tmp_path):
    """real 1.20 cluster on twins: the scheduler's manifest moved out — a new pod stays Pending and the
    scheduler's Lease runs out; put back, the scheduler is running and holds its Lease again. Graded on virtual time
    once the Lease ran out (nothing schedules meanwhile): pods_scheduled's polls give up at once."""
    ts = cluster["ts"]
    course = _probe_course(tmp_path)
    moved = _ssh(ts, "master", "mv /etc/kubernetes/manifests/kube-scheduler.yaml /root/")
    assert moved.returncode == 0, moved.stderr
    try:
        # kubelet stops the static pod and deletes its mirror pod after the manifest's removal
        wait_for(lambda: _ssh(ts, "master", f"{KUBECTL} -n kube-system get pod kube-scheduler-master").returncode,
                 "the scheduler's mirror pod to go after its manifest was moved out", until=lambda rc: rc != 0)
        made = _ssh(ts, "master", f"{KUBECTL} run probe-pending "
                                  "--image=docker.io/local/busybox:debian --image-pull-policy=Never -- sleep 3600")
        assert made.returncode == 0, made.stderr
        wait_for(lambda: _scheduler_lease_age(ts), "the scheduler's Lease to run out (age > leaseDurationSeconds)",
                 until=lambda al: al[0] > al[1], timeout_s=90)
        target = SshConfigTarget(course, ts.ssh_config_file())
        try:
            result = run_lab(course, "lab90", target, **settled_time())  # nothing schedules while it grades
        finally:
            target.close()
        got = {c.check: c for c in result.checks}
        assert str(got["pods_scheduled"].status) == "fail", got["pods_scheduled"]
        assert "probe-pending" in got["pods_scheduled"].actual
        assert str(got["scheduler_lease"].status) == "fail"
    finally:
        # the pod first, while nothing schedules it (a started `sleep` would hold its 30 s grace period)
        gone = _ssh(ts, "master", f"{KUBECTL} delete pod probe-pending --ignore-not-found --wait=true", timeout=120)
        back = _ssh(ts, "master", "mv /root/kube-scheduler.yaml /etc/kubernetes/manifests/")
    assert back.returncode == 0 and gone.returncode == 0, (back.stderr, gone.stderr)
    # restored for the next test: the scheduler's mirror pod Ready and its Lease renewed within its duration
    ready = _ssh(ts, "master", f"{KUBECTL} -n kube-system wait --for=condition=Ready pod/kube-scheduler-master "
                               "--timeout=120s", timeout=150)
    assert ready.returncode == 0, ready.stdout + ready.stderr
    wait_for(lambda: _scheduler_lease_age(ts), "the restored scheduler to renew its Lease",
             until=lambda al: al[0] <= al[1], timeout_s=90)
    restored["passed"] = True


def _scheduler_lease_age(ts) -> tuple[int, int]:
    """(seconds since the kube-scheduler Lease was renewed, its leaseDurationSeconds), by the control plane's clock."""
    out = _ssh(ts, "master", f"sh -c 'date +%s; {KUBECTL} -n kube-system get lease kube-scheduler "
                             "-o jsonpath=\"{.spec.renewTime} {.spec.leaseDurationSeconds}\"'").stdout.split()
    assert len(out) == 3, out
    renewed = calendar.timegm(time.strptime(out[1].split(".")[0].rstrip("Z"), "%Y-%m-%dT%H:%M:%S"))
    return int(out[0]) - renewed, int(out[2])


def _worker_ready(ts) -> str:
    """The worker Node's Ready condition as the API server holds it: True, False or Unknown."""
    return _ssh(ts, "master", f"{KUBECTL} get node worker -o "
                              "jsonpath='{.status.conditions[?(@.type==\"Ready\")].status}'").stdout.strip()


def test_worker_kubelet_stopped_makes_the_node_not_ready(cluster, restored, tmp_path):
    """real 1.20 cluster on twins: the worker's kubelet stopped — once the node controller marks it (its Lease
    stale for node-monitor-grace-period), nodes_ready fails naming the worker; kubelet started again, Ready again.
    The wait for NotReady is real; the grading after it is on virtual time (the kubelet stays stopped meanwhile)."""
    ts = cluster["ts"]
    course = _probe_course(tmp_path)
    stopped = _ssh(ts, "worker", "systemctl stop kubelet")
    assert stopped.returncode == 0, stopped.stderr
    try:
        wait_for(lambda: _worker_ready(ts), "the node controller to mark the worker not Ready",
                 until=lambda s: s in ("False", "Unknown"), timeout_s=120)
        target = SshConfigTarget(course, ts.ssh_config_file())
        try:
            result = run_lab(course, "lab90", target, **settled_time())  # the kubelet stays stopped while it grades
        finally:
            target.close()
    finally:
        started = _ssh(ts, "worker", "systemctl start kubelet")
    assert started.returncode == 0, started.stderr
    nodes = next(c for c in result.checks if c.check == "nodes_ready")
    assert str(nodes.status) == "fail", nodes
    assert "worker=NotReady" in nodes.actual, nodes.actual
    assert "master=Ready" in nodes.actual, nodes.actual
    ready = _ssh(ts, "master", f"{KUBECTL} wait --for=condition=Ready node/worker --timeout=120s", timeout=150)
    assert ready.returncode == 0, ready.stdout + ready.stderr  # restored for the next test
    restored["passed"] = True
