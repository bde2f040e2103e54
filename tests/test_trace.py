"""`kubelab trace` without a cluster: the model, the diagram, the audit read, the CLI's errors.

Kinds of proof, per test: "simulation" (objects in the shapes of the audit.k8s.io/v1 Event and core/v1 Event
the Kubernetes API reference documents, tests/trace_sim.py, read through the real record and replay path), or
"real shell" (the audit read run here by sh), or "recorded evidence from the twins' real 1.20 cluster"
(tests/data/trace/*.trace.json, written by tests/test_trace_live.py, secrets redacted). The live proof on the twins' real 1.20 cluster is
tests/test_trace_live.py."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

import cli_inproc
from trace_sim import ADMIN_CONF, SCHEDULED, STARTED, audit_event, fake_target, pod, write_evidence
from helpers import REPO
from kubelab.course import load_course
from kubelab.trace.collect import Observed, audit_command
from kubelab.trace.mermaid import to_mermaid
from kubelab.trace.model import build
from kubelab.trace.record import trace_from_evidence

NS = "trace-live"
DATA = REPO / "tests" / "data" / "trace"
AUDITED = DATA / "web-1.audit.trace.json"  # recorded by tests/test_trace_live.py on the twins' real 1.20 cluster
PLAIN = DATA / "web-1.no-audit.trace.json"


@pytest.fixture(scope="module")
def course():
    return load_course(REPO)


@pytest.fixture(scope="module")
def sim(course, tmp_path_factory):
    """(with audit log, without): trace evidence recorded from the simulated cluster (trace_sim)."""
    return write_evidence(course, tmp_path_factory.mktemp("trace"))


def calls(trace):
    labels = dict(trace.participants)
    return [(labels[s.frm], s.text) for s in trace.steps if s.kind == "call" and s.source == "audit"]


def test_audit_steps_in_order_with_the_unnamed_create_matched_by_time():
    """simulation: a Metadata-level create has no objectRef.name; it is this pod's when received within 2 s of
    its creationTimestamp. Another pod's create, and an older pod of the same name, are not part of it."""
    audit = [audit_event("create", "kubernetes-admin", "06:09:00.100000", name="web-1", code=201),  # an older web-1
             audit_event("create", "kubernetes-admin", "06:10:00.950000", name=None, code=201),
             audit_event("create", "kubernetes-admin", "06:10:00.990000", name="web-2", code=201),
             audit_event("create", "system:kube-scheduler", "06:10:01.300000", sub="binding", code=201),
             audit_event("get", "system:node:worker", "06:10:01.500000"),
             audit_event("get", "system:node:worker", "06:10:02.500000"),
             audit_event("patch", "system:node:worker", "06:10:03.800000", sub="status")]
    trace = build(Observed("pod", "default", "web-1", pod(), events=[SCHEDULED, STARTED], audit=audit))
    assert calls(trace) == [("kubectl as kubernetes-admin", "create pods/web-1 -> 201"),
                            ("kube-scheduler", "create pods/web-1/binding -> 201"),
                            ("kubelet on worker", "get pods/web-1 -> 200 (x2)"),
                            ("kubelet on worker", "patch pods/web-1/status -> 200")]
    writes = [s for s in trace.steps if s.kind == "write"]
    assert len(writes) == 3 and writes[-1].revision == "812" and "mod_revision 812" in writes[-1].text
    # the watches that made the scheduler and the kubelet act are drawn, and said to be inferred
    watches = [(s.to, s.source) for s in trace.steps if s.kind == "watch"]
    assert watches == [("S", "inferred"), ("K_worker", "inferred")]
    assert trace.audit and not trace.notes


def test_a_failed_write_draws_no_etcd_write():
    """simulation: a 409 create (the name taken) reached the API server but wrote nothing."""
    audit = [audit_event("create", "kubernetes-admin", "06:10:00.950000", code=201, name=None),
             audit_event("patch", "system:node:worker", "06:10:03.800000", sub="status", code=409)]
    trace = build(Observed("pod", "default", "web-1", pod(), audit=audit))
    assert [s.text for s in trace.steps if s.kind == "write"] == \
        ["write /registry/pods/default/web-1 (mod_revision 812 = resourceVersion)"]


def test_without_the_audit_log_the_story_comes_from_events_and_managed_fields():
    """simulation: no audit log on the control plane (audit=None)."""
    trace = build(Observed("pod", "default", "web-1", pod(), events=[SCHEDULED, STARTED], audit=None))
    texts = [s.text for s in trace.steps]
    assert texts.index("create pods/web-1 (manager kubectl-run)") < texts.index("create pods/web-1/binding") \
        < texts.index("patch pods/web-1/status (last status write)")
    assert not trace.audit and "the audit log would show every request" in trace.notes[0]


