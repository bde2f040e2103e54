"""TwinSet: the lab twins of one course (one per node of course.yaml), booted, stopped and inspected.

Life cycle of a twin:
  absent  --up-->  running  --down-->  stopped  --up-->  running   (state on disk persists)
  any     --up --fresh-->  running from a new copy of the base
  any     --down --wipe--> absent (root file systems and the SSH key deleted)
"""

from __future__ import annotations

import contextlib
import fcntl
import ipaddress
import os
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from kubelab.course import LoadedCourse, Node
from kubelab.errors import InfrastructureError
from kubelab.twin import baserootfs, cgroups, hostcmd, mounts, network, nodefs, nspawn, sshprobe
from kubelab.twin.paths import (SetPaths, bridge_name, cgroup_name, cgroup_prefix, host_veth_name,
                                twin_root)

SSH_WAIT_S = 60
Progress = Callable[[str], None]


def _quiet(_: str) -> None:
    pass


@dataclass(frozen=True)
class TwinStatus:
    name: str
    role: str
    ip: str
    state: Literal["running", "stopped", "absent"]
    pid: int | None
    ssh: bool


class TwinSet:
    """The twins of `course`, on this host. Every method but ssh_config() must run as root."""

    def __init__(self, course: LoadedCourse, *, template: Callable[[Progress], Path] | None = None,
                 prepare_node: Callable[[Node, Path], None] | None = None):
        """`template` (default: the cached base root file system) returns the root file system that
        fresh twins are copied from; `prepare_node(node, rootfs)` runs after the standard preparation
        of each fresh copy (e.g. kubelab.cluster's per-node files)."""
        m = course.model
        self._template = template or baserootfs.ensure_base
        self._prepare_node = prepare_node
        self.course = course
        self.course_id: str = m.course.id
        self.nodes: list[Node] = list(m.nodes)
        self.user: str = m.lab_user
        self.subnet: ipaddress.IPv4Network = m.network.private_subnet
        self.bridge: str = bridge_name(self.course_id)
        self.bridge_iface = network.bridge_interface(self.subnet)
        self.paths = SetPaths(twin_root() / self.course_id)
        self._lock_depth = 0
        self._lock_file = None

    # -- public API ------------------------------------------------------------------------
    def up(self, fresh: bool = False, progress: Progress | None = print) -> None:
        """Boot every twin that is not running and wait until each answers SSH as the lab user.

        Running twins are left alone; stopped ones boot from their existing root file system;
        fresh=True stops them and boots new copies of the base instead.
        """
        say = progress or _quiet
        hostcmd.require_root()
        hostcmd.require_tools()
        network.check_address_free(self.bridge, self.bridge_iface)
        with self._locked():
            pubkey = self._ensure_key(say)
            to_boot: list[Node] = []
            to_copy: list[Node] = []
            for node in self.nodes:
                np = self.paths.node(node.name)
                rec = self._running(node)
                if rec and not fresh:
                    say(f"{node.name}: already running (nspawn pid {rec.pid})")
                    continue
                self._stop_node(node, say)  # stops a running twin (fresh) or clears a dead one's leftovers
                if fresh or not np.rootfs.is_dir():
                    to_copy.append(node)
                else:
                    # the key may be new, or a student may have removed it
                    nodefs.authorize_key(np.rootfs, self.user, pubkey)
                    nodefs.authorize_key(np.rootfs, "root", pubkey)
                to_boot.append(node)
            if to_copy:
                base = self._template(say)
                # copying is bound by the kernel's per-file work (~6 s per twin here): one copy per core
                workers = max(1, min(len(to_copy), os.cpu_count() or 1))
                with ThreadPoolExecutor(max_workers=workers) as pool:
                    for job in [pool.submit(self._make_rootfs, n, base, pubkey, say) for n in to_copy]:
                        job.result()
            network.ensure_bridge(self.bridge, self.bridge_iface)
            started = time.monotonic()
            for node in to_boot:
                self._boot(node, say)
            self._wait_ssh(say, started)
            self._write_ssh_config()

    def down(self, wipe: bool = False, progress: Progress | None = None) -> None:
        """Stop every twin (clean poweroff, then SIGKILL leftovers), remove their cgroups and the bridge.

        Safe when nothing runs. wipe=True also deletes the root file systems and the SSH key.
        """
        say = progress or _quiet
        hostcmd.require_root()
        with self._locked():
            problems: list[str] = []
            for node in self.nodes:
                try:
                    self._stop_node(node, say)
                except InfrastructureError as e:
                    problems.append(e.problem)
            # cgroups of nodes that are no longer in course.yaml (renamed or removed)
            stray = cgroups.find_named(cgroup_prefix(self.course_id))
            if stray:
                if cgroups.kill_all(stray) or cgroups.remove(stray):
                    problems.append(f"cannot remove cgroups {', '.join(map(str, stray))}")
            left = network.wait_no_ports(self.bridge)
            if left:
                problems.append(f"interfaces {', '.join(left)} remain after their twins stopped")
            network.delete_link(self.bridge)
            if wipe:
                say(f"deleting {self.paths.root}")
                mounts.remove_tree(self.paths.root)
            if problems:
                raise InfrastructureError("twin teardown incomplete: " + "; ".join(problems),
                                          "run `kubelab twin down` again; `kubelab twin status` shows what runs")

    def restart(self, progress: Progress | None = print) -> None:
        """Stop and boot every twin again, keeping their root file systems (as `vagrant reload`)."""
        with self._locked():
            self.down(progress=progress)
            self.up(progress=progress)

    def status(self) -> list[TwinStatus]:
        hostcmd.require_root()
        out = []
        for node in self.nodes:
            rec = self._running(node)
            if rec:
                state = "running"
                ssh = self.paths.key.is_file() and sshprobe.login_error(
                    str(node.ip), self.user, self.paths.key, timeout=3) is None
            else:
                state = "stopped" if self.paths.node(node.name).rootfs.is_dir() else "absent"
                ssh = False
            out.append(TwinStatus(node.name, node.role, str(node.ip), state, rec.pid if rec else None, bool(ssh)))
        return out

    def ssh_config(self) -> str:
        """The twins as `vagrant ssh-config` prints the VMs: one block per node of course.yaml."""
        key = str(self.paths.key)
        if " " in key:
            key = f'"{key}"'  # as Vagrant quotes a key path with spaces
        blocks = []
        for node in self.nodes:
            blocks.append(
                f"Host {node.name}\n"
                f"  HostName {node.ip}\n"
                f"  User {self.user}\n"
                "  Port 22\n"
                "  UserKnownHostsFile /dev/null\n"
                "  StrictHostKeyChecking no\n"
                "  PasswordAuthentication no\n"
                f"  IdentityFile {key}\n"
                "  IdentitiesOnly yes\n"
                "  LogLevel FATAL\n"
                "\n")
        return "".join(blocks)

    def ssh_config_file(self) -> Path:
        """The ssh-config, written to the twin-set folder (graders: --ssh-config PATH)."""
        return self._write_ssh_config()

    def leftovers(self) -> list[str]:
        """What of this twin set still exists on the host besides its files: processes, cgroups,
        mounts, network interfaces. Empty after down()."""
        found: list[str] = []
        pids: dict[int, str] = {}
        for node in self.nodes:
            np = self.paths.node(node.name)
            rec = nspawn.PidRecord.load(np.pidfile)
            if rec and nspawn.alive(rec, np.rootfs):
                pids[rec.pid] = f"nspawn of twin {node.name}"
        for pid, why in _processes_using([str(self.paths.node(n.name).rootfs) for n in self.nodes]).items():
            pids.setdefault(pid, why)
        groups = cgroups.find_named(cgroup_prefix(self.course_id))
        for pid in sorted(cgroups.pids(groups)):
            pids.setdefault(pid, "in a twin cgroup")
        for pid, why in sorted(pids.items()):
            found.append(f"process {pid} ({_comm(pid)}): {why}")
        found += [f"cgroup {g}" for g in groups]
        found += [f"mount {m}" for m in mounts.mounts_below(self.paths.root)]
        if network.link_exists(self.bridge):
            found.append(f"bridge {self.bridge}")
        veths = dict.fromkeys(network.ports(self.bridge))
        # a twin's veth left without a bridge (vb-<node> of another course's twin sits on that course's bridge)
        veths.update(dict.fromkeys(v for v in (host_veth_name(n.name) for n in self.nodes)
                                   if network.master_of(v) is None))
        found += [f"veth {v}" for v in veths]
        return found

    # -- internals -------------------------------------------------------------------------
    @contextlib.contextmanager
    def _locked(self):
        """One process at a time changes a twin set (reentrant within this object)."""
        if self._lock_depth == 0:
            root = twin_root()
            root.mkdir(parents=True, exist_ok=True)
            self._lock_file = open(root / f".{self.course_id}.lock", "w")
            fcntl.flock(self._lock_file, fcntl.LOCK_EX)
        self._lock_depth += 1
        try:
            yield
        finally:
            self._lock_depth -= 1
            if self._lock_depth == 0 and self._lock_file is not None:
                self._lock_file.close()  # releases the flock
                self._lock_file = None

    def _ensure_key(self, say: Progress) -> str:
        """The twin set's own ed25519 key, made at the first `up` and kept until `down --wipe`."""
        self.paths.root.mkdir(parents=True, exist_ok=True)
        os.chmod(self.paths.root, 0o700)
        if not (self.paths.key.is_file() and self.paths.pubkey.is_file()):
            for p in (self.paths.key, self.paths.pubkey):
                p.unlink(missing_ok=True)
            say(f"generating SSH key {self.paths.key}")
            hostcmd.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"kubelab-twins-{self.course_id}",
                         "-f", str(self.paths.key)], what="generating the twins' SSH key",
                        fix=f"check that {self.paths.root} is writable")
        return self.paths.pubkey.read_text().strip()

    def _running(self, node: Node) -> nspawn.PidRecord | None:
        np = self.paths.node(node.name)
        rec = nspawn.PidRecord.load(np.pidfile)
        return rec if rec and nspawn.alive(rec, np.rootfs) else None

    def _cgroup_dirs(self, node: Node) -> list[Path]:
        """Where the twin's cgroups are: as recorded at boot, plus any found by name (another caller's cgroup)."""
        np = self.paths.node(node.name)
        recorded = []
        with contextlib.suppress(OSError):
            recorded = [Path(line) for line in np.cgroups.read_text().splitlines() if line.strip()]
        name = cgroup_name(self.course_id, node.name)
        found = [d for d in cgroups.find_named(name) if d.name == name]
        return sorted(set(recorded) | set(found))

    def _stop_node(self, node: Node, say: Progress) -> None:
        np = self.paths.node(node.name)
        rec = nspawn.PidRecord.load(np.pidfile)
        if rec and nspawn.alive(rec, np.rootfs):
            # A pod's PID 1 (own PID namespace, no SIGTERM handler) ignores the twin's shutdown and
            # would stall its poweroff: kill the twin's Kubernetes pods first (none on a plain twin).
            pods = [d for top in self._cgroup_dirs(node) if top.is_dir()
                    for d in top.rglob("kubepods*") if d.is_dir()]
            if pods and cgroups.kill_all(pods, timeout=5):
                say(f"{node.name}: some pod processes survived SIGKILL")
            say(f"{node.name}: stopping (nspawn pid {rec.pid})")
            t0 = time.monotonic()
            if nspawn.stop(rec, np.rootfs):
                say(f"{node.name}: stopped in {time.monotonic() - t0:.1f}s")
            else:
                say(f"{node.name}: still running after {nspawn.STOP_TIMEOUT_S}s, killing its processes")
        dirs = self._cgroup_dirs(node)
        # whatever the clean poweroff left (or everything, if it timed out): only this twin's processes
        survivors = cgroups.kill_all(dirs)
        if rec and nspawn.alive(rec, np.rootfs):  # not in its cgroups (moved by hand?): still ours by PID+start time
            with contextlib.suppress(ProcessLookupError):
                os.kill(rec.pid, 9)
        failed = cgroups.remove(dirs)
        if survivors or failed:
            raise InfrastructureError(
                f"twin {node.name}: " + (f"processes {sorted(survivors)} survive SIGKILL" if survivors
                                         else f"cannot remove cgroup {failed[0]}"),
                "see `kubelab twin status`; a process stuck in the kernel (state D) clears when its I/O ends")
        np.pidfile.unlink(missing_ok=True)
        np.cgroups.unlink(missing_ok=True)

    def _make_rootfs(self, node: Node, base: Path, pubkey: str, say: Progress) -> None:
        np = self.paths.node(node.name)
        say(f"{node.name}: copying the base root file system")
        nodefs.copy_base(base, np.rootfs_tmp)
        nodefs.prepare(np.rootfs_tmp, hostname=node.name, ip=node.ip, subnet=self.subnet,
                       gateway=self.bridge_iface.ip, user=self.user, pubkey=pubkey)
        if self._prepare_node is not None:
            self._prepare_node(node, np.rootfs_tmp)
        # replace the old root file system only once the new one is complete
        mounts.remove_tree(np.rootfs)
        os.rename(np.rootfs_tmp, np.rootfs)

    def _boot(self, node: Node, say: Progress) -> None:
        np = self.paths.node(node.name)
        dirs = cgroups.create_subtree(cgroup_name(self.course_id, node.name))
        np.cgroups.write_text("".join(f"{d}\n" for d in dirs))
        rec = nspawn.start(node.name, np.rootfs, self.bridge, np.log, dirs)
        np.pidfile.write_text(rec.dump())
        say(f"{node.name}: booting (nspawn pid {rec.pid}, console log {np.log})")

    def _wait_ssh(self, say: Progress, started: float) -> None:
        """Wait until every twin has finished booting and lets the lab user in with the twin set's key
        (≤ SSH_WAIT_S from boot). sshd answers before the boot is over, when logins can still fail."""
        deadline = started + SSH_WAIT_S
        pending = list(self.nodes)
        last: dict[str, str] = {}
        while pending:
            for node in list(pending):
                np = self.paths.node(node.name)
                rec = nspawn.PidRecord.load(np.pidfile)
                if rec is None or nspawn.exited(rec):
                    raise InfrastructureError(
                        f"twin {node.name} stopped while booting: {nspawn.log_tail(np.log) or 'no output'}",
                        f"read its console log {np.log}")
                remaining = deadline - time.monotonic()
                err = sshprobe.boot_error(str(node.ip), self.user, self.paths.key, timeout=remaining)
                if err is None:
                    say(f"{node.name}: ssh {self.user}@{node.ip} ready ({time.monotonic() - started:.1f}s)")
                    pending.remove(node)
                else:
                    last[node.name] = err
            if pending and time.monotonic() > deadline:
                node = pending[0]
                log = self.paths.node(node.name).log
                raise InfrastructureError(
                    f"twin {node.name} did not finish booting and answer SSH as {self.user}@{node.ip} "
                    f"within {SSH_WAIT_S}s "
                    f"(last: {last.get(node.name, '?')})",
                    f"read its console log {log}; stop the twins with `kubelab twin down`")
            if pending:
                time.sleep(0.5)

    def _write_ssh_config(self) -> Path:
        path = self.paths.ssh_config
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            # Written aside and renamed: a grader reading it mid-write never sees half a file.
            tmp = path.with_name(path.name + ".tmp")
            tmp.write_text(self.ssh_config())
            tmp.replace(path)
        except OSError as e:
            raise InfrastructureError(f"cannot write {path}: {e.strerror}", "run as root")
        return path


def _comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return "?"


def _processes_using(paths: list[str]) -> dict[int, str]:
    """Processes whose command line names one of `paths` (an nspawn started on a twin's rootfs by hand)."""
    wanted = [p.encode() for p in paths]
    found = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            argv = Path(entry.path, "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        for p in wanted:
            if p in argv:
                found[int(entry.name)] = f"started on {p.decode()}"
    return found
