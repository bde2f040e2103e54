"""From what the cluster says to the steps of a sequence diagram.

Each step says where it comes from: `audit` (the API server's own record of a request), `event` (what a
component reported), `managedFields` (the object's record of who last wrote which fields, and when), `object`
(its resourceVersion), `lease` (who leads, whose heartbeat), `status` (a pod condition's lastTransitionTime),
`endpointslice` (a Service's EndpointSlice listing the pod's IP ready), `kube-proxy` (the endpoint chain on a node
that DNATs to the pod's IP; rules keep no time, so it is drawn right after the slice it follows), or `inferred` (a
watch notification the diagram shows because the next step needs it; no log records it)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta, timezone

from kubelab.trace.collect import Observed

WRITE_VERBS = {"create", "update", "patch", "delete", "deletecollection"}
API, ETCD = "A", "E"
# A create names its object in objectRef when the request did (seen on 1.20 at level Metadata); one whose name the
# API server generated (generateName: a ReplicaSet's pods) names none: it is this pod's create when the API server
# received it this close to the pod's creationTimestamp (which has whole seconds).
CREATE_WINDOW = timedelta(seconds=2)


@dataclass
class Step:
    at: str           # ISO 8601 UTC, as the source wrote it
    frm: str          # participant ids
    to: str
    text: str
    source: str       # audit | event | managedFields | object | lease | inferred
    kind: str = "call"  # call | reply | write | watch | note
    revision: str = ""


@dataclass
class Trace:
    kind: str
    namespace: str
    name: str
    uid: str
    node: str
    resource_version: str
    participants: list[tuple[str, str]]  # (id, label) in drawing order
    steps: list[Step]
    audit: bool               # drawn from the audit log
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)

    def step_texts(self, source: str | None = None) -> list[str]:
        return [s.text for s in self.steps if source is None or s.source == source]


def parse_time(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        t = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return t if t.tzinfo else t.replace(tzinfo=timezone.utc)


class _Cast:
    """The participants, created as the steps name them."""

    ORDER = ["U", "C", API, ETCD, "S", "K", "P"]

    def __init__(self):
        self.labels: dict[str, str] = {API: "kube-apiserver", ETCD: "etcd"}

    def user(self, username: str) -> str:
        if username == "system:kube-scheduler":
            return self._add("S", "kube-scheduler")
        if username.startswith("system:node:"):
            node = username.split(":", 2)[2]
            return self._add(f"K_{_ident(node)}", f"kubelet on {node}")
        if username == "system:kube-controller-manager" or (
                username.startswith("system:serviceaccount:kube-system:") and username.endswith("-controller")):
            return self._add("C", "kube-controller-manager")
        return self._add("U" if username == "kubernetes-admin" else f"U_{_ident(username)}", f"kubectl as {username}")

    def manager(self, manager: str, node: str) -> str:
        if manager.startswith("kubectl"):
            return self._add("U", "kubectl")
        if manager == "kubelet" and node:
            return self._add(f"K_{_ident(node)}", f"kubelet on {node}")
        if manager in ("kube-scheduler", "default-scheduler"):
            return self._add("S", "kube-scheduler")
        if manager == "kube-controller-manager" or manager.endswith("-controller"):
            return self._add("C", "kube-controller-manager")
        return self._add(f"M_{_ident(manager)}", manager)

    def proxy(self, node: str) -> str:
        return self._add(f"P_{_ident(node)}", f"kube-proxy on {node}")

    def reporter(self, event: dict) -> str | None:
        source = event.get("source") or {}
        component = source.get("component") or event.get("reportingComponent") or ""
        if component == "kubelet":
            host = source.get("host") or event.get("reportingInstance") or ""
            return self._add(f"K_{_ident(host)}", f"kubelet on {host}") if host else None
        if component.endswith("scheduler"):
            return self._add("S", "kube-scheduler")
        if component.endswith("-controller") or component == "kube-controller-manager":
            return self._add("C", "kube-controller-manager")
        return self._add(f"M_{_ident(component)}", component) if component else None

    def _add(self, ident: str, label: str) -> str:
        self.labels.setdefault(ident, label)
        return ident

    def ordered(self) -> list[tuple[str, str]]:
        def rank(ident: str) -> tuple[int, str]:
            head = ident.split("_")[0]
            return (self.ORDER.index(head) if head in self.ORDER else len(self.ORDER), ident)
        return [(i, self.labels[i]) for i in sorted(self.labels, key=rank)]


def _ident(text: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in text) or "x"


def build(seen: Observed) -> Trace:
    meta = seen.object.get("metadata", {})
    node = seen.object.get("spec", {}).get("nodeName") or ""
    cast = _Cast()
    steps: list[Step] = []
    notes: list[str] = []
    if seen.audit is not None:
        steps += _from_audit(seen, cast)
        if not any(s.source == "audit" for s in steps):
            notes.append(f"the audit log at {seen.audit_path} holds no request for this pod (it was created before "
                         "auditing was switched on, or the policy does not log pods)")
    if not any(s.source == "audit" for s in steps):
        steps += _from_object(seen, cast, node)
        if seen.audit is None:
            notes.append(f"no audit log at {seen.audit_path}: drawn from the pod's events and managedFields only; "
                         "the audit log would show every request (who, which verb, when, the answer) - Lab 6 "
                         "switches it on")
        elif seen.audit_error:
            notes.append(f"could not read the audit log: {seen.audit_error}")
    steps += _from_events(seen, cast)
    steps += _from_conditions(seen, cast, node)
    slice_steps, slice_notes = _from_slices(seen, cast)
    steps += slice_steps
    notes += slice_notes
    steps = sorted(steps, key=_when)
    steps = _with_watches(steps, cast, node)
    _mark_revision(steps, seen, meta.get("resourceVersion", ""))
    proxy_steps, proxy_notes = _from_proxy(seen, cast, steps)
    notes += proxy_notes
    steps = _leader_notes(seen, cast) + steps + proxy_steps + _node_lease_note(seen, cast, node)
    return Trace(kind=seen.kind, namespace=seen.namespace, name=seen.name, uid=meta.get("uid", ""), node=node,
                 resource_version=str(meta.get("resourceVersion", "")), participants=cast.ordered(),
                 steps=steps, audit=any(s.source == "audit" for s in steps), notes=notes)


def _when(step: Step) -> datetime:
    t = parse_time(step.at)
    if t is None:
        return datetime.max.replace(tzinfo=timezone.utc)
    # events and managedFields keep whole seconds: what they report happened within that second, after the
    # audit log's (microsecond) requests of the same second began; at its end they sort after them
    return t + timedelta(microseconds=999_999) if t.microsecond == 0 and "." not in step.at else t


def _is_this_pod(event: dict, seen: Observed, created: datetime | None) -> bool:
    ref = event.get("objectRef") or {}
    if ref.get("resource") != "pods" or ref.get("namespace") != seen.namespace:
        return False
    uid = ref.get("uid")
    if uid and uid != seen.object.get("metadata", {}).get("uid"):
        return False
    received = parse_time(event.get("requestReceivedTimestamp"))
    if created and received and received < created - CREATE_WINDOW:
        return False  # an earlier pod of the same name
    if ref.get("name") == seen.name:
        return True
    return (not ref.get("name") and event.get("verb") == "create" and not ref.get("subresource")
            and created is not None and received is not None and abs(received - created) <= CREATE_WINDOW)


def _from_audit(seen: Observed, cast: _Cast) -> list[Step]:
    created = parse_time(seen.object.get("metadata", {}).get("creationTimestamp"))
    steps: list[Step] = []
    unnamed_create_taken = False
    for event in sorted(seen.audit or [], key=lambda e: e.get("requestReceivedTimestamp") or ""):
        if not _is_this_pod(event, seen, created):
            continue
        ref = event.get("objectRef") or {}
        if not ref.get("name"):
            if unnamed_create_taken:
                continue
            unnamed_create_taken = True
        verb = event.get("verb", "?")
        user = (event.get("user") or {}).get("username", "?")
        who = cast.user(user)
        resource = f"pods/{seen.name}" + (f"/{ref['subresource']}" if ref.get("subresource") else "")
        code = (event.get("responseStatus") or {}).get("code")
        at = event.get("requestReceivedTimestamp") or event.get("stageTimestamp") or ""
        steps.append(Step(at, who, API, f"{verb} {resource}" + (f" -> {code}" if code else ""), "audit"))
        if verb in WRITE_VERBS and code and 200 <= int(code) < 300:
            rv = ((event.get("responseObject") or {}).get("metadata") or {}).get("resourceVersion", "")
            steps.append(Step(event.get("stageTimestamp") or at, API, ETCD,
                              f"write /registry/pods/{seen.namespace}/{seen.name}", "audit", "write", str(rv)))
    return _collapse(steps)


def _collapse(steps: list[Step]) -> list[Step]:
    """Repeated identical reads (a kubelet GETs the pod before each status patch; `kubectl wait` watches) become
    one step with a count: the diagram shows the pattern, the timeline still says how often."""
    out: list[Step] = []
    count = 1
    for step in steps:
        prev = out[-1] if out else None
        if prev and step.kind == "call" and (prev.frm, prev.to, _base(prev.text)) == (step.frm, step.to, step.text) \
                and step.text.split()[0] in ("get", "list", "watch"):
            count += 1
            prev.text = f"{step.text} (x{count})"
            continue
        count = 1
        out.append(step)
    return out


def _base(text: str) -> str:
    return text.rsplit(" (x", 1)[0]


def _from_object(seen: Observed, cast: _Cast, node: str) -> list[Step]:
    """Without the audit log: the creation, the binding and the last status write, from the object itself."""
    meta = seen.object.get("metadata", {})
    steps: list[Step] = []
    managed = sorted((m for m in meta.get("managedFields") or [] if isinstance(m, dict)),
                     key=lambda m: m.get("time") or "")
    creator = next((m for m in managed if m.get("manager") not in ("kubelet", "kube-scheduler")), None)
    path = f"/registry/pods/{seen.namespace}/{seen.name}"
    created = meta.get("creationTimestamp", "")
    if creator:
        who = cast.manager(creator.get("manager", "?"), node)
        steps.append(Step(created, who, API, f"create pods/{seen.name} (manager {creator.get('manager')})",
                          "managedFields"))
    elif meta.get("ownerReferences"):
        steps.append(Step(created, cast.manager("kube-controller-manager", node), API,
                          f"create pods/{seen.name} (owner {meta['ownerReferences'][0].get('kind')})", "object"))
    else:
        steps.append(Step(created, cast.manager("kubectl", node), API, f"create pods/{seen.name}", "object"))
    steps.append(Step(created, API, ETCD, f"write {path}", "object", "write"))
    for event in seen.events:
        if event.get("reason") == "Scheduled":
            at = _event_time(event)
            steps.append(Step(at, cast.manager("kube-scheduler", node), API, f"create pods/{seen.name}/binding",
                              "event"))
            steps.append(Step(at, API, ETCD, f"write {path} (nodeName: {node})", "event", "write"))
    for m in managed:
        if m.get("manager") == "kubelet" and node:
            steps.append(Step(m.get("time", ""), cast.manager("kubelet", node), API,
                              f"patch pods/{seen.name}/status (last status write)", "managedFields"))
            steps.append(Step(m.get("time", ""), API, ETCD, f"write {path}", "managedFields", "write"))
    return steps


def _event_time(event: dict) -> str:
    return event.get("lastTimestamp") or event.get("eventTime") or event.get("firstTimestamp") or \
        (event.get("metadata") or {}).get("creationTimestamp", "")


def _from_events(seen: Observed, cast: _Cast) -> list[Step]:
    steps = []
    for event in [*seen.owner_events, *seen.events]:
        who = cast.reporter(event)
        if who is None:
            continue
        count = event.get("count") or 1
        text = f"{event.get('reason', '?')}: {event.get('message', '')}".strip() + (f" (x{count})" if count > 1 else "")
        steps.append(Step(_event_time(event), who, who, text, "event", "note"))
    return steps


def _with_watches(steps: list[Step], cast: _Cast, node: str) -> list[Step]:
    """The scheduler and the kubelet learn of the pod through their watches on the API server: draw that
    notification before each one's first step (no log records it, so it is marked inferred)."""
    out: list[Step] = []
    told: set[str] = set()
    for step in steps:
        actor = step.frm
        if actor not in told and (actor == "S" or actor.startswith("K_")) and step.kind in ("call", "note"):
            told.add(actor)
            what = "new pod without a node" if actor == "S" else f"pod bound to {node}"
            out.append(Step(step.at, API, actor, f"watch event: {what}", "inferred", "watch"))
        out.append(step)
    return out


