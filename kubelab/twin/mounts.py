"""Mounts below the twins' folders, and deleting root file systems safely.

A root file system can have the host's /proc, /sys or /dev mounted inside it (debootstrap
does that while it runs). Deleting recursively through such a mount would delete the host's
files, so every removal unmounts first and never crosses into another file system.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from kubelab.errors import InfrastructureError
from kubelab.twin import hostcmd


def _unescape(field: str) -> str:
    # mountinfo escapes space, tab, newline and backslash as \ooo
    out, i = [], 0
    while i < len(field):
        if field[i] == "\\" and i + 4 <= len(field) and field[i + 1:i + 4].isdigit():
            out.append(chr(int(field[i + 1:i + 4], 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)


def mounts_below(path: Path) -> list[Path]:
    """Mount points at or below `path` in this mount namespace, deepest first."""
    base = str(Path(path).absolute()).rstrip("/")
    found = []
    try:
        lines = Path("/proc/self/mountinfo").read_text().splitlines()
    except OSError:
        return []
    for line in lines:
        fields = line.split()
        if len(fields) < 5:
            continue
        point = _unescape(fields[4])
        if point == base or point.startswith(base + "/"):
            found.append(Path(point))
    return sorted(set(found), key=lambda p: len(p.parts), reverse=True)


def unmount_below(path: Path) -> None:
    for point in mounts_below(path):
        # lazy: a mount that is still busy is detached now and freed when its last user goes
        subprocess.run(["umount", "-l", str(point)], capture_output=True, env=hostcmd.env())


def remove_tree(path: Path) -> None:
    """Delete a root file system (or any folder of ours), never following a mount out of it."""
    path = Path(path).absolute()
    if len(path.parts) < 4:  # e.g. "/", "/var/lib": never ours to delete
        raise InfrastructureError(f"refusing to delete {path}", "check KUBELAB_TWIN_DIR / KUBELAB_CACHE_DIR")
    if not path.exists() and not path.is_symlink():
        return
    unmount_below(path)
    if mounts_below(path):
        raise InfrastructureError(f"cannot delete {path}: {mounts_below(path)[0]} is still mounted",
                                  f"unmount it (`umount -l {mounts_below(path)[0]}`) and retry")
    hostcmd.run(["rm", "-rf", "--one-file-system", str(path)], what=f"deleting {path}",
                fix=f"check what holds files in {path} (`fuser -vm {path}`) and retry", timeout=600)
