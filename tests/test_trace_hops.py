"""`kubelab trace` beyond the pod's own hops: the Service's EndpointSlice listing the pod's IP ready, and kube-proxy's
endpoint chain on every node that DNATs to it.

Kinds of proof, per test: "simulation" (a Service, its EndpointSlice in the discovery.k8s.io shape the API reference
documents, and kube-proxy's rules as `iptables-save -t nat` prints them — the KUBE-SEP line copied in shape from
shared/realdata/iptables-save/v1.29.4_MiniK8s-SE3356-minik8s_iptables-save_control-plane_EXTRACT.txt — or as
`nft list table ip kube-proxy` prints upstream's nftables ruleset (tests/lab11_rulesets.py), answered through
tests/trace_sim.py's fake target and so through the real record and replay path), or "recorded evidence from the
twins' real 1.20 cluster" (tests/data/trace/*.trace.json). The live proof is tests/test_lab13.py."""

from __future__ import annotations

import json

import pytest

import cli_inproc
from helpers import REPO
from lab11_rulesets import nft_ruleset
from trace_sim import ADMIN_CONF, fake_target
from kubelab.course import load_course
from kubelab.kubeproxy_rules import iptables_endpoints_of, nft_endpoints_of, split_rules_read
from kubelab.trace.mermaid import to_mermaid
from kubelab.trace.record import trace_from_evidence, trace_live

NS, POD, IP = "lab13-journey", "journey", "10.244.1.7"
SEP = "KUBE-SEP-3WH7PNCF552PK7QF"
SEP_LINE = (f'-A {SEP} -p tcp -m comment --comment "{NS}/journey:http" -m tcp -j DNAT --to-destination {IP}:8080\n')
OTHER_SEP = ('-A KUBE-SEP-FVQSBIWR5JTECIVC -p tcp -m comment --comment "kube-system/kube-dns:metrics" -m tcp -j DNAT '
             '--to-destination 10.244.0.5:9153\n')
NAT = "*nat\n:KUBE-SERVICES - [0:0]\n" + OTHER_SEP + "{sep}COMMIT\n"


@pytest.fixture(scope="module")
def course():
    return load_course(REPO)


def journey_pod(ip=IP, labels=None):
    t = "2026-11-30T06:10:0{}Z"
    return {"metadata": {"name": POD, "namespace": NS, "uid": "u-13", "resourceVersion": "901",
                         "creationTimestamp": t.format(1), "labels": {"app": "journey"} if labels is None else labels,
                         "managedFields": [{"manager": "kubectl-create", "operation": "Update", "time": t.format(1)},
                                           {"manager": "kubelet", "operation": "Update", "time": t.format(4)}]},
            "spec": {"nodeName": "worker"},
            "status": {"podIP": ip, "conditions": [
                {"type": "Initialized", "status": "True", "lastTransitionTime": t.format(1)},
                {"type": "Ready", "status": "True", "lastTransitionTime": t.format(4)},
                {"type": "ContainersReady", "status": "True", "lastTransitionTime": t.format(4)},
                {"type": "PodScheduled", "status": "True", "lastTransitionTime": t.format(1)}]}}


def service(name="journey", selector=None):
    return {"metadata": {"name": name, "namespace": NS},
            "spec": {"selector": {"app": "journey"} if selector is None else selector, "clusterIP": "10.103.7.9",
                     "ports": [{"name": "http", "port": 80, "targetPort": 8080}]}}


def endpoint_slice(ready=True, ip=IP):
    return {"metadata": {"name": "journey-x7k2p", "namespace": NS, "resourceVersion": "905",
                         "labels": {"kubernetes.io/service-name": "journey"},
                         "annotations": {"endpoints.kubernetes.io/last-change-trigger-time": "2026-11-30T06:10:04Z"}},
            "addressType": "IPv4", "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
            "endpoints": [{"addresses": [ip], "conditions": {"ready": ready}, "topology": {"kubernetes.io/hostname": "worker"}}]}


def api(pod=None, services=None, slices=None):
    events = (f"/api/v1/namespaces/{NS}/events?fieldSelector=involvedObject.kind%3DPod%2CinvolvedObject.name%3D{POD}")
    return {f"/api/v1/namespaces/{NS}/pods/{POD}": (200, pod or journey_pod()), events: (200, {"items": []}),
            f"/api/v1/namespaces/{NS}/services": (200, {"items": [service(), service("other", {"app": "x"})]
                                                        if services is None else services}),
            "/apis/discovery.k8s.io": (200, {"preferredVersion": {"groupVersion": "discovery.k8s.io/v1beta1"}}),
            f"/apis/discovery.k8s.io/v1beta1/namespaces/{NS}/endpointslices?labelSelector="
            "kubernetes.io%2Fservice-name%3Djourney": (200, {"items": [endpoint_slice()] if slices is None else slices})}


