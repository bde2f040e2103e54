"""apt facts as graders observe them (one-line .list sources, `apt-cache policy`): pure parsing, no I/O."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class DebLine:
    uri: str
    suite: str
    components: tuple[str, ...]
    options: dict[str, str] = field(default_factory=dict)


def deb_lines(text: str) -> list[DebLine]:
    """The enabled `deb` lines of a one-line-style .list file, options such as signed-by= included."""
    out = []
    for raw in text.splitlines():
        words = raw.split("#", 1)[0].split()
        if not words or words[0] != "deb":
            continue
        words = words[1:]
        options: dict[str, str] = {}
        if words and words[0].startswith("["):
            opts = []
            while words:
                w = words.pop(0)
                opts.append(w)
                if w.endswith("]"):
                    break
            for opt in " ".join(opts).strip("[]").split():
                k, _, v = opt.partition("=")
                options[k] = v
        if len(words) >= 2:
            out.append(DebLine(words[0], words[1], tuple(words[2:]), options))
    return out


def same_uri(a: str, b: str) -> bool:
    return a.rstrip("/") == b.rstrip("/")


def matching_line(text: str, uri: str, suite: str, keyring: str) -> DebLine | None:
    """The line of `text` that uses repository `uri` and suite `suite`, signed by `keyring`."""
    for line in deb_lines(text):
        if same_uri(line.uri, uri) and line.suite == suite and line.options.get("signed-by") == keyring:
            return line
    return None


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
