"""`kubelab doctor`: simulated hosts (facts JSON files written here) judged through the command, plus the real
gather() on this machine.

Proof: the command run as a user runs it, on simulated host facts. When the lead has mounted `doctor` on the
main CLI, every case runs the installed `kubelab doctor` as a subprocess; until then the same command function
runs in-process through typer's CliRunner on an app wired exactly as the lead will
(`app.command("doctor")(doctor_command)`). Each rule has a failing host (exit 1, its message and fix) and a
passing one (exit 0) next to it. The facts are simulated because this machine has no Vagrant, no hypervisor
and no Windows. Real facts: `test_gather_on_this_machine` (this machine, with the Vagrant the test command
installs) and the facts recorded on it with Vagrant hidden from PATH, judged as a learner's report.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from helpers import REPO, kubelab
from kubelab.course import load_course
from kubelab.doctor import HostFacts, evaluate, gather, load_facts
from kubelab.doctor.cli import doctor_command
from kubelab.doctor.rules import parse_networks_conf

WIDE = {"COLUMNS": "400"}  # one table row per line, so a message is never wrapped in the middle


def _mounted_on_main_cli() -> bool:
    from kubelab.cli import LAZY_COMMANDS, app  # mounted lazily (kubelab.lazycli) or directly

    return 'doctor' in LAZY_COMMANDS or any(c.name == "doctor" for c in app.registered_commands)


@dataclass
class Run:
    returncode: int
    stdout: str
    stderr: str


def run_doctor(*args: str, env: dict | None = None) -> Run:
    env = {**WIDE, **(env or {})}
    if _mounted_on_main_cli():
        p = kubelab("doctor", *args, env=env)
        return Run(p.returncode, p.stdout, p.stderr)
    app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
    app.command("doctor")(doctor_command)
    app.command("version")(lambda: None)  # a second command makes it a group, like the real `kubelab`
    r = CliRunner().invoke(app, ["doctor", *args], env=env)
    if r.exception is not None and not isinstance(r.exception, SystemExit):
        raise r.exception
    return Run(r.exit_code, r.stdout, r.stderr)


HEALTHY = {
    "os": "linux",
    "arch": "amd64",
    "machine": "x86_64",
    "vagrant_version": "2.4.9",
    "providers": {"virtualbox": "7.1.4r165100"},
    "free_memory_mb": 16000,
    "total_memory_mb": 32000,
    "cpus": 8,
    "networks": [
        {"interface": "lo", "cidr": "127.0.0.1/8"},
        {"interface": "eth0", "cidr": "192.168.1.23/24"},
        # the course's own host-only network from an earlier `vagrant up`: fine
        {"interface": "vboxnet0", "cidr": "192.168.56.1/24"},
    ],
    "vbox_networks_conf": None,
}


def host(tmp_path: Path, **changes) -> Path:
    data = copy.deepcopy(HEALTHY)
    data.update(changes)
    path = tmp_path / f"facts-{len(list(tmp_path.glob('facts-*')))}.json"
    path.write_text(json.dumps(data))
    return path


def doctor_json(tmp_path: Path, facts: Path, *extra: str) -> tuple[Run, dict]:
    out = tmp_path / "report.json"
    r = run_doctor("--course", str(REPO), "--facts", str(facts), "--json", str(out), *extra)
    assert "Traceback" not in r.stdout + r.stderr
    return r, json.loads(out.read_text())


def titles(report: dict, severity: str) -> list[str]:
    return [f["title"] for f in report["findings"] if f["severity"] == severity]


def test_healthy_host_is_ready(tmp_path):
    r, report = doctor_json(tmp_path, host(tmp_path))
    assert r.returncode == 0, r.stdout + r.stderr
    assert report["ready"] is True and titles(report, "error") == []
    assert "ready for `vagrant up`" in r.stdout
    for seen in ("Vagrant 2.4.9", "Vagrant will use VirtualBox 7.1.4r165100", "MB of RAM free", "8 CPUs",
                 "inside VirtualBox's default host-only range 192.168.56.0/21"):
        assert any(seen in t for t in titles(report, "ok")), seen
        assert seen in r.stdout


# (case, facts that fail, title fragment, fix fragment, facts that pass the same rule)
CASES = [
    ("no vagrant", {"vagrant_version": None},
     "Vagrant is not installed", "install Vagrant 2.4.0 or newer", {"vagrant_version": "2.4.3"}),
    ("old vagrant", {"vagrant_version": "2.3.7"},
     "Vagrant 2.3.7 is too old (kubelab needs 2.4.0 or newer)", "install the current Vagrant",
     {"vagrant_version": "2.4.2"}),
    ("virtualbox 7.1 needs vagrant 2.4.2", {"vagrant_version": "2.4.1"},
     "Vagrant 2.4.1 does not support VirtualBox 7.1", "install Vagrant 2.4.2 or newer",
     {"vagrant_version": "2.4.2"}),
    ("virtualbox 7.2 needs vagrant 2.4.9", {"vagrant_version": "2.4.8", "providers": {"virtualbox": "7.2.0r170228"}},
     "Vagrant 2.4.8 does not support VirtualBox 7.2", "(or install VirtualBox 7.1, the newest one Vagrant 2.4.8 supports)",
     {"vagrant_version": "2.4.9", "providers": {"virtualbox": "7.2.0r170228"}}),
    ("subnet clash on eth0", {"networks": [{"interface": "eth0", "cidr": "192.168.56.23/24"}]},
     "the course network 192.168.56.0/24 is already used on eth0 (192.168.56.23/24)",
     "set network.private_subnet: 192.168.57.0/24 and the nodes' ip (master 192.168.57.10, worker 192.168.57.11)",
     {"networks": [{"interface": "eth0", "cidr": "192.168.57.23/24"}]}),
    ("networks.conf without the range", {"vbox_networks_conf": "# lab ranges\n* 10.0.0.0/8\n"},
     "/etc/vbox/networks.conf does not allow the course network 192.168.56.0/24 (it lists 10.0.0.0/8)",
     "echo '* 192.168.56.0/24' | sudo tee -a /etc/vbox/networks.conf",
     {"vbox_networks_conf": "* 10.0.0.0/8 192.168.0.0/16\n"}),
    ("too little RAM", {"free_memory_mb": 4000},
     "only 4000 MB of RAM free; the course needs 7168 MB", "free 3168 MB more", {"free_memory_mb": 7168}),
    ("too little RAM in all", {"free_memory_mb": 3000, "total_memory_mb": 4096},
     "this computer has 4096 MB of RAM; the course needs 7168 MB free", "use a computer with at least",
     {"free_memory_mb": 8000, "total_memory_mb": 16384}),
    ("too few CPUs", {"cpus": 1},
     "this computer has 1 CPU(s); node master needs 2", "use a computer with at least 2 CPUs", {"cpus": 2}),
    ("arm64 with old VirtualBox", {"os": "darwin", "arch": "arm64", "providers": {"virtualbox": "7.0.20r163906"}},
     "VirtualBox 7.0.20 cannot run VMs on this arm64 (Apple Silicon) computer",
     "install VirtualBox 7.1 or newer, the macOS / Apple Silicon (Arm64) package",
     {"os": "darwin", "arch": "arm64", "providers": {"virtualbox": "7.1.4r165100"}}),
    ("windows with Hyper-V", {"os": "windows", "hyperv_enabled": True, "vbox_networks_conf": None,
                              "networks": [{"interface": "Ethernet", "cidr": "192.168.1.5/24"}]},
     "Hyper-V is on, and VirtualBox would run on top of it", "bcdedit /set hypervisorlaunchtype off",
     {"os": "windows", "hyperv_enabled": False, "networks": [{"interface": "Ethernet", "cidr": "192.168.1.5/24"}]}),
    ("no provider", {"providers": {}},
     "no virtualization provider is installed", "install VirtualBox 7.1 or newer",
     {"providers": {"libvirt": "9.0.0"}, "vagrant_plugins": {"vagrant-libvirt": "0.12.2"}, "kvm": True}),
    ("libvirt without its plugin", {"providers": {"libvirt": "9.0.0"}, "kvm": True},
     "libvirt is installed but the Vagrant plugin vagrant-libvirt is not", "vagrant plugin install vagrant-libvirt",
     {"providers": {"libvirt": "9.0.0"}, "vagrant_plugins": {"vagrant-libvirt": "0.12.2"}, "kvm": True}),
    ("WSL without windows access", {"wsl": True, "vagrant_wsl_windows_access": False},
     "running inside WSL without VAGRANT_WSL_ENABLE_WINDOWS_ACCESS=1",
     "export VAGRANT_WSL_ENABLE_WINDOWS_ACCESS=1",
     {"wsl": True, "vagrant_wsl_windows_access": True}),
    ("lab twins hold the subnet", {"networks": [{"interface": "kl-kubelab", "cidr": "192.168.56.1/24"}]},
     "held by the lab twins' bridge kl-kubelab", "sudo kubelab twin down",
     {"networks": [{"interface": "virbr1", "cidr": "192.168.56.1/24"}]}),
]


@pytest.mark.parametrize("case,failing,title,fix,passing", CASES, ids=[c[0] for c in CASES])
def test_rule_fails_then_passes(tmp_path, case, failing, title, fix, passing):
    r, report = doctor_json(tmp_path, host(tmp_path, **failing))
    assert r.returncode == 1, r.stdout + r.stderr
    errors = [f for f in report["findings"] if f["severity"] == "error"]
    hit = [f for f in errors if title in f["title"]]
    assert hit, f"no error titled {title!r} in {[f['title'] for f in errors]}"
    assert fix in hit[0]["fix"], hit[0]["fix"]
    assert hit[0]["why"], "every error says why it matters"
    assert title in r.stdout and "✗" in r.stdout and "problem(s) to fix before `vagrant up`" in r.stdout

    r, report = doctor_json(tmp_path, host(tmp_path, **passing))
    assert not any(title in t for t in titles(report, "error")), titles(report, "error")
    if case != "WSL without windows access":  # a WSL host keeps its (non-blocking) WSL warning
        assert r.returncode == 0, (r.stdout + r.stderr, titles(report, "error"))


def test_unusable_provider_is_a_warning_when_vagrant_falls_back_to_another(tmp_path):
    facts = host(tmp_path, vagrant_version="2.4.8",
                 providers={"virtualbox": "7.2.0r170228", "libvirt": "9.0.0"},
                 vagrant_plugins={"vagrant-libvirt": "0.12.2"}, kvm=True)
    r, report = doctor_json(tmp_path, facts)
    assert r.returncode == 0, r.stdout
    assert "Vagrant will use libvirt 9.0.0" in titles(report, "ok")
    assert any("does not support VirtualBox 7.2" in t for t in titles(report, "warning"))
    # the same host pinned to VirtualBox cannot go on
    r, report = doctor_json(tmp_path, facts, "--provider", "virtualbox")
    assert r.returncode == 1
    assert any("does not support VirtualBox 7.2" in t for t in titles(report, "error"))


def test_bad_input_is_one_line_and_exit_2(tmp_path):
    corrupt = tmp_path / "corrupt.json"
    corrupt.write_text('{"os": "linux", ')
    r = run_doctor("--course", str(REPO), "--facts", str(corrupt))
    assert r.returncode == 2
    assert r.stderr.startswith(f"error: facts file {corrupt} is not valid JSON")
    assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 2  # error: + fix:

    wrong = host(tmp_path, arch="sparc")
    r = run_doctor("--course", str(REPO), "--facts", str(wrong))
    assert r.returncode == 2 and "arch" in r.stderr and "Traceback" not in r.stderr

    r = run_doctor("--course", str(REPO), "--facts", str(tmp_path / "missing.json"))
    assert r.returncode == 2 and "does not exist" in r.stderr

    r = run_doctor("--course", str(REPO), "--facts", str(host(tmp_path)), "--provider", "hyperv")
    assert r.returncode == 2 and "unknown provider 'hyperv'" in r.stderr

    # the passing side: the same command on a valid file
    r = run_doctor("--course", str(REPO), "--facts", str(host(tmp_path)))
    assert r.returncode == 0 and r.stderr == ""


def test_json_report_replays_as_facts(tmp_path):
    r1, report = doctor_json(tmp_path, host(tmp_path, cpus=1))
    sent = tmp_path / "from-learner.json"
    sent.write_text(json.dumps(report))
    r2 = run_doctor("--course", str(REPO), "--facts", str(sent))
    assert r1.returncode == r2.returncode == 1
    assert "this computer has 1 CPU(s)" in r2.stdout


def test_gather_on_this_machine(tmp_path):
    """Real facts of this machine, which has Vagrant (the test command installs it): the facts say what the tool
    itself says, survive the JSON round trip, and the command judges them without a crash."""
    facts = gather()
    assert isinstance(facts, HostFacts)
    assert facts.os == "linux" and facts.cpus == os.cpu_count()
    assert facts.free_memory_mb and facts.total_memory_mb and facts.free_memory_mb <= facts.total_memory_mb
    assert any(n.interface == "lo" for n in facts.networks)
    vagrant = shutil.which("vagrant")
    assert vagrant, "no vagrant on PATH: the test command installs it (apt-get install vagrant)"
    reported = subprocess.run([vagrant, "--version"], capture_output=True, text=True).stdout
    assert facts.vagrant_version and facts.vagrant_version in reported
    # gathered facts survive the JSON round trip a learner's report takes
    path = tmp_path / "real.json"
    path.write_text(facts.model_dump_json())
    assert load_facts(path) == facts
    # and the command on this real machine: no crash; this machine cannot run VMs (no provider), so exit 1
    r = run_doctor("--course", str(REPO))
    assert r.returncode == 1, r.stdout + r.stderr
    assert "Traceback" not in r.stderr


def _path_without(tool: str, folder: Path) -> str:
    """This PATH with `tool` hidden: every other program of every PATH folder linked into `folder`."""
    folder.mkdir()
    for d in os.environ["PATH"].split(os.pathsep):
        if not os.path.isdir(d):
            continue
        for name in os.listdir(d):
            link = folder / name
            if name != tool and not link.exists() and os.access(os.path.join(d, name), os.X_OK):
                link.symlink_to(os.path.join(d, name))
    return str(folder)


def test_facts_recorded_without_vagrant_say_it_is_not_installed(tmp_path, monkeypatch):
    """Real facts recorded on this machine with Vagrant hidden from PATH (everything else as it is), handed to
    the command with --facts as a learner's report: Vagrant is not installed, exit 1, with the fix."""
    monkeypatch.setenv("PATH", _path_without("vagrant", tmp_path / "bin"))
    assert shutil.which("vagrant") is None
    facts = gather()
    monkeypatch.undo()
    assert facts.vagrant_version is None and facts.vagrant_plugins == {}
    recorded = tmp_path / "no-vagrant.json"
    recorded.write_text(facts.model_dump_json())
    r = run_doctor("--course", str(REPO), "--facts", str(recorded))
    assert r.returncode == 1, r.stdout + r.stderr
    assert "Vagrant is not installed" in r.stdout and "install Vagrant 2.4.0 or newer" in r.stdout, r.stdout
    assert "Traceback" not in r.stderr


