"""Lab 11 from evidence, no twins: every check's passing and failing case, replayed through the engine.

Proof, named per test:

- "recorded evidence from the real 1.20 cluster on twins" — tests/data/lab11/solved-v1.20-twins.recording.json was
  recorded by test_lab11.py's live run (the solution notebook's cells run on the twins' kubeadm v1.20.2 cluster, kube-
  proxy in iptables mode as a systemd service, then graded with recording against course.yaml asking for iptables;
  redacted as every recording is). The failing cases change one observation of it to what a realistic mistake shows
  on a real cluster (shapes seen on the twins: a Service, an EndpointSlice list, `systemctl is-active`, curl's exit
  codes, `iptables-save -t nat`), then replay it.
- "recorded evidence modelled on 1.36" — the same recording with the observations a 1.36 kubeadm cluster gives in
  their place: kube-proxy as the kubeadm DaemonSet's pod, EndpointSlices served as discovery.k8s.io/v1, kube-proxy in
  nftables mode with its table as `nft list table ip kube-proxy` prints it (tests/lab11_rulesets.py: upstream's
  ruleset shape; no real nft capture exists in shared/realdata), graded against the course.yaml in this repository
  (network.kube_proxy_mode: nftables).
"""

from __future__ import annotations

import json

from evidence_edit import EvidenceEdit
from helpers import REPO, by_id, not_passing
from lab11_rulesets import nft_ruleset
from kubelab.course import LoadedCourse, load_course
from kubelab.evidence import replay_lab

LAB = "lab11"
RECORDING = REPO / "tests" / "data" / "lab11" / "solved-v1.20-twins.recording.json"
SERVICE = "/api/v1/namespaces/lab11-web/services/web"
GROUP = "/apis/discovery.k8s.io"
PROXY_MODE = "curl -s -m 5 http://127.0.0.1:10249/proxyMode"
IS_ACTIVE = "systemctl is-active kube-proxy"
HEALTHZ = "curl -s -m 5 -o /dev/null -w '%{http_code}' http://127.0.0.1:10256/healthz"
IPTABLES = "sudo -n iptables-save -t nat"
NFT = "sudo -n nft list table ip kube-proxy"
ANSWERS_CAT = "cat ~vagrant/.kubelab/answers/lab11.json"
REPO_COURSE = load_course(REPO)          # network.kube_proxy_mode: nftables (the 1.36 course)


def twins_course() -> LoadedCourse:
    """course.yaml asking for iptables, as the live module grades the twins' 1.20 cluster."""
    network = REPO_COURSE.model.network.model_copy(update={"kube_proxy_mode": "iptables"})
    return LoadedCourse(REPO_COURSE.model.model_copy(update={"network": network}), REPO_COURSE.root)


TWINS = twins_course()


class Edit(EvidenceEdit):
    recording, lab, course = RECORDING, LAB, TWINS


def _cluster_ip(e: Edit) -> str:
    return e.api_data(SERVICE)["spec"]["clusterIP"]


def _ready_endpoints(e: Edit) -> list[str]:
    data = e.api_data(e.api_path("/endpointslices"))
    return sorted(f"{a}:8080" for s in data["items"] for ep in s["endpoints"] for a in ep["addresses"])


# -------------------------------------------------------------------------------------------------
# the recording as it is, and against the 1.36 course
# -------------------------------------------------------------------------------------------------

def test_the_recording_replays_to_full_marks():
    """recorded evidence from the real 1.20 cluster on twins, unchanged, graded against course.yaml asking for
    iptables: every check passes on both nodes — and what the grader saw is what the lab says: EndpointSlices served
    as discovery.k8s.io/v1beta1, kube-proxy a systemd unit, its KUBE-SVC chain with the probabilities 1/3 and 1/2."""
    result, ev = replay_lab(TWINS, LAB, RECORDING)
    assert not_passing(result) == {} and result.score == result.max_score
    e = Edit()
    assert "/apis/discovery.k8s.io/v1beta1/" in e.api_path("/endpointslices")
    assert len(_ready_endpoints(e)) == 3
    assert e.stdout("worker", IS_ACTIVE).strip() == "active"
    assert "--probability 0.33333333349" in e.stdout("master", IPTABLES)