def rules(master="iptables", worker="iptables", worker_sep=SEP_LINE):
    def read(mode, sep):
        if mode == "nftables":
            return 0, "mode=nftables\n" + nft_ruleset("10.103.7.9", [f"{IP}:8080"], ns_svc=f"{NS}/journey")
        if mode == "error":
            return 1, ""
        return 0, f"mode={mode}\n" + NAT.format(sep=sep)
    return {"master": read(master, SEP_LINE), "worker": read(worker, worker_sep)}


def draw(course, tmp_path, api_answers=None, node_rules=None, name="journey.trace.json"):
    """Traced through the recording target (as `kubelab trace --record`), then drawn again from the file alone."""
    commands = {"sudo -n cat /etc/kubernetes/admin.conf": (0, ADMIN_CONF), "sudo -n sh -c 'f=": (4, ""),
                "sudo -n sh -c 'm=": node_rules or rules()}
    path = tmp_path / name
    live = trace_live(course, fake_target(course, api_answers or api(), commands), "pod", POD, NS, record=path)
    again = trace_from_evidence(course, path)
    assert again.to_dict() == live.to_dict()
    return again


def hop(trace, source):
    labels = dict(trace.participants)
    return [(labels[s.frm], s.text) for s in trace.steps if s.source == source and s.kind not in ("watch", "write")]


def test_the_slice_and_each_nodes_endpoint_chain_follow_the_ready_pod(course, tmp_path):
    """simulation: the pod Ready, its IP ready in the slice of the Service selecting it (not in the other
    Service's), an iptables KUBE-SEP chain DNATing to it on both nodes — the trace draws the slice's update by the
    EndpointSlice controller after the Ready condition, kube-proxy told by its watch on each node, and each node's
    chain; recorded and replayed to the same trace."""
    trace = draw(course, tmp_path)
    assert hop(trace, "endpointslice") == [("kube-controller-manager",
                                            f"update EndpointSlice journey-x7k2p (Service journey): {IP} ready")]
    assert hop(trace, "kube-proxy") == [
        ("kube-proxy on master", f"{SEP} ({NS}/journey:http) DNAT to {IP}:8080 [iptables]"),
        ("kube-proxy on worker", f"{SEP} ({NS}/journey:http) DNAT to {IP}:8080 [iptables]")]
    order = [s.source for s in trace.steps if s.source in ("status", "endpointslice", "kube-proxy")]
    assert order.index("endpointslice") > max(i for i, s in enumerate(order) if s == "status")
    assert order[-1] == "kube-proxy"
    texts = [s.text for s in trace.steps if s.source == "status"]
    assert texts == [f"condition {c}=True" for c in ("PodScheduled", "Initialized", "ContainersReady", "Ready")]
    # the pod's resourceVersion marks the pod's last write, not the slice's
    assert [s.revision for s in trace.steps if s.kind == "write" and "endpointslices" in s.text] == ["905"]
    assert "participant P_worker as kube-proxy on worker" in to_mermaid(trace)
    assert [n for n in trace.notes if not n.startswith("no audit log")] == []


def test_nftables_mode_is_read_in_its_own_syntax(course, tmp_path):
    """simulation: kube-proxy in nftables mode on the worker (1.36's mode after Lab 11; upstream's ruleset shape) —
    the endpoint-… chain whose `dnat to` is the pod's IP, with the Service port its name carries."""
    trace = draw(course, tmp_path, node_rules=rules(worker="nftables"))
    worker = [t for who, t in hop(trace, "kube-proxy") if who == "kube-proxy on worker"]
    assert len(worker) == 1 and worker[0].startswith("endpoint-AAAAAAAA-") and worker[0].endswith(f"DNAT to {IP}:8080 [nftables]")
    assert f"({NS}/journey/tcp/http)" in worker[0]


def test_a_node_without_the_chain_says_so(course, tmp_path):
    """simulation, failing case: the worker's nat table holds no KUBE-SEP chain for the pod (a kube-proxy that was
    stopped when the pod came) — the trace says no rule DNATs to the pod's IP there, the master's chain is drawn."""
    trace = draw(course, tmp_path, node_rules=rules(worker_sep=""))
    assert hop(trace, "kube-proxy") == [
        ("kube-proxy on master", f"{SEP} ({NS}/journey:http) DNAT to {IP}:8080 [iptables]"),
        ("kube-proxy on worker", "no iptables rule DNATs to the pod's IP")]


