#!/usr/bin/env python3
"""Benchmark: grading from evidence at its floor. Prints figures; asserts nothing about time.

1. Class replay: a class of L learners (default 200) per lab hands in evidence, graded by `kubelab class
   grade`'s engine (grade_class) with --jobs 1 and --jobs 2: wall time, labs/s and labs/s per core. For
   reference, the floor: the same files replayed in one process in a plain loop (the direct driver).
   Evidence without twins (tests/replay_corpus.py): Lab 1 recorded live with this machine as every node,
   Lab 4 the simulated v1.36 control plane (healthy and each mistake, modelled on shared/realdata), Lab 5
   the same control plane before a worker joined.
2. One `kubelab grade lab04 --replay FILE` (a fresh process, as a learner or nbgrader runs it): wall time;
   the same for Lab 1, whose graders ask no API (Lab 4's replay answers its API reads through kubelite, without
   importing the Kubernetes client; the difference is Lab 4's checks and its larger evidence).
3. `kubelab --help`: wall time.

No root, no twins. Usage: python benchmarks/replay.py [--learners L] [--repeat R] [--labs lab01,lab04,lab05]"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))  # the evidence the suite records (replay_corpus) is the class's

import replay_corpus  # noqa: E402
from kubelab.classroom import reports, run, worker  # noqa: E402
from kubelab.classroom.learners import find_submissions  # noqa: E402
from kubelab.classroom.pool import Task, run_tasks  # noqa: E402
from kubelab.classroom.run import grade_class  # noqa: E402
from kubelab.course import load_course  # noqa: E402
from kubelab.engine.targets import LocalTarget  # noqa: E402


def evidence_files(course, work: Path) -> dict[str, list[Path]]:
    from lab04_evidence import MISTAKES, Sim136, SimTarget

    files = {"lab01": [replay_corpus.record(course, "lab01", LocalTarget(course), work / "lab01.json")],
             "lab04": [], "lab05": []}
    for mistake in [None, *sorted(MISTAKES)]:
        name = mistake or "healthy"
        files["lab04"].append(replay_corpus.record(course, "lab04", SimTarget(course, Sim136(course.model, mistake)),
                                                   work / f"lab04-{name}.json"))
    files["lab05"].append(replay_corpus.record(course, "lab05", SimTarget(course, Sim136(course.model)),
                                               work / "lab05.json"))
    return files


def make_class(files: list[Path], folder: Path, learners: int) -> None:
    folder.mkdir(parents=True)
    for i in range(learners):
        shutil.copyfile(files[i % len(files)], folder / f"learner{i:03d}.json")


def timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def wall_of(cmd: list[str], repeat: int) -> tuple[float, float]:
    """Best and median wall time of a fresh process (its exit code is the grade's, not checked here)."""
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=REPO)
        times.append(time.perf_counter() - t0)
    return min(times), statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--learners", type=int, default=200)
    ap.add_argument("--repeat", type=int, default=5, help="runs of each single-command timing")
    ap.add_argument("--labs", default="lab01,lab04,lab05")
    args = ap.parse_args()
    labs = args.labs.split(",")
    course = load_course(REPO)
    exe = shutil.which("kubelab") or str(Path(sys.executable).parent / "kubelab")
    work = Path(tempfile.mkdtemp(prefix="kubelab-bench-replay-"))
    rows = []
    outputs: list[float] = []  # the class outputs (gradebook, per-learner files, pass-rate PNG) of each run
    write_all = reports.write_all

    def timed_outputs(*a, **k):
        t0 = time.perf_counter()
        try:
            return write_all(*a, **k)
        finally:
            outputs.append(time.perf_counter() - t0)

    run.reports.write_all = timed_outputs
    try:
        files = evidence_files(course, work / "evidence")
        # start the forkserver (kubelab, pytest, the Kubernetes client, the graders) outside the timings
        worker.prepare(str(course.root))
        cold = timed(lambda: run_tasks([Task("warm", worker.grade_evidence, (str(course.root), "lab01", "/nonexistent"))],
                                       1, 120, lambda *_: None))
        for lab in labs:
            subs = work / f"class-{lab}"
            make_class(files[lab], subs, args.learners)
            inputs = find_submissions(subs, lab)
            loop = timed(lambda: [worker.grade_evidence(str(course.root), lab, str(i.source)) for i in inputs])
            rows.append((lab, "in-process loop (floor, 1 core)", loop, len(inputs), 1, None))
            for jobs in (1, 2):
                wall = timed(lambda: grade_class(course, lab, inputs, work / f"out-{lab}-j{jobs}", jobs=jobs,
                                                 force=True))
                rows.append((lab, f"class grade --jobs {jobs}", wall, len(inputs), jobs, outputs[-1]))
        evidence = str(files["lab04"][0])
        grade_best, grade_median = wall_of([exe, "grade", "lab04", "--replay", evidence], args.repeat)
        lab01_best, lab01_median = wall_of([exe, "grade", "lab01", "--replay", str(files["lab01"][0])], args.repeat)
        help_best, help_median = wall_of([exe, "--help"], args.repeat)
        py_best, py_median = wall_of([sys.executable, "-c", "pass"], args.repeat)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    print(f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at the end "
          "(a shared machine: figures move with the load)")
    print(f"forkserver start (imports + graders, once per instructor command): {cold:.2f} s")
    print(f"\nClass replay, {args.learners} learners per lab")
    print("(wall includes the class outputs: gradebook, reports and the pass-rate PNG; the first run also "
          "imports matplotlib)")
    print(f"{'lab':6} {'runner':34} {'wall s':>7} {'labs/s':>8} {'labs/s/core':>11} {'outputs s':>9}")
    for lab, label, wall, n, cores, out_s in rows:
        shown = f"{out_s:9.2f}" if out_s is not None else f"{'-':>9}"
        print(f"{lab:6} {label:34} {wall:7.2f} {n / wall:8.1f} {n / wall / cores:11.1f} {shown}")
    print("\nOne command, a fresh process (best / median of %d)" % args.repeat)
    print(f"{'kubelab grade lab04 --replay FILE':40} {grade_best:6.3f} / {grade_median:6.3f} s")
    print(f"{'kubelab grade lab01 --replay FILE':40} {lab01_best:6.3f} / {lab01_median:6.3f} s  (no API reads)")
    print(f"{'kubelab --help':40} {help_best:6.3f} / {help_median:6.3f} s")
    print(f"{'python -c pass (the interpreter alone)':40} {py_best:6.3f} / {py_median:6.3f} s")


if __name__ == "__main__":
    main()
