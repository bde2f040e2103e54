"""apt's package sources read the way apt reads them (sources.list(5)): pure parsing, no I/O.

Both formats apt accepts are understood, in every file apt reads:

- one-line style (`/etc/apt/sources.list`, `sources.list.d/*.list`): `deb [opt=value ...] URI SUITE [COMPONENT...]`,
  options in any order (`arch=amd64 signed-by=/etc/apt/keyrings/x.gpg`), comma-separated values;
- deb822 style (`sources.list.d/*.sources`, what Docker's and Debian's current pages show): stanzas with `Types`,
  `URIs`, `Suites`, `Components`, `Architectures`, `Signed-By` (a keyring path, fingerprints, or an inline
  ASCII-armored key block), `Enabled: no`. Stanzas are parsed by python-debian's deb822 parser (field names
  case-insensitive, continuation lines, comments), one entry per URI x suite.

`LISTING` is the one command a grader runs to observe them; `entries(listing_output)` parses its output."""

from __future__ import annotations

import re
from dataclasses import dataclass

SOURCES_DIR = "/etc/apt/sources.list.d"
# apt ignores files whose names have other characters or another extension (sources.list(5), SOURCES.LIST.D)
_VALID_NAME = re.compile(r"^[A-Za-z0-9_.-]+\.(list|sources)$")
_HEADER = re.compile(r"^==> (.+) <==$")  # a name with a space is still a header (apt ignores such a file)
# every file apt reads, each preceded by a header line; a file apt would ignore is listed too, then skipped here
LISTING = (f"for f in /etc/apt/sources.list {SOURCES_DIR}/*; do [ -f \"$f\" ] || continue; "
           "printf '==> %s <==\\n' \"$f\"; cat \"$f\"; echo; done; true")
PGP_BLOCK = "-----BEGIN PGP PUBLIC KEY BLOCK-----"
_FALSE = ("no", "false", "without", "off", "disable", "0")  # apt's StringToBool


@dataclass(frozen=True)
class Entry:
    file: str
    type: str                              # deb or deb-src
    uri: str
    suite: str
    components: tuple[str, ...]
    architectures: tuple[str, ...] = ()    # empty: apt's default (the native architecture and foreign ones)
    signed_by: str = ""                    # keyring path(s), fingerprints or an inline key block; "" = not set
    enabled: bool = True

    @property
    def inline_key(self) -> bool:
        return PGP_BLOCK in self.signed_by

    @property
    def keyrings(self) -> list[str]:
        """The keyring files Signed-By names (absolute paths); fingerprints and inline keys are not files."""
        if self.inline_key:
            return []
        return [w for w in re.split(r"[\s,]+", self.signed_by) if w.startswith("/")]

    def one_line(self) -> str:
        """The entry in one-line form, for showing to a learner (an inline key shown as `(inline key)`)."""
        opts = []
        if self.architectures:
            opts.append("arch=" + ",".join(self.architectures))
        if self.signed_by:
            opts.append("signed-by=" + ("(inline key)" if self.inline_key else ",".join(self.signed_by.split())))
        words = [self.type] + ([f"[{' '.join(opts)}]"] if opts else []) + [self.uri, self.suite, *self.components]
        return " ".join(words) + ("" if self.enabled else " (Enabled: no)")


def _split_values(value: str) -> tuple[str, ...]:
    return tuple(v for v in re.split(r"[\s,]+", value.strip()) if v)


def one_line_entries(text: str, file: str = "") -> list[Entry]:
    out = []
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        m = re.match(r"^(deb|deb-src)\s+(?:\[([^\]]*)\]\s*)?(.*)$", line)
        if not m:
            continue
        kind, opts_text, rest = m.group(1), m.group(2) or "", m.group(3).split()
        if len(rest) < 2:
            continue
        options: dict[str, str] = {}
        for opt in opts_text.split():
            key, sep, value = opt.partition("=")
            if not sep:
                continue
            if key.endswith("-"):            # arch-=i386 removes from the default set: not an explicit list
                continue
            key = key.rstrip("+")
            options[key] = f"{options[key]},{value}" if key in options else value
        out.append(Entry(file=file, type=kind, uri=rest[0], suite=rest[1], components=tuple(rest[2:]),
                         architectures=_split_values(options.get("arch", "")),
                         signed_by=",".join(_split_values(options.get("signed-by", ""))),
                         enabled=True))
    return out