def _mark_revision(steps: list[Step], seen: Observed, resource_version: str) -> None:
    writes = [s for s in steps if s.kind == "write" and "/registry/pods/" in s.text]
    if writes and resource_version:
        if not writes[-1].revision:
            writes[-1].revision = str(resource_version)
        writes[-1].text += f" (mod_revision {resource_version} = resourceVersion)"


def _leader_notes(seen: Observed, cast: _Cast) -> list[Step]:
    steps = []
    for key, lease in seen.leases.items():
        if not key.startswith("kube-system/"):
            continue
        spec = lease.get("spec") or {}
        holder = spec.get("holderIdentity") or "nobody"
        component = key.split("/", 1)[1]
        if component == "kube-controller-manager" and "C" not in cast.labels:
            continue  # no controller took part: its leadership is not part of this pod's story
        who = cast.manager(component, "")
        steps.append(Step(spec.get("renewTime", ""), who, who,
                          f"leader now: Lease {key} held by {holder}", "lease", "note"))
    return steps


def _node_lease_note(seen: Observed, cast: _Cast, node: str) -> list[Step]:
    lease = seen.leases.get(f"kube-node-lease/{node}")
    if not lease:
        return []
    spec = lease.get("spec") or {}
    who = cast.manager("kubelet", node)
    return [Step(spec.get("renewTime", ""), who, API,
                 f"renew Lease kube-node-lease/{node} (heartbeat every {spec.get('leaseDurationSeconds', 40) // 4}s)",
                 "lease")]


