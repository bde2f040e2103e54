"""Lab 8 — The scheduler. Every check only observes: the cluster through the API with the control plane's
admin.conf, the control plane's clock over SSH, and the answers the learner recorded.

What the notebook leaves behind in the namespace `lab08`, and what each pod proves:

- `manual`: created while the scheduler was stopped and bound to the worker by hand with a Binding
  (POST .../pods/manual/binding). It is on the worker, and no `Scheduled` event names it: the scheduler never saw
  it. A pod created with `spec.nodeName` already set also has no `Scheduled` event, but it skipped the Binding
  the lab is about: its managedFields show a client writing spec.nodeName (a Binding writes nodeName through the
  binding subresource, which no field manager records on the pod).
- `after`: created once the scheduler was back; the scheduler placed it (a `Scheduled` event from
  default-scheduler for this very pod, by UID).
- `too-big`: asks for more CPU than any node has; it stays Pending, its PodScheduled condition is
  False/Unschedulable with the same text as the FailedScheduling event ("0/2 nodes are available: ...
  Insufficient cpu").

Events expire (kube-apiserver --event-ttl, 1 h by default). The condition of `too-big` does not, but the checks
on `manual` and `after` need events: when a pod has no events left at all (not even the kubelet's), they fail
saying the events are gone and how to make them again, rather than guess.
"""

import calendar
import re

from kubelab.engine import check, expect_equal, expect_true, fail, read_or_none

NAMESPACE = "lab08"
MANUAL_POD = "manual"        # bound by hand while the scheduler was stopped
AFTER_POD = "after"          # scheduled by the scheduler once it was back
UNSCHEDULABLE_POD = "too-big"
UNSCHEDULABLE_REASON = "Insufficient cpu"   # the filter the notebook asks the pod to fail on every node
SCHEDULER = "default-scheduler"
SCHEDULER_LEASE = ("kube-system", "kube-scheduler")
LEASE_SLACK_S = 5            # clock reading and the API call are a moment apart
EVENT_TTL_DEFAULT = "1h"
AVAILABLE = re.compile(r"(\d+)/(\d+) nodes are available")


# ------------------------------------------------------------------------------------------------
# helpers (no checks)
# ------------------------------------------------------------------------------------------------

def _pod(kube, name):
    pod = read_or_none(kube.core.read_namespaced_pod, name, NAMESPACE)
    if pod is None:
        fail(f"pod {NAMESPACE}/{name}", "none", what="the notebook's pod")
    return pod


def _events(kube, pod):
    """The events about this pod (this UID: not a deleted pod of the same name), oldest first."""
    items = kube.core.list_namespaced_event(
        NAMESPACE, field_selector=f"involvedObject.kind=Pod,involvedObject.name={pod.metadata.name}").items
    mine = [e for e in items if e.involved_object.uid in (None, "", pod.metadata.uid)]
    return sorted(mine, key=lambda e: str(e.last_timestamp or e.event_time or e.metadata.creation_timestamp))


def _from(event):
    """Who reported an event: source.component (core/v1 recorders) or reportingComponent (events.k8s.io/v1,
    which the scheduler uses since 1.19 and which leaves `source` empty)."""
    return (event.source.component if event.source and event.source.component else None) \
        or event.reporting_component or "(unknown)"


def _scheduled_events(events):
    return [e for e in events if e.reason == "Scheduled" and _from(e) == SCHEDULER]


def _event_ttl(kube):
    pods = kube.core.list_namespaced_pod("kube-system", label_selector="component=kube-apiserver").items
    for p in pods:
        args = list(p.spec.containers[0].command or []) + list(p.spec.containers[0].args or [])
        for a in args:
            if a.startswith("--event-ttl="):
                return a.split("=", 1)[1]
    return EVENT_TTL_DEFAULT


