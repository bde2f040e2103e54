"""A STAND-IN for the cluster DNS on the twins' v1.20 cluster: Debian's dnsmasq behind the `kube-dns` Service.

Why a stand-in: kubeadm's CoreDNS image cannot be pulled here and Debian has no CoreDNS package (neither bookworm
nor sid), so the twins' cluster is built without the addon/coredns phase and has no cluster DNS. Lab 5's smoke test
looks up `web.smoke.svc.cluster.local` from a pod, which needs something answering at the kubelet's clusterDNS
(kubeadm sets it to the 10th address of the service range, 10.96.0.10 here).

What is real: dnsmasq 2.90 from Debian bookworm (`dnsmasq-base` and the libraries it links, downloaded with
apt-get from Debian's archive), run as a pod of a Deployment in kube-system, labelled k8s-app=kube-dns, behind a
Service `kube-dns` at the cluster DNS IP with ports 53/UDP and 53/TCP — the shape kubeadm gives CoreDNS. Pods reach
it exactly as they reach CoreDNS: resolv.conf written by the kubelet, then kube-proxy's rules for the ClusterIP.

What is NOT CoreDNS: the records are static. CoreDNS's kubernetes plugin watches Services; here `records()` turns
a `kubectl get services -A -o json` snapshot into a hosts file (`<ClusterIP> <svc>.<ns>.svc.cluster.local`), fed
through a ConfigMap; `refresh` rewrites it and restarts the pod. Names under cluster.local that it does not know
get NXDOMAIN (`--local`), everything else REFUSED (no upstream). Only A records of ClusterIP Services (and their
PTRs) exist — enough for the smoke test, nothing more.
"""

from __future__ import annotations

import fcntl
import hashlib
import ipaddress
import json
import os
import subprocess
import tempfile
from pathlib import Path

from kubelab.cluster.build import write_docker_archive
from kubelab.errors import InfrastructureError
from kubelab.twin import hostcmd
from kubelab.twin.paths import cache_root

IMAGE = "docker.io/local/kube-dns-standin:dnsmasq"
NAME = "kube-dns-standin"
CLUSTER_DOMAIN = "cluster.local"  # kubeadm's default networking.dnsDomain
# dnsmasq-base and the packages holding every library `ld.so --list` shows for it (Debian bookworm, amd64)
PACKAGES = ("dnsmasq-base", "libc6", "libdbus-1-3", "libgmp10", "libhogweed6", "libidn2-0", "libnetfilter-conntrack3",
            "libnettle8", "libnftables1", "libnfnetlink0", "libnftnl11", "libsystemd0", "libunistring2", "libcap2",
            "libgcrypt20", "liblzma5", "libzstd1", "liblz4-1", "libgpg-error0", "libmnl0", "libjansson4",
            "libxtables12")
LOADER = "lib64/ld-linux-x86-64.so.2"
RECIPE = 1


def cluster_dns_ip(service_cidr: str) -> str:
    """kubeadm's clusterDNS: the 10th address of the service range (10.96.0.10 for 10.96.0.0/12)."""
    return str(ipaddress.ip_network(service_cidr)[10])


def image_tar(progress=print) -> Path:
    """The stand-in's image as a docker-archive tarball, built once (a few seconds) and cached."""
    key = hashlib.sha256(json.dumps([PACKAGES, RECIPE, IMAGE]).encode()).hexdigest()[:10]
    out = cache_root() / "dns-standin" / f"{key}.tar"
    if out.is_file():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out.parent / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not out.is_file():
            progress(f"building the DNS stand-in image {IMAGE} from Debian's dnsmasq")
            with tempfile.TemporaryDirectory(prefix="dns-standin-") as tmp:
                _build(Path(tmp), out)
    return out


def _run(argv: list[str], cwd: Path, what: str) -> str:
    proc = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=300, env=hostcmd.env())
    if proc.returncode != 0:
        raise InfrastructureError(f"{what} failed: {(proc.stderr or proc.stdout).strip()[-300:]}",
                                  "check that Debian's archive is reachable (apt-get update) and retry")
    return proc.stdout


