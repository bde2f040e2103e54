"""Lab 11 — kube-proxy and Services. Every check only observes: the nodes over SSH (curl, iptables-save, nft list,
systemctl is-active), the cluster through the API with the control plane's admin.conf.

Three groups of checks:

- the learner's Service `web` in the namespace `lab11-web`: a NodePort Service whose EndpointSlices (discovery.k8s.io,
  read in whichever version the API server serves: v1beta1 at 1.20, v1 since 1.21) list REPLICAS ready endpoints,
  reachable by its ClusterIP and by its NodePort from every node;
- kube-proxy on every node: healthy (its healthz on :10256) whether it runs as kubeadm's DaemonSet pod or as a
  systemd service, in the mode course.yaml asks for (network.kube_proxy_mode, read from kube-proxy's own
  /proxyMode), with its rules for the Service's ClusterIP:port DNATing to exactly the ready endpoints — iptables
  (KUBE-SERVICES -> KUBE-SVC-… -> KUBE-SEP-…) or nftables (`service-ips` map -> service-… -> endpoint-… chains),
  whichever the node's kube-proxy reports;
- answers the grader recomputes from the control plane's rules: the chain kube-proxy made for the Service's port,
  and the endpoint its first endpoint chain DNATs to.
"""

from __future__ import annotations

from kubelab.engine import check, expect_equal, expect_true, fail, read_or_none
from kubelab.kubeproxy_rules import iptables_service, nft_service  # the readers kubelab trace shares

LAB = "lab11"
NAMESPACE = "lab11-web"
SERVICE = "web"
PORT_NAME = "http"
PORT = 80                 # the Service's port
TARGET_PORT = 8080        # the pods' port
REPLICAS = 3
PROXY_MODE_URL = "http://127.0.0.1:10249/proxyMode"   # kube-proxy's metrics server (metricsBindAddress default)
HEALTHZ_URL = "http://127.0.0.1:10256/healthz"        # kube-proxy's health server (healthzBindAddress default)
IPTABLES = "sudo -n iptables-save -t nat"
NFT = "sudo -n nft list table ip kube-proxy"


# ------------------------------------------------------------------------------------------------
# observing the cluster and the nodes
# ------------------------------------------------------------------------------------------------

def _service(kube):
    svc = read_or_none(kube.core.read_namespaced_service, SERVICE, NAMESPACE)
    if svc is None:
        fail(f"Service {NAMESPACE}/{SERVICE}", "none", what="kubectl get service")
    return svc


def _service_port(svc):
    port = next((p for p in (svc.spec.ports or []) if p.port == PORT), None)
    if port is None:
        fail(f"a port {PORT}", [p.port for p in (svc.spec.ports or [])] or "(no ports)", what=f"Service {SERVICE}")
    return port


def discovery_version(kube) -> str:
    """The EndpointSlice API version the server prefers: discovery.k8s.io/v1beta1 at 1.20, /v1 since 1.21."""
    status, group = kube.get_json("/apis/discovery.k8s.io")
    if status != 200 or not isinstance(group, dict):
        fail("the API group discovery.k8s.io", f"HTTP {status}", what="kubectl api-versions")
    return (group.get("preferredVersion") or {}).get("groupVersion") or group["versions"][0]["groupVersion"]


def ready_endpoints(kube) -> tuple[str, list[str]]:
    """(the API version read, the IP:port of every ready endpoint of the Service's port) from its EndpointSlices."""
    version = discovery_version(kube)
    status, slices = kube.get_json(f"/apis/{version}/namespaces/{NAMESPACE}/endpointslices",
                                   labelSelector=f"kubernetes.io/service-name={SERVICE}")
    if status != 200 or not isinstance(slices, dict):
        fail("the Service's EndpointSlices", f"HTTP {status}", what=f"GET /apis/{version}/…/endpointslices")
    found = []
    for s in slices.get("items") or []:
        port = next((p.get("port") for p in s.get("ports") or [] if p.get("name", "") == PORT_NAME), None)
        for ep in s.get("endpoints") or []:
            # an unset `ready` means ready (the API's own rule)
            if (ep.get("conditions") or {}).get("ready", True) is not False and port is not None:
                found += [f"{a}:{port}" for a in ep.get("addresses") or []]
    return version, sorted(found)


def proxy_mode(host) -> str:
    got = host.run("curl -s -m 5 %s", PROXY_MODE_URL)
    return got.stdout.strip() if got.rc == 0 and got.stdout.strip() else f"no answer (curl exit {got.rc})"


def service_rules(host, mode: str, cluster_ip: str) -> tuple[str, list[tuple[str, str]], str]:
    """(service chain, [(endpoint chain, DNAT target)], the command read) in the node's kube-proxy mode."""
    if mode == "nftables":
        got = host.run(NFT)
        expect_true(got.rc == 0, "kube-proxy's nftables table `ip kube-proxy`", got.stderr.strip()[:200] or "missing",
                    what=NFT)
        return (*nft_service(got.stdout, cluster_ip, PORT), NFT)
    if mode == "iptables":
        got = host.run(IPTABLES)
        expect_true(got.rc == 0, "the nat table", got.stderr.strip()[:200] or "unreadable", what=IPTABLES)
        return (*iptables_service(got.stdout, cluster_ip, PORT), IPTABLES)
    fail("kube-proxy in iptables or nftables mode", mode, what=PROXY_MODE_URL)


