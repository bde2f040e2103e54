"""Lab 5 — Pod network and joining the worker. Every check only observes: nodes over SSH, the cluster
through the API with the control plane's admin.conf.

Two groups of checks:

- CNI-agnostic (any pod network): a CNI config on every node, the cluster's pod range (the controller
  manager's --cluster-cidr) equal to course.yaml's pod_cidr and apart from the nodes' network, every node
  registered with its private IP, a podCIDR and Ready, the worker's TLS bootstrap finished (CSR approved,
  its own kubelet.conf and client certificate, the bootstrap kubeconfig gone), and the test pod `net-test`
  that the notebook runs on the worker answering from the control plane, its logs readable through the API
  server (API server -> the worker's kubelet, the path --node-ip is about).
- the smoke test (the notebook's namespace `smoke`: Deployment `web` with a pod on every node, Service `web`
  80 -> 8080, pod `client`): the Deployment's pods Ready on every node, the Service's EndpointSlices equal to those
  pods, `web.smoke.svc.cluster.local` resolved from `client` to the Service's ClusterIP (cluster DNS) and fetched
  through it, every web pod fetched from `client` at its pod IP (pod to pod across nodes), `kubectl logs` and
  `kubectl exec` on every web pod, and `kubectl port-forward` to the Service (the API server -> kubelet path).
- flannel (only when versions.cni.name in course.yaml is flannel; skipped otherwise): its DaemonSet ready on
  every node, its net-conf Network equal to pod_cidr, told to use the private network (not the NAT NIC
  10.0.2.15 every Vagrant VM has), and the public IP it announces per node being the node's private IP.

Read-only, and why `kubectl exec` and `port-forward` count as observing: they open a stream to a pod
(POST pods/exec and pods/portforward: RBAC calls that `create` on the subresource, admission sees it as the
CONNECT operation; the API server proxies the stream to the kubelet and stores nothing — no object is created,
changed or deleted in etcd), and the commands run through them only read (`nslookup`, `wget -O-` to stdout, `cat` of the
pod's hostname; port-forward's local port is taken from kubectl's own output through a pipe, no file written).
Each runs under `timeout` (SMOKE_TIMEOUT_S), so a hung kubelet connection ends the check, never the grader.
The one trace they leave is the web server's access log line, as any visitor would.

Per-node checks take `host` (the engine makes one result per node from it, even where only the API is read)
and `need` node_registered on the same node: with the worker not joined, its checks are
reported blocked, not failed.
"""

import base64
import calendar
import ipaddress
import json
import re

import pytest

from kubelab.cluster.versions import cluster_minor
from kubelab.engine import api_status, check, expect_equal, expect_true, fail, flag_values, load_yaml, read_or_none

TEST_POD = "net-test"            # the pod the notebook creates on the worker (the grader never creates it)
TEST_POD_NAMESPACE = "default"
LEASE_FRESH_S = 40               # kubelet renews its node Lease every 10 s; node-monitor-grace-period is 40 s
NAT_IP = "10.0.2.15"             # Vagrant's NAT NIC: the same address on every VM
KUBELET_SIGNER = "kubernetes.io/kube-apiserver-client-kubelet"
FLANNEL_PUBLIC_IP = "flannel.alpha.coreos.com/public-ip"
FLANNEL_PUBLIC_IP_OVERWRITE = "flannel.alpha.coreos.com/public-ip-overwrite"
# flanneld sets every flag not given on its command line from FLANNELD_<FLAG> (flagutil.SetFlagsFromEnv)
FLANNEL_ENV_FLAGS = ("iface", "iface-regex", "iface-can-reach")
ADMIN_CONF = "/etc/kubernetes/admin.conf"
SMOKE_NS, SMOKE_DEPLOYMENT, SMOKE_SERVICE, SMOKE_CLIENT = "smoke", "web", "web", "client"  # the notebook's names
SMOKE_NAME = f"{SMOKE_SERVICE}.{SMOKE_NS}.svc.cluster.local"
SMOKE_TIMEOUT_S = 15             # every kubectl exec/port-forward the grader runs ends within this
ENDPOINTSLICE_V1_SINCE = (1, 21)  # discovery.k8s.io/v1; 1.17-1.20 serve v1beta1 (the fields read here are the same)


# ------------------------------------------------------------------------------------------------
# helpers (no checks)
# ------------------------------------------------------------------------------------------------

def _read_node(kube, name):
    node = read_or_none(kube.core.read_node, name)
    if node is None:
        fail(f"a Node object {name}", "none: the node has not joined the cluster", what="kubectl get node")
    return node


_flag = flag_values  # values of --name=V or `--name V`, in order


def _flannel(course):
    if course.versions.cni.name != "flannel":
        pytest.skip(f"applies when the course's CNI is flannel (course.yaml: {course.versions.cni.name})")


def _flannel_daemonsets(kube):
    return kube.apps.list_daemon_set_for_all_namespaces(label_selector="app=flannel").items


def _flannel_container(ds):
    containers = ds.spec.template.spec.containers or []
    return next((c for c in containers if "flanneld" in " ".join(c.command or [])), containers[0] if containers else None)


