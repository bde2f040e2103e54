"""One JSON file per learner in OUT/learners/, written the moment that learner is graded.

A learner record:

    {"learner": "alice", "lab": "lab01", "mode": "evidence" | "live", "source": "<file>",
     "input_digest": "sha256:…", "graded_at": "…", "duration_s": 0.4,
     "status": "passed" | "failed" | "flagged" | "error" | "missing",
     "graded_status": "passed" | "failed" (only when flagged), "flags": [reasons] (evidence only),
     "error_kind": null | "infrastructure" | "evidence" | "ssh-config" | "grader" | "timeout",
     "reason": null | "one line", "score": 7.5 | null, "max": 10, "raw_score": 18, "raw_max": 24,
     "identity": {…from the evidence…} | null, "result": {…the LabResult…} | null}

`score` is scaled to the lab's points in course.yaml (what nbgrader records); it is null for an
error — a learner the grader could not grade has no score, never a zero.

Resume: `input_digest` covers everything the grade depends on — the lab, the mode, the bytes of the
learner's evidence file or ssh-config, course.yaml, the grader module and the kubelab version. A
re-run skips a learner whose record has the same digest and is not an error (errors are retried:
they are usually passing troubles, an unreachable node or a timeout); `--force` regrades everyone."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import kubelab
from kubelab.classroom.learners import LearnerInput, file_digest
from kubelab.course import LoadedCourse


def context_digest(course: LoadedCourse, lab_id: str) -> str:
    """What every learner's grade of this lab depends on, apart from the learner's own input."""
    grader = course.grader_path(lab_id)
    parts = [kubelab.__version__, lab_id, file_digest(course.path),
             file_digest(grader) if grader.is_file() else "no grader"]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


def input_digest(context: str, item: LearnerInput) -> str:
    return "sha256:" + hashlib.sha256("\n".join([context, item.kind, item.digest]).encode()).hexdigest()


class LearnerStore:
    def __init__(self, out: Path):
        self.out = Path(out)
        self.folder = self.out / "learners"

    def path(self, learner: str) -> Path:
        if learner.startswith(".") or "/" in learner or "\0" in learner or len(learner.encode()) > 200:
            # a name no file can carry (an error row for a strange folder name): a stable stand-in
            learner = "_" + hashlib.sha256(learner.encode()).hexdigest()[:24]
        return self.folder / f"{learner}.json"

    def read(self, learner: str) -> dict | None:
        """The learner's record, or None when there is none or it cannot be read (then it is regraded)."""
        try:
            data = json.loads(self.path(learner).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) else None

    def write(self, record: dict) -> Path:
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.path(record["learner"])
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(record, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
        tmp.replace(path)  # a reader (or a crash) never sees half a record
        return path

    @staticmethod
    def reusable(record: dict | None, digest: str) -> bool:
        return bool(record) and record.get("input_digest") == digest and record.get("status") != "error"
