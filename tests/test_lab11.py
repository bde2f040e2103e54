"""Lab 11 — kube-proxy and Services: the grader against the twins' real kubeadm v1.20.2 cluster (`shared_cluster`),
after the solution notebook's own cells ran there, and after realistic mistakes; plus the rule readers on real
captures.

Kinds of proof, named in every test's docstring:

- "real 1.20 cluster on twins": the solution notebook's cells run by a real kernel against the twins (a 3-replica
  Deployment and a NodePort Service in lab11-web, its EndpointSlices (discovery.k8s.io/v1beta1 at 1.20), the iptables
  rules, conntrack while curling the ClusterIP, the NodePort on both node IPs, kube-proxy stopped — the old Service
  still answers, a new one does not until it is back — and the answers recorded with %answer), graded live (recorded,
  and the recording replayed to the same result); each mistake made for real, graded, put back. On the twins
  kube-proxy is a systemd service (its image has no iptables) and 1.20 has no nftables mode: the live grading uses
  course.yaml with `network.kube_proxy_mode: iptables` (what a course on a 1.20-era cluster would say), and Step 7
  (the switch to nftables) is not run. The one change to the notebook: its image `busybox:1.37` (no registry here)
  becomes the course's local busybox with `imagePullPolicy: Never` (kubelab.cluster.build.BUSYBOX_IMAGE).
- "real capture": shared/realdata/iptables-save/v1.29.4_…_EXTRACT.txt (a kubeadm 1.29 node's `iptables-save`) read by
  the grader's iptables reader.
- "simulation": the nftables reader on a ruleset modelled on kubernetes/kubernetes pkg/proxy/nftables/proxier_test.go
  (the rules kube-proxy's nftables mode writes), printed in `nft list table` syntax — no real nft capture exists in
  shared/realdata.

The module puts the cluster back as it found it in a `finally` (namespace lab11-web gone, kube-proxy active on
every node, no lab11 answers, no ~/.kube/config it created), or marks the shared cluster dirty.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time

import pytest

from helpers import (REPO, by_id, grade_live, load_grader, not_passing, run_cells_live, shared_realdata,
                     solution_cells, ssh, ssh_ok, wait_for)
from lab11_rulesets import nft_ruleset
from kubelab.cluster import build
from kubelab.course import LoadedCourse
from kubelab.evidence import comparable, replay_lab

LAB = "lab11"
NOTEBOOK = f"{LAB}/lab11_kube_proxy.ipynb"  # under solutions/
KUBECTL = "kubectl --kubeconfig=/etc/kubernetes/admin.conf"
ANSWERS = "/home/vagrant/.kubelab/answers/lab11.json"
NOTEBOOK_IMAGE = "        image: busybox:1.37\n        imagePullPolicy: IfNotPresent\n"
NOT_ON_120 = ("switch-nftables", "show-nft")   # Step 7: kube-proxy 1.20 has no nftables mode, the twins no nft
ANSWER_CHECKS = {"answer_service_chain", "answer_first_endpoint"}
REALDATA_IPTABLES = "v1.29.4_MiniK8s-SE3356-minik8s_iptables-save_control-plane_EXTRACT.txt"
KEEP_RECORDING = os.environ.get("KUBELAB_LAB11_KEEP_RECORDING")  # where to copy the live recording (tests/data)


G = load_grader("lab11_kube_proxy.py")


def with_mode(course: LoadedCourse, mode: str) -> LoadedCourse:
    """The same course.yaml asking for another kube-proxy mode (a model copy: the file, and so the evidence's
    course digest, stay the same)."""
    network = course.model.network.model_copy(update={"kube_proxy_mode": mode})
    return LoadedCourse(course.model.model_copy(update={"network": network}), course.root)


# -------------------------------------------------------------------------------------------------
# no twins: the notebook and the grader agree; the rule readers on real and modelled rulesets
# -------------------------------------------------------------------------------------------------

def test_notebook_creates_what_the_grader_looks_for():
    """simulation: the solution's manifests and values, parsed — the namespace, Service, port name, ports and replica
    count the grader expects; the answers the grader recomputes recorded with %answer; the mode switch reads
    course.yaml's mode."""
    import yaml

    cells = solution_cells(NOTEBOOK)
    values = cells["course-values"].source
    assert f'NS, SVC, REPLICAS = "{G.NAMESPACE}", "{G.SERVICE}", {G.REPLICAS}' in values
    assert "course.model.network.kube_proxy_mode" in values
    create = cells["create-service"].source
    text = create.split("<<EOF\n", 1)[1].split("\nEOF\n", 1)[0]
    text = text.replace("$NS", G.NAMESPACE).replace("$SVC", G.SERVICE).replace("$REPLICAS", str(G.REPLICAS))
    docs = {d["kind"]: d for d in yaml.safe_load_all(text)}
    svc, dep = docs["Service"], docs["Deployment"]
    assert svc["spec"]["type"] == "NodePort" and svc["spec"]["selector"] == {"app": G.SERVICE}
    assert svc["spec"]["ports"] == [{"name": G.PORT_NAME, "port": G.PORT, "targetPort": G.TARGET_PORT, "protocol": "TCP"}]
    assert dep["spec"]["replicas"] == G.REPLICAS and dep["metadata"]["namespace"] == G.NAMESPACE
    assert create.count(NOTEBOOK_IMAGE) == 1  # the one text the live test swaps for the local image
    assert "%answer lab11 service_chain" in cells["record-answers"].source
    assert "%answer lab11 first_endpoint" in cells["record-answers"].source
    assert "mode: $KUBE_PROXY_MODE" in cells["switch-nftables"].source


