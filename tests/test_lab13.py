"""Lab 13 — the journey of a pod: the grader against the twins' real kubeadm v1.20.2 cluster (`shared_cluster`),
after the solution notebook's own cells ran there, and after realistic mistakes; plus the notebook's own shell on a
fake node.

Kinds of proof, named in every test's docstring:

- "real 1.20 cluster on twins": the solution notebook's cells run by a real kernel against the twins (the pod and
  its Service created, each hop's evidence shown, the seven answers recorded with %answer, the trace drawn), graded
  live (recorded, and the recording replayed to the same result); each mistake made for real, graded, put back.
  One change to the notebook: its image `busybox:1.37` (no registry here) becomes the course's local busybox with
  `imagePullPolicy: Never` (kubelab.cluster.build.BUSYBOX_IMAGE). The twins' kube-proxy runs in iptables mode (1.20
  has no nftables mode) and they have no CRI v1 crictl (see test_lab12.py): the notebook takes its iptables and
  `ctr -n k8s.io` branches; the nftables branch is proven on a fake node here and from evidence in
  test_lab13_evidence.py.
- "simulation": the notebook's manifest parsed; its chain-finding shell run by bash on rules in both syntaxes.

The module puts the cluster back as it found it in a `finally` (the namespace lab13-journey deleted, the lab13
answers removed, no ~/.kube/config it created), or marks the shared cluster dirty.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from helpers import (by_id, grade_live, learner_kubeconfig_missing, load_grader, not_passing, remove_lab_objects,
                     run_cells_live, solution_cells as cells_of, ssh_ok)
from kubelab.cluster import build
from kubelab.evidence import comparable, replay_lab
from kubelab.engine.targets import SshConfigTarget

LAB = "lab13"
KUBECTL = "kubectl --kubeconfig=/etc/kubernetes/admin.conf"
ANSWERS = "/home/vagrant/.kubelab/answers/lab13.json"
NOTEBOOK_IMAGE = "    image: busybox:1.37\n    imagePullPolicy: IfNotPresent\n"
ANSWER_CHECKS = {"answer_node", "answer_create_revision", "answer_sandbox", "answer_pod_ip", "answer_endpoint_chain",
                 "answer_timeline"}
KEEP = "KUBELAB_LAB13_RECORDING"  # a folder: the live recordings are copied there (to refresh tests/data)

G = load_grader("lab13_pod_journey.py")


def solution_cells() -> dict:
    return cells_of(f"{LAB}/lab13_pod_journey.ipynb")


def notebook_objects(local_image: bool = False) -> list[dict]:
    """The Pod and Service of the solution's create-pod cell, with the course's values put in."""
    manifest = solution_cells()["create-pod"].source.split("<<EOF\n", 1)[1].split("\nEOF\n", 1)[0]
    for var, value in {"POD": G.POD, "NAMESPACE": G.NAMESPACE, "SERVICE": G.SERVICE, "WORKER": "worker"}.items():
        manifest = manifest.replace(f"${var}", value)
    if local_image:
        manifest = manifest.replace(NOTEBOOK_IMAGE, f"    image: {build.BUSYBOX_IMAGE}\n    imagePullPolicy: Never\n")
    return list(yaml.safe_load_all(manifest))


# -------------------------------------------------------------------------------------------------
# no twins
# -------------------------------------------------------------------------------------------------

def test_notebook_creates_what_the_grader_looks_for():
    """simulation: the solution's manifest, parsed with the course's values put in — the grader's pod (its labels
    selected by the Service's selector, httpd on the grader's target port with a readiness probe) and Service
    (port 80 -> 8080) in the grader's namespace; the answers recorded under the grader's keys; a *Check yourself*
    cell after each step."""
    cells = solution_cells()
    assert cells["create-pod"].source.count(NOTEBOOK_IMAGE) == 1  # the one text the live test swaps
    pod, svc = notebook_objects()
    assert (pod["kind"], pod["metadata"]["name"], pod["metadata"]["namespace"]) == ("Pod", G.POD, G.NAMESPACE)
    assert pod["metadata"]["labels"] == G.LABELS and svc["spec"]["selector"] == G.LABELS
    (c,) = pod["spec"]["containers"]
    assert c["readinessProbe"]["httpGet"]["port"] == G.TARGET_PORT and f"-p {G.TARGET_PORT}" in c["command"][-1]
    assert (svc["metadata"]["name"], svc["spec"]["ports"][0]["port"], svc["spec"]["ports"][0]["targetPort"]) == \
        (G.SERVICE, G.PORT, G.TARGET_PORT)
    text = "".join(c.source for c in cells.values())
    for key in ("create_revision", "node", "sandbox_id", "pod_ip", "scheduled_at", "ready_at", "endpoint_chain"):
        assert f"%answer lab13 {key} " in text, key
    steps = [g for g in cells if g.startswith("step-")]
    order = list(cells)
    for step in steps:
        after = order[order.index(step) + 1:]
        nxt = next((g for g in after if g.startswith("step-")), None)
        between = after[:after.index(nxt)] if nxt else after
        assert any(g.startswith(("check-", "trace")) for g in between), f"no Check yourself cell after {step}"
    assert "```mermaid" in cells["intro"].source and cells["grade_lab13"].metadata["nbgrader"]["points"] == 15


def _cell_script(grade_id: str) -> str:
    lines = solution_cells()[grade_id].source.splitlines()
    lines = [ln for ln in lines if not ln.startswith("%%") and "### " not in ln]
    return "\n".join(lines)


IPTABLES = """*nat
-A KUBE-SEP-3WH7PNCF552PK7QF -p tcp -m comment --comment "lab13-journey/journey:http" -m tcp -j DNAT --to-destination 10.244.1.7:8080
-A KUBE-SEP-5RGOO3QK7HUWX7JR -p tcp -m comment --comment "default/service1:fileserver" -m tcp -j DNAT --to-destination 10.244.1.70:8080
COMMIT
"""


@pytest.mark.parametrize("mode,want", [("iptables", "KUBE-SEP-3WH7PNCF552PK7QF"),
                                       ("nftables", "endpoint-AAAAAAAA-lab13-journey/journey/tcp/http__10.244.1.7/8080")])
def test_find_chain_cell_in_both_modes(tmp_path, mode, want):
    """simulation: the find-chain solution cell as %%node runs it (bash -eo pipefail), on a node whose kube-proxy
    reports `mode` and whose rules hold the pod's chain and another pod's at 10.244.1.70 (a prefix of no use): the
    chain DNATing to exactly the pod's IP — iptables-save's shape from shared/realdata/iptables-save, nft's from
    upstream's ruleset (tests/lab11_rulesets.py)."""
    from lab11_rulesets import nft_ruleset

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (tmp_path / "rules").write_text(IPTABLES if mode == "iptables" else
                                    nft_ruleset("10.103.7.9", ["10.244.1.7:8080", "10.244.1.70:8080"],
                                                ns_svc="lab13-journey/journey"))
    (bin_dir / "sudo").write_text('#!/bin/sh\nexec "$@"\n')
    (bin_dir / "curl").write_text(f"#!/bin/sh\necho {mode}\n")
    for tool in ("iptables-save", "nft"):
        (bin_dir / tool).write_text(f"#!/bin/sh\ncat {tmp_path / 'rules'}\n")
    for f in bin_dir.iterdir():
        f.chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "pod_ip": "10.244.1.7"}
    p = subprocess.run(["bash", "-eo", "pipefail", "-c", _cell_script("find-chain")], env=env, capture_output=True,
                       text=True, timeout=30)
    assert p.returncode == 0 and p.stdout.split() == [want], (p.stdout, p.stderr)


