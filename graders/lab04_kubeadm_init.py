"""Lab 4 — Bootstrap the control plane with kubeadm init. Every check only observes.

What `kubeadm init` leaves behind, phase by phase, and what the grader looks at:

| phase | left behind | check |
| --- | --- | --- |
| certs | /etc/kubernetes/pki, apiserver.crt SANs | pki_files, apiserver_sans |
| kubeconfig | admin/super-admin/controller-manager/scheduler/kubelet .conf | kubeconfigs |
| etcd, control-plane | 4 static pod manifests, their mirror pods | static_pods, control_plane_pods, advertise_address, api_reachable |
| kubelet-start | the Node with the private IP, the kubernetes Service's EndpointSlices | node_ip |
| upload-config | ConfigMaps kubeadm-config, kubelet-config | kubeadm_configmaps |
| mark-control-plane | control-plane label and NoSchedule taint | control_plane_node |
| bootstrap-token | RBAC for bootstrap tokens, the 24 h token Secret, kube-public/cluster-info | bootstrap_token, kubeadm_configmaps |
| addon | CoreDNS Deployment + kube-dns Service, kube-proxy DaemonSet | addons |
| (after init) | the lab user's ~/.kube/config | lab_user_kubeconfig |

Before a pod network (Lab 5) the node is NotReady and the CoreDNS pods are Pending: expected here, never a
failure. Version facts come from the cluster or the tools (`kubeadm version`), the pinned version from
course.yaml. API reads are lists (a missing object is an empty list, which evidence records and replays)."""

import calendar
import ipaddress
import re
import shlex
from base64 import b64decode
from datetime import datetime

import yaml

from kubelab.cluster.versions import cluster_minor
from kubelab.engine import check, expect_contains, expect_equal, expect_true, fail, load_yaml

PKI = "/etc/kubernetes/pki"
PKI_FILES = ("ca.crt", "ca.key", "apiserver.crt", "apiserver.key", "apiserver-kubelet-client.crt",
             "apiserver-kubelet-client.key", "apiserver-etcd-client.crt", "apiserver-etcd-client.key",
             "front-proxy-ca.crt", "front-proxy-ca.key", "front-proxy-client.crt", "front-proxy-client.key",
             "sa.key", "sa.pub", "etcd/ca.crt", "etcd/ca.key", "etcd/server.crt", "etcd/server.key",
             "etcd/peer.crt", "etcd/peer.key", "etcd/healthcheck-client.crt", "etcd/healthcheck-client.key")
COMPONENTS = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler")
KUBECONFIGS = ("admin.conf", "controller-manager.conf", "scheduler.conf", "kubelet.conf")
SUPER_ADMIN_SINCE = (1, 29)       # kubeadm writes super-admin.conf (system:masters) from 1.29 on
UNVERSIONED_KUBELET_CM = (1, 24)  # kube-system/kubelet-config; before: kubelet-config-1.<minor>
CONTROL_PLANE_TAINT_SINCE = (1, 24)  # node-role.kubernetes.io/control-plane:NoSchedule; before: .../master
ROLE = "node-role.kubernetes.io/"
ADMIN_CONF = "/etc/kubernetes/admin.conf"
TOKEN_GROUP = "system:bootstrappers:kubeadm:default-node-token"

ADVERTISE_HINT = (
    "Reset and init again with the private IP: `sudo kubeadm reset -f`, then `kubeadm init` with "
    "`--apiserver-advertise-address=$KUBELAB_CONTROL_PLANE_IP` (or localAPIEndpoint.advertiseAddress in the "
    "config file). Without it kubeadm takes the default route's interface: 10.0.2.15, Vagrant's NAT address, "
    "which the other node cannot reach.")


def _cp(course):
    return course.control_plane


def _api_url(course) -> str:
    return f"https://{_cp(course).ip}:6443"


def _service_ip(course, index: int) -> str:
    return str(ipaddress.ip_network(str(course.network.service_cidr))[index])


def _version_tuple(text: str) -> tuple[int, int]:
    m = re.search(r"v?(\d+)\.(\d+)", text or "")
    return (int(m.group(1)), int(m.group(2))) if m else (0, 0)