def flannel_args(args, env):
    """flanneld's effective interface flags: its command line, plus FLANNELD_IFACE, FLANNELD_IFACE_REGEX and
    FLANNELD_IFACE_CAN_REACH for a flag the command line leaves out. `env` is the container's env list (values
    given literally; one from a ConfigMap or field reference is not known here and not used)."""
    out = list(args)
    values = {}
    for e in env:
        name = e.get("name") if isinstance(e, dict) else getattr(e, "name", None)
        value = e.get("value") if isinstance(e, dict) else getattr(e, "value", None)
        if name and value:
            values[name] = value
    for flag in FLANNEL_ENV_FLAGS:
        value = values.get("FLANNELD_" + flag.upper().replace("-", "_"))
        if value and not _flag(args, flag):
            out.append(f"--{flag}={value}")
    return out


def parse_addresses(text):
    """`ip -o -4 addr show` → [(interface, address)] in the kernel's order."""
    out = []
    for line in text.splitlines():
        m = re.match(r"^\d+:\s+(\S+?)(?:@\S+)?\s+inet\s+([\d.]+)/\d+", line)
        if m:
            out.append((m.group(1), m.group(2)))
    return out


def flannel_choice(args, addresses, route_src=None, public_ip=None):
    """The IPv4 address flanneld picks for inter-node traffic, as flannel's main.go and LookupExtIface do:
    --iface (IP or name, first that exists), else --iface-regex (first matching address, then name),
    else --iface-can-reach (the source address of the route to it); with none of them, the interface holding
    the Node's public-ip-overwrite annotation (`public_ip`), else the default route's interface.
    `route_src(target)` answers `ip route get` on the node; `addresses` is parse_addresses() output."""
    if public_ip and not any(_flag(args, f) for f in FLANNEL_ENV_FLAGS):
        held = any(ip == public_ip for _, ip in addresses)
        return (public_ip if held else f"{public_ip} (on no interface of the node: flanneld exits)",
                f"the interface holding {FLANNEL_PUBLIC_IP_OVERWRITE}={public_ip}")
    for want in _flag(args, "iface"):
        for dev, ip in addresses:
            if want in (dev, ip):
                return ip, f"--iface={want}"
    for rx in _flag(args, "iface-regex"):
        try:
            pattern = re.compile(rx)
        except re.error:
            continue
        for dev, ip in addresses:
            if pattern.search(ip):
                return ip, f"--iface-regex={rx}"
        for dev, ip in addresses:
            if pattern.search(dev):
                return ip, f"--iface-regex={rx}"
    for target in _flag(args, "iface-can-reach"):
        src = route_src(target) if route_src else None
        if src:
            return src, f"--iface-can-reach={target}"
    src = route_src("default") if route_src else None
    return src or "(unknown)", "the default route's interface (no --iface/--iface-regex/--iface-can-reach)"


def _route_src(host):
    def ask(target):
        cmd = "ip -o -4 route show default" if target == "default" else f"ip -o -4 route get {target}"
        out = host.run(cmd).stdout
        m = re.search(r"\bsrc\s+([\d.]+)", out)
        if m:
            return m.group(1)
        dev = re.search(r"\bdev\s+(\S+)", out)
        if dev:
            for d, ip in parse_addresses(host.run("ip -o -4 addr show").stdout):
                if d == dev.group(1):
                    return ip
        return None
    return ask


def _csr_subject_cn(csr):
    from cryptography import x509

    try:
        pem = base64.b64decode(csr.spec.request)
        req = x509.load_pem_x509_csr(pem)
        cns = req.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
        return cns[0].value if cns else ""
    except Exception:  # noqa: BLE001 - a CSR we cannot read is simply not the node's
        return ""


# ------------------------------------------------------------------------------------------------
# the pod network, CNI-agnostic
# ------------------------------------------------------------------------------------------------

@check("The cluster's pod range is course.yaml's pod_cidr, apart from the nodes' network", on="cluster", points=1,
       hint="The pod range is fixed at `kubeadm init --pod-network-cidr` (Lab 4): it must be pod_cidr from course.yaml "
            "and must not overlap the host-only network (Calico's default 192.168.0.0/16 swallows 192.168.56.0/24). "
            "Recreate the control plane with the right value: `sudo kubeadm reset -f`, then init again.")
def test_pod_range(kube, course):
    net = course.network
    pods = kube.core.list_namespaced_pod("kube-system", label_selector="component=kube-controller-manager").items
    expect_true(bool(pods), "the kube-controller-manager static pod", "none in kube-system", what="controller manager")
    c = pods[0].spec.containers[0]
    args = list(c.command or []) + list(c.args or [])
    cidrs = _flag(args, "cluster-cidr")
    allocate = _flag(args, "allocate-node-cidrs")
    got = cidrs[0] if cidrs else "(not set: kubeadm init ran without --pod-network-cidr)"
    try:
        overlaps = ipaddress.ip_network(got, strict=False).overlaps(net.private_subnet)
    except ValueError:
        overlaps = False
    if overlaps:
        fail(f"{net.pod_cidr}, apart from the private network {net.private_subnet}",
             f"{got} (overlaps {net.private_subnet})", what="kube-controller-manager --cluster-cidr")
    expect_equal({"--cluster-cidr": got, "--allocate-node-cidrs": allocate[0] if allocate else "(not set)"},
                 {"--cluster-cidr": str(net.pod_cidr), "--allocate-node-cidrs": "true"},
                 what="kube-controller-manager flags")


