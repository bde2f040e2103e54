"""The pytest plugin behind `kubelab grade`: fixtures per node, and a status for every check.

Graders stay plain pytest modules. The plugin parametrizes each check over the nodes its `on`
selects, hands it a testinfra host for that node, and lets kubelab.engine.checkrun turn what happens
into a CheckResult: pass, fail (expected/actual/hint), blocked (names what it waited on), error (could
not observe) or skipped. pytest itself never sees a failure, so its own reporting stays silent.
Replays take the direct driver (kubelab.engine.direct) instead: same checks, same fixtures, same rules."""

from __future__ import annotations

import time
from typing import Any

import pytest

from kubelab.course import LoadedCourse, Node
from kubelab.engine.checkrun import CLUSTER, CheckRunner
from kubelab.engine.checks import CheckSpec, spec_of
from kubelab.engine.fixtures import Fixtures, argnames, check_nodes
from kubelab.engine.kube import Kube
from kubelab.engine.results import CheckResult
from kubelab.engine.targets import Target


class KubelabPlugin:
    def __init__(self, course: LoadedCourse, target: Target, lab_id: str, clock=time.monotonic, sleep=time.sleep):
        self._course = course
        self._target = target
        self._runner = CheckRunner(clock, sleep)
        self.results: list[CheckResult] = self._runner.results
        self.collect_problems: list[str] = []
        self._fixtures = Fixtures(course, target, lab_id)

    # -- fixtures: pytest's wrappers around the engine's own (kubelab.engine.fixtures) --------------
    @pytest.fixture
    def host(self, request):
        """The testinfra host of the node this check instance runs on."""
        return self._fixtures.host(request.param)

    @pytest.fixture
    def node(self, request) -> Node:
        """The course.yaml entry of the node this check instance runs on."""
        return self._fixtures.node(request.node.callspec.params["host"])

    @pytest.fixture
    def hosts(self) -> dict[str, Any]:
        """Every node's testinfra host by name, for checks that compare nodes."""
        return self._fixtures.hosts()

    @pytest.fixture
    def course(self):
        """The validated course.yaml."""
        return self._fixtures.course()

    @pytest.fixture
    def kube(self) -> Kube:
        """The official kubernetes client, from the control plane's admin kubeconfig (lazy)."""
        return self._fixtures.kube()

    @pytest.fixture
    def answers(self):
        """The answers the learner recorded for this lab with `%answer` (kubelab.engine.answers)."""
        return self._fixtures.answers()

    # -- collection ----------------------------------------------------------------------------
    def pytest_generate_tests(self, metafunc: pytest.Metafunc) -> None:
        spec = spec_of(metafunc.function)
        if spec is None:
            return
        nodes = check_nodes(spec, argnames(metafunc.function), self._course.model)
        if nodes != [CLUSTER]:
            metafunc.parametrize("host", nodes, indirect=True, ids=nodes)

    def pytest_collectreport(self, report) -> None:
        if report.failed:
            self.collect_problems.append(str(report.longrepr).strip().splitlines()[-1])

    def pytest_collection_modifyitems(self, items: list) -> None:
        for item in items:
            if spec_of(getattr(item, "function", None)) is None:
                self.collect_problems.append(f"{item.name} is a test without @check")

    # -- running: the checkrun module decides; this hook only hands it the check and its fixtures ---
    @pytest.hookimpl(tryfirst=True)
    def pytest_pyfunc_call(self, pyfuncitem) -> bool:
        spec: CheckSpec = spec_of(pyfuncitem.function)
        args = {name: pyfuncitem.funcargs[name] for name in pyfuncitem._fixtureinfo.argnames}
        self._runner.run(pyfuncitem.obj, args, spec, _node_of(pyfuncitem))
        return True

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_makereport(self, item, call):
        outcome = yield
        report = outcome.get_result()
        # A fixture that failed to set up never reaches pytest_pyfunc_call: record it as an error.
        if report.when == "setup" and report.outcome != "passed":
            spec = spec_of(getattr(item, "function", None))
            if spec is not None:
                exc = call.excinfo.value if call.excinfo else None
                self._runner.setup_failed(spec, _node_of(item), exc, skipped=report.skipped, outcome=report.outcome)


def _node_of(item) -> str:
    return item.callspec.params.get("host", CLUSTER) if hasattr(item, "callspec") else CLUSTER