@pytest.mark.parametrize("given,live,ok", [
    ("2026-11-30T06:10:04Z", "2026-11-30T06:10:04Z", True), ("2026-11-30T06:10:04+00:00", "2026-11-30T06:10:04Z", True),
    ("2026-11-30T06:10:05Z", "2026-11-30T06:10:04Z", False), ("06:10:04", "2026-11-30T06:10:04Z", False),
    ("yesterday", "2026-11-30T06:10:04Z", False)])
def test_time_answers_in_either_utc_spelling(given, live, ok):
    """simulation: a condition's time as kubectl prints it (Z) or as Python writes it (+00:00) — the same instant;
    a second off, a time without a date, or no time — not."""
    assert G.same_time(given, live) is ok


def test_readers_of_etcdctl_and_cidr():
    """simulation: `etcdctl get KEY --keys-only -w json` in etcd's documented shape (etcd.io "Reading from etcd":
    kvs[].create_revision, mod_revision) — the create_revision; no such key — None; an IP inside/outside a podCIDR,
    and a malformed CIDR."""
    out = '{"header":{"revision":950},"kvs":[{"key":"L3JlZ2lzdHJ5","create_revision":901,"mod_revision":912,"version":4}],"count":1}'
    assert G.create_revision(out) == 901 and G.create_revision('{"header":{"revision":950}}') is None
    assert G.in_cidr("10.244.1.7", "10.244.1.0/24") and not G.in_cidr("192.168.56.11", "10.244.1.0/24")
    assert not G.in_cidr("10.244.1.7", "")