def _no_events_left(kube, pod, now):
    age = now - calendar.timegm(pod.metadata.creation_timestamp.utctimetuple())
    fail("the pod's events (kubectl get events)",
         f"none left: the pod is {age // 60} min old and the API server keeps events {_event_ttl(kube)} "
         "(--event-ttl)", what=f"events of {NAMESPACE}/{pod.metadata.name}")


def _now(hosts, course):
    return int(hosts[course.control_plane.name].run("date +%s").stdout.strip())


def _workers(course):
    return sorted(n.name for n in course.nodes if n.role != "control-plane")


def node_name_writer(pod):
    """The field manager that wrote spec.nodeName into the pod, or None. A Binding sets nodeName through the
    binding subresource, which records no manager on the pod; `nodeName:` in the manifest is recorded under the
    client that created or applied it (kubectl-create, kubectl-client-side-apply, ...)."""
    for entry in pod.metadata.managed_fields or []:
        fields = entry.fields_v1 or {}
        if "f:nodeName" in (fields.get("f:spec") or {}):
            return entry.manager or "(unnamed manager)"
    return None


def unschedulable_condition(pod):
    cond = next((c for c in (pod.status.conditions or []) if c.type == "PodScheduled"), None)
    return (cond.status, cond.reason or "", cond.message or "") if cond else None


def unavailable_nodes(message):
    """How many nodes a FailedScheduling message says were not available ("0/2 nodes are available: ..." → 2)."""
    m = AVAILABLE.search(message or "")
    return int(m.group(2)) - int(m.group(1)) if m else None


# ------------------------------------------------------------------------------------------------
# the scheduler is back
# ------------------------------------------------------------------------------------------------

@check("The scheduler runs again: its static pod on the control plane is Ready", on="cluster", points=2,
       wait_s=60, interval_s=5,
       hint="Put the manifest back where the kubelet reads static pods: `sudo mv /etc/kubernetes/kube-scheduler.yaml "
            "/etc/kubernetes/manifests/` (wherever you moved it). The kubelet starts it within seconds; "
            "`kubectl -n kube-system get pods -l component=kube-scheduler` shows it, `sudo crictl ps --name "
            "kube-scheduler` on the control plane too.")
def test_scheduler_running(kube, course):
    cp = course.control_plane.name
    pods = kube.core.list_namespaced_pod("kube-system", label_selector="component=kube-scheduler").items
    expect_true(bool(pods), f"the kube-scheduler static pod on {cp}",
                "none: its manifest is not in /etc/kubernetes/manifests", what="kube-scheduler")
    pod = pods[0]
    ready = next((c.status for c in (pod.status.conditions or []) if c.type == "Ready"), "Unknown")
    expect_equal({"node": pod.spec.node_name, "Ready": ready}, {"node": cp, "Ready": "True"},
                 what=f"pod {pod.metadata.name}")


@check("The scheduler leads: it holds the Lease kube-system/kube-scheduler and renews it", on="cluster", points=2,
       needs=["scheduler_running"], wait_s=60, interval_s=5,
       hint="A started scheduler first acquires the Lease (the old holder's lease must expire: ~15-25 s), then "
            "renews it every 2 s. `kubectl -n kube-system get lease kube-scheduler -o yaml`: holderIdentity "
            "<control-plane>_<id> and a renewTime that moves. If it does not, read its log: "
            "`kubectl -n kube-system logs kube-scheduler-<control-plane>`.")
def test_scheduler_leading(kube, hosts, course):
    cp = course.control_plane.name
    now = _now(hosts, course)
    lease = read_or_none(kube.coordination.read_namespaced_lease, SCHEDULER_LEASE[1], SCHEDULER_LEASE[0])
    if lease is None:
        fail("the Lease kube-system/kube-scheduler", "none", what="scheduler leader election")
    holder = lease.spec.holder_identity or "(none)"
    expect_true(holder.startswith(f"{cp}_"), f"{cp}_<id> (the scheduler on {cp})", holder,
                what="holderIdentity of kube-system/kube-scheduler")
    duration = lease.spec.lease_duration_seconds or 15
    renewed = lease.spec.renew_time
    age = now - calendar.timegm(renewed.utctimetuple()) if renewed else None
    expect_true(age is not None and age <= duration + LEASE_SLACK_S,
                f"renewed within its leaseDurationSeconds ({duration} s)",
                "never renewed" if age is None else f"renewed {age} s ago: its holder stopped",
                what="renewTime of kube-system/kube-scheduler")


