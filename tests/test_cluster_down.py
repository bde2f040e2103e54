"""`kubelab cluster down` leaves the host as it was before the cluster booted (issue 5): sysctls, cgroups, links,
mounts, processes — after a cluster that ran, and after one stopped half-way through `kubeadm init`.

Kind of proof: real 1.20 cluster on twins. The cluster taken down is the session's shared one as the modules before
this left it, healthy or broken (marker `takes_cluster_down`: it runs after every other module sharing it, so this
costs no boot of its own); the host as it was is the view tests/conftest.py took just before that cluster booted."""

from __future__ import annotations

import subprocess
import time

import pytest

from hoststate import host_state
from kubelab.cluster import cluster as cl

pytestmark = [pytest.mark.twins, pytest.mark.cluster, pytest.mark.takes_cluster_down]


@pytest.fixture(scope="module")
def cluster(shared_cluster):
    """The shared cluster, taken down here: marked dirty whatever happens, so no module after this meets it."""
    try:
        yield shared_cluster
    finally:
        shared_cluster["dirty"] = True


def _ssh(ts, node: str, cmd: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(["ssh", "-F", str(ts.ssh_config_file()), node, f"sudo -n {cmd}"],
                          capture_output=True, text=True, timeout=timeout)


def _assert_nothing_left(ts, before: dict) -> dict:
    """The host after `down` as it was before the cluster booted: no twin left, sysctls, processes, mounts and
    links as before, no kubepods cgroup. The host's state after, for further checks."""
    after = host_state()
    assert ts.leftovers() == []
    assert after["sysctls"] == before["sysctls"]
    assert after["kubepods"] == []
    assert after["procs"] == before["procs"]
    assert after["mounts"] <= before["mounts"], after["mounts"] - before["mounts"]
    new_links = after["links"] - before["links"]
    assert not new_links, new_links
    return after


def test_down_leaves_the_host_clean(cluster):
    """real 1.20 cluster on twins: after `down` nothing of the cluster is left on the host (its time is printed by
    benchmarks/cluster.py, not asserted here)."""
    ts = cluster["ts"]
    cl.down(cluster["course"])
    after = _assert_nothing_left(ts, cluster["host_before"])
    assert not [ln for ln in after["links"] if ln.startswith(("cni", "veth", "flannel"))]


def test_down_mid_kubeadm_init_leaves_the_host_clean(cluster):
    """A run that fails half-way: the twins are stopped while kubeadm init is starting the control plane's
    pods; `down` still leaves nothing behind."""
    course = cluster["course"]
    ts = cl.cluster_twins(course)
    try:
        ts.up(fresh=True, progress=None)
        ssh = cl.Ssh(ts.ssh_config_file())
        ssh.write("master", "/root/kubeadm-init.yaml", cl.KUBEADM_INIT.format(
            token="abcdef.0123456789abcdef", ip="192.168.56.10", name="master", version="v1.20.2",
            service_cidr="10.96.0.0/12", pod_cidr="10.244.0.0/16"))
        ssh.run("master", "nohup kubeadm init --config /root/kubeadm-init.yaml "
                          "--skip-phases=preflight,addon/coredns,addon/kube-proxy >/root/init.log 2>&1 &",
                what="starting kubeadm init")
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:  # until the control plane's containers run
            # no crictl in Debian: containerd's own client lists the containers (IMAGE column)
            if "kube-apiserver" in _ssh(ts, "master", "ctr -n k8s.io containers ls").stdout:
                break
            time.sleep(2)
        else:
            pytest.fail("kube-apiserver never started on master")
    finally:
        cl.down(course)
    _assert_nothing_left(ts, cluster["host_before"])
