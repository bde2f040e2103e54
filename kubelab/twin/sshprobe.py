"""Does a twin answer SSH the way graders will reach it (lab user, the twin set's key)?"""

from __future__ import annotations

import socket
from pathlib import Path

import paramiko

# `systemctl is-system-running --wait` prints one of these once boot has finished. Until then,
# sshd may already answer, but logins are refused (/run/nologin, removed by
# systemd-user-sessions) or stall while logind and the user's systemd start: a twin is only
# "up" when the boot is over, as a VM is after `vagrant up`.
BOOTED_STATES = ("running", "degraded")
BOOT_DONE_COMMAND = "systemctl is-system-running --wait"


class _Accept(paramiko.MissingHostKeyPolicy):
    # the ssh-config says StrictHostKeyChecking no: host keys change with every --fresh
    def missing_host_key(self, client, hostname, key):
        return None


def run(ip: str, user: str, key: Path, command: str, timeout: float = 3.0,
        connect_timeout: float = 3.0) -> tuple[str | None, str]:
    """(None, stdout) when `user` logs in and `command` exits 0 within `timeout`; else (why not, output)."""
    client = paramiko.SSHClient()
    client.set_missing_host_key_policy(_Accept())
    out = ""
    try:
        client.connect(ip, port=22, username=user, key_filename=str(key), timeout=connect_timeout,
                       banner_timeout=connect_timeout, auth_timeout=connect_timeout,
                       allow_agent=False, look_for_keys=False)
        _, stdout, _ = client.exec_command(command, timeout=timeout)  # reads time out after `timeout`
        out = stdout.read().decode(errors="replace")
        rc = stdout.channel.recv_exit_status()
        return (None if rc == 0 else f"`{command}` exited {rc}"), out
    except paramiko.AuthenticationException:
        return "authentication failed", out
    except (socket.timeout, TimeoutError):
        return "timed out", out
    except (OSError, paramiko.SSHException, EOFError) as e:
        return (getattr(e, "strerror", None) or str(e) or type(e).__name__), out
    finally:
        client.close()


def login_error(ip: str, user: str, key: Path, timeout: float = 3.0) -> str | None:
    """None when `user` can log in and run `true`; otherwise why not, in a few words."""
    return run(ip, user, key, "true", timeout=timeout, connect_timeout=timeout)[0]


def boot_error(ip: str, user: str, key: Path, timeout: float) -> str | None:
    """None once `user` can log in and the twin's boot has finished; otherwise why not."""
    err, out = run(ip, user, key, BOOT_DONE_COMMAND, timeout=max(timeout, 1.0), connect_timeout=2.0)
    state = out.strip()
    if state in BOOTED_STATES:
        return None  # "degraded" exits 1 but the boot is over: a VM with a failed unit is up too
    return f"system {state}" if state else (err or "no answer")