@check("It has a CNI network configuration in /etc/cni/net.d", on="all", points=1,
       hint="The CNI plugin writes it (flannel's install-cni init container writes 10-flannel.conflist). "
            "Install the pod network on the control plane (`kubectl apply -f kube-flannel.yml`) and wait for its "
            "pod on this node: `kubectl -n kube-flannel get pods -o wide`.")
def test_cni_config(host):
    listing = host.run("sudo -n ls -1 /etc/cni/net.d").stdout.split()
    configs = sorted(f for f in listing if f.endswith((".conf", ".conflist", ".json")))
    expect_true(bool(configs), "a *.conflist/*.conf file", ", ".join(listing) or "(empty or missing)",
                what="/etc/cni/net.d")
    text = host.run("sudo -n cat /etc/cni/net.d/%s", configs[0]).stdout
    try:
        conf = json.loads(text)
    except ValueError:
        fail("valid JSON", f"{configs[0]} does not parse as JSON", what="CNI config")
    expect_true(bool(conf.get("plugins") or conf.get("type")), "a network with plugins",
                f"{configs[0]} names no plugin", what="CNI config")


# ------------------------------------------------------------------------------------------------
# every node joined, on its private IP, with a podCIDR, Ready
# ------------------------------------------------------------------------------------------------

@check("It is registered as a Node of the cluster", on="all", points=1,
       hint="On the control plane: `kubeadm token create --print-join-command`; run the printed command with sudo "
            "on the worker. Then `kubectl get nodes` lists it.")
def test_node_registered(host, kube, node):
    n = _read_node(kube, node.name)
    expect_equal(n.metadata.name, node.name, what="Node name")


@check("Its Node's InternalIP is its private IP, not the NAT address", on="all", points=1, needs=["node_registered"],
       hint="Vagrant's first NIC is 10.0.2.15 on every VM. Put `KUBELET_EXTRA_ARGS=--node-ip=<private IP>` in "
            "/etc/default/kubelet on the node and `sudo systemctl restart kubelet`.")
def test_node_ip(host, kube, node):
    n = _read_node(kube, node.name)
    internal = [a.address for a in (n.status.addresses or []) if a.type == "InternalIP"]
    expect_equal(internal[:1], [str(node.ip)], what=f"InternalIP of {node.name}")


@check("It has a podCIDR inside the course's pod network", on="all", points=1, needs=["node_registered"],
       hint="The controller manager hands each node a slice of --cluster-cidr when kubeadm init ran with "
            "--pod-network-cidr=<pod_cidr of course.yaml>; without it flannel fails with 'pod cidr not assigned'.")
def test_node_pod_cidr(host, kube, node, course):
    n = _read_node(kube, node.name)
    cidr = n.spec.pod_cidr
    expect_true(bool(cidr), f"a subnet of {course.network.pod_cidr}", "(none)", what=f"spec.podCIDR of {node.name}")
    expect_true(ipaddress.ip_network(cidr).subnet_of(course.network.pod_cidr),
                f"a subnet of {course.network.pod_cidr}", cidr, what=f"spec.podCIDR of {node.name}")


@check("It is Ready and its kubelet is alive", on="all", points=2, needs=["node_registered"], wait_s=30, interval_s=3,
       hint="NotReady with 'cni plugin not initialized' means no pod network yet on the node (install it); "
            "a stale lease means its kubelet stopped: `sudo systemctl start kubelet`, `journalctl -u kubelet`.")
def test_node_ready(host, kube, node, hosts, course):
    now = int(hosts[course.control_plane.name].run("date +%s").stdout.strip())
    n = _read_node(kube, node.name)
    ready = next((c for c in (n.status.conditions or []) if c.type == "Ready"), None)
    if ready is None or ready.status != "True":
        why = f"Ready={ready.status if ready else 'Unknown'}"
        if ready is not None and ready.message:
            why += f" ({ready.message[:160]})"
        fail("Ready", why, what=f"node {node.name}")
    # The node Lease shows a stopped kubelet at once; the Ready condition only after the 40 s grace period.
    lease = read_or_none(kube.coordination.read_namespaced_lease, node.name, "kube-node-lease")
    if lease is None:  # no Lease (yet): the Ready condition alone decides
        return
    age = now - calendar.timegm(lease.spec.renew_time.utctimetuple())
    expect_true(age <= LEASE_FRESH_S, f"lease renewed within {LEASE_FRESH_S}s",
                f"renewed {age}s ago: its kubelet stopped", what=f"node {node.name}")


# ------------------------------------------------------------------------------------------------
# the worker's TLS bootstrap
# ------------------------------------------------------------------------------------------------

@check("Its kubelet's certificate request was approved and issued", on="worker", points=1, needs=["node_registered"],
       hint="kubeadm join makes the kubelet ask for a client certificate (a CSR for system:node:<name>); the "
            "controller manager approves it for bootstrap tokens. `kubectl get csr` shows it; approve a pending one "
            "with `kubectl certificate approve <name>`.")
