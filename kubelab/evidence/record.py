"""Recording: a Target wrapper that writes down every observation as the grader makes it.

The grader is handed the redacted observation, not the raw one, so the live result and the result
replayed from the evidence are the same by construction."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlsplit

import testinfra.host
from testinfra.backend.base import BaseBackend, CommandResult

from kubelab.engine.targets import Target
from kubelab.evidence.model import ApiObservation, CommandObservation
from kubelab.evidence.redact import redact


class RecordingBackend(BaseBackend):
    NAME = "kubelab-record"

    def __init__(self, inner: BaseBackend, log: list[CommandObservation], **kwargs: Any):
        super().__init__(inner.hostname, **kwargs)
        self.inner = inner
        self.log = log

    def run(self, command: str, *args: str, **kwargs: Any) -> CommandResult:
        cmd = self.get_command(command, *args)  # sudo applied here, once; the inner backend runs it as is
        live = self.inner.run(cmd)
        # the command is the context: `cat` of a token file prints a bare token, any other line of hex is not one
        obs = CommandObservation(cmd=cmd, rc=live.rc, stdout=redact(live.stdout, cmd), stderr=redact(live.stderr, cmd))
        self.log.append(obs)
        return self.result(obs.rc, self.encode(cmd), obs.stdout.encode(), obs.stderr.encode())

    def close(self) -> None:
        close = getattr(self.inner, "close", None)
        if close:
            close()


def api_key(method: str, url: str, body: Any) -> tuple[str, str, str]:
    parts = urlsplit(url)
    path = parts.path + (f"?{parts.query}" if parts.query else "")
    return method.upper(), path, json.dumps(body, sort_keys=True, default=str)


class RecordingTarget(Target):
    def __init__(self, inner: Target):
        super().__init__(inner.course)
        self.inner = inner
        self.stats = inner.stats
        self.description = inner.description
        self.commands: dict[str, list[CommandObservation]] = {}
        self.api: list[ApiObservation] = []

    def _backend(self, node: str) -> BaseBackend:
        return RecordingBackend(self.inner.host(node).backend, self.commands.setdefault(node, []))

    def host(self, node: str) -> testinfra.host.Host:
        return super().host(node)

    def api_client(self, kubeconfig: dict):
        # The grader saw the redacted kubeconfig (no client key): the connection itself needs the real
        # one, read again through the inner target, unrecorded, and never written anywhere.
        client = self.inner.api_client(self._raw_kubeconfig() or kubeconfig)
        rest = client.rest_client
        real_request = rest.request

        def request(method, url, headers=None, body=None, post_params=None, _request_timeout=None):
            response = real_request(method, url, headers=headers, body=body, post_params=post_params,
                                    _request_timeout=_request_timeout)
            data = response.read()
            text = data.decode("utf-8", "replace") if isinstance(data, bytes) else str(data)
            m, path, _ = api_key(method, url, body)
            self.api.append(ApiObservation(method=m, path=path, body=body, status=response.status,
                                           data=redact(text)))
            return response

        rest.request = request
        return client

    def _raw_kubeconfig(self) -> dict | None:
        import yaml

        from kubelab.engine.kube import ADMIN_KUBECONFIG
        from kubelab.engine.yamldata import load_yaml

        cp = self.course.model.control_plane.name
        raw = self.inner.host(cp).run("sudo -n cat %s", ADMIN_KUBECONFIG)
        try:
            data = load_yaml(raw.stdout) if raw.rc == 0 else None
        except yaml.YAMLError:
            return None
        return data if isinstance(data, dict) else None

    def close(self) -> None:
        self.inner.close()
