"""What a kubeadm cluster on the twins could leave on the host (sysctls the kubelet sets, kubepods cgroups, links,
mounts, processes): taken before a cluster boots and after it is taken down, the two must match.

What belongs to another worker's twin set (tests/parallel.py: another KUBELAB_TWIN_INSTANCE, its own cgroups and
twin folder, in its own network namespace) comes and goes on its own schedule and is left out; everything else on
the host, including anything a twin of ours leaked out of its cgroup, is in."""

from __future__ import annotations

import os
import re
import socket
from pathlib import Path

from kubelab.course import load_course
from kubelab.twin.paths import DEFAULT_TWIN_ROOT, cgroup_prefix, twin_root

SYSCTLS = ("vm/overcommit_memory", "kernel/panic", "kernel/panic_on_oops", "kernel/keys/root_maxkeys",
           "kernel/keys/root_maxbytes", "net/ipv4/ip_forward", "net/netfilter/nf_conntrack_max",
           "net/bridge/bridge-nf-call-iptables", "vm/panic_on_oom", "kernel/pid_max")
CP_PROCS = {"kubelet", "kube-apiserver", "kube-controller", "kube-scheduler", "kube-proxy", "etcd", "containerd",
            "containerd-shim", "pause"}


COURSE_ID = load_course(Path(__file__).resolve().parents[1]).model.course.id


def _another_instances(path: str) -> bool:
    """A cgroup path or mount point of another twin set of this course: its cgroups are named with another
    prefix, its files live in another twin folder."""
    ours = cgroup_prefix(COURSE_ID)
    for name in re.findall(rf"kubelab-twin_{COURSE_ID}[._][^/]*", path):
        if not name.startswith(ours):
            return True
    base = str(Path(os.environ.get("KUBELAB_TWIN_DIR") or DEFAULT_TWIN_ROOT).absolute())
    mine = str(twin_root())
    return (path == base or path.startswith((base + "/", base + "@"))) and not (path == mine or
                                                                             path.startswith(mine + "/"))


def _cgroup_of(pid: str) -> str:
    try:
        return Path("/proc", pid, "cgroup").read_text()
    except OSError:
        return ""


def host_state() -> dict:
    sysctls = {}
    for s in SYSCTLS:
        try:
            sysctls[s] = Path("/proc/sys", s).read_text().strip()
        except OSError:
            sysctls[s] = None
    kubepods = [str(p) for p in Path("/sys/fs/cgroup").glob("*/**/kubepods*") if not _another_instances(str(p))]
    links = {name for _, name in socket.if_nameindex()}  # this process's network namespace (sysfs shows its mounter's)
    mounts = {m for ln in Path("/proc/self/mountinfo").read_text().splitlines()
              if not _another_instances(m := ln.split()[4])}
    procs = set()
    for e in os.scandir("/proc"):
        if e.name.isdigit():
            try:
                comm = Path(e.path, "comm").read_text().strip()
            except OSError:
                continue
            if (comm in CP_PROCS or comm.startswith("kube-")) and not _another_instances(_cgroup_of(e.name)):
                procs.add(f"{e.name} {comm}")
    return {"sysctls": sysctls, "kubepods": kubepods, "links": links, "mounts": mounts, "procs": procs}
