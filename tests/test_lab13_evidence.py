"""Lab 13 from evidence, no twins: every check's passing and failing case, replayed through the engine; and the
journey's trace drawn again from its live recording.

Proof, named per test:

- "recorded evidence from the real 1.20 cluster on twins": tests/data/lab13/solved-v1.20-twins.recording.json and
  tests/data/trace/journey.trace.json were recorded by test_lab13.py's live run (the solution notebook's cells run on
  the twins' kubeadm v1.20.2 cluster: kube-proxy in iptables mode, EndpointSlices in discovery.k8s.io/v1beta1,
  containerd 1.6 read with ctr, etcd read with etcdctl 3.4; redacted as every recording is). The failing cases change
  one observation of it to what a realistic mistake shows on a real node (the pod not Ready, on the host network,
  listed not ready in its slice, a node whose kube-proxy missed it, another pod answering, the key gone from etcd,
  answers missing or out of order), then replay it.
- "recorded evidence modelled on upstream's nftables ruleset": the course's 1.36 nodes run kube-proxy in nftables
  mode after Lab 11 — a mode 1.20 does not have. The recording's rules are replaced by `nft list table ip
  kube-proxy` in the shape kubernetes/kubernetes pkg/proxy/nftables/proxier_test.go expects (tests/lab11_rulesets.py),
  for the recorded pod IP, then replayed.
"""

from __future__ import annotations

import json

import pytest

from evidence_edit import EvidenceEdit
from helpers import REPO, by_id, not_passing
from lab11_rulesets import nft_ruleset
from kubelab.course import load_course
from kubelab.evidence import replay_lab
from kubelab.kubeproxy_rules import rules_command
from kubelab.trace.record import trace_from_evidence

LAB = "lab13"
RECORDING = REPO / "tests" / "data" / "lab13" / "solved-v1.20-twins.recording.json"
TRACE = REPO / "tests" / "data" / "trace" / "journey.trace.json"
POD_PATH = "/api/v1/namespaces/lab13-journey/pods/journey"
SLICES = "/endpointslices?"
RULES = rules_command()
ETCD_GET = "sudo -n etcdctl "
CURL = "curl -s -m 5 http://"
ANSWERS_CAT = "cat ~vagrant/.kubelab/answers/lab13.json"
COURSE = load_course(REPO)
ANSWER_CHECKS = ("answer_node", "answer_create_revision", "answer_sandbox", "answer_pod_ip", "answer_endpoint_chain",
                 "answer_timeline")


class Edit(EvidenceEdit):
    recording, lab, course = RECORDING, LAB, COURSE

    def stdout(self, node: str, prefix: str) -> str:
        return self.stdout_starting_with(node, prefix)

    def set(self, node: str, prefix: str, stdout: str = "", rc: int = 0, stderr: str = "") -> "Edit":
        return self.set_starting_with(node, prefix, stdout, rc, stderr)

    def api_part(self, part: str, fn) -> "Edit":
        """The read whose path holds `part`, its JSON changed by `fn`."""
        return self.api(self.api_path(part), fn)

    def pod_json(self) -> dict:
        return self.api_data(POD_PATH)

    def answers(self, **values) -> "Edit":
        a = json.loads(self.stdout("master", ANSWERS_CAT))
        for k, v in values.items():
            a[k]["value"] = v
        return self.set("master", ANSWERS_CAT, json.dumps(a))


def test_the_recording_replays_to_full_marks():
    """recorded evidence from the real 1.20 cluster on twins, unchanged: every check passes — and what the grader
    read is the pod's journey: its IP in the worker's podCIDR, ready in the v1beta1 slice, a KUBE-SEP chain DNATing
    to it in both nodes' nat tables (iptables mode), the pod's hostname answering the ClusterIP."""
    result, _ = replay_lab(COURSE, LAB, RECORDING)
    assert not_passing(result) == {} and result.score == result.max_score
    e = Edit()
    ip = e.pod_json()["status"]["podIP"]
    for node in ("master", "worker"):
        rules = e.stdout(node, RULES)
        assert rules.startswith("mode=iptables\n") and f"--to-destination {ip}:8080" in rules
    assert e.stdout("master", CURL).strip() == "journey"


