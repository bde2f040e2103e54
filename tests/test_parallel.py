"""The suite on two workers (tests/parallel.py): how the modules are cut into units of work, and the second twin
set each worker boots (KUBELAB_TWIN_INSTANCE, kubelab/twin/paths.py) in a network namespace of its own.

Proof: real collection in a subprocess (the units); the real CLI (a bad instance name); and, on the twins, a real
second twin set of the course booted beside the session's, each in its own network namespace."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from helpers import clean_environ, kubelab
from kubelab.course import load_course
from kubelab.twin import paths
from parallel import DEFAULT_SECONDS, seconds_from_junit, split_cluster_modules

ROOT = Path(__file__).resolve().parent.parent
COURSE = load_course(ROOT)
CLUSTER = ["tests/test_lab10.py", "tests/test_lab05.py"]          # on the shared cluster (lab05 leaves it dirty)
EVIDENCE = ["tests/test_class_grading.py", "tests/test_replay_drivers.py"]  # read Lab 1's recorded evidence
TWINS = ["tests/test_twins.py"]
PLAIN = ["tests/test_course.py", "tests/test_yamldata.py"]
FILES = ["tests/test_course.py", "tests/test_lab10.py", "tests/test_twins.py", "tests/test_class_grading.py",
         "tests/test_yamldata.py", "tests/test_lab05.py", "tests/test_replay_drivers.py"]

# prints each collected test's unit of work, in the order a worker hands them to the controller
_SHOW_UNITS = textwrap.dedent("""
    import json, os, sys, pytest
    sys.path.insert(0, "tests")
    from parallel import order_into_units
    class Show:
        @pytest.hookimpl(trylast=True)
        def pytest_collection_modifyitems(self, items):
            for nodeid, unit in order_into_units(items, int(os.environ["WORKERS"])).items():
                print("UNIT " + json.dumps([nodeid, unit]))
    sys.exit(pytest.main(["--collect-only", "-q", "-p", "no:cacheprovider", *sys.argv[1:]], plugins=[Show()]))
""")


def _units(*args: str, workers: int = 1) -> list[tuple[str, str]]:
    out = subprocess.run([sys.executable, "-c", _SHOW_UNITS, *args, *FILES], cwd=ROOT, capture_output=True,
                         text=True, timeout=300, env={**clean_environ(), "WORKERS": str(workers)})
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    return [tuple(json.loads(ln[5:])) for ln in out.stdout.splitlines() if ln.startswith("UNIT ")]


def _modules_in_order(nodeids) -> list[str]:
    order: list[str] = []
    for nodeid in nodeids:
        if (m := nodeid.split("::")[0]) not in order[-1:]:
            order.append(m)
    return order


def test_each_module_is_one_unit_kept_whole_the_shared_cluster_first():
    """Real collection of the suite's own files (collected, not run)."""
    units = _units()
    order = _modules_in_order(n for n, _ in units)
    assert sorted(order) == sorted(FILES) and len(order) == len(FILES), f"a module was cut apart: {order}"
    unit_of = {nodeid.split("::")[0]: unit for nodeid, unit in units}
    assert {unit_of[m] for m in CLUSTER} == {"shared-cluster"}
    assert {unit_of[m] for m in EVIDENCE} == {"lab01-evidence"}
    assert [unit_of[m] for m in TWINS + PLAIN] == TWINS + PLAIN  # a unit of its own, named after its module
    # longest first: the shared cluster (dirty last, as in a serial run), Lab 1's evidence readers, other twins
    # modules, the rest
    assert order == ["tests/test_lab10.py", "tests/test_lab05.py", "tests/test_class_grading.py",
                     "tests/test_replay_drivers.py", "tests/test_twins.py", "tests/test_course.py",
                     "tests/test_yamldata.py"]


def test_on_two_workers_the_shared_cluster_modules_are_two_units_each_whole_and_first():
    units = _units(workers=2)
    unit_of = {nodeid.split("::")[0]: unit for nodeid, unit in units}
    assert sorted(unit_of[m] for m in CLUSTER) == ["shared-cluster-1", "shared-cluster-2"]
    order = _modules_in_order(n for n, _ in units)
    assert set(order[:2]) == set(CLUSTER) and len(order) == len(FILES)


