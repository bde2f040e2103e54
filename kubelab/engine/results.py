"""What a grading run produces: one CheckResult per check and node, one LabResult per lab."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from enum import Enum


class Status(str, Enum):
    PASS = "pass"
    FAIL = "fail"          # the learner's state is wrong: expected vs actual, and a hint
    BLOCKED = "blocked"    # a check this one needs did not pass: it names that check
    ERROR = "error"        # the grader could not observe (unreachable, timeout, grader bug): never the learner's zero
    SKIPPED = "skipped"    # not applicable to what is in front of the grader (e.g. needs a newer Kubernetes)

    def __str__(self) -> str:
        return self.value


# exit codes of `kubelab grade`
EXIT_PASSED, EXIT_FAILED, EXIT_USAGE, EXIT_INFRA = 0, 1, 2, 3


@dataclass
class CheckResult:
    id: str                 # e.g. "swap_off_now[worker]"
    check: str              # the check's name without the node: "swap_off_now"
    title: str
    node: str               # a node name, or "cluster" for checks that look at the whole cluster
    status: Status
    points: float
    max_points: float
    hint: str
    expected: str | None = None
    actual: str | None = None
    blocked_by: list[str] = field(default_factory=list)
    message: str | None = None  # for error/skipped: why
    duration_s: float = 0.0

    def to_dict(self) -> dict:
        # every field is a plain value but blocked_by: dataclasses.asdict's deep copy cost more than a replay's checks
        d = {f.name: getattr(self, f.name) for f in _FIELDS}
        d["status"] = str(self.status)
        d["blocked_by"] = list(self.blocked_by)
        return d


_FIELDS = fields(CheckResult)


@dataclass
class LabResult:
    lab: str
    title: str
    target: str
    started_at: str
    duration_s: float
    checks: list[CheckResult]

    @property
    def score(self) -> float:
        return round(sum(c.points for c in self.checks), 3)

    @property
    def max_score(self) -> float:
        # a skipped check is not applicable: it neither earns nor costs points
        return round(sum(c.max_points for c in self.checks if c.status is not Status.SKIPPED), 3)

    @property
    def status(self) -> str:
        statuses = {c.status for c in self.checks}
        if Status.ERROR in statuses:
            return "error"
        if statuses & {Status.FAIL, Status.BLOCKED}:
            return "failed"
        return "passed"

    @property
    def exit_code(self) -> int:
        return {"passed": EXIT_PASSED, "failed": EXIT_FAILED, "error": EXIT_INFRA}[self.status]

    def count(self, status: Status) -> int:
        return sum(1 for c in self.checks if c.status is status)

    def to_dict(self) -> dict:
        return {
            "lab": self.lab,
            "title": self.title,
            "score": self.score,
            "max_score": self.max_score,
            "status": self.status,
            "target": self.target,
            "started_at": self.started_at,
            "duration_s": round(self.duration_s, 3),
            "checks": [c.to_dict() for c in self.checks],
        }
