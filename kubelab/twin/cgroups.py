"""Each twin in its own cgroup subtree, in every hierarchy.

Why: a twin's systemd (and later a kubelet inside it) builds its cgroup tree below the
cgroup it was started in. Giving every twin its own subtree keeps two twins' /kubepods
apart, lets `down` find every process a twin started (even ones that escaped its PID 1),
and lets it remove the twin's cgroups afterwards. The subtree is created below the caller's
own cgroup in each hierarchy (as the verified recipe does), so limits set on the caller
still apply to the twins.
"""

from __future__ import annotations

import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path

from kubelab.errors import InfrastructureError


@dataclass(frozen=True)
class Hierarchy:
    mountpoint: Path
    root: str  # the mount's root inside the hierarchy (mountinfo field 4)
    controllers: frozenset[str]  # v1: {"cpu"}, {"name=systemd"}, ...; v2: empty
    version: int


_V1_NON_CONTROLLER_OPTS = {"rw", "ro", "relatime", "noatime", "nosuid", "nodev", "noexec", "clone_children",
                           "noprefix", "xattr", "cpuset_v2_mode", "favordynmods"}


def hierarchies() -> list[Hierarchy]:
    """The host's cgroup mounts (v1 controllers, named v1 hierarchies, and the v2 one)."""
    found: dict[tuple, Hierarchy] = {}
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        pre, _, post = line.partition(" - ")
        fields, tail = pre.split(), post.split()
        if len(fields) < 5 or len(tail) < 3 or tail[0] not in ("cgroup", "cgroup2"):
            continue
        if tail[0] == "cgroup2":
            key: tuple = ("v2",)
            h = Hierarchy(Path(fields[4]), fields[3], frozenset(), 2)
        else:
            ctl = frozenset(o for o in tail[2].split(",") if o not in _V1_NON_CONTROLLER_OPTS
                            and not o.startswith("release_agent="))
            key = ("v1", ctl)
            h = Hierarchy(Path(fields[4]), fields[3], ctl, 1)
        found.setdefault(key, h)  # a hierarchy mounted twice: the first mount serves
    return list(found.values())


def own_dirs(pid: int | str = "self") -> list[Path]:
    """The cgroup folder the process is in, in every mounted hierarchy."""
    # One read: /proc/self/cgroup changes as soon as the process moves (the recipe's gotcha).
    text = Path(f"/proc/{pid}/cgroup").read_text()
    hs = hierarchies()
    dirs = []
    for line in text.splitlines():
        hid, ctl, path = line.split(":", 2)
        if hid == "0" and ctl == "":
            match = [h for h in hs if h.version == 2]
        else:
            match = [h for h in hs if h.version == 1 and h.controllers == frozenset(ctl.split(","))]
        if not match:
            continue  # a hierarchy that is not mounted here cannot be used (nor leaked into)
        h = match[0]
        rel = path[len(h.root):] if h.root != "/" and path.startswith(h.root) else path
        dirs.append(h.mountpoint / rel.lstrip("/"))
    return dirs


def create_subtree(name: str) -> list[Path]:
    """Create `name` below the caller's cgroup in every hierarchy; return the folders."""
    made = []
    for parent in own_dirs():
        d = parent / name
        try:
            d.mkdir(exist_ok=True)
            # a new v1 cpuset starts with no CPUs and no memory nodes: nothing could run in it
            for f in ("cpuset.cpus", "cpuset.mems"):
                if (parent / f).exists() and not (d / f).read_text().strip():
                    (d / f).write_text((parent / f).read_text())
        except OSError as e:
            raise InfrastructureError(f"cannot create the twin's cgroup {d}: {e.strerror}",
                                      "run as root on a host whose /sys/fs/cgroup is writable")
        made.append(d)
    return made


def enter_and_exec_argv(dirs: list[Path], argv: list[str]) -> list[str]:
    """argv for a shell that moves itself into `dirs`, then execs `argv` (so the PID stays the same).

    Done by a shell rather than a Python preexec_fn: the caller may have threads (paramiko),
    and a forked child of a threaded Python must not run Python code before exec.
    """
    script = ('while [ "$1" != -- ]; do echo $$ > "$1/cgroup.procs" || exit 125; shift; done; '
              'shift; exec "$@"')
    return ["/bin/sh", "-c", script, "kubelab-twin", *[str(d) for d in dirs], "--", *argv]


def _walk(d: Path):
    for top, subdirs, _ in os.walk(d, topdown=False):
        yield Path(top)


def pids(dirs: list[Path]) -> set[int]:
    """Every process in the subtrees (each process is in every hierarchy; reading all is belt and braces)."""
    found: set[int] = set()
    for d in dirs:
        if not d.is_dir():
            continue
        for sub in _walk(d):
            try:
                found |= {int(p) for p in (sub / "cgroup.procs").read_text().split()}
            except (OSError, ValueError):
                pass
    found.discard(os.getpid())
    return found


def kill_all(dirs: list[Path], timeout: float = 10) -> set[int]:
    """SIGKILL everything in the subtrees until they are empty; return what survived."""
    deadline = time.monotonic() + timeout
    while True:
        left = pids(dirs)
        if not left or time.monotonic() > deadline:
            return left
        for pid in left:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(0.2)


def remove(dirs: list[Path]) -> list[Path]:
    """rmdir the subtrees, deepest first; return the folders that could not be removed."""
    failed = []
    for d in dirs:
        if not d.is_dir():
            continue
        for sub in _walk(d):
            try:
                sub.rmdir()
            except FileNotFoundError:
                pass
            except OSError:
                failed.append(sub)
    return failed


def find_named(prefix: str) -> list[Path]:
    """Every cgroup folder, in any hierarchy, whose name starts with `prefix` (not looking inside them)."""
    found = []
    for h in hierarchies():
        for top, subdirs, _ in os.walk(h.mountpoint):
            keep = []
            for s in subdirs:
                (found.append(Path(top) / s) if s.startswith(prefix) else keep.append(s))
            subdirs[:] = keep
    return sorted(found)