def test_pod_not_ready_fails(tmp_path):
    """recorded evidence from the real 1.20 cluster on twins, the pod Running but its readiness probe failing
    (Ready False) — pod_running fails showing Ready False."""
    def unready(d):
        for c in d["status"]["conditions"]:
            if c["type"] in ("Ready", "ContainersReady"):
                c["status"] = "False"
    p = by_id(Edit().api(POD_PATH, unready).replay(tmp_path))["pod_running[cluster]"]
    assert str(p.status) == "fail" and "Ready=False" in p.actual and "Ready=True" in p.expected


def test_pod_on_the_host_network_is_outside_the_pod_cidr(tmp_path):
    """recorded evidence from the real 1.20 cluster on twins, the pod with `hostNetwork: true` (its IP the worker's
    own, 192.168.56.11, no CNI ADD) — pod_ip_in_pod_cidr fails naming the node's podCIDR and that IP."""
    def host_network(d):
        d["spec"]["hostNetwork"] = True
        d["status"]["podIP"] = "192.168.56.11"
        d["status"]["podIPs"] = [{"ip": "192.168.56.11"}]
    c = by_id(Edit().api(POD_PATH, host_network).replay(tmp_path))["pod_ip_in_pod_cidr[cluster]"]
    assert str(c.status) == "fail" and c.actual == "192.168.56.11" and "10.244." in c.expected


def test_listed_not_ready_in_the_slice_fails_and_blocks_the_rules(tmp_path):
    """recorded evidence from the real 1.20 cluster on twins, the pod's endpoint `ready: false` in its slice (a
    readiness probe failing after it was Ready) — in_endpoint_slice fails 'listed, not ready'; the kube-proxy checks,
    the request and the chain answer are blocked by it."""
    def unready(d):
        for s in d["items"]:
            for ep in s.get("endpoints") or []:
                ep["conditions"] = {"ready": False}
    result = Edit().api_part(SLICES, unready).replay(tmp_path)
    s = by_id(result)["in_endpoint_slice[cluster]"]
    assert str(s.status) == "fail" and s.actual == "listed, not ready" and s.expected == "ready"
    assert {k: v for k, v in not_passing(result).items() if v == "blocked"} == {
        "proxy_rules[master]": "blocked", "proxy_rules[worker]": "blocked", "request_reaches[master]": "blocked",
        "answer_endpoint_chain[cluster]": "blocked"}


def test_a_node_without_the_chain_fails_there_only(tmp_path):
    """recorded evidence from the real 1.20 cluster on twins, the worker's nat table without the pod's KUBE-SEP chain
    (its kube-proxy stopped when the pod came) — proxy_rules fails on the worker, expected the pod's IP:8080, actual
    none; the master's passes."""
    e = Edit()
    kept = "\n".join(ln for ln in e.stdout("worker", RULES).splitlines() if "lab13-journey/journey" not in ln) + "\n"
    result = e.set("worker", RULES, kept).replay(tmp_path)
    w = by_id(result)["proxy_rules[worker]"]
    ip = e.pod_json()["status"]["podIP"]
    assert str(w.status) == "fail" and w.actual == "(none)" and w.expected == f"{ip}:8080"
    assert not_passing(result) == {"proxy_rules[worker]": "fail"}


def test_nftables_mode_of_136_passes_and_names_its_endpoint_chain(tmp_path):
    """recorded evidence modelled on upstream's nftables ruleset: both nodes' kube-proxy in nftables mode with the
    endpoint-… chain DNATing to the recorded pod IP — proxy_rules passes on both; the answer must then be the nft
    chain's name (the recorded KUBE-SEP name fails, the endpoint-… name passes)."""
    e = Edit()
    ip = e.pod_json()["status"]["podIP"]
    nft = "mode=nftables\n" + nft_ruleset("10.103.7.9", [f"{ip}:8080"], ns_svc="lab13-journey/journey")
    for node in ("master", "worker"):
        e.set(node, RULES, nft)
    result = e.replay(tmp_path)
    assert not_passing(result) == {"answer_endpoint_chain[cluster]": "fail"}
    chain = f"endpoint-AAAAAAAA-lab13-journey/journey/tcp/http__{ip}/8080"
    assert not_passing(e.answers(endpoint_chain=chain).replay(tmp_path)) == {}


