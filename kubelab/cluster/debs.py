"""kubeadm, kubelet and kubectl .debs shaped like pkgs.k8s.io's, from the cached v1.20.2 build.

pkgs.k8s.io is out of reach here, so Lab 3's tests install packages built from the binaries of
kubelab.cluster.build (Debian's source, v1.20.2) and served by a local repository
(kubelab.twin.aptrepo) in pkgs.k8s.io's layout. What a learner's commands and the Lab 3 grader see is
laid out as in the official packages (kubernetes/release, cmd/krel/templates/latest):

- kubelet:  /usr/bin/kubelet, /usr/lib/systemd/system/kubelet.service, /etc/default/kubelet
            (`KUBELET_EXTRA_ARGS=`, a conffile), /var/lib/kubelet and /etc/kubernetes/manifests;
            installing it enables the service (it then restarts in a loop until `kubeadm init`/`join`).
- kubeadm:  /usr/bin/kubeadm and the kubelet drop-in
            /usr/lib/systemd/system/kubelet.service.d/10-kubeadm.conf, which reads /etc/default/kubelet.
- kubectl:  /usr/bin/kubectl.

Versions are `<patch>-1.1` (e.g. 1.20.2-1.1), like pkgs.k8s.io's. Not built: kubernetes-cni (the dependency
of newer kubelet packages); these packages do not depend on it. cri-tools exists only as a STAND-IN
(cri_tools_standin_deb below: Debian has no crictl). Built once per build and recipe, kept in
<cache>/debs/built/<key>/.
"""

from __future__ import annotations

import fcntl
from pathlib import Path

from kubelab.cluster import build
from kubelab.cluster.kubelet_units import kubeadm_dropin, kubelet_service
from kubelab.twin.aptrepo import build_deb
from kubelab.twin.paths import cache_root

RECIPE_VERSION = 1
PACKAGES = ("kubelet", "kubeadm", "kubectl")
DEB_REVISION = "1.1"

KUBELET_DEFAULTS = "KUBELET_EXTRA_ARGS=\n"

# like the debhelper snippets of a packaged service: enable it on install, start it, stop it on removal
KUBELET_POSTINST = """if [ "$1" = configure ]; then
  if [ -d /run/systemd/system ]; then
    systemctl daemon-reload || true
    systemctl enable kubelet.service || true
    systemctl restart kubelet.service || true
  fi
fi
"""
KUBELET_PRERM = """if [ -d /run/systemd/system ] && [ "$1" = remove ]; then
  systemctl stop kubelet.service || true
  systemctl disable kubelet.service || true
fi
"""
KUBEADM_POSTINST = """if [ -d /run/systemd/system ]; then systemctl daemon-reload || true; fi
"""


def deb_version() -> str:
    """The packages' version: the build's Kubernetes patch plus pkgs.k8s.io's revision, e.g. 1.20.2-1.1."""
    return f"{build.KUBE_VERSION.lstrip('v')}-{DEB_REVISION}"


def ensure_debs(progress=print) -> list[Path]:
    """kubelet, kubeadm and kubectl .debs of the cached v1.20.2 build (built first if needed)."""
    artifacts = build.ensure_built(progress)
    out = cache_root() / "debs" / "built" / f"{build.cache_key()}-r{RECIPE_VERSION}"
    version = deb_version()
    wanted = [out / f"{name}_{version}_amd64.deb" for name in PACKAGES]
    if all(p.is_file() for p in wanted):
        return wanted
    out.mkdir(parents=True, exist_ok=True)
    with open(out / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if all(p.is_file() for p in wanted):
            return wanted
        progress(f"building kubelet, kubeadm and kubectl {version} .debs from {artifacts.dir.name}")
        tmp = out / ".tmp"
        tmp.mkdir(exist_ok=True)
        bin_ = artifacts.bin
        debs = [
            build_deb(tmp, "kubelet", version, {
                "/usr/bin/kubelet": bin_ / "kubelet",
                "/usr/lib/systemd/system/kubelet.service": kubelet_service(),
                "/etc/default/kubelet": KUBELET_DEFAULTS,
                "/var/lib/kubelet/.kubelet-keep": "",
                "/etc/kubernetes/manifests/.kubelet-keep": "",
            }, arch="amd64", depends=["mount", "util-linux"], description="Node agent for Kubernetes clusters",
                modes={"/usr/bin/kubelet": 0o755}, conffiles=["/etc/default/kubelet"],
                maintainer_scripts={"postinst": KUBELET_POSTINST, "prerm": KUBELET_PRERM}),
            build_deb(tmp, "kubeadm", version, {
                "/usr/bin/kubeadm": bin_ / "kubeadm",
                "/usr/lib/systemd/system/kubelet.service.d/10-kubeadm.conf": kubeadm_dropin(),
            }, arch="amd64", description="Command-line utility for administering a Kubernetes cluster",
                modes={"/usr/bin/kubeadm": 0o755}, maintainer_scripts={"postinst": KUBEADM_POSTINST}),
            build_deb(tmp, "kubectl", version, {"/usr/bin/kubectl": bin_ / "kubectl"}, arch="amd64",
                      description="Command-line utility for interacting with a Kubernetes cluster",
                      modes={"/usr/bin/kubectl": 0o755}),
        ]
        for deb, dest in zip(debs, wanted):
            deb.rename(dest)
        tmp.rmdir()
    return wanted


# -- cri-tools: a STAND-IN ---------------------------------------------------------------------
# Debian has no cri-tools package (neither bookworm nor sid), pkgs.k8s.io is out of reach here, and kubeadm >= 1.32
# packages no longer depend on it (kubernetes/release#3626), so Lab 3 installs it explicitly. For the twins'
# local repository this builds a package NAMED cri-tools whose crictl is a shell script that says it is a stand-in:
# `crictl --version` answers, `crictl version` reports containerd's version read with ctr (NOT over the CRI),
# and every other command fails saying so. It proves the package is installed from the course's repository and
# on PATH, nothing about the CRI.
CRI_TOOLS_STANDIN_VERSION = "1.20.0-1.1"
CRICTL_STANDIN = """#!/bin/sh
# kubelab STAND-IN for crictl (lab twins only): not cri-tools. See kubelab/cluster/debs.py.
case "$1" in
  --version|-v) echo "crictl version v1.20.0 (kubelab stand-in, not cri-tools)" ;;
  version)
    v=$(ctr version 2>/dev/null | awk '/^Server:/ {s = 1} s && /Version:/ {print $2; exit}')
    [ -n "$v" ] || { echo "crictl (kubelab stand-in): containerd did not answer ctr version" >&2; exit 1; }
    printf 'Version:  0.1.0\\nRuntimeName:  containerd\\nRuntimeVersion:  %s\\nRuntimeApiVersion:  v1alpha2\\n' "$v"
    echo "(kubelab stand-in: the runtime's version read with ctr, not over the CRI)" >&2 ;;
  *) echo "crictl (kubelab stand-in for the lab twins) does not implement '$*': Debian has no cri-tools" >&2
     exit 1 ;;
esac
"""


def cri_tools_standin_deb(out_dir: Path) -> Path:
    """The STAND-IN cri-tools .deb described above, built into `out_dir` (a second, cheap)."""
    return build_deb(out_dir, "cri-tools", CRI_TOOLS_STANDIN_VERSION, {"/usr/bin/crictl": CRICTL_STANDIN},
                     arch="amd64", modes={"/usr/bin/crictl": 0o755},
                     description="STAND-IN for cri-tools built by kubelab for the lab twins: crictl answers "
                                 "--version and version only (Debian has no cri-tools)")