def test_iptables_reader_on_a_real_capture():
    """real capture (shared/realdata/iptables-save, a kubeadm 1.29 node): the reader finds default/service1:fileserver's
    KUBE-SVC chain from its ClusterIP:port, its three KUBE-SEP chains in order with their DNAT targets, and the
    probabilities 1/3, 1/2, (rest); another port of the same ClusterIP leads to another chain; an unknown one to none."""
    text = (shared_realdata("iptables-save") / REALDATA_IPTABLES).read_text()
    svc, seps = G.iptables_service(text, "10.108.64.11", 8080)
    assert svc == "KUBE-SVC-YJOPSEYCAQBFRA2J"
    assert seps == [("KUBE-SEP-5RGOO3QK7HUWX7JR", "10.244.1.4:8080"), ("KUBE-SEP-3WH7PNCF552PK7QF", "10.244.1.5:8080"),
                    ("KUBE-SEP-DQ3TQJSNULRJFVPB", "10.244.1.6:8080")]
    # the statistic that spreads the load: 1/3, then 1/2 of the rest, then the rest
    jumps = [ln for ln in text.splitlines() if ln.startswith(f"-A {svc} ") and "-j KUBE-SEP-" in ln]
    assert [ln.split("--probability ")[1].split()[0] if "--probability" in ln else None for ln in jumps] == [
        "0.33333333349", "0.50000000000", None]
    assert G.iptables_service(text, "10.108.64.11", 3000)[0] == "KUBE-SVC-XFIT55N4IPARHPG5"
    assert G.iptables_service(text, "10.96.0.10", 53, "udp")[0] == "KUBE-SVC-TCOU7JCQXEZGVUNU"
    assert G.iptables_service(text, "10.108.64.11", 9999) == ("", [])
    assert G.iptables_service(text, "10.108.64.12", 8080) == ("", [])


def test_nftables_reader_on_a_modelled_ruleset():
    """simulation (upstream's nftables ruleset shape): the reader follows the service-ips element for ClusterIP . tcp
    . 80 to the service chain and its numgen vmap in index order to three endpoint chains and their `dnat to`; a
    one-endpoint service chain (a plain goto, no numgen) is read too; an unknown ClusterIP gives none."""
    eps = ["10.244.1.7:8080", "10.244.1.5:8080", "10.244.1.6:8080"]
    text = nft_ruleset("10.103.7.9", eps)
    svc, got = G.nft_service(text, "10.103.7.9", 80)
    assert svc == "service-ULMVA6XW-lab11-web/web/tcp/http"
    assert [dnat for _, dnat in got] == eps and got[0][0] == "endpoint-AAAAAAAA-lab11-web/web/tcp/http__10.244.1.7/8080"
    one = G.nft_service(text, "10.96.0.1", 443)
    assert one[0] == "service-2QRHZV4L-default/kubernetes/tcp/https" and [e for e, _ in one[1]] == [
        "endpoint-GTK6MW7G-default/kubernetes/tcp/https__192.168.56.10/6443"]
    assert G.nft_service(text, "10.103.7.10", 80) == ("", [])


