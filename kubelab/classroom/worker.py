"""Grade one learner, inside its own worker process (see pool.py), and return a plain dict.

From evidence: the evidence file is replayed (no node touched). Live: the learner's nodes are graded
over SSH from their ssh-config, and what the grader saw is saved as evidence in the output folder, so
the instructor keeps the proof of every live grade.

The dict (a learner record, see store.py) never carries a traceback: every problem is one line, with
`error_kind` saying whose it is — `infrastructure` (nodes not observable), `evidence` (unreadable or
incomplete evidence), `ssh-config` (the learner's ssh-config is unusable), `grader` (the grader
itself failed; also `timeout`, set by the pool)."""

from __future__ import annotations

import time
from pathlib import Path

# imported here so that the forkserver has them loaded before it forks any worker
import kubelab.engine.runner  # noqa: F401
import kubelab.evidence  # noqa: F401
import paramiko  # noqa: F401
import testinfra  # noqa: F401

from kubelab.course import load_course
from kubelab.engine.results import LabResult, Status
from kubelab.engine.runner import run_lab
from kubelab.errors import KubelabError

def _warm_pytest() -> None:
    """Import pytest's built-in plugins now, in the forkserver, instead of in every worker's first run."""
    import importlib

    from _pytest.config import default_plugins

    for name in default_plugins:
        try:
            importlib.import_module(f"_pytest.{name}")
        except Exception:  # pragma: no cover - a speed-up only
            pass


_warm_pytest()

try:  # the Kubernetes client is needed by labs with a cluster; importing it once here saves it per worker
    import kubernetes.client  # noqa: F401
except Exception:  # pragma: no cover - optional speed-up only
    pass


def error_record(kind: str, reason: str) -> dict:
    return {"status": "error", "error_kind": kind, "reason": reason, "score": None, "raw_score": None,
            "raw_max": None, "result": None, "identity": None}


def result_record(result: LabResult, points: float, error_kind: str) -> dict:
    """A LabResult as a learner record, its score scaled to the lab's points (as nbgrader takes it)."""
    rec = {"status": result.status, "error_kind": None, "reason": None,
           "score": round(result.score / result.max_score * points, 2) if result.max_score else 0.0,
           "raw_score": result.score, "raw_max": result.max_score, "result": result.to_dict()}
    if result.status == "error":
        errors = [c for c in result.checks if c.status is Status.ERROR]
        first = errors[0]
        rec.update(error_kind=error_kind, score=None,
                   reason=f"{len(errors)} of {len(result.checks)} checks could not be graded; first: "
                          f"{first.node}: {first.message}")
    elif result.status == "failed":
        failing = [c for c in result.checks if c.status in (Status.FAIL, Status.BLOCKED)]
        rec["reason"] = f"{len(failing)} of {len(result.checks)} checks not passed"
    return rec


def grade_evidence(course_root: str, lab_id: str, evidence_path: str) -> dict:
    from kubelab.evidence import load
    from kubelab.evidence.replay import ReplayClock, ReplayTarget

    t0 = time.monotonic()
    course = load_course(course_root)
    points = course.model.lab(lab_id).points
    path = Path(evidence_path)
    try:
        evidence = load(path)
    except KubelabError as e:
        return {**error_record("evidence", e.problem), "duration_s": round(time.monotonic() - t0, 3)}
    if evidence.lab != lab_id:
        return {**error_record("evidence", f"evidence file {path} is the evidence of {evidence.lab}, not of {lab_id}"),
                "identity": evidence.identity, "duration_s": round(time.monotonic() - t0, 3)}
    clock = ReplayClock()  # a polling check gets its recorded answers at once
    try:
        result = run_lab(course, lab_id, ReplayTarget(course, evidence, source=f"evidence {path.name}"),
                         clock=clock.now, sleep=clock.sleep)
    except KubelabError as e:
        return {**error_record("grader", e.problem), "duration_s": round(time.monotonic() - t0, 3)}
    from kubelab.evidence.honesty import verify

    return {**result_record(result, points, "evidence"), "identity": evidence.identity,
            "recorded_at": evidence.recorded_at, "flags": verify(course, evidence, result),
            "duration_s": round(time.monotonic() - t0, 3)}


def grade_live(course_root: str, lab_id: str, ssh_config: str, evidence_out: str) -> dict:
    from kubelab.engine.targets import SshConfigTarget
    from kubelab.evidence import record_lab, save

    t0 = time.monotonic()
    course = load_course(course_root)
    points = course.model.lab(lab_id).points
    try:
        target = SshConfigTarget(course, ssh_config)
    except KubelabError as e:
        return {**error_record("ssh-config", e.problem), "duration_s": round(time.monotonic() - t0, 3)}
    try:
        try:
            result, evidence = record_lab(course, lab_id, target)
        finally:
            target.close()
    except KubelabError as e:
        return {**error_record("grader", e.problem), "duration_s": round(time.monotonic() - t0, 3)}
    rec = {**result_record(result, points, "infrastructure"), "identity": evidence.identity,
           "recorded_at": evidence.recorded_at}
    try:
        save(evidence, evidence_out)
        rec["evidence"] = evidence_out
    except OSError as e:
        rec["evidence"] = None
        rec["evidence_problem"] = f"cannot write {evidence_out}: {e.strerror or e}"
    rec["duration_s"] = round(time.monotonic() - t0, 3)
    return rec