def _how_it_runs(host, node, kube) -> str:
    """kubeadm runs kube-proxy as a DaemonSet pod; the lab twins run it as a systemd service: look both ways."""
    pods = kube.core.list_namespaced_pod("kube-system", label_selector="k8s-app=kube-proxy",
                                         field_selector=f"spec.nodeName={node.name}").items
    if pods:
        return f"pod {pods[0].metadata.name} {pods[0].status.phase}"
    unit = host.run("systemctl is-active kube-proxy")
    return f"systemd unit kube-proxy {unit.stdout.strip() or 'unknown'}"


# ------------------------------------------------------------------------------------------------
# the Service and its endpoints
# ------------------------------------------------------------------------------------------------

@check(f"The Service {NAMESPACE}/{SERVICE} is a NodePort Service on port {PORT} named {PORT_NAME}", on="cluster",
       points=1,
       hint=f"Create it in the namespace {NAMESPACE}: type NodePort, selector app={SERVICE}, one port named {PORT_NAME}, "
            f"port {PORT}, targetPort {TARGET_PORT}. `kubectl -n {NAMESPACE} get svc {SERVICE} -o yaml` shows what you "
            f"have; a Service's type can be changed with `kubectl apply`.")
def test_service(kube):
    svc = _service(kube)
    port = _service_port(svc)
    expect_equal({"type": svc.spec.type, "port_name": port.name, "node_port": bool(port.node_port)},
                 {"type": "NodePort", "port_name": PORT_NAME, "node_port": True}, what=f"Service {SERVICE}")
    expect_equal(svc.spec.selector or {}, {"app": SERVICE}, what=f"selector of Service {SERVICE}")


@check(f"Its EndpointSlices list {REPLICAS} ready endpoints", on="cluster", points=2, needs=["service"], wait_s=30,
       interval_s=3,
       hint=f"The EndpointSlice controller lists the pods the selector matches, ready when their readiness probe "
            f"passes. `kubectl -n {NAMESPACE} get endpointslices -l kubernetes.io/service-name={SERVICE} -o wide`; "
            f"`kubectl -n {NAMESPACE} get pods -l app={SERVICE} -o wide` (Running and READY 1/1? {REPLICAS} "
            f"replicas? the label app={SERVICE}?); `kubectl scale` changes the count.")
def test_endpoints(kube):
    version, eps = ready_endpoints(kube)
    expect_equal(len(eps), REPLICAS, what=f"ready endpoints in the EndpointSlices ({version}): {', '.join(eps) or 'none'}")


# ------------------------------------------------------------------------------------------------
# kube-proxy on every node
# ------------------------------------------------------------------------------------------------

@check("kube-proxy runs on this node and is healthy (:10256/healthz)", on="all", points=1, wait_s=20, interval_s=4,
       hint="kubeadm runs kube-proxy as the DaemonSet kube-system/kube-proxy: `kubectl -n kube-system get pods -l "
            "k8s-app=kube-proxy -o wide`, `kubectl -n kube-system logs <pod>`; after a change to its ConfigMap, "
            "`kubectl -n kube-system rollout restart daemonset kube-proxy`. (Where it runs as a systemd service: "
            "`sudo systemctl status kube-proxy`, `sudo journalctl -u kube-proxy -n 30`.)")
def test_kube_proxy_running(host, node, kube):
    how = _how_it_runs(host, node, kube)
    expect_true(how.endswith(("Running", " active")), "a Running kube-proxy pod or an active kube-proxy unit", how,
                what=f"kube-proxy on {node.name}")
    got = host.run("curl -s -m 5 -o /dev/null -w '%%{http_code}' %s", HEALTHZ_URL)
    expect_equal(got.stdout.strip() if got.rc == 0 else f"no answer (curl exit {got.rc})", "200",
                 what=f"{HEALTHZ_URL} on {node.name} ({how})")


@check("kube-proxy runs in the mode course.yaml asks for", on="all", points=1, needs=["kube_proxy_running"],
       hint="kube-proxy reports its mode at http://127.0.0.1:10249/proxyMode. kubeadm keeps the configuration in the "
            "ConfigMap kube-system/kube-proxy (key config.conf, field `mode:`; empty means iptables): "
            "`kubectl -n kube-system edit configmap kube-proxy`, then `kubectl -n kube-system rollout restart "
            "daemonset kube-proxy` — a running kube-proxy never rereads it.")
def test_kube_proxy_mode(host, node, course):
    expect_equal(proxy_mode(host), course.network.kube_proxy_mode, what=f"kube-proxy's mode on {node.name} ({PROXY_MODE_URL})")