# ------------------------------------------------------------------ beyond the pod: its Service's hops

CONDITION_ORDER = ("PodScheduled", "Initialized", "ContainersReady", "Ready")


def _from_conditions(seen: Observed, cast: _Cast, node: str) -> list[Step]:
    """The pod's conditions as they became True (lastTransitionTime, whole seconds): PodScheduled is written with
    the Binding, the others by the kubelet's status updates."""
    steps = []
    conditions = {c.get("type"): c for c in (seen.object.get("status") or {}).get("conditions") or []
                  if isinstance(c, dict)}
    for kind in CONDITION_ORDER:
        c = conditions.get(kind)
        if not c or c.get("status") != "True" or not c.get("lastTransitionTime"):
            continue
        who = API if kind == "PodScheduled" or not node else cast.manager("kubelet", node)
        steps.append(Step(c["lastTransitionTime"], who, who, f"condition {kind}=True", "status", "note"))
    return steps


def slice_time(endpoint_slice: dict) -> str:
    """When the EndpointSlice controller last changed the slice: its `endpoints.kubernetes.io/last-change-trigger-time`
    annotation (the pod or Service change it acted on), else its newest managedFields entry."""
    meta = endpoint_slice.get("metadata") or {}
    trigger = (meta.get("annotations") or {}).get("endpoints.kubernetes.io/last-change-trigger-time")
    if trigger:
        return trigger
    times = sorted(m.get("time") or "" for m in meta.get("managedFields") or [] if isinstance(m, dict))
    return times[-1] if times else meta.get("creationTimestamp", "")


