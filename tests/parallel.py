"""The suite on two workers (pytest-xdist, `scripts/test.sh`: `-n 2 --dist loadgroup`).

Most of the suite's time is spent waiting on the twins (a kubelet restarting, a Pod turning Ready), not on a CPU,
so two workers each drive a twin set of their own. Both twin sets are the course's own (node names, addresses
from course.yaml, which the notebooks and graders read), so each worker enters a network namespace of its own
and a KUBELAB_TWIN_INSTANCE of its own (kubelab/twin/paths.py: its own folders, cgroups and lease).

What runs where: every module is one unit of work, kept whole on one worker in its written order (a module's tests
build on each other and share module fixtures). Units that must share a session fixture are one unit: all the
modules on the shared cluster (one boot per worker, not one per module) and all those that read Lab 1's recorded
evidence. The shared-cluster unit is the longest, so it starts first; modules on plain twins come next and the
modules that need no twins last, where they fill whichever worker frees up first."""

from __future__ import annotations

import ctypes
import os
import subprocess

import pytest

CLONE_NEWNET = 0x40000000  # <linux/sched.h>


def enter_own_network_namespace() -> None:
    """Move this process (its main thread, and so every process and thread it starts from now on) into a new
    network namespace with only a loopback, brought up: the twin set's bridge, the twins' addresses and a local
    JupyterLab's port are then this worker's alone."""
    unshare = getattr(os, "unshare", None)  # Python 3.12+
    if unshare is not None:
        unshare(CLONE_NEWNET)
    else:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.unshare(CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise pytest.UsageError(f"a test worker cannot enter a network namespace of its own "
                                    f"({os.strerror(err)}): run the suite as root, or with -n 0")
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)


def _module(item) -> str:
    return item.nodeid.split("::")[0]


def unit_of(item, shared: dict[str, str]) -> str:
    return shared.get(_module(item), _module(item))


def assign_worker_groups(items) -> None:
    """Mark every test with its unit of work (xdist_group) and order the units longest-first: shared cluster,
    then Lab 1's evidence readers, then other twins modules, then the rest, each kind in its collected order."""
    shared: dict[str, str] = {}
    for item in items:
        if "shared_cluster" in item.fixturenames:
            shared[_module(item)] = "shared-cluster"
        elif "lab01_evidence" in item.fixturenames:
            shared.setdefault(_module(item), "lab01-evidence")

    rank: dict[str, int] = {"shared-cluster": 0, "lab01-evidence": 1}
    for item in items:  # a unit's rank, not a test's: a unit's tests stay in their written order
        unit = unit_of(item, shared)
        rank[unit] = min(rank.get(unit, 3), 2 if "twins" in item.fixturenames else 3)
    items.sort(key=lambda item: rank[unit_of(item, shared)])  # stable: the collected order within each kind
    for item in items:
        item.add_marker(pytest.mark.xdist_group(unit_of(item, shared)))
