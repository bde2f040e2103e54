"""Running host commands for the twins, and the checks that must pass before any of them runs."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Sequence

from kubelab.errors import InfrastructureError, UsageError

# Tools the twins need on the host, and the Debian package holding each.
REQUIRED_TOOLS = {
    "debootstrap": "debootstrap",
    "systemd-nspawn": "systemd-container",
    "systemctl": "systemd",  # `systemctl --root` enables units in a stopped root file system
    "ip": "iproute2",
    "ssh-keygen": "openssh-client",
    "useradd": "passwd",
}

# root's usual PATH: sudo and cron environments do not always include the sbin folders.
_SBIN_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def tool_path(path: str | None = None) -> str:
    if path is not None:
        return path
    return os.pathsep.join(p for p in (os.environ.get("PATH", ""), _SBIN_PATH) if p)


def missing_tools(path: str | None = None) -> list[str]:
    """Required host tools not found on PATH (plus the sbin folders), in REQUIRED_TOOLS order."""
    search = tool_path(path)
    return [tool for tool in REQUIRED_TOOLS if shutil.which(tool, path=search) is None]


def require_tools(path: str | None = None) -> None:
    missing = missing_tools(path)
    if missing:
        packages = list(dict.fromkeys(REQUIRED_TOOLS[t] for t in missing))
        raise UsageError(f"the lab twins need {', '.join(missing)}, which {'is' if len(missing) == 1 else 'are'} "
                         "not installed on this host",
                         f"apt-get install -y {' '.join(packages)}")


def require_root(euid: int | None = None) -> None:
    """Twins create bridges, cgroups and namespaces: only root can."""
    if (os.geteuid() if euid is None else euid) != 0:
        raise UsageError("the lab twins must be managed as root (they create a bridge, cgroups and containers)",
                         "run the command with sudo, e.g. `sudo kubelab twin up`")


def env() -> dict[str, str]:
    """A small, predictable environment for host tools.

    In particular no SYSTEMD_NSPAWN_* variable from the caller reaches systemd-nspawn:
    SYSTEMD_NSPAWN_API_VFS_WRITABLE=1 would let a twin change the host's kernel settings.
    """
    return {"PATH": tool_path(), "LC_ALL": "C.UTF-8", "HOME": "/root"}


def run(cmd: Sequence[str], *, what: str, fix: str, check: bool = True,
        input: str | None = None, timeout: float | None = 120) -> subprocess.CompletedProcess:
    """Run a host command; on failure raise InfrastructureError naming `what` and the command's last words."""
    try:
        proc = subprocess.run(list(cmd), input=input, capture_output=True, text=True, env=env(),
                              timeout=timeout)
    except FileNotFoundError:
        raise InfrastructureError(f"{what}: {cmd[0]} is not installed", fix)
    except subprocess.TimeoutExpired:
        raise InfrastructureError(f"{what}: `{' '.join(cmd)}` did not finish within {timeout:g}s", fix)
    if check and proc.returncode != 0:
        last = (proc.stderr.strip() or proc.stdout.strip() or f"exit code {proc.returncode}").splitlines()[-1]
        raise InfrastructureError(f"{what}: {last}", fix)
    return proc


def stop(proc: subprocess.Popen, grace_s: float) -> None:
    """End a child still running: SIGTERM and up to `grace_s` to clean up after itself, then SIGKILL."""
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
