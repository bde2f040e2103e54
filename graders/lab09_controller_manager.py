"""Lab 9 — The controller manager. Every check only observes: the cluster through the API with the control plane's
admin.conf, the control plane's clock and manifest folder over SSH, and the answers the learner recorded.

What the notebook leaves behind, and what each check reads from it:

- the Deployment `web` in the namespace `lab09`, scaled to WEB_REPLICAS while the controller manager was stopped:
  its pods owned by one ReplicaSet (controller: true) that the Deployment owns (controller: true, same uid), all
  of them Ready once the controller manager caught up (observedGeneration == generation);
- the ReplicaSet of the Deployment `keep`, deleted with `--cascade=orphan`: no Deployment `keep`, a ReplicaSet
  labelled app=keep with no ownerReferences, its pods still Running and still owned by it;
- the controller manager back from its manifest: the static pod Ready, the Lease kube-system/kube-controller-manager
  held by the control plane and renewed lately;
- the worker whose kubelet was stopped: Ready again, its node Lease renewed, no node.kubernetes.io/unreachable
  or not-ready taint left;
- answers (recomputed from the live cluster, never shown): the pod-template-hash of `web`'s ReplicaSet, the holder
  of the controller manager's Lease, and the moment the worker turned Ready again.
"""

import calendar
from datetime import datetime, timezone

from kubelab.engine import check, expect_equal, expect_true, fail, read_or_none

LAB = "lab09"
NAMESPACE = "lab09"
WEB = "web"                        # the Deployment the learner scales and traces
WEB_REPLICAS = 4                   # its replicas after the scale-up made while the controller manager was stopped
KEEP = "keep"                      # the Deployment deleted with --cascade=orphan
CM_LEASE = "kube-controller-manager"
CM_MANIFEST = "/etc/kubernetes/manifests/kube-controller-manager.yaml"
# kube-controller-manager renews its Lease every 2 s (--leader-elect-retry-period), within 10 s (renew deadline);
# a Lease older than its 15 s duration plus slack means no leader.
CM_LEASE_FRESH_S = 30
# the kubelet renews its node Lease every 10 s; node-monitor-grace-period is 40 s (1.20), 50 s since 1.32
NODE_LEASE_FRESH_S = 40
NODE_TAINTS = ("node.kubernetes.io/unreachable", "node.kubernetes.io/not-ready")


# ------------------------------------------------------------------------------------------------
# helpers (no checks)
# ------------------------------------------------------------------------------------------------

def _controller(obj):
    """The ownerReference with controller: true, or None."""
    return next((r for r in (obj.metadata.owner_references or []) if r.controller), None)


def _now(hosts, course):
    """The control plane's clock (the Lease times are the API server's)."""
    return int(hosts[course.control_plane.name].run("date +%s").stdout.strip())


def _age(now, when):
    return now - calendar.timegm(when.utctimetuple()) if when else None


def _web_replicasets(kube, deploy):
    return [rs for rs in kube.apps.list_namespaced_replica_set(NAMESPACE).items
            if (_controller(rs) is not None and _controller(rs).kind == "Deployment"
                and _controller(rs).uid == deploy.metadata.uid)]


def _current_replicaset(kube, deploy):
    """The ReplicaSet the Deployment keeps its pods in: owned by it, with the most replicas (the only one with
    replicas after a finished rollout)."""
    owned = _web_replicasets(kube, deploy)
    active = sorted(owned, key=lambda rs: (rs.spec.replicas or 0, rs.metadata.creation_timestamp), reverse=True)
    return active[0] if active else None


def _workers(course):
    return [n for n in course.nodes if n.role == "worker"]


def _ready_condition(node):
    return next((c for c in (node.status.conditions or []) if c.type == "Ready"), None)


def _same_instant(given, live):
    """An RFC 3339 time the learner copied equals the live one to the second (any offset, with or without Z)."""
    try:
        parsed = datetime.fromisoformat(given.strip().replace("Z", "+00:00"))
    except ValueError:
        return False
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    return abs((parsed - live).total_seconds()) < 1


