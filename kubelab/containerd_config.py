"""containerd facts as Lab 2's grader observes them: pure parsing, no I/O (unit-tested on real outputs).

Two configuration layouts exist, told apart by the `version` key of the merged configuration that
`containerd config dump` prints (containerd migrates an older file before printing it):

- config version 2 (containerd 1.x): one CRI plugin, `io.containerd.grpc.v1.cri`; the runtimes sit at
  ``[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.<name>.options]``;
- config version 3 (containerd 2.x): the CRI plugin is split; the runtimes sit at
  ``[plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.<name>.options]``.

The kubelet asks for pods without naming a runtime handler, so what counts is the options of the
runtime the CRI plugin uses by default (``default_runtime_name``, "runc" unless changed).
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from typing import Any

CRI_GRPC_PLUGIN = "io.containerd.grpc.v1.cri"       # the CRI gRPC service, in both layouts (id "cri")
CRI_RUNTIME_PLUGIN_V3 = "io.containerd.cri.v1.runtime"
CRI_IMAGES_PLUGIN_V3 = "io.containerd.cri.v1.images"
# Names in `disabled_plugins` that switch the CRI off: a plugin is matched by its id or by type.id.
_CRI_NAMES = {"cri", CRI_GRPC_PLUGIN, "runtime", CRI_RUNTIME_PLUGIN_V3, "images", CRI_IMAGES_PLUGIN_V3}
DEFAULT_SOCKET = "/run/containerd/containerd.sock"


class ConfigError(ValueError):
    """The text is not a containerd configuration this module understands."""


def parse(text: str) -> dict[str, Any]:
    """The TOML of `containerd config dump` (or of a config file) as a dict."""
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"not valid TOML: {e}") from None


@dataclass(frozen=True)
class Layout:
    version: int
    runtime_plugin: str  # the plugin whose `containerd.runtimes` table holds the runtimes
    quote: str           # how `containerd config dump` quotes plugin names in this layout

    def options_header(self, runtime: str = "runc") -> str:
        q = self.quote
        return f"[plugins.{q}{self.runtime_plugin}{q}.containerd.runtimes.{runtime}.options]"


LAYOUT_V2 = Layout(2, CRI_GRPC_PLUGIN, '"')
LAYOUT_V3 = Layout(3, CRI_RUNTIME_PLUGIN_V3, "'")


def layout(cfg: dict[str, Any]) -> Layout:
    version = cfg.get("version", 1)
    if version == 3:
        return LAYOUT_V3
    if version == 2:
        return LAYOUT_V2
    raise ConfigError(f"config version {version!r}: expected 2 (containerd 1.x) or 3 (containerd 2.x)")


def _table(cfg: dict[str, Any], *path: str) -> dict[str, Any]:
    node: Any = cfg
    for key in path:
        node = node.get(key) if isinstance(node, dict) else None
        if node is None:
            return {}
    return node if isinstance(node, dict) else {}


@dataclass(frozen=True)
class RuntimeCgroup:
    """What the CRI plugin's default runtime says about SystemdCgroup."""

    layout: Layout
    runtime: str                 # default_runtime_name
    runtime_defined: bool        # a runtimes.<runtime> table exists
    systemd_cgroup: Any          # the value, or None when the key is absent (containerd then uses false)

    @property
    def header(self) -> str:
        return self.layout.options_header(self.runtime)

    @property
    def ok(self) -> bool:
        return self.systemd_cgroup is True


def runtime_cgroup(cfg: dict[str, Any]) -> RuntimeCgroup:
    lay = layout(cfg)
    containerd = _table(cfg, "plugins", lay.runtime_plugin, "containerd")
    name = containerd.get("default_runtime_name") or "runc"
    runtime = _table(containerd, "runtimes", name)
    options = _table(runtime, "options")
    return RuntimeCgroup(lay, name, bool(runtime), options.get("SystemdCgroup"))