def test_the_shared_cluster_modules_split_by_measured_time_keeping_their_order():
    seconds = {"a": 100, "b": 400, "c": 300, "d": 200, "e": 50}
    # longest first into the least loaded part: b | c, d | a | e
    assert split_cluster_modules(list("abcde"), 2, seconds) == [["a", "b", "e"], ["c", "d"]]
    assert split_cluster_modules(list("abcde"), 1, seconds) == [list("abcde")]
    assert split_cluster_modules(["a"], 2, seconds) == [["a"]]  # never an empty unit
    # a module not measured yet counts as DEFAULT_SECONDS
    assert split_cluster_modules(["new", "b"], 2, {"b": DEFAULT_SECONDS + 1}) == [["b"], ["new"]]
    # a part keeps the written order: the module that leaves the cluster dirty (written last) stays last
    assert split_cluster_modules(["x", "y", "dirty"], 2, {"x": 10, "y": 10, "dirty": 500}) == [["dirty"], ["x", "y"]]
    assert split_cluster_modules(["big", "x", "dirty"], 2, {"big": 500, "x": 10, "dirty": 10}) == \
        [["big"], ["x", "dirty"]]


def test_module_seconds_are_summed_from_a_junit_report(tmp_path):
    report = tmp_path / "r.xml"
    report.write_text('<testsuites><testsuite name="pytest">'
                      '<testcase classname="tests.test_lab09" name="a" time="100.5"/>'
                      '<testcase classname="tests.test_lab09" name="b" time="20.25"/>'
                      '<testcase classname="tests.test_course" name="c" time="1"/>'
                      '</testsuite></testsuites>')
    assert seconds_from_junit(report) == {"tests/test_lab09.py": 120.8, "tests/test_course.py": 1.0}
    report.write_text("<testsuites><testsuite")  # cut short: a one-line error, the file left as it was
    before = (ROOT / "tests" / "module_seconds.json").read_text()
    out = subprocess.run([sys.executable, "tests/parallel.py", "--seconds-from", str(report)], cwd=ROOT,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 1 and out.stderr.startswith(f"error: cannot read {report}: "), out.stderr
    assert "Traceback" not in out.stderr and (ROOT / "tests" / "module_seconds.json").read_text() == before


def test_two_real_workers_each_run_whole_modules_in_their_written_order(tmp_path):
    """Real: `-n 2 --dist loadgroup` (as scripts/test.sh runs the suite) over modules that need no twins; each
    module's tests all on one worker, in the order a serial run has them."""
    files = ["tests/test_course.py", "tests/test_yamldata.py", "tests/test_swapfacts.py", "tests/test_nodefacts.py"]
    # not this session's xdist settings, and a base temp of its own (pytest prunes old ones: never the outer run's)
    env = {k: v for k, v in clean_environ().items() if not k.startswith("PYTEST_")}
    run = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-v", "-n", "2", "--dist",
                          "loadgroup", "--no-loadscope-reorder", f"--basetemp={tmp_path / 'run'}", *files], cwd=ROOT,
                         capture_output=True, text=True, timeout=300, env=env)
    assert run.returncode == 0, run.stdout[-2000:]
    ran = [(m.group(1), m.group(2)) for m in re.finditer(r"^\[(gw\d)\] .*?(?:PASSED|FAILED|SKIPPED|ERROR) (.+?) *$",
                                                         run.stdout, re.M)]
    serial = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--collect-only", "-q",
                             *files], cwd=ROOT, capture_output=True, text=True, timeout=300, env=env)
    written = [ln for ln in serial.stdout.splitlines() if "::" in ln]
    assert sorted(n for _, n in ran) == sorted(written)
    assert {w for w, _ in ran} == {"gw0", "gw1"}, "both workers had work"
    for module in files:
        on = {w for w, n in ran if n.startswith(module + "::")}
        assert len(on) == 1, f"{module} ran on {on}"
        assert [n for _, n in ran if n.startswith(module + "::")] == [n for n in written
                                                                      if n.startswith(module + "::")]