def deb822_entries(text: str, file: str = "") -> list[Entry]:
    from debian.deb822 import Deb822

    out = []
    for stanza in Deb822.iter_paragraphs(text.splitlines(keepends=True), use_apt_pkg=False):
        types = _split_values(stanza.get("Types", ""))
        uris = _split_values(stanza.get("URIs", ""))
        suites = _split_values(stanza.get("Suites", ""))
        signed = stanza.get("Signed-By", "").strip()
        if PGP_BLOCK not in signed:
            signed = ",".join(_split_values(signed))
        common = dict(file=file, components=_split_values(stanza.get("Components", "")),
                      architectures=_split_values(stanza.get("Architectures", "")), signed_by=signed,
                      enabled=stanza.get("Enabled", "yes").strip().lower() not in _FALSE)
        out += [Entry(type=t, uri=u, suite=s, **common) for t in types for u in uris for s in suites]
    return out


def file_entries(path: str, text: str) -> list[Entry]:
    """The entries apt takes from one file, by its name: none from a file apt ignores."""
    name = path.rsplit("/", 1)[-1]
    if path == "/etc/apt/sources.list":
        return one_line_entries(text, path)
    if not _VALID_NAME.match(name):
        return []
    return deb822_entries(text, path) if name.endswith(".sources") else one_line_entries(text, path)


def split_listing(output: str) -> dict[str, str]:
    """LISTING's output as {path: text}."""
    files: dict[str, list[str]] = {}
    current = None
    for line in output.splitlines():
        m = _HEADER.match(line)
        if m:
            current = m.group(1)
            files[current] = []
        elif current is not None:
            files[current].append(line)
    return {path: "\n".join(lines) + "\n" for path, lines in files.items()}


def entries(listing_output: str) -> list[Entry]:
    """Every entry (enabled or not) of the files LISTING showed, in apt's reading order."""
    out = []
    for path, text in split_listing(listing_output).items():
        out += file_entries(path, text)
    return out


def same_uri(a: str, b: str) -> bool:
    return a.rstrip("/") == b.rstrip("/")


def find(found: list[Entry], uri: str, suite: str, components: tuple[str, ...] | list[str] = ()) -> Entry | None:
    """The first enabled binary (`deb`) entry of repository `uri` and `suite` with at least `components`."""
    for e in found:
        if e.enabled and e.type == "deb" and same_uri(e.uri, uri) and e.suite == suite \
                and set(components) <= set(e.components):
            return e
    return None


def serves_architecture(entry: Entry, arch: str) -> bool:
    """Whether apt fetches `arch` packages from the entry (no Architectures/arch= means the native one)."""
    return not entry.architectures or arch in entry.architectures


def inline_key_text(entry: Entry) -> str:
    """An inline Signed-By key as the armored text apt reads: continuation indent removed, ` .` lines blank."""
    lines = [ln.strip() for ln in entry.signed_by.splitlines()]
    return "\n".join("" if ln == "." else ln for ln in lines) + "\n"


@dataclass(frozen=True)
class Finding:
    entry: Entry | None     # the course's repository as apt reads it, when configured the course's way
    expected: str           # what a learner should see as expected
    actual: str             # what is there, for the learner


def course_repository(listing_output: str, course_line: str, arch: str) -> Finding:
    """Is the repository of the course's one-line `course_line` configured, in either format, in any file apt
    reads, signed by a key of its own (Signed-By), for this node's architecture `arch`?"""
    (want,) = one_line_entries(course_line)
    found = entries(listing_output)
    entry = find(found, want.uri, want.suite, want.components)
    expected = course_line
    if entry is None:
        mine = [e for e in found if e.type == "deb" and e.file.startswith(SOURCES_DIR + "/")]
        shown = "; ".join(f"{e.one_line()} ({e.file})" for e in mine[:5])
        return Finding(None, expected, shown or f"no deb entry in {SOURCES_DIR}")
    where = f"{entry.one_line()} ({entry.file})"
    if not entry.signed_by:
        return Finding(None, expected, f"{where}: no signed-by (Signed-By), so apt trusts any key it has for it")
    if not serves_architecture(entry, arch):
        return Finding(None, expected, f"{where}: architectures {','.join(entry.architectures)} leave out this "
                                       f"node's {arch}")
    return Finding(entry, expected, where)
