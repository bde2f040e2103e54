"""Lab 10 — the kubelet: the grader against the twins' real kubeadm v1.20.2 cluster (`shared_cluster`), after the
solution notebook's own cells ran there, and after realistic mistakes; plus the notebook's bash run locally.

Kinds of proof, named in every test's docstring:

- "real 1.20 cluster on twins": the solution notebook's cells run by a real kernel against the twins (static pod on
  the worker, its mirror deleted and back, the file away and back, containerLogMaxSize changed and the kubelet
  restarted, the answers recorded with %answer), graded live (recorded, and the recording replayed to the same
  result); each mistake made for real, graded, put back. Static pods, mirror pods, configz and node Leases behave
  the same in 1.20 as in 1.36. The one change to the notebook: its image `busybox:1.37` (no registry here) becomes
  the course's local busybox with `imagePullPolicy: Never` (kubelab.cluster.build.BUSYBOX_IMAGE).
- "recorded evidence modelled on shared/realdata/kubelet-config/…": 1.36-only shapes no 1.20 kubelet produces (a
  config.yaml that kubeadm >= 1.34 wrote with containerRuntimeEndpoint patched in from instance-config.yaml, a
  configz of a recent kubelet), put into the live recording in place of the 1.20 observations.
- "simulation": the notebook's config.yaml edit run locally on a copy of a file modelled on a real capture, with
  `sudo`, `systemctl` and `curl` replaced by stand-ins.

The module puts the cluster back as it found it in a `finally` (the worker's original config.yaml and a restarted,
Ready kubelet; no static-web manifest or mirror pod; no lab10 answers; no ~/.kube/config it created), or marks the
shared cluster dirty.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from helpers import by_id, grade_live, load_grader, not_passing, run_cells_live, solution_cells, ssh, ssh_ok, wait_for
from kubelab.cluster import build
from kubelab.evidence import comparable, replay_lab, save
from kubelab.evidence.model import load

LAB = "lab10"
NOTEBOOK = f"{LAB}/lab10_kubelet.ipynb"  # under solutions/
KUBECTL = "kubectl --kubeconfig=/etc/kubernetes/admin.conf"
MANIFEST = "/etc/kubernetes/manifests/static-web.yaml"
CONFIG = "/var/lib/kubelet/config.yaml"
SAVED = "/root/lab10-config.yaml.saved"
ANSWERS = "/home/vagrant/.kubelab/answers/lab10.json"
NOTEBOOK_IMAGE = "    image: busybox:1.37\n    imagePullPolicy: IfNotPresent\n"
ANSWER_CHECKS = {"answer_config_hash", "answer_lease_duration", "answer_client_serial"}


G = load_grader("lab10_kubelet.py")


def node_script(source: str) -> str:
    lines = source.splitlines()[1:]
    return "\n".join(ln for ln in lines if "### BEGIN SOLUTION" not in ln and "### END SOLUTION" not in ln)


# -------------------------------------------------------------------------------------------------
# no twins: the notebook and the grader agree; the config edit; the serial comparison
# -------------------------------------------------------------------------------------------------

def test_notebook_writes_what_the_grader_looks_for():
    """simulation: the solution's static pod manifest and its values cell, parsed — a Pod named as the grader's
    STATIC_POD in its namespace, in the grader's manifest path; the setting value the grader expects."""
    cells = solution_cells(NOTEBOOK)
    write = cells["write-static-pod"].source
    assert f"sudo tee {G.MANIFESTS}/{G.STATIC_POD}.yaml" in write
    pod = yaml.safe_load(write.split("<<'EOF'\n", 1)[1].split("\nEOF\n", 1)[0])
    assert pod["kind"] == "Pod" and pod["metadata"]["name"] == G.STATIC_POD
    assert pod["metadata"]["namespace"] == G.STATIC_POD_NAMESPACE
    assert NOTEBOOK_IMAGE in write  # the one text the live test swaps for the local image
    values = cells["course-values"].source
    assert f'LOG_MAX_SIZE = "{G.SETTING_VALUE}"' in values and f'STATIC_POD = "{G.STATIC_POD}"' in values
    assert "%answer lab10 lease_duration_seconds" in cells["record-heartbeat"].source
    assert "%answer lab10 mirror_config_hash" in cells["record-heartbeat"].source
    assert "%answer lab10 kubelet_client_serial" in cells["record-serial"].source


