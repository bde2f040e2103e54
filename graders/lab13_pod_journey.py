"""Lab 13 — The journey of a pod, end to end. Every check only observes: the cluster through the API with the
control plane's admin.conf; etcd through `etcdctl` on the control plane with the API server's client certificate;
the worker's containerd with `ctr -n k8s.io`; kube-proxy's rules with `iptables-save -t nat` or
`nft list table ip kube-proxy` (whichever mode its /proxyMode reports); one curl of the Service's ClusterIP.

Three groups of checks:

- the learner's pod `lab13-journey/journey` (label app=journey) Running and Ready on the worker, its IP from the
  worker's podCIDR, selected by the Service `journey`, ready in its EndpointSlice, with an endpoint chain DNATing to
  it on every node, and reached by a request to the ClusterIP;
- one answer per hop, recomputed from the live cluster: the node the scheduler chose, the create_revision of the
  pod's key in etcd, the sandbox ID containerd knows, the pod's IP, the endpoint chain kube-proxy wrote;
- the timeline: when the pod was scheduled and when it became Ready, as its conditions' lastTransitionTime says.
"""

from __future__ import annotations

import ipaddress
import json
import shlex

from kubelab.engine import check, expect_equal, expect_true, fail, read_or_none
from kubelab.kubeproxy_rules import endpoints_of, rules_command, split_rules_read
from kubelab.trace.collect import selects
from kubelab.trace.model import parse_time, ready_in_slice

LAB = "lab13"
NAMESPACE = "lab13-journey"
POD = "journey"
SERVICE = "journey"
LABELS = {"app": "journey"}       # what the Service selects
PORT = 80                         # the Service's port
TARGET_PORT = 8080                # the pod's httpd
PKI = "/etc/kubernetes/pki"
ETCDCTL = ("sudo -n etcdctl --endpoints=https://127.0.0.1:2379 "
           f"--cacert={PKI}/etcd/ca.crt --cert={PKI}/apiserver-etcd-client.crt --key={PKI}/apiserver-etcd-client.key")
CTR = "sudo -n ctr -n k8s.io"
SANDBOX_ANNOTATION = "io.kubernetes.cri.sandbox-id"  # in the OCI spec of every CRI container
POD_KEY = f"/registry/pods/{NAMESPACE}/{POD}"


def _worker(course):
    return next(n.name for n in course.nodes if n.role == "worker")


def _pod(kube):
    pod = read_or_none(kube.core.read_namespaced_pod, POD, NAMESPACE)
    if pod is None:
        fail(f"the pod {NAMESPACE}/{POD}", "none", what="kubectl get pod")
    return pod


def _pod_ip(kube) -> str:
    ip = _pod(kube).status.pod_ip
    if not ip:
        fail("an IP for the pod", "none yet", what=f"pod {POD}'s status.podIP")
    return ip


def _service(kube):
    svc = read_or_none(kube.core.read_namespaced_service, SERVICE, NAMESPACE)
    if svc is None:
        fail(f"Service {NAMESPACE}/{SERVICE}", "none", what="kubectl get service")
    return svc


def conditions(pod) -> dict[str, tuple[str, str]]:
    """{type: (status, lastTransitionTime as ISO 8601 UTC)} of the pod's conditions."""
    out = {}
    for c in pod.status.conditions or []:
        t = c.last_transition_time
        out[c.type] = (c.status, t.strftime("%Y-%m-%dT%H:%M:%SZ") if t else "")
    return out


def same_time(given: str, live) -> bool:
    """The same instant to the second, however the learner wrote it (Z or +00:00)."""
    g, want = parse_time(given.strip()), parse_time(str(live))
    return g is not None and want is not None and g.replace(microsecond=0) == want.replace(microsecond=0)


def same_sandbox(given: str, live: str) -> bool:
    """The full ID or the 13 characters `crictl pods` shows (any prefix of 12 or more)."""
    g = given.strip().lower()
    return len(g) >= 12 and live.startswith(g)


def in_cidr(ip: str, cidr: str) -> bool:
    try:
        return ipaddress.ip_address(ip) in ipaddress.ip_network(cidr, strict=False)
    except ValueError:
        return False


def create_revision(etcdctl_json: str) -> int | None:
    """The create_revision of the one key `etcdctl get KEY -w json` printed; None when etcd has no such key."""
    kvs = json.loads(etcdctl_json).get("kvs") or []
    return int(kvs[0]["create_revision"]) if kvs else None