# -------------------------------------------------------------------------------------------------
# live on the real 1.20 cluster
# -------------------------------------------------------------------------------------------------

def _runnable(cells) -> list:
    run = [c for gid, c in cells.items() if c.cell_type == "code" and gid != "grade_lab13"]
    create = cells["create-pod"]
    assert create.source.count(NOTEBOOK_IMAGE) == 1
    create.source = create.source.replace(NOTEBOOK_IMAGE, f"    image: {build.BUSYBOX_IMAGE}\n    imagePullPolicy: Never\n")
    return run


@pytest.fixture(scope="module")
def lab13(shared_cluster, tmp_path_factory):
    """The solution notebook run on the shared cluster, then its graded, recorded state and a recorded trace; put
    back afterwards."""
    from kubelab.trace.record import trace_live

    ts = shared_cluster["ts"]
    made_kubeconfig = learner_kubeconfig_missing(ts)
    folder = tmp_path_factory.mktemp("lab13")
    state = {"course": shared_cluster["course"], "ts": ts}
    try:
        t0 = time.monotonic()
        state["outputs"] = run_cells_live(_runnable(solution_cells()), folder, ts)
        state["notebook_s"] = time.monotonic() - t0
        print(f"lab13 solution notebook ran on the twins in {state['notebook_s']:.1f}s")
        t0 = time.monotonic()
        state["evidence"] = folder / "solved.evidence.json"
        state["live"] = grade_live(state, LAB, record=state["evidence"])
        print(f"lab13 graded live (recording) in {time.monotonic() - t0:.1f}s")
        target = SshConfigTarget(state["course"], ts.ssh_config_file())
        try:
            state["trace_file"] = folder / "journey.trace.json"
            state["trace"] = trace_live(state["course"], target, "pod", G.POD, G.NAMESPACE, record=state["trace_file"])
        finally:
            target.close()
        if os.environ.get(KEEP):
            shutil.copy(state["evidence"], Path(os.environ[KEEP]) / "solved-v1.20-twins.recording.json")
            shutil.copy(state["trace_file"], Path(os.environ[KEEP]) / "journey.trace.json")
        yield state
    finally:
        problems = remove_lab_objects(ts, G.NAMESPACE, ANSWERS, made_kubeconfig=made_kubeconfig)
        if problems:
            shared_cluster["dirty"] = True
            print("lab13 could not put the cluster back:", problems)


