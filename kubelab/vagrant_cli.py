"""`kubelab url` and `kubelab snapshot save|restore|list LAB`: checked wrappers around `vagrant`.

Every Vagrant call goes through `run_vagrant()`: the `vagrant` found on PATH, run in the course root (where the
Vagrantfile is) with this process's environment, so VAGRANT_* settings pass through and tests can put a fake
`vagrant` first on PATH. A missing or failing Vagrant is one line naming the command and what Vagrant said
(exit 3), never a traceback.

The lead mounts `url_command` with `app.command("url")(url_command)` and `snapshot_app` with
`app.add_typer(snapshot_app, name="snapshot")`.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import threading
from pathlib import Path
from typing import Optional
from urllib.parse import quote

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from kubelab.cliutil import user_errors
from kubelab.course import LoadedCourse, load_course
from kubelab.errors import InfrastructureError, UsageError

JUPYTER_HOST_PORT = 8888  # the host side of the master's JupyterLab port forward (127.0.0.1 only)
JUPYTER_TOKEN_PATH = "/etc/kubelab/jupyter-token"  # written by the master's provisioning, readable by vagrant
SNAPSHOT_PREFIX = "kubelab-"
VAGRANT_INSTALL_URL = "https://developer.hashicorp.com/vagrant/install"

_SNAPSHOT = re.compile(rf"^{re.escape(SNAPSHOT_PREFIX)}(lab\d{{2}})$")
_TOKEN = re.compile(r"^[A-Za-z0-9._~-]{8,}$")
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def snapshot_name(lab_id: str) -> str:
    """The snapshot every node gets for a lab: lab03 -> kubelab-lab03."""
    return f"{SNAPSHOT_PREFIX}{lab_id}"


def jupyter_url(token: str) -> str:
    return f"http://127.0.0.1:{JUPYTER_HOST_PORT}/lab?token={quote(token, safe='')}"


# -- the one way kubelab runs Vagrant ----------------------------------------------------------------

def _last_words(text: str, limit: int = 300) -> str:
    """What Vagrant said last, as one line: its last paragraph (Vagrant wraps one message over several lines)."""
    lines = [_ANSI.sub("", line).rstrip() for line in text.replace("\r", "").splitlines()]
    while lines and not lines[-1].strip():
        lines.pop()
    para: list[str] = []
    for line in reversed(lines):
        if not line.strip():
            break
        para.insert(0, line.strip())
    said = " ".join(para)
    return said if len(said) <= limit else said[: limit - 3] + "..."


def _fix_for(said: str, args: list[str], root: Path) -> str:
    low = said.lower()
    if "not created" in low or "must be created" in low:
        return f"create the nodes first: `vagrant up` in {root}"
    if "must be running" in low or "not running" in low or "poweroff" in low:
        return f"start the nodes: `vagrant up` in {root}"
    if JUPYTER_TOKEN_PATH in said and "no such file" in low:
        return f"JupyterLab is not provisioned on {args[1]} yet: `vagrant provision {args[1]}` in {root}"
    if args[:2] == ["snapshot", "save"] and "already exists" in low:
        m = _SNAPSHOT.match(args[-1])
        return f"replace it: `kubelab snapshot save {m.group(1) if m else args[-1]} --force`"
    return f"run `vagrant status` in {root} to see the nodes' state, fix what it shows, then retry"


def run_vagrant(args: list[str], root: Path, *, echo: bool = False) -> subprocess.CompletedProcess:
    """Run `vagrant ARGS` in root with this environment; return it, or raise InfrastructureError (exit 3).

    echo=True streams Vagrant's stdout live (progress of long snapshot operations); stdout is captured either way.
    """
    command = "vagrant " + " ".join(shlex.quote(a) for a in args)
    exe = shutil.which("vagrant")
    if exe is None:
        raise InfrastructureError(f"`{command}` cannot run: vagrant is not installed or not on PATH",
                                  f"install Vagrant from {VAGRANT_INSTALL_URL}, then run `kubelab doctor`")
    try:
        proc = subprocess.Popen([exe, *args], cwd=root, env=dict(os.environ), stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, errors="replace")
    except OSError as e:
        raise InfrastructureError(f"`{command}` cannot run: {e.strerror or e}",
                                  f"check that {exe} is a working Vagrant (`vagrant --version`)")
    err: list[str] = []
    reader = threading.Thread(target=lambda: err.append(proc.stderr.read()), daemon=True)
    reader.start()
    out: list[str] = []
    for line in proc.stdout:
        out.append(line)
        if echo:
            typer.echo(line, nl=False)
    rc = proc.wait()
    reader.join()
    stdout, stderr = "".join(out), "".join(err)
    if rc != 0:
        said = _last_words(stderr) or _last_words(stdout) or "(no output)"
        raise InfrastructureError(f"`{command}` failed (exit {rc}): {said}", _fix_for(said, args, root))
    return subprocess.CompletedProcess([exe, *args], rc, stdout, stderr)


# -- course and nodes ------------------------------------------------------------------------------

def _loaded(course: Optional[Path]) -> LoadedCourse:
    loaded = load_course(course)
    if not (loaded.root / "Vagrantfile").is_file():
        raise UsageError(f"no Vagrantfile in {loaded.root}",
                         "run from the course checkout (it holds course.yaml and the Vagrantfile) or pass --course")
    return loaded


def read_token(loaded: LoadedCourse) -> str:
    master = loaded.model.control_plane.name
    p = run_vagrant(["ssh", master, "--no-tty", "-c", f"cat {JUPYTER_TOKEN_PATH}"], loaded.root)
    lines = [line.strip() for line in p.stdout.replace("\r", "").splitlines() if line.strip()]
    token = lines[-1] if lines else ""
    if not _TOKEN.match(token):
        what = "is empty" if not token else "does not hold a token"
        raise InfrastructureError(f"{JUPYTER_TOKEN_PATH} on {master} {what}",
                                  f"re-run the provisioning: `vagrant provision {master}` in {loaded.root}")
    return token


def node_snapshots(loaded: LoadedCourse, node: str) -> Optional[set[str]]:
    """The kubelab lab ids with a snapshot on node; None when the node's VM is not created."""
    out = run_vagrant(["snapshot", "list", node], loaded.root).stdout
    if re.search(r"\bnot created\b", out, re.I):
        return None
    return {m.group(1) for line in out.splitlines() if (m := _SNAPSHOT.match(line.strip()))}