def _flags(manifest: dict) -> dict[str, str]:
    """--name=value flags of the first container of a static pod manifest."""
    c = (manifest.get("spec", {}).get("containers") or [{}])[0]
    out = {}
    for arg in (c.get("command") or []) + (c.get("args") or []):
        if isinstance(arg, str) and arg.startswith("--"):
            name, _, value = arg[2:].partition("=")
            out[name] = value
    return out


def _reaches_control_plane(host, server: str, course) -> bool:
    """Whether a kubeconfig's server URL leads to the control plane's private IP, port 6443: the IP itself, or a
    name (the node name of course.yaml, a controlPlaneEndpoint) that resolves to it on this node (/etc/hosts,
    DNS: `getent ahostsv4`, as the components' resolver does)."""
    from urllib.parse import urlsplit

    try:
        url = urlsplit(server)
        host_name, port = url.hostname, url.port
    except ValueError:
        return False
    if url.scheme != "https" or port != 6443 or not host_name:
        return False
    ip = str(_cp(course).ip)
    try:
        return str(ipaddress.ip_address(host_name)) == ip
    except ValueError:
        pass
    if not re.fullmatch(r"[A-Za-z0-9.-]+", host_name):
        return False
    resolved = host.run("getent ahostsv4 %s", host_name).stdout.split()
    # clients use the first address: Debian's `127.0.1.1 <name>` line above Lab 1's makes the name loopback
    return resolved[:1] == [ip]


def _read_manifest(host, name: str) -> dict | None:
    r = host.run("sudo -n cat /etc/kubernetes/manifests/%s.yaml", name)
    if r.rc != 0:
        return None
    try:
        data = load_yaml(r.stdout)
    except yaml.YAMLError:
        return None
    return data if isinstance(data, dict) else None


def _now(host) -> int:
    # the control plane's clock, over SSH: recorded with the evidence, so a replay judges the same way
    return int(host.run("date +%s").stdout.strip())


# ------------------------------------------------------------------------------------------------
# phase certs
# ------------------------------------------------------------------------------------------------

@check("kubeadm created the cluster's certificates and keys in /etc/kubernetes/pki", on="control-plane", points=1,
       hint="The `certs` phase of `kubeadm init` writes them; with files missing, run `sudo kubeadm reset -f` and "
            "`kubeadm init` again (or regenerate one with `sudo kubeadm init phase certs <name>`).")
def test_pki_files(host):
    listed = host.run("sudo -n find %s -type f", PKI)
    have = {p.removeprefix(PKI + "/") for p in listed.stdout.split()}
    expect_contains(have, PKI_FILES, what=f"files in {PKI}")


@check("The API server's certificate is valid for the private IP and the kubernetes Service IP", on="control-plane",
       points=2, hint=ADVERTISE_HINT + " The first IP of the service CIDR is the `kubernetes` Service's ClusterIP: "
                                       "pods reach the API server through it, so it must be in the certificate too.")
def test_apiserver_sans(host, course):
    from cryptography import x509

    r = host.run("cat %s/apiserver.crt", PKI)
    if r.rc != 0:
        fail(f"{PKI}/apiserver.crt", r.stderr.strip() or "missing", what="API server certificate")
    cert = x509.load_pem_x509_certificate(r.stdout.encode())
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        san = None
    ips = {str(ip) for ip in san.get_values_for_type(x509.IPAddress)} if san else set()
    dns = set(san.get_values_for_type(x509.DNSName)) if san else set()
    expect_contains(ips, [str(_cp(course).ip), _service_ip(course, 1)], what="IP addresses in apiserver.crt")
    expect_contains(dns, ["kubernetes", "kubernetes.default", "kubernetes.default.svc", _cp(course).name],
                    what="DNS names in apiserver.crt")


# ------------------------------------------------------------------------------------------------
# phase kubeconfig
# ------------------------------------------------------------------------------------------------

@check("kubeadm wrote the kubeconfig files, and admin.conf points at the private IP", on="control-plane", points=1,
       hint="The `kubeconfig` phase writes them to /etc/kubernetes (super-admin.conf since 1.29). A missing one: "
            "`sudo kubeadm init phase kubeconfig <name>`; a wrong server address: see the advertise address. A "
            "controlPlaneEndpoint by name (e.g. the node name) must resolve to the private IP on the control plane "
            "(`getent ahostsv4 <name>`; Lab 1's /etc/hosts, not Debian's 127.0.1.1 line).")
