"""One way to run a check, two drivers: the pytest plugin (live, --record) and the direct runner (replay)
give identical results on every evidence file the suite knows, and refuse the same bad graders.

Proof: real evidence files recorded by record_lab (see replay_corpus.py for what each is: this machine as every
node, the simulated v1.36 control plane modelled on shared/realdata, hand-written engine graders; with twins,
the Lab 1 recordings made by the notebooks' own grading cell), each replayed through both drivers; real
`kubelab lint` runs on graders that use what only pytest honours."""

from __future__ import annotations

import os
import textwrap

import pytest

import replay_corpus
from helpers import REPO, kubelab, make_course
from kubelab.course import load_course
from kubelab.engine.direct import load_grader, run_lab_direct
from kubelab.engine.results import Status
from kubelab.engine.runner import run_lab
from kubelab.errors import UsageError
from kubelab.evidence import comparable, load
from kubelab.evidence.replay import ReplayClock, ReplayTarget


def both_drivers(course, lab: str, path) -> tuple:
    """The same evidence file replayed through the pytest driver and the direct driver, each on its own clock."""
    evidence = load(path)
    out = []
    for driver in (run_lab, run_lab_direct):
        clock = ReplayClock()
        out.append(driver(course, lab, ReplayTarget(course, evidence), clock=clock.now, sleep=clock.sleep))
    return tuple(out)


def _checks(result) -> list[dict]:
    return [c.to_dict() for c in result.checks]  # every field, duration on the virtual clock included


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return replay_corpus.build(tmp_path_factory.mktemp("replay-corpus"))


def test_every_evidence_file_gives_identical_results_on_both_drivers(corpus):
    seen = set()
    for case in corpus:
        via_pytest, direct = both_drivers(case.course, case.lab, case.path)
        assert _checks(direct) == _checks(via_pytest), case.name
        assert (direct.score, direct.max_score, direct.status) == (via_pytest.score, via_pytest.max_score,
                                                                     via_pytest.status), case.name
        if not case.edited:  # as recorded: the replay is the live run (recorded through the pytest driver)
            assert comparable(direct.to_dict()) == comparable(load(case.path).result), case.name
        seen |= {c.status for c in direct.checks}
    # the corpus holds every status, so "identical" covers each rule of checkrun
    assert seen == set(Status), seen


def test_the_corpus_exercises_polling_blocking_skipping_and_missing_observations(corpus):
    by_name = {c.name: c for c in corpus}
    result = run_lab_direct(by_name["engine-converging"].course, "lab90",
                            ReplayTarget(by_name["engine-converging"].course, load(by_name["engine-converging"].path)),
                            **_virtual())
    r = {c.id: c for c in result.checks}
    assert r["polls[master]"].status is Status.PASS and r["polls[master]"].duration_s == 4.0  # 1, 2, 3 on virtual time
    assert r["eventually[worker]"].status is Status.PASS
    assert r["dependent[worker]"].status is Status.BLOCKED and r["dependent[worker]"].blocked_by == ["answer[worker]"]
    assert r["after_skip[master]"].status is Status.SKIPPED and r["after_skip[master]"].message == "needs >= 1.99"
    assert r["bug[master]"].message.startswith("grader error: ZeroDivisionError")
    missing = by_name["engine-not-in-evidence"]
    result = run_lab_direct(missing.course, "lab90", ReplayTarget(missing.course, load(missing.path)), **_virtual())
    answer = next(c for c in result.checks if c.id == "answer[worker]")
    assert answer.status is Status.ERROR and "not in evidence" in answer.message


def _virtual() -> dict:
    clock = ReplayClock()
    return {"clock": clock.now, "sleep": clock.sleep}


@pytest.mark.twins
def test_lab01_recordings_of_the_notebooks_give_identical_results_on_both_drivers(lab01_evidence):
    """live twins: the evidence the learner and solution notebooks wrote (lab01_recordings.py)."""
    course = load_course(REPO)
    for recording in (lab01_evidence.failing, lab01_evidence.passing):
        via_pytest, direct = both_drivers(course, "lab01", recording.evidence)
        assert _checks(direct) == _checks(via_pytest)
        assert comparable(direct.to_dict()) == comparable(recording.result)