def test_an_instance_has_its_own_folder_and_cgroups_and_none_is_a_prefix_of_another(monkeypatch):
    monkeypatch.delenv("KUBELAB_TWIN_INSTANCE", raising=False)
    monkeypatch.delenv("KUBELAB_TWIN_DIR", raising=False)
    assert paths.twin_root() == Path("/var/lib/kubelab/twins")
    default = paths.cgroup_prefix("kubelab")
    assert default == "kubelab-twin_kubelab_"
    prefixes = {"": default}
    for name in ("w0", "w1", "w10"):
        monkeypatch.setenv("KUBELAB_TWIN_INSTANCE", name)
        assert paths.twin_root() == Path(f"/var/lib/kubelab/twins@{name}")
        prefixes[name] = paths.cgroup_prefix("kubelab")
        assert paths.cgroup_name("kubelab", "master") == prefixes[name] + "master"
    # down() of one set finds its cgroups by prefix: another set's must never match
    for a, pa in prefixes.items():
        for b, pb in prefixes.items():
            assert a == b or not pb.startswith(pa), (pa, pb)


@pytest.mark.parametrize("bad", ["Bad!", "w_1", "toolongname", "w.1"])
def test_a_bad_instance_name_is_one_line_exit_3(bad):
    out = kubelab("twin", "status", cwd=ROOT, env={"KUBELAB_TWIN_INSTANCE": bad})
    assert out.returncode == 3, out.stdout + out.stderr
    assert out.stderr.splitlines()[0] == f"error: KUBELAB_TWIN_INSTANCE={bad!r} is not 1-8 lowercase letters or digits"
    assert "Traceback" not in out.stdout + out.stderr


def test_the_host_view_leaves_out_only_another_instances_twins(monkeypatch):
    from hoststate import _another_instances

    monkeypatch.delenv("KUBELAB_TWIN_DIR", raising=False)
    mine = {"": ["/var/lib/kubelab/twins/kubelab/master/rootfs", "0::/kubelab-twin_kubelab_worker/kubepods"],
            "w1": ["/var/lib/kubelab/twins@w1/kubelab/master/rootfs", "0::/kubelab-twin_kubelab.w1_worker/kubepods"]}
    host = ["/proc", "/var/lib/kubelet/pods", "0::/user.slice", "/sys/fs/cgroup/kubepods"]  # e.g. a leak: kept
    for me, own in mine.items():
        monkeypatch.setenv("KUBELAB_TWIN_INSTANCE", me)
        others = [p for other, ps in mine.items() if other != me for p in ps]
        assert [p for p in own + host if _another_instances(p)] == []
        assert [p for p in others if not _another_instances(p)] == []


@pytest.mark.twins
def test_a_second_twin_set_of_the_course_boots_beside_the_sessions_in_its_own_network(twins, tmp_path):
    """Real: instance `t9` of this course, in a new network namespace (`unshare -n`), up and down beside the
    session's twins, which still answer afterwards; it leaves nothing behind."""
    inner = textwrap.dedent("""
        set -e
        ip link set lo up
        kubelab twin up >/dev/null
        kubelab twin ssh-config > "$SSH_CONFIG"
        for n in $NODES; do
          ssh -F "$SSH_CONFIG" -o BatchMode=yes "$n" 'echo "$(hostname) $(hostname -I | cut -d" " -f1)"'
        done
        kubelab twin down >/dev/null
        python -c 'from kubelab.course import load_course; from kubelab.twin import TwinSet; \\
                   print("LEFT", TwinSet(load_course(".")).leftovers())'
    """)
    env = {**clean_environ(), "KUBELAB_TWIN_INSTANCE": "t9", "SSH_CONFIG": str(tmp_path / "ssh-config"),
           "NODES": " ".join(n.name for n in COURSE.model.nodes),
           "PATH": f"{Path(sys.executable).parent}:/usr/sbin:/usr/bin:/sbin:/bin"}
    try:
        out = subprocess.run(["unshare", "-n", "bash", "-c", inner], cwd=ROOT, env=env, capture_output=True,
                             text=True, timeout=300)
        assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
        said = out.stdout.splitlines()
        for node in COURSE.model.nodes:
            assert f"{node.name} {node.ip}" in said, said  # the course's own names and addresses
        assert "LEFT []" in said, said
    finally:  # whatever failed above: stop t9 from inside a namespace of its own network, so nothing leaks
        subprocess.run(["unshare", "-n", "bash", "-c", "kubelab twin down --wipe"], cwd=ROOT, env=env,
                       capture_output=True, text=True, timeout=300)
    for node in COURSE.model.nodes:  # the session's twins were never touched
        probe = subprocess.run(["ssh", "-F", str(twins.ssh_config_file()), "-o", "BatchMode=yes", node.name,
                                "hostname"], capture_output=True, text=True, timeout=60)
        assert probe.stdout.strip() == node.name, probe.stderr
