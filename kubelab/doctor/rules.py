"""Pure rules: (HostFacts, course) -> findings. No I/O here, so every rule can be tested on simulated hosts.

Each finding says what is wrong (title), why it matters for `vagrant up` and the labs (why), and the exact
thing to do (fix). Severity `error` means `vagrant up` will fail or the labs cannot work; `warning` means it
may work but something is off or unknown; `ok` is a passed check, shown so the learner sees what was looked at.

Compatibility facts, as verified (with the `search` tool) when this file was written:

* VirtualBox 7.1 needs Vagrant >= 2.4.2. Vagrant 2.4.1 refuses it ("Recent version of Virtualbox 7.1.0 is not
  supported by vagrant 2.4.1", hashicorp/vagrant issue #13501); support was added by hashicorp/vagrant PR #13513
  (merged Oct 2024) and listed under "2.4.2.dev (UNRELEASED) FEATURES: provider/virtualbox: Add support for
  VirtualBox 7.1" in hashicorp/vagrant CHANGELOG.md, i.e. the first release after 2.4.1. (One third-party copy
  of the release notes files the same entry under 2.4.3; 2.4.2 is the changelog's own heading.)
* VirtualBox 7.2 needs Vagrant >= 2.4.9. Vagrant 2.4.7 lists "4.0 ... 7.0, 7.1" as supported and refuses 7.2
  (void-linux/void-packages issue #56826); support came with hashicorp/vagrant PR #13709 "Add Vbox 7.2 support"
  (merged Aug 2025, tested on a *patched* 2.4.8) and the Vagrant changelog reads "2.4.9 (August 21, 2025)
  FEATURES: provider/virtualbox: Add support for VirtualBox 7.2 [GH-13709]".
* VirtualBox 7.0 support arrived in Vagrant 2.3.2 (CHANGELOG "2.3.2 (October 18, 2022) FEATURES:
  provider/virtualbox: Add support for VirtualBox 7.0 [GH-12947]").
* VirtualBox runs on arm64 (Apple Silicon) hosts from 7.1 on: "As of September 2024, Virtualbox 7.1+ now works
  on Apple Silicon" (Varying-Vagrant-Vagrants/VVV issue #2747, citing the VirtualBox 7.1 release notes); before
  that VirtualBox was x86-64 only.
* VirtualBox host-only networks: "On Linux, macOS and Solaris Oracle VM VirtualBox will only allow IP addresses
  in 192.168.56.0/21 range to be assigned to host-only adapters ... If other ranges are desired, they can be
  enabled by creating /etc/vbox/networks.conf and specifying allowed ranges there" (VirtualBox manual, ch. 6
  "Host-Only Networking", network_hostonly; restriction introduced in VirtualBox 6.1.28). When the file exists
  its ranges replace the default, so it must list the course subnet itself. Vagrant checks this before it boots
  anything since 2.2.19 ("provider/virtualbox: Validate VirtualBox hostonly network range [GH-12564]").
* Vagrant 2.3.5 dropped its own refusal to use VirtualBox when Hyper-V is on ("Remove check for hyperv being
  enabled when verifying virtualbox is usable on windows [GH-13090]"), so nothing stops a learner from running
  VirtualBox on top of Hyper-V: this doctor has to.
* Vagrant under WSL: "Vagrant is unable to use the VirtualBox provider from the Windows Subsystem for Linux
  without access to the Windows environment" until VAGRANT_WSL_ENABLE_WINDOWS_ACCESS=1 is exported (Vagrant's
  WSL documentation, https://developer.hashicorp.com/vagrant/docs/other/wsl).
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from typing import Literal, Optional

from pydantic import BaseModel

from kubelab.course import Course
from kubelab.doctor.facts import PROVIDERS, HostFacts, parse_version

Severity = Literal["error", "warning", "ok"]

# The oldest Vagrant kubelab accepts, and why: 2.4.0 added box architecture support ("core: Add architecture
# support [GH-13239]", CHANGELOG 2.4.0, October 16, 2023), which lets one box name serve both the amd64 and the
# arm64 (Apple Silicon) laptops of this course. Every VirtualBox it may meet raises the bar further (below).
MIN_VAGRANT = (2, 4, 0)
MIN_VAGRANT_WHY = ("2.4.0 is the first Vagrant that picks a box's build by CPU architecture, which the course "
                   "needs to serve both amd64 and arm64 (Apple Silicon) laptops")
VAGRANT_INSTALL_URL = "https://developer.hashicorp.com/vagrant/install"
VIRTUALBOX_URL = "https://www.virtualbox.org/wiki/Downloads"

# VirtualBox (major, minor) -> the first Vagrant release that supports it (sources in the module docstring).
VAGRANT_FOR_VIRTUALBOX: dict[tuple[int, int], tuple[int, int, int]] = {
    (7, 0): (2, 3, 2),
    (7, 1): (2, 4, 2),
    (7, 2): (2, 4, 9),
}
NEWEST_KNOWN_VIRTUALBOX = max(VAGRANT_FOR_VIRTUALBOX)
VIRTUALBOX_ARM64_MIN = (7, 1, 0)
VIRTUALBOX_MAINTAINED_MIN = (7, 0, 0)  # 6.1 and older: out of Oracle's support

HEADROOM_MB = 1024  # for the host OS and the hypervisor's own per-VM overhead
VBOX_DEFAULT_HOSTONLY = ipaddress.IPv4Network("192.168.56.0/21")

# Host interfaces a hypervisor creates for host-only/private networks. A course subnet on one of these is
# expected: it may be the course's own network from a previous `vagrant up`.
HYPERVISOR_INTERFACE = re.compile(
    r"^(vboxnet\d+|virbr\d+|vmnet\d+|vnic\d+|bridge1\d\d)$"  # VirtualBox, libvirt, VMware, Parallels, macOS vmnet
    r"|VirtualBox Host-Only|VMware Network Adapter VMnet",  # the same on Windows
    re.I,
)

# kubelab's own lab twins put the course subnet on a bridge named `kl-<course id>` (kubelab/twin/paths.py):
# a real clash with the VMs, but one with its own fix.
TWIN_BRIDGE = re.compile(r"^kl-")

# Vagrant tries the providers configured in the Vagrantfile in order and takes the first usable one
# ("Providers in config.vm.provider blocks ... Earlier providers are chosen before later ones", Vagrant 1.7.0
# CHANGELOG). This is the course Vagrantfile's order.
PROVIDER_ORDER = ("virtualbox", "libvirt", "vmware_desktop", "parallels")
PROVIDER_LABEL = {"virtualbox": "VirtualBox", "libvirt": "libvirt", "vmware_desktop": "VMware",
                  "parallels": "Parallels Desktop"}
PROVIDER_PLUGIN = {"libvirt": "vagrant-libvirt", "vmware_desktop": "vagrant-vmware-desktop",
                   "parallels": "vagrant-parallels"}
PROVIDER_ALIASES = {"vmware_fusion": "vmware_desktop", "vmware_workstation": "vmware_desktop"}


class Finding(BaseModel):
    severity: Severity
    title: str
    why: str = ""
    fix: str = ""


def _error(title: str, why: str, fix: str) -> Finding:
    return Finding(severity="error", title=title, why=why, fix=fix)


def _warning(title: str, why: str, fix: str) -> Finding:
    return Finding(severity="warning", title=title, why=why, fix=fix)


def _ok(title: str, why: str = "") -> Finding:
    return Finding(severity="ok", title=title, why=why)


def _v(t: tuple[int, ...]) -> str:
    return ".".join(str(x) for x in t)


def normalize_provider(name: str) -> str:
    return PROVIDER_ALIASES.get(name.strip().lower(), name.strip().lower())


# -- Vagrant ---------------------------------------------------------------------------------------

def check_vagrant(facts: HostFacts) -> list[Finding]:
    if facts.vagrant_version is None:
        where = ("inside WSL install the Linux build of Vagrant (the .deb/.rpm) " if facts.wsl
                 else "")
        return [_error(
            "Vagrant is not installed (no `vagrant` command found)",
            "`vagrant up` creates the course's nodes; without Vagrant there are no VMs to work on.",
            f"{where}install Vagrant {_v(MIN_VAGRANT)} or newer from {VAGRANT_INSTALL_URL}, open a new terminal, "
            "then run `kubelab doctor` again")]
    v = parse_version(facts.vagrant_version)
    if v is None:  # not a Vagrant kubelab can vouch for: "ready" would be a guess
        return [_error(f"cannot tell Vagrant's version from {facts.vagrant_version!r}",
                       "kubelab needs Vagrant " + _v(MIN_VAGRANT) + " or newer, and the provider checks below need "
                       "its version",
                       "run `vagrant --version`; it should print `Vagrant X.Y.Z` (reinstall Vagrant if it does not)")]
    if v < MIN_VAGRANT:
        return [_error(f"Vagrant {facts.vagrant_version} is too old (kubelab needs {_v(MIN_VAGRANT)} or newer)",
                       MIN_VAGRANT_WHY + ".",
                       f"install the current Vagrant from {VAGRANT_INSTALL_URL} (your existing boxes and "
                       "VMs are kept), then run `kubelab doctor` again")]
    return [_ok(f"Vagrant {facts.vagrant_version}")]


# -- providers -------------------------------------------------------------------------------------

@dataclass
class ProviderCheck:
    name: str
    version: Optional[str]
    blockers: list[Finding] = field(default_factory=list)  # any of these: Vagrant cannot use the provider
    notes: list[Finding] = field(default_factory=list)  # warnings that do not stop it

    @property
    def installed(self) -> bool:
        return self.version is not None

    @property
    def usable(self) -> bool:
        return self.installed and not self.blockers

    @property
    def label(self) -> str:
        return f"{PROVIDER_LABEL[self.name]} {self.version}" if self.version not in (None, "unknown") \
            else PROVIDER_LABEL[self.name]


def _plugin_blocker(facts: HostFacts, name: str) -> list[Finding]:
    plugin = PROVIDER_PLUGIN[name]
    if facts.vagrant_version is None or plugin in facts.vagrant_plugins:
        return []
    extra = {"libvirt": " (its build needs the libvirt headers first: `sudo apt-get install -y libvirt-dev` on "
                        "Debian/Ubuntu, `sudo dnf install -y libvirt-devel` on Fedora)"}.get(name, "")
    return [_error(f"{PROVIDER_LABEL[name]} is installed but the Vagrant plugin {plugin} is not",
                   f"Vagrant has no built-in {PROVIDER_LABEL[name]} support; the {plugin} plugin provides it.",
                   f"run `vagrant plugin install {plugin}`{extra}")]


def check_virtualbox(facts: HostFacts) -> ProviderCheck:
    c = ProviderCheck("virtualbox", facts.providers.get("virtualbox"))
    if not c.installed:
        return c
    v = parse_version(c.version)
    if v is None:
        c.notes.append(_warning(f"cannot tell VirtualBox's version from {c.version!r}",
                                "the compatibility checks for VirtualBox need it",
                                "run `VBoxManage --version`; it should print a version such as 7.1.4r165100"))
        return c
    if facts.arch == "arm64" and v < VIRTUALBOX_ARM64_MIN:
        c.blockers.append(_error(
            f"VirtualBox {_v(v)} cannot run VMs on this arm64 (Apple Silicon) computer",
            "VirtualBox supports arm64 hosts only from 7.1 on; older releases are for x86-64 (Intel/AMD) "
            "computers and cannot start the course's VMs here.",
            f"install VirtualBox 7.1 or newer, the macOS / Apple Silicon (Arm64) package, from {VIRTUALBOX_URL}; "
            "or use Parallels Desktop or VMware Fusion with their Vagrant plugins"))
    vagrant = parse_version(facts.vagrant_version)
    minor = v[:2]
    need = VAGRANT_FOR_VIRTUALBOX.get(minor)
    if vagrant is not None and need is not None and vagrant < need:
        older = [m for m, req in sorted(VAGRANT_FOR_VIRTUALBOX.items()) if req <= vagrant]
        alt = f" (or install VirtualBox {_v(older[-1])}, the newest one Vagrant {facts.vagrant_version} supports)" \
            if older else ""
        c.blockers.append(_error(
            f"Vagrant {facts.vagrant_version} does not support VirtualBox {_v(minor)}",
            f"Vagrant only drives the VirtualBox releases it knows; VirtualBox {_v(minor)} support arrived in "
            f"Vagrant {_v(need)}. `vagrant up` stops with \"Vagrant has detected that you have a version of "
            "VirtualBox installed that is not supported by this version of Vagrant\".",
            f"install Vagrant {_v(need)} or newer from {VAGRANT_INSTALL_URL}{alt}"))
    if minor > NEWEST_KNOWN_VIRTUALBOX:
        c.notes.append(_warning(
            f"VirtualBox {_v(minor)} is newer than any release kubelab knows Vagrant supports "
            f"(up to {_v(NEWEST_KNOWN_VIRTUALBOX)})",
            "each new VirtualBox minor release needs a Vagrant release that lists it.",
            f"if `vagrant up` says this VirtualBox is not supported, install the newest Vagrant from "
            f"{VAGRANT_INSTALL_URL}, or VirtualBox {_v(NEWEST_KNOWN_VIRTUALBOX)}"))
    if v < VIRTUALBOX_MAINTAINED_MIN:
        c.notes.append(_warning(
            f"VirtualBox {_v(v)} is old",
            "VirtualBox 6.1 and older are out of Oracle's support: no fixes for current host kernels and macOS.",
            f"install VirtualBox 7.1 or newer from {VIRTUALBOX_URL}"))
    return c


def check_libvirt(facts: HostFacts) -> ProviderCheck:
    c = ProviderCheck("libvirt", facts.providers.get("libvirt"))
    if not c.installed:
        return c
    if facts.os != "linux" or facts.wsl:
        c.blockers.append(_error("the libvirt provider needs a Linux host",
                                 "vagrant-libvirt drives KVM, which only a Linux kernel has.",
                                 "use VirtualBox, VMware or Parallels on this computer"))
        return c
    c.blockers += _plugin_blocker(facts, "libvirt")
    if facts.kvm is False:
        c.blockers.append(_error(
            "/dev/kvm is missing, so libvirt would emulate the CPU in software",
            "without KVM every instruction of the nodes is emulated (QEMU TCG): they boot and run many times "
            "slower and kubeadm's start-up times out.",
            "enable virtualization (Intel VT-x / AMD-V) in the firmware setup, then `sudo modprobe kvm_intel` "
            "or `sudo modprobe kvm_amd`"))
    return c


def check_vmware(facts: HostFacts) -> ProviderCheck:
    c = ProviderCheck("vmware_desktop", facts.providers.get("vmware_desktop"))
    if not c.installed:
        return c
    if facts.arch == "arm64" and facts.os != "darwin":
        c.blockers.append(_error("VMware Workstation does not run on arm64 computers",
                                 "VMware Workstation is built for x86-64 hosts only; only VMware Fusion "
                                 "(macOS) runs on arm64.",
                                 "use another provider on this computer (libvirt on Linux, VirtualBox 7.1+)"))
    c.blockers += _plugin_blocker(facts, "vmware_desktop")
    if not facts.vagrant_vmware_utility:
        c.blockers.append(_error(
            "the Vagrant VMware Utility is not installed",
            "the vagrant-vmware-desktop plugin talks to VMware through this separate system service.",
            "install it from https://developer.hashicorp.com/vagrant/install/vmware, then run `kubelab doctor` "
            "again"))
    return c


def check_parallels(facts: HostFacts) -> ProviderCheck:
    c = ProviderCheck("parallels", facts.providers.get("parallels"))
    if not c.installed:
        return c
    if facts.os != "darwin":
        c.blockers.append(_error("Parallels Desktop needs a Mac", "Parallels Desktop exists for macOS only.",
                                 "use another provider on this computer"))
        return c
    c.blockers += _plugin_blocker(facts, "parallels")
    return c


_CHECKS = {"virtualbox": check_virtualbox, "libvirt": check_libvirt, "vmware_desktop": check_vmware,
           "parallels": check_parallels}


def _install_provider_fix(facts: HostFacts) -> str:
    if facts.os == "darwin":
        if facts.arch == "arm64":
            return (f"install VirtualBox 7.1 or newer (macOS / Apple Silicon package) from {VIRTUALBOX_URL}, or "
                    "Parallels Desktop + `vagrant plugin install vagrant-parallels`")
        return f"install VirtualBox 7.1 or newer from {VIRTUALBOX_URL}"
    if facts.os == "windows" or facts.wsl:
        return f"install VirtualBox 7.1 or newer on Windows from {VIRTUALBOX_URL}"
    return (f"install VirtualBox 7.1 or newer from {VIRTUALBOX_URL}, or libvirt/KVM + "
            "`vagrant plugin install vagrant-libvirt`")


def choose_provider(facts: HostFacts, requested: Optional[str] = None) -> tuple[Optional[ProviderCheck], list[Finding]]:
    """The provider `vagrant up` will use and the findings about providers.

    `requested` (like `vagrant up --provider`) or VAGRANT_DEFAULT_PROVIDER pins one; otherwise Vagrant takes the
    first usable provider in the Vagrantfile's order. Returns (chosen check or None, findings).
    """
    checks = {name: _CHECKS[name](facts) for name in PROVIDER_ORDER}
    source = "--provider" if requested else "VAGRANT_DEFAULT_PROVIDER"
    requested = requested or facts.vagrant_default_provider
    findings: list[Finding] = []
    if requested:
        name = normalize_provider(requested)
        if name not in PROVIDERS:
            return None, [_error(f"{source}={requested} is not a provider this course supports",
                                 f"the course's Vagrantfile configures {', '.join(PROVIDER_ORDER)} only.",
                                 f"set {source} to one of {', '.join(PROVIDER_ORDER)}" +
                                 (", or unset it (`unset VAGRANT_DEFAULT_PROVIDER`)" if source.startswith("V") else ""))]
        c = checks[name]
        if not c.installed:
            return None, [_error(f"{PROVIDER_LABEL[name]} is not installed, but {source} asks for it",
                                 "Vagrant will use only this provider and fail.",
                                 _install_provider_fix(facts) if name == "virtualbox" else
                                 f"install {PROVIDER_LABEL[name]}, or choose an installed provider with {source}")]
        findings += c.blockers + c.notes
        if c.usable:
            findings.append(_ok(f"Vagrant will use {c.label} ({source})"))
        return c, findings

    installed = [checks[n] for n in PROVIDER_ORDER if checks[n].installed]
    usable = [c for c in installed if c.usable]
    if not installed:
        return None, [_error("no virtualization provider is installed",
                             "Vagrant needs a hypervisor (VirtualBox, libvirt/KVM, VMware or Parallels) to create "
                             "the course's VMs.",
                             _install_provider_fix(facts))]
    if not usable:
        for c in installed:
            findings += c.blockers + c.notes
        return installed[0], findings
    chosen = usable[0]
    findings.append(_ok(f"Vagrant will use {chosen.label}",
                        "the first usable provider in the Vagrantfile's order; pick another with "
                        "VAGRANT_DEFAULT_PROVIDER"))
    findings += chosen.notes
    for c in installed:
        if c is not chosen and c.blockers:
            for b in c.blockers:
                findings.append(_warning(b.title, f"{b.why} Vagrant will use {chosen.label} instead.", b.fix))
    return chosen, findings


# -- resources -------------------------------------------------------------------------------------

def check_memory(facts: HostFacts, course: Course) -> list[Finding]:
    nodes_mb = sum(n.memory_mb for n in course.nodes)
    need = nodes_mb + HEADROOM_MB
    parts = " + ".join(f"{n.name} {n.memory_mb}" for n in course.nodes)
    why = (f"the nodes take {nodes_mb} MB ({parts}) and the host and hypervisor need about {HEADROOM_MB} MB more; "
           "short of memory the host swaps, the VMs stall and kubeadm and etcd time out.")
    if facts.free_memory_mb is None:
        return [_warning("cannot tell how much memory is free", why,
                         f"make sure about {need} MB of RAM are free before `vagrant up`")]
    if facts.free_memory_mb >= need:
        return [_ok(f"{facts.free_memory_mb} MB of RAM free (the course needs {need} MB)")]
    if facts.total_memory_mb is not None and facts.total_memory_mb < need:
        return [_error(f"this computer has {facts.total_memory_mb} MB of RAM; the course needs {need} MB free",
                       why, f"use a computer with at least {need + 2048} MB of RAM")]
    return [_error(f"only {facts.free_memory_mb} MB of RAM free; the course needs {need} MB",
                   why,
                   f"free {need - facts.free_memory_mb} MB more: close browsers, IDEs and other VMs "
                   "(`vagrant global-status` lists running Vagrant VMs), then run `kubelab doctor` again")]


def check_cpus(facts: HostFacts, course: Course) -> list[Finding]:
    biggest = max(course.nodes, key=lambda n: n.cpus)
    if facts.cpus is None:
        return [_warning("cannot tell how many CPUs this computer has",
                         f"node {biggest.name} gets {biggest.cpus} virtual CPUs.",
                         f"check that the computer has at least {biggest.cpus} CPUs")]
    if facts.cpus < biggest.cpus:
        return [_error(f"this computer has {facts.cpus} CPU(s); node {biggest.name} needs {biggest.cpus}",
                       "a hypervisor cannot give one VM more virtual CPUs than the host has, and kubeadm refuses "
                       "a control plane with fewer than 2 CPUs.",
                       f"use a computer with at least {biggest.cpus} CPUs")]
    return [_ok(f"{facts.cpus} CPUs (the biggest node, {biggest.name}, needs {biggest.cpus})")]


# -- networks --------------------------------------------------------------------------------------

def _free_subnet(facts: HostFacts, course: Course) -> Optional[ipaddress.IPv4Network]:
    subnet = course.network.private_subnet
    taken = [n.network for n in facts.networks if n.network.version == 4]
    for cand in VBOX_DEFAULT_HOSTONLY.subnets(new_prefix=subnet.prefixlen):
        if cand != subnet and not any(cand.overlaps(t) for t in taken) and not any(
                cand.overlaps(o) for o in (course.network.pod_cidr, course.network.service_cidr)):
            return cand
    return None


def check_subnet_clash(facts: HostFacts, course: Course) -> list[Finding]:
    subnet = course.network.private_subnet
    clashes = [n for n in facts.networks
               if n.network.version == 4 and n.network.overlaps(subnet)
               and not HYPERVISOR_INTERFACE.search(n.interface) and not n.network.is_loopback]
    if not clashes:
        return [_ok(f"the course network {subnet} does not clash with this computer's networks")]
    findings = []
    alt = _free_subnet(facts, course)
    move = ""
    if alt is not None:
        ips = ", ".join(f"{n.name} {alt.network_address + (int(n.ip) - int(subnet.network_address))}"
                        for n in course.nodes)
        move = (f"; or move the course: in course.yaml set network.private_subnet: {alt} and the nodes' ip "
                f"({ips}), then `vagrant up`")
    for n in clashes:
        if TWIN_BRIDGE.match(n.interface):
            findings.append(_error(
                f"the course network {subnet} is held by the lab twins' bridge {n.interface} ({n.cidr})",
                "the lab twins and the Vagrant VMs are two copies of the same nodes on the same addresses; while "
                "the twins run, the host routes the course network to them and the VMs are unreachable.",
                "stop the twins first: `sudo kubelab twin down`"))
            continue
        findings.append(_error(
            f"the course network {subnet} is already used on {n.interface} ({n.cidr})",
            f"the VMs' private network would overlap the network {n.interface} is on (a LAN, Wi-Fi or VPN): the "
            f"host cannot tell which side an address like {course.control_plane.ip} is on, so it cannot reach the "
            "nodes (or loses that network) and `vagrant up` fails or hangs.",
            f"disconnect {n.interface} from that network while you work on the course{move}"))
    return findings


def parse_networks_conf(text: str) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    """The ranges of VirtualBox's networks.conf: lines `* RANGE [RANGE...]`, `#` comments."""
    ranges = []
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if not line.startswith("*"):
            continue
        for token in line[1:].split():
            try:
                ranges.append(ipaddress.ip_network(token, strict=False))
            except ValueError:
                continue
    return ranges


