"""`kubelab twin up --cluster`: a real kubeadm v1.20.2 cluster on the course's lab twins.

kubeadm init on the control-plane twin, kubeadm join of every worker twin, a pod network spanning the
twins (bridge + host-local per node, the other nodes' pod ranges routed through their IPs on the twin
network), kube-proxy in iptables mode as a systemd service on every node, all nodes Ready, and a
2-replica Deployment `bb` spread over the nodes behind a ClusterIP Service answering from every node.
The admin kubeconfig is /etc/kubernetes/admin.conf on the control plane, as on the VMs.

This is a test target, not what learners run: see README (contributors) and kubelab/cluster/build.py.
What 1.20 from Debian lacks: no crictl (use `ctr -n k8s.io`), no CoreDNS (use Service IPs, or the clearly named
dnsmasq stand-in of kubelab.cluster.dns_standin behind the `kube-dns` Service, as Lab 5's smoke test does).
"""

from __future__ import annotations

import ipaddress
import secrets
import shlex
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from kubelab.cluster import build, template
from kubelab.course import LoadedCourse, Node
from kubelab.errors import InfrastructureError
from kubelab.twin.twinset import TwinSet

Progress = Callable[[str], None]
INIT_TIMEOUT_S = 300
READY_TIMEOUT_S = 180
LEASE_GRACE_S = 45  # node-monitor-grace-period (40 s) plus a margin

CNI_CONFLIST = """{{"cniVersion":"0.4.0","name":"kubelab","plugins":[
 {{"type":"bridge","bridge":"cni0","isGateway":true,"ipMasq":false,"hairpinMode":true,
  "ipam":{{"type":"host-local","ranges":[[{{"subnet":"{subnet}"}}]],"routes":[{{"dst":"0.0.0.0/0"}}]}}}},
 {{"type":"portmap","capabilities":{{"portMappings":true}}}}]}}
"""

KUBEADM_INIT = """apiVersion: kubeadm.k8s.io/v1beta2
kind: InitConfiguration
bootstrapTokens:
- token: {token}
  ttl: 24h0m0s
localAPIEndpoint:
  advertiseAddress: {ip}
  bindPort: 6443
nodeRegistration:
  name: {name}
  criSocket: /run/containerd/containerd.sock
  kubeletExtraArgs:
    node-ip: {ip}
---
apiVersion: kubeadm.k8s.io/v1beta2
kind: ClusterConfiguration
kubernetesVersion: {version}
controlPlaneEndpoint: {ip}:6443
apiServer:
  certSANs: [{ip}, {name}, 127.0.0.1]
networking:
  serviceSubnet: {service_cidr}
  podSubnet: {pod_cidr}
---
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
cgroupDriver: cgroupfs
failSwapOn: false
"""

KUBE_PROXY_SA = """set -e
export KUBECONFIG=/etc/kubernetes/admin.conf
kubectl -n kube-system create serviceaccount kube-proxy
kubectl create clusterrolebinding kubeadm:node-proxier --clusterrole=system:node-proxier \
  --serviceaccount=kube-system:kube-proxy
for i in $(seq 60); do S=$(kubectl -n kube-system get sa kube-proxy -o jsonpath='{.secrets[0].name}'); [ -n "$S" ] && break; sleep 1; done
TOKEN=$(kubectl -n kube-system get secret $S -o jsonpath='{.data.token}' | base64 -d)
K="kubectl --kubeconfig=/etc/kubernetes/kube-proxy.conf"
$K config set-cluster default --server=https://%(ip)s:6443 --certificate-authority=/etc/kubernetes/pki/ca.crt --embed-certs=true >/dev/null
$K config set-credentials kube-proxy --token=$TOKEN >/dev/null
$K config set-context default --cluster=default --user=kube-proxy >/dev/null
$K config use-context default >/dev/null
chmod 600 /etc/kubernetes/kube-proxy.conf
"""

DEMO = """apiVersion: apps/v1
kind: Deployment
metadata: {name: bb, namespace: default}
spec:
  replicas: 2
  selector: {matchLabels: {app: bb}}
  template:
    metadata: {labels: {app: bb}}
    spec:
      tolerations: [{operator: Exists}]
      affinity:
        podAntiAffinity:
          requiredDuringSchedulingIgnoredDuringExecution:
          - labelSelector: {matchLabels: {app: bb}}
            topologyKey: kubernetes.io/hostname
      containers:
      - name: bb
        image: %(image)s
        imagePullPolicy: Never
        command: ["/bin/sh","-c","mkdir -p /www && hostname > /www/index.html && exec busybox httpd -f -p 8080 -h /www"]
        ports: [{containerPort: 8080}]
        readinessProbe: {httpGet: {path: /, port: 8080}, periodSeconds: 2}
---
apiVersion: v1
kind: Service
metadata: {name: bb, namespace: default}
spec:
  selector: {app: bb}
  ports: [{port: 80, targetPort: 8080}]
"""


def pod_cidrs(course: LoadedCourse) -> dict[str, str]:
    """One /24 of the course's pod range per node, in course.yaml order (control plane first)."""
    net = ipaddress.ip_network(str(course.model.network.pod_cidr))
    subnets = net.subnets(new_prefix=24)
    return {n.name: str(next(subnets)) for n in course.model.nodes}