def test_csr_approved(kube, node, host):
    cn = f"system:node:{node.name}"
    csrs = [c for c in kube.certificates.list_certificate_signing_request().items
            if c.spec.signer_name == KUBELET_SIGNER and _csr_subject_cn(c) == cn]
    if not csrs:
        # Approved CSRs are garbage-collected an hour after they were issued: the certificate itself is the proof.
        subject = host.run("sudo -n openssl x509 -noout -subject -issuer -in /var/lib/kubelet/pki/kubelet-client-current.pem")
        got = subject.stdout.strip() or subject.stderr.strip() or "no certificate"
        expect_true(subject.rc == 0 and f"CN = {cn}" in got and "CN = kubernetes" in got,
                    f"a CSR for {cn}, or (after the hourly clean-up) a certificate for it signed by the cluster CA",
                    got.replace("\n", "; "), what="kubelet client certificate")
        return
    state = {}
    for c in csrs:
        types = {cond.type for cond in (c.status.conditions or []) if cond.status in (None, "True")}
        issued = bool(c.status.certificate)
        state[c.metadata.name] = ("Approved,Issued" if "Approved" in types and issued
                                  else "Denied" if "Denied" in types else "Failed" if "Failed" in types
                                  else "Approved (not issued)" if "Approved" in types else "Pending")
    expect_true(any(s == "Approved,Issued" for s in state.values()), f"a CSR for {cn} Approved,Issued",
                state, what="kubectl get csr")


@check("It has its own kubelet.conf and client certificate", on="worker", points=1, needs=["node_registered"],
       hint="kubeadm join writes /etc/kubernetes/kubelet.conf (pointing at the API server) once the kubelet has its "
            "certificate in /var/lib/kubelet/pki/kubelet-client-current.pem. If they are missing, the join did not "
            "finish: `sudo kubeadm reset -f` on the worker and join again.")
def test_kubelet_credentials(host, course, node):
    cp = course.control_plane
    conf = host.run("sudo -n cat /etc/kubernetes/kubelet.conf")
    expect_true(conf.rc == 0, "/etc/kubernetes/kubelet.conf", "missing", what="kubelet kubeconfig")
    try:
        data = load_yaml(conf.stdout) or {}
        server = data["clusters"][0]["cluster"]["server"]
    except Exception:  # noqa: BLE001
        server = "(not a kubeconfig)"
    wanted = {f"https://{cp.ip}:6443", f"https://{cp.name}:6443"}
    expect_true(server in wanted, f"https://{cp.ip}:6443 (or {cp.name})", server, what="kubelet.conf server")
    cert = host.run("sudo -n test -s /var/lib/kubelet/pki/kubelet-client-current.pem")
    expect_true(cert.rc == 0, "/var/lib/kubelet/pki/kubelet-client-current.pem", "missing or empty",
                what="kubelet client certificate")


@check("The bootstrap kubeconfig is gone", on="worker", points=1, needs=["kubelet_credentials"],
       hint="kubeadm join deletes /etc/kubernetes/bootstrap-kubelet.conf after the TLS bootstrap: one left behind holds "
            "a bootstrap token and means a join that did not finish. Delete it (`sudo rm "
            "/etc/kubernetes/bootstrap-kubelet.conf`) once kubelet.conf exists.")
def test_bootstrap_gone(host):
    expect_equal(host.file("/etc/kubernetes/bootstrap-kubelet.conf").exists, False,
                 what="/etc/kubernetes/bootstrap-kubelet.conf exists")


# ------------------------------------------------------------------------------------------------
# a pod on the worker, reached from the control plane
# ------------------------------------------------------------------------------------------------

@check(f"The test pod {TEST_POD} runs on a worker and answers from the control plane", on="cluster", points=2,
       needs=["node_ready"], wait_s=20, interval_s=3,
       hint=f"Run the notebook's test pod: `kubectl run {TEST_POD}` pinned to the worker with a container port; then "
            f"`kubectl get pod {TEST_POD} -o wide` and `curl http://<pod IP>:<port>/` on the control plane. No answer "
            "across nodes: the pod network between the nodes is broken (flannel on the NAT NIC, a firewall on UDP 8472).")
def test_pod_reachable(kube, hosts, course):
    cp = course.control_plane
    workers = {n.name for n in course.nodes if n.role == "worker"}
    pod = read_or_none(kube.core.read_namespaced_pod, TEST_POD, TEST_POD_NAMESPACE)
    if pod is None:
        fail(f"pod {TEST_POD_NAMESPACE}/{TEST_POD}", "none", what="test pod")
    on = pod.spec.node_name or "(unscheduled)"
    expect_true(on in workers, f"a worker ({', '.join(sorted(workers))})", on, what=f"node of pod {TEST_POD}")
    expect_equal(pod.status.phase, "Running", what=f"phase of pod {TEST_POD}")
    ip = pod.status.pod_ip or ""
    expect_true(bool(ip) and ipaddress.ip_address(ip) in course.network.pod_cidr,
                f"an IP in {course.network.pod_cidr}", ip or "(none)", what=f"IP of {TEST_POD}")
    ports = [p.container_port for c in pod.spec.containers for p in (c.ports or [])]
    expect_true(bool(ports), "a containerPort", "(none declared)", what=f"pod {TEST_POD}")
    code = hosts[cp.name].run(f"curl -s -o /dev/null -w '%{{http_code}}' -m 5 http://{ip}:{ports[0]}/").stdout.strip()
    expect_true(code.isdigit() and code != "000", "an HTTP answer", f"no answer (curl: {code or 'nothing'})",
                what=f"curl http://{ip}:{ports[0]}/ from {cp.name}")