def check_virtualbox_ranges(facts: HostFacts, course: Course) -> list[Finding]:
    """Only for VirtualBox on Linux/macOS (Windows has no such restriction; under WSL VirtualBox is Windows')."""
    subnet = course.network.private_subnet
    why_tail = ("Vagrant stops before booting anything: \"The IP address configured for the host-only network is "
                "not within the allowed ranges\".")
    if facts.vbox_networks_conf is None:
        if subnet.subnet_of(VBOX_DEFAULT_HOSTONLY):
            return [_ok(f"{subnet} is inside VirtualBox's default host-only range {VBOX_DEFAULT_HOSTONLY}")]
        return [_error(f"VirtualBox does not allow the course network {subnet}",
                       f"without /etc/vbox/networks.conf VirtualBox allows host-only networks only inside "
                       f"{VBOX_DEFAULT_HOSTONLY}. {why_tail}",
                       f"sudo mkdir -p /etc/vbox && echo '* {subnet}' | sudo tee -a /etc/vbox/networks.conf")]
    ranges = [r for r in parse_networks_conf(facts.vbox_networks_conf) if r.version == 4]
    if any(subnet.subnet_of(r) for r in ranges):
        return [_ok(f"/etc/vbox/networks.conf allows {subnet}")]
    listed = ", ".join(str(r) for r in ranges) or "no IPv4 range"
    return [_error(f"/etc/vbox/networks.conf does not allow the course network {subnet} (it lists {listed})",
                   f"once /etc/vbox/networks.conf exists, VirtualBox allows host-only networks only in the ranges "
                   f"it lists; the default {VBOX_DEFAULT_HOSTONLY} no longer applies. {why_tail}",
                   f"echo '* {subnet}' | sudo tee -a /etc/vbox/networks.conf")]


