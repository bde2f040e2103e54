"""The suite on several workers (pytest-xdist; `scripts/test.sh`: `-n 3 --dist loadgroup`).

Most of the suite's time is spent waiting on the twins (a kubelet restarting, a Pod turning Ready), not on a CPU,
so each worker drives a twin set of its own, even on 2 cores. Every twin set is the course's own (node names and
addresses from course.yaml, which the notebooks and graders read), so each worker enters a network namespace of
its own and takes a KUBELAB_TWIN_INSTANCE of its own (kubelab/twin/paths.py: its own folders, cgroups and lease).

What runs where: every module is one unit of work, kept whole on one worker in its written order (a module's tests
build on each other and share module fixtures). Units that must share a session fixture are one unit: all the
modules on the shared cluster, split by measured time into one unit per worker (one cluster boot per worker, not
one per module), and all those that read Lab 1's recorded evidence. The shared-cluster units are the longest, so
they start first; modules on plain twins come next and the modules that need no twins last, where they fill
whichever worker frees up first.

The units are handed out by `UnitScheduling`, xdist's load-by-scope scheduler with our units as its scopes. Not
`xdist_group` marks: xdist 3.8 passes a mark's group to the controller by rewriting the test's node id, which
pytest 9.2 no longer honours (pytest-dev/pytest-xdist#1386, open), so the marks would be silently ignored. Each
worker writes its collection's units to a file the controller names (`pytest_configure_node`); both workers'
collections are the same, and the controller reads it once every worker has collected."""

from __future__ import annotations

import ctypes
import json
import os
import re
import subprocess
from pathlib import Path

import pytest
from xdist.scheduler import LoadScopeScheduling

UNITS_KEY = "kubelab_units_file"  # the workerinput entry naming where a worker writes its units

CLONE_NEWNET = 0x40000000  # <linux/sched.h>


def enter_own_network_namespace() -> None:
    """Move this process (its main thread, and so every process and thread it starts from now on) into a new
    network namespace with only a loopback, brought up: the twin set's bridge, the twins' addresses and a local
    JupyterLab's port are then this worker's alone."""
    try:
        if hasattr(os, "unshare"):  # Python 3.12+
            os.unshare(CLONE_NEWNET)
        elif ctypes.CDLL(None, use_errno=True).unshare(CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), os.strerror(ctypes.get_errno()))
    except OSError as e:
        raise pytest.UsageError(f"a test worker cannot enter a network namespace of its own ({e.strerror}): run "
                                f"the suite as root, or in one process (KUBELAB_TEST_WORKERS=0)") from None
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)


def _module(nodeid: str) -> str:
    return nodeid.split("::")[0]


SECONDS = Path(__file__).with_name("module_seconds.json")  # measured per module; see split_cluster_modules
DEFAULT_SECONDS = 120  # a module not measured yet (a new lab): about what a lab's live module takes


def module_seconds() -> dict[str, float]:
    try:
        return {k: float(v) for k, v in json.loads(SECONDS.read_text())["seconds"].items()}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return {}


def split_cluster_modules(modules: list[str], parts: int, seconds: dict[str, float]) -> list[list[str]]:
    """The shared-cluster modules in `parts` units of about equal time, one cluster each (a boot costs ~2 min, a
    shared-cluster unit alone takes longer than all the other modules together), longest first into the least
    loaded part; inside a part the modules keep their order (a module that leaves the cluster dirty stays last)."""
    parts = max(1, min(parts, len(modules)))
    load = [0.0] * parts
    part_of: dict[str, int] = {}
    for m in sorted(modules, key=lambda m: -seconds.get(m, DEFAULT_SECONDS)):
        i = load.index(min(load))
        part_of[m] = i
        load[i] += seconds.get(m, DEFAULT_SECONDS)
    return [[m for m in modules if part_of[m] == i] for i in range(parts)]


