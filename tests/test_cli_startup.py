"""Cheap start-up: `kubelab --help` and a replay load only what they use; every lazily mounted sub-command
still runs with its own help.

Proof: the real `kubelab` command in fresh processes, its imports read from Python's own `-X importtime`
report (which modules were loaded, not how long they took: speed is benchmarks/replay.py's)."""

from __future__ import annotations

import inspect
import subprocess
import sys
from pathlib import Path

import pytest

import replay_corpus
from helpers import REPO, kubelab
from kubelab.cli import LAZY_COMMANDS
from kubelab.course import load_course

HEAVY = ("paramiko", "kubernetes", "matplotlib", "nbformat", "nbclient", "pytest", "testinfra", "IPython",
         "kubelab.twin", "kubelab.cluster", "kubelab.classroom", "kubelab.doctor", "kubelab.vagrant_cli")


def imported(*args: str) -> set[str]:
    """Top-level names of the modules `kubelab ARGS` imported (plus kubelab's own sub-packages)."""
    p = subprocess.run([sys.executable, "-X", "importtime", "-m", "kubelab.cli", *args], capture_output=True,
                       text=True, cwd=REPO, timeout=120)
    names = set()
    for line in p.stderr.splitlines():
        if line.startswith("import time:") and "|" in line:
            name = line.rsplit("|", 1)[1].strip()
            names.add(name.split(".")[0])
            names.add(".".join(name.split(".")[:2]))
    return names


def test_help_loads_no_sub_command_and_no_heavy_library():
    loaded = imported("--help")
    assert "typer" in loaded  # the report was read
    assert not loaded & set(HEAVY), sorted(loaded & set(HEAVY))


def test_replay_of_a_lab_without_a_cluster_loads_neither_pytest_nor_ssh_nor_kubernetes(tmp_path):
    """evidence: Lab 1 recorded live with this machine as every node (replay_corpus)."""
    course = load_course(REPO)
    from kubelab.engine.targets import LocalTarget

    path = replay_corpus.record(course, "lab01", LocalTarget(course), tmp_path / "lab01.json")
    loaded = imported("grade", "lab01", "--replay", str(path))
    assert "kubelab.engine" in loaded
    assert not loaded & {"pytest", "paramiko", "kubernetes", "testinfra.backend.ssh", "kubelab.twin"}, loaded


@pytest.mark.parametrize("name", sorted(LAZY_COMMANDS))
def test_each_lazy_sub_command_runs_and_shows_its_help(name):
    p = kubelab(name, "--help", env={"COLUMNS": "300"})
    assert p.returncode == 0 and f"Usage: kubelab {name}" in p.stdout, p.stdout + p.stderr
    assert " ".join(LAZY_COMMANDS[name].help.split()) in " ".join(p.stdout.replace("│", " ").split())


def test_the_main_help_lists_every_sub_command_with_its_own_words():
    import importlib

    for name, lazy in LAZY_COMMANDS.items():
        module, attr = lazy.target.split(":")
        obj = getattr(importlib.import_module(module), attr)
        if inspect.isfunction(obj):  # a command's help is its docstring: the lazy line must say the same
            assert " ".join(inspect.getdoc(obj).split()) == " ".join(lazy.help.split()), name
    p = kubelab("--help", env={"COLUMNS": "300"})
    assert all(f" {name} " in p.stdout for name in LAZY_COMMANDS), p.stdout


def test_unknown_sub_command_is_usage_error():
    p = kubelab("clas")
    assert p.returncode == 2 and "No such command 'clas'" in p.stderr and "Traceback" not in p.stderr


def test_twin_and_cluster_command_modules_do_not_import_each_other():
    for first, other in (("kubelab.cluster.cli", "kubelab.twin.cli"), ("kubelab.twin.cli", "kubelab.cluster.cli")):
        code = f"import sys, {first}; print({other!r} in sys.modules)"
        p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=Path(REPO), timeout=60)
        assert p.stdout.strip() == "False", (first, p.stdout + p.stderr)