def _slices(kube) -> tuple[str, list[dict]]:
    status, group = kube.get_json("/apis/discovery.k8s.io")
    if status != 200 or not isinstance(group, dict):
        fail("the API group discovery.k8s.io", f"HTTP {status}", what="kubectl api-versions")
    # v1beta1 at 1.20, v1 since 1.21: whichever the server prefers
    version = (group.get("preferredVersion") or {}).get("groupVersion") or group["versions"][0]["groupVersion"]
    status, found = kube.get_json(f"/apis/{version}/namespaces/{NAMESPACE}/endpointslices",
                                  labelSelector=f"kubernetes.io/service-name={SERVICE}")
    if status != 200 or not isinstance(found, dict):
        fail("the Service's EndpointSlices", f"HTTP {status}", what=f"GET /apis/{version}/…/endpointslices")
    return version, [s for s in found.get("items") or [] if isinstance(s, dict)]


def _chains(host, ip: str):
    """(kube-proxy's mode on this node, the endpoint chains there that DNAT to ip)."""
    got = host.run(rules_command())
    expect_true(got.rc == 0, "kube-proxy's rules", got.stderr.strip()[:200] or f"exit {got.rc}",
                what="iptables-save -t nat / nft list table ip kube-proxy")
    mode, text = split_rules_read(got.stdout)
    return mode, endpoints_of(mode, text, ip)


# ------------------------------------------------------------------------------------------------
# the pod and its Service
# ------------------------------------------------------------------------------------------------

@check(f"The pod {NAMESPACE}/{POD} is Running and Ready on the worker", on="cluster", points=2, wait_s=30, interval_s=3,
       hint=f"Create it in the namespace {NAMESPACE} with the label app=journey, `nodeSelector: {{kubernetes.io/hostname: "
            f"<worker>}}` and a container serving HTTP on {TARGET_PORT} with a readiness probe. `kubectl -n {NAMESPACE} "
            f"get pod {POD} -o wide` and `kubectl -n {NAMESPACE} describe pod {POD}` (its Events) say where it stopped.")
def test_pod_running(kube, course):
    pod = _pod(kube)
    ready = conditions(pod).get("Ready", ("none", ""))[0]
    expect_equal({"phase": pod.status.phase, "Ready": ready, "node": pod.spec.node_name},
                 {"phase": "Running", "Ready": "True", "node": _worker(course)}, what=f"pod {POD}")


@check("Its IP comes from the podCIDR of the node it runs on", on="cluster", points=1, needs=["pod_running"],
       hint="The CNI plugin (flannel's host-local IPAM) hands out pod IPs from the node's `spec.podCIDR` "
            "(`kubectl get node <node> -o jsonpath='{.spec.podCIDR}'`). A pod with `hostNetwork: true` has the node's "
            "own IP and no sandbox network of its own: this lab's pod must not use it.")
def test_pod_ip_in_pod_cidr(kube):
    pod = _pod(kube)
    node = kube.core.read_node(pod.spec.node_name)
    cidr = node.spec.pod_cidr or ""
    expect_true(in_cidr(pod.status.pod_ip or "", cidr), f"an IP inside {cidr or 'the node podCIDR (none set)'}",
                pod.status.pod_ip or "none", what=f"pod {POD}'s IP on {pod.spec.node_name}")


@check(f"The Service {NAMESPACE}/{SERVICE} selects the pod", on="cluster", points=1,
       hint=f"A Service selects the pods whose labels include every key=value of its `spec.selector`: create it with "
            f"`selector: {{app: journey}}`, port {PORT}, targetPort {TARGET_PORT}. Compare `kubectl -n {NAMESPACE} get "
            f"svc {SERVICE} -o jsonpath='{{.spec.selector}}'` with `kubectl -n {NAMESPACE} get pod {POD} --show-labels`.")
def test_service_selects(kube):
    svc, pod = _service(kube), _pod(kube)
    expect_true(selects(svc.spec.selector, pod.metadata.labels), f"a selector matching the pod's labels "
                f"{pod.metadata.labels or {}}", svc.spec.selector or "(no selector)", what=f"Service {SERVICE}")


@check("The pod's IP is a ready endpoint in the Service's EndpointSlice", on="cluster", points=1,
       needs=["service_selects", "pod_running"], wait_s=30, interval_s=3,
       hint=f"The EndpointSlice controller lists the selected pods, ready once their readiness probe passes: "
            f"`kubectl -n {NAMESPACE} get endpointslices -l kubernetes.io/service-name={SERVICE} -o yaml` "
            f"(endpoints[].addresses and conditions.ready).")
