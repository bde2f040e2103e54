"""What the cluster says about one object, read through the target seam (live, recorded or replayed).

Read-only: GETs to the API server and a bounded read of the audit log on the control plane."""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass, field

from kubelab.engine.targets import Target
from kubelab.errors import InfrastructureError, UsageError
from kubelab.trace import AUDIT_LOG_PATH

KINDS = {"pod": "pod", "pods": "pod", "po": "pod"}
# A bound on what leaves the node: the newest 64 MiB of the log, then at most this many matching lines.
AUDIT_TAIL_BYTES = 64 * 1024 * 1024
AUDIT_MAX_LINES = 4000
NO_AUDIT_LOG = 4  # the exit status of the read when the file is absent
LEADER_LEASES = ("kube-scheduler", "kube-controller-manager")

# `grep -F` pre-filters on the node (keys of an audit line are in the order the API server writes them); the
# exact match on the object happens in model.py.
_AUDIT_READ = ('f=$1; [ -e "$f" ] || exit %d; tail -c %d "$f" | grep -F -e "$2" | grep -F -e \'"stage":"ResponseComplete"\' '
               '| grep -F -e "$3" -e \'"verb":"create"\' | tail -n %d')


@dataclass
class Observed:
    kind: str
    namespace: str
    name: str
    object: dict
    events: list[dict] = field(default_factory=list)
    owner_events: list[dict] = field(default_factory=list)
    leases: dict[str, dict] = field(default_factory=dict)
    audit_path: str = AUDIT_LOG_PATH
    audit: list[dict] | None = None  # None: no audit log on the control plane
    audit_error: str = ""
    # beyond the pod's own hops: the Services selecting it, their EndpointSlices, kube-proxy's rules per node
    services: list[dict] = field(default_factory=list)
    slices: list[dict] = field(default_factory=list)
    proxy: dict[str, dict] = field(default_factory=dict)  # node -> {"mode", "chains": [EndpointChain], "error"}
    beyond_unread: str = ""


def audit_command(path: str, namespace: str, name: str) -> str:
    script = _AUDIT_READ % (NO_AUDIT_LOG, AUDIT_TAIL_BYTES, AUDIT_MAX_LINES)
    ns_needle = f'"objectRef":{{"resource":"pods","namespace":"{namespace}"'
    name_needle = f'"name":"{name}"'
    return "sudo -n sh -c " + " ".join(shlex.quote(a) for a in (script, "kubelab-trace", path, ns_needle, name_needle))


def canonical_kind(kind: str) -> str:
    found = KINDS.get(kind.lower())
    if found is None:
        raise UsageError(f"kubelab trace cannot trace a {kind!r}", "trace a pod: kubelab trace pod NAME [-n NAMESPACE]")
    return found


def collect(target: Target, kind: str, name: str, namespace: str = "default",
            audit_path: str = AUDIT_LOG_PATH) -> Observed:
    from kubelab.engine.checks import CheckFailed
    from kubelab.engine.kube import Kube

    canonical = canonical_kind(kind)
    cp = target.course.model.control_plane.name
    host = target.host(cp)
    kube = Kube(host, cp, client_factory=target.api_client)
    try:
        try:
            client = kube.api_client
        except CheckFailed as e:
            raise InfrastructureError(f"no cluster: {e.actual}",
                                      "build the cluster first (kubeadm init, Lab 4), then trace again") from None
        obj = _get(client, f"/api/v1/namespaces/{namespace}/pods/{name}", f"pod {namespace}/{name}")
        if obj is None:
            raise UsageError(f"pod {name!r} not found in namespace {namespace!r}",
                             f"list the pods with `kubectl get pods -n {namespace}` (another namespace: -n NAME)")
        seen = Observed(canonical, namespace, name, obj, audit_path=audit_path)
        seen.events = _events(client, namespace, "Pod", name)
        for owner in obj.get("metadata", {}).get("ownerReferences") or []:
            # the controller reports the pods it creates on its own object ("Created pod: web-7d4…")
            seen.owner_events += [e for e in _events(client, namespace, owner.get("kind", ""), owner.get("name", ""))
                                  if name in (e.get("message") or "")]
        node = obj.get("spec", {}).get("nodeName")
        if node:
            lease = _get(client, f"/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/{node}", "")
            if lease:
                seen.leases[f"kube-node-lease/{node}"] = lease
        for leader in LEADER_LEASES:
            lease = _get(client, f"/apis/coordination.k8s.io/v1/namespaces/kube-system/leases/{leader}", "")
            if lease:
                seen.leases[f"kube-system/{leader}"] = lease
        beyond = _beyond_the_pod(lambda: _read_services(client, seen), seen)
    finally:
        kube.close()
    _read_audit(host, seen)
    if beyond:
        _beyond_the_pod(lambda: _read_proxy_rules(target, seen), seen)
    return seen