def test_the_twins_iptables_mode_fails_a_course_asking_for_nftables(tmp_path):
    """recorded evidence from the real 1.20 cluster on twins, graded against this repository's course.yaml
    (network.kube_proxy_mode: nftables): kube_proxy_mode fails on both nodes, expected nftables, actual iptables,
    with the hint naming the ConfigMap and the DaemonSet restart; the rules (read in the mode kube-proxy reports)
    and everything else pass."""
    result = Edit().replay(tmp_path, REPO_COURSE)
    assert not_passing(result) == {"kube_proxy_mode[master]": "fail", "kube_proxy_mode[worker]": "fail"}
    m = by_id(result)["kube_proxy_mode[worker]"]
    assert (m.expected, m.actual) == ("nftables", "iptables")
    assert "configmap kube-proxy" in m.hint and "rollout restart daemonset kube-proxy" in m.hint


def _as_136_nftables(e: Edit, answers_in_nft: bool = True) -> Edit:
    """The recording with what a 1.36 kubeadm node in nftables mode shows instead: EndpointSlices served as v1,
    kube-proxy the DaemonSet's pod, /proxyMode nftables, its table instead of the KUBE-SVC rules."""
    ip, eps = _cluster_ip(e), _ready_endpoints(e)
    old = e.api_path("/endpointslices")
    slices = e.api_data(old)
    for s in slices["items"]:
        s["apiVersion"] = "discovery.k8s.io/v1"
        for ep in s["endpoints"]:
            ep["nodeName"] = (ep.pop("topology", None) or {}).get("kubernetes.io/hostname", "worker")
    e.add_api(old.replace("/v1beta1/", "/v1/"), slices)
    e.api(GROUP, lambda d: d.update(preferredVersion={"groupVersion": "discovery.k8s.io/v1", "version": "v1"},
                                    versions=[{"groupVersion": "discovery.k8s.io/v1", "version": "v1"}]))
    text = nft_ruleset(ip, eps)
    for node in ("master", "worker"):
        e.cmd(node, PROXY_MODE, "nftables")
        e.cmd(node, NFT, text)
        pods = e.api_path(f"spec.nodeName%3D{node}")
        e.api(pods, lambda d, node=node: d.update(items=[{
            "metadata": {"name": f"kube-proxy-{node[:5]}", "namespace": "kube-system", "labels": {"k8s-app": "kube-proxy"}},
            "spec": {"nodeName": node, "containers": [{"name": "kube-proxy", "image": "registry.k8s.io/kube-proxy:v1.36.4"}]},
            "status": {"phase": "Running"}}]))
    if answers_in_nft:
        first = f"{eps[0]}"
        answers = {"service_chain": {"value": "service-ULMVA6XW-lab11-web/web/tcp/http", "recorded_at": "2026-11-30T06:00:00+00:00"},
                   "first_endpoint": {"value": first, "recorded_at": "2026-11-30T06:00:00+00:00"}}
        e.cmd("master", ANSWERS_CAT, json.dumps(answers))
    return e


def test_136_nftables_mode_passes_from_evidence(tmp_path):
    """recorded evidence modelled on 1.36 (EndpointSlices as discovery.k8s.io/v1, kube-proxy the DaemonSet's Running
    pod, /proxyMode nftables, `nft list table ip kube-proxy` holding the Service's service-ips element, service chain
    and three endpoint chains; the answers recorded from that table): every check passes against this repository's
    course.yaml (nftables)."""
    result = _as_136_nftables(Edit()).replay(tmp_path, REPO_COURSE)
    assert not_passing(result) == {}, [(c.id, c.expected, c.actual) for c in result.checks if str(c.status) != "pass"]


def test_136_answers_recorded_in_iptables_mode_fail_after_the_switch(tmp_path):
    """recorded evidence modelled on 1.36 (as above) but the answers still the KUBE-SVC chain recorded before the
    switch to nftables: answer_service_chain fails (the grader recomputes in the mode kube-proxy runs in now);
    the first endpoint — the same pod IP in both modes here — passes."""
    result = _as_136_nftables(Edit(), answers_in_nft=False).replay(tmp_path, REPO_COURSE)
    assert not_passing(result) == {"answer_service_chain[cluster]": "fail"}
    assert by_id(result)["answer_service_chain[cluster]"].actual.startswith("KUBE-SVC-")