def test_in_endpoint_slice(kube):
    ip = _pod_ip(kube)
    version, slices = _slices(kube)
    states = [ready_in_slice(s, ip) for s in slices]
    state = "ready" if True in states else ("listed, not ready" if False in states else "not listed")
    expect_equal(state, "ready", what=f"{ip} in the EndpointSlices of {SERVICE} ({version}, {len(slices)} slices)")


@check("kube-proxy on this node DNATs the Service's traffic to the pod's IP", on="all", points=2,
       needs=["in_endpoint_slice"], wait_s=20, interval_s=4,
       hint=f"kube-proxy writes a chain per endpoint from the EndpointSlices it watches. iptables mode: `sudo "
            f"iptables-save -t nat | grep <pod IP>` (a KUBE-SEP-… chain `-j DNAT --to-destination <pod IP>:{TARGET_PORT}`); "
            f"nftables mode: `sudo nft list table ip kube-proxy` (an endpoint-… chain `dnat to <pod IP>:{TARGET_PORT}`). "
            "None: is kube-proxy running on this node (`kubectl -n kube-system get pods -l k8s-app=kube-proxy -o wide`)?")
def test_proxy_rules(host, node, kube):
    ip = _pod_ip(kube)
    mode, chains = _chains(host, ip)
    mine = sorted(c.destination for c in chains if f"{NAMESPACE}/{SERVICE}" in c.service)
    expect_equal(mine, [f"{ip}:{TARGET_PORT}"], what=f"{mode} endpoint chains of {NAMESPACE}/{SERVICE} DNATing to "
                                                     f"the pod on {node.name}")


@check(f"A request to the Service's ClusterIP:{PORT} reaches the pod", on="control-plane", points=1,
       needs=["in_endpoint_slice"], wait_s=20, interval_s=4,
       hint=f"`curl -s http://<ClusterIP>:{PORT}/` on the control plane: the pod's httpd answers with its hostname (the "
            f"pod's name). No answer: the kube-proxy check above, the pod network between the nodes (Lab 5), or an "
            f"httpd not listening on {TARGET_PORT}.")
def test_request_reaches(host, kube):
    ip = _service(kube).spec.cluster_ip
    got = host.run("curl -s -m 5 http://%s:%s/", ip, str(PORT))
    expect_equal(got.stdout.strip() if got.rc == 0 else f"no answer (curl exit {got.rc})", POD,
                 what=f"the answer of http://{ip}:{PORT}/ from the control plane")


# ------------------------------------------------------------------------------------------------
# one answer per hop, recomputed from the live cluster
# ------------------------------------------------------------------------------------------------

@check("The node you found is the one the scheduler bound the pod to", on="cluster", points=1,
       hint=f"The scheduler's Binding sets `spec.nodeName`; its `Scheduled` event says it too (`kubectl -n {NAMESPACE} "
            f"get events --field-selector involvedObject.name={POD},reason=Scheduled`). Record it with "
            f"`%answer {LAB} node <name>`.")
def test_answer_node(answers, kube):
    answers.expect("node", _pod(kube).spec.node_name or "", where="the pod's spec.nodeName")


@check("The revision you found is the create_revision of the pod's key in etcd", on="cluster", points=1,
       hint=f"On the control plane: `sudo etcdctl <the API server's certificate flags, Lab 7> get {POD_KEY} --keys-only "
            f"-w json` prints create_revision (when the key was created: it stays) and mod_revision (its last write: "
            f"the pod's resourceVersion). Record the first with `%answer {LAB} create_revision <n>`. Recreating the pod "
            f"gives its key a new create_revision.")
def test_answer_create_revision(answers, hosts, course):
    got = hosts[course.control_plane.name].run(f"{ETCDCTL} get {shlex.quote(POD_KEY)} --keys-only -w json")
    if got.rc != 0:
        fail(f"etcdctl get {POD_KEY}", (got.stderr or got.stdout).strip()[:300] or f"exit {got.rc}", what="etcd")
    live = create_revision(got.stdout)
    if live is None:
        fail(f"the key {POD_KEY}", "none in etcd", what="etcdctl get --keys-only")
    answers.expect("create_revision", live, where="the create_revision of the pod's key in etcd")