# ------------------------------------------------------------------------------------------------
# the pods the learner left behind
# ------------------------------------------------------------------------------------------------

@check(f"Pod {MANUAL_POD} was bound to the worker by hand: a Binding, no Scheduled event", on="cluster", points=2,
       hint=f"With the scheduler stopped, create {MANUAL_POD} without nodeName; it stays Pending with no event. Then "
            "POST a Binding (target: the worker Node) to /api/v1/namespaces/lab08/pods/manual/binding, e.g. "
            "`kubectl create --raw /api/v1/namespaces/lab08/pods/manual/binding -f binding.json`. Events live 1 h: "
            "if they are gone, or the scheduler placed the pod, delete it and do Steps 3-4 again (scheduler out, "
            "create, bind, scheduler back).")
def test_manual_binding(kube, hosts, course):
    pod = _pod(kube, MANUAL_POD)
    workers = _workers(course)
    on = pod.spec.node_name or "(not bound: still Pending)"
    expect_true(on in workers, f"a worker ({', '.join(workers)})", on, what=f"node of {NAMESPACE}/{MANUAL_POD}")
    writer = node_name_writer(pod)
    expect_true(writer is None, "nodeName set by a Binding (POST .../pods/manual/binding)",
                f"spec.nodeName written in the pod's manifest (field manager {writer}): that skips the scheduler "
                "but is not a Binding", what=f"how {MANUAL_POD} got its node")
    events = _events(kube, pod)
    if not events:
        _no_events_left(kube, pod, _now(hosts, course))
    scheduled = _scheduled_events(events)
    expect_true(not scheduled, "no Scheduled event (nobody but you placed it)",
                scheduled[0].message if scheduled else "", what=f"events of {NAMESPACE}/{MANUAL_POD}")


@check(f"Pod {AFTER_POD}, created with the scheduler back, was placed by the scheduler", on="cluster", points=2,
       hint=f"Once the scheduler leads again, create {AFTER_POD} (no nodeName) after {MANUAL_POD}. "
            f"`kubectl -n lab08 get events --field-selector involvedObject.name={AFTER_POD}` shows "
            f"`Scheduled ... Successfully assigned lab08/{AFTER_POD} to <node>` from default-scheduler. Events live "
            "1 h: if they are gone, delete the pod and create it again.")
def test_scheduled_normally(kube, hosts, course):
    pod = _pod(kube, AFTER_POD)
    manual = _pod(kube, MANUAL_POD)
    expect_true(pod.metadata.creation_timestamp > manual.metadata.creation_timestamp,
                f"created after {MANUAL_POD} ({manual.metadata.creation_timestamp:%H:%M:%S})",
                f"created {pod.metadata.creation_timestamp:%H:%M:%S}", what=f"{NAMESPACE}/{AFTER_POD}")
    expect_true(bool(pod.spec.node_name), "a node", "(none: still Pending)", what=f"node of {NAMESPACE}/{AFTER_POD}")
    events = _events(kube, pod)
    if not events:
        _no_events_left(kube, pod, _now(hosts, course))
    scheduled = _scheduled_events(events)
    seen = ", ".join(f"{e.reason} ({_from(e)})" for e in events)
    expect_true(bool(scheduled), f"a Scheduled event from {SCHEDULER}", seen, what=f"events of {NAMESPACE}/{AFTER_POD}")
    expect_true(pod.spec.node_name in (scheduled[-1].message or ""),
                f"Successfully assigned {NAMESPACE}/{AFTER_POD} to {pod.spec.node_name}", scheduled[-1].message,
                what="the Scheduled event")