def test_an_audit_log_without_this_pod_says_so():
    """simulation: auditing switched on after the pod was made."""
    trace = build(Observed("pod", "default", "web-1", pod(), events=[SCHEDULED], audit=[
        audit_event("get", "kubernetes-admin", "06:20:00.000000", name="other")]))
    assert not trace.audit and "holds no request for this pod" in trace.notes[0]


def test_mermaid_keeps_an_event_message_from_breaking_the_diagram():
    """simulation: an event message with `;`, `#` and a line break (kubelet messages quote commands)."""
    bad = {**STARTED, "message": "Error: exec: \"sh;rm\" #1\nsecond line"}
    text = to_mermaid(build(Observed("pod", "default", "web-1", pod(), events=[SCHEDULED, bad], audit=None)))
    lines = text.splitlines()
    assert lines[0] == "sequenceDiagram"
    statement = re.compile(r"^    (participant \w+ as [^;#]+|Note over \w+(,\w+)?: [^;#]+|\w+(->>|-->>|--\))\w+: [^;#]+)$")
    assert all(statement.match(line) for line in lines[1:]), [line for line in lines[1:] if not statement.match(line)]
    assert any("second line" in line and "No.1" in line for line in lines)


def test_audit_read_filters_on_the_node_and_reports_a_missing_log(tmp_path):
    """real shell: the read `collect` sends (sh, tail, grep), here without sudo, on a file in the audit log's
    shape: only ResponseComplete lines of pods in the namespace that name the pod or create one."""
    import json

    lines = [audit_event("get", "u", "06:10:00.000000"),
             {**audit_event("get", "u", "06:10:00.100000"), "stage": "RequestReceived"},
             audit_event("create", "u", "06:10:00.200000", name=None),
             audit_event("get", "u", "06:10:00.300000", name="web-10"),
             audit_event("get", "u", "06:10:00.400000", namespace="other")]
    log = tmp_path / "audit.log"
    log.write_text("".join(json.dumps(e, separators=(",", ":")) + "\n" for e in lines))
    cmd = audit_command(str(log), "default", "web-1").removeprefix("sudo -n ")
    out = subprocess.run(cmd, shell=True, capture_output=True, text=True)
    got = [json.loads(line)["requestReceivedTimestamp"][11:19] for line in out.stdout.splitlines()]
    assert out.returncode == 0 and got == ["06:10:00", "06:10:00"] and len(out.stdout.splitlines()) == 2
    assert [json.loads(line)["verb"] for line in out.stdout.splitlines()] == ["get", "create"]
    missing = subprocess.run(audit_command(str(tmp_path / "none.log"), "default", "web-1").removeprefix("sudo -n "),
                             shell=True, capture_output=True, text=True)
    assert missing.returncode == 4


def test_cli_draws_from_evidence(sim):
    """simulation (trace_sim's evidence), through the real command (in process)."""
    r = cli_inproc.run("trace", "pod", "web-1", "-n", NS, "--evidence", sim[0], "--course", REPO,
                       env={"COLUMNS": "200"})
    assert r.code == 0 and r.crash is None, r.output
    assert "kube-scheduler" in r.stdout and "pods/web-1/binding" in r.stdout
    m = cli_inproc.run("trace", "pod", "web-1", "-n", NS, "--evidence", sim[0], "--mermaid", "--course", REPO)
    assert m.code == 0 and m.stdout.startswith("sequenceDiagram\n") and "participant S as kube-scheduler" in m.stdout


@pytest.mark.parametrize("args, says", [
    (("trace", "deployment", "web", "--evidence", "EV"), "cannot trace a 'deployment'"),
    (("trace", "pod", "web-2", "-n", NS, "--evidence", "EV"), "holds the trace of pod trace-live/web-1, not pod trace-live/web-2"),
    (("trace", "pod", "web-1", "--evidence", "/nonexistent.json"), "does not exist"),
    (("trace", "pod", "web-1", "--evidence", "EV", "--local"), "--evidence excludes"),
])
def test_cli_bad_input_is_one_line_and_exit_2(args, says, sim):
    """simulation: bad input ends with exit 2 and an `error:` line, no traceback."""
    r = cli_inproc.run(*[sim[0] if a == "EV" else a for a in args], "--course", REPO)
    assert cli_inproc.clean(r), r.output
    assert r.stderr.startswith("error:") and says in r.stderr.splitlines()[0], r.stderr


