"""Every bad input seen in issue 11 ends in one `error:` line (or lint's one line per problem) and the
designed exit code: never a traceback, never a hang, never a silent "OK".

Proof: the real `kubelab` command, in process (tests/cli_inproc.py) for most cases and as the installed
console script for the ones whose harm is in the process itself (a FIFO that would block forever, /dev/zero
read without end); real files of each odd kind (a FIFO from os.mkfifo, a symlink to /dev/zero, a folder,
a looping symlink) on this machine. Evidence is recorded for real with this machine standing for every
node (the local target), as in test_evidence.py."""

from __future__ import annotations

import json
import os
import re
import shutil

import pytest
import yaml

from cli_inproc import clean, parser_refused, run
from helpers import REPO, environ, kubelab, make_course
from kubelab.course import load_course
from kubelab.engine.targets import LocalTarget
from kubelab.evidence import record_lab, save

GRADER = '''
from kubelab.engine import check, expect_equal

@check("Kernel is Linux", on="all", points=1, hint="h")
def test_linux(host):
    expect_equal(host.system_info.type, "linux")
'''
COURSE_TEXT = (REPO / "course.yaml").read_text()
DEEP_YAML = "a: " + "[" * 900 + "]" * 900 + "\n"
DEEP_JSON = "[" * 5000 + "]" * 5000


def course_dir(tmp_path, text: str | bytes):
    root = tmp_path / "c"
    root.mkdir(exist_ok=True)
    (root / "course.yaml").write_bytes(text if isinstance(text, bytes) else text.encode())
    return root


def lint(root):
    return run("lint", "--course", root)


# -- course.yaml ---------------------------------------------------------------------------------

@pytest.mark.parametrize("how, text, words", [
    ("latin-1", COURSE_TEXT.replace("Kubernetes", "Kübernetes", 1).encode("latin-1"), "not UTF-8"),
    ("utf-16", COURSE_TEXT.encode("utf-16"), "UTF-16"),
    ("deep", DEEP_YAML, "levels deep"),
    ("5000 digits", COURSE_TEXT.replace("cpus: 2", "cpus: " + "9" * 5000, 1), "thousands of digits"),
])
def test_course_yaml_that_crashed_lint_and_grade(tmp_path, how, text, words):
    """Was: UnicodeDecodeError / RecursionError / ValueError tracebacks out of `kubelab lint` and `grade`."""
    root = course_dir(tmp_path, text)
    for r in (lint(root), run("grade", "lab01", "--replay", tmp_path / "x.json", "--course", root)):
        assert clean(r), r
        assert words in r.output, r.output


def _line_of(text: str, key: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), 1) if line.startswith(key))


@pytest.mark.parametrize("how, text, where, words", [
    ("a second nodes block", COURSE_TEXT + "\nnodes:\n- {name: master, role: control-plane, ip: 192.168.56.10, "
     "cpus: 2, memory_mb: 4096}\n", "", "key 'nodes' is given twice: line {nodes} and line {last}"),
    ("cpus: true", COURSE_TEXT.replace("cpus: 2", "cpus: true", 1), "nodes[master].cpus", "valid integer"),
    ("IP as an int", re.sub(r"ip: 192\.168\.56\.(\d+)", "ip: 3232249866", COURSE_TEXT, count=1),
     "nodes[master].ip", "write it as text"),
    ("points: .inf", COURSE_TEXT.replace("points: 10", "points: .inf", 1), "labs[lab01].points", "finite"),
    ("points: true", COURSE_TEXT.replace("points: 10", "points: true", 1), "labs[lab01].points", "write a number"),
    ("subnet as an int", COURSE_TEXT.replace("private_subnet: 192.168.56.0/24", "private_subnet: 3232249856", 1),
     "network.private_subnet", "write it as text"),
])
def test_course_yaml_that_was_silently_accepted(tmp_path, how, text, where, words):
    """Was: `course OK` (a duplicate key kept only the last block; YAML true taken as 1; an int taken as an IP)."""
    assert text != COURSE_TEXT, "the case must change the file"
    root = course_dir(tmp_path, text)
    r = lint(root)
    assert clean(r), r
    words = words.format(nodes=_line_of(text, "nodes:"), last=len(text.splitlines()) - 1)
    assert words in r.stdout and where in r.stdout, r.stdout


def test_a_course_without_a_worker_is_refused(tmp_path):
    data = yaml.safe_load(COURSE_TEXT)
    data["nodes"] = [n for n in data["nodes"] if n["role"] != "worker"]
    r = lint(course_dir(tmp_path, yaml.safe_dump(data, sort_keys=False)))
    assert clean(r) and "no node has role worker" in r.stdout, r