@check(f"Pod {UNSCHEDULABLE_POD} fits no node, for lack of CPU", on="cluster", points=2,
       hint=f"{UNSCHEDULABLE_POD} must ask (resources.requests.cpu) for more CPU than any node has, and tolerate the "
            "control plane's taint so that CPU is the reason on every node. Its PodScheduled condition (and the "
            "FailedScheduling event) says why it stays Pending: `kubectl -n lab08 describe pod too-big`.")
def test_unschedulable(kube):
    pod = _pod(kube, UNSCHEDULABLE_POD)
    expect_true(not pod.spec.node_name, "no node (Pending)", f"scheduled on {pod.spec.node_name}",
                what=f"{NAMESPACE}/{UNSCHEDULABLE_POD}")
    cond = unschedulable_condition(pod)
    expect_true(cond is not None and cond[:2] == ("False", "Unschedulable"),
                "PodScheduled=False, reason Unschedulable (the scheduler tried and found no node)",
                f"PodScheduled={cond[0]}, reason {cond[1] or '(none)'}" if cond else
                "no PodScheduled condition: no scheduler has looked at it (is it running?)",
                what=f"{NAMESPACE}/{UNSCHEDULABLE_POD}")
    expect_true(UNSCHEDULABLE_REASON in cond[2], f"a message naming '{UNSCHEDULABLE_REASON}'", cond[2][:300],
                what=f"why {UNSCHEDULABLE_POD} is Pending")


# ------------------------------------------------------------------------------------------------
# answers the learner found
# ------------------------------------------------------------------------------------------------

@check("The scheduler's leader you found is the Lease's holder", on="cluster", points=1, needs=["scheduler_leading"],
       hint="After putting the scheduler back and seeing it lead: "
            "`kubectl -n kube-system get lease kube-scheduler -o jsonpath='{.spec.holderIdentity}'`. A scheduler "
            "restarted since (a reboot) holds it under a new identity: record it again.")
def test_lease_holder_answer(kube, answers):
    lease = kube.coordination.read_namespaced_lease(SCHEDULER_LEASE[1], SCHEDULER_LEASE[0])
    answers.expect("lease_holder", lease.spec.holder_identity or "",
                   where="holderIdentity of the Lease kube-system/kube-scheduler")


@check(f"The node you found for {AFTER_POD} is the one the scheduler chose", on="cluster", points=1,
       hint=f"The Scheduled event says it (`Successfully assigned lab08/{AFTER_POD} to <node>`), "
            f"and so does `kubectl -n lab08 get pod {AFTER_POD} -o wide`.")
def test_scheduled_node_answer(kube, answers):
    pod = _pod(kube, AFTER_POD)
    answers.expect("scheduled_node", pod.spec.node_name or "", where=f"the node of {NAMESPACE}/{AFTER_POD}")


@check(f"The number of unavailable nodes you found is what {UNSCHEDULABLE_POD}'s FailedScheduling says",
       on="cluster", points=1,
       hint=f"`kubectl -n lab08 describe pod {UNSCHEDULABLE_POD}`: the message starts '0/N nodes are available:' and "
            "lists why, node by node; N minus the available ones is the answer.")
def test_unavailable_nodes_answer(kube, answers):
    cond = unschedulable_condition(_pod(kube, UNSCHEDULABLE_POD))
    live = unavailable_nodes(cond[2]) if cond else None
    expect_true(live is not None, "a message '0/N nodes are available: ...'", cond[2] if cond else "none",
                what=f"PodScheduled condition of {UNSCHEDULABLE_POD}")
    answers.expect("unavailable_nodes", live, where=f"the unavailable nodes in {UNSCHEDULABLE_POD}'s FailedScheduling")