def test_unreadable_rules_are_a_note_not_a_crash(course, tmp_path):
    """simulation, failing case: the read of the worker's rules exits 1 (no sudo) — a note names the node, the
    master's chain is still drawn."""
    trace = draw(course, tmp_path, node_rules=rules(worker="error"))
    assert [who for who, _ in hop(trace, "kube-proxy")] == ["kube-proxy on master"]
    assert trace.notes[1:] == ["kube-proxy's rules on worker could not be read: exit status 1"]


@pytest.mark.parametrize("answers,says", [
    (dict(slices=[endpoint_slice(ready=False)]), f"the pod's IP {IP} is listed not ready"),
    (dict(slices=[endpoint_slice(ip="10.244.1.9")]), f"the pod's IP {IP} is not listed"),
    (dict(services=[service("other", {"app": "x"})]), "no Service selects this pod's labels")])
def test_missing_hops_are_notes_and_no_rules_are_read(course, tmp_path, answers, says):
    """simulation, missing cases: the pod listed not ready (its readiness probe failing), not listed at all (a
    stale slice), or no Service selecting its labels (a typo in the selector) — no slice step, no kube-proxy step,
    and a note saying which hop is missing."""
    trace = draw(course, tmp_path, api_answers=api(**answers))
    assert hop(trace, "endpointslice") == [] and hop(trace, "kube-proxy") == []
    assert any(says in n for n in trace.notes), trace.notes


def test_evidence_recorded_before_the_service_hops_still_draws_the_pod(course, tmp_path):
    """recorded evidence from the twins' real 1.20 cluster (tests/data/trace/web-1.audit.trace.json, recorded before
    these hops existed), its pod given a label (so the trace would now look for Services the evidence never read):
    the pod's own hops drawn as before, and a note that the Service hops are not in the evidence; without the label
    (as recorded) no Service is looked for and there is no note."""
    from kubelab.evidence import load, save

    source = REPO / "tests" / "data" / "trace" / "web-1.audit.trace.json"
    assert trace_from_evidence(course, source).notes == []
    ev = load(source)
    for o in ev.api:
        if o.path.endswith("/pods/web-1"):
            d = json.loads(o.data)
            d["metadata"]["labels"] = {"run": "web-1"}
            o.data = json.dumps(d)
    edited = save(ev, tmp_path / "labelled.trace.json")
    trace = trace_from_evidence(course, edited)
    assert trace.audit and hop(trace, "endpointslice") == [] and hop(trace, "kube-proxy") == []
    assert trace.notes == ["the evidence was recorded without the Service hops (EndpointSlice, kube-proxy)"]


def test_cli_draws_the_new_hops_from_evidence(course, tmp_path):
    """simulation through the CLI: `kubelab trace pod journey -n lab13-journey --evidence FILE` prints the slice
    and the KUBE-SEP chain in its table, and in the mermaid diagram."""
    draw(course, tmp_path)
    r = cli_inproc.run("trace", "pod", POD, "-n", NS, "--evidence", tmp_path / "journey.trace.json", "--course", REPO,
                       env={"COLUMNS": "250"})
    assert r.code == 0 and SEP in r.stdout and "EndpointSlice journey-x7k2p" in r.stdout, r.stdout
    m = cli_inproc.run("trace", "pod", POD, "-n", NS, "--evidence", tmp_path / "journey.trace.json", "--mermaid",
                       "--course", REPO)
    assert m.code == 0 and f"Note over P_worker: 06:10:04 {SEP}" in m.stdout, m.stdout


def test_rule_readers_find_the_pods_chains_in_both_syntaxes():
    """simulation on the real capture's line shape: only the chains DNATing to this IP (not 10.244.1.70, not
    another pod's); the mode line of the node read; a kube-proxy that did not answer reads as iptables."""
    text = NAT.format(sep=SEP_LINE + SEP_LINE.replace(IP, "10.244.1.70").replace(SEP, "KUBE-SEP-OTHER"))
    assert [c.chain for c in iptables_endpoints_of(text, IP)] == [SEP]
    assert iptables_endpoints_of(text, "10.244.1.8") == []
    nft = nft_ruleset("10.103.7.9", [f"{IP}:8080", "10.244.1.70:8080"], ns_svc=f"{NS}/journey")
    assert [c.destination for c in nft_endpoints_of(nft, IP)] == [f"{IP}:8080"]
    assert split_rules_read("mode=nftables\ntable ip kube-proxy {\n") == ("nftables", "table ip kube-proxy {\n")
    assert split_rules_read("mode=\n*nat\n") == ("iptables", "*nat\n")