def test_kubeconfigs(host, course):
    version = _version_tuple(host.run("kubeadm version -o short").stdout)
    wanted = list(KUBECONFIGS) + (["super-admin.conf"] if version >= SUPER_ADMIN_SINCE else [])
    listed = host.run("sudo -n find /etc/kubernetes -maxdepth 1 -name '*.conf'").stdout.split()
    expect_contains({p.rsplit("/", 1)[-1] for p in listed}, wanted, what="kubeconfigs in /etc/kubernetes")
    conf = host.run("sudo -n cat %s", ADMIN_CONF)
    try:
        servers = [c["cluster"]["server"] for c in load_yaml(conf.stdout)["clusters"]]
    except Exception:
        servers = ["(not a kubeconfig)"]
    cp = _cp(course)
    # a controlPlaneEndpoint such as master:6443 is as right as the IP, when the name leads to the private IP here
    ok = len(servers) == 1 and _reaches_control_plane(host, servers[0], course)
    expect_true(ok, f"{_api_url(course)} (or https://<a name resolving to {cp.ip}, such as {cp.name}>:6443)",
                ", ".join(servers), what="server in admin.conf")


# ------------------------------------------------------------------------------------------------
# phases etcd, control-plane (static pods) and the API they bring up
# ------------------------------------------------------------------------------------------------

@check("The four static pod manifests are in /etc/kubernetes/manifests", on="control-plane", points=1,
       hint="kubelet runs the control plane from etcd.yaml, kube-apiserver.yaml, kube-controller-manager.yaml and "
            "kube-scheduler.yaml in /etc/kubernetes/manifests. Put a moved file back (kubelet starts it within "
            "seconds) or regenerate it: `sudo kubeadm init phase control-plane all` / `... phase etcd local`.")
def test_static_pods(host):
    listed = host.run("sudo -n find /etc/kubernetes/manifests -maxdepth 1 -type f").stdout.split()
    expect_contains({p.rsplit("/", 1)[-1] for p in listed}, [f"{c}.yaml" for c in COMPONENTS],
                    what="files in /etc/kubernetes/manifests")


@check("The API server answers at https://<private IP>:6443 from every node", on="cluster", points=1,
       wait_s=30, interval_s=3,
       hint="`curl --cacert /etc/kubernetes/pki/ca.crt https://$KUBELAB_CONTROL_PLANE_IP:6443/readyz` on the "
            "control plane; if it does not answer: `sudo crictl ps -a` and `sudo crictl logs <kube-apiserver id>` (crictl "
            "is the package cri-tools, installed in Lab 3: kubeadm no longer pulls it in), "
            "`journalctl -u kubelet`. \"no alternative certificate subject name matches\": the certificate lacks the "
            "private IP, see the advertise address. From the worker it must answer too (Lab 5's join goes there).")
def test_api_reachable(hosts, course):
    url = _api_url(course) + "/readyz"
    got = {}
    for n in course.nodes:
        # the control plane verifies the certificate against the cluster CA (and so its SANs); the worker has no
        # CA before it joins: it shows the network path
        tls = "--cacert /etc/kubernetes/pki/ca.crt" if n.name == _cp(course).name else "-k"
        r = hosts[n.name].run(f"curl -sS --max-time 5 {tls} {shlex.quote(url)}")
        got[n.name] = r.stdout.strip() if r.rc == 0 else (r.stderr.strip().splitlines() or [f"exit {r.rc}"])[-1]
    expect_equal(got, {n.name: "ok" for n in course.nodes}, what=f"GET {url}")


@check("etcd, the API server, the controller manager and the scheduler run as static pods", on="cluster",
       points=1, needs=["api_reachable"], wait_s=60, interval_s=5,
       hint="Their mirror pods in kube-system show what kubelet runs: `kubectl -n kube-system get pods -o wide`. "
            "One missing or not Running: is its manifest in /etc/kubernetes/manifests? `sudo crictl ps -a`, "
            "`sudo crictl logs <id>` (crictl: package cri-tools, Lab 3).")
