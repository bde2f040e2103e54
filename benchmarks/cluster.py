#!/usr/bin/env python3
"""Benchmark: the real kubeadm v1.20.2 cluster on the lab twins. Prints the cold build time (binaries,
images and the cluster template; measured now with --cold in a separate cache, else as recorded when the
cache was built), the cached `up --cluster` time, `kubeadm init` time and the teardown time.

As root: python benchmarks/cluster.py [--cold] [--repeat N]. Holds the twins' lease while it runs.
This prints figures; it asserts nothing about time."""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

from kubelab.cluster import build, cluster, template
from kubelab.course import load_course
from kubelab.twin import lease

REPO = Path(__file__).resolve().parent.parent


def quiet(_: str) -> None:
    pass


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cold", action="store_true", help="build from nothing in a temporary cache (~8-10 min)")
    ap.add_argument("--repeat", type=int, default=1)
    args = ap.parse_args()
    course = load_course(REPO)
    held = lease.acquire(course.model.course.id)
    try:
        if args.cold:
            saved = os.environ.get("KUBELAB_CACHE_DIR")
            with tempfile.TemporaryDirectory(dir="/var/cache") as tmp:
                os.environ["KUBELAB_CACHE_DIR"] = tmp
                try:
                    t0 = time.monotonic()
                    build.ensure_built(print)
                    b = time.monotonic() - t0
                    template.ensure_template(print)
                    print(f"cold build: {b:.0f}s binaries+images, {time.monotonic() - t0:.0f}s with the base and "
                          "the cluster template")
                finally:
                    if saved is None:
                        os.environ.pop("KUBELAB_CACHE_DIR")
                    else:
                        os.environ["KUBELAB_CACHE_DIR"] = saved
        t0 = time.monotonic()
        artifacts = build.ensure_built(print)
        template.ensure_template(print)
        print(f"cold build (as recorded when cached): {artifacts.info()['build_seconds']}s; "
              f"cache check now {time.monotonic() - t0:.1f}s")
        ups, inits, downs = [], [], []
        for i in range(args.repeat):
            ts, t = cluster.up(course, progress=quiet)
            ups.append(t.total_s)
            inits.append(t.init_s)
            print(f"run {i + 1}: cached up --cluster {t.total_s:.1f}s (twins {t.twins_s:.1f}s, images "
                  f"{t.images_s:.1f}s, kubeadm init {t.init_s:.1f}s, join {t.join_s:.1f}s, Ready+demo "
                  f"{t.ready_s:.1f}s)")
            t1 = time.monotonic()
            cluster.down(course)
            downs.append(time.monotonic() - t1)
            left = ts.leftovers()
            print(f"run {i + 1}: down {downs[-1]:.1f}s, leftovers: {left or 'none'}")
        print(f"cached up --cluster: median {statistics.median(ups):.1f}s; kubeadm init: median "
              f"{statistics.median(inits):.1f}s; down: median {statistics.median(downs):.1f}s")
    finally:
        held.close()


if __name__ == "__main__":
    main()