def test_networks_conf_parsing():
    ranges = parse_networks_conf("# comment\n* 10.0.0.0/8 192.168.0.0/16 # trailing\n* 2001::/64\nnot a range\n")
    assert [str(r) for r in ranges] == ["10.0.0.0/8", "192.168.0.0/16", "2001::/64"]
    assert parse_networks_conf("") == []


class _Canned:
    """A probe answering from canned outputs (in the tools' documented formats) instead of running programs:
    proves the parsers for macOS, Windows and Vagrant output that this Linux machine cannot produce."""

    def __init__(self, outputs: dict[str, str]):
        self.outputs = outputs
        self.notes: list[str] = []

    def run(self, argv, **_):
        return self.outputs.get(" ".join(argv))

    def read(self, path):
        return None


def test_probe_output_parsers():
    from kubelab.doctor import facts as F

    mac = _Canned({"ifconfig": textwrap.dedent("""\
        lo0: flags=8049<UP,LOOPBACK,RUNNING,MULTICAST> mtu 16384
        \tinet 127.0.0.1 netmask 0xff000000
        en0: flags=8863<UP,BROADCAST,SMART,RUNNING,SIMPLEX,MULTICAST> mtu 1500
        \tinet6 fe80::1c2a:5bff:fe3a:1%en0 prefixlen 64 secured scopeid 0xe
        \tinet 192.168.56.40 netmask 0xffffff00 broadcast 192.168.56.255
        bridge100: flags=8a63<UP,BROADCAST,SMART,RUNNING,ALLMULTI,SIMPLEX,MULTICAST> mtu 1500
        \tinet 192.168.64.1 netmask 0xffffff00 broadcast 192.168.64.255
        """)})
    nets = {(n.interface, n.cidr) for n in F._networks("darwin", mac)}
    assert {("lo0", "127.0.0.1/8"), ("en0", "192.168.56.40/24"), ("en0", "fe80::1c2a:5bff:fe3a:1/64"),
            ("bridge100", "192.168.64.1/24")} == nets

    win = _Canned({"powershell -NoProfile -NonInteractive -Command Get-NetIPAddress | Select-Object "
                   "InterfaceAlias,IPAddress,PrefixLength | ConvertTo-Json": json.dumps([
                       {"InterfaceAlias": "Wi-Fi", "IPAddress": "10.0.0.7", "PrefixLength": 24},
                       {"InterfaceAlias": "VirtualBox Host-Only Network", "IPAddress": "192.168.56.1",
                        "PrefixLength": 24}])})
    assert [n.cidr for n in F._networks("windows", win)] == ["10.0.0.7/24", "192.168.56.1/24"]
    assert F._networks("windows", _Canned({})) == []  # PowerShell absent: no networks, no crash

    plugins = F._vagrant_plugins("vagrant-libvirt (0.12.2, global)\n  - Version Constraint: > 0\n"
                                 "vagrant-vmware-desktop (3.0.4, global)\n")
    assert plugins == {"vagrant-libvirt": "0.12.2", "vagrant-vmware-desktop": "3.0.4"}
    assert F._vagrant_plugins("No plugins installed.\n") == {}

    vbox = _Canned({"VBoxManage --version": "WARNING: The vboxdrv kernel module is not loaded. Either there is "
                                            "no module\n         available for the current kernel\n7.1.4r165100\n"})
    assert F._virtualbox("linux", False, vbox) == "7.1.4r165100"
    assert F._virtualbox("linux", False, _Canned({})) is None

    assert F.parse_version("Vagrant 2.4.9") == (2, 4, 9) and F.parse_version("prlctl version 19.1") == (19, 1, 0)
    assert F.parse_version("no digits") is None
