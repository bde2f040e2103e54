"""`kubelab url` and `kubelab snapshot save|restore|list LAB` drive Vagrant with exactly the right commands.

Proof: the commands run as a user runs them, against a fake `vagrant`. VMs cannot run on this machine (no
hypervisor, no Vagrant), so a real executable shell script named `vagrant`, first on PATH, stands in for it: it
records every call (working directory + argv) and answers like Vagrant does (snapshot names one per line,
"VM not created", a multi-line error on stderr with exit 1), keeping snapshots as files so save, list and
restore agree. Each case asserts the exact vagrant argv on every node of the course, and each check has a
passing and a failing run.

When the lead has mounted `url` and `snapshot` on the main CLI the installed `kubelab` runs as a subprocess;
until then the same functions run through typer's CliRunner on an app wired exactly as the lead will.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pytest
import typer
import yaml
from typer.testing import CliRunner

from helpers import REPO, kubelab
from kubelab.vagrant_cli import JUPYTER_HOST_PORT, JUPYTER_TOKEN_PATH, snapshot_app, url_command

FAKE_VAGRANT = r"""#!/bin/sh
# Stands in for Vagrant: VMs cannot run on the test machine. Records each call, answers like Vagrant.
state="$FAKE_VAGRANT_STATE"
{ printf '%s' "$PWD"; for a in "$@"; do printf '\t%s' "$a"; done; printf '\n'; } >> "$state/calls"
if [ -n "$FAKE_VAGRANT_FAIL" ]; then
  case "$*" in *"$FAKE_VAGRANT_FAIL"*)
    printf 'Bringing machine up...\n' ; printf 'An internal error occurred.\n\nThe provider for this Vagrant-managed machine is reporting that it\nis not yet ready for SSH (fake failure).\n' >&2
    exit 1 ;;
  esac
fi
case "$1 $2" in
  "snapshot save")
    shift 2; force=""
    if [ "$1" = "--force" ]; then force=1; shift; fi
    node="$1"; name="$2"
    if [ -e "$state/snap/$node/$name" ] && [ -z "$force" ]; then
      printf 'A snapshot with the name "%s" already exists.\n' "$name" >&2; exit 1
    fi
    mkdir -p "$state/snap/$node" && touch "$state/snap/$node/$name"
    echo "==> $node: Snapshotting the machine as '$name'..."
    echo "==> $node: Snapshot saved! You can restore the snapshot at any time by"
    ;;
  "snapshot restore")
    node="$3"; name="$4"
    if [ ! -e "$state/snap/$node/$name" ]; then echo "The snapshot name \`$name\` was not found" >&2; exit 1; fi
    echo "==> $node: Restoring the snapshot '$name'..."
    ;;
  "snapshot list")
    node="$3"
    if [ -e "$state/not-created/$node" ]; then echo "==> $node: VM not created. Moving on..."; exit 0; fi
    if [ -d "$state/snap/$node" ] && [ -n "$(ls "$state/snap/$node")" ]; then
      ls -1 "$state/snap/$node"; echo "my-own-snapshot"
    else
      echo "==> $node: No snapshots have been taken yet!"
    fi
    ;;
  "ssh "*)
    if [ -e "$state/token" ]; then cat "$state/token"
    else echo "cat: /etc/kubelab/jupyter-token: No such file or directory" >&2; exit 1; fi
    ;;
  *) echo "fake vagrant: unexpected command: $*" >&2; exit 64 ;;