@pytest.mark.cluster
def test_solution_notebook_on_the_cluster_earns_full_marks_and_replays(lab13):
    """real 1.20 cluster on twins: after the solution notebook's cells (the pod Ready on the worker, each hop's
    evidence shown, the seven answers recorded, the journey traced), every check passes and the recording replays to
    the same result; the Check yourself cells show the hops (the managedFields without an audit log, the Scheduled
    event, the sandbox, the IP in the podCIDR, the slice, the KUBE-SEP chain, the pod's answer to a request)."""
    out = lab13["outputs"]
    for gid in ("check-create", "check-etcd", "check-scheduler", "check-sandbox", "check-cni", "check-cidr",
                "check-conditions", "check-slice", "check-proxy", "check-request"):
        print(f"--- {gid}\n{out[gid]}")
    assert "kubectl" in out["check-create"], out["check-create"]
    assert "Successfully assigned lab13-journey/journey to worker" in out["check-scheduler"], out["check-scheduler"]
    assert "in 10.244." in out["check-cidr"] and out["check-cidr"].strip().endswith("True"), out["check-cidr"]
    assert "ready=true" in out["check-slice"], out["check-slice"]
    assert "KUBE-SEP-" in out["check-proxy"], out["check-proxy"]
    assert any(ln.strip() == "journey" for ln in out["check-request"].splitlines()), out["check-request"]
    live = lab13["live"]
    assert not_passing(live) == {}, [(c.id, c.expected, c.actual, c.message) for c in live.checks
                                     if str(c.status) != "pass"]
    assert live.score == live.max_score
    replayed, _ = replay_lab(lab13["course"], LAB, lab13["evidence"])
    assert comparable(replayed.to_dict()) == comparable(live.to_dict())


@pytest.mark.cluster
def test_the_trace_draws_every_hop_in_order(lab13):
    """real 1.20 cluster on twins: `kubelab trace pod journey -n lab13-journey` (recorded): the kubectl create, the
    scheduler's Scheduled event, the kubelet's events, the conditions, the EndpointSlice update listing the pod's IP
    ready, and kube-proxy's KUBE-SEP chain DNATing to it on both nodes — in that order."""
    trace = lab13["trace"]
    print("\n".join(f"{s.at} {s.frm}->{s.to} {s.text} [{s.source}]" for s in trace.steps))
    sources = [s.source for s in trace.steps]
    texts = [s.text for s in trace.steps]
    ip = next(t.split(": ")[-1].split()[0] for t in texts if t.startswith("update EndpointSlice"))
    proxy = [s for s in trace.steps if s.source == "kube-proxy"]
    assert sorted(s.frm for s in proxy) == ["P_master", "P_worker"], proxy
    assert all(s.text.startswith("KUBE-SEP-") and f"DNAT to {ip}:8080 [iptables]" in s.text for s in proxy), proxy
    ready = texts.index("condition Ready=True")
    assert sources.index("endpointslice") > ready and sources.index("kube-proxy") > sources.index("endpointslice")
    assert any(t.startswith("Scheduled:") for t in texts) and texts.index("condition PodScheduled=True") < ready


@pytest.mark.cluster
def test_wrong_answers_fail_without_giving_the_live_values_away(lab13):
    """real 1.20 cluster on twins: the answers file rewritten with the control plane as node, another revision,
    another pod's sandbox, another IP, another chain and the two times swapped — the six answer checks fail showing
    the learner's values (the timeline on its order), never the live ones; the rest passes."""
    ts = lab13["ts"]
    original = ssh_ok(ts, "master", f"cat {ANSWERS}")
    live = {k: v["value"] for k, v in json.loads(original).items()}
    wrong_values = {"node": "master", "create_revision": str(int(live["create_revision"]) + 7),
                    "sandbox_id": "f" * 64, "pod_ip": "10.244.9.9", "endpoint_chain": "KUBE-SEP-AAAAAAAAAAAAAAAA",
                    "scheduled_at": live["ready_at"], "ready_at": "2020-01-01T00:00:00Z"}
    wrong = {k: {"value": v, "recorded_at": "2026-11-30T06:00:00+00:00"} for k, v in wrong_values.items()}
    ssh_ok(ts, "master", f"cat > {ANSWERS}", input=json.dumps(wrong))
    try:
        result = grade_live(lab13, LAB)
    finally:
        ssh_ok(ts, "master", f"cat > {ANSWERS} && chown vagrant: {ANSWERS}", input=original)
    got = by_id(result)
    assert not_passing(result) == {f"{c}[cluster]": "fail" for c in ANSWER_CHECKS}
    for check, key in (("answer_node", "node"), ("answer_create_revision", "create_revision"),
                       ("answer_sandbox", "sandbox_id"), ("answer_pod_ip", "pod_ip"),
                       ("answer_endpoint_chain", "endpoint_chain")):
        c = got[f"{check}[cluster]"]
        assert c.actual == wrong_values[key] and c.expected.startswith("the value of "), (check, c.expected, c.actual)
        assert live[key] not in f"{c.expected} {c.message}", (check, c.message)
    t = got["answer_timeline[cluster]"]
    assert "after ready_at" in str(t.actual), (t.expected, t.actual)


