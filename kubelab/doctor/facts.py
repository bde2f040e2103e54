"""What the host has, as plain data: gathered for real by `gather()`, or read from a JSON file by `load_facts()`.

Every probe is allowed to fail: a missing program, a timeout, a permission error or output we cannot
parse makes that fact "absent" (None, empty) and adds a line to `HostFacts.probe_notes`; it never raises.
The rules in rules.py decide what an absent fact means.
"""

from __future__ import annotations

import ipaddress
import json
import os
import platform
import plistlib
import re
import shutil
import subprocess
from pathlib import Path
from typing import Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, StrictInt, ValidationError, field_validator

from kubelab import inputfiles
from kubelab.errors import UsageError

PROVIDERS = ("virtualbox", "libvirt", "vmware_desktop", "parallels")
VBOX_NETWORKS_CONF = Path("/etc/vbox/networks.conf")
MAX_FACTS_BYTES = 4 * inputfiles.MIB
PROBE_TIMEOUT = 20  # seconds; `vagrant plugin list` boots Ruby and can take several seconds on a laptop

_VERSION = re.compile(r"(\d+)\.(\d+)(?:\.(\d+))?")


def parse_version(text: Optional[str]) -> Optional[tuple[int, int, int]]:
    """The first x.y[.z] in text as a tuple (z defaults to 0), or None."""
    if not text:
        return None
    m = _VERSION.search(text)
    if not m:
        return None
    return int(m.group(1)), int(m.group(2)), int(m.group(3) or 0)


class HostNetwork(BaseModel):
    """One address on one host interface, e.g. eth0 192.168.1.23/24."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    interface: str = Field(min_length=1)
    cidr: str  # the interface address with its prefix: 192.168.1.23/24

    @field_validator("cidr")
    @classmethod
    def _is_interface(cls, v: str) -> str:
        ipaddress.ip_interface(v)  # ValueError -> a validation error naming the field
        return v

    @property
    def network(self) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
        return ipaddress.ip_interface(self.cidr).network


class HostFacts(BaseModel):
    """Everything `kubelab doctor` judges. JSON-serialisable, so a learner can send it to a helper."""

    model_config = ConfigDict(extra="forbid")

    os: Literal["linux", "darwin", "windows", "other"]
    arch: Literal["amd64", "arm64", "other"]
    machine: str = ""  # the raw machine name (x86_64, arm64, aarch64, AMD64...)
    vagrant_version: Optional[str] = None
    vagrant_plugins: dict[str, str] = Field(default_factory=dict)  # name -> version
    vagrant_default_provider: Optional[str] = None  # VAGRANT_DEFAULT_PROVIDER
    providers: dict[str, Optional[str]] = Field(default_factory=lambda: {p: None for p in PROVIDERS})
    vagrant_vmware_utility: bool = False
    kvm: Optional[bool] = None  # /dev/kvm present (Linux only)
    # from a facts file, anything may arrive: a negative size is not a machine, never "ready"
    free_memory_mb: Optional[StrictInt] = Field(None, ge=0, le=1 << 40)
    total_memory_mb: Optional[StrictInt] = Field(None, ge=0, le=1 << 40)
    cpus: Optional[StrictInt] = Field(None, ge=1, le=1 << 16)
    networks: list[HostNetwork] = Field(default_factory=list)
    vbox_networks_conf: Optional[str] = None  # content of /etc/vbox/networks.conf, None when it does not exist
    hyperv_enabled: Optional[bool] = None  # Windows (or WSL2): the Hyper-V hypervisor is running; None = unknown
    wsl: bool = False
    vagrant_wsl_windows_access: bool = False  # VAGRANT_WSL_ENABLE_WINDOWS_ACCESS=1
    probe_notes: list[str] = Field(default_factory=list)

    @field_validator("providers")
    @classmethod
    def _known_providers(cls, v: dict[str, Optional[str]]) -> dict[str, Optional[str]]:
        unknown = sorted(set(v) - set(PROVIDERS))
        if unknown:
            raise ValueError(f"unknown provider(s) {', '.join(unknown)}; known: {', '.join(PROVIDERS)}")
        return {p: v.get(p) for p in PROVIDERS}


# -- loading ---------------------------------------------------------------------------------------

def load_facts(path: Path | str) -> HostFacts:
    """Facts from a JSON file: a bare HostFacts object, or the `--json` report of `kubelab doctor` (its
    "facts" key), so a learner's report can be replayed as is. Any problem is a one-line UsageError."""
    path = Path(path)
    fix = "send the file exactly as `kubelab doctor --json FILE` wrote it"
    text = inputfiles.read_text(path, f"facts file {path}", MAX_FACTS_BYTES,
                                "pass the JSON file written by `kubelab doctor --json`")
    data = inputfiles.parse_json(text, f"facts file {path}", fix)
    if isinstance(data, dict) and isinstance(data.get("facts"), dict):
        data = data["facts"]
    if not isinstance(data, dict):
        raise UsageError(f"facts file {path} is not a JSON object of host facts",
                         "send the file exactly as `kubelab doctor --json FILE` wrote it")
    try:
        return HostFacts.model_validate(data)
    except ValidationError as e:
        err = e.errors()[0]
        where = ".".join(str(x) for x in err["loc"]) or "(top level)"
        more = f" (and {len(e.errors()) - 1} more)" if len(e.errors()) > 1 else ""
        raise UsageError(f"facts file {path}: {where}: {err['msg']}{more}",
                         "send the file exactly as `kubelab doctor --json FILE` wrote it")


