"""Lab twins: real systemd-nspawn nodes with real sshd, reached over SSH like the Vagrant VMs. No mocks.

The session fixture `twins` (conftest.py) boots the course's twins once; tests that are about
booting or stopping (restart, down) do that on the same twins and leave them running again.
The last test stops them and checks nothing is left behind.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from kubelab.course import load_course
from kubelab.errors import InfrastructureError, UsageError
from kubelab.twin import TwinSet
from kubelab.twin import hostcmd, lease, mirror, network, paths

REPO = Path(__file__).resolve().parents[1]
COURSE = load_course(REPO)
NODES = COURSE.model.nodes
USER = COURSE.model.lab_user


def ssh(twins: TwinSet, node: str, command: str, user: str | None = None,
        check: bool = True) -> subprocess.CompletedProcess:
    """Run `command` on a twin exactly as a grader would: ssh with the twins' ssh-config."""
    argv = ["ssh", "-F", str(twins.ssh_config_file()), "-o", "BatchMode=yes", "-o", "ConnectTimeout=10"]
    if user:
        argv += ["-l", user]
    proc = subprocess.run([*argv, node, command], capture_output=True, text=True, timeout=60)
    if check:
        assert proc.returncode == 0, f"{node}$ {command} -> {proc.returncode}: {proc.stderr.strip()}"
    return proc


NOBODY = 65534  # Debian's nobody/nogroup


def cli(*args: str, uid: int | None = None, env: dict | None = None) -> subprocess.CompletedProcess:
    """The twin CLI in a fresh interpreter (optionally as an unprivileged user: root really dropped)."""
    argv = [sys.executable, "-m", "kubelab.twin.cli", *args]
    if uid is not None:
        argv = ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups", "--", *argv]
    return subprocess.run(argv, capture_output=True, text=True, timeout=120, cwd="/",
                          env={**os.environ, "HOME": "/tmp", **(env or {})})


def assert_one_line_error(proc: subprocess.CompletedProcess, code: int, *fragments: str) -> None:
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == code, proc
    assert "Traceback" not in proc.stderr
    assert len(lines) == 2 and lines[0].startswith("error: ") and lines[1].startswith("fix: "), proc.stderr
    for f in fragments:
        assert f in proc.stderr


# -- without twins: naming, mirror discovery, preconditions, CLI errors -------------------------------

def test_bridge_name_is_deterministic_and_fits_ifnamsiz():
    assert paths.bridge_name("kubelab") == "kl-kubelab"
    long_a, long_b = paths.bridge_name("a-very-long-course-id-1"), paths.bridge_name("a-very-long-course-id-2")
    assert len(long_a) <= 15 and len(long_b) <= 15
    assert long_a != long_b
    assert long_a == paths.bridge_name("a-very-long-course-id-1")


def test_mirror_comes_from_host_apt_configuration(tmp_path, monkeypatch):
    monkeypatch.delenv(mirror.ENV, raising=False)
    (tmp_path / "sources.list.d").mkdir()
    (tmp_path / "sources.list.d" / "debian.sources").write_text(
        "Types: deb\n# a comment\nURIs: http://mirror.invalid/debian\nSuites: bookworm bookworm-updates\n"
        "Components: main\n\nTypes: deb\nURIs: http://mirror.invalid/debian-security\n"
        "Suites: bookworm-security\nComponents: main\n")
    assert mirror.debian_mirror("bookworm", tmp_path) == "http://mirror.invalid/debian"

    (tmp_path / "sources.list.d" / "debian.sources").unlink()
    (tmp_path / "sources.list").write_text("# deb http://old.invalid/debian bookworm main\n"
                                           "deb [arch=amd64 signed-by=/k.gpg] http://list.invalid/debian bookworm main\n")
    assert mirror.debian_mirror("bookworm", tmp_path) == "http://list.invalid/debian"

    monkeypatch.setenv(mirror.ENV, "http://override.invalid/debian")
    assert mirror.debian_mirror("bookworm", tmp_path) == "http://override.invalid/debian"

    monkeypatch.delenv(mirror.ENV)
    (tmp_path / "sources.list").write_text("")
    with pytest.raises(UsageError, match="no Debian mirror"):
        mirror.debian_mirror("bookworm", tmp_path)


def test_missing_tools_are_refused_with_the_install_command(tmp_path):
    with pytest.raises(UsageError) as e:
        hostcmd.require_tools(path=str(tmp_path))  # a PATH holding nothing
    assert "debootstrap" in e.value.problem and "systemd-nspawn" in e.value.problem
    assert e.value.fix.startswith("apt-get install -y debootstrap systemd-container")


def test_cli_missing_course_is_one_line_exit_2(tmp_path):
    proc = cli("status", "--course", str(tmp_path / "nowhere"))
    assert_one_line_error(proc, 2, "course.yaml does not exist", "--course")


def test_cli_not_root_is_one_line_exit_2():
    if os.geteuid() != 0:
        pytest.fail("this test drops root to check the refusal: run pytest as root", pytrace=False)
    proc = cli("up", "--course", str(REPO), uid=NOBODY)
    assert_one_line_error(proc, 2, "must be managed as root", "sudo")


