"""Lab 4 evidence for what the v1.20.2 twin cluster cannot show: a kubeadm v1.36 control plane right after
`kubeadm init`, before a pod network, simulated as data and recorded into a real evidence file.

Modelled on real captures (shared/realdata, studied, not copied): the `kubeadm init` logs of v1.28/v1.32
(SANs `kubernetes kubernetes.default kubernetes.default.svc kubernetes.default.svc.cluster.local <node>` and IPs
`10.96.0.1 <advertise>`, super-admin.conf since 1.29, `kubelet-config` ConfigMap, control-plane label + taint,
both addons), the v1.28 NodeList (Ready=False "cni plugin not initialized", taints control-plane and not-ready,
cri-socket annotation), the v1.28 kube-system PodList (4 mirror pods with `kubernetes.io/config.mirror`, owner
kind Node; coredns Pending) and the v1.29 static pod manifests (`--advertise-address=`).

`Sim136` holds the state; `mistake=` turns one realistic learner mistake on. `SimTarget` answers the grader's
commands and API calls from it; `record_lab` records those answers into evidence exactly as on live nodes, and
the tests replay the saved file.

What the grader compares with never comes from the grader's own rules or from course.yaml's derived values: the
version is the literal kubeadm v1.36.4 reports, the `kubernetes` Service IP and the apiserver certificate's DNS
names are read from a real `kubeadm init` log, the kube-dns ClusterIP from a real kubelet config (both captures
used the default service CIDR 10.96.0.0/12, as the course does), read from ../shared/realdata at test time. The
nodes answer commands from their files and programs (`find`, `cat`, `curl`, `kubectl`, ...) as a shell would,
not from the grader's command strings. A command or API call the simulation cannot answer raises
`SimulationGap`, an infrastructure error: the engine reports it as an error, never as the learner's fail."""

from __future__ import annotations

import datetime as dt
import fnmatch
import ipaddress
import json
import re
import shlex
import zlib
from base64 import b64encode
from dataclasses import dataclass, field
from types import SimpleNamespace
from urllib.parse import parse_qs, unquote, urlsplit

import yaml
from testinfra.backend.base import BaseBackend, CommandResult

from helpers import shared_realdata
from kubelab.engine.targets import Target
from kubelab.errors import InfrastructureError

NOW = 1_795_000_000  # the control plane's clock (date +%s) in the simulation
LAB_USER = "vagrant"  # the Vagrant boxes' login user
KUBEADM_PKI = ("ca.crt", "ca.key", "apiserver.crt", "apiserver.key", "apiserver-kubelet-client.crt",
               "apiserver-kubelet-client.key", "front-proxy-ca.crt", "front-proxy-ca.key", "front-proxy-client.crt",
               "front-proxy-client.key", "etcd/ca.crt", "etcd/ca.key", "etcd/server.crt", "etcd/server.key",
               "etcd/peer.crt", "etcd/peer.key", "etcd/healthcheck-client.crt", "etcd/healthcheck-client.key",
               "apiserver-etcd-client.crt", "apiserver-etcd-client.key", "sa.key", "sa.pub")

VERSION = "v1.36.4"  # `kubeadm version -o short` and the API server's gitVersion of the release the course pins
FLANNEL_POD_CIDR = "10.244.0.0/16"  # --pod-network-cidr for flannel: its kube-flannel.yml's default Network
KUBEADM_SERVICE_CIDR = "10.96.0.0/12"  # kubeadm's default serviceSubnet (kubeadm init --service-cidr)


class SimulationGap(InfrastructureError):
    """The simulation has no answer: a gap in the stand-in, reported as an error, never as a learner's fail."""

    def __init__(self, what: str):
        super().__init__(f"the simulated control plane has no answer for {what}",
                         "extend tests/lab04_evidence.py, or grade a real node")


