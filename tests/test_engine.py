"""The grading engine on hand-written graders.

Proof: real pytest runs of real grader modules through `kubelab grade`, with this machine as every
node (the engine's local target, testinfra's local backend) or an ssh-config whose nodes refuse
connections on loopback. No mocks."""

from __future__ import annotations

import json
from xml.etree import ElementTree as ET

import pytest

from helpers import kubelab, make_course
from kubelab.course import load_course
from kubelab.engine.checks import eventually
from kubelab.engine.results import Status
from kubelab.engine.runner import run_lab
from kubelab.engine.targets import LocalTarget, SshConfigTarget

MIXED = '''
import pytest
from kubelab.engine import check, expect_equal
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
def test_dependent_ok(host):
    pass

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
'''


@pytest.fixture
def mixed(tmp_path):
    return load_course(make_course(tmp_path, MIXED))


def by_id(result):
    return {c.id: c for c in result.checks}


def test_statuses_points_and_blocking(mixed):
    result = run_lab(mixed, "lab90", LocalTarget(mixed))
    r = by_id(result)
    assert r["root[master]"].status is Status.PASS and r["root[worker]"].status is Status.PASS
    assert "answer[master]" not in r, "on=worker must not run on master"
    fail = r["answer[worker]"]
    assert (fail.status, fail.expected, fail.actual, fail.points, fail.max_points) == (Status.FAIL, "42", "41", 0, 3)
    assert fail.hint == "Set the answer to 42."
    assert r["dependent[worker]"].status is Status.BLOCKED
    assert r["dependent[worker]"].blocked_by == ["answer[worker]"]
    assert r["dependent_ok[master]"].status is Status.PASS
    assert r["plain_assert[master]"].status is Status.FAIL and "rc was 0" in r["plain_assert[master]"].actual
    assert r["infra[master]"].status is Status.ERROR and "the node went away" in r["infra[master]"].message
    assert r["bug[master]"].status is Status.ERROR and r["bug[master]"].message.startswith("grader error: ZeroDivisionError")
    assert r["skip[cluster]"].status is Status.SKIPPED and "1.99" in r["skip[cluster]"].message
    # 2+2 (root) + 1+1 (dependent_ok) earned; skipped excluded from the maximum
    assert (result.score, result.max_score) == (6, 2 + 2 + 3 + 1 + 1 + 1 + 1 + 1 + 1)
    assert result.status == "error" and result.exit_code == 3


def test_exit_codes_json_and_junit(tmp_path):
    passing = make_course(tmp_path / "p", '''
        from kubelab.engine import check
        @check("Fine", on="all", points=1, hint="h")
        def test_fine(host):
            assert host.run("true").rc == 0
    ''')
    failing = make_course(tmp_path / "f", '''
        from kubelab.engine import check, expect_equal
        @check("Wrong", on="master", points=1, hint="do the thing")
        def test_wrong(host):
            expect_equal("no", "yes", what="thing")
    ''')
    out = tmp_path / "r.json"
    junit = tmp_path / "r.xml"
    p = kubelab("grade", "lab90", "--local", "--course", str(passing), "--json", str(out), "--junit", str(junit))
    assert p.returncode == 0, p.stdout + p.stderr
    data = json.loads(out.read_text())
    assert set(data) == {"lab", "title", "score", "max_score", "status", "target", "started_at", "duration_s", "checks"}
    assert set(data["checks"][0]) >= {"id", "title", "node", "status", "points", "max_points", "expected", "actual",
                                       "hint", "blocked_by"}
    assert (data["score"], data["max_score"], data["status"]) == (2, 2, "passed")
    assert ET.parse(junit).getroot().find("testsuite").get("tests") == "2"

    f = kubelab("grade", "lab90", "--local", "--course", str(failing), "--json", str(out), "--junit", str(junit))
    assert f.returncode == 1
    assert "expected: yes" in f.stdout and "actual:   no" in f.stdout and "do the thing" in f.stdout
    assert "Traceback" not in f.stdout + f.stderr
    suite = ET.parse(junit).getroot().find("testsuite")
    assert suite.get("failures") == "1" and suite.find("testcase/failure") is not None
    assert json.loads(out.read_text())["checks"][0]["status"] == "fail"


def test_waiting_check_converges_and_times_out(tmp_path):
    course = load_course(make_course(tmp_path, f'''
        from pathlib import Path
        from kubelab.engine import check, expect_equal
        COUNTER = Path({str(tmp_path / "n")!r})

        @check("Converges on the third look", on="master", points=1, hint="h", wait_s=30, interval_s=0.05)
        def test_converges(host):
            n = int(COUNTER.read_text()) + 1 if COUNTER.exists() else 1
            COUNTER.write_text(str(n))
            expect_equal(n >= 3, True, what="looks")

        @check("Never converges", on="master", points=1, hint="h", wait_s=0.3, interval_s=0.05)
        def test_never(host):
            expect_equal("NotReady", "Ready", what="node")
    '''))
    r = by_id(run_lab(course, "lab90", LocalTarget(course)))
    assert r["converges[master]"].status is Status.PASS
    assert (tmp_path / "n").read_text() == "3"
    assert r["never[master]"].status is Status.FAIL
    assert "after waiting 0.3s" in r["never[master]"].message