@check("The sandbox ID you found is the one containerd runs the pod in", on="cluster", points=1,
       needs=["pod_running"],
       hint=f"On the worker: `sudo crictl pods --namespace {NAMESPACE} --name '^{POD}$' -q --no-trunc` (or `sudo ctr -n "
            f"k8s.io containers list` for the container of kind sandbox with the label io.kubernetes.pod.name={POD}); "
            f"`sudo crictl inspectp <ID>` shows its network namespace and IP. Record it with `%answer {LAB} sandbox_id "
            f"<ID>`.")
def test_answer_sandbox(answers, hosts, course, kube):
    statuses = _pod(kube).status.container_statuses or []
    cid = (statuses[0].container_id or "") if statuses else ""
    if not cid.startswith("containerd://"):
        fail("a running container (containerd://<id>)", cid or "none", what=f"pod {POD}")
    got = hosts[_worker(course)].run(f"{CTR} containers info %s", cid.removeprefix("containerd://"))
    if got.rc != 0:
        fail(f"the container {cid[13:26]} in containerd", got.stderr.strip()[:200] or "unknown",
             what=f"{CTR} containers info")
    sandbox = ((json.loads(got.stdout).get("Spec") or {}).get("annotations") or {}).get(SANDBOX_ANNOTATION, "")
    answers.expect("sandbox_id", sandbox, where="the ID of the pod's sandbox in containerd", same=same_sandbox)


@check("The IP you found is the pod's IP", on="cluster", points=1,
       hint=f"The CNI plugin's answer to ADD, written back by the kubelet as `status.podIP` (`kubectl -n {NAMESPACE} get "
            f"pod {POD} -o wide`; on the worker `sudo crictl inspectp <sandbox>` or flannel's "
            f"/var/lib/cni/networks/cbr0/<IP> file). Record it with `%answer {LAB} pod_ip <IP>`.")
def test_answer_pod_ip(answers, kube):
    answers.expect("pod_ip", _pod_ip(kube), where="the pod's IP", same=lambda g, live: g.strip().split("/")[0] == live)


@check("The chain you found is kube-proxy's endpoint chain for the pod on the control plane", on="cluster", points=1,
       needs=["in_endpoint_slice"],
       hint=f"On the control plane: `sudo iptables-save -t nat | grep -- '--to-destination <pod IP>:{TARGET_PORT}'` shows "
            f"`-A KUBE-SEP-… ` (nftables mode: the endpoint-… chain with `dnat to <pod IP>:{TARGET_PORT}`). Record its "
            f"name with `%answer {LAB} endpoint_chain <name>`. It is a hash of the Service port and the endpoint: a new "
            f"pod IP gives a new chain.")
def test_answer_endpoint_chain(answers, hosts, course, kube):
    ip = _pod_ip(kube)
    mode, chains = _chains(hosts[course.control_plane.name], ip)
    mine = [c.chain for c in chains if f"{NAMESPACE}/{SERVICE}" in c.service]
    expect_true(bool(mine), f"a {mode} endpoint chain DNATing to the pod", "none", what="the control plane's rules")
    answers.expect("endpoint_chain", mine[0], where="the endpoint chain DNATing to the pod's IP")


# ------------------------------------------------------------------------------------------------
# the timeline
# ------------------------------------------------------------------------------------------------

@check("Your timeline: the pod scheduled, then Ready, at the times its conditions say", on="cluster", points=1,
       needs=["pod_running"],
       hint=f"`kubectl -n {NAMESPACE} get pod {POD} -o jsonpath='{{range .status.conditions[*]}}{{.type}} "
            f"{{.lastTransitionTime}}{{\"\\n\"}}{{end}}'` (or the `kubelab trace` timeline): record PodScheduled's time "
            f"with `%answer {LAB} scheduled_at <time>` and Ready's with `%answer {LAB} ready_at <time>` (ISO 8601, "
            f"e.g. 2026-11-30T06:10:04Z). A pod deleted and created again has a new timeline.")
def test_answer_timeline(answers, kube):
    conds = conditions(_pod(kube))
    scheduled, ready = conds.get("PodScheduled", ("", ""))[1], conds.get("Ready", ("", ""))[1]
    given_s, given_r = parse_time(answers.get("scheduled_at") or ""), parse_time(answers.get("ready_at") or "")
    if given_s and given_r:
        expect_true(given_s <= given_r, "scheduled_at no later than ready_at",
                    f"scheduled_at {answers.get('scheduled_at')} after ready_at {answers.get('ready_at')}",
                    what="the order of your timeline")
    answers.expect("scheduled_at", scheduled, where="the PodScheduled condition's lastTransitionTime", same=same_time)
    answers.expect("ready_at", ready, where="the Ready condition's lastTransitionTime", same=same_time)