def test_control_plane_pods(kube, course):
    cp = _cp(course).name
    pods = kube.core.list_namespaced_pod("kube-system", label_selector="tier=control-plane").items
    state = {c: "missing" for c in COMPONENTS}
    for p in pods:
        comp = (p.metadata.labels or {}).get("component")
        if comp not in state or p.spec.node_name != cp:
            continue
        mirror = "kubernetes.io/config.mirror" in (p.metadata.annotations or {})
        statuses = p.status.container_statuses or []
        running = p.status.phase == "Running" and bool(statuses) and all(s.state and s.state.running
                                                                         for s in statuses)
        state[comp] = "Running" if mirror and running else \
            f"{p.status.phase}{'' if running else ' (containers not running)'}{'' if mirror else ' (not a mirror pod)'}"
    expect_equal(state, {c: "Running" for c in COMPONENTS}, what=f"control-plane pods on {cp}")


@check("The API server advertises the control plane's private IP", on="control-plane", points=1,
       hint=ADVERTISE_HINT)
def test_advertise_address(host, node):
    manifest = _read_manifest(host, "kube-apiserver")
    if manifest is None:
        fail(f"--advertise-address={node.ip} in kube-apiserver.yaml", "no readable kube-apiserver.yaml",
             what="API server manifest")
    expect_equal(_flags(manifest).get("advertise-address", "(no --advertise-address)"), str(node.ip),
                 what="--advertise-address in /etc/kubernetes/manifests/kube-apiserver.yaml")


# ------------------------------------------------------------------------------------------------
# kubelet-start, mark-control-plane
# ------------------------------------------------------------------------------------------------

ENDPOINTSLICE_V1_SINCE = (1, 21)  # discovery.k8s.io/v1; 1.17-1.20 serve v1beta1 (same fields used here)


def _kubernetes_endpoint_addresses(kube) -> list[str]:
    """The ready addresses of Service default/kubernetes from its EndpointSlices (v1 Endpoints is deprecated since
    1.33). Read with kube.get_json (a path, not an API class), so that the v1beta1 of older clusters works as well."""
    version = "v1" if cluster_minor(kube) >= ENDPOINTSLICE_V1_SINCE else "v1beta1"
    status, data = kube.get_json(f"/apis/discovery.k8s.io/{version}/namespaces/default/endpointslices",
                                 labelSelector="kubernetes.io/service-name=kubernetes")
    if status != 200:
        fail("the EndpointSlices of Service default/kubernetes", f"HTTP {status} from the API server",
             what=f"discovery.k8s.io/{version} EndpointSlices")
    addrs = set()
    for sl in (data or {}).get("items") or []:
        for ep in sl.get("endpoints") or []:
            if (ep.get("conditions") or {}).get("ready") is not False:  # unset means ready (API docs)
                addrs.update(ep.get("addresses") or [])
    return sorted(addrs)


def _node(kube, name):
    items = kube.core.list_node(field_selector=f"metadata.name={name}").items
    if not items:
        fail(f"a Node {name}", "none: the kubelet never registered (journalctl -u kubelet)", what="Node")
    return items[0]


@check("The cluster knows the control plane by its private IP (Node address, kubernetes EndpointSlices)", on="cluster",
       points=1, needs=["api_reachable"],
       hint="Give the kubelet the private IP: nodeRegistration.kubeletExtraArgs `node-ip` in the kubeadm config "
            "(or KUBELET_EXTRA_ARGS=--node-ip=... in /etc/default/kubelet), then `sudo systemctl restart kubelet`; "
            "otherwise the Node gets Vagrant's NAT address 10.0.2.15 and `kubectl logs`/`exec` fail. The "
            "EndpointSlices of Service default/kubernetes carry the API server's advertise address.")
def test_node_ip(kube, course):
    cp = _cp(course)
    node = _node(kube, cp.name)
    internal = [a.address for a in node.status.addresses or [] if a.type == "InternalIP"]
    addrs = _kubernetes_endpoint_addresses(kube)
    expect_equal({f"InternalIP of Node {cp.name}": internal, "EndpointSlices of Service default/kubernetes": addrs},
                 {f"InternalIP of Node {cp.name}": [str(cp.ip)],
                  "EndpointSlices of Service default/kubernetes": [str(cp.ip)]},
                 what="addresses of the control plane")


@check("The control-plane Node carries the control-plane role label and NoSchedule taint", on="cluster", points=1,
       needs=["api_reachable"],
       hint="The `mark-control-plane` phase sets them; ordinary pods must not land on the control plane. Put back "
            "a removed taint: `kubectl taint nodes <cp> node-role.kubernetes.io/control-plane:NoSchedule`; "
            "or run `sudo kubeadm init phase mark-control-plane`.")