def order_into_units(items, workers: int = 1, seconds: dict[str, float] | None = None) -> dict[str, str]:
    """Order the tests unit by unit, longest kind first (the shared-cluster units, one per worker; Lab 1's evidence
    readers; other twins modules; the rest: each kind in its collected order, each unit's tests in their written
    order) and return {node id: unit}."""
    shared: dict[str, str] = {}
    cluster: list[str] = []
    for item in items:
        m = _module(item.nodeid)
        if "shared_cluster" in item.fixturenames and m not in cluster:
            cluster.append(m)
        elif "lab01_evidence" in item.fixturenames and m not in cluster:
            shared.setdefault(m, "lab01-evidence")
    parts = split_cluster_modules(cluster, workers, module_seconds() if seconds is None else seconds)
    for i, part in enumerate(parts, 1):
        for m in part:
            shared[m] = "shared-cluster" if len(parts) == 1 else f"shared-cluster-{i}"

    def unit_of(item) -> str:
        return shared.get(_module(item.nodeid), _module(item.nodeid))

    rank: dict[str, int] = {unit: 0 for unit in shared.values() if unit.startswith("shared-cluster")}
    rank["lab01-evidence"] = 1
    for item in items:  # a unit's rank, not a test's: a unit's tests stay in their written order
        unit = unit_of(item)
        rank[unit] = min(rank.get(unit, 3), 2 if "twins" in item.fixturenames else 3)
    items.sort(key=lambda item: rank[unit_of(item)])  # stable
    return {item.nodeid: unit_of(item) for item in items}


def write_units(path: str, units: dict[str, str], worker: str) -> None:
    tmp = Path(f"{path}.{worker}")
    tmp.write_text(json.dumps(units))
    tmp.replace(path)  # both workers write the same map; the controller reads a whole one


class UnitScheduling(LoadScopeScheduling):
    """xdist's load-by-scope scheduling, a scope being one of our units (read from the workers' units file)."""

    def __init__(self, config: pytest.Config, log, units_file: Path):
        super().__init__(config, log)
        self._units_file = units_file
        self._units: dict[str, str] | None = None

    def _split_scope(self, nodeid: str) -> str:
        if self._units is None:  # first asked once every worker has collected: the file is there
            try:
                self._units = json.loads(self._units_file.read_text())
            except (OSError, ValueError):
                self._units = {}  # no units: one module per unit, still whole
        return self._units.get(nodeid) or _module(nodeid)


def seconds_from_junit(report: Path) -> dict[str, float]:
    """{module: seconds} from a `--junitxml` report (each test's time is its setup, call and teardown)."""
    import xml.etree.ElementTree as ET

    out: dict[str, float] = {}
    for case in ET.parse(report).iter("testcase"):
        module = "tests/" + case.get("classname", "").split(".")[1] + ".py" if "." in case.get("classname", "") \
            else None
        if module:
            out[module] = round(out.get(module, 0.0) + float(case.get("time", 0)), 1)
    return out


if __name__ == "__main__":
    import argparse

    ap = argparse.ArgumentParser(description="refresh tests/module_seconds.json from a whole run's --junitxml")
    ap.add_argument("--seconds-from", type=Path, required=True, metavar="REPORT.xml")
    args = ap.parse_args()
    from xml.etree.ElementTree import ParseError

    try:
        measured = seconds_from_junit(args.seconds_from)
    except (OSError, ValueError, ParseError) as e:
        raise SystemExit(f"error: cannot read {args.seconds_from}: {e}\nfix: pass the file pytest --junitxml wrote")
    data = json.loads(SECONDS.read_text())
    root = Path(__file__).resolve().parents[1]
    uses = re.compile(r"def \w+\([^)]*\bshared_cluster\b")  # a test or fixture of the module asks for it
    cluster = {m for m in measured if (root / m).is_file() and uses.search((root / m).read_text(errors="replace"))}
    data["seconds"] = {m: measured.get(m, s) for m, s in data["seconds"].items()} | \
        {m: measured[m] for m in sorted(cluster - set(data["seconds"]))}
    data["measured"] = f"from {args.seconds_from.name}: the sum of each module's test times"
    SECONDS.write_text(json.dumps(data, indent=2) + "\n")
    print(f"{SECONDS}: {len(data['seconds'])} modules")