# a kubeadm >= 1.29 config.yaml in the shape of shared/realdata/kubelet-config/v1.29_..._config.yaml_EXTRACT.yaml
# (no containerLogMaxSize line: kubeadm leaves defaulted fields out), with the containerRuntimeEndpoint that
# kubeadm >= 1.34 patches in from instance-config.yaml
KUBEADM_136_CONFIG = """apiVersion: kubelet.config.k8s.io/v1beta1
authentication:
  anonymous:
    enabled: false
  webhook:
    cacheTTL: 0s
    enabled: true
  x509:
    clientCAFile: /etc/kubernetes/pki/ca.crt
authorization:
  mode: Webhook
cgroupDriver: systemd
clusterDNS:
- 10.96.0.10
clusterDomain: cluster.local
containerRuntimeEndpoint: unix:///run/containerd/containerd.sock
healthzBindAddress: 127.0.0.1
healthzPort: 10248
kind: KubeletConfiguration
rotateCertificates: true
staticPodPath: /etc/kubernetes/manifests
"""


def _run_change_setting(tmp_path: Path, config_text: str, healthz: str = "ok") -> subprocess.CompletedProcess:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    (bin_dir / "sudo").write_text('#!/bin/sh\nexec "$@"\n')
    (bin_dir / "systemctl").write_text(f'#!/bin/sh\necho "systemctl $*" >> {tmp_path / "calls"}\n')
    (bin_dir / "curl").write_text(f"#!/bin/sh\nprintf %s {healthz}\n")
    for f in bin_dir.iterdir():
        f.chmod(0o755)
    cfg = tmp_path / "config.yaml"
    if not cfg.exists():
        cfg.write_text(config_text)
    script = node_script(solution_cells(NOTEBOOK)["change-setting"].source).replace(CONFIG, str(cfg))
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "LOG_MAX_SIZE": G.SETTING_VALUE}
    return subprocess.run(["bash", "-eo", "pipefail", "-c", script], env=env, capture_output=True, text=True,
                          timeout=60)


def test_change_setting_cell_adds_the_line_keeps_a_copy_and_restarts(tmp_path):
    """simulation on a config.yaml modelled on shared/realdata/kubelet-config (v1.29 kubeadm file, plus 1.36's
    containerRuntimeEndpoint from instance-config.yaml): the solution cell adds one top-level containerLogMaxSize,
    keeps the original once, restarts the kubelet; a second run changes nothing more; the file parses as the
    grader parses it."""
    p = _run_change_setting(tmp_path, KUBEADM_136_CONFIG)
    assert p.returncode == 0, p.stderr
    cfg = tmp_path / "config.yaml"
    assert (tmp_path / "config.yaml.orig").read_text() == KUBEADM_136_CONFIG
    conf = yaml.safe_load(cfg.read_text())
    assert conf[G.SETTING] == G.SETTING_VALUE and conf["containerRuntimeEndpoint"].startswith("unix://")
    assert (tmp_path / "calls").read_text() == "systemctl restart kubelet\n"
    first = cfg.read_text()
    again = _run_change_setting(tmp_path, KUBEADM_136_CONFIG)
    assert again.returncode == 0 and cfg.read_text() == first
    assert (tmp_path / "config.yaml.orig").read_text() == KUBEADM_136_CONFIG
    assert first.count(f"{G.SETTING}:") == 1


def test_change_setting_cell_replaces_an_existing_line(tmp_path):
    """simulation: a config.yaml that already sets containerLogMaxSize (10Mi) — the line is replaced, not
    duplicated (a repeated YAML key is the mistake this avoids)."""
    p = _run_change_setting(tmp_path, KUBEADM_136_CONFIG + "containerLogMaxSize: 10Mi\n")
    assert p.returncode == 0, p.stderr
    text = (tmp_path / "config.yaml").read_text()
    assert text.count("containerLogMaxSize") == 1 and yaml.safe_load(text)[G.SETTING] == G.SETTING_VALUE