def node_preparer(course: LoadedCourse) -> Callable[[Node, Path], None]:
    """Per-node files written into each fresh copy of the template (TwinSet's prepare_node hook)."""
    cidrs = pod_cidrs(course)
    nodes = list(course.model.nodes)

    def prepare(node: Node, root: Path) -> None:
        # the other nodes' pod ranges through their twin IPs: systemd-networkd owns host0, so the routes go there
        net = root / "etc/systemd/network/10-kubelab-host0.network"
        routes = "".join(f"\n[Route]\nDestination={cidrs[p.name]}\nGateway={p.ip}\nGatewayOnLink=yes\n"
                         for p in nodes if p.name != node.name)
        net.write_text(net.read_text() + routes)
        (root / "etc/cni/net.d/10-kubelab.conflist").write_text(CNI_CONFLIST.format(subnet=cidrs[node.name]))
        (root / "etc/default").mkdir(exist_ok=True)
        (root / "etc/default/kubelet").write_text(f"KUBELET_EXTRA_ARGS=--node-ip={node.ip}\n")
        (root / "etc/kubernetes/kube-proxy-config.yaml").write_text(
            template.KUBE_PROXY_CONFIG.format(pod_cidr=course.model.network.pod_cidr))
        with open(root / "etc/hosts", "a") as hosts:
            hosts.write("".join(f"{p.ip}\t{p.name}\n" for p in nodes if p.name != node.name))

    return prepare


def cluster_twins(course: LoadedCourse) -> TwinSet:
    """The course's twins, copied from the cluster template (built and cached first if needed)."""
    return TwinSet(course, template=template.ensure_template, prepare_node=node_preparer(course))


@dataclass
class UpTimings:
    build_s: float = 0.0
    twins_s: float = 0.0
    images_s: float = 0.0
    init_s: float = 0.0
    join_s: float = 0.0
    ready_s: float = 0.0
    total_s: float = 0.0
    steps: dict[str, float] = field(default_factory=dict)


class Ssh:
    """Commands on a twin over SSH as the lab user (sudo for root), as graders reach the nodes."""

    def __init__(self, ssh_config: Path):
        self.config = ssh_config

    def run(self, node: str, script: str, *, what: str, timeout: float = 120, check: bool = True,
            input: str | None = None) -> subprocess.CompletedProcess:
        cmd = ["ssh", "-F", str(self.config), "-o", "BatchMode=yes", node,
               "sudo -n env KUBECONFIG=/etc/kubernetes/admin.conf PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin "
               "bash -c " + shlex.quote(script)]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, input=input)
        except subprocess.TimeoutExpired as e:
            raise InfrastructureError(f"{what} on {node}: no result within {timeout:g}s "
                                      f"({_last(e.stdout or '') or _last(e.stderr or '')})",
                                      f"`kubelab twin ssh-config` then `ssh {node}`: journalctl -u kubelet")
        if check and proc.returncode != 0:
            raise InfrastructureError(f"{what} on {node} failed (exit {proc.returncode}): "
                                      f"{_last(proc.stderr) or _last(proc.stdout)}",
                                      f"`ssh {node}` and look at `journalctl -u kubelet -u containerd`")
        return proc

    def write(self, node: str, path: str, text: str, mode: str = "600") -> None:
        self.run(node, f"umask 077; cat > {shlex.quote(path)}; chmod {mode} {shlex.quote(path)}",
                 what=f"writing {path}", input=text)


def _last(text: str) -> str:
    lines = [ln.strip() for ln in (text or "").splitlines() if ln.strip()]
    return lines[-1][:300] if lines else ""


CA_HASH = ("openssl x509 -pubkey -noout -in /etc/kubernetes/pki/ca.crt | openssl pkey -pubin -outform der "
           "| sha256sum | cut -d' ' -f1")


STAGES = ("init", "full")
CNI_CONF = "/etc/cni/net.d/10-kubelab.conflist"


