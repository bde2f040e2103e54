"""A trace kept as evidence: the observations it was drawn from (replayable) and the steps drawn."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import kubelab
from kubelab.course import LoadedCourse
from kubelab.engine.targets import Target
from kubelab.errors import UsageError
from kubelab.trace import AUDIT_LOG_PATH
from kubelab.trace.collect import canonical_kind, collect
from kubelab.trace.model import Trace, build

EVIDENCE_LAB = "trace"  # the `lab` of a trace's evidence file: it belongs to no lab


def trace_live(course: LoadedCourse, target: Target, kind: str, name: str, namespace: str = "default",
               audit_path: str = AUDIT_LOG_PATH, record: str | Path | None = None) -> Trace:
    if record is None:
        return build(collect(target, kind, name, namespace, audit_path))
    from kubelab.evidence import Evidence, save
    from kubelab.evidence.model import course_digest
    from kubelab.evidence.record import RecordingTarget

    recorder = RecordingTarget(target)
    trace = build(collect(recorder, kind, name, namespace, audit_path))
    evidence = Evidence(
        format="kubelab-evidence", version=1, kubelab_version=kubelab.__version__,
        course_digest=course_digest(course.path), lab=EVIDENCE_LAB,
        recorded_at=datetime.now(timezone.utc).isoformat(timespec="seconds"), target=target.description,
        nodes=recorder.commands, api=recorder.api,
        result={"request": {"kind": canonical_kind(kind), "name": name, "namespace": namespace,
                            "audit_path": audit_path}, "trace": trace.to_dict()})
    try:
        save(evidence, record)
    except OSError as e:
        raise UsageError(f"cannot write {record}: {e.strerror}", "choose a writable path") from None
    return trace


def trace_from_evidence(course: LoadedCourse, path: str | Path, kind: str | None = None, name: str | None = None,
                        namespace: str | None = None) -> Trace:
    """Draw again from a trace's evidence alone (no node touched). kind/name/namespace, when given, must be
    what was recorded."""
    from kubelab.evidence import load
    from kubelab.evidence.replay import ReplayTarget

    if kind is not None:
        kind = canonical_kind(kind)
    evidence = load(path)
    request = evidence.result.get("request") if evidence.lab == EVIDENCE_LAB else None
    if not isinstance(request, dict):
        raise UsageError(f"{path} is the evidence of {evidence.lab}, not of a trace",
                         "pass a file written by `kubelab trace ... --record FILE`")
    recorded = (request.get("kind"), request.get("namespace"), request.get("name"))
    asked = (kind or recorded[0], namespace or recorded[1], name or recorded[2])
    if asked != recorded:
        raise UsageError(f"{path} holds the trace of {recorded[0]} {recorded[1]}/{recorded[2]}, not "
                         f"{asked[0]} {asked[1]}/{asked[2]}", f"kubelab trace {recorded[0]} {recorded[2]} "
                         f"-n {recorded[1]} --evidence {path}")
    target = ReplayTarget(course, evidence, source=f"evidence {Path(path).name}")
    return build(collect(target, *recorded[:1], recorded[2], recorded[1],
                         request.get("audit_path") or AUDIT_LOG_PATH))
