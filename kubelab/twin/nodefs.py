"""A twin's own root file system: a copy of the base, made to look like a fresh Vagrant Debian box.

Lab 1 grades node preparation (swap, /etc/hosts, kernel modules and sysctls), so the
starting state must be the one students meet on the Vagrant VMs: a swap line in fstab,
Debian's default /etc/hosts, no modules-load.d or Kubernetes sysctl files. Everything here
is written into the stopped file system; nothing runs inside it.
"""

from __future__ import annotations

import ipaddress
import os
import uuid
from pathlib import Path

from kubelab.errors import InfrastructureError
from kubelab.twin import hostcmd, mounts

SSH_FIX = "check the twin's root file system; `kubelab twin up --fresh` rebuilds it"

# systemd-sysctl.service only runs when /proc/sys/net/ is writable (ConditionPathIsReadWrite=).
# An empty assignment clears the condition, so /etc/sysctl.d is applied at every boot as on a VM.
# In the twin only net.* is writable (its own network namespace); kernel.*/vm.* stay read-only,
# so their writes fail, as intended: those settings belong to the host kernel.
SYSCTL_DROPIN = """\
# kubelab twin: apply /etc/sysctl.d at boot as on a VM (only net.* is writable in a twin)
[Unit]
ConditionPathIsReadWrite=
"""

# Shutdown must not wait 90 s for a process that ignores SIGTERM (e.g. a pod's PID 1 later on).
STOP_TIMEOUT_CONF = """\
# kubelab twin: stop quickly, `kubelab twin down` waits at most 20 s
[Manager]
DefaultTimeoutStopSec=15s
"""

FSTAB = """\
# /etc/fstab: static file system information.
#
# <file system> <mount point>   <type>  <options>       <dump>  <pass>
# The root file system is provided by the twin's container (systemd-nspawn).
#
# kubelab twin: this swap line mimics the Vagrant Debian box, where swap is enabled and Lab 1
# asks to disable it. There is no /swapfile and nothing is ever swapped on: swap is global to
# the host kernel that the twins share.
/swapfile none swap sw 0 0
"""


def hosts_file(hostname: str) -> str:
    # Debian's default: the node's own name on 127.0.1.1, nothing about the other nodes.
    return (f"127.0.0.1\tlocalhost\n127.0.1.1\t{hostname}\n\n"
            "# The following lines are desirable for IPv6 capable hosts\n"
            "::1     localhost ip6-localhost ip6-loopback\n"
            "ff02::1 ip6-allnodes\nff02::2 ip6-allrouters\n")


def network_file(ip: ipaddress.IPv4Address, subnet: ipaddress.IPv4Network,
                 gateway: ipaddress.IPv4Address) -> str:
    # 10- sorts before nspawn's shipped 80-container-host0.network (DHCP), so this one applies.
    return ("# kubelab twin: the node's private address from course.yaml, as Vagrant's private_network\n"
            "[Match]\nName=host0\n\n"
            f"[Network]\nAddress={ip}/{subnet.prefixlen}\nGateway={gateway}\n")


def _write(path: Path, text: str, mode: int = 0o644) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.is_symlink():
        path.unlink()  # e.g. a symlink into the host: replace it, never write through it
    path.write_text(text)
    os.chmod(path, mode)


def _uid_gid(root: Path, user: str) -> tuple[int, int]:
    for line in (root / "etc/passwd").read_text().splitlines():
        f = line.split(":")
        if f[0] == user:
            return int(f[2]), int(f[3])
    raise KeyError(user)


def _home(root: Path, user: str) -> Path:
    for line in (root / "etc/passwd").read_text().splitlines():
        f = line.split(":")
        if f[0] == user:
            return root / f[5].lstrip("/")
    raise KeyError(user)