def ready_in_slice(endpoint_slice: dict, pod_ip: str) -> bool | None:
    """True: pod_ip is a ready endpoint of the slice; False: listed, not ready; None: not listed. An unset
    `ready` means ready (the API's own rule)."""
    for ep in endpoint_slice.get("endpoints") or []:
        if pod_ip in (ep.get("addresses") or []):
            return (ep.get("conditions") or {}).get("ready", True) is not False
    return None


def _from_slices(seen: Observed, cast: _Cast) -> tuple[list[Step], list[str]]:
    pod_ip = (seen.object.get("status") or {}).get("podIP") or ""
    if seen.beyond_unread:
        return [], [seen.beyond_unread]
    if not seen.services:
        labelled = bool(seen.object.get("metadata", {}).get("labels"))
        return [], ["no Service selects this pod's labels: no EndpointSlice lists it and kube-proxy has no rule for "
                    "it"] if labelled else []
    if not pod_ip:
        return [], ["the pod has no IP yet: no EndpointSlice lists it"]
    steps, notes = [], []
    for svc in seen.services:
        name = (svc.get("metadata") or {}).get("name", "")
        mine = [s for s in seen.slices
                if ((s.get("metadata") or {}).get("labels") or {}).get("kubernetes.io/service-name") == name]
        listed = [(s, ready_in_slice(s, pod_ip)) for s in mine]
        ready = [s for s, r in listed if r]
        if not ready:
            state = "listed not ready" if any(r is False for _, r in listed) else "not listed"
            notes.append(f"Service {name}: the pod's IP {pod_ip} is {state} in its EndpointSlices")
            continue
        s = ready[0]
        who = cast.manager("endpointslice-controller", "")
        steps.append(Step(slice_time(s), who, API, f"update EndpointSlice {(s.get('metadata') or {}).get('name')} "
                          f"(Service {name}): {pod_ip} ready", "endpointslice"))
        steps.append(Step(slice_time(s), API, ETCD, f"write /registry/endpointslices/{seen.namespace}/"
                          f"{(s.get('metadata') or {}).get('name')}", "endpointslice", "write",
                          str((s.get("metadata") or {}).get("resourceVersion", ""))))
    return steps, notes


def _from_proxy(seen: Observed, cast: _Cast, steps: list[Step]) -> tuple[list[Step], list[str]]:
    """kube-proxy on each node: told of the slice by its watch, it writes the endpoint chain that DNATs to the pod.
    The rules keep no time: drawn after the slice's update, which they follow."""
    slice_steps = [s for s in steps if s.source == "endpointslice" and s.kind == "call"]
    if not slice_steps or not seen.proxy:
        return [], []
    after = slice_steps[-1].at
    out, notes = [], []
    for node, found in seen.proxy.items():
        if found.get("error"):
            notes.append(f"kube-proxy's rules on {node} could not be read: {found['error']}")
            continue
        who = cast.proxy(node)
        out.append(Step(after, API, who, "watch event: EndpointSlice changed", "inferred", "watch"))
        chains = found.get("chains") or []
        if not chains:
            out.append(Step(after, who, who, f"no {found.get('mode') or 'iptables'} rule DNATs to the pod's IP",
                            "kube-proxy", "note"))
        for c in chains:
            out.append(Step(after, who, who, f"{c['chain']} ({c['service']}) DNAT to {c['destination']} "
                            f"[{found.get('mode') or 'iptables'}]", "kube-proxy", "note"))
    return out, notes