def all_snapshots(loaded: LoadedCourse) -> dict[str, Optional[set[str]]]:
    return {n.name: node_snapshots(loaded, n.name) for n in loaded.model.nodes}


def _require_created(loaded: LoadedCourse, found: dict[str, Optional[set[str]]]) -> None:
    missing = [name for name, snaps in found.items() if snaps is None]
    if missing:
        raise InfrastructureError(f"node(s) {', '.join(missing)} not created yet, so they have no snapshots",
                                  f"create the nodes first: `vagrant up` in {loaded.root}")


# -- commands --------------------------------------------------------------------------------------

VAGRANT_INTERRUPT_FIX = "run `vagrant status` to see the nodes' state, then run the command again"


CourseOpt = typer.Option(None, "--course", help="The folder holding course.yaml and the Vagrantfile (default: "
                                                 "found upward from here, or KUBELAB_COURSE).")
LabArg = typer.Argument(..., help="The lab id from course.yaml, e.g. lab01.")


@user_errors(on_interrupt=VAGRANT_INTERRUPT_FIX)
def url_command(course: Optional[Path] = CourseOpt) -> None:
    """Print the JupyterLab URL (with its login token) of the control-plane node."""
    print(jupyter_url(read_token(_loaded(course))))


snapshot_app = typer.Typer(
    help="Per-lab snapshots of all the course's nodes (`vagrant snapshot`), to retry or skip ahead in a lab.",
    no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)