# ------------------------------------------------------------------------------------------------
# reconciliation: Deployment -> ReplicaSet -> Pods
# ------------------------------------------------------------------------------------------------

@check(f"The pods of Deployment {NAMESPACE}/{WEB} are owned by its ReplicaSet, which the Deployment owns", on="cluster",
       points=2,
       hint=f"Create the Deployment `{WEB}` in the namespace `{NAMESPACE}` (Step 2) and leave it there. Follow the "
            f"chain yourself: `kubectl -n {NAMESPACE} get pods -o jsonpath='{{..ownerReferences}}'` names a "
            "ReplicaSet, and the ReplicaSet's ownerReferences name the Deployment (controller: true, the same uid). "
            "A pod with no owner was created by hand; a ReplicaSet with no owner was orphaned.")
def test_ownership_chain(kube):
    deploy = read_or_none(kube.apps.read_namespaced_deployment, WEB, NAMESPACE)
    if deploy is None:
        fail(f"Deployment {NAMESPACE}/{WEB}", "none", what="kubectl get deploy")
    rs = _current_replicaset(kube, deploy)
    expect_true(rs is not None, f"a ReplicaSet whose controller ownerReference is Deployment {WEB} "
                                f"(uid {deploy.metadata.uid})", "none", what=f"ReplicaSets in {NAMESPACE}")
    selector = ",".join(f"{k}={v}" for k, v in (deploy.spec.selector.match_labels or {}).items())
    pods = [p for p in kube.core.list_namespaced_pod(NAMESPACE, label_selector=selector).items
            if not p.metadata.deletion_timestamp]
    expect_true(bool(pods), f"pods matching {selector}", "none", what=f"pods of {WEB}")
    owners = {}
    for p in pods:
        ref = _controller(p)
        owners[p.metadata.name] = (f"{ref.kind}/{ref.name}" if ref is not None else "(no controller owner)")
    wanted = {p.metadata.name: f"ReplicaSet/{rs.metadata.name}" for p in pods}
    expect_equal(owners, wanted, what=f"controller owner of each pod of {WEB}")
    uids = {_controller(p).uid for p in pods}
    expect_equal(uids, {rs.metadata.uid}, what="the uid in the pods' ownerReferences (the ReplicaSet's uid)")


@check(f"Deployment {NAMESPACE}/{WEB} caught up with its scale-up to {WEB_REPLICAS} replicas", on="cluster", points=2,
       needs=["ownership_chain"], wait_s=45, interval_s=3,
       hint=f"Scale `{WEB}` to {WEB_REPLICAS} (`kubectl -n {NAMESPACE} scale deploy/{WEB} --replicas={WEB_REPLICAS}`). "
            "The API server only stores the new spec: the Deployment and ReplicaSet controllers inside "
            "kube-controller-manager create the pods. An observedGeneration behind the generation means no "
            f"controller manager runs: move its manifest back into /etc/kubernetes/manifests.")
def test_scaled_up(kube):
    deploy = kube.apps.read_namespaced_deployment(WEB, NAMESPACE)
    st = deploy.status
    got = {"spec.replicas": deploy.spec.replicas, "observedGeneration": st.observed_generation or 0,
           "readyReplicas": st.ready_replicas or 0}
    expect_equal(got, {"spec.replicas": WEB_REPLICAS, "observedGeneration": deploy.metadata.generation,
                       "readyReplicas": WEB_REPLICAS}, what=f"Deployment {WEB}")


# ------------------------------------------------------------------------------------------------
# the garbage collector: an orphan
# ------------------------------------------------------------------------------------------------

@check(f"The ReplicaSet of Deployment {KEEP} is an orphan that still runs its pods", on="cluster", points=2,
       hint=f"Delete the Deployment `{KEEP}` so that the garbage collector leaves its dependents alone: "
            f"`kubectl -n {NAMESPACE} delete deploy {KEEP} --cascade=orphan`. A plain `kubectl delete` cascades "
            "(background): the ReplicaSet and its pods go with it, and you have to create the Deployment again "
            "(Step 5) and orphan it.")
