"""`kubelab twin up --cluster` and friends, as functions the twin CLI calls.

Wiring (kubelab/twin/cli.py): in `up`, add an option
    cluster: Annotated[bool, typer.Option("--cluster", help="...")] = False
and when it is set call `kubelab.cluster.cli.up_cluster(course)` instead of `twins.up(...)`;
`down` needs no change (TwinSet.down kills pod processes first and removes every cgroup).
`cluster_app` can also be mounted as `kubelab twin cluster ...` (build | up | down).
Runnable alone: `python -m kubelab.cluster.cli up`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from kubelab.cluster import build, cluster
from kubelab.course import find_course_root, load_course
from kubelab.twin.cliparts import CourseOption
from kubelab.twin.cliparts import errors_as_one_line as _errors_as_one_line
from kubelab.twin.cliparts import progress as _progress

cluster_app = typer.Typer(
    help="A real kubeadm v1.20.2 cluster on the lab twins (a test target built offline from Debian's "
         "archive; the course itself pins a current minor). Needs root.",
    no_args_is_help=True,
)


def _course(course: Path | None):
    return load_course(course if course is not None else find_course_root())


def up_cluster(course: Path | None = None) -> None:
    """What `kubelab twin up --cluster` runs."""
    ts, t = cluster.up(_course(course), progress=_progress)
    print(f"cluster up (kubeadm init {t.init_s:.1f}s, total {t.total_s:.1f}s); ssh-config: {ts.ssh_config_file()}; "
          f"admin kubeconfig: /etc/kubernetes/admin.conf on the control plane")


@cluster_app.command("build")
@_errors_as_one_line
def build_cmd() -> None:
    """Build (or find cached) the v1.20.2 binaries and images and the cluster twin template."""
    from kubelab.cluster import template

    a = build.ensure_built(_progress)
    print(f"build: {a.dir}")
    print(f"template: {template.ensure_template(_progress)}")


@cluster_app.command("up")
@_errors_as_one_line
def up_cmd(course: CourseOption = None) -> None:
    """Fresh cluster twins: kubeadm init, join, pod network, kube-proxy, demo Deployment and Service."""
    up_cluster(course)


@cluster_app.command("down")
@_errors_as_one_line
def down_cmd(wipe: Annotated[bool, typer.Option("--wipe")] = False, course: CourseOption = None) -> None:
    """Stop the cluster twins (same as `kubelab twin down`)."""
    cluster.down(_course(course), wipe=wipe, progress=_progress)
    print("twins down")


if __name__ == "__main__":
    cluster_app()