@pytest.mark.parametrize("given,live,ok", [
    ("4A3B0F", "4A3B0F", True), ("4a3b0f", "4A3B0F", True), ("serial=4A3B0F", "4A3B0F", True),
    ("4A:3B:0F", "4A3B0F", True), ("0x4a3b0f", "4A3B0F", True), (str(0x4A3B0F), "4A3B0F", True),
    ("4A3B10", "4A3B0F", False), ("not hex", "4A3B0F", False), ("", "4A3B0F", False)])
def test_serial_comparison(given, live, ok):
    """simulation: the serial as a learner may copy it from openssl (any case, colons, 0x, decimal) — one value;
    another serial or text — not."""
    assert G.same_serial(given, live) is ok


# -------------------------------------------------------------------------------------------------
# live on the real 1.20 cluster
# -------------------------------------------------------------------------------------------------

def _mirror_ready(ts, node="worker") -> str:
    return ssh(ts, "master", f"{KUBECTL} get pod static-web-{node} -o "
                             "jsonpath='{.status.conditions[?(@.type==\"Ready\")].status}'").stdout.strip()


def _static_web_pods(ts) -> str:
    return ssh(ts, "master", f"{KUBECTL} get pods -o name").stdout.replace("pod/", "").split().__str__()


def _worker_healthy(ts) -> bool:
    health = ssh(ts, "worker", "curl -s -m 3 http://127.0.0.1:10248/healthz").stdout.strip()
    ready = ssh(ts, "master", f"{KUBECTL} get node worker -o "
                              "jsonpath='{.status.conditions[?(@.type==\"Ready\")].status}'").stdout.strip()
    return health == "ok" and ready == "True"


def _restore(state, made_kubeconfig: bool) -> list[str]:
    """The cluster as the module found it; what could not be put back."""
    ts = state["ts"]
    problems = []
    steps = [
        ("worker", f"rm -f {MANIFEST} /root/static-web.yaml; "
                   f"if [ -f {SAVED} ]; then cp -p {SAVED} {CONFIG} && rm -f {SAVED}; fi; rm -f {CONFIG}.orig; "
                   "systemctl restart kubelet"),
        ("master", f"rm -f {MANIFEST} {ANSWERS}" + ("; rm -f /home/vagrant/.kube/config" if made_kubeconfig else "")),
    ]
    for node, cmd in steps:
        p = ssh(ts, node, cmd)
        if p.returncode != 0:
            problems.append(f"{node}: {cmd}: {p.stderr.strip()[-200:]}")
    deadline = time.monotonic() + 150
    while time.monotonic() < deadline:
        pods = _static_web_pods(ts)
        if _worker_healthy(ts) and "static-web" not in pods:
            break
        time.sleep(3)
    else:
        problems.append(f"worker healthy: {_worker_healthy(ts)}, pods: {_static_web_pods(ts)}")
    return problems


@pytest.fixture(scope="module")
def lab10(shared_cluster, tmp_path_factory):
    """The solution notebook run on the shared cluster, then its graded, recorded state; put back afterwards."""
    ts = shared_cluster["ts"]
    made_kubeconfig = ssh(ts, "master", "test -e /home/vagrant/.kube/config").returncode != 0
    ssh_ok(ts, "worker", f"cp -p {CONFIG} {SAVED}")
    folder = tmp_path_factory.mktemp("lab10")
    state = {"course": shared_cluster["course"], "ts": ts}
    try:
        cells = solution_cells(NOTEBOOK)
        run = [c for gid, c in cells.items() if c.cell_type == "code" and gid != "grade_lab10"]
        write = cells["write-static-pod"]
        assert write.source.count(NOTEBOOK_IMAGE) == 1
        write.source = write.source.replace(
            NOTEBOOK_IMAGE, f"    image: {build.BUSYBOX_IMAGE}\n    imagePullPolicy: Never\n")
        t0 = time.monotonic()
        state["outputs"] = run_cells_live(run, folder, ts)
        state["notebook_s"] = time.monotonic() - t0
        print(f"lab10 solution notebook ran on the twins in {state['notebook_s']:.1f}s")
        t0 = time.monotonic()
        state["evidence"] = folder / "solved.evidence.json"
        state["live"] = grade_live(state, LAB, record=state["evidence"])
        print(f"lab10 graded live (recording) in {time.monotonic() - t0:.1f}s")
        yield state
    finally:
        problems = _restore(state, made_kubeconfig)
        if problems:
            shared_cluster["dirty"] = True
            print("lab10 could not put the cluster back:", problems)