def _beyond_the_pod(read, seen: Observed) -> bool:
    """The Service hops, read when the evidence holds them: a trace recorded before kubelab drew them still draws
    the pod's own hops, and says why the others are missing."""
    from kubelab.evidence.replay import NotInEvidence

    try:
        read()
        return True
    except NotInEvidence:
        seen.services, seen.slices, seen.proxy = [], [], {}
        seen.beyond_unread = "the evidence was recorded without the Service hops (EndpointSlice, kube-proxy)"
        return False


def selects(selector: dict | None, labels: dict | None) -> bool:
    """A Service's selector picks a pod when every key=value of it is among the pod's labels (an empty or missing
    selector picks none: such a Service's endpoints are managed by hand)."""
    return bool(selector) and all((labels or {}).get(k) == v for k, v in selector.items())


def _read_services(client, seen: Observed) -> None:
    """The Services of the pod's namespace that select it, and their EndpointSlices (discovery.k8s.io in the
    version the API server prefers: v1beta1 at 1.20, v1 since 1.21)."""
    from urllib.parse import quote

    labels = seen.object.get("metadata", {}).get("labels") or {}
    if not labels:
        return
    found = _get(client, f"/api/v1/namespaces/{seen.namespace}/services", "services") or {}
    seen.services = [s for s in found.get("items") or []
                     if isinstance(s, dict) and selects((s.get("spec") or {}).get("selector"), labels)]
    if not seen.services:
        return
    group = _get(client, "/apis/discovery.k8s.io", "") or {}
    version = (group.get("preferredVersion") or {}).get("groupVersion") or "discovery.k8s.io/v1"
    for svc in seen.services:
        name = (svc.get("metadata") or {}).get("name", "")
        selector = quote(f"kubernetes.io/service-name={name}", safe="")
        slices = _get(client, f"/apis/{version}/namespaces/{seen.namespace}/endpointslices?labelSelector={selector}",
                      "endpointslices") or {}
        seen.slices += [s for s in slices.get("items") or [] if isinstance(s, dict)]


def _read_proxy_rules(target: Target, seen: Observed) -> None:
    """On every node: kube-proxy's mode and the endpoint chains that DNAT to the pod's IP (only when a Service
    selects the pod: otherwise kube-proxy has no rule for it)."""
    from dataclasses import asdict

    from kubelab.kubeproxy_rules import endpoints_of, rules_command, split_rules_read

    pod_ip = (seen.object.get("status") or {}).get("podIP")
    if not pod_ip or not seen.services:
        return
    for node in target.course.model.nodes:
        result = target.host(node.name).run(rules_command())
        if result.rc != 0:
            seen.proxy[node.name] = {"mode": "", "chains": [], "error": (result.stderr.strip().splitlines()
                                                                           or [f"exit status {result.rc}"])[-1]}
            continue
        mode, text = split_rules_read(result.stdout)
        seen.proxy[node.name] = {"mode": mode, "chains": [asdict(c) for c in endpoints_of(mode, text, pod_ip)],
                                 "error": ""}


def _get(client, path: str, what: str) -> dict | None:
    """GET `path` as JSON; None when the API server answers 404."""
    import urllib3

    try:
        response = client.call_api("GET", client.configuration.host + path, header_params={"Accept": "application/json"},
                                   _request_timeout=20)
        data = response.read()
    except (urllib3.exceptions.HTTPError, OSError) as e:
        raise InfrastructureError(f"the API server did not answer: {type(e).__name__}",
                                  "is the control plane up? `kubectl get --raw /readyz` on the control-plane node") from None
    if response.status == 404:
        return None
    if not 200 <= response.status < 300:
        raise InfrastructureError(f"the API server answered {response.status} to GET {path}",
                                  "check the control plane's health and the admin kubeconfig")
    try:
        found = json.loads(data)
    except ValueError:
        raise InfrastructureError(f"the API server's answer to GET {path} is not JSON", "check the API server") from None
    return found if isinstance(found, dict) else None


def _events(client, namespace: str, kind: str, name: str) -> list[dict]:
    from urllib.parse import quote

    selector = quote(f"involvedObject.kind={kind},involvedObject.name={name}", safe="")
    found = _get(client, f"/api/v1/namespaces/{namespace}/events?fieldSelector={selector}", "events") or {}
    return [e for e in found.get("items") or [] if isinstance(e, dict)]


def _read_audit(host, seen: Observed) -> None:
    result = host.run(audit_command(seen.audit_path, seen.namespace, seen.name))
    if result.rc == NO_AUDIT_LOG:
        return
    if result.rc not in (0, 1) or result.stderr.strip():
        seen.audit_error = (result.stderr.strip().splitlines() or [f"exit status {result.rc}"])[-1]
        return
    events = []
    for line in result.stdout.splitlines():
        try:
            event = json.loads(line)
        except ValueError:
            continue  # a line cut by `tail -c`, or one the API server was still writing
        if isinstance(event, dict):
            events.append(event)
    seen.audit = events