@check(f"`kubectl logs {TEST_POD}` works: the API server reaches the worker's kubelet", on="cluster", points=1,
       needs=["node_ready"],
       hint="`kubectl logs` (and `exec`, `port-forward`) go from the API server to the kubelet of the pod's node, "
            "at the Node's InternalIP, port 10250. An error naming 10.0.2.15 means the worker registered with "
            "Vagrant's NAT address: give its kubelet --node-ip (Lab 3's /etc/default/kubelet) and restart it; a "
            "timeout on the private IP means port 10250 is blocked between the nodes.")
def test_pod_logs(kube):
    # reading logs is an observation (GET pods/log): the grader creates nothing and runs nothing in the pod
    try:
        kube.core.read_namespaced_pod_log(TEST_POD, TEST_POD_NAMESPACE, tail_lines=1)
    except Exception as e:
        status = api_status(e)
        if status is None:  # not an answer of the API server: the engine reports it as it came
            raise
        if status == 404:
            fail(f"pod {TEST_POD_NAMESPACE}/{TEST_POD}", "none", what="test pod")
        fail("its logs, through the API server", f"HTTP {status}: {_api_message(e)}"[:300],
             what=f"kubectl logs {TEST_POD}")


def _api_message(e) -> str:
    """The message of an error the API server answered with (an ApiException's JSON Status body)."""
    try:
        return json.loads(e.body or "{}").get("message") or e.reason
    except ValueError:
        return (e.body or e.reason or "").strip()


# ------------------------------------------------------------------------------------------------
# the smoke test: Deployment web behind Service web, reached from pod client
# ------------------------------------------------------------------------------------------------

def _smoke_deployment(kube):
    dep = read_or_none(kube.apps.read_namespaced_deployment, SMOKE_DEPLOYMENT, SMOKE_NS)
    if dep is None:
        fail(f"Deployment {SMOKE_NS}/{SMOKE_DEPLOYMENT}", "none", what="smoke test")
    return dep


def _smoke_pods(kube):
    """The Deployment's pods (by its own selector), Ready or not, sorted by name."""
    dep = _smoke_deployment(kube)
    labels = (dep.spec.selector.match_labels or {}) if dep.spec.selector else {}
    selector = ",".join(f"{k}={v}" for k, v in sorted(labels.items()))
    pods = kube.core.list_namespaced_pod(SMOKE_NS, label_selector=selector).items if selector else []
    return sorted((p for p in pods if not p.metadata.deletion_timestamp), key=lambda p: p.metadata.name)


def _ready(pod) -> bool:
    return pod.status.phase == "Running" and any(
        c.type == "Ready" and c.status == "True" for c in (pod.status.conditions or []))


def _ready_web_pods(kube):
    pods = [p for p in _smoke_pods(kube) if _ready(p)]
    expect_true(bool(pods), f"Ready pods of Deployment {SMOKE_NS}/{SMOKE_DEPLOYMENT}", "none", what="smoke test")
    return pods


def _kubectl(host, args: str, timeout_s: int = SMOKE_TIMEOUT_S):
    """kubectl on the control plane with kubeadm's admin kubeconfig, bounded by `timeout`."""
    return host.run(f"sudo -n timeout {timeout_s} kubectl --kubeconfig={ADMIN_CONF} {args}")


def _in_client(host, command: str):
    """`command` run in pod client (kubectl exec: a connection to the pod, no object created or changed)."""
    return _kubectl(host, f"-n {SMOKE_NS} exec {SMOKE_CLIENT} -- {command}")


def _said(result) -> str:
    text = (result.stderr.strip() or result.stdout.strip() or f"exit status {result.rc}").splitlines()
    return (text[-1] if text else f"exit status {result.rc}")[:300]


def nslookup_addresses(text: str) -> list[str]:
    """The addresses busybox (or bind9's) nslookup prints for the name asked, not the server's own address:
    the `Address` lines after the `Name:` line."""
    out, named = [], False
    for line in text.splitlines():
        if line.strip().startswith("Name:"):
            named = True
        m = re.match(r"^\s*Address(?:\s+\d+)?:\s*([0-9a-fA-F.:]+)", line)
        if named and m:
            out.append(m.group(1))
    return out