@pytest.mark.cluster
def test_solution_notebook_on_the_cluster_earns_full_marks_and_replays(lab10):
    """real 1.20 cluster on twins: after the solution notebook's cells (the mirror pod deleted and back with a new
    UID while the same container kept running, the file away and back, the setting changed and in effect, the answers recorded), every check passes —
    10 of 10 — and the recording replays to the same result."""
    out = lab10["outputs"]
    for gid in ("show-config", "check-configz", "check-static", "delete-mirror", "show-heartbeat", "show-tls",
                "show-path"):
        print(f"--- {gid}\n{out[gid]}")
    assert "✓ the kubelet published a new mirror pod" in out["delete-mirror"], out["delete-mirror"]
    assert "✓ the same container kept running" in out["delete-mirror"], out["delete-mirror"]
    assert "✓ in effect, node Ready" in out["check-setting"], out["check-setting"]
    assert "renewTime=" in out["show-heartbeat"] and "leaseDurationSeconds=40" in out["show-heartbeat"]
    assert "kubelet_client_serial" in out["record-serial"] and "recorded on master" in out["record-serial"]
    assert "Node/worker" in out["check-static"], out["check-static"]
    live = lab10["live"]
    assert not_passing(live) == {}, [(c.id, c.expected, c.actual, c.message) for c in live.checks
                                     if str(c.status) != "pass"]
    assert live.score == live.max_score == 10
    replayed, _ = replay_lab(lab10["course"], LAB, lab10["evidence"])
    assert comparable(replayed.to_dict()) == comparable(live.to_dict())


@pytest.mark.cluster
def test_wrong_answers_fail_without_giving_the_live_values_away(lab10):
    """real 1.20 cluster on twins: the answers file rewritten with a wrong config.hash, lease duration and serial —
    the three answer checks fail showing the learner's values, never the live ones; the rest passes."""
    ts = lab10["ts"]
    original = ssh_ok(ts, "master", f"cat {ANSWERS}")
    live = {k: v["value"] for k, v in json.loads(original).items()}
    wrong = {k: {"value": v, "recorded_at": "2026-11-30T06:00:00+00:00"}
             for k, v in {"mirror_config_hash": "0123456789abcdef0123456789abcdef", "lease_duration_seconds": "41",
                          "kubelet_client_serial": "DEADBEEF"}.items()}
    ssh_ok(ts, "master", f"cat > {ANSWERS}", input=json.dumps(wrong))
    try:
        result = grade_live(lab10, LAB)
    finally:
        ssh_ok(ts, "master", f"cat > {ANSWERS} && chown vagrant: {ANSWERS}", input=original)
    got = by_id(result)
    assert not_passing(result) == {f"{c}[cluster]": "fail" for c in ANSWER_CHECKS}
    for check, key in (("answer_config_hash", "mirror_config_hash"), ("answer_lease_duration", "lease_duration_seconds"),
                       ("answer_client_serial", "kubelet_client_serial")):
        c = got[f"{check}[cluster]"]
        assert c.actual == wrong[key]["value"] and c.expected.startswith("the value of ")
        assert live[key] not in f"{c.expected} {c.actual} {c.message}", (check, c.message)


@pytest.mark.cluster
def test_static_pod_manifest_with_a_syntax_error_fails(lab10):
    """real 1.20 cluster on twins: the worker's static-web.yaml with a YAML syntax error (an unclosed flow
    sequence) — static_pod_file fails saying where, with the hint to validate it; the mirror pod and the
    config.hash answer are blocked, not failed."""
    ts = lab10["ts"]
    good = ssh_ok(ts, "worker", f"cat {MANIFEST}")
    ssh_ok(ts, "worker", f"cat > {MANIFEST}", input=good.replace("command: [", "command: [[", 1))
    try:
        result = grade_live(lab10, LAB)
    finally:
        ssh_ok(ts, "worker", f"cat > {MANIFEST}", input=good)
    f = by_id(result)["static_pod_file[worker]"]
    assert str(f.status) == "fail" and f.actual.startswith("not valid YAML at line"), (f.actual, f.message)
    assert "valid YAML" in f.hint and "journalctl -u kubelet" in f.hint
    assert not_passing(result) == {"static_pod_file[worker]": "fail", "mirror_pod[cluster]": "blocked",
                                   "answer_config_hash[cluster]": "blocked"}
    wait_for(lambda: _mirror_ready(ts), "the static pod back from the fixed manifest", until=lambda s: s == "True",
             timeout_s=120)