def test_cli_without_a_reachable_node_is_exit_3(tmp_path):
    """simulation: an ssh-config whose control plane nobody listens for (a closed port on this machine)."""
    cfg = tmp_path / "ssh-config"
    cfg.write_text("".join(f"Host {n}\n  HostName 127.0.0.1\n  Port 9\n  User nobody\n"
                           for n in ("master", "worker")))
    r = cli_inproc.run("trace", "pod", "web-1", "--ssh-config", cfg, "--course", REPO)
    assert cli_inproc.clean(r, codes=(3,)), r.output


def test_notebook_view_carries_mermaid_markdown_and_the_timeline(sim, monkeypatch):
    """simulation (trace_sim's evidence): what the notebook shows (the MIME bundle)."""
    from kubelab.notebook import trace as nb_trace
    from kubelab.notebook.tracing import MERMAID_MIME, TraceError

    monkeypatch.setenv("KUBELAB_COURSE", str(REPO))
    bundle = nb_trace("pod", "web-1", NS, evidence=sim[0])._repr_mimebundle_()
    assert bundle[MERMAID_MIME].startswith("sequenceDiagram\n")
    assert "```mermaid\nsequenceDiagram\n" in bundle["text/markdown"]
    assert "kube-scheduler" in bundle["text/plain"]
    with pytest.raises(TraceError) as e:
        nb_trace("pod", "web-9", NS, evidence=sim[0])
    assert e.value._render_traceback_()[0].startswith("✗ ") and len(e.value._render_traceback_()) == 1


def test_record_then_draw_from_evidence_without_a_node(course, tmp_path):
    """simulation: collect() through the recording target, then the same trace from the evidence file alone
    (the replay target answers every read; nothing else is reachable)."""
    import json

    ns_pod = pod()
    ns_pod["metadata"]["namespace"] = "default"
    events_path = ("/api/v1/namespaces/default/events?fieldSelector="
                   "involvedObject.kind%3DPod%2CinvolvedObject.name%3Dweb-1")
    api = {"/api/v1/namespaces/default/pods/web-1": (200, ns_pod),
           events_path: (200, {"items": [SCHEDULED, STARTED]}),
           "/apis/coordination.k8s.io/v1/namespaces/kube-system/leases/kube-scheduler":
               (200, {"spec": {"holderIdentity": "master_1", "renewTime": "2026-11-30T06:10:05.000000Z"}})}
    audit = [audit_event("create", "kubernetes-admin", "06:10:00.950000", name=None, code=201),
             audit_event("create", "system:kube-scheduler", "06:10:01.300000", sub="binding", code=201)]
    commands = {"sudo -n cat /etc/kubernetes/admin.conf": (0, ADMIN_CONF),
                "sudo -n sh -c": (0, "".join(json.dumps(e) + "\n" for e in audit))}
    from kubelab.trace.record import trace_live

    path = tmp_path / "t.json"
    live = trace_live(course, fake_target(course, api, commands), "pod", "web-1", record=path)
    assert [w for _, w in calls(live)] == ["create pods/web-1 -> 201", "create pods/web-1/binding -> 201"]
    assert trace_from_evidence(course, path).to_dict() == live.to_dict()
    # an unknown pod: a one-line usage error; no cluster (no admin.conf): an infrastructure error
    from kubelab.errors import InfrastructureError, UsageError

    with pytest.raises(UsageError, match="pod 'nope' not found in namespace 'default'"):
        trace_live(course, fake_target(course, api, commands), "pod", "nope")
    with pytest.raises(InfrastructureError, match="no cluster"):
        trace_live(course, fake_target(course, api, {}), "pod", "web-1")


def test_recorded_trace_with_the_audit_log(course):
    """recorded evidence from the twins' real 1.20 cluster: drawn again with no node touched, the admin's create,
    the scheduler's binding and the kubelet's status patches in that order, as the live test saw them."""
    trace = trace_from_evidence(course, AUDITED)
    got = calls(trace)
    first = {text.split(" ->")[0]: i for i, (who, text) in reversed(list(enumerate(got)))}
    assert got[first["create pods/web-1"]][0] == "kubectl as kubernetes-admin"
    assert got[first["create pods/web-1/binding"]][0] == "kube-scheduler"
    assert got[first["patch pods/web-1/status"]][0] == "kubelet on worker"
    assert first["create pods/web-1"] < first["create pods/web-1/binding"] < first["patch pods/web-1/status"]
    assert trace.node == "worker" and trace.audit
    assert to_mermaid(trace).startswith("sequenceDiagram\n")


def test_recorded_trace_without_the_audit_log(course):
    """recorded evidence from the twins' real 1.20 cluster, traced after auditing was switched off again."""
    trace = trace_from_evidence(course, PLAIN)
    assert not trace.audit and "no audit log" in trace.notes[0]
    assert any(t.startswith("create pods/web-1/binding") for t in trace.step_texts("event"))