def test_orphaned_replicaset(kube):
    left = read_or_none(kube.apps.read_namespaced_deployment, KEEP, NAMESPACE)
    expect_true(left is None, f"no Deployment {KEEP} (deleted)", f"Deployment {KEEP} still exists",
                what=f"kubectl -n {NAMESPACE} get deploy {KEEP}")
    sets = kube.apps.list_namespaced_replica_set(NAMESPACE, label_selector=f"app={KEEP}").items
    if not sets:
        fail(f"a ReplicaSet labelled app={KEEP}, left without an owner",
             "none: it went with its Deployment (a cascading delete)", what=f"ReplicaSets in {NAMESPACE}")
    rs = sets[0]
    refs = [f"{r.kind}/{r.name}" for r in (rs.metadata.owner_references or [])]
    expect_equal(refs, [], what=f"ownerReferences of ReplicaSet {rs.metadata.name}")
    pods = [p for p in kube.core.list_namespaced_pod(NAMESPACE, label_selector=f"app={KEEP}").items
            if _controller(p) is not None and _controller(p).uid == rs.metadata.uid]
    running = [p.metadata.name for p in pods if p.status.phase == "Running"]
    want = rs.spec.replicas or 0
    expect_true(want > 0 and len(running) == want,
                f"{max(want, 1)} Running pod(s) owned by ReplicaSet {rs.metadata.name}",
                f"{len(running)} Running of {len(pods)} owned (spec.replicas {want})",
                what=f"pods of ReplicaSet {rs.metadata.name}")


# ------------------------------------------------------------------------------------------------
# the controller manager itself
# ------------------------------------------------------------------------------------------------

@check("The controller manager runs from its manifest and holds the leader Lease", on="cluster", points=2,
       wait_s=45, interval_s=3,
       hint=f"Put its manifest back: `sudo mv /etc/kubernetes/kube-controller-manager.yaml {CM_MANIFEST}`. The "
            "kubelet starts the static pod within seconds; the new process takes the Lease "
            "kube-system/kube-controller-manager once the old holder's has run out (15 s). "
            "`kubectl -n kube-system get lease kube-controller-manager -o yaml` shows holderIdentity and renewTime.")
def test_controller_manager_leading(kube, hosts, course):
    cp = course.control_plane
    manifest = hosts[cp.name].run("sudo -n test -f %s", CM_MANIFEST).rc == 0
    expect_true(manifest, CM_MANIFEST, "missing (moved out)", what="the controller manager's static pod manifest")
    pod_name = f"kube-controller-manager-{cp.name}"
    pod = read_or_none(kube.core.read_namespaced_pod, pod_name, "kube-system")
    if pod is None:
        fail(f"pod kube-system/{pod_name} Ready", "none", what="the controller manager's static pod")
    ready = next((c.status for c in (pod.status.conditions or []) if c.type == "Ready"), "Unknown")
    expect_equal(ready, "True", what=f"Ready of kube-system/{pod_name}")
    lease = read_or_none(kube.coordination.read_namespaced_lease, CM_LEASE, "kube-system")
    if lease is None:
        fail(f"Lease kube-system/{CM_LEASE}", "none", what="leader election")
    holder = lease.spec.holder_identity or "(none)"
    expect_true(holder.startswith(f"{cp.name}_"), f"{cp.name}_<id>", holder, what=f"holder of Lease {CM_LEASE}")
    age = _age(_now(hosts, course), lease.spec.renew_time)
    expect_true(age is not None and age <= CM_LEASE_FRESH_S, f"renewed within {CM_LEASE_FRESH_S}s",
                f"renewed {age}s ago: no controller manager renews it" if age is not None else "never renewed",
                what=f"Lease kube-system/{CM_LEASE}")


# ------------------------------------------------------------------------------------------------
# the node lifecycle controller: the worker back
# ------------------------------------------------------------------------------------------------

@check("It is Ready again, its kubelet renews its Lease, and no unreachable taint is left", on="worker", points=2,
       wait_s=45, interval_s=3,
       hint="Start its kubelet again: `sudo systemctl start kubelet` on the worker. It renews its Lease in "
            "kube-node-lease at once and posts Ready; the node lifecycle controller then removes the "
            "node.kubernetes.io/unreachable taints it added. `kubectl describe node <worker>` shows conditions "
            "and taints; `journalctl -u kubelet` why a kubelet does not start.")