def test_another_pod_answering_fails_the_request(tmp_path):
    """recorded evidence from the real 1.20 cluster on twins, the ClusterIP answered by another pod's httpd (a
    second pod with the same label) — request_reaches fails expected the pod's name."""
    r = by_id(Edit().set("master", CURL, "web-7d4b9c\n").replay(tmp_path))["request_reaches[master]"]
    assert str(r.status) == "fail" and r.expected == "journey" and r.actual == "web-7d4b9c"


def test_the_key_gone_from_etcd_fails_the_revision(tmp_path):
    """recorded evidence from the real 1.20 cluster on twins, `etcdctl get` answering no kvs (the pod deleted between
    the reads) — answer_create_revision fails 'none in etcd'."""
    e = Edit()
    header = json.loads(e.stdout("master", ETCD_GET))["header"]
    c = by_id(e.set("master", ETCD_GET, json.dumps({"header": header})).replay(tmp_path))["answer_create_revision[cluster]"]
    assert str(c.status) == "fail" and c.actual == "none in etcd"


def test_no_answers_recorded_fails_every_answer_check(tmp_path):
    """recorded evidence from the real 1.20 cluster on twins, no answers file (`cat` exits 1, as on a node where
    %answer never ran) — the six answer checks fail 'none recorded'; nothing else changes."""
    result = Edit().set("master", ANSWERS_CAT, "", rc=1,
                        stderr="cat: /home/vagrant/.kubelab/answers/lab13.json: No such file or directory").replay(tmp_path)
    assert not_passing(result) == {f"{c}[cluster]": "fail" for c in ANSWER_CHECKS}
    assert all(by_id(result)[f"{c}[cluster]"].actual == "none recorded" for c in ANSWER_CHECKS)


def test_timeline_out_of_order_fails(tmp_path):
    """recorded evidence from the real 1.20 cluster on twins, the two times swapped (Ready before scheduled) — the
    timeline check fails on its order, showing both of the learner's times."""
    e = Edit()
    a = json.loads(e.stdout("master", ANSWERS_CAT))
    if a["scheduled_at"]["value"] == a["ready_at"]["value"]:
        pytest.skip("the recording's pod became Ready within the second it was scheduled: no order to swap")
    t = by_id(e.answers(scheduled_at=a["ready_at"]["value"], ready_at=a["scheduled_at"]["value"])
               .replay(tmp_path))["answer_timeline[cluster]"]
    assert str(t.status) == "fail" and "after ready_at" in t.actual


def test_the_journeys_trace_draws_again_from_its_recording():
    """recorded evidence from the real 1.20 cluster on twins (tests/data/trace/journey.trace.json, written by
    `trace_live(..., record=...)` in test_lab13.py): drawn again with no node touched — the Scheduled event, the
    conditions, the slice listing the pod's IP ready, kube-proxy's KUBE-SEP chain on both nodes, in that order."""
    trace = trace_from_evidence(COURSE, TRACE)
    sources = [s.source for s in trace.steps]
    texts = [s.text for s in trace.steps]
    assert any(t.startswith("Scheduled:") for t in texts)
    assert sources.index("endpointslice") > texts.index("condition Ready=True")
    proxy = [s for s in trace.steps if s.source == "kube-proxy"]
    assert sorted(s.frm for s in proxy) == ["P_master", "P_worker"]
    assert all(s.text.startswith("KUBE-SEP-") and "[iptables]" in s.text for s in proxy)
    assert sources.index("kube-proxy") > sources.index("endpointslice")
