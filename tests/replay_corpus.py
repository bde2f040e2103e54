"""Every evidence file the suite can make without twins, recorded for real (record_lab) and saved.

Used by test_replay_drivers.py (both drivers must give identical results on each) and by
benchmarks/replay.py (the files a class hands in). Each entry says what kind of evidence it is:

- "engine": hand-written graders covering every status (pass, fail by expectation and by plain assert,
  blocked, skipped and skipped-by-need, error by infrastructure and by grader bug, a polling check that
  converges on virtual time, a grader's own `eventually`), recorded live on this machine (the local target);
  one copy with an observation removed (the "not in evidence" error);
- "lab01".."lab03": the course's graders recorded live with this machine standing for every node (a real
  Debian system, so mostly the failing state of a fresh machine);
- "lab04": the simulated kubeadm v1.36 control plane of lab04_evidence.py (modelled on shared/realdata),
  healthy and with each realistic mistake;
- "lab05": the same control plane graded by Lab 5 (no worker joined yet: failing and blocked), with
  flannel as the course's CNI and with another CNI (the flannel checks skipped).

Recording runs on virtual time (ReplayClock), so a check that polls does not sleep for real."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import yaml

from helpers import REPO, make_course
from kubelab.course import LoadedCourse, load_course
from kubelab.engine.targets import LocalTarget, Target
from kubelab.evidence import load, record_lab, save
from kubelab.evidence.replay import ReplayClock

ENGINE_GRADER = '''
import pytest
from kubelab.engine import check, eventually, expect_equal
from kubelab.errors import InfrastructureError

@check("Root exists", on="all", points=2, hint="h-root")
def test_root(host):
    expect_equal(host.file("/").is_directory, True, what="/ is a directory")

@check("Answer is 42", on="worker", points=3, hint="Set the answer to 42.")
def test_answer(host):
    expect_equal(host.run("echo 41").stdout.strip(), "42", what="the answer")

@check("Depends on the answer", on="worker", points=1, needs=["answer"], hint="h-dep")
def test_dependent(host):
    pass

@check("Depends on root", on="all", points=1, needs=["root"], hint="h-dep-root")
def test_dependent_ok(host, node):
    expect_equal(node.name in host.run("echo master worker").stdout, True)

@check("Plain assert", on="master", points=1, hint="h-assert")
def test_plain_assert(host):
    assert host.run("true").rc == 1, "rc was 0"

@check("Cannot observe", on="master", points=1, hint="h-infra")
def test_infra(host):
    raise InfrastructureError("the node went away", "bring it back")

@check("Grader bug", on="master", points=1, hint="h-bug")
def test_bug(host):
    1 / 0

@check("Not applicable", on="cluster", points=5, hint="h-skip")
def test_skip(kube):
    pytest.skip("needs >= 1.99")

@check("Builds on the skipped one", on="all", points=1, needs=["skip"], hint="h")
def test_after_skip(host):
    raise AssertionError("must not run")

@check("Polls until the counter says 3", on="master", points=2, wait_s=10, interval_s=2, hint="h-poll")
def test_polls(host):
    expect_equal(host.run("cat {counter}").stdout.strip(), "3", what="the counter")

@check("Waits with eventually", on="worker", points=1, hint="h-ev")
def test_eventually(host, course):
    seen = eventually(lambda: host.run("cat {counter}").stdout.strip(), lambda v: v == "3", timeout_s=6)
    expect_equal(seen, "3", what=f"the counter of {{course.course.id}}")

@check("Compares nodes", on="cluster", points=1, needs=["root"], hint="h-hosts")
def test_hosts(hosts):
    expect_equal(sorted(hosts), ["master", "worker"])
'''


@dataclass(frozen=True)
class Case:
    name: str
    course: LoadedCourse
    lab: str
    path: Path
    edited: bool = False   # its replay need not match the live result stored in it (changed after recording)


def record(course: LoadedCourse, lab: str, target: Target, path: Path) -> Path:
    """record_lab on virtual time: what `kubelab grade --record` writes, without sleeping between polls."""
    path.parent.mkdir(parents=True, exist_ok=True)
    _, evidence = record_lab(course, lab, target, clock=ReplayClock())
    return save(evidence, path)


def _course_copy(tmp: Path, mutate) -> LoadedCourse:
    """The repository's course with course.yaml changed, its graders shared."""
    root = tmp / "course-copy"
    root.mkdir(parents=True)
    data = yaml.safe_load((REPO / "course.yaml").read_text())
    mutate(data)
    (root / "course.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    shutil.copytree(REPO / "graders", root / "graders")
    return load_course(root)


def engine_cases(tmp: Path) -> list[Case]:
    tmp.mkdir(parents=True, exist_ok=True)
    counter = tmp / "counter"
    counter.write_text("1\n")
    course = load_course(make_course(tmp / "engine", ENGINE_GRADER.format(counter=counter)))
    out = [Case("engine-as-recorded", course, "lab90", record(course, "lab90", LocalTarget(course),
                                                              tmp / "engine.json"))]
    # the counter as a slow convergence would have shown it: 1, 2, 3 (the live run saw only 1)
    evidence = load(out[0].path)
    cmd = f"cat {counter}"
    for node in ("master", "worker"):
        first = next(o for o in evidence.nodes[node] if o.cmd == cmd)
        evidence.nodes[node] = [o for o in evidence.nodes[node] if o.cmd != cmd] + [
            first.model_copy(update={"stdout": f"{i}\n"}) for i in (1, 2, 3)]
    out.append(Case("engine-converging", course, "lab90", save(evidence, tmp / "engine-converging.json"), True))
    evidence.nodes["worker"] = [o for o in evidence.nodes["worker"] if o.cmd != "echo 41"]
    out.append(Case("engine-not-in-evidence", course, "lab90", save(evidence, tmp / "engine-missing.json"), True))
    return out


def local_lab_cases(tmp: Path) -> list[Case]:
    course = load_course(REPO)
    return [Case(f"{lab}-this-machine", course, lab, record(course, lab, LocalTarget(course), tmp / f"{lab}.json"))
            for lab in ("lab01", "lab02", "lab03")]


def sim_cases(tmp: Path, mistakes=None) -> list[Case]:
    from lab04_evidence import MISTAKES, Sim136, SimTarget

    course = load_course(REPO)
    out = []
    for mistake in [None, *(mistakes if mistakes is not None else sorted(MISTAKES))]:
        name = f"lab04-sim136-{mistake or 'healthy'}"
        out.append(Case(name, course, "lab04",
                        record(course, "lab04", SimTarget(course, Sim136(course.model, mistake)), tmp / f"{name}.json")))
    other_cni = _course_copy(tmp / "bridge", lambda d: d["versions"].update(cni={"name": "bridge", "version": "v1"}))
    for label, c in (("flannel", course), ("bridge", other_cni)):
        name = f"lab05-sim136-{label}"
        # the simulation answers what Lab 4 asks; Lab 5's other questions failed live ("no answer") and are not
        # in the evidence, so those checks replay as `error: not in evidence`: the file differs from its live run
        out.append(Case(name, c, "lab05", record(c, "lab05", SimTarget(c, Sim136(c.model)), tmp / f"{name}.json"),
                        edited=True))
    return out


def build(tmp: Path) -> list[Case]:
    return engine_cases(tmp / "engine") + local_lab_cases(tmp / "local") + sim_cases(tmp / "sim")
