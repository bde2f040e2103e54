"""Class runs grade learners in chunks (one worker process per chunk), and a chunk that dies or overruns
loses no learner: its unfinished learners are graded again one by one, each under its own timeout.

Proof: real worker processes from kubelab.classroom.pool's forkserver running real functions that really
die (SIGKILL), hang (sleep) or raise; no mocks. A simulation of misbehaving graders, not of the pool."""

from __future__ import annotations

from collections import Counter

from kubelab.classroom.pool import Task, chunk_size, run_tasks

import pool_tasks


def _run(tasks, jobs=2, timeout_s=60.0, chunk=None):
    done = []
    run_tasks(tasks, jobs, timeout_s, lambda t, o: done.append((t.key, o)), chunk=chunk)
    return dict(done), Counter(k for k, _ in done)


def test_learners_are_graded_in_chunks_each_exactly_once():
    tasks = [Task(f"l{i:02d}", pool_tasks.who, (f"l{i:02d}",)) for i in range(40)]
    outcomes, times = _run(tasks, jobs=2, chunk=10)
    assert set(times) == {t.key for t in tasks} and set(times.values()) == {1}
    assert all(o.ok and o.value[0] == k for k, o in outcomes.items())
    assert len({o.value[1] for o in outcomes.values()}) == 4  # four processes, not forty


def test_a_chunk_that_dies_regrades_its_unfinished_learners_alone(tmp_path):
    marker = str(tmp_path / "died-once")
    tasks = [Task(f"l{i}", pool_tasks.who_or, (f"l{i}", "die" if i == 3 else "", marker if i == 3 else ""))
             for i in range(8)]
    outcomes, times = _run(tasks, jobs=1, chunk=8)
    assert set(times.values()) == {1} and all(o.ok for o in outcomes.values()), outcomes
    first = {outcomes[f"l{i}"].value[1] for i in range(3)}
    alone = [outcomes[f"l{i}"].value[1] for i in range(3, 8)]
    assert len(first) == 1 and len(set(alone)) == 5 and not first & set(alone)  # l3..l7 one process each


def test_a_learner_that_always_dies_is_its_own_death_and_no_one_elses(tmp_path):
    tasks = [Task(f"l{i}", pool_tasks.who_or, (f"l{i}", "die" if i == 2 else "", "")) for i in range(6)]
    outcomes, times = _run(tasks, jobs=2, chunk=3)
    assert set(times.values()) == {1}
    assert outcomes["l2"].kind == "died" and "SIGKILL" in outcomes["l2"].value
    assert all(o.ok for k, o in outcomes.items() if k != "l2")


def test_a_hanging_learner_times_out_alone_and_the_rest_are_graded():
    tasks = [Task(f"l{i}", pool_tasks.who_or, (f"l{i}", "hang" if i == 1 else "", "")) for i in range(5)]
    outcomes, times = _run(tasks, jobs=2, timeout_s=3.0, chunk=5)
    assert set(times.values()) == {1}
    assert outcomes["l1"].kind == "timeout" and "timed out after 3s" in outcomes["l1"].value
    assert all(o.ok for k, o in outcomes.items() if k != "l1")


def test_a_raising_learner_is_a_one_line_reason_and_the_chunk_goes_on():
    tasks = [Task(f"l{i}", pool_tasks.who_or, (f"l{i}", "raise" if i == 0 else "", "")) for i in range(4)]
    outcomes, _ = _run(tasks, jobs=1, chunk=4)
    assert outcomes["l0"].kind == "raised" and outcomes["l0"].value == "ValueError: bad evidence"
    assert len({o.value[1] for k, o in outcomes.items() if k != "l0"}) == 1  # the same worker went on


def test_chunk_size_keeps_every_job_busy_and_a_crash_small():
    assert chunk_size(1, 2) == 1 and chunk_size(8, 8) == 1
    assert chunk_size(200, 1) == 50 and chunk_size(200, 2) == 25 and chunk_size(100_000, 2) == 64


def test_a_class_graded_in_chunks_gets_each_learners_own_replay(tmp_path):
    """evidence modelled on shared/realdata (the simulated v1.36 control plane of lab04_evidence.py, healthy and
    with each realistic mistake), one file per learner, plus a corrupt one: the class run (chunks, two jobs)
    records for each learner exactly what replaying their file alone gives."""
    import shutil

    import replay_corpus
    from kubelab.classroom.learners import find_submissions
    from kubelab.classroom.run import grade_class
    from kubelab.evidence import replay_lab

    cases = [c for c in replay_corpus.sim_cases(tmp_path / "sim") if c.lab == "lab04"]
    subs = tmp_path / "submitted"
    subs.mkdir()
    for i, case in enumerate(cases * 2):  # each state twice: several chunks hold the same kinds of file
        shutil.copyfile(case.path, subs / f"learner{i:02d}.json")
    (subs / "broken.json").write_text('{"format": "kubelab-evidence", "version": 1')
    course = cases[0].course
    run = grade_class(course, "lab04", find_submissions(subs, "lab04"), tmp_path / "out", jobs=2)
    records = {r["learner"]: r for r in run.records}
    assert len(records) == 2 * len(cases) + 1
    assert records["broken"]["status"] == "error" and records["broken"]["error_kind"] == "evidence"
    for i, case in enumerate(cases * 2):
        alone, _ = replay_lab(course, "lab04", case.path)
        assert records[f"learner{i:02d}"]["result"]["checks"] == alone.to_dict()["checks"], case.name
