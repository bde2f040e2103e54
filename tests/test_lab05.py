"""Lab 5 — pod network and join: the grader against a real kubeadm v1.20.2 cluster on the twins (init, join of the
worker, a bridge + host-local pod network, kube-proxy), healthy and after deliberate breaks, and from evidence.

Kinds of proof, named in every test's docstring:

- "real 1.20 cluster on twins": graded live (recorded, and the recording replayed to the same result).
- "recorded evidence modelled on shared/realdata/…": the twins run no flannel (no registry here), so the
  flannel-specific checks are proven on evidence: a live recording of the real cluster with flannel's objects
  added — a DaemonSet kube-flannel/kube-flannel-ds whose pod has the containers install-cni-plugin, install-cni
  and kube-flannel (as in shared/realdata/crictl), the kube-flannel-cfg ConfigMap and container args of flannel's
  v0.28 release manifest, the FLANNEL-* iptables chains' pod range (shared/realdata/iptables-save), the node
  annotation flannel writes, and a Vagrant VM's interfaces (eth0 10.0.2.15 NAT, eth1 on the private network).
  Other states that a twin cannot take (a NAT InternalIP, a controller manager with another --cluster-cidr) are
  proven the same way, from the live recording with that one field changed (node JSON as in
  shared/realdata/nodes-json, controller-manager flags as in shared/realdata/static-pod-manifests).

The notebook's own commands (kubeadm 1.36, flannel v0.28.4 from the internet) cannot run here; the test pod it
creates (`net-test`, on the worker, with a containerPort) is created by this module the same way.

The smoke test (Step 6) runs from the notebook's own cells, in a real kernel, on the real cluster, with three
STAND-INS, each because the real part cannot exist here, and each named where it is made:
- cluster DNS: Debian has no CoreDNS, so kubelab.cluster.dns_standin runs Debian's dnsmasq behind the `kube-dns`
  Service at the kubelet's clusterDNS (10.96.0.10). Its records are static (a hosts file made from the Services
  that exist), refreshed by this module after the notebook creates Service `web` — CoreDNS would watch them.
- image busybox:1.37: no registry here; the twins' busybox (Debian's busybox-static) is imported under that name,
  with a link per applet as in the official image (the notebook runs `sleep`, `nslookup`, `wget` directly).
- the control-plane taint: 1.20's kubeadm taints node-role.kubernetes.io/master; 1.36's (>= 1.25) taints
  node-role.kubernetes.io/control-plane, which the notebook's Deployment tolerates. The module swaps the taint for
  the smoke test and puts 1.20's back at the end.
"""

from __future__ import annotations

import json
import re
import subprocess
import tarfile
import time
from pathlib import Path

import pytest

from helpers import execute_notebook, make_course, wait_for
from kubelab.cluster import build, dns_standin
from kubelab.cluster import cluster as cl
from kubelab.course import load_course
from kubelab.engine.runner import run_lab
from kubelab.engine.targets import SshConfigTarget
from kubelab.evidence import comparable, record_lab, replay_lab, save
from kubelab.evidence.model import ApiObservation, CommandObservation, Evidence, load

pytestmark = [pytest.mark.twins, pytest.mark.cluster, pytest.mark.leaves_cluster_dirty]

REPO = Path(__file__).resolve().parents[1]
LAB = "lab05"
GRADER_SOURCE = (REPO / "graders" / "lab05_network_and_join.py").read_text()
KUBECTL = "kubectl --kubeconfig=/etc/kubernetes/admin.conf"
FLANNEL_CHECKS = {"flannel_ready", "flannel_network", "flannel_iface", "flannel_public_ip"}

TEST_POD = """apiVersion: v1
kind: Pod
metadata: {name: net-test, namespace: default, labels: {app: net-test}}
spec:
  nodeSelector: {kubernetes.io/hostname: worker}
  containers:
  - name: web
    image: %(image)s
    imagePullPolicy: Never
    command: ["/bin/sh", "-c", "mkdir -p /www && hostname > /www/index.html && exec busybox httpd -f -p 8080 -h /www"]
    ports: [{containerPort: 8080}]
"""