def test_cli_ssh_config_needs_neither_root_nor_twins():
    proc = cli("ssh-config", "--course", str(REPO), uid=NOBODY)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == TwinSet(COURSE).ssh_config()


# -- with the twins -------------------------------------------------------------------------

@pytest.mark.twins
def test_up_boots_every_node_reachable_over_ssh(fresh_twins):
    twins = fresh_twins
    states = {s.name: s for s in twins.status()}
    assert set(states) == {n.name for n in NODES}
    for node in NODES:
        s = states[node.name]
        assert (s.state, s.ssh, s.ip, s.role) == ("running", True, str(node.ip), node.role), s
        assert ssh(twins, node.name, "whoami").stdout.strip() == USER
        assert ssh(twins, node.name, "hostname").stdout.strip() == node.name
        addrs = ssh(twins, node.name, "ip -4 -o addr show dev host0").stdout
        assert f" {node.ip}/{COURSE.model.network.private_subnet.prefixlen} " in addrs
        ssh(twins, node.name, "sudo -n true")
        assert ssh(twins, node.name, "getent passwd $(whoami)").stdout.strip().endswith(":/bin/bash")
        assert ssh(twins, node.name, "id -u", user="root").stdout.strip() == "0"


@pytest.mark.twins
def test_nodes_reach_each_other_on_the_private_network(twins):
    for a in NODES:
        for b in NODES:
            if a.name != b.name:
                ssh(twins, a.name, f"timeout 5 bash -c '</dev/tcp/{b.ip}/22'")


@pytest.mark.twins
def test_starting_state_is_a_fresh_vagrant_debian_box(fresh_twins):
    twins = fresh_twins
    machine_ids, host_keys = set(), set()
    for node in NODES:
        n = node.name
        fstab = ssh(twins, n, "cat /etc/fstab").stdout
        assert "/swapfile none swap sw 0 0" in fstab.splitlines()
        hosts = [line.split() for line in ssh(twins, n, "cat /etc/hosts").stdout.splitlines()]
        assert ["127.0.0.1", "localhost"] in hosts and ["127.0.1.1", n] in hosts
        assert not any(str(other.ip) in h or other.name in h[1:] for h in hosts for other in NODES
                       if other.name != n)
        assert ssh(twins, n, "ls /etc/modules-load.d/*.conf", check=False).returncode != 0
        assert ssh(twins, n, "ls /etc/sysctl.d/ | grep -i k8s", check=False).returncode != 0
        ssh(twins, n, "python3 -c 'print(1)'")
        # nothing actually swapped on (swap is the host's): the swap line only mimics the box
        assert ssh(twins, n, "tail -n +2 /proc/swaps").stdout.strip() == ""
        assert ssh(twins, n, "systemctl is-system-running --wait").stdout.strip() == "running"
        machine_ids.add(ssh(twins, n, "cat /etc/machine-id").stdout.strip())
        host_keys.add(ssh(twins, n, "cat /etc/ssh/ssh_host_ed25519_key.pub").stdout.split()[1])
    assert len(machine_ids) == len(host_keys) == len(NODES)


@pytest.mark.twins
def test_second_up_is_a_no_op(twins):
    before = {s.name: s.pid for s in twins.status()}
    said: list[str] = []
    twins.up(progress=said.append)
    assert {s.name: s.pid for s in twins.status()} == before
    assert not any("booting" in line or "copying" in line for line in said), said


@pytest.mark.twins
def test_ssh_config_has_vagrant_format(twins):
    key = twins.paths.key
    expected = "".join(
        f"Host {n.name}\n  HostName {n.ip}\n  User {USER}\n  Port 22\n  UserKnownHostsFile /dev/null\n"
        f"  StrictHostKeyChecking no\n  PasswordAuthentication no\n  IdentityFile {key}\n"
        "  IdentitiesOnly yes\n  LogLevel FATAL\n\n" for n in NODES)
    assert twins.ssh_config() == expected
    assert twins.ssh_config_file().read_text() == expected
    assert key.is_file() and (key.stat().st_mode & 0o077) == 0
    assert not str(key).startswith(str(REPO))  # the key never lands in the repository