esac
"""


@dataclass
class Run:
    returncode: int
    stdout: str
    stderr: str


def _mounted_on_main_cli() -> bool:
    from kubelab.cli import LAZY_COMMANDS, app  # mounted lazily (kubelab.lazycli) or directly

    return {'url', 'snapshot'} <= set(LAZY_COMMANDS) or any(c.name == "url" for c in app.registered_commands) and any(
        g.name == "snapshot" for g in app.registered_groups)


@dataclass
class Lab:
    root: Path  # the course: course.yaml + Vagrantfile
    state: Path  # the fake vagrant's memory
    bin: Path  # holds the fake `vagrant`

    def env(self, **extra: str) -> dict:
        return {"PATH": f"{self.bin}{os.pathsep}/usr/bin{os.pathsep}/bin", "FAKE_VAGRANT_STATE": str(self.state),
                "COLUMNS": "200", **extra}

    def run(self, *args: str, env: dict | None = None) -> Run:
        env = env or self.env()
        if _mounted_on_main_cli():
            p = kubelab(*args, "--course", str(self.root), env=env)
            return Run(p.returncode, p.stdout, p.stderr)
        app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
        app.command("url")(url_command)
        app.add_typer(snapshot_app, name="snapshot")
        r = CliRunner().invoke(app, [*args, "--course", str(self.root)], env=env)
        if r.exception is not None and not isinstance(r.exception, SystemExit):
            raise r.exception
        return Run(r.exit_code, r.stdout, r.stderr)

    def calls(self) -> list[list[str]]:
        """Every vagrant call since the last look, as argv; each must have run in the course root."""
        path = self.state / "calls"
        if not path.exists():
            return []
        lines = path.read_text().splitlines()
        path.unlink()
        out = []
        for line in lines:
            cwd, *argv = line.split("\t")
            assert Path(cwd).resolve() == self.root.resolve(), f"vagrant ran in {cwd}, not the course root"
            out.append(argv)
        return out


@pytest.fixture
def lab(tmp_path) -> Lab:
    data = yaml.safe_load((REPO / "course.yaml").read_text())
    data["labs"] = [{"id": f"lab0{i}", "title": f"Lab {i}", "notebook": f"lab0{i}.ipynb",
                     "grader": f"lab0{i}_x.py", "depends_on": [], "points": 10} for i in (1, 2, 3)]
    root = tmp_path / "course"
    root.mkdir()
    (root / "course.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    (root / "Vagrantfile").write_text("# the course Vagrantfile (not read by the fake vagrant)\n")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "vagrant"
    fake.write_text(FAKE_VAGRANT)
    fake.chmod(0o755)
    state = tmp_path / "state"
    state.mkdir()
    return Lab(root, state, bin_dir)


NODES = ["master", "worker"]  # course.yaml's nodes, in order


def test_snapshot_save_runs_on_every_node(lab):
    r = lab.run("snapshot", "save", "lab02")
    assert r.returncode == 0, r.stderr
    assert lab.calls() == [["snapshot", "list", n] for n in NODES] + \
        [["snapshot", "save", n, "kubelab-lab02"] for n in NODES]
    assert "saved kubelab-lab02 on master, worker" in r.stdout
    assert "==> worker: Snapshotting the machine as 'kubelab-lab02'" in r.stdout  # Vagrant's progress is shown

    # failing: saving again would silently mix two states -> refused before any save, exit 2
    r = lab.run("snapshot", "save", "lab02")
    assert r.returncode == 2
    assert r.stderr.splitlines() == ["error: lab02 already has a snapshot (kubelab-lab02) on master, worker",
                                     "fix: replace it: `kubelab snapshot save lab02 --force`"]
    assert lab.calls() == [["snapshot", "list", n] for n in NODES]

    # passing again with --force: Vagrant replaces it
    r = lab.run("snapshot", "save", "lab02", "--force")
    assert r.returncode == 0, r.stderr
    assert lab.calls()[2:] == [["snapshot", "save", "--force", n, "kubelab-lab02"] for n in NODES]


def test_snapshot_restore_runs_on_every_node_without_provisioning(lab):
    # failing: nothing saved yet -> exit 2 naming the nodes, and no restore is attempted
    r = lab.run("snapshot", "restore", "lab03")
    assert r.returncode == 2
    assert r.stderr.splitlines()[0] == "error: no snapshot kubelab-lab03 of lab03 on master, worker"
    assert lab.calls() == [["snapshot", "list", n] for n in NODES]

    lab.run("snapshot", "save", "lab03")
    lab.calls()
    r = lab.run("snapshot", "restore", "lab03")
    assert r.returncode == 0, r.stderr
    assert lab.calls() == [["snapshot", "list", n] for n in NODES] + \
        [["snapshot", "restore", n, "kubelab-lab03", "--no-provision"] for n in NODES]
    assert "restored kubelab-lab03 on master, worker" in r.stdout


def test_snapshot_list_shows_labs_by_node(lab):
    r = lab.run("snapshot", "list")
    assert r.returncode == 0, r.stderr
    assert lab.calls() == [["snapshot", "list", n] for n in NODES]
    rows = {line.split("│")[1].strip(): [c.strip() for c in line.split("│")[3:5]]
            for line in r.stdout.splitlines() if line.startswith("│")}
    assert rows == {"lab01": ["-", "-"], "lab02": ["-", "-"], "lab03": ["-", "-"]}

    lab.run("snapshot", "save", "lab01")
    (lab.state / "snap" / "worker" / "kubelab-lab01").unlink()  # lost on one node only
    (lab.state / "snap" / "worker" / "kubelab-lab07").touch()  # a lab no longer in course.yaml
    lab.calls()
    r = lab.run("snapshot", "list")
    rows = {line.split("│")[1].strip(): [c.strip() for c in line.split("│")[2:5]]
            for line in r.stdout.splitlines() if line.startswith("│")}
    assert rows["lab01"] == ["Lab 1", "yes", "-"]
    assert rows["lab07"] == ["(not in course.yaml)", "-", "yes"]
    assert "my-own-snapshot" not in r.stdout  # the learner's own snapshots are not kubelab's

    (lab.state / "not-created").mkdir()
    (lab.state / "not-created" / "worker").touch()
    r = lab.run("snapshot", "list", "lab01")
    assert r.returncode == 0
    assert lab.calls()[-1] == ["snapshot", "list", "worker"]
    row = next(line for line in r.stdout.splitlines() if line.startswith("│ lab01"))
    assert "not created" in row


def test_url_prints_the_jupyterlab_url_with_token(lab):
    # failing: the master is not provisioned yet (no token file) -> exit 3, one line naming the command
    r = lab.run("url")
    assert r.returncode == 3
    assert r.stdout == ""
    assert r.stderr.splitlines() == [
        f"error: `vagrant ssh master --no-tty -c 'cat {JUPYTER_TOKEN_PATH}'` failed (exit 1): "
        f"cat: {JUPYTER_TOKEN_PATH}: No such file or directory",
        f"fix: JupyterLab is not provisioned on master yet: `vagrant provision master` in {lab.root.resolve()}"]
    assert lab.calls() == [["ssh", "master", "--no-tty", "-c", f"cat {JUPYTER_TOKEN_PATH}"]]

    (lab.state / "token").write_text("3f9c2b7e1d0a4c5b8e6f\r\n")  # a tty would add the \r
    r = lab.run("url")
    assert r.returncode == 0, r.stderr
    assert r.stdout == f"http://127.0.0.1:{JUPYTER_HOST_PORT}/lab?token=3f9c2b7e1d0a4c5b8e6f\n"
    assert JUPYTER_HOST_PORT == 8888
    assert lab.calls() == [["ssh", "master", "--no-tty", "-c", "cat /etc/kubelab/jupyter-token"]]

    (lab.state / "token").write_text("\n")
    r = lab.run("url")
    assert r.returncode == 3 and r.stderr.startswith(f"error: {JUPYTER_TOKEN_PATH} on master is empty")


def test_unknown_lab_is_refused_before_vagrant_runs(lab):
    for args in (["snapshot", "save", "lab99"], ["snapshot", "restore", "lab99"], ["snapshot", "list", "lab99"]):
        r = lab.run(*args)
        assert r.returncode == 2, args
        assert r.stderr.splitlines() == ["error: unknown lab 'lab99'",
                                         "fix: use one of the labs in course.yaml: lab01, lab02, lab03"]
    assert lab.calls() == []
    assert lab.run("snapshot", "save", "lab01").returncode == 0  # a known lab goes through


def test_failing_vagrant_is_one_line_exit_3(lab):
    r = lab.run("snapshot", "save", "lab01", env=lab.env(FAKE_VAGRANT_FAIL="snapshot save worker"))
    assert r.returncode == 3
    lines = r.stderr.splitlines()
    assert lines == [
        "error: `vagrant snapshot save worker kubelab-lab01` failed (exit 1): The provider for this "
        "Vagrant-managed machine is reporting that it is not yet ready for SSH (fake failure).",
        f"fix: run `vagrant status` in {lab.root.resolve()} to see the nodes' state, fix what it shows, then retry"]
    assert "Traceback" not in r.stdout + r.stderr
    assert lab.calls()[-1] == ["snapshot", "save", "worker", "kubelab-lab01"]

    # the same command with a working vagrant
    r = lab.run("snapshot", "save", "lab02")
    assert r.returncode == 0, r.stderr


def test_missing_vagrant_or_vagrantfile(lab, tmp_path):
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    r = lab.run("snapshot", "list", env={**lab.env(), "PATH": str(empty)})
    assert r.returncode == 3
    assert r.stderr.splitlines()[0] == ("error: `vagrant snapshot list master` cannot run: vagrant is not "
                                        "installed or not on PATH")

    (lab.root / "Vagrantfile").unlink()
    r = lab.run("snapshot", "list")
    assert r.returncode == 2
    assert r.stderr.splitlines()[0] == f"error: no Vagrantfile in {lab.root.resolve()}"
    assert lab.calls() == []


def test_not_created_nodes_cannot_be_snapshotted(lab):
    (lab.state / "not-created").mkdir()
    (lab.state / "not-created" / "worker").touch()
    r = lab.run("snapshot", "save", "lab01")
    assert r.returncode == 3
    assert r.stderr.splitlines()[0] == "error: node(s) worker not created yet, so they have no snapshots"
    assert lab.calls() == [["snapshot", "list", n] for n in NODES]  # nothing saved on master alone