@snapshot_app.command("save")
@user_errors(on_interrupt=VAGRANT_INTERRUPT_FIX)
def snapshot_save(
    lab: str = LabArg,
    force: bool = typer.Option(False, "--force", help="Replace the lab's snapshots if they exist."),
    course: Optional[Path] = CourseOpt,
) -> None:
    """Snapshot every node as `kubelab-LAB` (e.g. after finishing the lab)."""
    loaded = _loaded(course)
    loaded.model.lab(lab)
    name = snapshot_name(lab)
    found = all_snapshots(loaded)
    _require_created(loaded, found)
    have = [node for node, labs in found.items() if lab in labs]
    if have and not force:
        raise UsageError(f"{lab} already has a snapshot ({name}) on {', '.join(have)}",
                         f"replace it: `kubelab snapshot save {lab} --force`")
    for node in loaded.model.nodes:
        run_vagrant(["snapshot", "save", *(["--force"] if force else []), node.name, name], loaded.root, echo=True)
    typer.echo(f"saved {name} on {', '.join(n.name for n in loaded.model.nodes)}")


@snapshot_app.command("restore")
@user_errors(on_interrupt=VAGRANT_INTERRUPT_FIX)
def snapshot_restore(lab: str = LabArg, course: Optional[Path] = CourseOpt) -> None:
    """Put every node back to its `kubelab-LAB` snapshot (provisioners are not re-run)."""
    loaded = _loaded(course)
    loaded.model.lab(lab)
    name = snapshot_name(lab)
    found = all_snapshots(loaded)
    _require_created(loaded, found)
    lacking = [node for node, labs in found.items() if lab not in labs]
    if lacking:
        raise UsageError(f"no snapshot {name} of {lab} on {', '.join(lacking)}",
                         f"save one first: `kubelab snapshot save {lab}`; `kubelab snapshot list` shows what exists")
    for node in loaded.model.nodes:
        run_vagrant(["snapshot", "restore", node.name, name, "--no-provision"], loaded.root, echo=True)
    typer.echo(f"restored {name} on {', '.join(n.name for n in loaded.model.nodes)}")


@snapshot_app.command("list")
@user_errors(on_interrupt=VAGRANT_INTERRUPT_FIX)
def snapshot_list(
    lab: Optional[str] = typer.Argument(None, help="Only this lab (default: all labs)."),
    course: Optional[Path] = CourseOpt,
) -> None:
    """Show which labs have snapshots on which node."""
    loaded = _loaded(course)
    if lab is not None:
        loaded.model.lab(lab)
    found = all_snapshots(loaded)
    known = [lb.id for lb in loaded.model.labs]
    stray = sorted(set().union(*(s for s in found.values() if s)) - set(known))  # labs no longer in course.yaml
    titles = {lb.id: lb.title for lb in loaded.model.labs}
    rows = [lab] if lab is not None else known + stray
    console = Console(highlight=False)
    table = Table(show_header=True, header_style="bold")
    table.add_column("lab")
    table.add_column("title")
    for node in found:
        table.add_column(node, justify="center")
    for lab_id in rows:
        cells = []
        for snaps in found.values():
            cells.append("not created" if snaps is None else ("yes" if lab_id in snaps else "-"))
        table.add_row(Text(lab_id), Text(titles.get(lab_id, "(not in course.yaml)")), *cells)
    console.print(table)
    names = ", ".join(snapshot_name(r) for r in rows) if len(rows) <= 3 else f"{SNAPSHOT_PREFIX}<lab>"
    console.print(Text(f"snapshot names: {names}; restore with `kubelab snapshot restore LAB`"))


if __name__ == "__main__":  # python -m kubelab.vagrant_cli snapshot list
    _app = typer.Typer(add_completion=False, no_args_is_help=True)
    _app.command("url")(url_command)
    _app.add_typer(snapshot_app, name="snapshot")
    sys.exit(_app())
