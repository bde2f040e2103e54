"""The pytest plugin behind `kubelab grade`: fixtures per node, and a status for every check.

Graders stay plain pytest modules. The plugin parametrizes each check over the nodes its `on`
selects, hands it a testinfra host for that node, and turns what happens into a CheckResult:
pass, fail (expected/actual/hint), blocked (names what it waited on), error (could not observe)
or skipped. pytest itself never sees a failure, so its own reporting stays silent."""

from __future__ import annotations

import time
from typing import Any

import pytest

from kubelab.course import LoadedCourse, Node
from kubelab.engine.checks import ENGINE_TIME, CheckFailed, CheckSpec, spec_of
from kubelab.engine.kube import Kube
from kubelab.engine.results import CheckResult, Status
from kubelab.engine.targets import Target, infrastructure_error
from kubelab.errors import KubelabError, UsageError

CLUSTER = "cluster"


class KubelabPlugin:
    def __init__(self, course: LoadedCourse, target: Target, clock=time.monotonic, sleep=time.sleep):
        self._course = course
        self._target = target
        self.results: list[CheckResult] = []
        self.collect_problems: list[str] = []
        self._clock = clock
        self._sleep = sleep
        self._kube: Kube | None = None

    # -- fixtures ----------------------------------------------------------------------------
    @pytest.fixture
    def host(self, request):
        """The testinfra host of the node this check instance runs on."""
        return self._target.host(request.param)

    @pytest.fixture
    def node(self, request) -> Node:
        """The course.yaml entry of the node this check instance runs on."""
        return self._course.model.node(request.node.callspec.params["host"])

    @pytest.fixture
    def hosts(self) -> dict[str, Any]:
        """Every node's testinfra host by name, for checks that compare nodes."""
        return {n.name: self._target.host(n.name) for n in self._course.model.nodes}

    @pytest.fixture
    def course(self):
        """The validated course.yaml."""
        return self._course.model

    @pytest.fixture
    def kube(self) -> Kube:
        """The official kubernetes client, from the control plane's admin kubeconfig (lazy)."""
        if self._kube is None:
            cp = self._course.model.control_plane
            self._kube = Kube(self._target.host(cp.name), cp.name, client_factory=self._target.api_client)
        return self._kube

    # -- collection ----------------------------------------------------------------------------
    def pytest_generate_tests(self, metafunc: pytest.Metafunc) -> None:
        spec = spec_of(metafunc.function)
        if spec is None:
            return
        if "host" in metafunc.fixturenames:
            if spec.on == CLUSTER:
                raise UsageError(f"check {spec.name} runs on the cluster but asks for `host`",
                                 "take `hosts` or `kube`, or set on= to nodes")
            try:
                nodes = self._course.model.select_nodes(spec.on)
            except KubelabError as e:
                raise UsageError(f"check {spec.name}: on={spec.on!r}: {e.problem}", e.fix)
            metafunc.parametrize("host", [n.name for n in nodes], indirect=True, ids=[n.name for n in nodes])

    def pytest_collectreport(self, report) -> None:
        if report.failed:
            self.collect_problems.append(str(report.longrepr).strip().splitlines()[-1])

    def pytest_collection_modifyitems(self, items: list) -> None:
        for item in items:
            if spec_of(getattr(item, "function", None)) is None:
                self.collect_problems.append(f"{item.name} is a test without @check")

    # -- running -------------------------------------------------------------------------------
    @pytest.hookimpl(tryfirst=True)
    def pytest_pyfunc_call(self, pyfuncitem) -> bool:
        spec: CheckSpec = spec_of(pyfuncitem.function)
        node = pyfuncitem.callspec.params.get("host", CLUSTER) if hasattr(pyfuncitem, "callspec") else CLUSTER
        result = CheckResult(id=f"{spec.name}[{node}]", check=spec.name, title=spec.title, node=node,
                             status=Status.PASS, points=0.0, max_points=spec.points, hint=spec.hint)
        started = self._clock()
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
            args = {name: pyfuncitem.funcargs[name] for name in pyfuncitem._fixtureinfo.argnames}
            token = ENGINE_TIME.set((self._clock, self._sleep))
            try:
                self._run(pyfuncitem.obj, args, spec, result)
            finally:
                ENGINE_TIME.reset(token)
        result.duration_s = round(self._clock() - started, 3)
        self.results.append(result)
        return True

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_makereport(self, item, call):
        outcome = yield
        report = outcome.get_result()
        # A fixture that failed to set up never reaches pytest_pyfunc_call: record it as an error.
        if report.when == "setup" and report.outcome != "passed":
            spec = spec_of(getattr(item, "function", None))
            if spec is not None:
                node = item.callspec.params.get("host", CLUSTER) if hasattr(item, "callspec") else CLUSTER
                exc = call.excinfo.value if call.excinfo else None
                status = Status.SKIPPED if report.skipped else Status.ERROR
                self.results.append(CheckResult(
                    id=f"{spec.name}[{node}]", check=spec.name, title=spec.title, node=node, status=status,
                    points=0.0, max_points=spec.points, hint=spec.hint,
                    message=_one_line(exc) if exc else report.outcome))

    def _relevant(self, need: str, node: str) -> list[CheckResult]:
        ran = [r for r in self.results if r.check == need]
        return [r for r in ran if r.node == node] or ran

    def _skipped_needs(self, spec: CheckSpec, node: str) -> list[CheckResult]:
        return [r for need in spec.needs for r in self._relevant(need, node) if r.status is Status.SKIPPED]

    def _blockers(self, spec: CheckSpec, node: str) -> list[str]:
        blockers = []
        for need in spec.needs:
            ran = [r for r in self.results if r.check == need]
            same_node = [r for r in ran if r.node == node]
            relevant = same_node or ran
            if not relevant:
                blockers.append(f"{need} (not run)")
            blockers += [r.id for r in relevant if r.status is not Status.PASS]
        return blockers

    def _run(self, fn, args: dict, spec: CheckSpec, result: CheckResult) -> None:
        deadline = self._clock() + spec.wait_s
        while True:
            try:
                fn(**args)
            except CheckFailed as e:
                if self._clock() < deadline:
                    self._sleep(spec.interval_s)
                    continue
                result.status, result.expected, result.actual = Status.FAIL, e.expected, e.actual
                if spec.wait_s:
                    result.message = f"still not so after waiting {spec.wait_s:g}s"
            except AssertionError as e:
                if self._clock() < deadline:
                    self._sleep(spec.interval_s)
                    continue
                result.status = Status.FAIL
                result.expected = "the check's condition to hold"
                result.actual = _one_line(e) or "it did not"
            except pytest.skip.Exception as e:
                result.status, result.message, result.max_points = Status.SKIPPED, str(e.msg), spec.points
            except Exception as e:  # noqa: BLE001 - every other exception is "could not observe"
                infra = infrastructure_error(e)
                result.status = Status.ERROR
                if infra is not None:
                    result.message = infra.problem + (f" (fix: {infra.fix})" if infra.fix else "")
                else:
                    # a bug in the grader, not in the learner's work: never scored as their zero
                    result.message = f"grader error: {type(e).__name__}: {_one_line(e)}"
            else:
                result.status, result.points = Status.PASS, spec.points
            return


def _one_line(exc: BaseException | None) -> str:
    text = str(exc).strip() if exc is not None else ""
    return text.splitlines()[0] if text else (type(exc).__name__ if exc is not None else "")
