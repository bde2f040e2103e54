"""A class grading run: resume, grade the rest in worker processes, write every result as it comes,
then the class outputs."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

from kubelab.classroom import reports, worker
from kubelab.classroom.learners import LearnerInput
from kubelab.classroom.pool import Outcome, Task, run_tasks
from kubelab.classroom.store import LearnerStore, context_digest, input_digest
from kubelab.course import LoadedCourse
from kubelab.errors import UsageError

DEFAULT_TIMEOUT_S = 300.0


def default_jobs(mode: str) -> int:
    """Live grading waits on SSH (IO-bound): min(8, 4 per core). A replay computes (CPU-bound): one per core."""
    cpus = os.cpu_count() or 1
    return min(8, cpus * 4) if mode == "live" else cpus


@dataclass
class ClassRun:
    out: Path
    records: list[dict]
    graded: int = 0
    skipped: int = 0
    report: dict = field(default_factory=dict)

    @property
    def errors(self) -> list[dict]:
        return [r for r in self.records if r["status"] == "error"]


class _SafeStore(LearnerStore):
    def write(self, record: dict) -> Path:
        try:
            return super().write(record)
        except OSError as e:
            raise UsageError(f"cannot write {self.path(record['learner'])}: {e.strerror or e}",
                             "free some space or pass a writable --out folder; a re-run resumes") from None


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def flagged(record: dict) -> dict:
    """A graded learner whose evidence failed a consistency check (evidence/honesty.py) keeps the score and
    gets status `flagged`, its reasons in `reason`; `graded_status` keeps passed/failed."""
    flags = record.get("flags") or []
    if not flags or record.get("status") not in ("passed", "failed"):
        return record
    return {**record, "graded_status": record["status"], "status": "flagged",
            "reason": f"flagged ({len(flags)}): " + "; ".join(flags)}


def grade_class(course: LoadedCourse, lab_id: str, inputs: list[LearnerInput], out: Path, *,
                jobs: int | None = None, timeout_s: float = DEFAULT_TIMEOUT_S, force: bool = False,
                on_progress: Callable[[dict, bool], None] | None = None) -> ClassRun:
    """Grade every learner of `inputs`; `on_progress(record, skipped)` is called once per learner."""
    lab = course.model.lab(lab_id)
    mode = "live" if any(i.kind == "live" for i in inputs) else "evidence"
    jobs = jobs or default_jobs(mode)
    out = Path(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
        (out / "learners").mkdir(exist_ok=True)
        if mode == "live":
            (out / "evidence").mkdir(exist_ok=True)
    except OSError as e:
        raise UsageError(f"cannot create the output folder {out}: {e.strerror or e}", "pass a writable --out folder")
    store = _SafeStore(out)
    context = context_digest(course, lab_id)
    run = ClassRun(out=out, records=[])
    done: dict[str, dict] = {}
    tasks: list[Task] = []
    base: dict[str, dict] = {}

    for item in inputs:
        digest = input_digest(context, item)
        previous = store.read(item.learner)
        if not force and store.reusable(previous, digest):
            done[item.learner] = previous
            run.skipped += 1
            if on_progress:
                on_progress(previous, True)
            continue
        head = {"learner": item.learner, "lab": lab_id, "mode": "live" if item.kind == "live" else "evidence",
                "source": str(item.source) if item.source else item.where, "input_digest": digest,
                "max": lab.points}
        if item.kind in ("missing", "error"):
            if item.kind == "missing":
                body = {"status": "missing", "error_kind": None, "reason": f"no {lab_id}.evidence.json handed in",
                        "score": 0.0, "raw_score": None, "raw_max": None, "identity": None, "result": None}
            else:  # nothing to grade: the reason is the submission's shape, found while listing the class
                body = worker.error_record("evidence", item.reason)
            record = {**head, "graded_at": _now(), "duration_s": 0.0, **body}
            store.write(record)
            done[item.learner] = record
            run.graded += 1
            if on_progress:
                on_progress(record, False)
            continue
        base[item.learner] = head
        if item.kind == "live":
            evidence_out = str((out / "evidence" / f"{item.learner}.{lab_id}.evidence.json").resolve())
            tasks.append(Task(item.learner, worker.grade_live,
                              (str(course.root), lab_id, str(item.source), evidence_out)))
        else:
            tasks.append(Task(item.learner, worker.grade_evidence, (str(course.root), lab_id, str(item.source))))

    def finished(task: Task, outcome: Outcome) -> None:
        if outcome.ok:
            body = outcome.value
        elif outcome.kind == "timeout":
            body = {**worker.error_record("timeout", outcome.value), "duration_s": timeout_s}
        else:
            body = worker.error_record("grader", outcome.value)
        record = flagged({**base[task.key], "graded_at": _now(), **body})
        store.write(record)  # at once: a later crash or Ctrl-C never loses it
        done[task.key] = record
        run.graded += 1
        if on_progress:
            on_progress(record, False)

    worker.prepare(str(course.root))  # the forkserver loads this course's graders once, before any fork
    run_tasks(tasks, jobs, timeout_s, finished)
    run.records = [done[i.learner] for i in inputs]
    run.report = reports.write_all(out, run.records, lab_id, lab.title, lab.points,
                                   {"graded": run.graded, "skipped": run.skipped, "jobs": jobs,
                                    "timeout_s": timeout_s, "mode": mode})
    return run