# -------------------------------------------------------------------------------------------------
# live on the real 1.20 cluster
# -------------------------------------------------------------------------------------------------

def _proxies_active(ts, course) -> bool:
    return all(ssh(ts, n.name, "systemctl is-active kube-proxy").stdout.strip() == "active" for n in course.model.nodes)


def _restore(state, made_kubeconfig: bool) -> list[str]:
    """The cluster as the module found it; what could not be put back."""
    ts, course = state["ts"], state["course"]
    problems = []
    for n in course.model.nodes:
        p = ssh(ts, n.name, "systemctl start kube-proxy")
        if p.returncode != 0:
            problems.append(f"{n.name}: start kube-proxy: {p.stderr.strip()[-200:]}")
    cmd = (f"{KUBECTL} delete namespace {G.NAMESPACE} --ignore-not-found --wait=true --timeout=120s; rm -f {ANSWERS}"
           + ("; rm -f /home/vagrant/.kube/config" if made_kubeconfig else ""))
    p = ssh(ts, course.model.control_plane.name, cmd, timeout=180)
    if p.returncode != 0:
        problems.append(f"cleanup: {p.stderr.strip()[-200:]}")
    if not _proxies_active(ts, course):
        problems.append("kube-proxy is not active on every node")
    return problems


@pytest.fixture(scope="module")
def lab11(shared_cluster, tmp_path_factory):
    """The solution notebook run on the shared cluster (Step 7 left out), then its graded, recorded state; put back
    afterwards."""
    ts = shared_cluster["ts"]
    course = with_mode(shared_cluster["course"], "iptables")
    made_kubeconfig = ssh(ts, "master", "test -e /home/vagrant/.kube/config").returncode != 0
    folder = tmp_path_factory.mktemp("lab11")
    state = {"course": course, "ts": ts}
    try:
        cells = solution_cells(NOTEBOOK)
        run = [c for gid, c in cells.items() if c.cell_type == "code" and gid != "grade_lab11" and gid not in NOT_ON_120]
        create = cells["create-service"]
        create.source = create.source.replace(
            NOTEBOOK_IMAGE, f"        image: {build.BUSYBOX_IMAGE}\n        imagePullPolicy: Never\n")
        t0 = time.monotonic()
        state["outputs"] = run_cells_live(run, folder, ts)
        state["notebook_s"] = time.monotonic() - t0
        print(f"lab11 solution notebook ran on the twins in {state['notebook_s']:.1f}s")
        t0 = time.monotonic()
        state["evidence"] = folder / "solved.evidence.json"
        state["live"] = grade_live(state, LAB, record=state["evidence"])
        print(f"lab11 graded live (recording) in {time.monotonic() - t0:.1f}s")
        if KEEP_RECORDING:
            shutil.copy(state["evidence"], KEEP_RECORDING)
        yield state
    finally:
        problems = _restore(state, made_kubeconfig)
        if problems:
            shared_cluster["dirty"] = True
            print("lab11 could not put the cluster back:", problems)


@pytest.mark.cluster
def test_solution_notebook_on_the_cluster_earns_full_marks_and_replays(lab11):
    """real 1.20 cluster on twins: after the solution notebook's cells (Steps 1-6 and 8), every check passes on
    both nodes and the recording replays to the same result; the notebook's own output shows the lab's claims — the
    EndpointSlices served as discovery.k8s.io/v1beta1, the probabilities 1/3 and 1/2, conntrack's reply tuple from a
    pod, and with kube-proxy stopped the old Service answering while the new one did not, until it was back."""
    out = lab11["outputs"]
    for gid in ("show-slices", "check-slices", "show-kube-proxy", "show-iptables", "show-conntrack", "show-nodeport",
                "stop-kube-proxy", "check-stopped", "find-answers"):
        print(f"--- {gid}\n{out.get(gid, '')}")
    assert "discovery.k8s.io/v1beta1" in out["show-slices"]
    assert "✓ the slice followed the Deployment" in out["check-slices"]
    assert "proxyMode: iptables" in out["show-kube-proxy"]
    assert "--probability 0.33333333349" in out["show-iptables"] and "--probability 0.50000000000" in out["show-iptables"]
    assert "src=10.244." in out["show-conntrack"], out["show-conntrack"]
    stopped = out["stop-kube-proxy"]
    assert "existing Service" in stopped and "FAILED" not in stopped.split("existing Service", 1)[1].splitlines()[0]
    assert "new Service" in stopped and "no answer" in stopped and "rules for web-new: 0" in stopped, stopped
    assert "FAILED" not in out["check-stopped"] and "healthz: 200" in out["check-stopped"], out["check-stopped"]
    live = lab11["live"]
    assert not_passing(live) == {}, [(c.id, c.expected, c.actual, c.message) for c in live.checks
                                     if str(c.status) != "pass"]
    assert live.score == live.max_score
    replayed, _ = replay_lab(lab11["course"], LAB, lab11["evidence"])
    assert comparable(replayed.to_dict()) == comparable(live.to_dict())


