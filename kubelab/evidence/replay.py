"""Replay: a Target that answers every observation from an evidence file, and nothing else.

An observation the evidence lacks raises NotInEvidence, which the engine reports as that check's
`error` — never a silent pass, never the learner's zero."""

from __future__ import annotations

import json
from types import SimpleNamespace
from typing import Any

from testinfra.backend.base import BaseBackend, CommandResult

from kubelab.course import LoadedCourse
from kubelab.engine.targets import Target
from kubelab.errors import InfrastructureError
from kubelab.evidence.model import ApiObservation, CommandObservation, Evidence
from kubelab.evidence.record import api_key


class NotInEvidence(InfrastructureError):
    def __init__(self, what: str):
        super().__init__(f"not in evidence: {what}",
                         "the evidence was recorded by a different grader version, or is incomplete: record it again")


class _Sequence:
    """Answers for one key in recorded order; a key asked more often than recorded gets the last answer
    (a polling check in replay sees the state it saw last, at once)."""

    def __init__(self):
        self.items: list = []
        self.next = 0

    def take(self):
        item = self.items[min(self.next, len(self.items) - 1)]
        self.next += 1
        return item


class ReplayClock:
    """Virtual time for a replay: a check that polls (`wait_s`) gets its recorded answers in order at once,
    instead of sleeping between them as the live run had to. Pass as run_lab(..., clock=c.now, sleep=c.sleep)."""

    def __init__(self):
        self.t = 0.0

    def now(self) -> float:
        return self.t

    def sleep(self, seconds: float) -> None:
        self.t += max(0.0, seconds)


class ReplayBackend(BaseBackend):
    NAME = "kubelab-replay"

    def __init__(self, node: str, observations: list[CommandObservation], stats, **kwargs: Any):
        super().__init__(node, **kwargs)
        self.node = node
        self.stats = stats
        self.answers: dict[str, _Sequence] = {}
        for obs in observations:
            self.answers.setdefault(obs.cmd, _Sequence()).items.append(obs)

    def run(self, command: str, *args: str, **kwargs: Any) -> CommandResult:
        cmd = self.get_command(command, *args)
        self.stats.commands_sent += 1
        if cmd not in self.answers:
            raise NotInEvidence(f"`{cmd[:100]}` on {self.node}")
        obs = self.answers[cmd].take()
        return self.result(obs.rc, self.encode(cmd), obs.stdout.encode(), obs.stderr.encode())


class ReplayTarget(Target):
    def __init__(self, course: LoadedCourse, evidence: Evidence, source: str = "evidence"):
        super().__init__(course)
        self.evidence = evidence
        self.description = f"{source} (recorded {evidence.recorded_at} from {evidence.target})"
        self._api: dict[tuple, _Sequence] = {}
        for obs in evidence.api:
            self._api.setdefault(api_key(obs.method, obs.path, obs.body), _Sequence()).items.append(obs)

    def _backend(self, node: str) -> BaseBackend:
        return ReplayBackend(node, self.evidence.nodes.get(node, []), self.stats)

    def _answer(self, method: str, url: str, body: Any) -> ApiObservation:
        key = api_key(method, url, body)
        if key not in self._api:
            raise NotInEvidence(f"{key[0]} {key[1]}")
        return self._api[key].take()

    def api_requester(self):
        def request(method: str, path: str) -> tuple[int, str]:
            obs = self._answer(method, path, None)
            return obs.status, obs.data

        return request

    def api_client(self, kubeconfig: dict):
        from kubernetes.client import ApiClient, Configuration
        from kubernetes.client.rest import RESTResponse

        client = ApiClient(Configuration(host="https://replayed-from-evidence"))

        def request(method, url, headers=None, body=None, post_params=None, _request_timeout=None):
            obs = self._answer(method, url, body)
            raw = SimpleNamespace(status=obs.status, reason="replayed", data=obs.data.encode(),
                                  headers={"content-type": "application/json"})
            return RESTResponse(raw)

        client.rest_client.request = request
        return client


def json_or_text(text: str):
    try:
        return json.loads(text)
    except ValueError:
        return text