@pytest.mark.cluster
def test_manifest_written_on_the_master_instead_fails_naming_where_it_is(lab10):
    """real 1.20 cluster on twins: the manifest on the control plane instead of the worker (master's kubelet runs
    static-web-master) — static_pod_file fails on the worker, saying the file is on master; the mirror pod check
    and the config.hash answer are blocked."""
    ts = lab10["ts"]
    good = ssh_ok(ts, "worker", f"cat {MANIFEST}")
    ssh_ok(ts, "master", f"cat > {MANIFEST}", input=good)
    ssh_ok(ts, "worker", f"rm {MANIFEST}")
    try:
        wait_for(lambda: _mirror_ready(ts, "master"), "master's kubelet running the static pod",
                 until=lambda s: s == "True", timeout_s=120)
        result = grade_live(lab10, LAB)
    finally:
        ssh_ok(ts, "master", f"rm -f {MANIFEST}")
        ssh_ok(ts, "worker", f"cat > {MANIFEST}", input=good)
    f = by_id(result)["static_pod_file[worker]"]
    assert str(f.status) == "fail" and f.actual == "missing (it is on master: its kubelet runs it there)", f.actual
    assert "ON THE WORKER" in f.hint
    assert not_passing(result) == {"static_pod_file[worker]": "fail", "mirror_pod[cluster]": "blocked",
                                   "answer_config_hash[cluster]": "blocked"}
    wait_for(lambda: _static_web_pods(lab10["ts"]), "static-web-master gone",
             until=lambda s: "static-web-master" not in s, timeout_s=120)
    wait_for(lambda: _mirror_ready(ts), "the static pod back on the worker", until=lambda s: s == "True", timeout_s=120)


@pytest.mark.cluster
def test_setting_changed_but_kubelet_not_restarted_fails_in_effect(lab10):
    """real 1.20 cluster on twins: the worker's kubelet restarted on its original config.yaml, then the file
    changed to containerLogMaxSize 20Mi without a restart — the file check passes, the in-effect check fails
    (configz: 10Mi) with the hint to restart; after a restart it passes again. Graded on virtual time (nothing
    restarts the kubelet meanwhile): the in-effect check's polls give up at once instead of waiting 20 s."""
    ts = lab10["ts"]
    changed = ssh_ok(ts, "worker", f"cat {CONFIG}")
    ssh_ok(ts, "worker", f"cp -p {SAVED} {CONFIG} && systemctl restart kubelet")
    wait_for(lambda: _worker_healthy(ts), "the worker's kubelet back on its original config", timeout_s=120)
    ssh_ok(ts, "worker", f"cat > {CONFIG}", input=changed)
    try:
        result = grade_live(lab10, LAB, settled=True)  # the kubelet keeps its old setting until restarted
    finally:
        ssh_ok(ts, "worker", "systemctl restart kubelet")
    e = by_id(result)["setting_in_effect[worker]"]
    assert str(e.status) == "fail" and e.expected == G.SETTING_VALUE and e.actual == "10Mi", (e.expected, e.actual)
    assert "systemctl restart kubelet" in e.hint and "configz" in e.hint
    assert not_passing(result) == {"setting_in_effect[worker]": "fail"}
    wait_for(lambda: _worker_healthy(ts), "the worker's kubelet healthy after the restart", timeout_s=120)