def test_eventually_returns_last_value_at_deadline():
    now = [0.0]
    values = iter(["a", "b", "c", "d", "e"])
    got = eventually(lambda: next(values), until=lambda v: v == "z", timeout_s=2.0, interval_s=1.0,
                     clock=lambda: now[0], sleep=lambda s: now.__setitem__(0, now[0] + s))
    assert got == "c"  # looked at t=0, 1, 2, then gave up
    assert eventually(lambda: 5, until=lambda v: v == 5, timeout_s=0) == 5


def test_eventually_in_a_grader_runs_on_the_engines_clock(tmp_path):
    """A grader's own eventually() polls on the engine's clock: on virtual time (a replay) it never sleeps for
    real, converging checks still pass and never-converging ones fail after the virtual wait."""
    course = load_course(make_course(tmp_path, f'''
        from pathlib import Path
        from kubelab.engine import check, eventually, expect_equal
        COUNTER = Path({str(tmp_path / "n")!r})

        def look():
            n = int(COUNTER.read_text()) + 1 if COUNTER.exists() else 1
            COUNTER.write_text(str(n))
            return n

        @check("Converges on the fourth look", on="master", points=1, hint="h")
        def test_converges(host):
            expect_equal(eventually(look, until=lambda n: n >= 4, timeout_s=600, interval_s=60) >= 4, True,
                         what="looks")

        @check("Never converges", on="master", points=1, hint="h")
        def test_never(host):
            expect_equal(eventually(lambda: "NotReady", until=lambda v: v == "Ready", timeout_s=900,
                                    interval_s=300), "Ready", what="node")
    '''))
    now, slept = [0.0], []

    def sleep(s):
        slept.append(s)
        now[0] += s
    r = by_id(run_lab(course, "lab90", LocalTarget(course), clock=lambda: now[0], sleep=sleep))
    assert r["converges[master]"].status is Status.PASS and (tmp_path / "n").read_text() == "4"
    assert r["never[master]"].status is Status.FAIL and r["never[master]"].actual == "NotReady"
    assert slept == [60, 60, 60, 300, 300, 300], slept  # all on the engine's clock: nothing slept for real


def test_unreachable_nodes_are_infrastructure_errors_not_zero(mixed, tmp_path):
    cfg = tmp_path / "ssh-config"
    cfg.write_text("".join(f"Host {n}\n  HostName 127.0.0.1\n  Port 1\n  User vagrant\n  StrictHostKeyChecking no\n\n"
                           for n in ("master", "worker")))
    target = SshConfigTarget(mixed, cfg)
    result = run_lab(mixed, "lab90", target)
    statuses = {c.status for c in result.checks if c.node != "cluster"}
    assert statuses <= {Status.ERROR, Status.BLOCKED}
    assert target.stats.connections_opened == 2, "one attempt per node, not one per check"
    observing = [c for c in result.checks if c.node == "master" and c.check not in ("infra", "bug")]
    assert observing and all(c.status is Status.ERROR and "cannot reach master" in c.message for c in observing
                             if c.check != "dependent_ok")
    p = kubelab("grade", "lab90", "--ssh-config", str(cfg), "--course", str(mixed.root))
    assert p.returncode == 3
    assert "infrastructure problem" in p.stdout and "Traceback" not in p.stdout + p.stderr


@pytest.mark.parametrize("content, message", [
    (None, "does not exist"),
    ("Host master\n  HostName 127.0.0.1\n", "has no Host worker"),
    ("Host master\n  Port abc\nHost worker\n  Port 22\n", "Port that is not a number"),
    ("# nothing here\n", "has no Host entries"),
])
def test_bad_ssh_config_is_one_line_exit_2(tmp_path, content, message):
    cfg = tmp_path / "ssh-config"
    if content is not None:
        cfg.write_text(content)
    p = kubelab("grade", "lab01", "--ssh-config", str(cfg))
    assert p.returncode == 2
    assert message in p.stderr and "fix:" in p.stderr
    assert "Traceback" not in p.stderr and len(p.stderr.strip().splitlines()) == 2


def test_unknown_lab_and_bad_usage():
    p = kubelab("grade", "lab77", "--local")
    assert p.returncode == 2 and "unknown lab 'lab77'" in p.stderr and "lab01" in p.stderr
    p = kubelab("grade")
    assert p.returncode == 2


def test_grader_that_does_not_import_is_bad_input(tmp_path):
    root = make_course(tmp_path, "import no_such_module_anywhere\n")
    p = kubelab("grade", "lab90", "--local", "--course", str(root))
    assert p.returncode == 2 and "could not be loaded" in p.stderr and "Traceback" not in p.stderr


