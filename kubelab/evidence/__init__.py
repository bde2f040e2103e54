"""Evidence of a lab's state: record what the grader saw, and grade again from it alone."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import kubelab
from kubelab.course import LoadedCourse
from kubelab.engine.direct import run_lab_direct
from kubelab.engine.results import LabResult
from kubelab.engine.runner import run_lab
from kubelab.engine.targets import Target
from kubelab.evidence import identity
from kubelab.evidence.model import Evidence, course_digest, load, save
from kubelab.evidence.record import RecordingTarget
from kubelab.evidence.replay import NotInEvidence, ReplayClock, ReplayTarget
from kubelab.errors import UsageError

__all__ = ["Evidence", "NotInEvidence", "comparable", "load", "record_lab", "replay_lab", "replay_and_verify", "save"]


def record_lab(course: LoadedCourse, lab_id: str, target: Target,
               clock: ReplayClock | None = None) -> tuple[LabResult, Evidence]:
    """Grade live through a recorder. `clock` (an object with now() and sleep(s), e.g. ReplayClock) is the run's
    time; by default real time. Virtual time is for a target whose answers cannot change while a check polls (a
    simulation): its polling would otherwise wait out its whole timeout for nothing."""
    recorder = RecordingTarget(target)
    timing = {} if clock is None else {"clock": clock.now, "sleep": clock.sleep}
    result = run_lab(course, lab_id, recorder, **timing)
    evidence = Evidence(
        format="kubelab-evidence", version=1, kubelab_version=kubelab.__version__,
        course_digest=course_digest(course.path), lab=lab_id,
        recorded_at=datetime.now(timezone.utc).isoformat(timespec="seconds"), target=target.description,
        identity=identity.collect(target), nodes=recorder.commands, api=recorder.api, result=result.to_dict())
    return result, evidence.sealed()


def replay_lab(course: LoadedCourse, lab_id: str, path: str | Path) -> tuple[LabResult, Evidence]:
    evidence = load(path)
    if evidence.lab != lab_id:
        raise UsageError(f"evidence file {path} is for {evidence.lab}, not {lab_id}",
                         f"grade it as {evidence.lab}, or pass the evidence of {lab_id}")
    target = ReplayTarget(course, evidence, source=f"evidence {Path(path).name}")
    clock = ReplayClock()  # a polling check replays its recorded answers without waiting again
    # the direct driver: the same checks and rules as the live run, without a pytest session per replay
    return run_lab_direct(course, lab_id, target, clock=clock.now, sleep=clock.sleep), evidence


def comparable(result: dict) -> list[dict]:
    """The parts of a result that must agree between a live run and its replay."""
    keep = ("id", "status", "points", "max_points", "expected", "actual", "blocked_by", "message")
    return [{k: c[k] for k in keep} for c in result["checks"]]


def replay_and_verify(course: LoadedCourse, lab_id: str, path: str | Path) -> tuple[LabResult, Evidence, list[str]]:
    """replay_lab, plus the reasons to flag the evidence (honesty.verify): empty when nothing is inconsistent."""
    from kubelab.evidence.honesty import verify

    result, evidence = replay_lab(course, lab_id, path)
    return result, evidence, verify(course, evidence, result)
