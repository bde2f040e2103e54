"""`kubelab trace` on the twins' real v1.20 cluster (kind of proof: real 1.20 cluster on twins).

The API server's audit log is switched on as Lab 6 has the learner do it (a policy file, three flags and two
hostPath mounts in the static pod manifest), a pod is created and started, and its trace is compared with what
the API and the events say. The manifest is put back afterwards (and the API server waited for), then the same
pod is traced again without the audit log. Both traces are recorded as evidence and drawn again from it."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import pytest

from helpers import kubelab, wait_for
from kubelab.engine.targets import SshConfigTarget
from kubelab.trace import AUDIT_LOG_PATH
from kubelab.trace.record import trace_from_evidence, trace_live

pytestmark = [pytest.mark.twins, pytest.mark.cluster]

NS = "trace-live"
POD = "web-1"
MANIFEST = "/etc/kubernetes/manifests/kube-apiserver.yaml"
BACKUP = "/root/kubelab-trace-kube-apiserver.yaml"  # outside manifests/: the kubelet runs every file there
POLICY = """apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: ["RequestReceived"]
rules:
- level: Metadata
"""
# the image every node has (kubelab.cluster.build.BUSYBOX_IMAGE): busybox's applets are not on its PATH
POD_YAML = """apiVersion: v1
kind: Pod
metadata: {name: web-1, namespace: trace-live}
spec:
  nodeSelector: {kubernetes.io/hostname: %(node)s}
  containers:
  - name: web
    image: docker.io/local/busybox:debian
    imagePullPolicy: Never
    command: ["/bin/sh", "-c", "exec busybox sleep 3600"]
"""
# the edit Lab 6 has the learner make, as text (the node's python3 has no PyYAML)
EDIT = r'''
import sys
p = "/etc/kubernetes/manifests/kube-apiserver.yaml"
s = open(p).read()
assert "--audit-log-path" not in s, "auditing is already on"
s = s.replace("    - kube-apiserver\n", "    - kube-apiserver\n"
              "    - --audit-policy-file=/etc/kubernetes/audit/policy.yaml\n"
              "    - --audit-log-path=%(log)s\n    - --audit-log-maxage=1\n", 1)
s = s.replace("    volumeMounts:\n", "    volumeMounts:\n"
              "    - mountPath: /etc/kubernetes/audit\n      name: audit-policy\n      readOnly: true\n"
              "    - mountPath: %(dir)s\n      name: audit-log\n", 1)
s = s.replace("  volumes:\n", "  volumes:\n"
              "  - hostPath:\n      path: /etc/kubernetes/audit\n      type: DirectoryOrCreate\n    name: audit-policy\n"
              "  - hostPath:\n      path: %(dir)s\n      type: DirectoryOrCreate\n    name: audit-log\n", 1)
open("/root/kube-apiserver.yaml.new", "w").write(s)
''' % {"log": AUDIT_LOG_PATH, "dir": AUDIT_LOG_PATH.rsplit("/", 1)[0]}


def ssh(ts, node: str, command: str, *, input: str | None = None, check: bool = True) -> subprocess.CompletedProcess:
    argv = ["ssh", "-F", str(ts.ssh_config_file()), "-o", "BatchMode=yes", "-o", "ConnectTimeout=10", node, command]
    p = subprocess.run(argv, input=input, capture_output=True, text=True, timeout=180)
    if check:
        assert p.returncode == 0, f"{node}$ {command} -> {p.returncode}: {p.stdout[-1500:]} {p.stderr[-1500:]}"
    return p


def kubectl(ts, cp: str, args: str, check: bool = True) -> subprocess.CompletedProcess:
    return ssh(ts, cp, f"sudo -n kubectl --kubeconfig /etc/kubernetes/admin.conf {args}", check=check)


def api_server_up(ts, cp: str, audit: bool) -> bool:
    """The API server answers /readyz and its process runs with (or without) the audit flags."""
    procs = ssh(ts, cp, "pgrep -a kube-apiserver || true", check=False).stdout
    if ("--audit-log-path" in procs) != audit:
        return False
    return kubectl(ts, cp, "get --raw /readyz", check=False).stdout.strip() == "ok"


def artifacts(tmp_path: Path) -> Path:
    where = Path(os.environ.get("KUBELAB_TEST_ARTIFACTS") or tmp_path / "artifacts")
    where.mkdir(parents=True, exist_ok=True)
    return where


def ordered_audit_calls(trace) -> list[tuple[str, str]]:
    labels = dict(trace.participants)
    return [(labels[s.frm], s.text) for s in trace.steps if s.source == "audit" and s.kind == "call"]


def test_trace_of_a_started_pod_with_and_without_the_audit_log(shared_cluster, tmp_path):
    """real 1.20 cluster on twins: the trace's steps are the API's and the events' story, in order."""
    course, ts = shared_cluster["course"], shared_cluster["ts"]
    cp = course.model.control_plane.name
    worker = next(n.name for n in course.model.nodes if n.name != cp)
    keep = artifacts(tmp_path)
    audited = keep / "web-1.audit.trace.json"
    plain = keep / "web-1.no-audit.trace.json"
    started = time.monotonic()
    try:
        trace_with_and_without_audit(shared_cluster, ts, course, cp, worker, audited, plain, started)
    finally:
        kubectl(ts, cp, f"delete namespace {NS} --wait=true --timeout=120s", check=False)