def test_a_rerun_in_the_same_process_sees_the_edited_grader(tmp_path):
    root = make_course(tmp_path, '''
        from kubelab.engine import check
        @check("One", on="master", points=1, hint="h")
        def test_one(host):
            pass
    ''')
    course = load_course(root)
    assert [c.check for c in run_lab(course, "lab90", LocalTarget(course)).checks] == ["one"]
    (root / "graders" / "lab90_engine.py").write_text(
        "from kubelab.engine import check\n"
        "@check('Two', on='master', points=1, hint='h')\ndef test_two(host):\n    pass\n")
    assert [c.check for c in run_lab(course, "lab90", LocalTarget(course)).checks] == ["two"]


def test_a_check_needing_a_skipped_check_is_skipped_too(tmp_path):
    """A check that builds on one that does not apply (e.g. flannel's checks when the course's CNI is not
    flannel) is skipped with the same reason, not blocked: nothing is wrong, and it leaves the maximum."""
    course = load_course(make_course(tmp_path, '''
        import pytest
        from kubelab.engine import check
        @check("Applies to flannel only", on="cluster", points=2, hint="h")
        def test_flannel(kube):
            pytest.skip("applies when the course's CNI is flannel")
        @check("Builds on it", on="all", points=1, needs=["flannel"], hint="h")
        def test_dependent(host):
            raise AssertionError("must not run")
        @check("Independent", on="master", points=1, hint="h")
        def test_other(host):
            pass
    '''))
    r = by_id(run_lab(course, "lab90", LocalTarget(course)))
    for node in ("master", "worker"):
        dep = r[f"dependent[{node}]"]
        assert dep.status is Status.SKIPPED and dep.message == "applies when the course's CNI is flannel"
    result = run_lab(course, "lab90", LocalTarget(course))
    assert (result.score, result.max_score, result.status) == (1, 1, "passed")


def test_read_or_none_tells_a_missing_object_from_other_api_errors():
    """unit, with the official client's own exceptions: read_or_none gives None for the API's 404 (ApiException and
    its NotFoundException subclass) and raises every other error as it came; api_status is None for an exception
    that is not the API's."""
    from kubernetes.client.exceptions import ApiException, NotFoundException

    from kubelab.engine import api_status, read_or_none

    def raising(exc):
        def read(*args, **kwargs):
            raise exc
        return read

    assert read_or_none(lambda name, ns: (name, ns), "web", ns="lab09") == ("web", "lab09")
    assert read_or_none(raising(ApiException(status=404, reason="Not Found"))) is None
    assert read_or_none(raising(NotFoundException(status=404, reason="Not Found"))) is None
    forbidden = ApiException(status=403, reason="Forbidden")
    with pytest.raises(ApiException) as e:
        read_or_none(raising(forbidden))
    assert e.value is forbidden and api_status(forbidden) == 403
    with pytest.raises(ConnectionError):
        read_or_none(raising(ConnectionError("refused")))
    assert api_status(ConnectionError("refused")) is None


def test_a_failure_keeps_what_the_grader_looked_at_on_both_drivers(tmp_path):
    """Hand-written grader run on this machine as every node (real pytest driver and real direct driver, no mocks):
    a failed check's message is the grader's `what` (followed by the engine's wait when it polled), the same on
    both drivers and shown in the learner's HTML table; a passing check carries no message."""
    from kubelab.engine.direct import run_lab_direct
    from kubelab.engine.report import to_html

    course = load_course(make_course(tmp_path, '''
        from kubelab.engine import check, expect_equal, fail

        @check("Hostname is set", on="master", points=1, hint="h")
        def test_named(host):
            expect_equal(host.run("echo master").stdout.strip(), "master", what="the node's hostname")

        @check("The answer is 42", on="master", points=1, hint="h")
        def test_answer(host):
            expect_equal(host.run("echo 41").stdout.strip(), "42", what="the answer in /etc/answer")

        @check("Ready in the end", on="master", points=1, hint="h", wait_s=2, interval_s=1)
        def test_waited(host):
            fail("Ready", "NotReady", what="node master")

        @check("No what given", on="master", points=1, hint="h")
        def test_bare(host):
            fail("yes", "no")
    '''))
    results = []
    for driver in (run_lab, run_lab_direct):
        now = [0.0]
        results.append(driver(course, "lab90", LocalTarget(course), clock=lambda: now[0],
                              sleep=lambda s: now.__setitem__(0, now[0] + s)))
    via_pytest, direct = results
    assert [c.to_dict() for c in via_pytest.checks] == [c.to_dict() for c in direct.checks]
    r = by_id(direct)
    assert (r["named[master]"].status, r["named[master]"].message) == (Status.PASS, None)
    answer = r["answer[master]"]
    assert (answer.status, answer.expected, answer.actual, answer.message) == \
        (Status.FAIL, "42", "41", "the answer in /etc/answer")
    assert r["waited[master]"].message == "node master: still not so after waiting 2s"
    assert (r["bare[master]"].status, r["bare[master]"].message) == (Status.FAIL, None)
    assert "<b>note</b> the answer in /etc/answer" in to_html(direct)