@pytest.mark.cluster
def test_wrong_answers_fail_without_giving_the_live_values_away(lab11):
    """real 1.20 cluster on twins: the answers file rewritten with another KUBE-SVC chain and another endpoint — the
    two answer checks fail showing the learner's values, never the live ones; the rest passes."""
    ts = lab11["ts"]
    original = ssh_ok(ts, "master", f"cat {ANSWERS}")
    live = {k: v["value"] for k, v in json.loads(original).items()}
    wrong = {k: {"value": v, "recorded_at": "2026-11-30T06:00:00+00:00"}
             for k, v in {"service_chain": "KUBE-SVC-NPX46M4PTMTKRN6Y", "first_endpoint": "10.244.9.9:8080"}.items()}
    ssh_ok(ts, "master", f"cat > {ANSWERS}", input=json.dumps(wrong))
    try:
        result = grade_live(lab11, LAB)
    finally:
        ssh_ok(ts, "master", f"cat > {ANSWERS} && chown vagrant: {ANSWERS}", input=original)
    got = by_id(result)
    assert not_passing(result) == {f"{c}[cluster]": "fail" for c in ANSWER_CHECKS}
    for check, key in (("answer_service_chain", "service_chain"), ("answer_first_endpoint", "first_endpoint")):
        c = got[f"{check}[cluster]"]
        assert c.actual == wrong[key]["value"] and c.expected.startswith("the value of ")
        assert live[key] not in f"{c.expected} {c.actual} {c.message}", (check, c.message)


@pytest.mark.cluster
def test_stopped_kube_proxy_on_the_worker_fails_there(lab11):
    """real 1.20 cluster on twins: the worker's kube-proxy stopped (systemctl stop; its rules stay in the kernel) —
    kube_proxy_running fails on the worker naming the inactive systemd unit, with the hint for both ways of running
    it; the worker's mode and rules checks are blocked; the ClusterIP and NodePort still answer there (the rules
    outlive kube-proxy) and the master passes everything."""
    ts, course = lab11["ts"], lab11["course"]
    ssh_ok(ts, "worker", "systemctl stop kube-proxy")
    try:
        result = grade_live(lab11, LAB)
    finally:
        ssh_ok(ts, "worker", "systemctl start kube-proxy")
    r = by_id(result)["kube_proxy_running[worker]"]
    assert str(r.status) == "fail" and "systemd unit kube-proxy inactive" in r.actual, (r.expected, r.actual)
    assert "systemctl status kube-proxy" in r.hint and "rollout restart daemonset kube-proxy" in r.hint
    assert not_passing(result) == {"kube_proxy_running[worker]": "fail", "kube_proxy_mode[worker]": "blocked",
                                   "rules[worker]": "blocked"}
    wait_for(lambda: _proxies_active(ts, course), "kube-proxy active on every node", timeout_s=60)


# -------------------------------------------------------------------------------------------------
# Step 7 (1.36 only) and course.yaml's kube_proxy_mode, without twins
# -------------------------------------------------------------------------------------------------