@check(f"The smoke test's Deployment {SMOKE_DEPLOYMENT} has a Ready pod on every node", on="cluster", points=1,
       needs=["node_ready"], wait_s=20, interval_s=3,
       hint=f"Run the notebook's smoke-test cell: namespace {SMOKE_NS}, Deployment {SMOKE_DEPLOYMENT} with 2 replicas, a "
            "topologySpreadConstraints entry on kubernetes.io/hostname (maxSkew 1, DoNotSchedule) and a toleration for "
            "node-role.kubernetes.io/control-plane:NoSchedule. `kubectl -n smoke get pods -o wide` shows where they "
            "run; `kubectl -n smoke describe pod` why one is Pending.")
def test_smoke_web_spread(kube, course):
    nodes = sorted(n.name for n in course.nodes)
    pods = _smoke_pods(kube)
    ready_on = sorted({p.spec.node_name for p in pods if _ready(p) and p.spec.node_name})
    expect_equal(ready_on, nodes, what=f"nodes with a Ready pod of Deployment {SMOKE_NS}/{SMOKE_DEPLOYMENT}")


@check(f"Service {SMOKE_SERVICE} sends to exactly the Deployment's Ready pods", on="cluster", points=1,
       needs=["smoke_web_spread"], wait_s=10, interval_s=2,
       hint=f"The Service's selector must match the pod template's labels (app: web) and its targetPort the "
            f"containers' port 8080: `kubectl -n {SMOKE_NS} get endpointslices -l kubernetes.io/service-name={SMOKE_SERVICE}` "
            "lists the pod IPs it sends to; none means the selector matches no pod.")
def test_smoke_service_endpoints(kube):
    svc = read_or_none(kube.core.read_namespaced_service, SMOKE_SERVICE, SMOKE_NS)
    if svc is None:
        fail(f"Service {SMOKE_NS}/{SMOKE_SERVICE}", "none", what="smoke test")
    pods = {p.status.pod_ip: p.metadata.name for p in _ready_web_pods(kube)}
    addrs = set()
    for sl in _endpoint_slices(kube, SMOKE_NS, SMOKE_SERVICE):
        for ep in sl.get("endpoints") or []:
            if (ep.get("conditions") or {}).get("ready") is not False:  # unset means ready (API docs)
                addrs.update(ep.get("addresses") or [])
    target = sorted({str(p.target_port) for p in (svc.spec.ports or [])})
    expect_equal(sorted(addrs), sorted(pods),
                 what=f"ready addresses in the EndpointSlices of Service {SMOKE_NS}/{SMOKE_SERVICE} (selector "
                      f"{svc.spec.selector or {}}, targetPort {', '.join(target) or '-'}; the web pods' IPs expected)")


def _container_ports(kube) -> set[int]:
    dep = _smoke_deployment(kube)
    return {p.container_port for c in dep.spec.template.spec.containers for p in (c.ports or [])}


def _endpoint_slices(kube, namespace: str, service: str) -> list[dict]:
    """The Service's EndpointSlices (v1 Endpoints is deprecated since 1.33), read by path (kube.get_json) so that
    the discovery.k8s.io/v1beta1 of clusters before 1.21 works too."""
    version = "v1" if cluster_minor(kube) >= ENDPOINTSLICE_V1_SINCE else "v1beta1"
    status, data = kube.get_json(f"/apis/discovery.k8s.io/{version}/namespaces/{namespace}/endpointslices",
                                 labelSelector=f"kubernetes.io/service-name={service}")
    if status != 200:
        fail(f"the EndpointSlices of Service {namespace}/{service}", f"HTTP {status} from the API server",
             what=f"discovery.k8s.io/{version} EndpointSlices")
    return (data if isinstance(data, dict) else {}).get("items") or []


@check(f"From pod {SMOKE_CLIENT}, {SMOKE_NAME} resolves to Service {SMOKE_SERVICE}'s ClusterIP (cluster DNS)",
       on="cluster", points=2, needs=["node_ready"], wait_s=10, interval_s=2,
       hint="Pods ask the kube-dns Service (its IP, the 10th of the service range, is the kubelet's clusterDNS and "
            "the nameserver in every pod's /etc/resolv.conf); CoreDNS answers behind it. `kubectl -n kube-system get "
            "deploy,pods,svc -l k8s-app=kube-dns -o wide`: CoreDNS Pending before the pod network, crash-looping on "
            "a resolv.conf loop, or no endpoints. `kubectl -n smoke exec client -- nslookup "
            "web.smoke.svc.cluster.local` shows the answer.")
def test_smoke_dns(kube, hosts, course):
    svc = read_or_none(kube.core.read_namespaced_service, SMOKE_SERVICE, SMOKE_NS)
    if svc is None:
        fail(f"Service {SMOKE_NS}/{SMOKE_SERVICE}", "none", what="smoke test")
    asked = _in_client(hosts[course.control_plane.name], f"nslookup {SMOKE_NAME}")
    got = nslookup_addresses(asked.stdout)
    expect_true(svc.spec.cluster_ip in got, f"an answer with {svc.spec.cluster_ip}",
                ", ".join(got) if got else f"no answer ({_said(asked)})", what=f"nslookup {SMOKE_NAME} in pod {SMOKE_CLIENT}")