@pytest.mark.cluster
def test_a_selector_typo_fails_the_service_check(lab13):
    """real 1.20 cluster on twins: the Service's selector patched to app=journy (a typo) — the selector check fails
    naming the pod's labels and the selector; the checks that need it are skipped, the pod's own hops still pass.
    Graded on virtual time (the selector stays as it is while the checks poll). Put back and Ready in the slice."""
    ts = lab13["ts"]
    def selector(value: str) -> str:
        body = json.dumps({"spec": {"selector": {"app": value}}})
        return f"{KUBECTL} -n {G.NAMESPACE} patch svc {G.SERVICE} --type=merge -p {shlex.quote(body)}"

    ssh_ok(ts, "master", selector("journy"))
    try:
        result = grade_live(lab13, LAB, settled=True)
    finally:
        ssh_ok(ts, "master", selector("journey"))
    got = by_id(result)
    s = got["service_selects[cluster]"]
    assert str(s.status) == "fail" and "journy" in str(s.actual) and "journey" in str(s.expected), (s.expected, s.actual)
    failing = not_passing(result)
    assert {k for k, v in failing.items() if v == "fail"} <= {"service_selects[cluster]", "answer_endpoint_chain[cluster]",
                                                             "request_reaches[master]"}, failing
    for c in ("pod_running[cluster]", "answer_node[cluster]", "answer_sandbox[cluster]", "answer_pod_ip[cluster]",
              "answer_create_revision[cluster]", "answer_timeline[cluster]"):
        assert c not in failing, (c, failing)
    assert failing.get("in_endpoint_slice[cluster]") == "blocked", failing


@pytest.mark.cluster
def test_pod_recreated_is_a_new_journey(lab13):
    """real 1.20 cluster on twins: the pod deleted and created again from the same manifest — a new journey: its
    key's new create_revision, a new sandbox, new condition times fail the answers recorded for the old one (and its
    IP and chain when the IPAM handed out another address); the pod's own state passes. Runs last: the restore
    deletes the namespace."""
    ts = lab13["ts"]
    pod, _ = notebook_objects(local_image=True)
    ssh_ok(ts, "master", f"{KUBECTL} -n {G.NAMESPACE} delete pod {G.POD} --wait=true --timeout=60s")
    time.sleep(1.5)  # the new pod's condition times must differ from the old one's by a whole second
    ssh_ok(ts, "master", f"{KUBECTL} apply -f - && {KUBECTL} -n {G.NAMESPACE} wait --for=condition=Ready "
                      f"pod/{G.POD} --timeout=120s", input=json.dumps(pod))
    result = grade_live(lab13, LAB)
    failing = set(not_passing(result))
    must = {"answer_create_revision[cluster]", "answer_sandbox[cluster]", "answer_timeline[cluster]"}
    assert must <= failing <= must | {"answer_pod_ip[cluster]", "answer_endpoint_chain[cluster]"}, not_passing(result)