# -- Windows ---------------------------------------------------------------------------------------

def check_hyperv(facts: HostFacts) -> list[Finding]:
    """VirtualBox with the Windows hypervisor running (Hyper-V, WSL 2, Docker Desktop, VBS/Memory Integrity)."""
    if facts.hyperv_enabled is None and facts.os == "windows":
        return [_warning("cannot tell whether Hyper-V is on",
                         "VirtualBox on top of Hyper-V is very slow or fails to start VMs.",
                         "in an Administrator terminal run `bcdedit /enum {current}`: hypervisorlaunchtype should "
                         "be Off for VirtualBox")]
    if not facts.hyperv_enabled:
        return []
    return [_error(
        "Hyper-V is on, and VirtualBox would run on top of it",
        "with the Windows hypervisor running (Hyper-V, WSL 2, Docker Desktop, Windows Sandbox or Memory "
        "Integrity turn it on) VirtualBox cannot use the CPU's virtualization directly and falls back to the "
        "Windows Hypervisor Platform (a green turtle in the VM window): the nodes run several times slower, so "
        "kubeadm and the labs' checks time out, or VMs fail to start with VT-x/NEM errors.",
        "in an Administrator terminal run `bcdedit /set hypervisorlaunchtype off` and reboot (WSL 2 and Docker "
        "Desktop stop working until `bcdedit /set hypervisorlaunchtype auto` and another reboot); or keep Hyper-V "
        "and use VMware Workstation 17 with the vagrant-vmware-desktop plugin, which runs on top of it")]