# -- gathering -------------------------------------------------------------------------------------

class _Probe:
    """Runs probes; each failure becomes a note, never an exception."""

    def __init__(self) -> None:
        self.notes: list[str] = []

    def run(self, argv: list[str], *, any_exit: bool = False, timeout: float = PROBE_TIMEOUT) -> Optional[str]:
        """stdout (+stderr when stdout is empty) of argv, or None when it cannot run or fails."""
        exe = argv[0] if os.path.isabs(argv[0]) else shutil.which(argv[0])
        if not exe or not os.path.isfile(exe):
            return None
        try:
            p = subprocess.run([exe, *argv[1:]], capture_output=True, text=True, timeout=timeout,
                               stdin=subprocess.DEVNULL, errors="replace")
        except subprocess.TimeoutExpired:
            self.notes.append(f"`{' '.join(argv)}` did not answer within {timeout:g}s")
            return None
        except OSError as e:
            self.notes.append(f"`{' '.join(argv)}` could not run: {e.strerror or e}")
            return None
        if p.returncode != 0 and not any_exit:
            last = (p.stderr.strip().splitlines() or p.stdout.strip().splitlines() or [""])[-1]
            self.notes.append(f"`{' '.join(argv)}` exited {p.returncode}: {last}".rstrip(": "))
            return None
        return p.stdout if p.stdout.strip() else p.stderr

    def read(self, path: Path) -> Optional[str]:
        try:
            return path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return None
        except OSError as e:
            self.notes.append(f"cannot read {path}: {e.strerror or e}")
            return None


def _host_os() -> str:
    return {"Linux": "linux", "Darwin": "darwin", "Windows": "windows"}.get(platform.system(), "other")


def _arch(host_os: str, probe: _Probe) -> tuple[str, str]:
    machine = platform.machine()
    m = machine.lower()
    arch = "amd64" if m in ("x86_64", "amd64", "x64") else "arm64" if m in ("arm64", "aarch64", "armv8") else "other"
    if host_os == "darwin" and arch == "amd64":
        # A Python running under Rosetta 2 reports x86_64 on an Apple Silicon Mac: ask the kernel.
        if (probe.run(["sysctl", "-n", "hw.optional.arm64"]) or "").strip() == "1":
            arch = "arm64"
    if host_os == "windows":
        # Likewise an x64 Python emulated on Windows on Arm: the OS tells the truth.
        native = os.environ.get("PROCESSOR_ARCHITEW6432") or os.environ.get("PROCESSOR_ARCHITECTURE", "")
        if native.upper() == "ARM64":
            arch = "arm64"
    return arch, machine