# `kubectl -n kube-system get configmap kube-proxy -o yaml` on a kubeadm cluster, shortened (kubeadm writes the full
# defaulted KubeProxyConfiguration into config.conf; `mode: ""` means iptables on Linux). Modelled on kubeadm's own
# output: shared/realdata holds the DaemonSet that mounts it (cluster-info-dump v1.28) but not the ConfigMap.
KUBEADM_KUBE_PROXY_CM = """apiVersion: v1
data:
  config.conf: |-
    apiVersion: kubeproxy.config.k8s.io/v1alpha1
    bindAddress: 0.0.0.0
    clientConnection:
      kubeconfig: /var/lib/kube-proxy/kubeconfig.conf
    clusterCIDR: 10.244.0.0/16
    detectLocalMode: ""
    iptables:
      masqueradeAll: false
      minSyncPeriod: 0s
    ipvs:
      scheduler: ""
    kind: KubeProxyConfiguration
    metricsBindAddress: ""
    mode: ""
    nftables:
      masqueradeAll: false
    winkernel:
      networkName: ""
  kubeconfig.conf: |-
    apiVersion: v1
    kind: Config
kind: ConfigMap
metadata:
  labels:
    app: kube-proxy
  name: kube-proxy
  namespace: kube-system
"""


def test_switch_cell_sets_only_the_mode_and_restarts_the_daemonset(tmp_path):
    """simulation (kubectl replaced by a stand-in serving a ConfigMap modelled on kubeadm's kube-proxy ConfigMap): the
    solution's Step 7 cell changes exactly one line of config.conf — `mode:` to course.yaml's kube_proxy_mode —
    applies the ConfigMap, then restarts the DaemonSet and waits for the rollout (a running kube-proxy never rereads
    its configuration)."""
    import yaml

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    calls = tmp_path / "calls"
    (bin_dir / "kubectl").write_text(
        "#!/bin/sh\n"
        f'echo "kubectl $*" >> {calls}\n'
        f'case "$*" in *"get configmap kube-proxy -o yaml"*) cat {tmp_path / "cm.yaml"};; '
        f'*"apply -f "*) cp "$3" {tmp_path / "applied.yaml"};; esac\n')
    (bin_dir / "kubectl").chmod(0o755)
    (tmp_path / "cm.yaml").write_text(KUBEADM_KUBE_PROXY_CM)
    lines = solution_cells(NOTEBOOK)["switch-nftables"].source.splitlines()[1:]
    script = "\n".join(ln for ln in lines if "### " not in ln).replace("/tmp/kube-proxy-cm.yaml", str(tmp_path / "cm-edit.yaml"))
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "KUBE_PROXY_MODE": "nftables"}
    p = subprocess.run(["bash", "-eo", "pipefail", "-c", script], env=env, capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    applied = (tmp_path / "applied.yaml").read_text()
    before, after = yaml.safe_load(KUBEADM_KUBE_PROXY_CM), yaml.safe_load(applied)
    conf_before, conf_after = yaml.safe_load(before["data"]["config.conf"]), yaml.safe_load(after["data"]["config.conf"])
    assert conf_before["mode"] == "" and conf_after["mode"] == "nftables"
    assert {k: v for k, v in conf_after.items() if k != "mode"} == {k: v for k, v in conf_before.items() if k != "mode"}
    assert after["data"]["kubeconfig.conf"] == before["data"]["kubeconfig.conf"]
    done = calls.read_text().splitlines()
    assert done[-2:] == ["kubectl -n kube-system rollout restart daemonset kube-proxy",
                         "kubectl -n kube-system rollout status daemonset kube-proxy --timeout=180s"], done


@pytest.mark.parametrize("mode,ok", [("nftables", True), ("iptables", True), ("ipvs", False), ("userspace", False),
                                     ("NFTables", False)])
def test_course_kube_proxy_mode_is_one_the_lab_can_grade(mode, ok):
    """simulation: course.yaml's network.kube_proxy_mode — iptables and nftables (the rules Lab 11's grader reads) are
    accepted; ipvs (its rules are IPVS virtual servers, not read by the grader), userspace (removed in 1.26) or a
    misspelling is rejected naming the key."""
    from kubelab.course import CourseProblems, parse_course

    text = (REPO / "course.yaml").read_text().replace("kube_proxy_mode: nftables", f"kube_proxy_mode: {mode}")
    if ok:
        assert parse_course(text).network.kube_proxy_mode == mode
    else:
        with pytest.raises(CourseProblems) as e:
            parse_course(text)
        assert "network.kube_proxy_mode" in str(e.value)
