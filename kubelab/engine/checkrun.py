"""What happens to one check instance, whoever drives it: the single source of truth for statuses,
blocked/skipped by `needs`, polling on the engine's (possibly virtual) clock, and the CheckResult.

Two drivers call it: the pytest plugin (live grading and `--record`, kubelab.engine.plugin) and the direct
runner (replay, kubelab.engine.direct). A driver only finds the checks, builds their fixtures and calls
`run` (or `setup_failed` when a fixture could not be built), in the same order."""

from __future__ import annotations

import sys
import time
from typing import Any, Callable

from kubelab.engine.checks import ENGINE_TIME, CheckFailed, CheckSpec
from kubelab.engine.results import CheckResult, Status

CLUSTER = "cluster"


def is_skip(exc: BaseException) -> bool:
    """pytest.skip() raises _pytest.outcomes.Skipped; a grader can only raise it once pytest is imported,
    so a replay whose graders never import pytest never loads it either."""
    outcomes = sys.modules.get("_pytest.outcomes")
    return outcomes is not None and isinstance(exc, outcomes.Skipped)


def one_line(exc: BaseException | None) -> str:
    text = str(exc).strip() if exc is not None else ""
    return text.splitlines()[0] if text else (type(exc).__name__ if exc is not None else "")


def failure_message(what: str | None, wait_s: float) -> str | None:
    """What a failed check looked at (the grader's `what`), and how long the engine waited for it to come true:
    expected and actual alone do not say which object or file they are about."""
    waited = f"still not so after waiting {wait_s:g}s" if wait_s else ""
    return ": ".join(part for part in (what, waited) if part) or None


def _skip_message(exc: BaseException) -> str:
    return str(getattr(exc, "msg", exc))


def _new_result(spec: CheckSpec, node: str, status: Status = Status.PASS) -> CheckResult:
    return CheckResult(id=f"{spec.name}[{node}]", check=spec.name, title=spec.title, node=node,
                       status=status, points=0.0, max_points=spec.points, hint=spec.hint)


class CheckRunner:
    """The results of one lab run so far, and the rules that turn a check call into its result."""

    def __init__(self, clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep):
        self.results: list[CheckResult] = []
        self.clock = clock
        self.sleep = sleep

    def run(self, fn: Callable, args: dict[str, Any], spec: CheckSpec, node: str) -> CheckResult:
        result = _new_result(spec, node)
        started = self.clock()
        blockers = self._blockers(spec, node)
        skipped = self._skipped_needs(spec, node)
        if skipped:  # what it builds on does not apply here (e.g. another CNI): neither does this check
            result.status, result.max_points = Status.SKIPPED, spec.points
            result.message = skipped[0].message or f"{skipped[0].id} does not apply"
        elif blockers:
            result.status = Status.BLOCKED
            result.blocked_by = blockers
            result.message = "blocked by " + ", ".join(blockers)
        else:
            token = ENGINE_TIME.set((self.clock, self.sleep))
            try:
                self._call(fn, args, spec, result)
            finally:
                ENGINE_TIME.reset(token)
        result.duration_s = round(self.clock() - started, 3)
        self.results.append(result)
        return result

    def setup_failed(self, spec: CheckSpec, node: str, exc: BaseException | None, skipped: bool,
                     outcome: str = "failed") -> CheckResult:
        """A fixture could not be built, so the check never ran: an error (or skipped, if it said so)."""
        result = _new_result(spec, node, Status.SKIPPED if skipped else Status.ERROR)
        result.message = one_line(exc) if exc is not None else outcome
        self.results.append(result)
        return result

    # -- needs ------------------------------------------------------------------------------------
    def _relevant(self, need: str, node: str) -> list[CheckResult]:
        ran = [r for r in self.results if r.check == need]
        return [r for r in ran if r.node == node] or ran

    def _skipped_needs(self, spec: CheckSpec, node: str) -> list[CheckResult]:
        return [r for need in spec.needs for r in self._relevant(need, node) if r.status is Status.SKIPPED]

    def _blockers(self, spec: CheckSpec, node: str) -> list[str]:
        blockers = []
        for need in spec.needs:
            relevant = self._relevant(need, node)
            if not relevant:
                blockers.append(f"{need} (not run)")
            blockers += [r.id for r in relevant if r.status is not Status.PASS]
        return blockers

    # -- one call, polled until it passes or wait_s runs out ----------------------------------------
    def _call(self, fn: Callable, args: dict, spec: CheckSpec, result: CheckResult) -> None:
        deadline = self.clock() + spec.wait_s
        while True:
            try:
                fn(**args)
            except CheckFailed as e:
                if self.clock() < deadline:
                    self.sleep(spec.interval_s)
                    continue
                result.status, result.expected, result.actual = Status.FAIL, e.expected, e.actual
                result.message = failure_message(e.what, spec.wait_s)
            except AssertionError as e:
                if self.clock() < deadline:
                    self.sleep(spec.interval_s)
                    continue
                result.status = Status.FAIL
                result.expected = "the check's condition to hold"
                result.actual = one_line(e) or "it did not"
            except Exception as e:  # noqa: BLE001 - every other exception is "could not observe"
                from kubelab.engine.targets import infrastructure_error

                infra = infrastructure_error(e)
                result.status = Status.ERROR
                if infra is not None:
                    result.message = infra.problem + (f" (fix: {infra.fix})" if infra.fix else "")
                else:
                    # a bug in the grader, not in the learner's work: never scored as their zero
                    result.message = f"grader error: {type(e).__name__}: {one_line(e)}"
            except BaseException as e:
                if not is_skip(e):
                    raise
                result.status, result.message, result.max_points = Status.SKIPPED, _skip_message(e), spec.points
            else:
                result.status, result.points = Status.PASS, spec.points
            return