def _is_wsl() -> bool:
    if os.environ.get("WSL_DISTRO_NAME") or os.environ.get("WSL_INTEROP"):
        return True
    try:
        return "microsoft" in Path("/proc/version").read_text(errors="replace").lower()
    except OSError:
        return False


def _memory(host_os: str, probe: _Probe) -> tuple[Optional[int], Optional[int]]:
    """(free MB, total MB). "Free" is what can be given to new VMs without swapping: MemAvailable on Linux."""
    if host_os == "linux":
        text = probe.read(Path("/proc/meminfo")) or ""
        kb = {k: int(v) for k, v in re.findall(r"^(\w+):\s+(\d+) kB", text, re.M)}
        free = kb.get("MemAvailable", kb.get("MemFree"))
        return (free // 1024 if free is not None else None,
                kb["MemTotal"] // 1024 if "MemTotal" in kb else None)
    if host_os == "darwin":
        total = parse_int((probe.run(["sysctl", "-n", "hw.memsize"]) or "").strip())
        vm = probe.run(["vm_stat"]) or ""
        page = re.search(r"page size of (\d+) bytes", vm)
        pages = {k.strip(): int(v) for k, v in re.findall(r"^Pages ([\w -]+):\s+(\d+)\.", vm, re.M)}
        free = None
        if page and pages:
            free = sum(pages.get(k, 0) for k in ("free", "inactive", "speculative")) * int(page.group(1))
        return (free // 2**20 if free else None, total // 2**20 if total else None)
    if host_os == "windows":
        try:
            import ctypes

            class MEMORYSTATUSEX(ctypes.Structure):
                _fields_ = [("dwLength", ctypes.c_ulong), ("dwMemoryLoad", ctypes.c_ulong),
                            ("ullTotalPhys", ctypes.c_ulonglong), ("ullAvailPhys", ctypes.c_ulonglong),
                            ("ullTotalPageFile", ctypes.c_ulonglong), ("ullAvailPageFile", ctypes.c_ulonglong),
                            ("ullTotalVirtual", ctypes.c_ulonglong), ("ullAvailVirtual", ctypes.c_ulonglong),
                            ("ullAvailExtendedVirtual", ctypes.c_ulonglong)]

            st = MEMORYSTATUSEX()
            st.dwLength = ctypes.sizeof(MEMORYSTATUSEX)
            if ctypes.windll.kernel32.GlobalMemoryStatusEx(ctypes.byref(st)):  # type: ignore[attr-defined]
                return st.ullAvailPhys // 2**20, st.ullTotalPhys // 2**20
        except Exception as e:  # any ctypes failure is just "unknown"
            probe.notes.append(f"cannot read memory: {e}")
    return None, None


def parse_int(text: str) -> Optional[int]:
    try:
        return int(text)
    except ValueError:
        return None


def _networks(host_os: str, probe: _Probe) -> list[HostNetwork]:
    found: list[HostNetwork] = []

    def add(iface: str, addr: str, prefix: int | str) -> None:
        try:
            found.append(HostNetwork(interface=iface, cidr=f"{addr.split('%')[0]}/{prefix}"))
        except ValueError:
            pass

    if host_os == "linux":
        out = probe.run(["ip", "-j", "addr"])
        try:
            for link in json.loads(out) if out else []:
                for a in link.get("addr_info", []):
                    if a.get("family") in ("inet", "inet6") and a.get("local"):
                        add(link.get("ifname", "?"), a["local"], a.get("prefixlen", 32))
        except (json.JSONDecodeError, TypeError, AttributeError):
            probe.notes.append("`ip -j addr` printed something that is not its JSON")
    elif host_os == "darwin":
        iface = "?"
        for line in (probe.run(["ifconfig"]) or "").splitlines():
            m = re.match(r"^(\S+?):? flags=", line)
            if m:
                iface = m.group(1)
                continue
            m = re.match(r"\s+inet (\S+) netmask (0x[0-9a-f]+)", line)
            if m:
                add(iface, m.group(1), bin(int(m.group(2), 16)).count("1"))
                continue
            m = re.match(r"\s+inet6 (\S+) prefixlen (\d+)", line)
            if m:
                add(iface, m.group(1), m.group(2))
    elif host_os == "windows":
        out = probe.run(["powershell", "-NoProfile", "-NonInteractive", "-Command",
                         "Get-NetIPAddress | Select-Object InterfaceAlias,IPAddress,PrefixLength | ConvertTo-Json"])
        try:
            rows = json.loads(out) if out else []
            for r in rows if isinstance(rows, list) else [rows]:
                add(str(r["InterfaceAlias"]), str(r["IPAddress"]), r["PrefixLength"])
        except (json.JSONDecodeError, TypeError, KeyError):
            probe.notes.append("Get-NetIPAddress printed something that is not its JSON")
    return found


def _vagrant_plugins(text: str) -> dict[str, str]:
    """`vagrant plugin list`: lines like `vagrant-libvirt (0.12.2, global)`."""
    return {m.group(1): m.group(2) for m in re.finditer(r"^(\S+) \(([^,)\s]+)", text, re.M)}


def _windows_program(*relative: str) -> Optional[str]:
    for base in (os.environ.get("ProgramFiles", r"C:\Program Files"),
                 os.environ.get("ProgramFiles(x86)", r"C:\Program Files (x86)")):
        p = Path(base, *relative)
        if p.is_file():
            return str(p)
    return None


def _virtualbox(host_os: str, wsl: bool, probe: _Probe) -> Optional[str]:
    candidates = ["VBoxManage", "vboxmanage"]
    if host_os == "windows":
        # Vagrant itself finds VirtualBox through these variables set by the installer; it is rarely on PATH.
        for var in ("VBOX_MSI_INSTALL_PATH", "VBOX_INSTALL_PATH"):
            for d in filter(None, os.environ.get(var, "").split(os.pathsep)):
                candidates.append(str(Path(d) / "VBoxManage.exe"))
        candidates.append(_windows_program("Oracle", "VirtualBox", "VBoxManage.exe") or "VBoxManage.exe")
    if wsl:
        candidates += ["VBoxManage.exe", "/mnt/c/Program Files/Oracle/VirtualBox/VBoxManage.exe"]
    for exe in candidates:
        # VBoxManage may print warnings (e.g. "vboxdrv kernel module is not loaded") before the version.
        out = probe.run([exe, "--version"], any_exit=True)
        if out:
            for line in reversed(out.strip().splitlines()):
                if re.match(r"^\d+\.\d+\.\d+", line.strip()):
                    return line.strip()
    return None


def _libvirt(host_os: str, probe: _Probe) -> Optional[str]:
    if host_os != "linux":
        return None
    for argv in (["virsh", "--version"], ["libvirtd", "--version"], ["virtqemud", "--version"]):
        v = parse_version(probe.run(argv))
        if v:
            return "%d.%d.%d" % v
    return None


def _vmware(host_os: str, probe: _Probe) -> Optional[str]:
    if host_os == "darwin":
        plist = Path("/Applications/VMware Fusion.app/Contents/Info.plist")
        try:
            with plist.open("rb") as f:
                return str(plistlib.load(f).get("CFBundleShortVersionString") or "unknown")
        except FileNotFoundError:
            return None
        except Exception as e:  # a damaged plist is "installed, version unknown"
            probe.notes.append(f"cannot read {plist}: {e}")
            return "unknown"
    if host_os == "linux":
        v = parse_version(probe.run(["vmware", "--version"]))  # "VMware Workstation 17.5.1 build-..."
        if v:
            return "%d.%d.%d" % v
        return "unknown" if shutil.which("vmrun") else None
    if host_os == "windows":
        vmrun = shutil.which("vmrun") or _windows_program("VMware", "VMware Workstation", "vmrun.exe")
        if vmrun:
            v = parse_version(probe.run([vmrun], any_exit=True))  # prints "vmrun version 1.17.0 build-..."
            return "%d.%d.%d" % v if v else "unknown"
    return None


def _vmware_utility(host_os: str) -> bool:
    if shutil.which("vagrant-vmware-utility"):
        return True
    paths = [Path(r"C:\HashiCorp\VagrantVMwareUtility\bin\vagrant-vmware-utility.exe")] if host_os == "windows" \
        else [Path("/opt/vagrant-vmware-desktop/bin/vagrant-vmware-utility")]
    return any(p.is_file() for p in paths)


def _parallels(host_os: str, probe: _Probe) -> Optional[str]:
    if host_os != "darwin":
        return None
    v = parse_version(probe.run(["prlctl", "--version"]))  # "prlctl version 19.1.0 (54729)"
    return "%d.%d.%d" % v if v else None


def _hyperv(host_os: str, wsl: bool, probe: _Probe) -> Optional[bool]:
    if wsl:
        # WSL 2 is a Hyper-V virtual machine: if we run inside it, the Windows hypervisor is on.
        # (WSL 1 has no kernel of its own; its /proc/version says "Microsoft" without "WSL2".)
        try:
            version = Path("/proc/version").read_text(errors="replace")
        except OSError:
            return None
        return True if "wsl2" in version.lower() else None
    if host_os != "windows":
        return None
    # `systeminfo` needs no administrator rights; with a running hypervisor its Hyper-V section says so.
    out = probe.run(["systeminfo"], timeout=60) or ""
    if "A hypervisor has been detected" in out:
        return True
    if re.search(r"Hyper-V Requirements:\s+VM Monitor Mode Extensions", out):
        return False
    out = probe.run(["bcdedit", "/enum", "{current}"]) or ""  # needs an administrator prompt
    m = re.search(r"hypervisorlaunchtype\s+(\w+)", out, re.I)
    if m:
        return m.group(1).lower() != "off"
    return None


def gather() -> HostFacts:
    """Read the facts from this machine. Never raises for a missing tool or an unreadable file."""
    probe = _Probe()
    host_os = _host_os()
    arch, machine = _arch(host_os, probe)
    wsl = host_os == "linux" and _is_wsl()

    vagrant_out = probe.run(["vagrant", "--version"])
    vagrant_version = None
    if vagrant_out:
        v = parse_version(vagrant_out)
        vagrant_version = "%d.%d.%d" % v if v else vagrant_out.strip().splitlines()[-1]
    plugins = _vagrant_plugins(probe.run(["vagrant", "plugin", "list"]) or "") if vagrant_version else {}

    free, total = _memory(host_os, probe)
    networks_conf = probe.read(VBOX_NETWORKS_CONF) if host_os in ("linux", "darwin") else None

    return HostFacts(
        os=host_os,
        arch=arch,
        machine=machine,
        vagrant_version=vagrant_version,
        vagrant_plugins=plugins,
        vagrant_default_provider=os.environ.get("VAGRANT_DEFAULT_PROVIDER") or None,
        providers={
            "virtualbox": _virtualbox(host_os, wsl, probe),
            "libvirt": None if wsl else _libvirt(host_os, probe),
            "vmware_desktop": _vmware(host_os, probe),
            "parallels": _parallels(host_os, probe),
        },
        vagrant_vmware_utility=_vmware_utility(host_os),
        kvm=Path("/dev/kvm").exists() if host_os == "linux" else None,
        free_memory_mb=free,
        total_memory_mb=total,
        cpus=os.cpu_count(),
        networks=_networks(host_os, probe),
        vbox_networks_conf=networks_conf,
        hyperv_enabled=_hyperv(host_os, wsl, probe),
        wsl=wsl,
        vagrant_wsl_windows_access=os.environ.get("VAGRANT_WSL_ENABLE_WINDOWS_ACCESS") == "1",
        probe_notes=probe.notes,
    )
