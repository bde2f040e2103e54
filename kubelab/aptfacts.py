"""apt facts as graders observe them (`apt-cache policy`): pure parsing, no I/O. Sources: kubelab.aptsources."""

from __future__ import annotations

from dataclasses import dataclass


def same_uri(a: str, b: str) -> bool:
    return a.rstrip("/") == b.rstrip("/")


@dataclass(frozen=True)
class Policy:
    installed: str | None                     # None: not installed
    sources: dict[str, list[str]]             # version -> where apt has it from (URLs, /var/lib/dpkg/status)


def apt_policy(output: str) -> Policy:
    """`apt-cache policy PKG` (English, one package) parsed."""
    installed = None
    sources: dict[str, list[str]] = {}
    current = None
    in_table = False
    for line in output.splitlines():
        s = line.strip()
        if s.startswith("Installed:"):
            value = s.split(":", 1)[1].strip()
            installed = None if value in ("(none)", "") else value
        elif s.startswith("Version table:"):
            in_table = True
        elif in_table and s:
            words = s.removeprefix("***").split()
            if current and len(words) >= 2 and words[0].isdigit() and "/" in words[1]:
                sources[current].append(words[1])        # "500 http://... suite/comp arch Packages"
            elif words:
                current = words[0]                      # " *** 1.6.20~ds1-1 500" or "     1.6.20 500"
                sources.setdefault(current, [])
    return Policy(installed, sources)


def installed_from(policy: Policy, uri: str) -> bool:
    """Whether apt knows the installed version from repository `uri`."""
    if policy.installed is None:
        return False
    return any(same_uri(src, uri) or src.startswith(uri.rstrip("/") + "/")
               for src in policy.sources.get(policy.installed, []))