def check_wsl(facts: HostFacts) -> list[Finding]:
    if not facts.wsl:
        return []
    if not facts.vagrant_wsl_windows_access:
        return [_error(
            "running inside WSL without VAGRANT_WSL_ENABLE_WINDOWS_ACCESS=1",
            "Vagrant in WSL drives the Windows hypervisor (VirtualBox.exe/VMware) only with access to the Windows "
            "environment; without it `vagrant up` stops with \"Vagrant is unable to use the VirtualBox provider "
            "from the Windows Subsystem for Linux without access to the Windows environment\".",
            "add `export VAGRANT_WSL_ENABLE_WINDOWS_ACCESS=1` and `export PATH=\"$PATH:/mnt/c/Program Files/Oracle/"
            "VirtualBox\"` to ~/.bashrc, keep the course checkout under /mnt/c/..., open a new shell; or simply run "
            "Vagrant and kubelab from PowerShell instead of WSL")]
    return [_warning(
        "running inside WSL",
        "memory, CPUs and networks above are WSL's own view, not all of Windows'; Vagrant only works from WSL on "
        "a checkout on the Windows file system.",
        "keep the course checkout under /mnt/c/...; if anything misbehaves, run Vagrant and kubelab from "
        "PowerShell instead")]


# -- all rules -------------------------------------------------------------------------------------

def evaluate(facts: HostFacts, course: Course, provider: Optional[str] = None) -> list[Finding]:
    """Every finding for this host and course, in checklist order."""
    findings = check_vagrant(facts)
    chosen, provider_findings = choose_provider(facts, provider)
    findings += provider_findings
    findings += check_memory(facts, course)
    findings += check_cpus(facts, course)
    findings += check_subnet_clash(facts, course)
    if chosen is not None and chosen.name == "virtualbox":
        if facts.os in ("linux", "darwin") and not facts.wsl:
            findings += check_virtualbox_ranges(facts, course)
        if facts.os == "windows" or facts.wsl:
            findings += check_hyperv(facts)
    findings += check_wsl(facts)
    return findings


def is_ready(findings: list[Finding]) -> bool:
    return not any(f.severity == "error" for f in findings)