def trace_with_and_without_audit(shared_cluster, ts, course, cp, worker, audited, plain, started):
    ssh(ts, cp, f"sudo -n cp {MANIFEST} {BACKUP}")
    try:
        ssh(ts, cp, "sudo -n mkdir -p /etc/kubernetes/audit && sudo -n tee /etc/kubernetes/audit/policy.yaml >/dev/null",
            input=POLICY)
        ssh(ts, cp, "sudo -n python3 -", input=EDIT)
        # written beside, then moved in: the kubelet never reads a half-written manifest
        ssh(ts, cp, f"sudo -n mv /root/kube-apiserver.yaml.new {MANIFEST}")
        wait_for(lambda: api_server_up(ts, cp, audit=True), "the API server restarted with auditing on",
                 timeout_s=240, interval_s=3)
        print(f"audit on after {time.monotonic() - started:.0f}s")
        kubectl(ts, cp, f"create namespace {NS}")
        ssh(ts, cp, "sudo -n kubectl --kubeconfig /etc/kubernetes/admin.conf create -f -",
            input=POD_YAML % {"node": worker})
        ready = kubectl(ts, cp, f"wait --for=condition=Ready pod/{POD} -n {NS} --timeout=150s", check=False)
        assert ready.returncode == 0, (ready.stderr + kubectl(ts, cp, f"describe pod {POD} -n {NS}", check=False).stdout
                                       + kubectl(ts, cp, "get pods -A -o wide", check=False).stdout)
        time.sleep(2)  # the audit backend writes in batches; the kubelet's last status patch is in the log
        target = SshConfigTarget(course, ts.ssh_config_file())
        try:
            trace = trace_live(course, target, "pod", POD, NS, record=audited)
        finally:
            target.close()
        pod = json.loads(kubectl(ts, cp, f"get pod {POD} -n {NS} -o json").stdout)
        events = json.loads(kubectl(ts, cp, f"get events -n {NS} --field-selector involvedObject.name={POD} -o json")
                            .stdout)["items"]
        print("\n".join(f"{s.at} {s.frm}->{s.to} {s.text} [{s.source}]" for s in trace.steps))

        # the object: what the API says now
        assert trace.uid == pod["metadata"]["uid"] and trace.node == pod["spec"]["nodeName"] == worker
        assert int(trace.resource_version) <= int(pod["metadata"]["resourceVersion"])
        # the audit log's story, in order: kubectl as the admin creates, the scheduler binds, the kubelet patches
        calls = ordered_audit_calls(trace)
        assert trace.audit and calls, trace.steps
        creates = [i for i, (who, text) in enumerate(calls) if text.startswith(f"create pods/{POD} ")]
        binds = [i for i, (who, text) in enumerate(calls) if text.startswith(f"create pods/{POD}/binding")]
        patches = [i for i, (who, text) in enumerate(calls) if text.startswith(f"patch pods/{POD}/status")]
        assert creates and calls[creates[0]][0] == "kubectl as kubernetes-admin", calls
        assert binds and calls[binds[0]][0] == "kube-scheduler", calls
        assert patches and all(calls[i][0] == f"kubelet on {worker}" for i in patches), calls
        assert creates[0] < binds[0] < patches[0], calls
        assert all(text.endswith(("-> 201", "-> 200")) for _, text in (calls[creates[0]], calls[binds[0]]))
        # the events' story: the scheduler's Scheduled and the kubelet's Started are notes of the trace
        reasons = {e["reason"] for e in events}
        assert {"Scheduled", "Started"} <= reasons, reasons
        notes = [s.text for s in trace.steps if s.source == "event"]
        for e in events:
            assert any(n.startswith(f"{e['reason']}: {e['message']}") for n in notes), (e, notes)
        # the last write carries the object's etcd revision
        assert any(s.kind == "write" and s.revision == trace.resource_version for s in trace.steps)
        # the scheduler's leadership, from its Lease
        assert any(s.source == "lease" and "kube-system/kube-scheduler held by" in s.text for s in trace.steps)
        # recorded, then drawn from the evidence alone: the same diagram
        assert trace_from_evidence(course, audited).to_dict() == trace.to_dict()
        # the CLI, live: the timeline in the terminal; an unknown pod is one line and exit 2
        cli = kubelab("trace", "pod", POD, "-n", NS, "--ssh-config", str(ts.ssh_config_file()),
                      env={"KUBELAB_COURSE": str(course.root), "COLUMNS": "200"})
        assert cli.returncode == 0 and "kube-scheduler" in cli.stdout and "binding" in cli.stdout, cli.stdout + cli.stderr
        missing = kubelab("trace", "pod", "nope", "-n", NS, "--ssh-config", str(ts.ssh_config_file()),
                          env={"KUBELAB_COURSE": str(course.root)})
        assert missing.returncode == 2 and missing.stderr.startswith("error: pod 'nope' not found"), missing.stderr
    finally:
        # put the API server back as it was, then wait for it: the next module needs a healthy control plane
        restored = ssh(ts, cp, f"sudo -n test -f {BACKUP} && sudo -n cp {BACKUP} /root/kube-apiserver.yaml.orig && "
                               f"sudo -n mv /root/kube-apiserver.yaml.orig {MANIFEST}", check=False)
        try:
            wait_for(lambda: api_server_up(ts, cp, audit=False), "the API server back without auditing",
                     timeout_s=240, interval_s=3)
        except BaseException:
            shared_cluster["dirty"] = True
            raise
        if restored.returncode != 0:
            shared_cluster["dirty"] = True
        ssh(ts, cp, f"sudo -n rm -rf /etc/kubernetes/audit {AUDIT_LOG_PATH.rsplit('/', 1)[0]} {BACKUP}", check=False)
    print(f"audit off again after {time.monotonic() - started:.0f}s")
    # without the audit log: what events and managedFields show, and a note saying the audit log shows more
    target = SshConfigTarget(course, ts.ssh_config_file())
    try:
        bare = trace_live(course, target, "pod", POD, NS, record=plain)
    finally:
        target.close()
    print("\n".join(f"{s.at} {s.frm}->{s.to} {s.text} [{s.source}]" for s in bare.steps))
    assert not bare.audit and any("no audit log" in n for n in bare.notes), bare.notes
    texts = bare.step_texts()
    assert any(t.startswith(f"create pods/{POD}/binding") for t in texts), texts
    assert any(t.startswith(f"patch pods/{POD}/status") for t in texts), texts
    assert trace_from_evidence(course, plain).to_dict() == bare.to_dict()