def test_136_nft_table_missing_fails_the_rules_check(tmp_path):
    """recorded evidence modelled on 1.36, the worker's kube-proxy reporting nftables but no `ip kube-proxy` table
    (nft's real error for a missing table) — rules fails on the worker naming the table."""
    e = _as_136_nftables(Edit())
    e.cmd("worker", NFT, rc=1, stderr="Error: No such file or directory\nlist table ip kube-proxy\n                   ^^^^^^^^^^")
    result = e.replay(tmp_path, REPO_COURSE)
    assert not_passing(result) == {"rules[worker]": "fail"}
    r = by_id(result)["rules[worker]"]
    assert "ip kube-proxy" in r.expected and "No such file" in r.actual


# -------------------------------------------------------------------------------------------------
# one mistake per check, on the recording
# -------------------------------------------------------------------------------------------------

def test_a_clusterip_service_fails_the_service_check(tmp_path):
    """recorded evidence from the real 1.20 cluster on twins, the Service of type ClusterIP (no nodePort) — service
    fails showing type and nodePort; every check that needs it is blocked."""
    def cluster_ip(d):
        d["spec"]["type"] = "ClusterIP"
        d["spec"]["ports"][0].pop("nodePort", None)
        d["spec"].pop("externalTrafficPolicy", None)
    result = Edit().api(SERVICE, cluster_ip).replay(tmp_path)
    s = by_id(result)["service[cluster]"]
    assert str(s.status) == "fail" and "ClusterIP" in s.actual and "NodePort" in s.expected
    assert set(not_passing(result)) == {"service[cluster]", "endpoints[cluster]", "rules[master]", "rules[worker]",
                                         "cluster_ip[master]", "cluster_ip[worker]", "node_port[master]",
                                         "node_port[worker]", "answer_service_chain[cluster]",
                                         "answer_first_endpoint[cluster]"}


def test_a_missing_service_fails(tmp_path):
    """recorded evidence from the real 1.20 cluster on twins, the Service absent (the API server's real 404) —
    service fails 'none'."""
    body = json.dumps({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound", "code": 404,
                       "message": 'services "web" not found', "details": {"name": "web", "kind": "services"}})
    s = by_id(Edit().api(SERVICE, status=404, data=body).replay(tmp_path))["service[cluster]"]
    assert str(s.status) == "fail" and s.actual == "none"


def test_an_unready_endpoint_fails_the_endpoints_check(tmp_path):
    """recorded evidence from the real 1.20 cluster on twins, one endpoint of the slice not ready (its pod failing its
    readiness probe) — endpoints fails: 2, not 3, listing the ready ones; the checks that need it are blocked."""
    e = Edit()
    path = e.api_path("/endpointslices")
    e.api(path, lambda d: d["items"][0]["endpoints"][0]["conditions"].update(ready=False))
    result = e.replay(tmp_path)
    f = by_id(result)["endpoints[cluster]"]
    assert (str(f.status), f.expected, f.actual) == ("fail", "3", "2"), (f.status, f.expected, f.actual)
    assert not_passing(result) == {"endpoints[cluster]": "fail", **{f"{c}[{n}]": "blocked" for c in (
        "rules", "cluster_ip", "node_port") for n in ("master", "worker")}, "answer_first_endpoint[cluster]": "blocked"}


def test_inactive_kube_proxy_fails_the_running_check(tmp_path):
    """recorded evidence from the real 1.20 cluster on twins, the worker's kube-proxy unit inactive (`systemctl
    is-active` exit 3) and its healthz not answering (curl exit 7) — kube_proxy_running fails on the worker; its mode
    and rules checks are blocked."""
    e = Edit().cmd("worker", IS_ACTIVE, "inactive\n", rc=3).cmd("worker", HEALTHZ, "000", rc=7)
    result = e.replay(tmp_path)
    assert not_passing(result) == {"kube_proxy_running[worker]": "fail", "kube_proxy_mode[worker]": "blocked",
                                    "rules[worker]": "blocked"}
    assert "inactive" in by_id(result)["kube_proxy_running[worker]"].actual