def test_control_plane_node(kube, course):
    cp = _cp(course)
    node = _node(kube, cp.name)
    key = ROLE + ("control-plane" if cluster_minor(kube) >= CONTROL_PLANE_TAINT_SINCE else "master")
    labels = sorted(k for k in (node.metadata.labels or {}) if k.startswith(ROLE))
    taints = sorted(f"{t.key}:{t.effect}" for t in node.spec.taints or [] if t.key.startswith(ROLE))
    expect_contains(labels, [ROLE + "control-plane"], what=f"role labels of Node {cp.name}")
    expect_contains(taints, [f"{key}:NoSchedule"], what=f"role taints of Node {cp.name}")


# ------------------------------------------------------------------------------------------------
# upload-config, bootstrap-token, addon
# ------------------------------------------------------------------------------------------------

def _configmaps(kube, namespace):
    return {c.metadata.name: c for c in kube.core.list_namespaced_config_map(namespace).items}


@check("kubeadm uploaded its configuration, with the course's pod and service networks", on="cluster", points=1,
       needs=["api_reachable"],
       hint="`upload-config` stores kube-system/kubeadm-config and kubelet-config; `bootstrap-token` publishes "
            "kube-public/cluster-info. Wrong networks: `sudo kubeadm reset -f` and init again with "
            "`--pod-network-cidr=$KUBELAB_POD_CIDR --service-cidr=$KUBELAB_SERVICE_CIDR` (flannel in Lab 5 "
            "expects the course's pod network).")
def test_kubeadm_configmaps(kube, course):
    minor = cluster_minor(kube)
    kubelet_cm = "kubelet-config" if minor >= UNVERSIONED_KUBELET_CM else f"kubelet-config-{minor[0]}.{minor[1]}"
    system = _configmaps(kube, "kube-system")
    public = _configmaps(kube, "kube-public")
    have = [f"kube-system/{n}" for n in system] + [f"kube-public/{n}" for n in public]
    expect_contains(have, ["kube-system/kubeadm-config", f"kube-system/{kubelet_cm}", "kube-public/cluster-info"],
                    what="ConfigMaps")
    cfg = load_yaml((system["kubeadm-config"].data or {}).get("ClusterConfiguration", "")) or {}
    net = cfg.get("networking") or {}
    expect_equal({"podSubnet": net.get("podSubnet", "(unset)"), "serviceSubnet": net.get("serviceSubnet", "(unset)")},
                 {"podSubnet": str(course.network.pod_cidr), "serviceSubnet": str(course.network.service_cidr)},
                 what="networking in kubeadm-config")


@check("The control plane runs the Kubernetes version pinned by the course", on="cluster", points=1,
       needs=["api_reachable"],
       hint="Install the pinned packages (Lab 3) and init with `--kubernetes-version=$KUBELAB_K8S_VERSION` "
            "(kubernetesVersion in the config file); otherwise kubeadm asks the internet for the latest stable.")
def test_pinned_version(kube, course):
    expect_equal(kube.version.git_version, "v" + course.versions.kubernetes.patch, what="API server /version")


# What the bootstrap-token phase leaves that outlives its token: the default token lives 24 h and the controller
# manager's token cleaner deletes it when it expires, so a correct Lab 4 regraded the next day has no token. The
# RBAC that lets any token of the default group join stays (kubeadm's bootstraptoken/node package).
BOOTSTRAP_BINDINGS = {"kubeadm:kubelet-bootstrap": "system:node-bootstrapper",
                      "kubeadm:node-autoapprove-bootstrap":
                          "system:certificates.k8s.io:certificatesigningrequests:nodeclient"}


def _usable_tokens(kube, now: int) -> tuple[list[str], list[str]]:
    """(usable default-group token Secrets, the others as `name (why)`)."""
    secrets = kube.core.list_namespaced_secret(
        "kube-system", field_selector="type=bootstrap.kubernetes.io/token").items
    usable, other = [], []
    for s in secrets:
        data = {k: b64decode(v).decode() for k, v in (s.data or {}).items() if k != "token-secret"}
        exp = data.get("expiration")
        left = (calendar.timegm(datetime.fromisoformat(exp.replace("Z", "+00:00")).utctimetuple()) - now
                if exp else None)
        if left is not None and left <= 0:
            other.append(f"{s.metadata.name} (expired)")
        elif data.get("usage-bootstrap-authentication") != "true" or TOKEN_GROUP not in data.get("auth-extra-groups", ""):
            other.append(f"{s.metadata.name} (not for joining nodes)")
        else:
            usable.append(s.metadata.name)
    return usable, other


