"""How the grader reaches the nodes: the one swappable seam.

A Target hands out one testinfra backend per node. Checks only see testinfra hosts
(`host.file`, `host.service`, `host.run`), so they never know whether the node is reached
over SSH, is this very machine, or (later) is replayed from recorded evidence.
"""

from __future__ import annotations

import select
import socket
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import testinfra.host
from testinfra.backend.base import BaseBackend, CommandResult
from testinfra.backend.local import LocalBackend

if TYPE_CHECKING:
    import paramiko

    from kubelab.sshconfig import SshTarget

from kubelab.course import LoadedCourse
from kubelab.errors import InfrastructureError, KubelabError

COMMAND_TIMEOUT_S = 60.0


@dataclass
class Stats:
    """What a run cost: the benchmark prints it, a test checks one connection per node."""

    connections_opened: int = 0
    commands_sent: int = 0


class SshBackend(BaseBackend):
    """One paramiko connection per node, opened on first use and reused by every command.
    A node that could not be reached is not retried within the run: every later check on it
    gets the same infrastructure error at once."""

    NAME = "kubelab-ssh"

    def __init__(self, target: SshTarget, stats: Stats, command_timeout_s: float = COMMAND_TIMEOUT_S, **kwargs: Any):
        super().__init__(target.alias, **kwargs)
        self.target = target
        self.stats = stats
        self.command_timeout_s = command_timeout_s
        self._client: paramiko.SSHClient | None = None
        self._failure: InfrastructureError | None = None

    def get_pytest_id(self) -> str:
        return self.target.alias

    def _connection(self) -> paramiko.SSHClient:
        if self._failure is not None:
            raise self._failure
        if self._client is None or not (self._client.get_transport() and self._client.get_transport().is_active()):
            from kubelab.sshconfig import connect

            try:
                self.stats.connections_opened += 1
                self._client = connect(self.target)
            except InfrastructureError as e:
                self._failure = e
                raise
        return self._client

    def run(self, command: str, *args: str, **kwargs: Any) -> CommandResult:
        import paramiko

        cmd = self.get_command(command, *args)
        client = self._connection()
        self.stats.commands_sent += 1
        try:
            rc, out, err = self._exec(client, cmd)
        except (paramiko.SSHException, OSError, EOFError) as e:
            self._failure = InfrastructureError(f"lost the SSH connection to {self.target.alias}: {e or type(e).__name__}",
                                                "is the node still up? re-run the grader")
            raise self._failure
        return self.result(rc, self.encode(cmd), out, err)

    def _exec(self, client: paramiko.SSHClient, cmd: str) -> tuple[int, bytes, bytes]:
        transport = client.get_transport()
        assert transport is not None
        chan = transport.open_session(timeout=self.command_timeout_s)
        try:
            chan.exec_command(cmd)
            out, err = bytearray(), bytearray()
            deadline = time.monotonic() + self.command_timeout_s
            while True:
                while chan.recv_ready():
                    out += chan.recv(65536)
                while chan.recv_stderr_ready():
                    err += chan.recv_stderr(65536)
                # Done only once the server sent EOF too: sshd may send the exit status before the last
                # of the output (a short command under load), which would otherwise be lost.
                if (chan.exit_status_ready() and (chan.eof_received or chan.closed)
                        and not chan.recv_ready() and not chan.recv_stderr_ready()):
                    break
                if time.monotonic() > deadline:
                    raise InfrastructureError(
                        f"a command on {self.target.alias} gave no answer within {self.command_timeout_s:g}s: {cmd[:80]}",
                        "the node may be overloaded or hung; check it and re-run the grader")
                select.select([chan], [], [], 0.05)
            return chan.recv_exit_status(), bytes(out), bytes(err)
        finally:
            chan.close()

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None


class CountingLocalBackend(LocalBackend):
    """This machine stands for a node (a grader running on the node itself)."""

    def __init__(self, stats: Stats, **kwargs: Any):
        super().__init__(**kwargs)
        self.stats = stats

    def run(self, command: str, *args: str, **kwargs: Any) -> CommandResult:
        self.stats.commands_sent += 1
        return super().run(command, *args, **kwargs)


class Target:
    """Base: a testinfra Host per node name, built once per run."""

    description = "?"

    def __init__(self, course: LoadedCourse):
        self.course = course
        self.stats = Stats()
        self._hosts: dict[str, testinfra.host.Host] = {}

    def _backend(self, node: str) -> BaseBackend:  # pragma: no cover - abstract
        raise NotImplementedError

    def host(self, node: str) -> testinfra.host.Host:
        if node not in self._hosts:
            backend = self._backend(node)
            host = testinfra.host.Host(backend)
            backend.set_host(host)
            self._hosts[node] = host
        return self._hosts[node]

    def api_client(self, kubeconfig: dict):
        """The Kubernetes API client for this target (live: from the kubeconfig, at the control plane's IP from
        course.yaml when the kubeconfig names the server by a DNS name this host may not resolve)."""
        from kubelab.engine.kube import live_api_client, pinned_to_ip

        return live_api_client(pinned_to_ip(kubeconfig, str(self.course.model.control_plane.ip)))

    def api_requester(self):
        """(method, path) -> (status, text) for a target that answers API reads itself (replay), else None: the
        official client then makes every request."""
        return None

    def close(self) -> None:
        for h in self._hosts.values():
            close = getattr(h.backend, "close", None)
            if close:
                close()
        self._hosts.clear()


class SshConfigTarget(Target):
    """Nodes described by an ssh-config (`vagrant ssh-config`, `kubelab twin ssh-config`).
    Every node of course.yaml must have a Host entry; that is checked before any check runs."""

    def __init__(self, course: LoadedCourse, ssh_config: str | Path, command_timeout_s: float = COMMAND_TIMEOUT_S):
        from kubelab.sshconfig import load_ssh_config, resolve  # paramiko: only a live target pays for it

        super().__init__(course)
        self.path = Path(ssh_config).expanduser()
        cfg = load_ssh_config(self.path)
        self.targets = {n.name: resolve(cfg, n.name, self.path) for n in course.model.nodes}
        self.command_timeout_s = command_timeout_s
        self.description = f"ssh-config {self.path}"

    def _backend(self, node: str) -> BaseBackend:
        return SshBackend(self.targets[node], self.stats, self.command_timeout_s)


class LocalTarget(Target):
    """Every node is this machine. For a grader run on a node itself, and for the engine's own tests."""

    description = "local"

    def _backend(self, node: str) -> BaseBackend:
        return CountingLocalBackend(self.stats)


def infrastructure_error(exc: BaseException) -> KubelabError | None:
    """Map an exception raised while observing to an infrastructure error, or None if it is not one."""
    if isinstance(exc, InfrastructureError):
        return exc
    # paramiko's errors exist only once paramiko was imported (by an SSH connection): a replay never loads it
    paramiko = sys.modules.get("paramiko")
    ssh_errors = (paramiko.SSHException,) if paramiko is not None else ()
    if isinstance(exc, (*ssh_errors, socket.error, EOFError, TimeoutError)):
        return InfrastructureError(f"could not observe the node: {exc or type(exc).__name__}", "check the node is up and re-run")
    return None
