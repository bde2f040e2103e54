"""`kubelab twin ...`: boot, stop and inspect the lab twins (mounted by the main CLI as a sub-app).

Also runnable alone: `python -m kubelab.twin.cli up`.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from kubelab.twin.cliparts import CourseOption, errors_as_one_line, progress

if TYPE_CHECKING:
    from kubelab.twin.twinset import TwinSet

twin_app = typer.Typer(
    help="Lab twins: the course's nodes as local Debian systems (systemd-nspawn), reached over SSH like the "
         "Vagrant VMs. Needs root.",
    no_args_is_help=True,
)

_errors_as_one_line = errors_as_one_line
_progress = progress


def _twins(course: Path | None) -> TwinSet:
    from kubelab.course import find_course_root, load_course
    from kubelab.twin.twinset import TwinSet  # paramiko (SSH probes): loaded by the twin commands only

    return TwinSet(load_course(course if course is not None else find_course_root()))


@twin_app.command()
@_errors_as_one_line
def up(fresh: Annotated[bool, typer.Option("--fresh", help="Stop the twins and boot new copies of the base "
                                                           "root file system (all changes inside are lost).")] = False,
       cluster: Annotated[bool, typer.Option("--cluster", help="Boot fresh twins as a real kubeadm v1.20.2 "
                                                               "cluster (a test target built once from Debian's "
                                                               "archive, ~8 min; then ~1-2 min).")] = False,
       course: CourseOption = None) -> None:
    """Boot the twins that are not running and wait until each answers SSH."""
    if cluster:
        from kubelab.cluster.cli import up_cluster  # the cluster machinery loads only when asked for

        up_cluster(course)
        return
    twins = _twins(course)
    twins.up(fresh=fresh, progress=_progress)
    print(f"twins up; ssh-config: {twins.ssh_config_file()}")


@twin_app.command()
@_errors_as_one_line
def down(wipe: Annotated[bool, typer.Option("--wipe", help="Also delete the twins' root file systems and "
                                                          "their SSH key.")] = False,
         course: CourseOption = None) -> None:
    """Stop the twins and remove their cgroups and bridge (their disks stay unless --wipe)."""
    _twins(course).down(wipe=wipe, progress=_progress)
    print("twins down")


@twin_app.command()
@_errors_as_one_line
def restart(course: CourseOption = None) -> None:
    """Stop and boot the twins again, keeping their disks (like `vagrant reload`)."""
    twins = _twins(course)
    twins.restart(progress=_progress)
    print(f"twins up; ssh-config: {twins.ssh_config_file()}")


@twin_app.command()
@_errors_as_one_line
def status(course: CourseOption = None) -> None:
    """Show each twin: role, IP, state, nspawn PID and whether SSH answers."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title="lab twins")
    for col in ("node", "role", "ip", "state", "pid", "ssh"):
        table.add_column(col)
    for s in _twins(course).status():
        table.add_row(s.name, s.role, s.ip, s.state, str(s.pid or "-"), "yes" if s.ssh else "no")
    Console().print(table)


@twin_app.command("ssh-config")
@_errors_as_one_line
def ssh_config(course: CourseOption = None) -> None:
    """Print the twins' SSH settings in the format of `vagrant ssh-config`."""
    sys.stdout.write(_twins(course).ssh_config())


if __name__ == "__main__":
    twin_app()
