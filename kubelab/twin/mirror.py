"""Which Debian mirror debootstrap uses: the one this host's apt already uses.

The host's own apt configuration is the mirror known to be reachable from here (a CI
machine may only reach a local mirror or a snapshot), so no mirror is written into the
project. KUBELAB_DEBIAN_MIRROR overrides it.
"""

from __future__ import annotations

import os
from pathlib import Path

from kubelab.errors import UsageError

ENV = "KUBELAB_DEBIAN_MIRROR"
_SCHEMES = ("http://", "https://", "file:/")


def debian_mirror(suite: str, apt_dir: Path = Path("/etc/apt")) -> str:
    override = os.environ.get(ENV, "").strip()
    if override:
        return override
    entries = list(_entries(apt_dir))
    # 1) a source that serves exactly this suite; 2) any non-security Debian source: the
    # main archive holds every release, while security archives have a different layout.
    for uri, suites in entries:
        if suite in suites:
            return uri
    for uri, suites in entries:
        if "security" not in uri and not any(s.endswith("-security") for s in suites):
            return uri
    raise UsageError(f"no Debian mirror found in {apt_dir}/sources.list or {apt_dir}/sources.list.d/ "
                     f"to build the twins' {suite} root file system from",
                     f"set {ENV} to a Debian mirror URL, e.g. {ENV}=http://<mirror>/debian")


def _entries(apt_dir: Path):
    """(uri, suites) of every enabled `deb` source, sources.list first, then sources.list.d in name order."""
    files = [apt_dir / "sources.list"]
    d = apt_dir / "sources.list.d"
    if d.is_dir():
        files += sorted(p for p in d.iterdir() if p.suffix in (".list", ".sources"))
    for f in files:
        try:
            text = f.read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        yield from (_deb822(text) if f.suffix == ".sources" else _one_line(text))


def _one_line(text: str):
    for raw in text.splitlines():
        words = raw.split("#", 1)[0].split()
        if not words or words[0] != "deb":
            continue
        words = words[1:]
        if words and words[0].startswith("["):  # options: [arch=amd64 signed-by=...]
            while words and not words[0].endswith("]"):
                words = words[1:]
            words = words[1:]
        if len(words) >= 2 and words[0].startswith(_SCHEMES):
            yield words[0], {words[1]}


def _deb822(text: str):
    for stanza in _stanzas(text):
        if stanza.get("enabled", "yes").lower() == "no" or "deb" not in stanza.get("types", "").split():
            continue
        suites = set(stanza.get("suites", "").split())
        for uri in stanza.get("uris", "").split():
            if uri.startswith(_SCHEMES):
                yield uri, suites


def _stanzas(text: str):
    fields: dict[str, str] = {}
    key = None
    for raw in text.splitlines() + [""]:
        if raw.startswith("#"):
            continue
        if not raw.strip():
            if fields:
                yield fields
            fields, key = {}, None
        elif raw[0] in " \t" and key:
            fields[key] += " " + raw.strip()
        elif ":" in raw:
            key, value = raw.split(":", 1)
            key = key.strip().lower()
            fields[key] = value.strip()
