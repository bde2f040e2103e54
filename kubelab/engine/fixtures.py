"""The engine's fixtures (what a check may ask for by parameter name) and the nodes a check runs on.

Both drivers use these: the pytest plugin wraps each as a pytest fixture, the direct runner calls them.
A check asks for fixtures by parameter name, as in pytest: `host` (its node's testinfra host; one check
instance per node its `on` selects), `node` (that node's course.yaml entry), `hosts` (every node's host by
name), `course` (course.yaml), `kube` (the Kubernetes client of the control plane, lazy) and `answers` (what the
learner recorded with `%answer` for the lab being graded, read from the control plane; kubelab.engine.answers)."""

from __future__ import annotations

import inspect
from typing import Any, Callable

from kubelab.engine.checkrun import CLUSTER
from kubelab.engine.checks import CheckSpec
from kubelab.errors import KubelabError, UsageError

FIXTURES = ("host", "hosts", "node", "course", "kube", "answers")


def argnames(fn: Callable) -> tuple[str, ...]:
    """The fixtures a check asks for: its parameters without a default, as pytest reads them."""
    params = inspect.signature(fn).parameters.values()
    return tuple(p.name for p in params if p.default is p.empty
                 and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY))


def check_nodes(spec: CheckSpec, names: tuple[str, ...], course) -> list[str]:
    """Where one instance of the check runs: each node `on` selects if it takes `host`, else the cluster once.
    A check that asks for something the engine does not provide is the grader's error, in both drivers."""
    unknown = [n for n in names if n not in FIXTURES]
    if unknown:
        raise UsageError(f"check {spec.name} asks for {', '.join(map(repr, unknown))}, which the engine does not "
                         "provide", f"take only {', '.join(FIXTURES)}")
    if "host" not in names:
        if "node" in names:
            raise UsageError(f"check {spec.name} asks for `node` without `host`",
                             "take `host` too (one instance per node), or `course` for every node")
        return [CLUSTER]
    if spec.on == CLUSTER:
        raise UsageError(f"check {spec.name} runs on the cluster but asks for `host`",
                         "take `hosts` or `kube`, or set on= to nodes")
    try:
        return [n.name for n in course.select_nodes(spec.on)]
    except KubelabError as e:
        raise UsageError(f"check {spec.name}: on={spec.on!r}: {e.problem}", e.fix)


class Fixtures:
    """One lab run's fixture values; hosts and the Kubernetes client are built once per run."""

    def __init__(self, loaded_course, target, lab_id: str):
        self._course = loaded_course
        self._target = target
        self._lab_id = lab_id
        self._kube = None
        self._answers = None

    def host(self, node: str):
        return self._target.host(node)

    def node(self, node: str):
        return self._course.model.node(node)

    def hosts(self) -> dict[str, Any]:
        return {n.name: self._target.host(n.name) for n in self._course.model.nodes}

    def course(self):
        return self._course.model

    def kube(self):
        if self._kube is None:
            from kubelab.engine.kube import Kube

            cp = self._course.model.control_plane
            self._kube = Kube(self._target.host(cp.name), cp.name, client_factory=self._target.api_client)
        return self._kube

    def answers(self):
        if self._answers is None:
            from kubelab.engine.answers import Answers

            m = self._course.model
            cp = m.control_plane
            self._answers = Answers(self._lab_id, m.lab_user, self._target.host(cp.name), cp.name)
        return self._answers

    def values(self, names: tuple[str, ...], node: str) -> dict[str, Any]:
        """The arguments of one check instance, built in the order asked (as pytest sets them up)."""
        per_node = {"host": self.host, "node": self.node}
        return {n: per_node[n](node) if n in per_node else getattr(self, n)() for n in names}