def captured_service_ips() -> tuple[list[str], str, str]:
    """From real captures (the default service CIDR 10.96.0.0/12): the apiserver certificate's DNS names without
    the node's own name and its first IP (the `kubernetes` Service) from a v1.32 `kubeadm init` log, and the
    kube-dns ClusterIP (kubelet's clusterDNS) from a v1.29 kubelet config."""
    log = next(shared_realdata("kubeadm-init-logs").glob("v1.32*")).read_text()
    m = re.search(r"apiserver serving cert is signed for DNS names \[([^\]]*)\] and IPs \[(\S+) ", log)
    assert m, "the v1.32 kubeadm init log names the apiserver certificate's SANs"
    dns = [d for d in m.group(1).split() if d.startswith("kubernetes")]
    kubelet = yaml.safe_load(next(shared_realdata("kubelet-config").glob("v1.29*.yaml")).read_text())
    return dns, m.group(2), kubelet["clusterDNS"][0]


MISTAKES = {
    # kubeadm init without --apiserver-advertise-address on a Vagrant VM: the default route's NIC (NAT)
    "nat_advertise": "init took 10.0.2.15 (Vagrant's NAT NIC) for the advertise address and the node IP",
    # --apiserver-advertise-address given, but the kubelet left without --node-ip (Lab 3's /etc/default/kubelet):
    # the API server answers on the private IP while the Node registers with the NAT address
    "kubelet_nat_ip": "kubelet without --node-ip: the Node's InternalIP is 10.0.2.15",
    # the usual single-node tutorial step, done on a cluster that gets a worker
    "taint_removed": "kubectl taint nodes --all node-role.kubernetes.io/control-plane-",
    # Calico's default pool in a flannel course
    "calico_cidr": "kubeadm init --pod-network-cidr=192.168.0.0/16",
    # kubeadm from another minor (Lab 3 not pinned): init picks that version
    "wrong_version": "kubeadm v1.35.2 installed instead of the pinned patch",
    # init without the bootstrap-token phase: no RBAC for joining tokens, no token, no cluster-info
    "skip_bootstrap_token": "kubeadm init --skip-phases=bootstrap-token",
    # kubeadm init --skip-phases=addon/kube-proxy (or proxy.disabled: true)
    "no_kube_proxy": "kubeadm init --skip-phases=addon/kube-proxy",
    # super-admin.conf deleted (someone read it is "not needed")
    "no_super_admin": "rm /etc/kubernetes/super-admin.conf",
    # the API server down: its manifest moved out
    "apiserver_down": "sudo mv /etc/kubernetes/manifests/kube-apiserver.yaml /tmp/",
}


