"""The cached Debian root file system every twin is copied from.

debootstrap takes about a minute, so it runs once per (suite, package list, recipe version)
and the result is kept under <cache>/rootfs/<key>. It is built in a temporary folder and
renamed into place only when complete: an interrupted build never leaves a cache that
looks valid.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from kubelab.errors import InfrastructureError
from kubelab.twin import hostcmd, mounts
from kubelab.twin.mirror import debian_mirror
from kubelab.twin.paths import cache_root

SUITE = "bookworm"
VARIANT = "minbase"
# The verified recipe's list (lab-twin.md). python3 is there for graders and notebooks that
# run Python on a node; testinfra itself needs only sh. Kept small on purpose: every twin is
# a full copy of this.
PACKAGES = (
    "systemd", "systemd-sysv", "dbus", "openssh-server", "iproute2", "iptables", "kmod", "procps",
    "sudo", "python3", "curl", "gnupg", "ca-certificates",
    # What the Vagrant boxes have or vagrant/provision-*.sh installs with apt: twins have no network
    # to a mirror, so they carry them from the start (the scripts install only what is missing).
    "python3-venv", "systemd-timesyncd", "openssh-client",
)
# Bump when the way the base is built changes, so existing caches are not reused.
RECIPE_VERSION = 1

# debootstrap's stage lines worth showing; it prints one line per package otherwise.
_STAGES = ("I: Retrieving Release", "I: Resolving dependencies", "I: Retrieving packages",
           "I: Installing core packages", "I: Unpacking the base system",
           "I: Configuring the base system", "I: Base system installed successfully")


def host_arch() -> str:
    proc = hostcmd.run(["dpkg", "--print-architecture"], what="reading the host's architecture",
                       fix="run the twins on a Debian or Ubuntu host")
    return proc.stdout.strip()


def cache_key(arch: str, suite: str = SUITE, packages: tuple[str, ...] = PACKAGES) -> str:
    spec = {"suite": suite, "variant": VARIANT, "arch": arch, "packages": sorted(packages),
            "recipe": RECIPE_VERSION}
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:16]


def base_dir(arch: str | None = None) -> Path:
    return cache_root() / "rootfs" / cache_key(arch or host_arch())


def ensure_base(progress: Callable[[str], None] = print) -> Path:
    """The base root file system, built first if it is not cached yet."""
    final = base_dir()
    if final.is_dir():
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    # One builder at a time; a second `up` waits for the first one's build and reuses it.
    with open(final.parent / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if final.is_dir():
            return final
        _remove_stale_builds(final.parent)
        _build(final, progress)
    return final


def _remove_stale_builds(parent: Path) -> None:
    # Left by a build that was killed; we hold the lock, so no build is running.
    for d in parent.glob(".build-*"):
        mounts.remove_tree(d)


def _build(final: Path, progress: Callable[[str], None]) -> None:
    mirror = debian_mirror(SUITE)
    tmp = final.parent / f".build-{final.name}-{os.getpid()}"
    log = final.parent / f"{final.name}.build.log"
    progress(f"building base root file system (about 1 minute, once): debootstrap {SUITE} from {mirror}")
    started = time.monotonic()
    cmd = ["debootstrap", f"--variant={VARIANT}", f"--include={','.join(PACKAGES)}", SUITE, str(tmp), mirror]
    proc: subprocess.Popen | None = None
    try:
        with open(log, "w") as out:
            out.write("$ " + " ".join(cmd) + "\n")
            out.flush()
            proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                    env=hostcmd.env(), stdin=subprocess.DEVNULL)
            last = ""
            assert proc.stdout is not None
            for line in proc.stdout:
                out.write(line)
                out.flush()
                line = line.rstrip()
                if line:
                    last = line
                if line.startswith(_STAGES):
                    progress(f"  {line[3:]}")
            rc = proc.wait()
        if rc != 0:
            raise InfrastructureError(f"debootstrap failed (exit code {rc}): {last}",
                                      f"read {log}; check the mirror ({mirror}) is reachable "
                                      "or set KUBELAB_DEBIAN_MIRROR")
        _trim(tmp)
        os.rename(tmp, final)  # the commit point: a complete base appears at once
    except BaseException:
        # Interrupted or failed: stop debootstrap before deleting what it writes, then unmount the
        # /proc and /sys it mounts inside the target, then delete. No half cache stays behind.
        if proc is not None:
            hostcmd.stop(proc, grace_s=30)
        mounts.remove_tree(tmp)
        raise
    progress(f"base root file system ready in {time.monotonic() - started:.0f}s: {final}")


def _trim(root: Path) -> None:
    # apt's binary caches are rebuilt on demand; leaving them out makes every twin copy ~60 MB smaller.
    for f in (root / "var/cache/apt").glob("*.bin"):
        f.unlink()
