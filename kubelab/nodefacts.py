"""Readings of a node's configuration that several graders need, parsed the way the node's own tools do."""

from __future__ import annotations

from pathlib import PurePosixPath

# Where `sysctl --system` (procps) and systemd-sysctl read from, in precedence order: a file name in an
# earlier folder hides the same name in a later one; files apply in name order; /etc/sysctl.conf last.
SYSCTL_DIRS = ("/etc/sysctl.d", "/run/sysctl.d", "/usr/local/lib/sysctl.d", "/usr/lib/sysctl.d", "/lib/sysctl.d")
SYSCTL_GREP = "grep -sH '' " + " ".join(f"{d}/*.conf" for d in SYSCTL_DIRS) + " /etc/sysctl.conf"


def effective_sysctl_config(grep_output: str) -> dict[str, tuple[str, str]]:
    """From `SYSCTL_GREP`'s output, the value each key gets at boot: {key: (value, file)}."""
    lines_by_file: dict[str, list[str]] = {}
    for line in grep_output.splitlines():
        path, sep, text = line.partition(":")
        if sep:
            lines_by_file.setdefault(path, []).append(text)
    chosen: dict[str, str] = {}
    for d in SYSCTL_DIRS:
        for path in lines_by_file:
            p = PurePosixPath(path)
            if str(p.parent) == d and p.name not in chosen:
                chosen[p.name] = path
    order = [chosen[name] for name in sorted(chosen)]
    if "/etc/sysctl.conf" in lines_by_file:
        order.append("/etc/sysctl.conf")
    values: dict[str, tuple[str, str]] = {}
    for path in order:
        for raw in lines_by_file[path]:
            line = raw.strip()
            if not line or line[0] in "#;" or "=" not in line:
                continue
            key, _, value = line.partition("=")
            key = key.strip().lstrip("-").replace("/", ".")
            values[key] = (value.strip(), path)
    return values


def active_fstab_swaps(fstab: str) -> list[str]:
    """Swap entries in an fstab that would be activated at boot."""
    found = []
    for raw in fstab.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        fields = line.split()
        if len(fields) >= 3 and fields[2] == "swap" and "noauto" not in (fields[3].split(",") if len(fields) > 3 else []):
            found.append(line)
    return found


def listed_modules(text: str) -> set[str]:
    """Module names in modules-load.d files (and /etc/modules): one per line, # and ; comments."""
    names = set()
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].split(";", 1)[0].strip()
        if line:
            names.add(line.split()[0].replace("-", "_"))
    return names


def resolved_ipv4(getent_output: str) -> str | None:
    """First address printed by `getent ahostsv4 NAME`, or None if the name does not resolve."""
    for line in getent_output.splitlines():
        fields = line.split()
        if fields:
            return fields[0]
    return None
