"""ssh-config files (as `vagrant ssh-config` and `kubelab twin ssh-config` print them) and connections from them."""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from pathlib import Path

import paramiko

from kubelab.errors import InfrastructureError, UsageError

DEFAULT_SSH_CONFIG = "~/.kubelab/ssh-config"
CONNECT_TIMEOUT_S = 10


@dataclass(frozen=True)
class SshTarget:
    """How to reach one node: the resolved entry of an ssh-config."""

    alias: str
    hostname: str
    port: int
    user: str | None
    identity_files: tuple[str, ...]
    strict_host_key_checking: bool
    proxy_command: str | None = None


def ssh_config_path(explicit: str | os.PathLike | None = None) -> Path:
    """--ssh-config, else KUBELAB_SSH_CONFIG, else ~/.kubelab/ssh-config."""
    raw = explicit or os.environ.get("KUBELAB_SSH_CONFIG") or DEFAULT_SSH_CONFIG
    return Path(raw).expanduser()


def load_ssh_config(path: str | os.PathLike) -> paramiko.SSHConfig:
    p = Path(path).expanduser()
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UsageError(f"ssh-config {p} does not exist",
                         "write it with `vagrant ssh-config > FILE` (VMs) or `kubelab twin ssh-config > FILE` (twins)")
    except (OSError, UnicodeDecodeError) as e:
        raise UsageError(f"ssh-config {p} cannot be read: {e}", "check the file's permissions and encoding")
    cfg = paramiko.SSHConfig()
    try:
        cfg.parse(_io(text))
    except Exception as e:  # paramiko raises several types for malformed lines
        raise UsageError(f"ssh-config {p} is malformed: {e}",
                         "regenerate it with `vagrant ssh-config > FILE` or `kubelab twin ssh-config > FILE`")
    if not cfg.get_hostnames() - {"*"}:
        raise UsageError(f"ssh-config {p} has no Host entries",
                         "regenerate it with `vagrant ssh-config > FILE` or `kubelab twin ssh-config > FILE`")
    return cfg


def _io(text: str):
    import io
    return io.StringIO(text)


def resolve(cfg: paramiko.SSHConfig, alias: str, path: str | os.PathLike = "ssh-config") -> SshTarget:
    if alias not in cfg.get_hostnames():
        known = ", ".join(sorted(cfg.get_hostnames() - {"*"}))
        raise UsageError(f"ssh-config {path} has no Host {alias} (it has: {known or 'none'})",
                         "regenerate it after `vagrant up` so it lists every node of course.yaml")
    entry = cfg.lookup(alias)
    try:
        port = int(entry.get("port", 22))
    except ValueError:
        raise UsageError(f"ssh-config {path}: Host {alias} has a Port that is not a number",
                         "write a numeric Port")
    return SshTarget(
        alias=alias,
        hostname=entry.get("hostname", alias),
        port=port,
        user=entry.get("user"),
        identity_files=tuple(os.path.expanduser(f) for f in entry.get("identityfile", [])),
        strict_host_key_checking=entry.get("stricthostkeychecking", "yes").lower() not in ("no", "off", "accept-new"),
        proxy_command=entry.get("proxycommand"),
    )


class _Accept(paramiko.MissingHostKeyPolicy):
    def missing_host_key(self, client, hostname, key):  # noqa: D401 - paramiko's API
        return None


def connect(target: SshTarget, timeout: float = CONNECT_TIMEOUT_S) -> paramiko.SSHClient:
    """One SSH connection to a node, or InfrastructureError saying why not."""
    client = paramiko.SSHClient()
    if target.strict_host_key_checking:
        client.load_system_host_keys()
        client.set_missing_host_key_policy(paramiko.RejectPolicy())
    else:
        client.set_missing_host_key_policy(_Accept())
    kwargs = dict(hostname=target.hostname, port=target.port, username=target.user, timeout=timeout,
                  banner_timeout=timeout, auth_timeout=timeout, allow_agent=False, look_for_keys=False)
    if target.identity_files:
        kwargs["key_filename"] = [f for f in target.identity_files if os.path.exists(f)] or list(target.identity_files)
    else:
        kwargs["look_for_keys"] = True
        kwargs["allow_agent"] = True
    if target.proxy_command:
        kwargs["sock"] = paramiko.ProxyCommand(target.proxy_command)
    where = f"{target.alias} ({target.user + '@' if target.user else ''}{target.hostname}:{target.port})"
    try:
        client.connect(**kwargs)
    except paramiko.AuthenticationException:
        raise InfrastructureError(f"cannot log in to {where}: authentication failed",
                                  "regenerate the ssh-config; check the IdentityFile it names exists")
    except (socket.timeout, TimeoutError):
        raise InfrastructureError(f"cannot reach {where}: timed out after {timeout:g}s",
                                  "is the node up? `vagrant status` / `kubelab twin status`")
    except (OSError, paramiko.SSHException) as e:
        reason = getattr(e, "strerror", None) or str(e) or type(e).__name__
        raise InfrastructureError(f"cannot reach {where}: {reason}",
                                  "is the node up? `vagrant status` / `kubelab twin status`")
    transport = client.get_transport()
    if transport is not None:
        transport.set_keepalive(15)
    return client