def test_duplicate_keys_are_found_by_both_loaders():
    """The duplicate check lives in the (Python) constructor, so it holds with libyaml's parser and without."""
    from kubelab.inputfiles import StrictLoader, UniqueKeys

    assert StrictLoader.__mro__[2] is getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    for base in {getattr(yaml, "CSafeLoader", yaml.SafeLoader), yaml.SafeLoader}:
        loader = type("Loader", (UniqueKeys, base), {})
        with pytest.raises(yaml.constructor.ConstructorError, match="given twice: line 1 and line 3"):
            yaml.load("a: 1\nb: 2\na: 3\n", Loader=loader)  # noqa: S506
        assert yaml.load("a: 1\nb: {a: 2}\n", Loader=loader) == {"a": 1, "b": {"a": 2}}  # noqa: S506


def test_cached_course_is_parsed_again_when_the_file_changes(tmp_path):
    """load_course caches per content: the same text gives the same frozen model, an edit a new one."""
    root = course_dir(tmp_path, COURSE_TEXT)
    a, b = load_course(root), load_course(root)
    assert a.model is b.model
    (root / "course.yaml").write_text(COURSE_TEXT.replace("memory_mb: 2048", "memory_mb: 3072"))
    c = load_course(root)
    assert c.model is not a.model and any(n.memory_mb == 3072 for n in c.model.nodes)


# -- lint: notebooks and graders -----------------------------------------------------------------

@pytest.fixture
def repo_copy(tmp_path):
    dst = tmp_path / "repo"
    shutil.copytree(REPO, dst, ignore=shutil.ignore_patterns(".git", ".venv", "tests", "*.egg-info", "__pycache__",
                                                            "artifacts", "benchmarks", "vagrant"))
    return dst


@pytest.mark.parametrize("content, words", [
    ("[1, 2]", "JSON list, not an object"),
    ('{"cells": 5}', "cells"),
    ('{"cells": [{"source": 7}]}', "cells[0].source"),
    ("[" * 3000 + "]" * 3000, "levels deep"),
    ('{"cells": [], "n": ' + "7" * 5000 + "}", "refuses"),
])
def test_notebook_of_the_wrong_shape_is_a_lint_problem(repo_copy, content, words):
    """Was: KeyError/TypeError/RecursionError traceback out of `kubelab lint`."""
    nb = next((repo_copy / "labs" / "lab01").glob("*.ipynb"))
    nb.write_text(content)
    r = lint(repo_copy)
    assert clean(r), r
    assert words in r.stdout and str(nb) in r.stdout, r.stdout


@pytest.mark.parametrize("code, words", [
    ("import sys\nsys.exit(0)\n", "exits while being imported (sys.exit(0)"),
    ("raise SystemExit('bye')\n", "exits while being imported"),
    ("raise RuntimeError('boom')\n", "cannot be imported: RuntimeError: boom"),
])
def test_grader_that_exits_or_raises_at_import_is_a_lint_problem(repo_copy, code, words):
    """Was: `kubelab lint` exiting 0 with no output when a grader called sys.exit(0) at import."""
    grader = repo_copy / "graders" / "lab01_prepare_nodes.py"
    grader.write_text(code + grader.read_text())
    r = lint(repo_copy)
    assert clean(r), r
    assert words in r.stdout, r.stdout


# -- evidence files ------------------------------------------------------------------------------

@pytest.fixture
def course90(tmp_path):
    return load_course(make_course(tmp_path, GRADER))


@pytest.fixture
def evidence_text(course90, tmp_path):
    _, ev = record_lab(course90, "lab90", LocalTarget(course90))
    return save(ev, tmp_path / "good.json").read_text()


def replay(course, path):
    return run("grade", "lab90", "--replay", path, "--course", course.root)


@pytest.mark.parametrize("make, words", [
    (lambda p, good: p.write_text(DEEP_JSON), "levels deep"),
    (lambda p, good: p.write_text(good.replace('"version": 1', '"version": ' + "1" * 5000)), "refuses"),
    (lambda p, good: p.write_text(good.replace('"rc": 0', '"rc": ' + "9" * 5000, 1)), "refuses"),
    (lambda p, good: p.mkdir(), "is a folder"),
    (lambda p, good: os.symlink(p, p), "loops"),
    (lambda p, good: p.write_text("hello, this is not JSON"), "is not JSON"),
    (lambda p, good: p.write_text(good.replace('"format"', "NaN, \"format\"", 1)), "is corrupt"),
])
def test_odd_evidence_files_are_one_line(course90, evidence_text, tmp_path, make, words):
    """Was: RecursionError / ValueError tracebacks; a non-JSON file called "truncated"."""
    path = tmp_path / "ev.json"
    make(path, evidence_text)
    r = replay(course90, path)
    assert clean(r), r
    assert words in r.stderr, r.stderr