BAD_GRADERS = {
    "unknown fixture": ("@check('A', on='all', points=1, hint='h')\ndef test_a(host, tmp_path):\n    pass\n",
                        "'tmp_path', which the engine does not provide"),
    "node without host": ("@check('A', on='cluster', points=1, hint='h')\ndef test_a(node):\n    pass\n",
                          "`node` without `host`"),
    "host on the cluster": ("@check('A', on='cluster', points=1, hint='h')\ndef test_a(host):\n    pass\n",
                            "runs on the cluster but asks for `host`"),
    "test without @check": ("def test_a(host):\n    pass\n", "test_a is a test without @check"),
    "import error": ("import no_such_module_anywhere\n", "No module named"),
    "no checks": ("x = 1\n", "has no checks"),
}


@pytest.mark.parametrize("what", sorted(BAD_GRADERS))
def test_both_drivers_refuse_the_same_bad_graders(tmp_path, what):
    source, words = BAD_GRADERS[what]
    course = load_course(make_course(tmp_path, "from kubelab.engine import check\n" + source))
    from kubelab.engine.targets import LocalTarget  # any target: the grader is refused before a node is asked

    for driver in (run_lab, run_lab_direct):
        with pytest.raises(UsageError) as e:
            driver(course, "lab90", LocalTarget(course))
        assert words in e.value.problem, (driver.__name__, e.value.problem)


def test_direct_driver_imports_a_grader_once_and_again_when_it_changes(tmp_path):
    root = make_course(tmp_path, '''
        from kubelab.engine import check
        @check("One", on="master", points=1, hint="h")
        def test_one(host):
            pass
    ''')
    course = load_course(root)
    path = course.grader_path("lab90")
    assert load_grader(path) is load_grader(path)  # cached: a class run imports each grader once
    path.write_text("from kubelab.engine import check\n"
                    "@check('Two', on='master', points=1, hint='h')\ndef test_two(host):\n    pass\n")
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))
    from kubelab.engine.targets import LocalTarget

    assert [c.check for c in run_lab_direct(course, "lab90", LocalTarget(course)).checks] == ["two"]


PYTEST_ONLY = {
    "a pytest fixture": ("import pytest\n@pytest.fixture\ndef thing():\n    return 1\n", "pytest.fixture"),
    "a yield fixture": ("import pytest\n@pytest.fixture\ndef thing():\n    yield 1\n", "pytest.fixture"),
    "a mark": ("import pytest\n@pytest.mark.xfail\n@check('B', on='all', points=1, hint='h')\ndef test_b(host):\n"
               "    pass\n", "pytest.mark"),
    "a module mark": ("import pytest\npytestmark = pytest.mark.slow\n", "pytestmark"),
    "a test class": ("class TestThings:\n    def test_x(self):\n        pass\n", "is a test class"),
    "a hook": ("def pytest_generate_tests(metafunc):\n    pass\n", "is a pytest hook"),
    "a generator check": ("@check('B', on='all', points=1, hint='h')\ndef test_b(host):\n    yield\n", "yields"),
    "an unknown fixture": ("@check('B', on='all', points=1, hint='h')\ndef test_b(host, monkeypatch):\n    pass\n",
                           "'monkeypatch', not a fixture of the engine"),
    "pytest.fail": ("import pytest\n@check('B', on='all', points=1, hint='h')\ndef test_b(host):\n"
                    "    pytest.fail('no')\n", "pytest.fail"),
}


@pytest.mark.parametrize("what", sorted(PYTEST_ONLY))
def test_lint_rejects_what_only_pytest_would_honour(tmp_path, what):
    extra, words = PYTEST_ONLY[what]
    source = ("from kubelab.engine import check\n\n@check('A', on='all', points=1, hint='h')\n"
              "def test_a(host):\n    pass\n\n" + extra)
    root = make_course(tmp_path, source)
    p = kubelab("lint", "--course", str(root))
    lines = [line for line in p.stdout.splitlines() if "lab90_engine.py" in line]
    assert p.returncode == 2 and any(words in line for line in lines), p.stdout


def test_lint_rejects_a_conftest_next_to_the_graders(tmp_path):
    root = make_course(tmp_path, textwrap.dedent('''
        from kubelab.engine import check
        @check("A", on="all", points=1, hint="h")
        def test_a(host):
            pass
    '''))
    (root / "graders" / "conftest.py").write_text("import pytest\n")
    p = kubelab("lint", "--course", str(root))
    assert p.returncode == 2 and "conftest.py is read by pytest (live) but not by a replay" in p.stdout, p.stdout


def test_the_course_graders_use_only_what_both_drivers_run():
    from kubelab.engine.graderrules import grader_rules

    course = load_course(REPO)
    for lab in course.model.labs:
        grader = load_grader(course.grader_path(lab.id))
        assert grader_rules(grader.path, grader.module) == [], lab.id