@check(f"From pod {SMOKE_CLIENT}, http://{SMOKE_NAME}/ answers from a web pod (DNS, then the Service)",
       on="cluster", points=1, needs=["smoke_dns", "smoke_web_spread"], wait_s=10, interval_s=2,
       hint="The name resolves but nothing answers: the Service has no endpoints (selector), the wrong targetPort, or "
            "kube-proxy does not run on the client's node (`kubectl -n kube-system get pods -l k8s-app=kube-proxy "
            "-o wide`; its rules: `sudo iptables -t nat -L KUBE-SERVICES`).")
def test_smoke_service_by_name(kube, hosts, course):
    names = [p.metadata.name for p in _ready_web_pods(kube)]
    got = _in_client(hosts[course.control_plane.name], f"wget -qO- -T 5 http://{SMOKE_NAME}/")
    answer = got.stdout.strip()
    expect_true(got.rc == 0 and answer in names, f"the name of one of {', '.join(names)} (index.html)",
                answer[:120] if got.rc == 0 else f"no answer ({_said(got)})", what=f"wget http://{SMOKE_NAME}/ in pod {SMOKE_CLIENT}")


@check(f"From pod {SMOKE_CLIENT}, every web pod answers at its pod IP, on its node and across nodes", on="cluster",
       points=1, needs=["smoke_web_spread"], wait_s=10, interval_s=2,
       hint="Pod to pod across nodes is the pod network itself: the other node's pod range must be routed there "
            "(flannel's VXLAN on the private network, UDP 8472 open between the nodes). `kubectl -n smoke exec "
            "client -- wget -qO- -T 5 http://<pod IP>:8080/` for each web pod.")
def test_smoke_pod_to_pod(kube, hosts, course):
    cp = hosts[course.control_plane.name]
    got, want = {}, {}
    for p in _ready_web_pods(kube):
        port = next(iter(sorted(_container_ports(kube))), 8080)
        key = f"{p.metadata.name} ({p.status.pod_ip} on {p.spec.node_name})"
        r = _in_client(cp, f"wget -qO- -T 5 http://{p.status.pod_ip}:{port}/")
        got[key] = r.stdout.strip()[:120] if r.rc == 0 else f"no answer ({_said(r)})"
        want[key] = p.metadata.name
    expect_equal(got, want, what=f"wget from pod {SMOKE_CLIENT} to each web pod")


@check("`kubectl logs` and `kubectl exec` reach every web pod: the API server calls each node's kubelet",
       on="cluster", points=1, needs=["smoke_web_spread"], wait_s=10, interval_s=2,
       hint="logs, exec and port-forward go from the API server to the kubelet of the pod's node at the Node's "
            "InternalIP, port 10250. An error naming 10.0.2.15 means that node's kubelet registered Vagrant's NAT "
            "address (--node-ip, Lab 3); a timeout or 'connection refused' on the private IP means port 10250 is "
            "blocked between the nodes.")
def test_smoke_exec(kube, hosts, course):
    cp = hosts[course.control_plane.name]
    got, want = {}, {}
    for p in _ready_web_pods(kube):
        key = f"{p.metadata.name} on {p.spec.node_name}"
        try:  # GET pods/log: an observation
            kube.core.read_namespaced_pod_log(p.metadata.name, SMOKE_NS, tail_lines=1)
            logs = "ok"
        except Exception as e:
            if api_status(e) is None:  # not an answer of the API server: the engine reports it as it came
                raise
            logs = f"HTTP {api_status(e)}: {_api_message(e)}"[:200]
        r = _kubectl(cp, f"-n {SMOKE_NS} exec {p.metadata.name} -- cat /proc/sys/kernel/hostname")
        got[key] = {"logs": logs, "exec": r.stdout.strip() if r.rc == 0 else f"failed ({_said(r)})"}
        want[key] = {"logs": "ok", "exec": p.metadata.name}
    expect_equal(got, want, what="kubectl logs --tail=1 and kubectl exec -- cat /proc/sys/kernel/hostname")


# kubectl port-forward on a free local port (`:80`), its "Forwarding from 127.0.0.1:<port>" line read through a
# pipe (no file written), one request, then the forward stopped; `timeout` bounds it even if the kill is missed
PORT_FORWARD = r"""exec 3< <(exec timeout %(t)d kubectl --kubeconfig=%(conf)s -n %(ns)s port-forward service/%(svc)s :80 2>&1)
pf=$!
IFS= read -r -t %(t)d line <&3 || line="(kubectl port-forward printed nothing)"
port=$(printf '%%s\n' "$line" | sed -n 's/^Forwarding from 127[.]0[.]0[.]1:\([0-9]*\) .*/\1/p')
if [ -n "$port" ]; then
  for try in 1 2 3; do answer=$(curl -s -m 4 "http://127.0.0.1:$port/") && break; sleep 1; done
  echo "${answer:-(curl: no answer on 127.0.0.1:$port)}"
else echo "$line"; fi
kill "$pf" 2>/dev/null; wait "$pf" 2>/dev/null; true"""


@check(f"`kubectl port-forward service/{SMOKE_SERVICE}` answers on the control plane", on="cluster", points=1,
       needs=["smoke_web_spread"], wait_s=10, interval_s=2,
       hint="Like exec, port-forward is the API server calling the kubelet of the chosen pod's node (port 10250 at "
            "its InternalIP, --node-ip); then the kubelet connects to the pod's port. Try `kubectl -n smoke "
            "port-forward service/web 18080:80` and `curl http://127.0.0.1:18080/` on the control plane.")
