#!/usr/bin/env python3
"""Benchmark: grade Lab 1 on the lab twins with the kubelab engine, and the same checks run as plain
per-check testinfra tests. Prints wall time, SSH connections opened and commands sent for each.

Needs running twins: `kubelab twin up` (as root). Usage: python benchmarks/grade_lab01.py [--repeat N]
This prints figures; it asserts nothing about time."""

from __future__ import annotations

import argparse
import importlib.util
import inspect
import statistics
import time
from pathlib import Path

import testinfra.host
from testinfra.backend.paramiko import ParamikoBackend

from kubelab.course import load_course
from kubelab.engine.checks import CheckFailed, spec_of
from kubelab.engine.kube import Kube
from kubelab.engine.runner import run_lab
from kubelab.engine.targets import SshConfigTarget
from kubelab.twin import TwinSet, lease

REPO = Path(__file__).resolve().parent.parent


def engine_run(course, ssh_config):
    target = SshConfigTarget(course, ssh_config)
    t0 = time.perf_counter()
    result = run_lab(course, "lab01", target)
    wall = time.perf_counter() - t0
    target.close()
    return wall, target.stats.connections_opened, target.stats.commands_sent, len(result.checks)


class Counting:
    def __init__(self):
        self.connections = 0
        self.commands = 0


def plain_testinfra_run(course, ssh_config):
    """What a plain testinfra suite does: a host per test (module-scoped at best), each check on its own."""
    spec = importlib.util.spec_from_file_location("bench_lab01", course.grader_path("lab01"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    checks = [fn for name, fn in vars(module).items() if name.startswith("test_") and spec_of(fn)]
    counts = Counting()
    t0 = time.perf_counter()
    n = 0
    for fn in checks:
        for node in course.model.select_nodes(spec_of(fn).on):
            # a fresh testinfra host per check, as in a suite whose `host` fixture is function-scoped
            backend = ParamikoBackend(node.name, ssh_config=str(ssh_config))
            host = testinfra.host.Host(backend)
            counts.connections += 1
            original = host.backend.run

            def run(command, *args, _orig=original, **kwargs):
                counts.commands += 1
                return _orig(command, *args, **kwargs)

            host.backend.run = run
            kwargs = {}
            params = inspect.signature(fn).parameters
            if "host" in params:
                kwargs["host"] = host
            if "node" in params:
                kwargs["node"] = node
            if "course" in params:
                kwargs["course"] = course.model
            if "kube" in params:
                kwargs["kube"] = Kube(host, node.name)
            try:
                fn(**kwargs)
            except CheckFailed:
                pass
            n += 1
            if "client" in vars(backend):
                backend.client.close()
    return time.perf_counter() - t0, counts.connections, counts.commands, n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    course = load_course(REPO)
    twins = TwinSet(course)
    held = lease.acquire(course.model.course.id)  # tests and benchmarks never share running twins
    try:
        twins.up(progress=None)
        rows = measure(course, twins.ssh_config_file(), args.repeat)
    finally:
        twins.down()
        held.close()
    print(f"Lab 1 on {len(course.model.nodes)} twins, {args.repeat} runs each")
    print(f"{'runner':44} {'median s':>9} {'best s':>7} {'ssh conns':>9} {'commands':>9} {'checks':>7}")
    for label, med, best, conns, cmds, checks in rows:
        print(f"{label:44} {med:9.2f} {best:7.2f} {conns:9d} {cmds:9d} {checks:7d}")


def measure(course, ssh_config, repeat):
    rows = []
    for label, fn in (("kubelab engine (one connection per node)", engine_run),
                      ("testinfra, a connection per check (paramiko)", plain_testinfra_run)):
        runs = [fn(course, ssh_config) for _ in range(repeat)]
        walls = [r[0] for r in runs]
        _, conns, cmds, checks = runs[-1]
        rows.append((label, statistics.median(walls), min(walls), conns, cmds, checks))
    return rows


if __name__ == "__main__":
    main()