@pytest.mark.twins
def test_restart_keeps_state_and_applies_sysctl_d(twins):
    node = NODES[0].name
    marker = f"written before restart {time.time()}"
    conf = "/etc/sysctl.d/90-kubelab-test-forward.conf"
    before = {s.name: s.pid for s in twins.status()}
    host_forward = Path("/proc/sys/net/ipv4/ip_forward").read_text()
    node_forward = ssh(twins, node, "cat /proc/sys/net/ipv4/ip_forward").stdout.strip()
    try:
        ssh(twins, node, f"echo '{marker}' > ~/marker && echo net.ipv4.ip_forward=1 | sudo tee {conf}"
                         " && echo 0 | sudo tee /proc/sys/net/ipv4/ip_forward")
        twins.restart(progress=None)
        after = {s.name: s.pid for s in twins.status()}
        assert all(after[n] != before[n] for n in before)
        assert ssh(twins, node, "cat ~/marker").stdout.strip() == marker
        # applied at boot by systemd-sysctl, as on a VM
        assert ssh(twins, node, "cat /proc/sys/net/ipv4/ip_forward").stdout.strip() == "1"
        assert Path("/proc/sys/net/ipv4/ip_forward").read_text() == host_forward  # the twin's own netns
    finally:
        # leave the node as it was (a fresh box forwards nothing: Lab 1 turns it on)
        back = ssh(twins, node, f"rm -f ~/marker; sudo rm -f {conf}; echo {node_forward} | sudo tee "
                                "/proc/sys/net/ipv4/ip_forward", check=False)
    assert back.returncode == 0, back.stderr
    left = ssh(twins, node, f"cat /proc/sys/net/ipv4/ip_forward; ls ~/marker {conf} 2>&1 || true").stdout
    assert left.splitlines()[0] == node_forward and "No such file" in left and left.count("No such file") == 2, left


@pytest.mark.twins
def test_twin_that_cannot_boot_fails_naming_its_console_log(tmp_path, monkeypatch, request):
    """A second twin set (own id, subnet, bridge, twin folder) whose root file system holds no OS:
    nspawn refuses it at once, and up() says so and where to read why. Needs no session twins; holds that
    set's own lease (in the real twin folder) so that two sessions never boot it on the same bridge at once."""
    held = lease.acquire("kltest-broken", wait_s=10 * 60)
    request.addfinalizer(held.close)
    data = yaml.safe_load((REPO / "course.yaml").read_text())
    data["course"]["id"] = "kltest-broken"
    data["network"]["private_subnet"] = "192.168.57.0/24"
    # a course needs a worker too; both root file systems are broken, so nothing is copied and the first one
    # booted fails
    data["nodes"] = [{"name": "broken", "role": "control-plane", "ip": "192.168.57.10", "cpus": 2, "memory_mb": 2048},
                     {"name": "broken-w", "role": "worker", "ip": "192.168.57.11", "cpus": 1, "memory_mb": 1024}]
    (tmp_path / "course").mkdir()
    (tmp_path / "course" / "course.yaml").write_text(yaml.safe_dump(data))
    monkeypatch.setenv("KUBELAB_TWIN_DIR", str(tmp_path / "twins"))
    broken = TwinSet(load_course(tmp_path / "course"))
    for name in ("broken", "broken-w"):
        rootfs = broken.paths.node(name).rootfs
        for d in ("etc", "root", f"home/{USER}"):
            (rootfs / d).mkdir(parents=True)
        (rootfs / "etc/passwd").write_text(f"root:x:0:0:root:/root:/bin/bash\n"
                                           f"{USER}:x:1000:1000::/home/{USER}:/bin/bash\n")
    try:
        with pytest.raises(InfrastructureError) as e:
            broken.up(progress=None)
        failed = re.match(r"twin (broken|broken-w) stopped while booting: ", e.value.problem)
        assert failed, e.value.problem
        assert str(broken.paths.node(failed.group(1)).log) in e.value.fix
        assert broken.paths.key.is_file()
    finally:
        broken.down(wipe=True)  # root file systems and key go too
    assert broken.leftovers() == []
    assert not broken.paths.root.exists()
    assert {s.state for s in broken.status()} == {"absent"}


@pytest.mark.twins
def test_down_leaves_nothing_behind(twins):
    """Last twins test: stops the session's twins, checks the host, then boots them again for later test files."""
    try:
        # A crashed supervisor: SIGKILL one twin's nspawn (by its recorded PID). Its systemd and
        # services live on, orphaned; leftovers() sees them and down() kills them by cgroup.
        first = twins.paths.node(NODES[0].name)
        pid = int(first.pidfile.read_text().split()[0])
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 5
        while twins.status()[0].state == "running" and time.monotonic() < deadline:
            time.sleep(0.1)
        left = twins.leftovers()
        assert any(item.endswith("in a twin cgroup") and "(systemd)" in item for item in left), left

        twins.down()
        assert twins.leftovers() == []
        assert {s.state for s in twins.status()} == {"stopped"}
        twins.down()  # safe when nothing runs
        assert twins.leftovers() == []

        # leftovers() does report what remains: a bridge of the twin set that exists
        subprocess.run(["ip", "link", "add", twins.bridge, "type", "bridge"], check=True)
        assert f"bridge {twins.bridge}" in twins.leftovers()
        twins.down()  # and down removes it
        assert twins.leftovers() == []

        # the bridge address on another host interface is refused, before anything is started
        other = "kl-conflict0"
        subprocess.run(["ip", "link", "add", other, "type", "bridge"], check=True)
        try:
            subprocess.run(["ip", "addr", "add", str(network.bridge_interface(twins.subnet)), "dev", other],
                           check=True)
            with pytest.raises(UsageError, match=f"already on host interface {other}"):
                twins.up(progress=None)
            assert twins.leftovers() == []
        finally:
            subprocess.run(["ip", "link", "delete", other], check=False)
    finally:
        twins.up(progress=None)  # stopped twins boot from their disks: cheap, and later tests keep working
