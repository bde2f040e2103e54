"""Grade one learner, inside a worker process (see pool.py: a chunk of learners per process), and return a
plain dict.

From evidence: the evidence file is replayed (no node touched). Live: the learner's nodes are graded
over SSH from their ssh-config, and what the grader saw is saved as evidence in the output folder, so
the instructor keeps the proof of every live grade.

The dict (a learner record, see store.py) never carries a traceback: every problem is one line, with
`error_kind` saying whose it is — `infrastructure` (nodes not observable), `evidence` (unreadable or
incomplete evidence), `ssh-config` (the learner's ssh-config is unusable), `grader` (the grader
itself failed; also `timeout`, set by the pool)."""

from __future__ import annotations

import os
import time
from pathlib import Path

# imported here so that the forkserver has them loaded before it forks any worker
import kubelab.engine.runner  # noqa: F401
import kubelab.evidence  # noqa: F401
import paramiko  # noqa: F401
import testinfra  # noqa: F401

from kubelab.course import load_course
from kubelab.engine.direct import load_grader, run_lab_direct
from kubelab.engine.results import LabResult, Status
from kubelab.errors import KubelabError

WARM_COURSE_ENV = "KUBELAB_WARM_COURSE"


def _warm_pytest() -> None:
    """Import pytest's built-in plugins now, in the forkserver, instead of in every worker's first run."""
    import importlib

    import pytest  # noqa: F401
    from _pytest.config import default_plugins

    for name in default_plugins:
        try:
            importlib.import_module(f"_pytest.{name}")
        except Exception:  # pragma: no cover - a speed-up only
            pass


def _warm_kubernetes() -> None:
    """The API classes the `kube` fixture builds, and the client they run on (~300 modules, ~1 s). The client
    validates each method's arguments with pydantic, which builds that validator on the method's first call:
    calling every read method once with no arguments builds them here (the call fails validation at once),
    not again in every worker."""
    try:
        import kubernetes.client.api_client  # noqa: F401
        from kubernetes.client import (AppsV1Api, CertificatesV1Api, CoordinationV1Api, CoreV1Api,  # noqa: F401
                                       VersionApi)
    except Exception:  # pragma: no cover - optional speed-up only
        return
    for api_class in (CoreV1Api, AppsV1Api, CoordinationV1Api, CertificatesV1Api, VersionApi):
        api = api_class(api_client=object())
        for name in dir(api_class):
            if name.startswith(("list_", "read_", "get_")) and not name.endswith("_without_preload_content"):
                try:
                    getattr(api, name)()
                except Exception:  # noqa: BLE001 - the validator is built before the arguments are refused
                    pass


def warm_course(course_root: str) -> None:
    """Load the course and import every grader it names, so that each worker forked after this has them.
    Whatever fails here is left for the grading to report (as that learner's error): warming never stops
    the forkserver."""
    try:
        course = load_course(course_root)
        for lab in course.model.labs:
            try:
                load_grader(course.grader_path(lab.id))
            except KubelabError:
                pass
    except Exception:  # noqa: BLE001 - a speed-up only
        pass


def prepare(course_root: str) -> None:
    """Name the course whose graders the forkserver loads when it starts (kubelab.classroom.pool);
    a forkserver already running keeps what it has, and a worker loads anything else once per chunk."""
    os.environ[WARM_COURSE_ENV] = str(course_root)


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
        result = run_lab_direct(course, lab_id, ReplayTarget(course, evidence, source=f"evidence {path.name}"),
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


# in the forkserver (kubelab.classroom.pool preloads this module): everything a worker needs, loaded once
_warm_pytest()
_warm_kubernetes()
if os.environ.get(WARM_COURSE_ENV):
    warm_course(os.environ[WARM_COURSE_ENV])