def sandbox_image(cfg: dict[str, Any]) -> str | None:
    """The pause image the CRI plugin starts every pod sandbox from: config version 2 (containerd 1.x)
    `sandbox_image` of the CRI plugin; version 3 (2.x) `sandbox` in the images plugin's `pinned_images`."""
    if layout(cfg).version == 3:
        return _table(cfg, "plugins", CRI_IMAGES_PLUGIN_V3, "pinned_images").get("sandbox")
    return _table(cfg, "plugins", CRI_GRPC_PLUGIN).get("sandbox_image")


def systemd_cgroup_places(cfg: dict[str, Any]) -> list[tuple[str, ...]]:
    """The path of every table of a configuration that sets a key named SystemdCgroup."""
    found: list[tuple[str, ...]] = []

    def walk(node: dict[str, Any], path: tuple[str, ...]) -> None:
        for key, value in node.items():
            if key == "SystemdCgroup":
                found.append(path)
            elif isinstance(value, dict):
                walk(value, path + (key,))

    walk(cfg, ())
    return found


def misplaced_systemd_cgroup(file_cfg: dict[str, Any], runtime: str = "runc") -> list[str]:
    """Where a config *file* sets SystemdCgroup other than in the runtime options its own layout reads
    (a file's `version` says which layout containerd reads it in), as TOML headers."""
    try:
        lay = layout(file_cfg)
    except ConfigError:
        lay = None
    right = None if lay is None else ("plugins", lay.runtime_plugin, "containerd", "runtimes", runtime, "options")
    return [header(p, lay.quote if lay else '"') for p in systemd_cgroup_places(file_cfg) if p != right]


def header(path: tuple[str, ...], quote: str = '"') -> str:
    if not path:
        return "(top level, outside any table)"
    parts = [p if re.fullmatch(r"[A-Za-z0-9_-]+", p) else f"{quote}{p}{quote}" for p in path]
    return "[" + ".".join(parts) + "]"


def cri_disabled_by(cfg: dict[str, Any]) -> list[str]:
    """The entries of `disabled_plugins` that switch the CRI off (Docker's containerd.io ships ["cri"])."""
    return [p for p in cfg.get("disabled_plugins") or [] if p in _CRI_NAMES]


def grpc_address(cfg: dict[str, Any]) -> str:
    return _table(cfg, "grpc").get("address") or DEFAULT_SOCKET


def imports(cfg: dict[str, Any]) -> list[str]:
    return [str(p) for p in cfg.get("imports") or []]


# -- `containerd --version` --------------------------------------------------------------------

_VERSION = re.compile(r"^v?(\d+)\.(\d+)\.(\d+)")


@dataclass(frozen=True)
class Version:
    major: int
    minor: int
    patch: int
    text: str  # as printed, e.g. "1.6.20~ds1" or "2.1.4"


def parse_version(output: str) -> Version:
    """From `containerd --version`: "containerd <package or module> <version> <revision>", e.g.
    `containerd containerd.io 2.1.4 05044ec...` (Docker), `containerd github.com/containerd/containerd
    1.6.20~ds1 1.6.20~ds1-1+deb12u3` (Debian), `containerd github.com/containerd/containerd/v2 v2.1.4 75cb2b7...`."""
    words = output.split()
    if len(words) >= 3 and words[0] == "containerd":
        m = _VERSION.match(words[2])
        if m:
            return Version(int(m[1]), int(m[2]), int(m[3]), words[2])
    raise ConfigError(f"not the output of `containerd --version`: {output.strip()[:120]!r}")


# -- `ctr plugins ls` ------------------------------------------------------------------------------

def plugin_status(output: str) -> dict[tuple[str, str], str]:
    """(type, id) -> status ("ok", "skip", "error") from `ctr plugins ls` (TYPE ID PLATFORMS STATUS)."""
    found: dict[tuple[str, str], str] = {}
    for line in output.splitlines():
        words = line.split()
        if len(words) < 3 or words[0] == "TYPE":
            continue
        found[(words[0], words[1])] = words[-1]
    return found


def cri_status(output: str) -> str:
    """The status of the CRI gRPC plugin in `ctr plugins ls`, or "not loaded" when it is not listed."""
    return plugin_status(output).get(("io.containerd.grpc.v1", "cri"), "not loaded")