def _cert(cn: str, dns: list[str], ips: list[str]) -> str:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    san = [x509.DNSName(d) for d in dns] + [x509.IPAddress(ipaddress.ip_address(i)) for i in ips]
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(x509.Name(
        [x509.NameAttribute(NameOID.COMMON_NAME, "kubernetes")])).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(dt.datetime.fromtimestamp(NOW - 3600, dt.timezone.utc))
        .not_valid_after(dt.datetime.fromtimestamp(NOW + 365 * 86400, dt.timezone.utc))
        .add_extension(x509.SubjectAlternativeName(san), critical=False)
        .sign(key, hashes.SHA256()))
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def _ts(t: int) -> str:
    return dt.datetime.fromtimestamp(t, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class Sim136:
    """A kubeadm v1.36 control plane right after init (no pod network yet, no worker joined)."""

    course: object            # the course model: node names and IPs only (the VMs' identity, set from course.yaml)
    mistake: str | None = None
    # a correct init graded again the next day (no mistake): the 24 h token has expired ("expired"), and the
    # controller manager's token cleaner has deleted it ("cleaned", what a regrade really sees)
    next_day: str | None = None
    # init with controlPlaneEndpoint <node name>:6443: the kubeconfigs name the control plane, which /etc/hosts
    # resolves to the private IP ("name", Lab 1's /etc/hosts) or to Debian's 127.0.1.1 line ("name_loopback")
    endpoint: str | None = None
    _cert_pem: str = field(default="", repr=False)

    def __post_init__(self):
        if self.mistake is not None and self.mistake not in MISTAKES:
            raise ValueError(self.mistake)
        if self.next_day not in (None, "expired", "cleaned"):
            raise ValueError(self.next_day)
        if self.endpoint not in (None, "name", "name_loopback", "name_loopback_first"):
            raise ValueError(self.endpoint)
        m = self.course
        self.cp = m.control_plane
        self.version = "v1.35.2" if self.mistake == "wrong_version" else VERSION
        self.advertise = "10.0.2.15" if self.mistake == "nat_advertise" else str(self.cp.ip)
        self.node_ip = "10.0.2.15" if self.mistake == "kubelet_nat_ip" else self.advertise
        self.pod_cidr = "192.168.0.0/16" if self.mistake == "calico_cidr" else FLANNEL_POD_CIDR
        self.service_cidr = KUBEADM_SERVICE_CIDR
        dns, self.kubernetes_ip, self.dns_ip = captured_service_ips()
        self.san_ips = [self.kubernetes_ip, self.advertise]
        self._cert_pem = _cert("kube-apiserver", dns + [self.cp.name], self.san_ips)

    # -- files and commands on the nodes ------------------------------------------------------------------
    def kubeconfig(self) -> str:
        return yaml.safe_dump({
            "apiVersion": "v1", "kind": "Config", "current-context": "kubernetes-admin@kubernetes",
            "clusters": [{"name": "kubernetes", "cluster": {"certificate-authority-data": "LS0tLS1CRUdJTi1DQQ==",
                                                             "server": f"https://{self.cp.name if self.endpoint else self.advertise}:6443"}}],
            "contexts": [{"name": "kubernetes-admin@kubernetes",
                          "context": {"cluster": "kubernetes", "user": "kubernetes-admin"}}],
            "users": [{"name": "kubernetes-admin", "user": {"client-certificate-data": "LS0tLS1CRUdJTi1DRVJU",
                                                            "client-key-data": "LS0tLS1CRUdJTi1LRVk="}}]})

    def apiserver_manifest(self) -> str:
        cmd = ["kube-apiserver", f"--advertise-address={self.advertise}", "--allow-privileged=true",
               "--authorization-mode=Node,RBAC", "--client-ca-file=/etc/kubernetes/pki/ca.crt",
               "--enable-admission-plugins=NodeRestriction", "--enable-bootstrap-token-auth=true",
               "--etcd-servers=https://127.0.0.1:2379", "--secure-port=6443",
               f"--service-cluster-ip-range={self.service_cidr}",
               "--tls-cert-file=/etc/kubernetes/pki/apiserver.crt",
               "--tls-private-key-file=/etc/kubernetes/pki/apiserver.key"]
        return yaml.safe_dump({"apiVersion": "v1", "kind": "Pod", "metadata": {
            "annotations": {"kubeadm.kubernetes.io/kube-apiserver.advertise-address.endpoint": f"{self.advertise}:6443"},
            "creationTimestamp": None, "labels": {"component": "kube-apiserver", "tier": "control-plane"},
            "name": "kube-apiserver", "namespace": "kube-system"},
            "spec": {"containers": [{"command": cmd, "image": f"registry.k8s.io/kube-apiserver:{self.version}",
                                     "name": "kube-apiserver"}], "hostNetwork": True}, "status": {}})

    def files(self, node: str) -> dict[str, tuple[str, int]]:
        """path -> (content, mode) of what kubeadm init leaves on the control plane, and the lab user's copy of
        admin.conf; the worker has none of it yet."""
        if node != self.cp.name:
            return {"/etc/machine-id": (f"{'%032x' % zlib.crc32(node.encode())}\n", 0o444)}
        f = {f"/etc/kubernetes/pki/{p}": ("(simulated)\n", 0o600 if p.endswith(".key") else 0o644) for p in KUBEADM_PKI}
        f["/etc/kubernetes/pki/apiserver.crt"] = (self._cert_pem, 0o644)
        confs = ["admin", "controller-manager", "kubelet", "scheduler", "super-admin"]
        if self.mistake == "no_super_admin":
            confs.remove("super-admin")
        f.update({f"/etc/kubernetes/{c}.conf": (self.kubeconfig(), 0o600) for c in confs})
        for comp in ("etcd", "kube-controller-manager", "kube-scheduler", "kube-apiserver"):
            if comp == "kube-apiserver" and self.mistake == "apiserver_down":
                continue  # moved out to /tmp
            f[f"/etc/kubernetes/manifests/{comp}.yaml"] = (
                self.apiserver_manifest() if comp == "kube-apiserver" else f"kind: Pod\nmetadata: {{name: {comp}}}\n",
                0o600)
        f[f"/home/{LAB_USER}/.kube/config"] = (self.kubeconfig(), 0o600)
        f["/etc/machine-id"] = (f"{'%032x' % zlib.crc32(node.encode())}\n", 0o444)
        return f

    def answer(self, node: str, cmd: str) -> tuple[int, str, str]:
        """What a node's shell answers: `a; b` runs both, `sudo -n [-u user -H]` picks who runs it, `2>&1` merges
        the error stream."""
        rc, out, err = 0, "", ""
        for part in cmd.split("; "):
            rc, o, e = self._run(node, part)
            out, err = out + o, err + e
        return rc, out, err

    def _run(self, node: str, cmd: str) -> tuple[int, str, str]:
        merge = cmd.endswith(" 2>&1")
        argv = shlex.split(cmd.removesuffix(" 2>&1"))
        user = LAB_USER
        if argv[:2] == ["sudo", "-n"]:
            argv, user = argv[2:], "root"
            if argv[:1] == ["-u"] and argv[2:3] == ["-H"]:
                argv, user = argv[3:], argv[1]
        rc, out, err = self._program(node, user, argv, cmd)
        return (rc, out + err, "") if merge else (rc, out, err)

    def _program(self, node: str, user: str, argv: list[str], cmd: str) -> tuple[int, str, str]:
        files = self.files(node)
        prog, args = argv[0], argv[1:]
        if argv == ["date", "+%s"]:
            return 0, f"{NOW}\n", ""
        if argv == ["hostname"]:
            return 0, f"{node}\n", ""
        if prog == "cat" and len(args) == 1:
            content, mode = files.get(args[0], (None, 0))
            if content is None:
                return 1, "", f"cat: {args[0]}: No such file or directory\n"
            if user != "root" and not mode & 0o004:
                return 1, "", f"cat: {args[0]}: Permission denied\n"
            return 0, content, ""
        if prog == "find" and user == "root":
            return self._find(files, args, cmd)
        if argv == ["kubeadm", "version", "-o", "short"] and node == self.cp.name:
            return 0, self.version + "\n", ""
        if prog == "curl":
            return self._curl(node, args, cmd)
        if argv == ["getent", "ahostsv4", self.cp.name] and node == self.cp.name and self.endpoint:
            # /etc/hosts on the control plane: Lab 1's line for the private IP, or Debian's 127.0.1.1 line first
            # ("name_loopback_first": both lines, Debian's first, so getent lists 127.0.1.1 before the private IP)
            ips = {"name": [str(self.cp.ip)], "name_loopback": ["127.0.1.1"],
                   "name_loopback_first": ["127.0.1.1", str(self.cp.ip)]}[self.endpoint]
            return 0, "".join(f"{ip}       STREAM {self.cp.name}\n{ip}       DGRAM  \n{ip}       RAW    \n"
                              for ip in ips), ""
        if prog == "kubectl" and args[:2] == ["get", "node"]:
            home = "/root" if user == "root" else f"/home/{user}"
            if f"{home}/.kube/config" not in files:
                return 1, "", "The connection to the server localhost:8080 was refused - did you specify the right host or port?\n"
            if self.mistake == "apiserver_down":
                return 1, "", f"The connection to the server {self.advertise}:6443 was refused - did you specify the right host or port?\n"
            return 0, f"node/{args[2]}\n" if "-o" in args and args[args.index("-o") + 1] == "name" else "", ""
        raise SimulationGap(f"`{cmd}` on {node}")

    @staticmethod
    def _find(files, args: list[str], cmd: str) -> tuple[int, str, str]:
        top, rest = args[0].rstrip("/"), args[1:]
        depth, kind, pattern = None, None, "*"
        while rest:
            opt, val, rest = rest[0], rest[1], rest[2:]
            if opt == "-maxdepth":
                depth = int(val)
            elif opt == "-type":
                kind = val
            elif opt == "-name":
                pattern = val
            else:
                raise SimulationGap(f"`{cmd}` (find {opt})")
        if kind not in (None, "f"):
            raise SimulationGap(f"`{cmd}` (find -type {kind})")
        found = [p for p in files if p.startswith(top + "/") and fnmatch.fnmatch(p.rsplit("/", 1)[1], pattern)
                 and (depth is None or p[len(top) + 1:].count("/") < depth)]
        return 0, "".join(f"{p}\n" for p in sorted(found)), ""

    def _curl(self, node: str, args: list[str], cmd: str) -> tuple[int, str, str]:
        url = urlsplit(next(a for a in args if a.startswith("https://")))
        if url.port == 2379 and url.hostname == "127.0.0.1" and node == self.cp.name \
                and url.path == "/v3/maintenance/status":
            return 0, json.dumps({"header": {"cluster_id": "14841639068965178418", "member_id": "1",
                                             "revision": "900"}, "version": "3.6.5"}), ""
        if url.port != 6443 or url.hostname not in (str(self.cp.ip), self.advertise) or url.path != "/readyz":
            raise SimulationGap(f"`{cmd}` on {node}")
        if self.mistake == "apiserver_down":
            return 7, "", f"curl: (7) Failed to connect to {url.hostname} port 6443 after 0 ms: Couldn't connect to server\n"
        # the API server listens on every address; curl checks the certificate's IPs unless told not to (-k)
        if "-k" not in args and url.hostname not in self.san_ips:
            return 60, "", f"curl: (60) SSL: no alternative certificate subject name matches target host name '{url.hostname}'\n"
        return 0, "ok", ""

    # -- the API ------------------------------------------------------------------------------------------
    def _meta(self, name, ns=None, **extra):
        # a UID of the real form, one per object (namespace and name): two objects never share one
        meta = {"name": name, "uid": f"{zlib.crc32(f'{ns}/{name}'.encode()):08x}-3c1e-4f7a-9d8e-5a3b2c1d0e9f",
                "resourceVersion": "412", "creationTimestamp": _ts(NOW - 600)}
        if ns:
            meta["namespace"] = ns
        meta.update(extra)
        return meta

    def node(self) -> dict:
        taints = [] if self.mistake == "taint_removed" else \
            [{"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}]
        taints.append({"key": "node.kubernetes.io/not-ready", "effect": "NoSchedule"})
        return {"metadata": self._meta(self.cp.name, labels={
            "kubernetes.io/arch": "amd64", "kubernetes.io/hostname": self.cp.name, "kubernetes.io/os": "linux",
            "node-role.kubernetes.io/control-plane": "", "node.kubernetes.io/exclude-from-external-load-balancers": ""},
            annotations={"kubeadm.alpha.kubernetes.io/cri-socket": "unix:///var/run/containerd/containerd.sock",
                         "node.alpha.kubernetes.io/ttl": "0"}),
            "spec": {"podCIDR": str(next(ipaddress.ip_network(self.pod_cidr).subnets(new_prefix=24))),
                     "taints": taints},
            "status": {"addresses": [{"type": "InternalIP", "address": self.node_ip},
                                     {"type": "Hostname", "address": self.cp.name}],
                       "conditions": [{"type": "Ready", "status": "False", "reason": "KubeletNotReady",
                                       "lastHeartbeatTime": _ts(NOW - 5), "lastTransitionTime": _ts(NOW - 600),
                                       "message": "container runtime network not ready: NetworkReady=false "
                                                  "reason:NetworkPluginNotReady message:Network plugin returns "
                                                  "error: cni plugin not initialized"}],
                       "nodeInfo": {"kubeletVersion": self.version, "containerRuntimeVersion": "containerd://2.3.1",
                                    "architecture": "amd64", "bootID": "b", "kernelVersion": "6.1.0-40-amd64",
                                    "kubeProxyVersion": "", "machineID": "m", "operatingSystem": "linux",
                                    "osImage": "Debian GNU/Linux 12 (bookworm)", "systemUUID": "s"}}}

    def pods(self) -> list[dict]:
        out = []
        for comp in ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler"):
            if comp == "kube-apiserver" and self.mistake == "apiserver_down":
                continue
            out.append({"metadata": self._meta(f"{comp}-{self.cp.name}", "kube-system",
                                               labels={"component": comp, "tier": "control-plane"},
                                               annotations={"kubernetes.io/config.mirror": "1c9f", "kubernetes.io/config.source": "file"},
                                               ownerReferences=[{"apiVersion": "v1", "kind": "Node", "name": self.cp.name,
                                                                 "uid": "n", "controller": True}]),
                        "spec": {"nodeName": self.cp.name, "hostNetwork": True, "priorityClassName": "system-node-critical",
                                 "containers": [{"name": comp, "image": f"registry.k8s.io/{comp}:{self.version}"}]},
                        "status": {"phase": "Running", "hostIP": self.node_ip, "podIP": self.node_ip,
                                   "containerStatuses": [{"name": comp, "ready": True, "restartCount": 0,
                                                          "image": f"registry.k8s.io/{comp}:{self.version}",
                                                          "imageID": "sha256:0", "containerID": "containerd://0",
                                                          "state": {"running": {"startedAt": _ts(NOW - 590)}}}]}})
        return out

    def configmaps(self, ns: str) -> list[dict]:
        if ns == "kube-public":
            # the bootstrap signer adds jws-kubeconfig-<token-id> for each signing token and drops it with the token
            info = {"kubeconfig": "apiVersion: v1\n"}
            if self.token_secrets():
                info["jws-kubeconfig-k7q2m9"] = "eyJhbGciOiJIUzI1NiIsImtpZCI6Ims3cTJtOSJ9..c2ln"
            return ([] if self.mistake == "skip_bootstrap_token" else
                    [{"metadata": self._meta("cluster-info", ns), "data": info}]) + \
                [{"metadata": self._meta("kube-root-ca.crt", ns), "data": {"ca.crt": "x"}}]
        cluster_cfg = yaml.safe_dump({
            "apiVersion": "kubeadm.k8s.io/v1beta4", "kind": "ClusterConfiguration", "clusterName": "kubernetes",
            "kubernetesVersion": self.version, "certificatesDir": "/etc/kubernetes/pki",
            "networking": {"dnsDomain": "cluster.local", "podSubnet": self.pod_cidr, "serviceSubnet": self.service_cidr},
            "controlPlaneEndpoint": ""})
        return [{"metadata": self._meta("kubeadm-config", ns), "data": {"ClusterConfiguration": cluster_cfg}},
                {"metadata": self._meta("kubelet-config", ns), "data": {"kubelet": "kind: KubeletConfiguration\n"}},
                {"metadata": self._meta("coredns", ns), "data": {"Corefile": ".:53 {}\n"}},
                {"metadata": self._meta("kube-proxy", ns), "data": {"config.conf": "mode: \"\"\n"}},
                {"metadata": self._meta("kube-root-ca.crt", ns), "data": {"ca.crt": "x"}}]

    def token_secrets(self) -> list[dict]:
        if self.mistake == "skip_bootstrap_token" or self.next_day == "cleaned":
            return []
        exp = NOW - 3600 if self.next_day == "expired" else NOW + 23 * 3600
        data = {"auth-extra-groups": "system:bootstrappers:kubeadm:default-node-token", "description":
                "The default bootstrap token generated by 'kubeadm init'.", "expiration": _ts(exp),
                "token-id": "k7q2m9", "token-secret": "(simulated)", "usage-bootstrap-authentication": "true",
                "usage-bootstrap-signing": "true"}
        return [{"metadata": self._meta("bootstrap-token-k7q2m9", "kube-system"), "type": "bootstrap.kubernetes.io/token",
                 "data": {k: b64encode(v.encode()).decode() for k, v in data.items()}}]

    def api(self, method: str, url: str) -> tuple[int, dict]:
        if self.mistake == "apiserver_down":
            raise SimulationGap(f"{method} {url} while the API server is down (its checks must be blocked)")
        parts = urlsplit(url)
        path, q = unquote(parts.path), {k: v[0] for k, v in parse_qs(parts.query).items()}
        sel = q.get("fieldSelector", "")

        def lst(kind, items):
            if sel.startswith("metadata.name="):
                items = [i for i in items if i["metadata"]["name"] == sel.split("=", 1)[1]]
            return 200, {"kind": kind, "apiVersion": "v1", "metadata": {"resourceVersion": "500"}, "items": items}

        mj, mn = self.version[1:].split(".")[:2]
        if path.rstrip("/") == "/version":
            return 200, {"major": mj, "minor": mn, "gitVersion": self.version, "gitCommit": "0" * 40,
                         "gitTreeState": "clean", "buildDate": _ts(NOW - 86400 * 30), "goVersion": "go1.26.2",
                         "compiler": "gc", "platform": "linux/amd64"}
        if path == "/api/v1/namespaces/kube-system":
            return 200, {"kind": "Namespace", "apiVersion": "v1", "metadata": self._meta("kube-system")}
        if path == "/api/v1/nodes":
            return lst("NodeList", [self.node()])
        if path == "/api/v1/namespaces/kube-system/pods":
            pods = self.pods()
            if q.get("labelSelector") == "tier=control-plane":
                pods = [p for p in pods if p["metadata"]["labels"].get("tier") == "control-plane"]
            return lst("PodList", pods)
        if path == "/apis/discovery.k8s.io/v1/namespaces/default/endpointslices" \
                and q.get("labelSelector") == "kubernetes.io/service-name=kubernetes":
            # the EndpointSlice of Service default/kubernetes, which the API server's endpoint reconciler keeps
            return 200, {"kind": "EndpointSliceList", "apiVersion": "discovery.k8s.io/v1", "metadata": {},
                         "items": [{"metadata": self._meta("kubernetes", "default", labels={
                             "kubernetes.io/service-name": "kubernetes"}),
                             "addressType": "IPv4",
                             "endpoints": [{"addresses": [self.advertise], "conditions": {"ready": True}}],
                             "ports": [{"name": "https", "port": 6443, "protocol": "TCP"}]}]}
        m = re.fullmatch(r"/api/v1/namespaces/([^/]+)/configmaps", path)
        if m:
            return lst("ConfigMapList", self.configmaps(m.group(1)))
        if path == "/api/v1/namespaces/kube-system/secrets" and sel == "type=bootstrap.kubernetes.io/token":
            return 200, {"kind": "SecretList", "apiVersion": "v1", "metadata": {}, "items": self.token_secrets()}
        if path == "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings":
            group = {"kind": "Group", "apiGroup": "rbac.authorization.k8s.io",
                     "name": "system:bootstrappers:kubeadm:default-node-token"}
            crbs = [] if self.mistake == "skip_bootstrap_token" else [
                {"metadata": self._meta(name), "subjects": [group],
                 "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role}}
                for name, role in (("kubeadm:kubelet-bootstrap", "system:node-bootstrapper"),
                                   ("kubeadm:node-autoapprove-bootstrap",
                                    "system:certificates.k8s.io:certificatesigningrequests:nodeclient"))]
            return lst("ClusterRoleBindingList", crbs)
        if path == "/apis/apps/v1/namespaces/kube-system/deployments":
            return lst("DeploymentList", [{"metadata": self._meta("coredns", "kube-system", labels={"k8s-app": "kube-dns"}),
                                           "spec": {"replicas": 2, "selector": {"matchLabels": {"k8s-app": "kube-dns"}},
                                                    "template": {"metadata": {"labels": {"k8s-app": "kube-dns"}},
                                                                 "spec": {"containers": [{"name": "coredns"}]}}},
                                           "status": {"replicas": 2, "unavailableReplicas": 2}}])
        if path == "/apis/apps/v1/namespaces/kube-system/daemonsets":
            ds = [] if self.mistake == "no_kube_proxy" else [{
                "metadata": self._meta("kube-proxy", "kube-system", labels={"k8s-app": "kube-proxy"}),
                "spec": {"selector": {"matchLabels": {"k8s-app": "kube-proxy"}},
                         "template": {"metadata": {"labels": {"k8s-app": "kube-proxy"}},
                                      "spec": {"containers": [{"name": "kube-proxy"}]}}},
                "status": {"currentNumberScheduled": 1, "desiredNumberScheduled": 1, "numberMisscheduled": 0,
                           "numberReady": 1}}]
            return lst("DaemonSetList", ds)
        if path == "/api/v1/namespaces/kube-system/services":
            return lst("ServiceList", [{"metadata": self._meta("kube-dns", "kube-system", labels={"k8s-app": "kube-dns"}),
                                        "spec": {"clusterIP": self.dns_ip, "ports": [{"name": "dns", "port": 53,
                                                                                      "protocol": "UDP"}]}}])
        raise SimulationGap(f"{method} {url}")


class _SimBackend(BaseBackend):
    NAME = "kubelab-sim"

    def __init__(self, node: str, sim: Sim136, stats, **kwargs):
        super().__init__(node, **kwargs)
        self.node, self.sim, self.stats = node, sim, stats

    def run(self, command: str, *args: str, **kwargs) -> CommandResult:
        cmd = self.get_command(command, *args)
        self.stats.commands_sent += 1
        rc, out, err = self.sim.answer(self.node, cmd)
        return self.result(rc, self.encode(cmd), out.encode(), err.encode())


class SimTarget(Target):
    """The simulated v1.36 nodes and API, behind the same seam as SSH and replay."""

    def __init__(self, course, sim: Sim136):
        super().__init__(course)
        self.sim = sim
        self.description = f"simulated kubeadm {sim.version} control plane ({sim.mistake or 'as kubeadm leaves it'})"

    def _backend(self, node: str) -> BaseBackend:
        return _SimBackend(node, self.sim, self.stats)

    def api_client(self, kubeconfig: dict):
        from kubernetes.client import ApiClient, Configuration
        from kubernetes.client.rest import RESTResponse

        client = ApiClient(Configuration(host=kubeconfig["clusters"][0]["cluster"]["server"]))

        def request(method, url, headers=None, body=None, post_params=None, _request_timeout=None):
            status, data = self.sim.api(method, url)
            raw = SimpleNamespace(status=status, reason="OK", data=json.dumps(data).encode(),
                                  headers={"content-type": "application/json"})
            return RESTResponse(raw)

        client.rest_client.request = request
        return client