def test_smoke_port_forward(kube, hosts, course):
    names = [p.metadata.name for p in _ready_web_pods(kube)]
    script = PORT_FORWARD % {"t": SMOKE_TIMEOUT_S, "conf": ADMIN_CONF, "ns": SMOKE_NS, "svc": SMOKE_SERVICE}
    r = hosts[course.control_plane.name].run("sudo -n bash -c %s", script)
    answer = r.stdout.strip()
    expect_true(answer in names, f"the name of one of {', '.join(names)} (index.html)", answer[:200] or "(nothing)",
                what=f"curl through kubectl port-forward service/{SMOKE_SERVICE}")


# ------------------------------------------------------------------------------------------------
# flannel (versions.cni.name == flannel)
# ------------------------------------------------------------------------------------------------

@check("flannel's DaemonSet runs a ready pod on every node", on="cluster", points=1,
       hint="Apply the release manifest of the course's flannel version on the control plane: "
            "`kubectl apply -f kube-flannel.yml`; `kubectl -n kube-flannel get ds,pods -o wide`, and "
            "`kubectl -n kube-flannel logs ds/kube-flannel-ds` for why a pod does not start.")
def test_flannel_ready(kube, course):
    _flannel(course)
    dss = _flannel_daemonsets(kube)
    expect_true(bool(dss), "a DaemonSet labelled app=flannel (kube-flannel/kube-flannel-ds)", "none",
                what="flannel DaemonSet")
    ds = dss[0]
    st = ds.status
    got = {"desired": st.desired_number_scheduled or 0, "ready": st.number_ready or 0}
    nodes = len(course.nodes)
    expect_equal(got, {"desired": nodes, "ready": nodes}, what=f"{ds.metadata.namespace}/{ds.metadata.name}")


@check("flannel's network is course.yaml's pod_cidr", on="cluster", points=1, needs=["flannel_ready"],
       hint="net-conf.json in the kube-flannel-cfg ConfigMap sets \"Network\"; it must equal pod_cidr (and "
            "kubeadm's --pod-network-cidr). Fix it in kube-flannel.yml, apply again and restart the DaemonSet: "
            "`kubectl -n kube-flannel rollout restart ds/kube-flannel-ds`.")
def test_flannel_network(kube, course):
    _flannel(course)
    cms = [c for c in kube.core.list_config_map_for_all_namespaces(label_selector="app=flannel").items
           if "net-conf.json" in (c.data or {})]
    expect_true(bool(cms), "the kube-flannel-cfg ConfigMap with net-conf.json", "none", what="flannel config")
    try:
        network = json.loads(cms[0].data["net-conf.json"]).get("Network", "(not set)")
    except ValueError:
        network = "(net-conf.json is not valid JSON)"
    expect_equal(network, str(course.network.pod_cidr), what="net-conf.json Network")


@check("flannel is told to use its private network interface", on="all", points=1, needs=["flannel_ready"],
       hint="Without a choice flannel takes the default route's NIC: on Vagrant that is the NAT NIC, 10.0.2.15 on "
            "every VM. Add `--iface-regex=<private subnet as a regex>` (e.g. ^192[.]168[.]56[.]) to the kube-flannel "
            "container's args in kube-flannel.yml (or --iface-can-reach / --iface with the private NIC, or the same "
            "as FLANNELD_IFACE_REGEX / FLANNELD_IFACE_CAN_REACH / FLANNELD_IFACE environment variables), apply "
            "again. The node annotation flannel.alpha.coreos.com/public-ip-overwrite=<private IP> also works.")
def test_flannel_iface(kube, host, node, course):
    _flannel(course)
    ds = _flannel_daemonsets(kube)[0]
    c = _flannel_container(ds)
    args = flannel_args(list(c.command or []) + list(c.args or []), c.env or [])
    overwrite = (_read_node(kube, node.name).metadata.annotations or {}).get(FLANNEL_PUBLIC_IP_OVERWRITE)
    addresses = parse_addresses(host.run("ip -o -4 addr show").stdout)
    ip, why = flannel_choice(args, addresses, _route_src(host), public_ip=overwrite)
    expect_equal(ip, str(node.ip), what=f"address flannel picks on {node.name} ({why})")


@check("flannel announces its private IP as the node's public IP", on="all", points=1,
       needs=["flannel_ready", "node_registered"],
       hint="flanneld writes the address it uses to the Node annotation flannel.alpha.coreos.com/public-ip. "
            "10.0.2.15 there means VXLAN traffic goes to the NAT address: fix its interface choice (--iface-regex) "
            "and `kubectl -n kube-flannel rollout restart ds/kube-flannel-ds`.")
def test_flannel_public_ip(host, kube, node, course):
    _flannel(course)
    n = _read_node(kube, node.name)
    got = (n.metadata.annotations or {}).get(FLANNEL_PUBLIC_IP, "(none)")
    expect_equal(got, str(node.ip), what=f"{FLANNEL_PUBLIC_IP} on {node.name}")