def authorize_key(root: Path, user: str, pubkey: str) -> None:
    """Ensure `pubkey` is in the user's authorized_keys (kept if a student added others)."""
    try:
        uid, gid = _uid_gid(root, user)
        ssh_dir = _home(root, user) / ".ssh"
    except (OSError, KeyError, ValueError, IndexError):
        raise InfrastructureError(f"the twin root file system {root} has no usable user {user} "
                                  "(missing or broken /etc/passwd)",
                                  "rebuild it from the base with `kubelab twin up --fresh`")
    # Seen from the host, an absolute symlink made inside the twin (e.g. ~/.ssh -> /root/.ssh)
    # points into the host: never follow one out of the twin's root.
    real_root = os.path.realpath(root)
    if os.path.commonpath([real_root, os.path.realpath(ssh_dir / "authorized_keys")]) != real_root:
        raise InfrastructureError(f"{ssh_dir} in the twin is a symlink leading out of {root}",
                                  "remove that symlink inside the twin, or rebuild it with `kubelab twin up --fresh`")
    ssh_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    keys = ssh_dir / "authorized_keys"
    lines = keys.read_text().splitlines() if keys.is_file() and not keys.is_symlink() else []
    if pubkey.strip() not in (line.strip() for line in lines):
        lines.append(pubkey.strip())
        _write(keys, "\n".join(lines) + "\n", 0o600)
    for p in (ssh_dir, keys):
        os.chown(p, uid, gid)
    os.chmod(ssh_dir, 0o700)


def prepare(root: Path, *, hostname: str, ip: ipaddress.IPv4Address, subnet: ipaddress.IPv4Network,
            gateway: ipaddress.IPv4Address, user: str, pubkey: str) -> None:
    """Turn a fresh copy of the base into node `hostname`."""
    _write(root / "etc/hostname", hostname + "\n")
    _write(root / "etc/hosts", hosts_file(hostname))
    _write(root / "etc/fstab", FSTAB)
    # every copy of the base has the same machine-id; nodes must differ (journald, kubelet, dbus)
    _write(root / "etc/machine-id", uuid.uuid4().hex + "\n", 0o444)

    _write(root / "etc/systemd/network/10-kubelab-host0.network", network_file(ip, subnet, gateway))
    _write(root / "etc/systemd/system.conf.d/10-kubelab-twin.conf", STOP_TIMEOUT_CONF)
    _write(root / "etc/systemd/system/systemd-sysctl.service.d/10-kubelab-twin.conf", SYSCTL_DROPIN)

    # A fresh box has no module or sysctl files for Kubernetes; Debian's comment-only
    # modules-load.d/modules.conf goes too, so "no /etc/modules-load.d/*.conf" holds at the start.
    for f in (root / "etc/modules-load.d").glob("*.conf"):
        f.unlink()
    for f in (root / "etc/sysctl.d").glob("*k8s*"):
        f.unlink()

    # Host keys: the base's keys would be shared by every twin built from it.
    for f in (root / "etc/ssh").glob("ssh_host_*"):
        f.unlink()
    hostcmd.run(["ssh-keygen", "-A", "-f", str(root)], what=f"generating {hostname}'s SSH host keys", fix=SSH_FIX)

    hostcmd.run(["systemctl", f"--root={root}", "enable", "systemd-networkd.service", "ssh.service"],
                what=f"enabling systemd-networkd and ssh in {hostname}", fix=SSH_FIX)

    # The Vagrant box's login user: bash, passwordless sudo, key-only login ('*' = no password,
    # not locked: sshd refuses key logins to a locked account when PAM is off).
    if not _has_user(root, user):
        hostcmd.run(["useradd", f"--root={root}", "--create-home", "--shell", "/bin/bash", "--user-group", user],
                    what=f"creating user {user} in {hostname}", fix=SSH_FIX)
    hostcmd.run(["usermod", f"--root={root}", "--password", "*", user],
                what=f"setting up user {user} in {hostname}", fix=SSH_FIX)
    _write(root / f"etc/sudoers.d/{user}", f"{user} ALL=(ALL) NOPASSWD:ALL\n", 0o440)
    authorize_key(root, user, pubkey)
    authorize_key(root, "root", pubkey)


def _has_user(root: Path, user: str) -> bool:
    try:
        _uid_gid(root, user)
        return True
    except KeyError:
        return False


def copy_base(base: Path, dest: Path) -> None:
    """cp -a (reflinks where the file system has them): keeps owners, modes, xattrs, device nodes."""
    mounts.remove_tree(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    hostcmd.run(["cp", "-a", "--reflink=auto", str(base), str(dest)], what=f"copying the base root file system to {dest}",
                fix="check free space under the twin folder (KUBELAB_TWIN_DIR)", timeout=900)
