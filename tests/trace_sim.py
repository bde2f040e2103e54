"""Simulated cluster answers for `kubelab trace` tests (kind of proof: simulation): a pod, its audit events and
core/v1 Events in the shapes the Kubernetes API reference documents (audit.k8s.io/v1 Event, core/v1 Event), and
a Target that answers kubelab.trace's reads from them, so the real record and replay path runs on them."""

from __future__ import annotations

import json
from pathlib import Path


def pod(name="web-1", created="2026-11-30T06:10:01Z", rv="812", managed=None):
    return {"metadata": {"name": name, "namespace": "default", "uid": "u-1", "resourceVersion": rv,
                         "creationTimestamp": created,
                         "managedFields": managed if managed is not None else [
                             {"manager": "kubectl-run", "operation": "Update", "time": "2026-11-30T06:10:01Z"},
                             {"manager": "kubelet", "operation": "Update", "time": "2026-11-30T06:10:04Z"}]},
            "spec": {"nodeName": "worker"}}


def audit_event(verb, user, at, name="web-1", sub=None, code=200, namespace="default"):
    ref = {"resource": "pods", "namespace": namespace, "apiVersion": "v1"}
    if name:
        ref["name"] = name
    if sub:
        ref["subresource"] = sub
    return {"kind": "Event", "apiVersion": "audit.k8s.io/v1", "level": "Metadata", "stage": "ResponseComplete",
            "verb": verb, "user": {"username": user, "groups": ["system:authenticated"]}, "objectRef": ref,
            "responseStatus": {"metadata": {}, "code": code},
            "requestReceivedTimestamp": f"2026-11-30T{at}Z", "stageTimestamp": f"2026-11-30T{at}Z"}


SCHEDULED = {"reason": "Scheduled", "message": "Successfully assigned default/web-1 to worker",
             "source": {"component": "default-scheduler"}, "firstTimestamp": "2026-11-30T06:10:01Z",
             "lastTimestamp": "2026-11-30T06:10:01Z", "count": 1}
STARTED = {"reason": "Started", "message": "Started container web-1", "source": {"component": "kubelet", "host": "worker"},
           "firstTimestamp": "2026-11-30T06:10:03Z", "lastTimestamp": "2026-11-30T06:10:03Z", "count": 1}


def fake_target(course, api: dict, commands: dict):
    """simulation: a Target whose node answers `commands` (cmd prefix -> (rc, stdout)) and whose API server
    answers `api` (path -> (status, object)); what kubelab.trace reads through it is what a live target gives."""
    import json as _json
    from types import SimpleNamespace

    from testinfra.backend.base import BaseBackend

    from kubelab.engine.targets import Target

    class Backend(BaseBackend):
        NAME = "fake"

        def run(self, command, *args, **kwargs):
            cmd = self.get_command(command, *args)
            for prefix, answer in commands.items():
                if cmd.startswith(prefix):
                    # an answer per node: {node: (rc, stdout)}
                    rc, out = answer.get(self.hostname, (127, "")) if isinstance(answer, dict) else answer
                    return self.result(rc, self.encode(cmd), out.encode(), b"")
            return self.result(127, self.encode(cmd), b"", b"not simulated")

    class Fake(Target):
        description = "simulation"

        def _backend(self, node):
            return Backend(node)

        def api_client(self, kubeconfig):
            from kubernetes.client import ApiClient, Configuration
            from kubernetes.client.rest import RESTResponse

            client = ApiClient(Configuration(host="https://simulated"))

            def request(method, url, headers=None, body=None, post_params=None, _request_timeout=None):
                path = url.split("https://simulated", 1)[1]
                status, obj = api.get(path, (404, {"kind": "Status", "code": 404}))
                return RESTResponse(SimpleNamespace(status=status, reason="", data=_json.dumps(obj).encode(),
                                                    headers={}))

            client.rest_client.request = request
            return client

    return Fake(course)


ADMIN_CONF = "apiVersion: v1\nkind: Config\nclusters:\n- name: k\n  cluster: {server: 'https://192.168.56.10:6443'}\n"



def write_evidence(course, folder: Path, namespace: str = "trace-live") -> tuple[Path, Path]:
    """Two trace evidence files of pod web-1 (created by kubectl, bound by the scheduler, started by the kubelet
    on worker), recorded through the recording target from the simulated cluster: with and without audit log."""
    from kubelab.trace.record import trace_live

    p = pod()
    p["metadata"]["namespace"] = namespace
    events = (f"/api/v1/namespaces/{namespace}/events?fieldSelector="
              "involvedObject.kind%3DPod%2CinvolvedObject.name%3Dweb-1")
    api = {f"/api/v1/namespaces/{namespace}/pods/web-1": (200, p), events: (200, {"items": [SCHEDULED, STARTED]}),
           "/apis/coordination.k8s.io/v1/namespaces/kube-system/leases/kube-scheduler":
               (200, {"spec": {"holderIdentity": "master_1", "renewTime": "2026-11-30T06:10:05.000000Z"}}),
           "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/worker":
               (200, {"spec": {"holderIdentity": "worker", "leaseDurationSeconds": 40,
                               "renewTime": "2026-11-30T06:10:06.000000Z"}})}
    audit = [audit_event("create", "kubernetes-admin", "06:10:00.950000", name=None, code=201, namespace=namespace),
             audit_event("create", "system:kube-scheduler", "06:10:01.300000", sub="binding", code=201,
                         namespace=namespace),
             audit_event("get", "system:node:worker", "06:10:01.600000", namespace=namespace),
             audit_event("patch", "system:node:worker", "06:10:03.300000", sub="status", namespace=namespace)]
    out = []
    for name, lines in (("web-1.audit.trace.json", audit), ("web-1.no-audit.trace.json", None)):
        commands = {"sudo -n cat /etc/kubernetes/admin.conf": (0, ADMIN_CONF),
                    "sudo -n sh -c": (0, "".join(json.dumps(e) + "\n" for e in lines)) if lines else (4, "")}
        path = folder / name
        trace_live(course, fake_target(course, api, commands), "pod", "web-1", namespace, record=path)
        out.append(path)
    return out[0], out[1]