def test_worker_back(host, kube, hosts, course, node):
    n = read_or_none(kube.core.read_node, node.name)
    if n is None:
        fail(f"a Node {node.name}", "none", what="kubectl get node")
    ready = _ready_condition(n)
    if ready is None or ready.status != "True":
        why = f"Ready={ready.status if ready else 'Unknown'}"
        if ready is not None and ready.reason:
            why += f" ({ready.reason})"
        fail("Ready=True", why, what=f"node {node.name}")
    lease = read_or_none(kube.coordination.read_namespaced_lease, node.name, "kube-node-lease")
    age = _age(_now(hosts, course), lease.spec.renew_time) if lease is not None else None
    expect_true(age is not None and age <= NODE_LEASE_FRESH_S, f"renewed within {NODE_LEASE_FRESH_S}s",
                f"renewed {age}s ago: its kubelet stopped" if age is not None else "no Lease",
                what=f"Lease kube-node-lease/{node.name}")
    taints = sorted(f"{t.key}:{t.effect}" for t in (n.spec.taints or []) if t.key in NODE_TAINTS)
    expect_equal(taints, [], what=f"unreachable/not-ready taints of {node.name}")


# ------------------------------------------------------------------------------------------------
# answers the grader recomputes
# ------------------------------------------------------------------------------------------------

@check(f"The pod-template-hash you found is that of {WEB}'s ReplicaSet", on="cluster", points=1,
       needs=["ownership_chain"],
       hint=f"The Deployment controller names its ReplicaSet `{WEB}-<hash>` and labels it and its pods "
            f"pod-template-hash=<hash>: `kubectl -n {NAMESPACE} get rs --show-labels`. Record it with "
            f"`%answer {LAB} pod_template_hash <hash>`.")
def test_answer_pod_template_hash(answers, kube):
    deploy = kube.apps.read_namespaced_deployment(WEB, NAMESPACE)
    rs = _current_replicaset(kube, deploy)
    live = (rs.metadata.labels or {}).get("pod-template-hash", "") if rs is not None else ""
    answers.expect("pod_template_hash", live, where=f"the pod-template-hash label of {WEB}'s ReplicaSet")


@check("The leader you found holds the controller manager's Lease now", on="cluster", points=1,
       needs=["controller_manager_leading"],
       hint="holderIdentity of the Lease kube-system/kube-controller-manager: `kubectl -n kube-system get lease "
            "kube-controller-manager -o jsonpath='{.spec.holderIdentity}'`. Every start of the controller manager "
            f"takes it under a new id: record it after the last restart (`%answer {LAB} leader <holder>`).")
def test_answer_leader(answers, kube):
    lease = kube.coordination.read_namespaced_lease(CM_LEASE, "kube-system")
    answers.expect("leader", lease.spec.holder_identity or "",
                   where=f"holderIdentity of the Lease kube-system/{CM_LEASE}")


@check("The time you found is when the worker turned Ready again", on="cluster", points=1,
       hint="When the kubelet posts Ready after the node lifecycle controller had set it to Unknown, the Ready "
            "condition's lastTransitionTime moves to that moment: `kubectl get node <worker> -o "
            "jsonpath='{.status.conditions[?(@.type==\"Ready\")].lastTransitionTime}'`. Record it after the "
            f"worker is back (`%answer {LAB} worker_ready_since <time>`).")
def test_answer_worker_ready_since(answers, kube, course):
    worker = _workers(course)[0].name
    n = kube.core.read_node(worker)
    ready = _ready_condition(n)
    live = ready.last_transition_time if ready is not None and ready.status == "True" else None
    if live is None:
        fail(f"the worker {worker} Ready", "not Ready: no such moment yet", what=f"node {worker}")
    answers.expect("worker_ready_since", live, same=_same_instant,
                   where=f"lastTransitionTime of {worker}'s Ready condition")