def _ssh(ts, node: str, cmd: str, timeout: float = 60, input: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(["ssh", "-F", str(ts.ssh_config_file()), node, f"sudo -n {cmd}"],
                          capture_output=True, text=True, timeout=timeout, input=input)


@pytest.fixture(scope="module")
def cluster(shared_cluster, tmp_path_factory):
    """The session's shared kubeadm cluster (tests/conftest.py) with the notebook's test pod on the worker and its
    smoke test (Step 6, run from the notebook's cells) in namespace smoke. This module breaks the cluster for good
    at its end (the worker taken out) and swaps the control-plane taint, so it marks the shared cluster dirty: the
    next module gets a new one."""
    course, ts = shared_cluster["course"], shared_cluster["ts"]
    t0 = time.monotonic()
    try:
        made = _ssh(ts, "master", f"{KUBECTL} apply -f -", input=TEST_POD % {"image": build.BUSYBOX_IMAGE})
        assert made.returncode == 0, made.stderr
        ready = _ssh(ts, "master", f"{KUBECTL} wait --for=condition=Ready pod/net-test --timeout=120s", timeout=150)
        assert ready.returncode == 0, ready.stderr
        state = {"course": course, "ts": ts, "timings": shared_cluster["timings"]}
        state["smoke_cells"] = _smoke_test_from_the_notebook(state, tmp_path_factory.mktemp("smoke"))
        state["up_s"] = time.monotonic() - t0
        print(f"test pod and smoke test up on the shared cluster in {state['up_s']:.1f}s")
        yield state
    finally:
        shared_cluster["dirty"] = True


NOTEBOOK_BUSYBOX = "docker.io/library/busybox:1.37"  # what the notebook's `busybox:1.37` normalizes to
CONTROL_PLANE_TAINT_1_36 = "node-role.kubernetes.io/control-plane:NoSchedule"
CONTROL_PLANE_TAINT_1_20 = "node-role.kubernetes.io/master:NoSchedule"


def _busybox_as_notebook_image(tmp: Path) -> Path:
    """STAND-IN image for busybox:1.37 (no registry here): the twins' busybox binary (Debian's busybox-static, from
    the cluster build's busybox image) with /bin/<applet> links as in the official image."""
    with tarfile.open(build.cached().images / "busybox.tar") as outer:
        manifest = json.load(outer.extractfile("manifest.json"))
        layer = tarfile.open(fileobj=outer.extractfile(manifest[0]["Layers"][0]))
        binary = layer.extractfile("bin/busybox").read()
    exe = tmp / "busybox"
    exe.write_bytes(binary)
    exe.chmod(0o755)
    applets = subprocess.run([str(exe), "--list"], capture_output=True, text=True, check=True).stdout.split()
    out = tmp / "busybox-1.37.tar"
    build.write_docker_archive(out, NOTEBOOK_BUSYBOX, {"bin/busybox": binary}, ["/bin/sh"],
                               links={f"bin/{a}": "busybox" for a in applets if a != "busybox"})
    return out


def _import_image(ts, node: str, tar: Path) -> None:
    with open(tar, "rb") as f:
        r = subprocess.run(["ssh", "-F", str(ts.ssh_config_file()), node, "sudo -n ctr -n k8s.io images import -"],
                           stdin=f, capture_output=True, timeout=180)
    assert r.returncode == 0, r.stderr.decode()


def _master_kubectl(ts, args: str, timeout: float = 120, input: str | None = None) -> str:
    r = _ssh(ts, "master", f"{KUBECTL} {args}", timeout=timeout, input=input)
    assert r.returncode == 0, (args, r.stderr)
    return r.stdout


def refresh_dns_standin(ts, course) -> None:
    """The stand-in's records rewritten from the Services that exist now, and its pod restarted on them."""
    services = json.loads(_master_kubectl(ts, "get services -A -o json"))
    _master_kubectl(ts, "apply -f -", input=dns_standin.manifest(str(course.model.network.service_cidr),
                                                                  dns_standin.records(services)))
    _master_kubectl(ts, f"-n kube-system rollout restart deployment/{dns_standin.NAME}")
    _master_kubectl(ts, f"-n kube-system rollout status deployment/{dns_standin.NAME} --timeout=120s", timeout=150)


def _smoke_test_from_the_notebook(state, tmp: Path) -> dict[str, str]:
    """The stand-ins in place, then the notebook's smoke-test cell in a real kernel; the stand-in DNS refreshed
    for the new Service, then the notebook's own check cell. Returns each cell's printed output."""
    import nbformat

    ts, course = state["ts"], state["course"]
    busybox = _busybox_as_notebook_image(tmp)
    standin = dns_standin.image_tar()
    for n in course.model.nodes:
        _import_image(ts, n.name, busybox)
        _import_image(ts, n.name, standin)
    cp = course.model.control_plane.name
    _master_kubectl(ts, f"taint node {cp} {CONTROL_PLANE_TAINT_1_20[:-len(':NoSchedule')]}:NoSchedule-")
    _master_kubectl(ts, f"taint node {cp} {CONTROL_PLANE_TAINT_1_36}")
    # Lab 4 leaves the lab user a ~/.kube/config (the notebook's kubectl runs without --kubeconfig)
    r = subprocess.run(["ssh", "-F", str(ts.ssh_config_file()), cp,
                        "mkdir -p ~/.kube && sudo -n cat /etc/kubernetes/admin.conf > ~/.kube/config "
                        "&& chmod 600 ~/.kube/config"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    refresh_dns_standin(ts, course)
    source = nbformat.read(course.solution_path(LAB), as_version=4)
    by_id = {c.metadata.get("nbgrader", {}).get("grade_id"): c for c in source.cells}
    env = {"KUBELAB_SSH_CONFIG": str(ts.ssh_config_file()), "KUBELAB_COURSE": str(REPO)}
    outputs = {}
    for cells in (["load-extension", "smoke-test"], ["load-extension", "check-smoke"]):
        nb = nbformat.v4.new_notebook(cells=[by_id[c] for c in cells], metadata=source.metadata)
        execute_notebook(nb, tmp, env, timeout=400, drop=("NBGRADER_EXECUTION",))
        outputs[cells[1]] = "".join(o.get("text", "") for o in nb.cells[1].outputs)
        if cells[1] == "smoke-test":  # the stand-in learns of Service web (CoreDNS would watch for it)
            refresh_dns_standin(ts, course)
    return outputs


def _target(state, course=None):
    return SshConfigTarget(course or state["course"], state["ts"].ssh_config_file())


def settled_real_time() -> dict:
    """run_lab's clock for a broken state that stays as it is while the checks poll (a rule, a moved file, a
    scaled-down Deployment, with nothing running that would put it back): the sleeps between a polling check's
    observations are skipped, the time the observations themselves take still counts. So a check observes exactly
    as often as on real time (here many failures are timeouts: curl -m 5, kubectl under `timeout`), never more,
    as helpers.settled_time's purely virtual clock would (a wait_s=20 check whose every look takes 5 s makes 8
    looks on it, 3-4 on real time). Not for a state still on its way (a stopped kubelet's node turning NotReady)."""
    skipped = [0.0]

    def sleep(seconds: float) -> None:
        skipped[0] += max(0.0, seconds)

    return {"clock": lambda: time.monotonic() + skipped[0], "sleep": sleep}


def _grade(state, course=None, settled: bool = False):
    target = _target(state, course)
    t0 = time.monotonic()
    try:
        result = run_lab(course or state["course"], LAB, target, **(settled_real_time() if settled else {}))
    finally:
        target.close()
    # printed, never asserted (benchmarks time, tests do not): where a slow grading spends its time
    slow = sorted(((c.duration_s or 0, c.id) for c in result.checks), reverse=True)[:4]
    print(f"lab05 graded in {time.monotonic() - t0:.1f}s (settled={settled}); slowest checks: {slow}")
    return result


def _by_id(result) -> dict:
    return {c.id: c for c in result.checks}


def _statuses(result) -> dict[str, str]:
    return {c.id: str(c.status) for c in result.checks}


def _bridge_course(tmp_path):
    """A copy of the course whose CNI is not flannel (what the twins run): the flannel checks do not apply."""
    def mutate(data):
        data["versions"]["cni"] = {"name": "bridge", "version": "v1"}
    return load_course(make_course(tmp_path, GRADER_SOURCE, lab_id=LAB, mutate=mutate))


def _worker_ready(ts) -> str:
    """The worker Node's Ready condition as the API server holds it: True, False or Unknown."""
    return _ssh(ts, "master", f"{KUBECTL} get node worker -o "
                              "jsonpath='{.status.conditions[?(@.type==\"Ready\")].status}'").stdout.strip()


def _grade_broken(cluster, tmp_path, node: str, brk: str, restore: str, settled: bool = False):
    """Break one thing on a node, grade with the non-flannel course copy, put it back; the grading result.
    `settled`: the break stays as it is until put back, graded on settled_real_time()."""
    ts = cluster["ts"]
    broke = _ssh(ts, node, brk)
    assert broke.returncode == 0, (brk, broke.stderr)
    try:
        result = _grade(cluster, _bridge_course(tmp_path), settled=settled)
    finally:
        back = _ssh(ts, node, restore)
    assert back.returncode == 0, (restore, back.stderr)
    return result


# -------------------------------------------------------------------------------------------------
# live on the real cluster
# -------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def recorded(cluster, tmp_path_factory):
    """Evidence of the healthy joined cluster, graded live with the real course (CNI flannel) — recorded first
    in the module, before any break."""
    course = cluster["course"]
    target = _target(cluster)
    t0 = time.monotonic()
    try:
        live, evidence = record_lab(course, LAB, target)
    finally:
        target.close()
    took = time.monotonic() - t0
    print(f"lab05 graded live (recording) in {took:.1f}s")
    path = save(evidence, tmp_path_factory.mktemp("lab05") / "healthy.evidence.json")
    return {"live": live, "path": path, "grade_s": took}


def test_joined_cluster_passes_every_cni_agnostic_check_and_replays(cluster, recorded):
    """real 1.20 cluster on twins: every CNI-agnostic check passes on both nodes; with the course's CNI flannel
    and no flannel on the twins, flannel_ready fails with its hint and the other flannel checks are blocked.
    The recording replays to the same result."""
    live = recorded["live"]
    got = _statuses(live)
    for cid, status in got.items():
        check = cid.split("[")[0]
        if check == "flannel_ready":
            assert status == "fail", (cid, status)
        elif check in FLANNEL_CHECKS:
            assert status == "blocked", (cid, status)
        else:
            assert status == "pass", [(c.id, c.status, c.expected, c.actual, c.message) for c in live.checks
                                      if c.id == cid]
    ids = set(got)
    for per_node in ("cni_config", "node_registered", "node_ip", "node_pod_cidr", "node_ready"):
        assert {f"{per_node}[master]", f"{per_node}[worker]"} <= ids
    for worker_only in ("csr_approved", "kubelet_credentials", "bootstrap_gone"):
        assert f"{worker_only}[worker]" in ids and f"{worker_only}[master]" not in ids
    fl = _by_id(live)["flannel_ready[cluster]"]
    assert "app=flannel" in fl.expected and fl.actual == "none" and "kube-flannel.yml" in fl.hint
    replayed, _ = replay_lab(cluster["course"], LAB, recorded["path"])
    assert comparable(replayed.to_dict()) == comparable(live.to_dict())


SMOKE_CHECKS = ("smoke_web_spread", "smoke_service_endpoints", "smoke_dns", "smoke_service_by_name",
                "smoke_pod_to_pod", "smoke_exec", "smoke_port_forward")


def test_smoke_test_cells_run_live_and_every_smoke_check_passes(cluster, recorded):
    """real 1.20 cluster on twins (with the DNS, image and taint STAND-INS named in the module docstring): the
    notebook's smoke-test cell creates namespace smoke, Deployment web on both nodes, Service web and pod client;
    its check cell then finds every path working (DNS by name through the kube-dns Service, the Service, pod to pod
    across nodes, logs/exec, port-forward); every smoke check passes live, and the web pods it saw are the
    notebook's."""
    out = cluster["smoke_cells"]
    assert "deployment \"web\" successfully rolled out" in out["smoke-test"], out["smoke-test"]
    check = out["check-smoke"]
    for line in ("✓ web runs on 2 nodes", "✓ web.smoke.svc.cluster.local answered: web-", "across nodes) answered",
                 "✓ port-forward answered: web-"):
        assert line in check, check
    assert check.count("✓ logs and exec of pod/web-") == 2, check
    got = _by_id(recorded["live"])
    assert {f"{c}[cluster]": str(got[f"{c}[cluster]"].status) for c in SMOKE_CHECKS} == \
        {f"{c}[cluster]": "pass" for c in SMOKE_CHECKS}


def _smoke_grade(cluster, tmp_path, brk: str, restore: str, settled, restored):
    """Break the smoke test with kubectl on the control plane, wait for the state, grade, put it back. Once the
    state is there it stays (nothing in the cluster undoes a kubectl patch or scale): graded on settled_real_time()."""
    ts = cluster["ts"]
    _master_kubectl(ts, brk)
    try:
        wait_for(lambda: _master_kubectl(ts, settled[0]), settled[1], until=settled[2], timeout_s=120)
        result = _grade(cluster, _bridge_course(tmp_path), settled=True)
    finally:
        _master_kubectl(ts, restore)
        _master_kubectl(ts, restored, timeout=200)
    return {cid.split("[")[0]: c for cid, c in _by_id(result).items() if cid.startswith("smoke_")}


# kubectl 1.20's jsonpath prints an EndpointSlice's null `endpoints` as <nil>
NO_ENDPOINTS = ("", "[]", "<nil>")


def test_smoke_service_selecting_nothing_fails_its_checks_live(cluster, recorded, tmp_path):
    """real 1.20 cluster on twins (stand-ins as in the module docstring): Service web's selector app=wbe (a typo):
    smoke_service_endpoints fails (no addresses), so do the Service by name and port-forward to it; DNS, the pods,
    pod to pod and exec still pass. Put back before the next test."""
    pods = "-n smoke get endpointslices -l kubernetes.io/service-name=web -o jsonpath={.items[*].endpoints}"
    got = _smoke_grade(cluster, tmp_path, """-n smoke patch service web -p '{"spec":{"selector":{"app":"wbe"}}}'""",
                       """-n smoke patch service web -p '{"spec":{"selector":{"app":"web"}}}'""",
                       (pods, "Service web to have no endpoints", lambda out: out.strip() in NO_ENDPOINTS),
                       "-n smoke get service web")
    wait_for(lambda: _master_kubectl(cluster["ts"], pods), "Service web's endpoints back",
             until=lambda out: out.strip() not in NO_ENDPOINTS)
    status = {k: str(c.status) for k, c in got.items()}
    assert status == {"smoke_web_spread": "pass", "smoke_service_endpoints": "fail", "smoke_dns": "pass",
                      "smoke_service_by_name": "fail", "smoke_pod_to_pod": "pass", "smoke_exec": "pass",
                      "smoke_port_forward": "fail"}, status
    ep = got["smoke_service_endpoints"]
    # the message: what the grader looked at (the Service's selector among it), then the engine's wait
    assert ep.actual == "(none)" and ep.expected.count(".") == 6 and "selector" in ep.hint, (ep.actual, ep.expected)
    assert ep.message.startswith("ready addresses in the EndpointSlices of Service smoke/web (selector {'app': 'wbe'}") \
        and ep.message.endswith(": still not so after waiting 10s"), ep.message
    assert "no answer" in got["smoke_service_by_name"].actual


def test_smoke_deployment_at_one_replica_fails_the_spread_live(cluster, recorded, tmp_path):
    """real 1.20 cluster on twins (stand-ins as in the module docstring): the Deployment at one replica:
    smoke_web_spread fails naming the one node; the checks built on it are blocked. Put back (2 replicas, rolled
    out) before the next test."""
    one = "-n smoke get pods -l app=web -o name"
    got = _smoke_grade(cluster, tmp_path, "-n smoke scale deployment web --replicas=1",
                       "-n smoke scale deployment web --replicas=2",
                       (one, "one web pod left", lambda out: len(out.split()) == 1),
                       "-n smoke rollout status deployment/web --timeout=180s")
    status = {k: str(c.status) for k, c in got.items()}
    assert status == {"smoke_web_spread": "fail", "smoke_service_endpoints": "blocked", "smoke_dns": "pass",
                      "smoke_service_by_name": "blocked", "smoke_pod_to_pod": "blocked", "smoke_exec": "blocked",
                      "smoke_port_forward": "blocked"}, status
    spread = got["smoke_web_spread"]
    assert spread.expected == "master, worker" and spread.actual in ("master", "worker"), (spread.expected, spread.actual)


def test_smoke_cluster_dns_down_fails_the_lookup_live(cluster, recorded, tmp_path):
    """real 1.20 cluster on twins (the DNS STAND-IN of the module docstring scaled to 0, as CoreDNS down would be):
    smoke_dns fails with no answer, the Service by name is blocked, the other smoke checks pass. Put back."""
    dns = "-n kube-system get pods -l k8s-app=kube-dns -o name"
    got = _smoke_grade(cluster, tmp_path, f"-n kube-system scale deployment {dns_standin.NAME} --replicas=0",
                       f"-n kube-system scale deployment {dns_standin.NAME} --replicas=1",
                       (dns, "the DNS stand-in's pod gone", lambda out: out.strip() == ""),
                       f"-n kube-system rollout status deployment/{dns_standin.NAME} --timeout=120s")
    status = {k: str(c.status) for k, c in got.items()}
    assert status == {"smoke_web_spread": "pass", "smoke_service_endpoints": "pass", "smoke_dns": "fail",
                      "smoke_service_by_name": "blocked", "smoke_pod_to_pod": "pass", "smoke_exec": "pass",
                      "smoke_port_forward": "pass"}, status
    d = got["smoke_dns"]
    assert d.actual.startswith("no answer") and "kube-dns" in d.hint and d.expected.startswith("an answer with 10."), (d.expected, d.actual)


def test_kubelet_port_blocked_on_the_worker_fails_exec_and_logs_live(cluster, recorded, tmp_path):
    """real 1.20 cluster on twins: port 10250 rejected on the worker (a firewall between the API server and the
    kubelet): smoke_exec fails for the web pod on the worker only (logs and exec), pod_logs of net-test fails; the
    node stays Ready (the kubelet still reaches the API server). Rejected with a TCP reset, so every attempt is
    refused at once rather than left to a dial timeout if the ICMP answer is lost; the rule stays until deleted,
    so graded on settled_real_time()."""
    rule = "INPUT -p tcp --dport 10250 -j REJECT --reject-with tcp-reset"
    result = _grade_broken(cluster, tmp_path, "worker", f"iptables -I {rule}", f"iptables -D {rule}", settled=True)
    got = _by_id(result)
    ex = got["smoke_exec[cluster]"]
    assert str(ex.status) == "fail", (ex.status, ex.actual)
    # per pod "<pod> on <node>=logs=..., exec=...": the master's pod answers both, the worker's neither
    master_part, worker_part = sorted(ex.actual.split(", web-"), key=lambda p: " on worker=" in p)
    assert " on master=logs=ok, exec=web-" in master_part and " on worker=logs=HTTP" in worker_part \
        and "exec=failed (" in worker_part, ex.actual
    assert str(got["pod_logs[cluster]"].status) == "fail"
    assert str(got["node_ready[worker]"].status) == "pass"


def test_admin_conf_naming_the_endpoint_by_name_connects_by_the_course_ip(cluster):
    """real 1.20 cluster on twins: the control plane's real admin.conf with its server changed to
    https://master:6443 (controlPlaneEndpoint by name; `master` is in the twins' apiserver certSANs and not
    resolvable on the grading host) — the grader's client, built by the live target, reaches the API server at
    course.yaml's IP and verifies it as `master`; a name missing from the certificate is refused."""
    import socket

    import urllib3
    import yaml
    from kubernetes import client

    with pytest.raises(OSError):
        socket.getaddrinfo("master", 6443)
    kc = yaml.safe_load(_master_kubectl(cluster["ts"], "config view --raw"))
    kc["clusters"][0]["cluster"]["server"] = "https://master:6443"
    target = _target(cluster)
    try:
        api = target.api_client(kc)
        assert client.VersionApi(api).get_code().git_version == build.KUBE_VERSION
        api.close()
        kc["clusters"][0]["cluster"]["server"] = "https://not-in-the-cert:6443"
        api = target.api_client(kc)
        with pytest.raises(urllib3.exceptions.MaxRetryError) as err:
            client.VersionApi(api).get_code()
        assert "not-in-the-cert" in str(err.value) or "hostname" in str(err.value).lower(), str(err.value)
        api.close()
    finally:
        target.close()


def test_with_a_non_flannel_cni_the_flannel_checks_are_skipped_and_the_lab_passes(cluster, tmp_path):
    """real 1.20 cluster on twins, graded with a course copy whose CNI is `bridge` (what the twins run):
    full marks, the flannel checks skipped and left out of the maximum."""
    course = _bridge_course(tmp_path)
    result = _grade(cluster, course)
    bad = [(c.id, c.status, c.expected, c.actual, c.message) for c in result.checks
           if str(c.status) != ("skipped" if c.check in FLANNEL_CHECKS else "pass")]
    assert not bad, bad
    assert result.status == "passed" and result.score == result.max_score
    assert result.max_score == sum(c.max_points for c in result.checks if c.check not in FLANNEL_CHECKS)


def test_notebook_join_cells_keep_the_token_out_of_the_notebook(cluster, tmp_path):
    """real 1.20 cluster on twins: the solution notebook's own join-command cells, run by a real kernel
    (nbclient, `%%capture` around `%%node master`, then `%%node worker --env JOIN_CMD`): JOIN_CMD holds the
    whole command, the saved outputs show no bootstrap token, and the worker cell on a joined worker only says
    so (running it twice is harmless)."""

    import nbformat

    from kubelab.evidence.redact import find_secrets

    source = nbformat.read(cluster["course"].solution_path(LAB), as_version=4)
    wanted = ("load-extension", "join-command", "join-command-variable", "join-worker")
    cells = [c for c in source.cells if c.metadata.get("nbgrader", {}).get("grade_id") in wanted]
    assert [c.metadata["nbgrader"]["grade_id"] for c in cells] == list(wanted)
    probe = nbformat.v4.new_code_cell("print(len(JOIN_CMD.split()), JOIN_CMD.split()[:2], '--discovery-token-ca-cert-hash' in JOIN_CMD)")
    nb = nbformat.v4.new_notebook(cells=cells + [probe], metadata=source.metadata)
    env = {"KUBELAB_SSH_CONFIG": str(cluster["ts"].ssh_config_file()), "KUBELAB_COURSE": str(REPO)}
    execute_notebook(nb, tmp_path, env, timeout=300, drop=("NBGRADER_EXECUTION",))
    out = {c.metadata.get("nbgrader", {}).get("grade_id", "probe"): "".join(o.get("text", "") for o in c.outputs)
           for c in nb.cells}
    assert out["join-command"] == "", "the captured cell must show nothing"
    assert "--token <hidden>" in out["join-command-variable"] and "kubeadm join 192.168.56.10:6443" in out["join-command-variable"]
    assert "already joined" in out["join-worker"], out["join-worker"]
    assert out["probe"].strip() == "7 ['kubeadm', 'join'] True", out["probe"]
    path = tmp_path / "ran.ipynb"
    nbformat.write(nb, path)
    assert find_secrets(path.read_text()) == []


def test_csr_cleaned_up_after_an_hour_still_passes_on_the_certificate(cluster, recorded, tmp_path):
    """real 1.20 cluster on twins: the controller manager deletes issued CSRs after an hour; with no CSR left
    the check accepts the worker's client certificate (CN system:node:worker, issued by the cluster CA)."""
    ts = cluster["ts"]
    # kubeadm join left the worker's: the CSR its kubelet sent with the bootstrap token (seen on 1.20:
    # `csr-bvp4v system:bootstrap:2b864a`, next to the control plane's own `csr-... system:node:master`)
    listed = _ssh(ts, "master", f"{KUBECTL} get csr -o "
                                "jsonpath='{range .items[*]}{.metadata.name} {.spec.username}{\"\\n\"}{end}'")
    assert any(ln.split()[1:2] and ln.split()[1].startswith("system:bootstrap:")
               for ln in listed.stdout.splitlines()), listed.stdout
    gone = _ssh(ts, "master", f"{KUBECTL} delete csr --all")
    assert gone.returncode == 0, gone.stderr
    result = _grade(cluster, _bridge_course(tmp_path))
    csr = _by_id(result)["csr_approved[worker]"]
    assert str(csr.status) == "pass", (csr.expected, csr.actual, csr.message)


def test_bootstrap_kubeconfig_left_behind_fails(cluster, tmp_path):
    """real 1.20 cluster on twins: a bootstrap-kubelet.conf left on the worker fails bootstrap_gone with its hint,
    nothing else."""
    result = _grade_broken(cluster, tmp_path, "worker",
                           "cp /etc/kubernetes/kubelet.conf /etc/kubernetes/bootstrap-kubelet.conf",
                           "rm -f /etc/kubernetes/bootstrap-kubelet.conf")
    got = _by_id(result)
    b = got["bootstrap_gone[worker]"]
    assert str(b.status) == "fail" and b.actual == "True" and "bootstrap-kubelet.conf" in b.hint
    assert [c.id for c in result.checks if str(c.status) not in ("pass", "skipped")] == ["bootstrap_gone[worker]"]


def test_cni_config_missing_on_the_worker_fails_live(cluster, tmp_path):
    """real 1.20 cluster on twins: the worker's /etc/cni/net.d emptied (the CNI's pod never wrote its config
    there) — cni_config fails on the worker with expected vs actual and the hint; the master's still passes."""
    # copied back, not moved: containerd 1.6 reloads its CNI config on a write in /etc/cni/net.d, and a file
    # renamed back into place left the worker NotReady (seen on the twins)
    result = _grade_broken(cluster, tmp_path, "worker",
                           "sh -c 'mkdir -p /root/cni-aside && mv /etc/cni/net.d/* /root/cni-aside/'",
                           "sh -c 'cp /root/cni-aside/* /etc/cni/net.d/ && rm -r /root/cni-aside'")
    got = _by_id(result)
    c = got["cni_config[worker]"]
    assert str(c.status) == "fail", (c.status, c.actual, c.message)
    assert c.expected == "a *.conflist/*.conf file" and c.actual == "(empty or missing)"
    assert "kube-flannel" in c.hint
    assert str(got["cni_config[master]"].status) == "pass"
    ok = _ssh(cluster["ts"], "master", f"{KUBECTL} wait --for=condition=Ready node/worker --timeout=90s", timeout=120)
    assert ok.returncode == 0, ok.stderr


def test_worker_client_certificate_missing_fails_live(cluster, recorded, tmp_path):
    """real 1.20 cluster on twins: the worker's kubelet-client-current.pem moved aside (a join that did not finish)
    and the CSRs gone (deleted here as the controller manager does an hour after issuing them) — kubelet_credentials
    fails on the worker with the hint, csr_approved, which then has only that certificate to go on, fails too, and
    bootstrap_gone, which builds on the credentials, is blocked."""
    ts = cluster["ts"]  # `recorded`: the healthy recording, with its CSRs, is taken before they are deleted here
    pem = "/var/lib/kubelet/pki/kubelet-client-current.pem"
    gone = _ssh(ts, "master", f"{KUBECTL} delete csr --all")
    assert gone.returncode == 0, gone.stderr
    result = _grade_broken(cluster, tmp_path, "worker", f"mv {pem} {pem}.aside", f"mv {pem}.aside {pem}")
    got = _by_id(result)
    k = got["kubelet_credentials[worker]"]
    assert str(k.status) == "fail" and k.actual == "missing or empty" and pem in k.expected, (k.status, k.actual)
    assert "kubeadm reset" in k.hint
    csr = got["csr_approved[worker]"]
    assert str(csr.status) == "fail" and "system:node:worker" in csr.expected, (csr.status, csr.actual)
    assert "kubectl certificate approve" in csr.hint
    assert {cid: str(c.status) for cid, c in got.items() if str(c.status) not in ("pass", "skipped")} == \
        {"kubelet_credentials[worker]": "fail", "csr_approved[worker]": "fail", "bootstrap_gone[worker]": "blocked"}


def test_pod_network_broken_between_nodes_fails_the_reachability_check(cluster, tmp_path):
    """real 1.20 cluster on twins: the route from the control plane to the worker's pod range removed (the pod
    network no longer carries traffic between the nodes, as with flannel on the NAT NIC) — the test pod gives
    no answer from the control plane; the nodes themselves stay Ready. Nothing puts a route back on the twins (the
    cluster build set it, no daemon keeps it), so graded on settled_real_time()."""
    ts = cluster["ts"]
    worker_range = cl.pod_cidrs(cluster["course"])["worker"]
    dropped = _ssh(ts, "master", f"ip route del {worker_range}")
    assert dropped.returncode == 0, dropped.stderr
    try:
        result = _grade(cluster, _bridge_course(tmp_path), settled=True)
    finally:
        back = _ssh(ts, "master", f"ip route replace {worker_range} via 192.168.56.11 dev host0 onlink")
    assert back.returncode == 0, back.stderr
    pod = _by_id(result)["pod_reachable[cluster]"]
    assert str(pod.status) == "fail", (pod.status, pod.message)
    assert pod.expected == "an HTTP answer" and pod.actual.startswith("no answer"), pod.actual
    assert "still not so after waiting 20s" in pod.message  # the engine polled before it failed the check
    p2p = _by_id(result)["smoke_pod_to_pod[cluster]"]
    assert str(p2p.status) == "fail" and "no answer" in p2p.actual, (p2p.status, p2p.actual)
    assert str(_by_id(result)["node_ready[worker]"].status) == "pass"
    # restored for the next test: the route back, and the test pod answering from the control plane again
    route = _ssh(ts, "master", f"ip route show {worker_range}").stdout
    assert "via 192.168.56.11" in route, route
    pod_ip = _ssh(ts, "master", f"{KUBECTL} get pod net-test -o jsonpath={{.status.podIP}}").stdout.strip()
    wait_for(lambda: _ssh(ts, "master", f"curl -s -m 3 http://{pod_ip}:8080/").stdout.strip(),
             "the test pod to answer from the control plane again", until=lambda out: out == "net-test")


def test_worker_kubelet_stopped_is_not_ready_and_blocks_the_pod_check(cluster, tmp_path):
    """real 1.20 cluster on twins: the worker's kubelet stopped — node_ready fails on the worker only (its lease
    goes stale, then Ready=Unknown), and the pod check that needs every node Ready is blocked."""
    ts = cluster["ts"]
    stopped = _ssh(ts, "worker", "systemctl stop kubelet")
    assert stopped.returncode == 0, stopped.stderr
    try:
        wait_for(lambda: _worker_ready(ts), "the node controller to mark the worker not Ready",
                 until=lambda s: s == "Unknown", timeout_s=120)
        result = _grade(cluster, _bridge_course(tmp_path))
    finally:
        started = _ssh(ts, "worker", "systemctl start kubelet")
    assert started.returncode == 0, started.stderr
    got = _by_id(result)
    w = got["node_ready[worker]"]
    assert str(w.status) == "fail", (w.status, w.actual)
    assert "Ready=Unknown" in w.actual, w.actual  # what the node controller sets on a stale Lease
    assert str(got["node_ready[master]"].status) == "pass"
    assert str(got["pod_reachable[cluster]"].status) == "blocked"
    assert "node_ready[worker]" in got["pod_reachable[cluster]"].blocked_by
    ok = _ssh(ts, "master", f"{KUBECTL} wait --for=condition=Ready node/worker --timeout=90s", timeout=120)
    assert ok.returncode == 0, ok.stderr


# -------------------------------------------------------------------------------------------------
# evidence: the recording of the healthy cluster, with flannel (or one wrong field) written in
# -------------------------------------------------------------------------------------------------

FLANNEL_NS = "kube-flannel"
VAGRANT_ADDRS = {  # `ip -o -4 addr show` on a Vagrant VM after flannel: NAT NIC first, then the private NIC
    "master": "1: lo    inet 127.0.0.1/8 scope host lo\\       valid_lft forever preferred_lft forever\n"
              "2: eth0    inet 10.0.2.15/24 brd 10.0.2.255 scope global dynamic eth0\\       valid_lft 86015sec preferred_lft 86015sec\n"
              "3: eth1    inet 192.168.56.10/24 brd 192.168.56.255 scope global eth1\\       valid_lft forever preferred_lft forever\n"
              "4: flannel.1    inet 10.244.0.0/32 scope global flannel.1\\       valid_lft forever preferred_lft forever\n"
              "5: cni0    inet 10.244.0.1/24 brd 10.244.0.255 scope global cni0\\       valid_lft forever preferred_lft forever\n",
    "worker": "1: lo    inet 127.0.0.1/8 scope host lo\\       valid_lft forever preferred_lft forever\n"
              "2: eth0    inet 10.0.2.15/24 brd 10.0.2.255 scope global dynamic eth0\\       valid_lft 86015sec preferred_lft 86015sec\n"
              "3: eth1    inet 192.168.56.11/24 brd 192.168.56.255 scope global eth1\\       valid_lft forever preferred_lft forever\n"
              "4: flannel.1    inet 10.244.1.0/32 scope global flannel.1\\       valid_lft forever preferred_lft forever\n"
              "5: cni0    inet 10.244.1.1/24 brd 10.244.1.255 scope global cni0\\       valid_lft forever preferred_lft forever\n",
}
VAGRANT_DEFAULT_ROUTE = "default via 10.0.2.2 dev eth0 proto dhcp src 10.0.2.15 metric 100 \n"
FLANNEL_NETWORK = "10.244.0.0/16"  # net-conf.json's Network in flannel's kube-flannel.yml, as released
NET_CONF = '{\n  "Network": "%s",\n  "EnableNFTables": false,\n  "Backend": {\n    "Type": "vxlan"\n  }\n}\n'
CNI_CONF = ('{\n  "name": "cbr0",\n  "cniVersion": "0.3.1",\n  "plugins": [\n    {\n      "type": "flannel",\n'
            '      "delegate": {\n        "hairpinMode": true,\n        "isDefaultGateway": true\n      }\n    },\n'
            '    {\n      "type": "portmap",\n      "capabilities": {\n        "portMappings": true\n      }\n    }\n  ]\n}\n')


# the kube-flannel container's env in the v0.28 release manifest
FLANNEL_ENV = [{"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
               {"name": "POD_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
               {"name": "EVENT_QUEUE_DEPTH", "value": "5000"},
               {"name": "CONT_WHEN_CACHE_NOT_READY", "value": "false"}]


def flannel_daemonset(args: list[str], ready: int = 2, desired: int = 2, env: list[dict] | None = None) -> dict:
    """kube-flannel/kube-flannel-ds as the v0.28 release manifest creates it, with the status of a 2-node cluster."""
    labels = {"app": "flannel", "k8s-app": "flannel", "tier": "node"}
    image = "ghcr.io/flannel-io/flannel:v0.28.4"
    return {
        "apiVersion": "apps/v1", "kind": "DaemonSet",
        "metadata": {"name": "kube-flannel-ds", "namespace": FLANNEL_NS, "labels": labels, "generation": 1,
                     "uid": "6d0c1b8e-3c1f-4b8e-9a55-2f1f0b6f2a11", "resourceVersion": "1873",
                     "creationTimestamp": "2026-11-28T09:12:41Z"},
        "spec": {
            "selector": {"matchLabels": {"app": "flannel", "k8s-app": "flannel"}},
            "template": {"metadata": {"labels": labels}, "spec": {
                "hostNetwork": True, "priorityClassName": "system-node-critical", "serviceAccountName": "flannel",
                "tolerations": [{"effect": "NoSchedule", "operator": "Exists"}],
                "initContainers": [
                    {"name": "install-cni-plugin", "image": "ghcr.io/flannel-io/flannel-cni-plugin:v1.9.1-flannel1",
                     "command": ["cp"], "args": ["-f", "/flannel", "/opt/cni/bin/flannel"]},
                    {"name": "install-cni", "image": image, "command": ["cp"],
                     "args": ["-f", "/etc/kube-flannel/cni-conf.json", "/etc/cni/net.d/10-flannel.conflist"]}],
                "containers": [{"name": "kube-flannel", "image": image, "command": ["/opt/bin/flanneld"],
                                "args": args, "env": FLANNEL_ENV + (env or [])}]}},
            "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1}}},
        "status": {"currentNumberScheduled": desired, "desiredNumberScheduled": desired, "numberAvailable": ready,
                   "numberMisscheduled": 0, "numberReady": ready, "observedGeneration": 1,
                   "updatedNumberScheduled": desired},
    }


def flannel_configmap(network: str) -> dict:
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "kube-flannel-cfg", "namespace": FLANNEL_NS,
                         "labels": {"app": "flannel", "k8s-app": "flannel", "tier": "node"},
                         "uid": "0f7d3a5e-6a7b-4a53-8c0e-2b8d9d4e1c22", "resourceVersion": "1841"},
            "data": {"cni-conf.json": CNI_CONF, "net-conf.json": NET_CONF % network}}


class Edit:
    """The recording of the healthy cluster, changed observation by observation, then sealed again."""

    def __init__(self, path: Path):
        self.ev: Evidence = load(path)

    def api(self, path_prefix: str) -> list[ApiObservation]:
        return [o for o in self.ev.api if o.path.split("?")[0] == path_prefix]

    def api_path(self, prefix: str) -> str:
        found = self.api(prefix)
        assert found, f"the recording has no GET {prefix}"
        return found[0].path

    def set_api(self, path: str, data: dict) -> None:
        hits = [o for o in self.ev.api if o.path == path]
        if not hits:
            self.ev.api.append(ApiObservation(method="GET", path=path, body=None, status=200, data=""))
            hits = self.ev.api[-1:]
        for o in hits:
            o.data = json.dumps(data)

    def edit_json(self, path_prefix: str, fn) -> None:
        hits = self.api(path_prefix)
        assert hits, f"the recording has no GET {path_prefix}"
        for o in hits:
            d = json.loads(o.data)
            fn(d)
            o.data = json.dumps(d)

    def set_cmd(self, node: str, cmd: str, stdout: str, rc: int = 0) -> None:
        obs = self.ev.nodes.setdefault(node, [])
        obs[:] = [o for o in obs if o.cmd != cmd]
        obs.append(CommandObservation(cmd=cmd, rc=rc, stdout=stdout, stderr=""))

    def save(self, path: Path) -> Path:
        return save(self.ev, path)


def with_flannel(recorded_path: Path, course, args: list[str], public_ip: dict[str, str] | None = None,
                 network: str | None = None, ready: int = 2, env: list[dict] | None = None,
                 overwrite: dict[str, str] | None = None) -> Edit:
    e = Edit(recorded_path)
    ds_path = e.api_path("/apis/apps/v1/daemonsets")
    e.set_api(ds_path, {"apiVersion": "apps/v1", "kind": "DaemonSetList", "metadata": {"resourceVersion": "2210"},
                        "items": [flannel_daemonset(args, ready=ready, env=env)]})
    e.set_api(ds_path.replace("/apis/apps/v1/daemonsets", "/api/v1/configmaps"),
              {"apiVersion": "v1", "kind": "ConfigMapList", "metadata": {"resourceVersion": "2210"},
               "items": [flannel_configmap(network or FLANNEL_NETWORK)]})
    for n in course.model.nodes:
        e.set_cmd(n.name, "ip -o -4 addr show", VAGRANT_ADDRS[n.name])
        e.set_cmd(n.name, "ip -o -4 route show default", VAGRANT_DEFAULT_ROUTE)
        # what flanneld announces with --iface-regex on the private network: eth1's address, read from the VM's
        # interfaces above, not from course.yaml (which the checks compare with)
        eth1 = re.search(r"eth1\s+inet (\S+)/", VAGRANT_ADDRS[n.name]).group(1)
        ip = (public_ip or {}).get(n.name, eth1)

        def annotate(d, ip=ip, node=n.name):
            d["metadata"].setdefault("annotations", {}).update({
                "flannel.alpha.coreos.com/backend-type": "vxlan",
                "flannel.alpha.coreos.com/kube-subnet-manager": "true",
                "flannel.alpha.coreos.com/public-ip": ip})
            if (overwrite or {}).get(node):
                d["metadata"]["annotations"]["flannel.alpha.coreos.com/public-ip-overwrite"] = overwrite[node]
        e.edit_json(f"/api/v1/nodes/{n.name}", annotate)
    return e


STOCK_ARGS = ["--ip-masq", "--kube-subnet-mgr"]
LAB_ARGS = STOCK_ARGS + ["--iface-regex=^192[.]168[.]56[.]"]


def _replay(course, edit: Edit, path: Path):
    result, _ = replay_lab(course, LAB, edit.save(path))
    errors = [(c.id, c.message) for c in result.checks if str(c.status) == "error"]
    assert not errors, errors
    return result


def test_flannel_on_the_private_network_passes_from_evidence(cluster, recorded, tmp_path):
    """recorded evidence modelled on shared/realdata/crictl (kube-flannel namespace, kube-flannel-ds pod and its
    containers) and shared/realdata/iptables-save (flannel on 10.244.0.0/16), with flannel v0.28's manifest and
    the lab's --iface-regex: every check passes, flannel's included."""
    course = cluster["course"]
    result = _replay(course, with_flannel(recorded["path"], course, LAB_ARGS), tmp_path / "flannel-ok.json")
    bad = [(c.id, c.status, c.expected, c.actual, c.message) for c in result.checks if str(c.status) != "pass"]
    assert not bad, bad
    assert result.status == "passed"
    assert {c.id for c in result.checks if c.check in FLANNEL_CHECKS} == {
        "flannel_ready[cluster]", "flannel_network[cluster]", "flannel_iface[master]", "flannel_iface[worker]",
        "flannel_public_ip[master]", "flannel_public_ip[worker]"}


def test_flannel_on_the_nat_interface_fails_from_evidence(cluster, recorded, tmp_path):
    """recorded evidence modelled on shared/realdata (as above) with the stock manifest's args (no interface
    choice): flannel takes eth0, the NAT NIC 10.0.2.15, on both nodes and announces it — flannel_iface and
    flannel_public_ip fail on both nodes with the hint naming --iface-regex; the rest passes."""
    course = cluster["course"]
    edit = with_flannel(recorded["path"], course, STOCK_ARGS, public_ip={"master": "10.0.2.15", "worker": "10.0.2.15"})
    result = _replay(course, edit, tmp_path / "flannel-nat.json")
    failed = {c.id: c for c in result.checks if str(c.status) != "pass"}
    assert set(failed) == {f"{c}[{n}]" for c in ("flannel_iface", "flannel_public_ip") for n in ("master", "worker")}
    i = failed["flannel_iface[worker]"]
    assert i.expected == "192.168.56.11" and i.actual == "10.0.2.15" and "--iface-regex" in i.hint
    assert failed["flannel_public_ip[master]"].actual == "10.0.2.15"


def test_flannel_iface_by_name_or_can_reach_is_resolved_per_node(cluster, recorded, tmp_path):
    """recorded evidence modelled on shared/realdata (as above): flannel's documented Vagrant fix `--iface=eth1`
    passes; `--iface=eth0` (the NAT NIC) fails; `--iface-can-reach` is resolved with `ip route get` on each node."""
    course = cluster["course"]
    def iface(result) -> dict[str, str]:
        return {c.id: str(c.status) for c in result.checks if c.check == "flannel_iface"}
    both = ("flannel_iface[master]", "flannel_iface[worker]")

    ok = _replay(course, with_flannel(recorded["path"], course, STOCK_ARGS + ["--iface=eth1"]), tmp_path / "a.json")
    assert iface(ok) == dict.fromkeys(both, "pass"), iface(ok)
    bad = _replay(course, with_flannel(recorded["path"], course, STOCK_ARGS + ["--iface=eth0"]), tmp_path / "b.json")
    assert iface(bad) == dict.fromkeys(both, "fail"), iface(bad)
    assert {c.actual for c in bad.checks if c.check == "flannel_iface"} == {"10.0.2.15"}
    edit = with_flannel(recorded["path"], course, STOCK_ARGS + ["--iface-can-reach=192.168.56.1"])
    for n in course.model.nodes:
        edit.set_cmd(n.name, "ip -o -4 route get 192.168.56.1",
                     f"192.168.56.1 dev eth1 src {n.ip} uid 1000 \\    cache \n")
    reach = _replay(course, edit, tmp_path / "c.json")
    assert iface(reach) == dict.fromkeys(both, "pass"), iface(reach)


def test_flannel_iface_from_environment_or_public_ip_overwrite(cluster, recorded, tmp_path):
    """recorded evidence modelled on shared/realdata (as above): flanneld also takes its interface flags from
    FLANNELD_IFACE_REGEX / FLANNELD_IFACE (flagutil.SetFlagsFromEnv) and, with no interface flag at all, the
    interface holding the Node's flannel.alpha.coreos.com/public-ip-overwrite annotation (flannel's main.go).
    FLANNELD_IFACE_REGEX of the private subnet and an overwrite with the private IP pass; FLANNELD_IFACE=eth0 and
    an overwrite with the NAT address fail with the address flannel really takes."""
    course = cluster["course"]
    regex = [{"name": "FLANNELD_IFACE_REGEX", "value": "^192[.]168[.]56[.]"}]
    ok = _replay(course, with_flannel(recorded["path"], course, STOCK_ARGS, env=regex), tmp_path / "env-ok.json")
    assert {str(c.status) for c in ok.checks if c.check == "flannel_iface"} == {"pass"}
    nat = [{"name": "FLANNELD_IFACE", "value": "eth0"}]
    bad = _replay(course, with_flannel(recorded["path"], course, STOCK_ARGS, env=nat), tmp_path / "env-bad.json")
    assert all(str(c.status) == "fail" and c.actual == "10.0.2.15" and "FLANNELD_IFACE" in c.hint
               for c in bad.checks if c.check == "flannel_iface")
    private = {n.name: str(n.ip) for n in course.model.nodes}
    over = _replay(course, with_flannel(recorded["path"], course, STOCK_ARGS, overwrite=private),
                   tmp_path / "overwrite-ok.json")
    assert {str(c.status) for c in over.checks if c.check.startswith("flannel_")} == {"pass"}
    nat_all = {n.name: "10.0.2.15" for n in course.model.nodes}
    wrong = _replay(course, with_flannel(recorded["path"], course, STOCK_ARGS, overwrite=nat_all, public_ip=nat_all),
                    tmp_path / "overwrite-bad.json")
    failed = [c for c in wrong.checks if c.check == "flannel_iface"]
    assert failed and all(str(c.status) == "fail" and c.actual == "10.0.2.15" and "public-ip-overwrite" in c.hint
                          for c in failed), [(c.actual, c.hint) for c in failed]


def test_flannel_network_not_the_pod_cidr_fails_from_evidence(cluster, recorded, tmp_path):
    """recorded evidence modelled on shared/realdata (as above) with net-conf.json's Network 10.10.0.0/16 while
    kubeadm's pod range is 10.244.0.0/16: flannel_network fails, expected vs actual shown."""
    course = cluster["course"]
    edit = with_flannel(recorded["path"], course, LAB_ARGS, network="10.10.0.0/16")
    result = _replay(course, edit, tmp_path / "net.json")
    failed = [c for c in result.checks if str(c.status) != "pass"]
    assert [c.id for c in failed] == ["flannel_network[cluster]"]
    assert failed[0].expected == "10.244.0.0/16" and failed[0].actual == "10.10.0.0/16"


def test_flannel_not_ready_on_every_node_blocks_the_other_flannel_checks(cluster, recorded, tmp_path):
    """recorded evidence modelled on shared/realdata (as above) with the DaemonSet's pod ready on one node of two:
    flannel_ready fails, the three other flannel checks are blocked, not failed."""
    course = cluster["course"]
    result = _replay(course, with_flannel(recorded["path"], course, LAB_ARGS, ready=1), tmp_path / "ds.json")
    got = _statuses(result)
    assert got["flannel_ready[cluster]"] == "fail"
    assert {cid: s for cid, s in got.items() if cid.split("[")[0] in FLANNEL_CHECKS - {"flannel_ready"}} == \
        {"flannel_network[cluster]": "blocked", "flannel_iface[master]": "blocked", "flannel_iface[worker]": "blocked",
         "flannel_public_ip[master]": "blocked", "flannel_public_ip[worker]": "blocked"}


def test_worker_internal_ip_on_the_nat_address_fails_from_evidence(cluster, recorded, tmp_path):
    """recorded evidence modelled on shared/realdata/nodes-json (status.addresses InternalIP/Hostname): the
    worker's kubelet without --node-ip registers 10.0.2.15 — node_ip fails on the worker only, with the hint."""
    edit = Edit(recorded["path"])

    def nat(d):
        for a in d["status"]["addresses"]:
            if a["type"] == "InternalIP":
                a["address"] = "10.0.2.15"
    edit.edit_json("/api/v1/nodes/worker", nat)
    result = _replay(_bridge_course(tmp_path), edit, tmp_path / "nat.json")
    failed = [c for c in result.checks if str(c.status) not in ("pass", "skipped")]
    assert [c.id for c in failed] == ["node_ip[worker]"]
    assert failed[0].expected == "192.168.56.11" and failed[0].actual == "10.0.2.15" and "--node-ip" in failed[0].hint


def test_pod_range_overlapping_the_host_network_fails_from_evidence(cluster, recorded, tmp_path):
    """recorded evidence modelled on shared/realdata/static-pod-manifests (kube-controller-manager's
    --cluster-cidr and --allocate-node-cidrs flags): init with Calico's default 192.168.0.0/16, which swallows
    the host-only 192.168.56.0/24 — pod_range fails saying so.

    Not live: the range is fixed by `kubeadm init` for the cluster every test here shares; a live --cluster-cidr
    change leaves the Nodes' podCIDRs outside it, which 1.20's nodeipam controller refuses at start (the
    controller manager crash-loops: a state no learner reaches), and a re-init with Calico's range would rebuild
    the whole cluster. The recording's controller-manager pod is the real one, with that one flag changed."""
    edit = Edit(recorded["path"])

    def calico(d):
        for pod in d["items"]:
            c = pod["spec"]["containers"][0]
            c["command"] = [a.replace("--cluster-cidr=10.244.0.0/16", "--cluster-cidr=192.168.0.0/16")
                            for a in c["command"]]
    edit.edit_json("/api/v1/namespaces/kube-system/pods", calico)
    result = _replay(_bridge_course(tmp_path), edit, tmp_path / "calico.json")
    pr = _by_id(result)["pod_range[cluster]"]
    assert str(pr.status) == "fail" and "overlaps 192.168.56.0/24" in pr.actual and "192.168.0.0/16" in pr.actual


def _node_paths(edit: Edit, course) -> list[str]:
    return [p for p in [f"/api/v1/nodes/{n.name}" for n in course.model.nodes] if edit.api(p)]


def test_init_without_pod_network_cidr_leaves_nodes_without_a_podcidr_from_evidence(cluster, recorded, tmp_path):
    """recorded evidence modelled on shared/realdata/static-pod-manifests and nodes-json: `kubeadm init` without
    --pod-network-cidr — the controller manager has neither --cluster-cidr nor --allocate-node-cidrs and the Nodes
    carry no spec.podCIDR: pod_range fails, node_pod_cidr fails on both nodes with "(none)" and the hint."""
    course = cluster["course"]
    edit = Edit(recorded["path"])

    def no_cidr_flags(d):
        for pod in d["items"]:
            c = pod["spec"]["containers"][0]
            c["command"] = [a for a in c["command"]
                            if not a.startswith(("--cluster-cidr=", "--allocate-node-cidrs="))]
    edit.edit_json("/api/v1/namespaces/kube-system/pods", no_cidr_flags)

    def no_pod_cidr(d):
        d["spec"].pop("podCIDR", None)
        d["spec"].pop("podCIDRs", None)
    paths = _node_paths(edit, course)
    assert len(paths) == 2, paths
    for p in paths:
        edit.edit_json(p, no_pod_cidr)
    result = _replay(_bridge_course(tmp_path), edit, tmp_path / "no-cidr.json")
    got = _by_id(result)
    assert {cid for cid, c in got.items() if str(c.status) not in ("pass", "skipped")} == \
        {"pod_range[cluster]", "node_pod_cidr[master]", "node_pod_cidr[worker]"}
    pr = got["pod_range[cluster]"]
    assert "not set: kubeadm init ran without --pod-network-cidr" in pr.actual, pr.actual
    for n in ("master", "worker"):
        c = got[f"node_pod_cidr[{n}]"]
        assert c.actual == "(none)" and c.expected == f"a subnet of {course.model.network.pod_cidr}", \
            (c.expected, c.actual)
        assert "--pod-network-cidr" in c.hint


def test_worker_podcidr_outside_the_pod_network_fails_from_evidence(cluster, recorded, tmp_path):
    """recorded evidence modelled on shared/realdata/nodes-json: the worker's spec.podCIDR outside pod_cidr (a Node
    kept from an earlier init with another range) — node_pod_cidr fails on the worker only, showing the subnet."""
    course = cluster["course"]
    edit = Edit(recorded["path"])

    def elsewhere(d):
        d["spec"]["podCIDR"] = "10.85.1.0/24"
        d["spec"]["podCIDRs"] = ["10.85.1.0/24"]
    edit.edit_json("/api/v1/nodes/worker", elsewhere)
    result = _replay(_bridge_course(tmp_path), edit, tmp_path / "elsewhere.json")
    failed = [c for c in result.checks if str(c.status) not in ("pass", "skipped")]
    assert [c.id for c in failed] == ["node_pod_cidr[worker]"]
    assert failed[0].actual == "10.85.1.0/24" and failed[0].expected == f"a subnet of {course.model.network.pod_cidr}"


def test_worker_csr_pending_fails_from_evidence(cluster, recorded, tmp_path):
    """recorded evidence of the real 1.20 cluster with the worker's CSR as `kubectl get csr` shows it when nothing
    approves it (the ClusterRoleBinding kubeadm:node-autoapprove-bootstrap deleted): no conditions, no certificate —
    csr_approved fails on the worker with the CSR's state and the hint naming `kubectl certificate approve`.

    Not live: a Pending CSR needs the worker joined again with the auto-approving binding deleted (kubeadm reset
    and join: the node every later test here shares is rebuilt, and its kubelet keeps retrying without a
    certificate). The recording holds the CSR kubelet really sent; only its status (conditions, certificate) is
    emptied, as `kubectl get csr -o json` shows one nothing approved."""
    edit = Edit(recorded["path"])
    csr_path = "/apis/certificates.k8s.io/v1/certificatesigningrequests"
    pending = []

    def unapprove(d):
        for item in d["items"]:
            if item["spec"].get("username", "").startswith("system:bootstrap:") or \
                    item["spec"].get("signerName") == "kubernetes.io/kube-apiserver-client-kubelet":
                item["status"] = {}
                pending.append(item["metadata"]["name"])
    edit.edit_json(csr_path, unapprove)
    assert pending, "the recording holds the worker's CSR"
    result = _replay(_bridge_course(tmp_path), edit, tmp_path / "pending.json")
    failed = [c for c in result.checks if str(c.status) not in ("pass", "skipped")]
    assert [c.id for c in failed] == ["csr_approved[worker]"], [(c.id, c.actual) for c in failed]
    c = failed[0]
    assert "Pending" in c.actual and "Approved,Issued" in c.expected, (c.expected, c.actual)
    assert "kubectl certificate approve" in c.hint


def test_evidence_holds_no_bootstrap_token(recorded):
    """real 1.20 cluster on twins: the recording (CSRs, kubelet.conf, the controller manager) holds no secret."""
    from kubelab.evidence.redact import find_secrets

    assert find_secrets(recorded["path"].read_text()) == []


# -------------------------------------------------------------------------------------------------
# last: the worker taken out of the cluster (destructive)
# -------------------------------------------------------------------------------------------------

def test_pod_logs_through_a_kubelet_on_the_nat_address_fails_from_evidence(cluster, recorded, tmp_path):
    """recorded evidence modelled on the live recording (healthy cluster: pod_logs passes there, see
    test_joined_cluster_passes_every_cni_agnostic_check_and_replays) with the API server's answer to
    GET pods/net-test/log changed to what it returns when the worker's kubelet sits at Vagrant's NAT address
    (HTTP 500, `Get "https://10.0.2.15:10250/containerLogs/...": dial tcp 10.0.2.15:10250: i/o timeout`):
    pod_logs fails with that message and the --node-ip hint; every other CNI-agnostic check still passes."""
    course = cluster["course"]
    edit = Edit(recorded["path"])
    logs = [o for o in edit.ev.api if o.path.split("?")[0] == "/api/v1/namespaces/default/pods/net-test/log"]
    assert logs, "the recording holds no GET of net-test's log"
    url = "https://10.0.2.15:10250/containerLogs/default/net-test/web?tailLines=1"
    for o in logs:
        o.status = 500
        o.data = json.dumps({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                             "message": f'Get "{url}": dial tcp 10.0.2.15:10250: i/o timeout', "code": 500})
    result = _replay(course, edit, tmp_path / "logs-nat.json")
    got = _by_id(result)
    c = got["pod_logs[cluster]"]
    assert str(c.status) == "fail" and "10.0.2.15:10250" in c.actual and "HTTP 500" in c.actual, (c.status, c.actual)
    assert "--node-ip" in c.hint and c.expected != c.actual
    others = [cid for cid, r in got.items() if cid != "pod_logs[cluster]" and cid.split("[")[0] not in FLANNEL_CHECKS
              and str(r.status) != "pass"]
    assert not others, others


def test_worker_not_joined_blocks_its_checks(cluster, tmp_path):
    """real 1.20 cluster on twins, the worker made "not joined" (kubelet stopped, kubelet.conf and its
    certificates removed, Node deleted): node_registered fails on the worker with the join hint; every other
    worker-side check is blocked, not failed; the control plane's checks still pass."""
    ts = cluster["ts"]
    for cmd in ("systemctl stop kubelet", "rm -rf /etc/kubernetes/kubelet.conf /var/lib/kubelet/pki"):
        r = _ssh(ts, "worker", cmd)
        assert r.returncode == 0, (cmd, r.stderr)
    r = _ssh(ts, "master", f"{KUBECTL} delete node worker --wait=true", timeout=90)
    assert r.returncode == 0, r.stderr
    result = _grade(cluster, _bridge_course(tmp_path))
    got = _by_id(result)
    reg = got["node_registered[worker]"]
    assert str(reg.status) == "fail" and "not joined" in reg.actual and "--print-join-command" in reg.hint
    blocked = {cid for cid, c in got.items() if str(c.status) == "blocked"}
    assert blocked == {"node_ip[worker]", "node_pod_cidr[worker]", "node_ready[worker]", "csr_approved[worker]",
                       "kubelet_credentials[worker]", "bootstrap_gone[worker]", "pod_reachable[cluster]",
                       "pod_logs[cluster]"} | {f"{c}[cluster]" for c in SMOKE_CHECKS}, blocked
    for cid in ("node_registered[master]", "node_ip[master]", "node_pod_cidr[master]", "node_ready[master]",
                "pod_range[cluster]", "cni_config[master]"):
        assert str(got[cid].status) == "pass", (cid, got[cid].actual, got[cid].message)