def _build(tmp: Path, out: Path) -> None:
    _run(["apt-get", "download", *PACKAGES], tmp, "apt-get download of dnsmasq-base and its libraries")
    root = tmp / "root"
    for deb in sorted(tmp.glob("*.deb")):
        _run(["dpkg-deb", "-x", str(deb), str(root)], tmp, f"unpacking {deb.name}")
    # bookworm's packages are not all usr-merged yet: libraries sit in /lib or /usr/lib
    libdirs = [root / "lib/x86_64-linux-gnu", root / "usr/lib/x86_64-linux-gnu"]
    loader = Path(os.path.realpath(root / "lib/x86_64-linux-gnu/ld-linux-x86-64.so.2"))
    binary = root / "usr/sbin/dnsmasq"
    listing = _run([str(loader), "--library-path", ":".join(map(str, libdirs)), "--list", str(binary)],
                   tmp, "listing dnsmasq's libraries")
    contents = {"usr/sbin/dnsmasq": binary.read_bytes(), LOADER: loader.read_bytes()}
    for line in listing.splitlines():
        parts = line.split("=>")
        if len(parts) != 2 or not parts[1].strip().startswith("/") or parts[0].strip().startswith("/"):
            continue
        path = Path(parts[1].split("(")[0].strip())
        if not str(path).startswith(str(root)):
            raise InfrastructureError(f"dnsmasq links {path}, which none of the downloaded packages holds",
                                      "add its package to kubelab.cluster.dns_standin.PACKAGES")
        # under its soname in the one directory the loader searches by default
        contents[f"usr/lib/x86_64-linux-gnu/{parts[0].strip()}"] = Path(os.path.realpath(path)).read_bytes()
    write_docker_archive(out, IMAGE, contents, ["/usr/sbin/dnsmasq"])


def records(services: dict) -> str:
    """A hosts file for dnsmasq from `kubectl get services -A -o json`: one line per Service with a ClusterIP."""
    lines = []
    for svc in services.get("items") or []:
        ip = (svc.get("spec") or {}).get("clusterIP")
        if not ip or ip == "None":
            continue
        meta = svc["metadata"]
        lines.append(f"{ip} {meta['name']}.{meta['namespace']}.svc.{CLUSTER_DOMAIN}")
    return "\n".join(sorted(lines)) + "\n"


def manifest(service_cidr: str, hosts: str) -> str:
    """The ConfigMap of records, the Deployment running dnsmasq on them and the `kube-dns` Service, as JSON docs."""
    labels = {"k8s-app": "kube-dns", "kubelab.dev/stand-in": "dnsmasq"}
    args = ["--keep-in-foreground", "--log-facility=-", "--log-queries", "--no-resolv", "--no-hosts",
            "--user=root", "--pid-file=", f"--local=/{CLUSTER_DOMAIN}/", "--addn-hosts=/records/hosts"]
    docs = [
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": NAME, "namespace": "kube-system"},
         "data": {"hosts": hosts}},
        {"apiVersion": "apps/v1", "kind": "Deployment",
         "metadata": {"name": NAME, "namespace": "kube-system", "labels": labels},
         "spec": {"replicas": 1, "selector": {"matchLabels": labels},
                  "template": {"metadata": {"labels": labels}, "spec": {
                      "tolerations": [{"operator": "Exists"}],
                      "containers": [{"name": "dnsmasq", "image": IMAGE, "imagePullPolicy": "Never", "args": args,
                                      "ports": [{"name": "dns", "containerPort": 53, "protocol": "UDP"},
                                                {"name": "dns-tcp", "containerPort": 53, "protocol": "TCP"}],
                                      "readinessProbe": {"tcpSocket": {"port": 53}, "periodSeconds": 2},
                                      "volumeMounts": [{"name": "records", "mountPath": "/records"}]}],
                      "volumes": [{"name": "records", "configMap": {"name": NAME}}]}}}},
        {"apiVersion": "v1", "kind": "Service",
         "metadata": {"name": "kube-dns", "namespace": "kube-system", "labels": labels},
         "spec": {"clusterIP": cluster_dns_ip(service_cidr), "selector": labels,
                  "ports": [{"name": "dns", "port": 53, "protocol": "UDP"},
                            {"name": "dns-tcp", "port": 53, "protocol": "TCP"}]}},
    ]
    # one v1 List: kubectl reads a stream that starts with `{` as JSON, where a YAML `---` separator is an error
    return json.dumps({"apiVersion": "v1", "kind": "List", "items": docs}) + "\n"
