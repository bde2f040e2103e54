"""Booting one twin with systemd-nspawn, and stopping it by the PID recorded at boot.

A twin is identified by the PID of its own nspawn process plus that process's start time
(so a recycled PID is never mistaken for the twin), never by a process name.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from kubelab.twin import cgroups, hostcmd

STOP_TIMEOUT_S = 20  # the twins' DefaultTimeoutStopSec=15s plus a margin for systemd-shutdown
LOG_ROTATE_BYTES = 1 << 20

# Popen objects of twins booted by this process: kept so their exit is reaped (a zombie
# would look alive to kill(pid, 0)).
_children: dict[int, subprocess.Popen] = {}


@dataclass(frozen=True)
class PidRecord:
    pid: int
    start_time: int  # /proc/PID/stat field 22, clock ticks since boot

    def dump(self) -> str:
        return f"{self.pid} {self.start_time}\n"

    @classmethod
    def load(cls, path: Path) -> "PidRecord | None":
        try:
            pid, start = path.read_text().split()[:2]
            return cls(int(pid), int(start))
        except (OSError, ValueError):
            return None


def _stat(pid: int) -> tuple[str, int] | None:
    """(state, start time) of a process, or None when there is none."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    rest = raw[raw.rfind(")") + 2:].split()  # the command name may hold spaces and parentheses
    return rest[0], int(rest[19])


def _reap(pid: int) -> None:
    child = _children.get(pid)
    if child is not None and child.poll() is not None:
        del _children[pid]


def alive(rec: PidRecord, rootfs: Path) -> bool:
    """Is the process recorded at boot still this twin's nspawn (or the shell about to exec it)?"""
    _reap(rec.pid)
    st = _stat(rec.pid)
    if st is None or st[0] in ("Z", "X") or st[1] != rec.start_time:
        return False
    try:
        argv = Path(f"/proc/{rec.pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return str(rootfs).encode() in argv or b"kubelab-twin" in argv


def command(node: str, rootfs: Path, bridge: str) -> list[str]:
    nspawn = shutil.which("systemd-nspawn", path=hostcmd.tool_path()) or "systemd-nspawn"
    return [nspawn,
            # the host runs no systemd: no machined registration, no scope unit (no D-Bus to ask)
            "--register=no", "--keep-unit",
            "-q", "-b", "-D", str(rootfs),
            f"--machine={node}", f"--hostname={node}",
            # swap is the host kernel's, not the twin's: swapon/swapoff inside a twin must never touch it
            "--system-call-filter=~@swap",
            # one L2 segment with the other twins and the host (host end: vb-<node>)
            f"--network-bridge={bridge}"]


def start(node: str, rootfs: Path, bridge: str, log: Path, cgroup_dirs: list[Path]) -> PidRecord:
    """Start the twin detached: own session, output to `log`, in its own cgroups. Does not wait for boot."""
    argv = cgroups.enter_and_exec_argv(cgroup_dirs, command(node, rootfs, bridge))
    # one console log per twin, appended at each boot; the previous one is kept once it grows large
    if log.exists() and log.stat().st_size > LOG_ROTATE_BYTES:
        log.replace(log.with_name(log.name + ".1"))
    with open(log, "ab") as out:
        out.write(f"\n===== kubelab: booting {node} at {time.strftime('%Y-%m-%d %H:%M:%S')}: "
                  f"{' '.join(command(node, rootfs, bridge))}\n".encode())
        out.flush()
        # new session: the twin must not die with the caller's terminal or get its Ctrl-C
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True, close_fds=True, env=hostcmd.env(), cwd="/")
    _children[proc.pid] = proc
    st = _stat(proc.pid)
    return PidRecord(proc.pid, st[1] if st else 0)


def exited(rec: PidRecord) -> bool:
    _reap(rec.pid)
    st = _stat(rec.pid)
    return st is None or st[0] in ("Z", "X") or st[1] != rec.start_time


def stop(rec: PidRecord, rootfs: Path, timeout: float = STOP_TIMEOUT_S) -> bool:
    """SIGTERM the twin's nspawn (which powers the twin off cleanly) and wait; True if it exited."""
    if not alive(rec, rootfs):
        return True
    try:
        os.kill(rec.pid, signal.SIGTERM)
    except ProcessLookupError:
        return True
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if exited(rec):
            return True
        time.sleep(0.2)
    return exited(rec)


def log_tail(log: Path, lines: int = 1) -> str:
    try:
        text = [ln for ln in log.read_text(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return ""
    return " | ".join(text[-lines:])