@check("Bootstrap tokens can join the worker: kubeadm's RBAC for them is in place", on="cluster", points=1,
       needs=["api_reachable"],
       hint="The `bootstrap-token` phase binds the group system:bootstrappers:kubeadm:default-node-token to the "
            "roles a joining kubelet needs (ClusterRoleBindings kubeadm:kubelet-bootstrap and "
            "kubeadm:node-autoapprove-bootstrap) and creates a token valid for 24 h. Missing bindings: "
            "`sudo kubeadm init phase bootstrap-token`. The token itself expiring (the token cleaner then deletes "
            "it) is expected, not a fault: Lab 5 makes a fresh one with "
            "`sudo kubeadm token create --print-join-command`.")
def test_bootstrap_token(kube, hosts, course):
    got = {}
    for name, role in BOOTSTRAP_BINDINGS.items():
        items = kube.rbac.list_cluster_role_binding(field_selector=f"metadata.name={name}").items
        if not items:
            got[name] = "missing"
            continue
        groups = [s.name for s in items[0].subjects or [] if s.kind == "Group"]
        got[name] = "ok" if items[0].role_ref.name == role and TOKEN_GROUP in groups else \
            f"binds {', '.join(groups) or 'no group'} to {items[0].role_ref.name}"
    usable, other = _usable_tokens(kube, _now(hosts[_cp(course).name]))
    # a token is not required (see BOOTSTRAP_BINDINGS); shown when the bindings fail, to help the learner
    tokens = ", ".join(usable + other) or "none left (expired tokens are deleted by the token cleaner)"
    expect_equal(got, {name: "ok" for name in BOOTSTRAP_BINDINGS},
                 what=f"ClusterRoleBindings for {TOKEN_GROUP} (tokens: {tokens})")


@check("kubeadm installed its addons: CoreDNS behind kube-dns, and kube-proxy", on="cluster", points=1,
       needs=["api_reachable"],
       hint="The `addon` phase creates Deployment coredns, Service kube-dns (the 10th IP of the service CIDR) and "
            "DaemonSet kube-proxy: `sudo kubeadm init phase addon all --config ...`. CoreDNS pods stay Pending "
            "until Lab 5's pod network: that is expected.")
def test_addons(kube, course):
    deployments = {d.metadata.name for d in kube.apps.list_namespaced_deployment("kube-system").items}
    daemonsets = {d.metadata.name for d in kube.apps.list_namespaced_daemon_set("kube-system").items}
    services = {s.metadata.name: s.spec.cluster_ip for s in kube.core.list_namespaced_service("kube-system").items}
    have = [f"Deployment {n}" for n in deployments] + [f"DaemonSet {n}" for n in daemonsets] + \
        [f"Service {n} {ip}" for n, ip in services.items()]
    expect_contains(have, ["Deployment coredns", f"Service kube-dns {_service_ip(course, 10)}", "DaemonSet kube-proxy"],
                    what="kube-system")


# ------------------------------------------------------------------------------------------------
# after init: the lab user's kubectl
# ------------------------------------------------------------------------------------------------

@check("The lab user's kubectl reaches the cluster (~/.kube/config)", on="control-plane", points=1,
       needs=["api_reachable"],
       hint="As the lab user: `mkdir -p $HOME/.kube && sudo cp /etc/kubernetes/admin.conf $HOME/.kube/config && "
            "sudo chown $(id -u):$(id -g) $HOME/.kube/config`. \"localhost:8080 refused\" means kubectl found no "
            "kubeconfig at all.")
def test_lab_user_kubeconfig(host, course, node):
    user = course.lab_user
    r = host.run(f"sudo -n -u {user} -H kubectl get node {node.name} -o name --request-timeout=10s 2>&1")
    out = r.stdout.strip().splitlines()
    expect_equal(out[-1] if out else f"exit {r.rc}", f"node/{node.name}", what=f"`kubectl get node` as {user}")
