#!/usr/bin/env python3
"""Benchmark: class grading throughput. Prints figures; asserts nothing about time.

1. Replay: K evidence files (one real recording of Lab 1 on the twins, re-sealed with a different
   machine-id per learner) graded by `kubelab class grade`'s engine — a plain in-process loop for
   reference, then worker processes with jobs=1 (serial) and jobs=N: wall time and labs per second.
2. Live: a roster of L learners whose ssh-configs all point at the twins, graded with jobs=1 and jobs=N,
   once on fresh twins (Lab 1 not done: failing checks poll until their `wait_s` runs out) and once after
   the solution notebook prepared them (every check passes at first sight).

Needs root and the lab twins (it takes the twin session lease, boots fresh twins and stops them at the end).
Usage: python benchmarks/class_grading.py [--evidence K] [--learners L] [--jobs N]"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

from kubelab.classroom import worker
from kubelab.classroom.learners import LearnerInput, file_digest, find_submissions
from kubelab.classroom.pool import Task, run_tasks
from kubelab.classroom.run import default_jobs, grade_class
from kubelab.course import load_course
from kubelab.engine.targets import SshConfigTarget
from kubelab.evidence import record_lab, save
from kubelab.twin import TwinSet, lease

REPO = Path(__file__).resolve().parent.parent
LAB = "lab01"


def make_class(evidence, folder: Path, k: int) -> None:
    for i in range(k):
        identity = {"nodes": {n: {"hostname": n, "machine_id": f"{i:08x}{j:024x}"}
                              for j, n in enumerate(("master", "worker"))},
                    "cluster": {"kube_system_uid": None, "etcd_cluster_id": None}}
        path = folder / f"learner{i:03d}" / LAB / f"{LAB}.evidence.json"
        path.parent.mkdir(parents=True)
        save(evidence.model_copy(update={"identity": identity}), path)


def timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def warm_up(course) -> None:
    """Start the forkserver (it imports kubelab, pytest, testinfra, paramiko once) outside the timings."""
    run_tasks([Task("warm", worker.grade_evidence, (str(course.root), LAB, "/nonexistent"))], 1, 60, lambda *_: None)


def replay_figures(course, subs: Path, out: Path, jobs_n: int) -> list[tuple]:
    inputs = find_submissions(subs, LAB)
    rows = []
    loop = timed(lambda: [worker.grade_evidence(str(course.root), LAB, str(i.source)) for i in inputs])
    rows.append(("in-process loop (no worker processes)", loop, len(inputs)))
    for jobs in (1, jobs_n):
        wall = timed(lambda: grade_class(course, LAB, inputs, out / f"replay-j{jobs}", jobs=jobs, force=True))
        rows.append((f"class grade --jobs {jobs}", wall, len(inputs)))
    return rows


def live_figures(course, ssh_config: Path, work: Path, learners: int, jobs_n: int, state: str) -> list[tuple]:
    inputs = [LearnerInput(f"learner{i:02d}", "live", ssh_config, file_digest(ssh_config), "benchmark")
              for i in range(learners)]
    rows = []
    for jobs in (1, jobs_n):
        out = work / f"live-{state}-j{jobs}"
        run = None

        def go():
            nonlocal run
            run = grade_class(course, LAB, inputs, out, jobs=jobs, force=True)

        wall = timed(go)
        statuses = sorted({r["status"] for r in run.records})
        reasons = sorted({f"{r['learner']}: {r['reason']}" for r in run.records if r["status"] == "error"})
        rows.append((f"{state} twins, class grade --jobs {jobs}", wall, learners,
                     "/".join(statuses) + "".join(f"\n    error {x}" for x in reasons)))
    return rows


def prepare_with_solution(course, ssh_config: Path, work: Path) -> None:
    import nbformat
    from nbclient import NotebookClient

    folder = work / "solution-run"
    folder.mkdir()
    nb_path = folder / course.solution_path(LAB).name
    shutil.copyfile(course.solution_path(LAB), nb_path)
    nb = nbformat.read(nb_path, as_version=4)
    os.environ.update(KUBELAB_SSH_CONFIG=str(ssh_config), KUBELAB_COURSE=str(course.root))
    NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(folder)}}).execute()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--evidence", type=int, default=40, help="evidence files to replay (K)")
    ap.add_argument("--learners", type=int, default=8, help="learners in the live roster (L)")
    ap.add_argument("--skip-replay", action="store_true", help="measure live grading only")
    ap.add_argument("--jobs", type=int, default=None, help="parallel jobs N (default: kubelab's defaults, "
                                                          "one per CPU for replay, min(8, 4 per CPU) live)")
    args = ap.parse_args()
    course = load_course(REPO)
    replay_jobs = args.jobs or default_jobs("evidence")
    live_jobs = args.jobs or default_jobs("live")
    twins = TwinSet(course)
    held = lease.acquire(course.model.course.id)  # tests and benchmarks never share running twins
    work = Path(tempfile.mkdtemp(prefix="kubelab-bench-class-"))
    try:
        twins.up(fresh=True, progress=None)
        ssh_config = work / "twins.ssh"
        ssh_config.write_text(twins.ssh_config_file().read_text())
        target = SshConfigTarget(course, ssh_config)
        try:
            _, evidence = record_lab(course, LAB, target)
        finally:
            target.close()
        subs = work / "submitted"
        make_class(evidence, subs, args.evidence)
        warm_up(course)
        replay = [] if args.skip_replay else replay_figures(course, subs, work, replay_jobs)
        live = live_figures(course, ssh_config, work, args.learners, live_jobs, "fresh (failing)")
        prepare_with_solution(course, ssh_config, work)
        live += live_figures(course, ssh_config, work, args.learners, live_jobs, "prepared (passing)")
    finally:
        twins.down()
        held.close()
        shutil.rmtree(work, ignore_errors=True)

    cpus = os.cpu_count()
    print(f"Lab 1, {cpus} CPUs, load average {os.getloadavg()[0]:.1f} at the end")
    print(f"\nReplay of {args.evidence} evidence files (a real twin recording, re-sealed per learner)")
    print(f"{'runner':44} {'wall s':>8} {'labs/s':>7}")
    for label, wall, n in replay:
        print(f"{label:44} {wall:8.2f} {n / wall:7.2f}")
    print(f"\nLive: {args.learners} learners, every ssh-config pointing at the twins")
    print(f"{'runner':44} {'wall s':>8} {'s/learner':>9} {'speed-up':>8}  statuses")
    base = None
    for label, wall, n, statuses in live:
        if "--jobs 1" in label:
            base = wall
        print(f"{label:44} {wall:8.2f} {wall / n:9.2f} {base / wall:7.1f}x  {statuses}")


if __name__ == "__main__":
    main()