def test_unhealthy_kube_proxy_fails_the_running_check(tmp_path):
    """recorded evidence from the real 1.20 cluster on twins, the master's kube-proxy active but its healthz
    answering 503 (it has not synced its rules for too long) — kube_proxy_running fails on the master, expected 200."""
    result = Edit().cmd("master", HEALTHZ, "503").replay(tmp_path)
    r = by_id(result)["kube_proxy_running[master]"]
    assert str(r.status) == "fail" and (r.expected, r.actual) == ("200", "503")


def test_stale_rules_fail_the_rules_check(tmp_path):
    """recorded evidence from the real 1.20 cluster on twins, the worker's KUBE-SEP chain for one endpoint DNATing to
    a pod IP that is no longer ready (rules written before a pod was replaced, by a kube-proxy that then stopped
    syncing) — rules fails on the worker showing the DNAT targets it found."""
    e = Edit()
    eps = _ready_endpoints(e)
    text = e.stdout("worker", IPTABLES).replace(f"--to-destination {eps[0]}", "--to-destination 10.244.1.250:8080")
    result = e.cmd("worker", IPTABLES, text).replay(tmp_path)
    assert not_passing(result) == {"rules[worker]": "fail"}
    r = by_id(result)["rules[worker]"]
    assert "10.244.1.250:8080" in r.actual and eps[0] in r.expected


def test_no_rules_for_the_service_fail_the_rules_check(tmp_path):
    """recorded evidence from the real 1.20 cluster on twins, the worker's nat table without the Service's lines (a
    kube-proxy stopped before the Service was created) — rules fails on the worker: no rule for the ClusterIP."""
    e = Edit()
    text = "\n".join(ln for ln in e.stdout("worker", IPTABLES).splitlines() if "lab11-web/web" not in ln) + "\n"
    result = e.cmd("worker", IPTABLES, text).replay(tmp_path)
    assert not_passing(result) == {"rules[worker]": "fail"}
    assert by_id(result)["rules[worker]"].actual == "none"


def test_a_clusterip_that_does_not_answer_fails(tmp_path):
    """recorded evidence from the real 1.20 cluster on twins, curl to the ClusterIP from the worker timing out (curl
    exit 28, as with no rule or no pod route) — cluster_ip fails on the worker."""
    e = Edit()
    cmd = e.cmd_containing("worker", f"http://{_cluster_ip(e)}:80/")
    result = e.cmd("worker", cmd, "000", rc=28).replay(tmp_path)
    assert not_passing(result) == {"cluster_ip[worker]": "fail"}
    assert by_id(result)["cluster_ip[worker]"].actual == "no answer (curl exit 28)"


def test_a_nodeport_that_does_not_answer_fails(tmp_path):
    """recorded evidence from the real 1.20 cluster on twins, curl to the master's IP:nodePort refused (curl exit 7)
    — node_port fails on the master."""
    e = Edit()
    port = e.api_data(SERVICE)["spec"]["ports"][0]["nodePort"]
    cmd = e.cmd_containing("master", f":{port}/")
    result = e.cmd("master", cmd, "000", rc=7).replay(tmp_path)
    assert not_passing(result) == {"node_port[master]": "fail"}


def test_no_answers_recorded_fails_the_answer_checks(tmp_path):
    """recorded evidence from the real 1.20 cluster on twins, no answers file on the control plane (`cat`'s real
    error) — the two answer checks fail saying how to record one; nothing else changes."""
    e = Edit().cmd("master", ANSWERS_CAT, rc=1,
                   stderr="cat: /home/vagrant/.kubelab/answers/lab11.json: No such file or directory")
    result = e.replay(tmp_path)
    assert not_passing(result) == {"answer_service_chain[cluster]": "fail", "answer_first_endpoint[cluster]": "fail"}
    c = by_id(result)["answer_first_endpoint[cluster]"]
    assert c.actual == "none recorded" and "%answer lab11 first_endpoint" in c.expected
