"""The cluster twins' template root file system: the twins' base plus a container runtime, the v1.20.2
binaries and images, and the fix-ups that let kubelet and containerd run inside systemd-nspawn.

Derived from the base by a separate step (the base's own package list is not touched) and cached under
<cache>/cluster/template-<key>, the key covering the base, the build (source package version) and this
recipe. Built in a temporary folder and renamed into place when complete.

Why each fix-up exists (observed failure -> fix) is in shared/reference/real-cluster/on-twins/RECIPE.md;
in short: cgroup controllers are mounted read-only by nspawn (bind-remount rw, own subtree per twin);
kubelet wants to set global sysctls (files with the wanted values are bind-mounted over the three
/proc/sys entries inside the twin, so the host keeps its values); no /dev/kmsg; nspawn's seccomp filter
blocks keyctl (runc NoNewKeyring); no CAP_SYS_RESOURCE (containerd restrict_oom_score_adj).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import Callable

from kubelab.cluster import build
from kubelab.cluster.kubelet_units import kubeadm_dropin, kubelet_service
from kubelab.errors import InfrastructureError
from kubelab.twin import baserootfs, hostcmd, mounts, nodefs
from kubelab.twin.paths import cache_root

RECIPE_VERSION = 2  # 2: kubelet units from kubelet_units (the packages' text)
# bookworm: containerd 1.6 (kubelet 1.20 speaks CRI v1alpha2 only, containerd 2.x refuses it), runc,
# the CNI plugins (bridge, host-local, portmap in /usr/lib/cni), and what kubeadm/kube-proxy call.
PACKAGES = ("containerd", "runc", "containernetworking-plugins", "socat", "conntrack", "ethtool", "ebtables",
            "etcd-client")
IMAGES_DIR = "var/lib/kubelab/images"

Progress = Callable[[str], None]

TWIN_PREP_SH = r"""#!/bin/bash
# kubelab cluster twin: fix-ups before containerd and kubelet start (see kubelab/cluster/template.py)
set -x
# 1. nspawn mounts the cgroup v1 controllers read-only; this twin has its own subtree, make its view writable.
#    A plain remount,rw fails (EBUSY: the superblock is the host's); a bind remount changes this mount only.
for d in /sys/fs/cgroup/*/; do mountpoint -q "$d" && mount -o remount,bind,rw "$d"; done
mount -o remount,rw /sys/fs/cgroup 2>/dev/null || true
# 2. kubelet wants vm.overcommit_memory=1, kernel.panic=10, kernel.panic_on_oops=1: global, not namespaced.
#    /proc/sys is read-only here (good); show kubelet files that already hold those values, so it changes nothing.
mkdir -p /run/kubelab-sysctl
echo 1 > /run/kubelab-sysctl/overcommit_memory; echo 10 > /run/kubelab-sysctl/panic; echo 1 > /run/kubelab-sysctl/panic_on_oops
mount --bind /run/kubelab-sysctl/overcommit_memory /proc/sys/vm/overcommit_memory
mount --bind /run/kubelab-sysctl/panic /proc/sys/kernel/panic
mount --bind /run/kubelab-sysctl/panic_on_oops /proc/sys/kernel/panic_on_oops
# 3. cadvisor's OOM watcher reads /dev/kmsg
[ -e /dev/kmsg ] || ln -s /dev/console /dev/kmsg
# 4. mount propagation for pod volumes
mount --make-rshared /
# 5. routing pods (net.* is this twin's own network namespace)
sysctl -w net.ipv4.ip_forward=1 net.ipv4.conf.all.forwarding=1
sysctl -w net.bridge.bridge-nf-call-iptables=1 || true
true
"""

TWIN_PREP_SERVICE = """[Unit]
Description=kubelab: fix-ups for kubelet and containerd inside systemd-nspawn
DefaultDependencies=no
After=local-fs.target systemd-tmpfiles-setup-dev.service
Before=containerd.service kubelet.service kube-proxy.service network.target
[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/usr/local/sbin/kubelab-twin-prep
[Install]
WantedBy=multi-user.target
"""

IMAGES_SERVICE = f"""[Unit]
Description=kubelab: import the v1.20.2 images into containerd (no registry is reachable)
After=containerd.service
Requires=containerd.service
Before=kubelet.service
ConditionPathExists=!/var/lib/kubelab/images.imported
[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/bin/sh -ec 'for f in /{IMAGES_DIR}/*.tar; do ctr -n k8s.io images import "$f"; done; touch /var/lib/kubelab/images.imported'
[Install]
WantedBy=multi-user.target
"""

# the official units (kubelab.cluster.kubelet_units) with the binaries in /usr/local/bin; the kubelet starts after
# the twin's own preparation and the image import
KUBELET_SERVICE = kubelet_service("/usr/local/bin")
KUBEADM_DROPIN = kubeadm_dropin("/usr/local/bin", unit_lines=(
    "After=kubelab-twin-prep.service containerd.service kubelab-images.service",
    "Requires=kubelab-twin-prep.service"))

# kube-proxy's image holds only the binary (no iptables): it runs as a service on each node instead
KUBE_PROXY_SERVICE = """[Unit]
Description=kube-proxy (iptables mode)
After=kubelet.service
ConditionPathExists=/etc/kubernetes/kube-proxy.conf
[Service]
ExecStart=/usr/local/bin/kube-proxy --config=/etc/kubernetes/kube-proxy-config.yaml
Restart=always
RestartSec=5
[Install]
WantedBy=multi-user.target
"""

KUBE_PROXY_CONFIG = """apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection:
  kubeconfig: /etc/kubernetes/kube-proxy.conf
mode: iptables
clusterCIDR: {pod_cidr}
conntrack:
  # 0: never write the host-global nf_conntrack_max
  maxPerCore: 0
"""

# containerd 1.6 (config version 2): the CRI defaults plus the settings a twin needs
CONTAINERD_CONFIG = """version = 2
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{pause}"
  # no CAP_SYS_RESOURCE on CI's machines: never raise a process's oom_score_adj
  restrict_oom_score_adj = true
  disable_hugetlb_controller = true
  tolerate_missing_hugetlb_controller = true
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "/etc/cni/net.d"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    default_runtime_name = "runc"
    snapshotter = "overlayfs"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        # nspawn's seccomp filter blocks keyctl: no session keyring per container
        NoNewKeyring = true
        SystemdCgroup = false
"""


def cache_key(base: Path) -> str:
    spec = {"base": base.name, "build": build.cache_key(), "recipe": RECIPE_VERSION, "packages": PACKAGES}
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:16]


def ensure_template(progress: Progress = print) -> Path:
    """The cluster twins' template (built first from the base and the cached build if needed)."""
    artifacts = build.ensure_built(progress)
    base = baserootfs.ensure_base(progress)
    final = cache_root() / "cluster" / f"template-{cache_key(base)}"
    if final.is_dir():
        return final
    with open(final.parent / ".template.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if final.is_dir():
            return final
        for old in final.parent.glob(".template-*"):
            mounts.remove_tree(old)
        tmp = final.parent / f".template-{final.name}-{os.getpid()}"
        t0 = time.monotonic()
        progress(f"building the cluster twin template from {base.name} (once, ~1 min)")
        try:
            nodefs.copy_base(base, tmp)
            _install_packages(tmp, final.parent / f"{final.name}.build.log")
            _install_cluster_files(tmp, artifacts)
            os.rename(tmp, final)
        except BaseException:
            mounts.remove_tree(tmp)
            raise
        for stale in final.parent.glob("template-*"):  # twins are copies: an older template serves nobody
            if stale.is_dir() and stale != final:
                mounts.remove_tree(stale)
                stale.with_name(stale.name + ".build.log").unlink(missing_ok=True)
        progress(f"cluster twin template ready in {time.monotonic() - t0:.0f}s: {final}")
    return final


def _install_packages(root: Path, log: Path) -> None:
    nspawn = shutil.which("systemd-nspawn", path=hostcmd.tool_path()) or "systemd-nspawn"
    script = ("apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q "
              "--no-install-recommends " + " ".join(PACKAGES) + " && apt-get clean")
    with open(log, "w") as out:
        proc = subprocess.run([nspawn, "-q", "--register=no", "--keep-unit", "-D", str(root), "--pipe",
                               "--", "/bin/sh", "-ec", script], stdout=out, stderr=subprocess.STDOUT,
                              stdin=subprocess.DEVNULL, env=hostcmd.env(), timeout=900)
    if proc.returncode != 0:
        last = [ln for ln in log.read_text(errors="replace").splitlines() if ln.strip()][-1:]
        raise InfrastructureError(f"installing {', '.join(PACKAGES)} into the cluster template failed: "
                                  f"{last[0] if last else proc.returncode}", f"read {log}")
    for f in (root / "var/cache/apt").glob("*.bin"):
        f.unlink()


def _write(path: Path, text: str, mode: int = 0o644) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    os.chmod(path, mode)


def _install_cluster_files(root: Path, artifacts: build.Artifacts) -> None:
    for b in build.BINARIES:
        shutil.copy2(artifacts.bin / b, root / "usr/local/bin" / b)
        os.chmod(root / "usr/local/bin" / b, 0o755)
    images = root / IMAGES_DIR
    images.mkdir(parents=True, exist_ok=True)
    for tar in artifacts.image_tars():
        shutil.copy2(tar, images / tar.name)
    sysd = root / "etc/systemd/system"
    _write(root / "usr/local/sbin/kubelab-twin-prep", TWIN_PREP_SH, 0o755)
    _write(sysd / "kubelab-twin-prep.service", TWIN_PREP_SERVICE)
    _write(sysd / "kubelab-images.service", IMAGES_SERVICE)
    _write(sysd / "kubelet.service", KUBELET_SERVICE)
    _write(sysd / "kubelet.service.d/10-kubeadm.conf", KUBEADM_DROPIN)
    _write(sysd / "kube-proxy.service", KUBE_PROXY_SERVICE)
    _write(root / "etc/containerd/config.toml", CONTAINERD_CONFIG.format(pause=build.PAUSE_IMAGE))
    for d in ("etc/kubernetes/manifests", "etc/cni/net.d", "var/lib/kubelet"):
        (root / d).mkdir(parents=True, exist_ok=True)
    hostcmd.run(["systemctl", f"--root={root}", "enable", "kubelab-twin-prep.service", "kubelab-images.service",
                 "containerd.service", "kubelet.service", "kube-proxy.service"],
                what="enabling the cluster units in the template", fix="check the template root file system")
