"""What a kubeadm cluster on the twins could leave on the host (sysctls the kubelet sets, kubepods cgroups, links,
mounts, processes): taken before a cluster boots and after it is taken down, the two must match."""

from __future__ import annotations

import os
from pathlib import Path

SYSCTLS = ("vm/overcommit_memory", "kernel/panic", "kernel/panic_on_oops", "kernel/keys/root_maxkeys",
           "kernel/keys/root_maxbytes", "net/ipv4/ip_forward", "net/netfilter/nf_conntrack_max",
           "net/bridge/bridge-nf-call-iptables", "vm/panic_on_oom", "kernel/pid_max")
CP_PROCS = {"kubelet", "kube-apiserver", "kube-controller", "kube-scheduler", "kube-proxy", "etcd", "containerd",
            "containerd-shim", "pause"}


def host_state() -> dict:
    sysctls = {}
    for s in SYSCTLS:
        try:
            sysctls[s] = Path("/proc/sys", s).read_text().strip()
        except OSError:
            sysctls[s] = None
    kubepods = [str(p) for p in Path("/sys/fs/cgroup").glob("*/**/kubepods*")]
    links = set(os.listdir("/sys/class/net"))
    mounts = {ln.split()[4] for ln in Path("/proc/self/mountinfo").read_text().splitlines()}
    procs = set()
    for e in os.scandir("/proc"):
        if e.name.isdigit():
            try:
                comm = Path(e.path, "comm").read_text().strip()
            except OSError:
                continue
            if comm in CP_PROCS or comm.startswith("kube-"):
                procs.add(f"{e.name} {comm}")
    return {"sysctls": sysctls, "kubepods": kubepods, "links": links, "mounts": mounts, "procs": procs}