@pytest.mark.cluster
def test_stopped_kubelet_fails_the_health_check(lab10):
    """real 1.20 cluster on twins: the worker's kubelet stopped — kubelet_healthy fails on healthz (no answer)
    with the hint naming `systemctl status kubelet`; the in-effect check cannot reach configz and fails too.
    Graded on virtual time (nothing starts the kubelet meanwhile): the polls give up at once."""
    ts = lab10["ts"]
    ssh_ok(ts, "worker", "systemctl stop kubelet")
    try:
        result = grade_live(lab10, LAB, settled=True)  # stopped until the finally below
    finally:
        ssh_ok(ts, "worker", "systemctl start kubelet")
    h = by_id(result)["kubelet_healthy[worker]"]
    assert str(h.status) == "fail" and h.expected == "ok" and h.actual.startswith("no answer"), (h.actual,)
    assert "systemctl status kubelet" in h.hint
    assert {"kubelet_healthy[worker]", "setting_in_effect[worker]"} <= set(not_passing(result))
    wait_for(lambda: _worker_healthy(ts), "the worker's kubelet healthy again", timeout_s=120)


# -------------------------------------------------------------------------------------------------
# 1.36 shapes, on the live recording
# -------------------------------------------------------------------------------------------------

# the running configuration of a recent kubelet, in the shape of shared/realdata/kubelet-config/
# v1.28_..._kubelet-configz-k8s-node-01.txt (defaults filled in), with 1.36's containerRuntimeEndpoint field
def configz_136(log_max_size: str) -> dict:
    return {"kubeletconfig": {
        "enableServer": True, "staticPodPath": "/etc/kubernetes/manifests", "syncFrequency": "1m0s",
        "fileCheckFrequency": "20s", "address": "0.0.0.0", "port": 10250,
        "tlsCertFile": "/var/lib/kubelet/pki/kubelet.crt", "tlsPrivateKeyFile": "/var/lib/kubelet/pki/kubelet.key",
        "rotateCertificates": True, "healthzPort": 10248, "healthzBindAddress": "127.0.0.1",
        "clusterDomain": "cluster.local", "clusterDNS": ["10.96.0.10"], "nodeStatusUpdateFrequency": "10s",
        "nodeStatusReportFrequency": "5m0s", "cgroupDriver": "systemd", "containerLogMaxSize": log_max_size,
        "containerLogMaxFiles": 5, "containerRuntimeEndpoint": "unix:///run/containerd/containerd.sock"}}


def _with_136_config(evidence: Path, out: Path, file_value: str | None, running: str) -> Path:
    ev = load(evidence)
    cat = [o for o in ev.nodes["worker"] if o.cmd.endswith(f"cat {CONFIG}")]
    assert cat, [o.cmd for o in ev.nodes["worker"]]
    for o in cat:
        o.stdout = KUBEADM_136_CONFIG + (f"containerLogMaxSize: {file_value}\n" if file_value else "")
    configz = [o for o in ev.api if o.path == "/api/v1/nodes/worker/proxy/configz"]
    assert configz, [o.path for o in ev.api]
    for o in configz:
        o.data = json.dumps(configz_136(running))
    return save(ev, out)


@pytest.mark.cluster
def test_136_config_yaml_and_configz_pass_from_evidence(lab10, tmp_path):
    """recorded evidence modelled on shared/realdata/kubelet-config (a kubeadm-written config.yaml with 1.36's
    containerRuntimeEndpoint patched in from instance-config.yaml; a recent kubelet's configz): the setting in the
    file and in effect — both checks pass, as on 1.20."""
    result, _ = replay_lab(lab10["course"], LAB, _with_136_config(lab10["evidence"], tmp_path / "a.json",
                                                                  G.SETTING_VALUE, G.SETTING_VALUE))
    got = by_id(result)
    assert str(got["setting_in_file[worker]"].status) == "pass"
    assert str(got["setting_in_effect[worker]"].status) == "pass"


@pytest.mark.cluster
def test_136_config_yaml_without_the_setting_fails_from_evidence(lab10, tmp_path):
    """recorded evidence modelled on shared/realdata/kubelet-config (as above), the file as kubeadm wrote it (no
    containerLogMaxSize line) and the kubelet on its default: setting_in_file fails naming the default, the
    in-effect check is blocked."""
    result, _ = replay_lab(lab10["course"], LAB, _with_136_config(lab10["evidence"], tmp_path / "b.json", None, "10Mi"))
    got = by_id(result)
    f = got["setting_in_file[worker]"]
    assert str(f.status) == "fail" and f.actual == "(not set: the default 10Mi)" and f.expected == G.SETTING_VALUE
    assert str(got["setting_in_effect[worker]"].status) == "blocked"
