"""Where the lab twins keep their files on the host, and the names they use there.

Everything a twin set owns is derived from the course id and the node names, so that
`down`, `status` and `leftovers()` can find it again from any later process without
a registry, and two courses on one host do not collide.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path

from kubelab.errors import InfrastructureError

DEFAULT_TWIN_ROOT = Path("/var/lib/kubelab/twins")
DEFAULT_CACHE_ROOT = Path("/var/cache/kubelab")

IFNAMSIZ = 15  # Linux interface names are at most 15 characters


_INSTANCE = re.compile(r"[a-z0-9]{1,8}")


def twin_instance() -> str:
    """KUBELAB_TWIN_INSTANCE: empty (the usual one twin set per course), or a short name such as a test worker's
    `gw1` for another, separate twin set of the same course on this host, with its own folders, cgroups and
    lease. Its twins keep the course's node names and addresses, so every instance but one needs a network
    namespace of its own (the suite's parallel workers each enter one: tests/conftest.py)."""
    name = os.environ.get("KUBELAB_TWIN_INSTANCE", "")
    if name and not _INSTANCE.fullmatch(name):
        raise InfrastructureError(f"KUBELAB_TWIN_INSTANCE={name!r} is not 1-8 lowercase letters or digits",
                                  "unset it, or set it to a short name such as gw1")
    return name


def twin_root() -> Path:
    """KUBELAB_TWIN_DIR, else /var/lib/kubelab/twins (with `@<instance>` appended for a KUBELAB_TWIN_INSTANCE):
    one folder per course id below it."""
    base = Path(os.environ.get("KUBELAB_TWIN_DIR") or DEFAULT_TWIN_ROOT).absolute()
    instance = twin_instance()
    return base.with_name(f"{base.name}@{instance}") if instance else base


def cache_root() -> Path:
    """KUBELAB_CACHE_DIR, else /var/cache/kubelab: base root file systems live in <it>/rootfs/<key>."""
    return Path(os.environ.get("KUBELAB_CACHE_DIR") or DEFAULT_CACHE_ROOT).absolute()


def bridge_name(course_id: str) -> str:
    """`kl-<course id>`, shortened deterministically to fit IFNAMSIZ.

    Plain truncation would give two long ids with a common prefix the same bridge, so a
    truncated name ends in a short hash of the full id instead.
    """
    name = f"kl-{course_id}"
    if len(name) <= IFNAMSIZ:
        return name
    digest = hashlib.sha256(course_id.encode()).hexdigest()[:4]
    return f"{name[:IFNAMSIZ - 5]}-{digest}"


def host_veth_name(node: str) -> str:
    """The host end of the veth systemd-nspawn creates for --network-bridge (`vb-<machine>`).

    nspawn 252 hashes names that would not fit IFNAMSIZ; only the short form is predictable
    here, which is all the course's node names need (`vb-` + up to 12 characters).
    """
    return f"vb-{node}"[:IFNAMSIZ]


def cgroup_name(course_id: str, node: str) -> str:
    """The cgroup each twin gets in every hierarchy. `_` cannot occur in a course id or a node
    name (RFC 1123 labels), so the name maps back to exactly one twin."""
    return f"{cgroup_prefix(course_id)}{node}"


def cgroup_prefix(course_id: str) -> str:
    # `.` cannot occur in a course id either: no instance's prefix is a prefix of another's
    instance = twin_instance()
    return f"kubelab-twin_{course_id}.{instance}_" if instance else f"kubelab-twin_{course_id}_"


@dataclass(frozen=True)
class SetPaths:
    """Files of one twin set (one course) under the twin root."""

    root: Path  # <twin root>/<course id>

    @property
    def key(self) -> Path:
        return self.root / "id_ed25519"

    @property
    def pubkey(self) -> Path:
        return self.root / "id_ed25519.pub"

    @property
    def ssh_config(self) -> Path:
        return self.root / "ssh-config"

    def node(self, name: str) -> "NodePaths":
        return NodePaths(self.root / name)


@dataclass(frozen=True)
class NodePaths:
    """Files of one twin: its root file system, the nspawn PID, its console log, its cgroups."""

    dir: Path

    @property
    def rootfs(self) -> Path:
        return self.dir / "rootfs"

    @property
    def rootfs_tmp(self) -> Path:
        # a copy being prepared; renamed to rootfs only when complete
        return self.dir / "rootfs.partial"

    @property
    def pidfile(self) -> Path:
        return self.dir / "nspawn.pid"

    @property
    def log(self) -> Path:
        return self.dir / "console.log"

    @property
    def cgroups(self) -> Path:
        # the cgroup directories the twin was started in, one per hierarchy
        return self.dir / "cgroups"