@pytest.mark.parametrize("key", ["\f", "\v", "\x1c", "\u2028", "a\nb"])
def test_a_line_break_of_any_kind_in_a_key_stays_one_line(course90, evidence_text, tmp_path, key):
    """Found by the fuzz suite: `"nodes": {"\\f": null}` made the error quote a form feed, which splits a line
    for str.splitlines() (and for a terminal's reader): every such character is shown escaped."""
    data = json.loads(evidence_text)
    data["nodes"] = {key: None}
    path = tmp_path / "ev.json"
    path.write_text(json.dumps(data))
    r = replay(course90, path)
    assert clean(r), r
    assert "malformed at nodes." in r.stderr and repr(key)[1:-1] in r.stderr, r.stderr


def test_fifo_and_dev_zero_are_refused_at_once(course90, tmp_path):
    """Was: `--replay` on a FIFO blocked forever; a symlink to /dev/zero was read without bound.
    The installed console script, with a timeout: a hang fails the test instead of hanging it."""
    fifo, zero = tmp_path / "ev.fifo", tmp_path / "zero.json"
    os.mkfifo(fifo)
    os.symlink("/dev/zero", zero)
    for path, kind in ((fifo, "FIFO"), (zero, "character device")):
        p = kubelab("grade", "lab90", "--replay", str(path), "--course", str(course90.root), timeout=60)
        assert p.returncode == 2 and kind in p.stderr and "Traceback" not in p.stderr, p.stderr
        assert len(p.stderr.strip().splitlines()) == 2


@pytest.mark.parametrize("content", [DEEP_JSON, '{"format": "kubelab-evidence", "version": ' + "1" * 5000 + "}"])
def test_autograde_scores_zero_with_a_line_instead_of_raising(course90, tmp_path, content):
    """Was: the same files raised out of grade() under NBGRADER_EXECUTION=autograde (nbgrader showed a traceback)."""
    from kubelab.notebook.grading import grade

    folder = tmp_path / "submission"
    folder.mkdir()
    (folder / "lab90.evidence.json").write_text(content)
    with environ({"NBGRADER_EXECUTION": "autograde"}):
        assert grade("lab90", course=course90.root, evidence_dir=folder) == 0.0


# -- doctor facts --------------------------------------------------------------------------------

FACTS = {"os": "linux", "arch": "amd64", "machine": "x86_64", "vagrant_version": "2.4.9",
         "providers": {"virtualbox": "7.1.4r165100"}, "free_memory_mb": 16000, "total_memory_mb": 32000, "cpus": 8,
         "networks": [{"interface": "eth0", "cidr": "192.168.1.23/24"}], "vbox_networks_conf": None}


def doctor(tmp_path, text: str):
    path = tmp_path / "facts.json"
    path.write_text(text)
    return run("doctor", "--course", REPO, "--facts", path, env={"COLUMNS": "400"})


def test_healthy_facts_are_ready(tmp_path):
    """The passing case of the doctor cases below: the same facts, unchanged, are ready (exit 0)."""
    assert doctor(tmp_path, json.dumps(FACTS)).code == 0


@pytest.mark.parametrize("change, code, words", [
    ({"vagrant_version": "banana"}, 1, "cannot tell Vagrant's version from 'banana'"),
    ({"free_memory_mb": -4096}, 2, "free_memory_mb"),
    ({"cpus": -1}, 2, "cpus"),
    ({"cpus": True}, 2, "cpus"),
])
def test_doctor_is_not_ready_on_nonsense_facts(tmp_path, change, code, words):
    """Was: "ready for `vagrant up`" (exit 0) with Vagrant version "banana" or negative memory."""
    r = doctor(tmp_path, json.dumps({**FACTS, **change}))
    assert r.code == code and r.crash is None, r
    assert words in r.output and "ready for `vagrant up`" not in r.stdout


@pytest.mark.parametrize("text, words", [
    (DEEP_JSON, "levels deep"),
    (json.dumps(FACTS).replace("16000", "1" * 5000), "refuses"),
])
def test_doctor_facts_that_crashed(tmp_path, text, words):
    r = doctor(tmp_path, text)
    assert clean(r) and words in r.stderr, r


# -- CLI arguments -------------------------------------------------------------------------------

@pytest.mark.parametrize("value", ["inf", "nan", "1e400", "1e9"])
def test_class_timeout_must_be_a_finite_wait(tmp_path, value):
    """Was: `--timeout inf` -> OverflowError traceback deep in the worker pool."""
    (tmp_path / "subs").mkdir()
    r = run("class", "grade", "--lab", "lab01", "--submissions", tmp_path / "subs", "--timeout", value,
            "--course", REPO, "--out", tmp_path / "out")
    assert (clean(r) and "--timeout" in r.stderr) or parser_refused(r), r