@check(f"kube-proxy's rules send the ClusterIP:{PORT} to exactly the ready endpoints", on="all", points=2,
       needs=["kube_proxy_running", "service", "endpoints"], wait_s=20, interval_s=4,
       hint="kube-proxy writes the rules from the EndpointSlices it watches. iptables mode: `sudo iptables-save -t nat "
            "| grep lab11-web` (KUBE-SERVICES -> KUBE-SVC-… -> KUBE-SEP-… DNAT); nftables mode: `sudo nft list table "
            "ip kube-proxy` (the service-ips map -> service-… -> endpoint-… chains). No rules at all: is kube-proxy "
            "running and syncing (its logs)? Stale rules: a kube-proxy that was stopped when the Service changed.")
def test_rules(host, node, kube):
    cluster_ip = _service(kube).spec.cluster_ip
    _, want = ready_endpoints(kube)
    mode = proxy_mode(host)
    svc, endpoints, read = service_rules(host, mode, cluster_ip)
    expect_true(bool(svc), f"a rule for {cluster_ip}:{PORT}/tcp", "none", what=f"{read} on {node.name}")
    expect_equal(sorted(dnat for _, dnat in endpoints), want, what=f"DNAT targets of {svc} ({mode}) on {node.name}")


@check(f"The Service answers on its ClusterIP:{PORT} from this node", on="all", points=1, needs=["service", "endpoints"],
       wait_s=20, interval_s=4,
       hint="`curl -v http://<ClusterIP>/` on the node. No route or a timeout: no kube-proxy rule for it (see the rules "
            "check) or the pod network between the nodes (Lab 5); connection refused: the pods do not listen on the "
            "targetPort.")
def test_cluster_ip(host, node, kube):
    ip = _service(kube).spec.cluster_ip
    got = host.run("curl -s -m 5 -o /dev/null -w '%%{http_code}' http://%s:%s/", ip, str(PORT))
    expect_equal(got.stdout.strip() if got.rc == 0 else f"no answer (curl exit {got.rc})", "200",
                 what=f"http://{ip}:{PORT}/ from {node.name}")


@check("The Service answers on its NodePort at this node's IP", on="all", points=1, needs=["service", "endpoints"],
       wait_s=20, interval_s=4,
       hint="`kubectl -n lab11-web get svc web` shows the NodePort (80:3XXXX/TCP); `curl http://<node IP>:<nodePort>/` "
            "on each node. In nftables mode NodePorts do not answer on 127.0.0.1: use the node's own IP.")
def test_node_port(host, node, kube):
    port = _service_port(_service(kube)).node_port
    got = host.run("curl -s -m 5 -o /dev/null -w '%%{http_code}' http://%s:%s/", str(node.ip), str(port))
    expect_equal(got.stdout.strip() if got.rc == 0 else f"no answer (curl exit {got.rc})", "200",
                 what=f"http://{node.ip}:{port}/ from {node.name}")


# ------------------------------------------------------------------------------------------------
# answers the grader recomputes from the control plane's rules
# ------------------------------------------------------------------------------------------------

def _control_plane_rules(hosts, course, kube):
    host = hosts[course.control_plane.name]
    svc, endpoints, read = service_rules(host, proxy_mode(host), _service(kube).spec.cluster_ip)
    expect_true(bool(svc), "kube-proxy's rules for the Service on the control plane", "none", what=read)
    return svc, endpoints


@check("The chain you found is the one kube-proxy made for your Service's port", on="cluster", points=1,
       needs=["service"],
       hint=f"On the control plane: `sudo iptables-save -t nat | grep '{NAMESPACE}/{SERVICE}:{PORT_NAME} cluster IP'` "
            f"shows the KUBE-SERVICES rule and its `-j KUBE-SVC-…` (nftables mode: the service-ips element for the "
            f"ClusterIP, `goto service-…`); record the chain's name with `%answer {LAB} service_chain <name>`. It is "
            f"a hash of the namespace, Service, port name and protocol: the same on every node.")
def test_answer_service_chain(answers, hosts, course, kube):
    svc, _ = _control_plane_rules(hosts, course, kube)
    answers.expect("service_chain", svc, where="the chain kube-proxy's ClusterIP rule for your Service jumps to")


@check("The endpoint you found is the one your Service's first endpoint chain DNATs to", on="cluster", points=1,
       needs=["service", "endpoints"],
       hint=f"On the control plane: the first `-j KUBE-SEP-…` rule of your KUBE-SVC chain (the one with --probability "
            f"1/{REPLICAS}), then `sudo iptables-save -t nat | grep -- '-A KUBE-SEP-XXXX '` for its `--to-destination` "
            f"(nftables mode: `0 : goto endpoint-…` in the service chain, that chain's `dnat to`); record IP:port with "
            f"`%answer {LAB} first_endpoint <ip:port>`. It changes when the pods are replaced.")
def test_answer_first_endpoint(answers, hosts, course, kube):
    _, endpoints = _control_plane_rules(hosts, course, kube)
    expect_true(bool(endpoints), "an endpoint chain", "none", what="the Service's chain on the control plane")
    answers.expect("first_endpoint", endpoints[0][1], where="the DNAT target of the first endpoint chain")