def up(course: LoadedCourse, progress: Progress = print, stage: str = "full") -> tuple[TwinSet, UpTimings]:
    """Fresh twins from the cluster template, then kubeadm init, join, kube-proxy, the demo workload.

    stage="init" stops right after `kubeadm init` on the control plane, before any pod network (Lab 4's end
    state): no CNI config on any node (nodes NotReady), kube-system/coredns created by kubeadm's
    addon/coredns phase and Pending, no kube-proxy, no join, no ~/.kube/config for the lab user."""
    if stage not in STAGES:
        raise ValueError(f"stage must be one of {STAGES}, not {stage!r}")
    say = progress
    t = UpTimings()
    t0 = time.monotonic()
    build.ensure_built(say)
    template.ensure_template(say)
    t.build_s = time.monotonic() - t0
    ts = cluster_twins(course)
    m = course.model
    cp = m.control_plane
    workers = [n for n in m.nodes if n.name != cp.name]
    t1 = time.monotonic()
    ts.up(fresh=True, progress=say)
    t.twins_s = time.monotonic() - t1
    ssh = Ssh(ts.ssh_config_file())

    t1 = time.monotonic()
    for n in m.nodes:  # a oneshot unit: `systemctl start` returns when the import is done
        ssh.run(n.name, "systemctl start kubelab-images.service", what="importing the images", timeout=300)
    t.images_s = time.monotonic() - t1
    say(f"images imported into containerd on every node ({t.images_s:.1f}s)")

    if stage == "init":  # before a pod network: kubelet finds no CNI config, as on a node kubeadm just set up
        for n in m.nodes:
            ssh.run(n.name, f"mv {CNI_CONF} /root/", what="moving the pod network's CNI config aside")

    token = f"{secrets.token_hex(3)}.{secrets.token_hex(8)}"
    ssh.write(cp.name, "/root/kubeadm-init.yaml", KUBEADM_INIT.format(
        token=token, ip=cp.ip, name=cp.name, version=build.KUBE_VERSION,
        service_cidr=m.network.service_cidr, pod_cidr=m.network.pod_cidr))
    coredns = "CoreDNS objects added after init" if stage == "init" else "no CoreDNS"
    say(f"{cp.name}: kubeadm init (v1.20.2; skipping preflight: no crictl; {coredns}, no kube-proxy addon)")
    t1 = time.monotonic()
    ssh.run(cp.name, "kubeadm init --config /root/kubeadm-init.yaml "
                     "--skip-phases=preflight,addon/coredns,addon/kube-proxy > /root/kubeadm-init.log 2>&1 "
                     "|| { tail -5 /root/kubeadm-init.log; journalctl -u kubelet --no-pager | grep -E ' [EF][0-9]{4}' | tail -3; exit 1; }",
            what="kubeadm init", timeout=INIT_TIMEOUT_S)
    t.init_s = time.monotonic() - t1
    say(f"{cp.name}: kubeadm init done ({t.init_s:.1f}s)")
    if stage == "init":
        # the CoreDNS objects kubeadm init makes on a VM (Debian has no CoreDNS image; its pods stay Pending
        # before a pod network either way: the NotReady node is tainted node.kubernetes.io/not-ready)
        ssh.run(cp.name, "kubeadm init phase addon coredns --config /root/kubeadm-init.yaml",
                what="kubeadm init phase addon coredns")
        t.total_s = time.monotonic() - t0
        say(f"cluster at stage init: {cp.name} initialised, no pod network, no join ({t.total_s:.1f}s)")
        return ts, t

    # kubeadm's --discovery-token-ca-cert-hash: sha256 of the CA's SubjectPublicKeyInfo
    ca_hash = "sha256:" + ssh.run(cp.name, CA_HASH, what="hashing the cluster CA's public key").stdout.strip()
    ssh.run(cp.name, KUBE_PROXY_SA % {"ip": cp.ip}, what="creating kube-proxy's ServiceAccount", timeout=120)
    proxy_conf = ssh.run(cp.name, "cat /etc/kubernetes/kube-proxy.conf", what="reading kube-proxy.conf").stdout
    ssh.run(cp.name, "systemctl start kube-proxy", what="starting kube-proxy")

    t1 = time.monotonic()
    for w in workers:
        say(f"{w.name}: kubeadm join {cp.ip}:6443")
        ssh.run(w.name, f"kubeadm join {cp.ip}:6443 --token {token} "
                        f"--discovery-token-ca-cert-hash {ca_hash} "
                        f"--cri-socket /run/containerd/containerd.sock --node-name {w.name} "
                        "--skip-phases=preflight > /root/kubeadm-join.log 2>&1 || { tail -5 /root/kubeadm-join.log; exit 1; }",
                what="kubeadm join", timeout=INIT_TIMEOUT_S)
        ssh.write(w.name, "/etc/kubernetes/kube-proxy.conf", proxy_conf)
        ssh.run(w.name, "systemctl start kube-proxy", what="starting kube-proxy")
    t.join_s = time.monotonic() - t1
    say(f"workers joined ({t.join_s:.1f}s)")

    t1 = time.monotonic()
    ssh.run(cp.name, f"kubectl wait --for=condition=Ready node --all --timeout={READY_TIMEOUT_S}s",
            what="waiting for every node to be Ready", timeout=READY_TIMEOUT_S + 30)
    ssh.run(cp.name, "kubectl apply -f -", what="creating the demo Deployment and Service",
            input=DEMO % {"image": build.BUSYBOX_IMAGE})
    ssh.run(cp.name, f"kubectl rollout status deploy/bb --timeout={READY_TIMEOUT_S}s",
            what="waiting for the demo Deployment", timeout=READY_TIMEOUT_S + 30)
    t.ready_s = time.monotonic() - t1
    t.total_s = time.monotonic() - t0
    say(f"cluster up: {len(m.nodes)} nodes Ready, deploy/bb rolled out ({t.total_s:.1f}s; kubeadm init {t.init_s:.1f}s)")
    return ts, t


def down(course: LoadedCourse, wipe: bool = False, progress: Progress | None = None) -> None:
    cluster_twins(course).down(wipe=wipe, progress=progress)
