"""course.yaml: its schema, and a loader whose errors name the file, the key and the fix."""

from __future__ import annotations

import hashlib
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

from pydantic import (BaseModel, BeforeValidator, ConfigDict, Field, StrictInt, ValidationError, field_validator,
                      model_validator)

from kubelab import inputfiles
from kubelab.errors import UsageError

COURSE_FILE = "course.yaml"
NAME_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"  # an RFC 1123 label: a valid hostname and node name


_SEP = "\x1f"
MAX_COURSE_BYTES = 1 * inputfiles.MIB


def _written_as_text(value):
    """An address must be written as text: YAML reads 3232235530 as an int, which ipaddress would take."""
    if not isinstance(value, str):
        raise ValueError(f"write it as text such as 192.168.56.10, not {type(value).__name__} {value!r}")
    return value


def _real_number(value):
    """YAML's `true` is a bool and Python's bool is an int: a number here must be written as a number."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"write a number, not {type(value).__name__} {value!r}")
    return value


IPv4Text = Annotated[ipaddress.IPv4Address, BeforeValidator(_written_as_text)]
NetworkText = Annotated[ipaddress.IPv4Network, BeforeValidator(_written_as_text)]
Number = Annotated[float, BeforeValidator(_real_number)]


def _located(where: str, problem: str, fix: str) -> ValueError:
    """A cross-field problem with its own key path and fix (pydantic gives model validators no location)."""
    return ValueError(_SEP.join((where, problem, fix)))


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CourseInfo(_Strict):
    id: str = Field(pattern=NAME_PATTERN)
    title: str = Field(min_length=1)


class KubernetesVersion(_Strict):
    minor: str = Field(pattern=r"^1\.\d+$")
    patch: str = Field(pattern=r"^1\.\d+\.\d+$")

    @model_validator(mode="after")
    def _patch_in_minor(self) -> "KubernetesVersion":
        if not self.patch.startswith(self.minor + "."):
            raise ValueError(f"patch {self.patch} is not a release of minor {self.minor}")
        return self


class ContainerdVersion(_Strict):
    major: StrictInt = Field(ge=1, le=3)


class CniVersion(_Strict):
    name: Literal["flannel", "calico", "cilium", "bridge"]
    version: str = Field(min_length=1)


class FromTool(_Strict):
    """A value that must be read from the installed tools at run time, never pinned here."""

    from_tool: str = Field(min_length=1)


class Versions(_Strict):
    kubernetes: KubernetesVersion
    containerd: ContainerdVersion
    cni: CniVersion
    pause_image: FromTool
    containerd_version: FromTool


_PLACEHOLDERS = {"minor"}


class AptSource(_Strict):
    """An apt repository a lab installs from. Kept here, not in the notebooks, so a classroom can
    point a lab at a local mirror; `{minor}` stands for versions.kubernetes.minor."""

    url: str = Field(pattern=r"^(https?|file)://")
    suite: str = Field(min_length=1)
    components: list[str] = Field(default_factory=list)
    key_url: str = Field(pattern=r"^(https?|file)://")
    # .asc: the armored key as downloaded; .gpg: dearmored (`gpg --dearmor`). apt reads both.
    keyring: str = Field(pattern=r"^/etc/apt/keyrings/[\w.-]+\.(asc|gpg)$")
    list_file: str = Field(pattern=r"^/etc/apt/sources\.list\.d/[\w.-]+\.list$")
    packages: list[str] = Field(min_length=1)

    @model_validator(mode="after")
    def _known_placeholders(self) -> "AptSource":
        import string

        for field in ("url", "suite", "key_url"):
            for _, name, _, _ in string.Formatter().parse(getattr(self, field)):
                if name is not None and name not in _PLACEHOLDERS:
                    raise ValueError(f"{field} uses {{{name}}}; only {{minor}} is known")
        return self

    def rendered(self, minor: str) -> "RenderedAptSource":
        url = self.url.format(minor=minor)
        parts = ["deb", f"[signed-by={self.keyring}]", url, self.suite.format(minor=minor), *self.components]
        return RenderedAptSource(url=url, key_url=self.key_url.format(minor=minor), keyring=self.keyring,
                                 list_file=self.list_file, apt_line=" ".join(parts),
                                 packages=tuple(self.packages))


@dataclass(frozen=True)
class RenderedAptSource:
    url: str
    key_url: str
    keyring: str
    list_file: str
    apt_line: str  # the one line the lab writes into list_file
    packages: tuple[str, ...]

    @property
    def dearmor(self) -> bool:
        return self.keyring.endswith(".gpg")


class PackageSources(_Strict):
    containerd: AptSource
    kubernetes: AptSource


class Network(_Strict):
    private_subnet: NetworkText
    pod_cidr: NetworkText
    service_cidr: NetworkText
    # the mode kube-proxy runs in at the end of Lab 11 (whose grader reads iptables and nftables rules);
    # kubeadm's default (unset) is iptables
    kube_proxy_mode: Literal["iptables", "nftables"] = "iptables"

    @model_validator(mode="after")
    def _no_overlap(self) -> "Network":
        nets = {"private_subnet": self.private_subnet, "pod_cidr": self.pod_cidr,
                "service_cidr": self.service_cidr}
        names = list(nets)
        for i, a in enumerate(names):
            for b in names[i + 1:]:
                if nets[a].overlaps(nets[b]):
                    raise ValueError(f"{a} {nets[a]} overlaps {b} {nets[b]}")
        return self


class Node(_Strict):
    name: str = Field(pattern=NAME_PATTERN, max_length=63)
    role: Literal["control-plane", "worker"]
    ip: IPv4Text
    cpus: StrictInt = Field(ge=1, le=64)
    memory_mb: StrictInt = Field(ge=512, le=262144)

    @model_validator(mode="after")
    def _kubeadm_minimums(self) -> "Node":
        # kubeadm's preflight refuses a control plane with fewer than 2 CPUs or about 2 GiB.
        if self.role == "control-plane" and (self.cpus < 2 or self.memory_mb < 2048):
            raise ValueError("a control-plane node needs at least cpus: 2 and memory_mb: 2048 (kubeadm preflight)")
        return self


class Lab(_Strict):
    id: str = Field(pattern=r"^lab\d{2}$")
    title: str = Field(min_length=1)
    notebook: str = Field(pattern=r"^[\w.-]+\.ipynb$")
    grader: str = Field(pattern=r"^lab\d{2}_\w+\.py$")
    depends_on: list[str] = Field(default_factory=list)
    points: Number = Field(gt=0, allow_inf_nan=False)

    @model_validator(mode="after")
    def _grader_named_after_lab(self) -> "Lab":
        if not self.grader.startswith(self.id + "_"):
            raise ValueError(f"grader {self.grader} must be named {self.id}_<name>.py")
        return self


class Course(_Strict):
    course: CourseInfo
    versions: Versions
    network: Network
    package_sources: PackageSources
    lab_user: str = Field(pattern=r"^[a-z_][a-z0-9_-]*$")
    nodes: list[Node] = Field(min_length=1)
    labs: list[Lab] = Field(min_length=1)

    @field_validator("nodes")
    @classmethod
    def _unique_nodes(cls, nodes: list[Node]) -> list[Node]:
        for attr in ("name", "ip"):
            seen: set = set()
            for n in nodes:
                value = getattr(n, attr)
                if value in seen:
                    raise _located(f"nodes[{n.name}].{attr}", f"two nodes have {attr} {value}",
                                   f"give every node its own {attr}")
                seen.add(value)
        cps = [n.name for n in nodes if n.role == "control-plane"]
        if len(cps) != 1:
            raise _located("nodes", f"exactly one node must have role control-plane, found {len(cps)}",
                           "set role: control-plane on exactly one node")
        if not any(n.role == "worker" for n in nodes):
            raise _located("nodes", "no node has role worker: the labs join at least one worker to the cluster",
                           "add a node with role: worker")
        return nodes

    @model_validator(mode="after")
    def _nodes_in_subnet(self) -> "Course":
        net = self.network.private_subnet
        for n in self.nodes:
            if n.ip not in net or n.ip in (net.network_address, net.broadcast_address):
                raise _located(f"nodes[{n.name}].ip", f"{n.ip} is not a host address of network.private_subnet {net}",
                               f"pick an address inside {net}")
            if n.ip == next(net.hosts()):
                raise _located(f"nodes[{n.name}].ip", f"{n.ip} is the subnet's first address, which the host side "
                               "of the private network (Vagrant provider or twin bridge) takes",
                               f"pick another address inside {net}")
        return self

    @model_validator(mode="after")
    def _lab_graph(self) -> "Course":
        ids = [lab.id for lab in self.labs]
        if len(set(ids)) != len(ids):
            raise _located("labs", "two labs have the same id", "give every lab its own id")
        known = set(ids)
        for lab in self.labs:
            for dep in lab.depends_on:
                if dep not in known:
                    raise _located(f"labs[{lab.id}].depends_on", f"unknown lab {dep}",
                                   f"name labs defined in course.yaml: {', '.join(ids)}")
        # depends_on must point backwards: labs are taught in file order.
        order = {lab_id: i for i, lab_id in enumerate(ids)}
        for lab in self.labs:
            for dep in lab.depends_on:
                if order[dep] >= order[lab.id]:
                    raise _located(f"labs[{lab.id}].depends_on", f"{dep} does not come before {lab.id}",
                                   "a lab may only depend on labs listed above it")
        return self

    # -- lookups ---------------------------------------------------------------------------
    def apt_source(self, name: Literal["containerd", "kubernetes"]) -> RenderedAptSource:
        return getattr(self.package_sources, name).rendered(self.versions.kubernetes.minor)

    @property
    def control_plane(self) -> Node:
        return next(n for n in self.nodes if n.role == "control-plane")

    def node(self, name: str) -> Node:
        for n in self.nodes:
            if n.name == name:
                return n
        raise UsageError(f"no node named {name!r} in course.yaml",
                         f"use one of: {', '.join(n.name for n in self.nodes)}")

    def lab(self, lab_id: str) -> Lab:
        for lab in self.labs:
            if lab.id == lab_id:
                return lab
        raise UsageError(f"unknown lab {lab_id!r}",
                         f"use one of the labs in course.yaml: {', '.join(l.id for l in self.labs)}")

    def select_nodes(self, selector: str) -> list[Node]:
        """'all', a role ('control-plane', 'worker') or a node name."""
        if selector == "all":
            return list(self.nodes)
        if selector in ("control-plane", "worker"):
            return [n for n in self.nodes if n.role == selector]
        return [self.node(selector)]


@dataclass(frozen=True)
class Problem:
    """One thing wrong with the course, located precisely."""

    file: str
    where: str
    problem: str
    fix: str

    def __str__(self) -> str:
        loc = f"{self.file}: {self.where}" if self.where else self.file
        text = f"{loc}: {self.problem} (fix: {self.fix})"
        return text.replace("\r", "\\r").replace("\n", "\\n")  # one problem, one line, whatever it quotes


class CourseProblems(UsageError):
    def __init__(self, problems: list[Problem]):
        self.problems = problems
        first = problems[0]
        where = f"{first.file}: {first.where}" if first.where else first.file
        if len(problems) == 1:
            super().__init__(f"{where}: {first.problem}", first.fix)
        else:
            super().__init__(f"{len(problems)} problems in {first.file}, first: {first.where}: {first.problem}",
                             "run `kubelab lint` to see them all")


@dataclass(frozen=True)
class LoadedCourse:
    """A validated course and where it lives."""

    model: Course
    root: Path

    @property
    def path(self) -> Path:
        return self.root / COURSE_FILE

    def grader_path(self, lab_id: str) -> Path:
        return self.root / "graders" / self.model.lab(lab_id).grader

    def solution_path(self, lab_id: str) -> Path:
        return self.root / "solutions" / lab_id / self.model.lab(lab_id).notebook

    def student_path(self, lab_id: str) -> Path:
        return self.root / "labs" / lab_id / self.model.lab(lab_id).notebook


def find_course_root(start: Path | None = None) -> Path:
    """KUBELAB_COURSE (a course.yaml or its folder), else the nearest course.yaml upward from cwd."""
    env = os.environ.get("KUBELAB_COURSE")
    if env:
        p = Path(env).expanduser()
        return p.parent if p.name == COURSE_FILE or p.is_file() else p
    here = (start or Path.cwd()).resolve()
    for d in (here, *here.parents):
        if (d / COURSE_FILE).is_file():
            return d
    raise UsageError(f"no {COURSE_FILE} in {here} or any folder above it",
                     "run from inside the course checkout, or pass --course PATH / set KUBELAB_COURSE")


_FIXES = {
    "missing": "add the key",
    "extra_forbidden": "remove the key or check its spelling",
    "string_pattern_mismatch": "use a value of the form shown",
    "ip_v4_address": "write an IPv4 address such as 192.168.56.10",
    "ip_v4_network": "write an IPv4 network such as 192.168.56.0/24",
    "literal_error": "use one of the allowed values",
    "int_parsing": "write a whole number",
    "greater_than_equal": "raise the value",
    "less_than_equal": "lower the value",
    "too_short": "add at least one entry",
    "int_type": "write a whole number (not true/false, not text)",
    "finite_number": "write a finite number",
}


def _key_path(loc: tuple, data) -> str:
    parts: list[str] = []
    node = data
    for item in loc:
        if isinstance(item, int):
            # name list entries by their name/id where the file gives one: nodes[worker], not nodes[1]
            label = None
            if isinstance(node, list) and item < len(node) and isinstance(node[item], dict):
                label = node[item].get("name") or node[item].get("id")
            parts[-1:] = [f"{parts[-1] if parts else ''}[{label if label else item}]"]
            node = node[item] if isinstance(node, list) and item < len(node) else None
        else:
            parts.append(str(item))
            node = node.get(item) if isinstance(node, dict) else None
    return ".".join(parts)


def parse_course(text: str, file: str = COURSE_FILE) -> Course:
    """Parse and validate; raise CourseProblems listing every problem found."""
    try:
        data = inputfiles.parse_yaml(text, file, "start from the course.yaml in the repository")
    except UsageError as e:
        problem = e.problem[len(file):].lstrip(": ") if e.problem.startswith(file) else e.problem
        raise CourseProblems([Problem(file, "", problem, e.fix)]) from None
    if not isinstance(data, dict):
        raise CourseProblems([Problem(file, "", "is not a YAML mapping of course, versions, network, nodes, labs",
                                      "start from the course.yaml in the repository")])
    try:
        return Course.model_validate(data)
    except ValidationError as e:
        problems = []
        for err in e.errors():
            loc = tuple(x for x in err["loc"] if x not in ("function-after",))
            msg = err["msg"]
            if msg.startswith("Value error, "):
                msg = msg[len("Value error, "):]
            fix = _FIXES.get(err["type"], "correct the value")
            if err["type"] == "string_pattern_mismatch":
                fix = f"use a value matching {err['ctx']['pattern']}"
            where = _key_path(loc, data) or "(top level)"
            if _SEP in msg:
                sub, msg, fix = msg.split(_SEP)
                where = sub
            problems.append(Problem(file, where, msg, fix))
        raise CourseProblems(problems)


def read_course_text(path: Path) -> str:
    """course.yaml's text: a regular file, at most MAX_COURSE_BYTES, UTF-8; else one UsageError line."""
    raw = inputfiles.read_bytes(path, str(path), MAX_COURSE_BYTES,
                                "pass the folder that holds course.yaml with --course")
    return inputfiles.decode_utf8(raw, str(path), "run `kubelab lint`")


# Parsed courses by file and content: a process that loads the course again and again (a notebook grading
# twice, a class run, the CLI) parses and validates it once; an edited file has other content, so it is
# parsed again. The models are frozen, so sharing one is safe.
_PARSED: dict[tuple[str, str], Course] = {}


def load_course(root: Path | str | None = None) -> LoadedCourse:
    root = Path(root) if root is not None else find_course_root()
    if root.is_file():
        root = root.parent
    path = root / COURSE_FILE
    text = read_course_text(path)
    key = (str(path.resolve()), hashlib.sha256(text.encode()).hexdigest())
    model = _PARSED.get(key)
    if model is None:
        if len(_PARSED) >= 64:
            _PARSED.clear()
        model = _PARSED[key] = parse_course(text, str(path))
    return LoadedCourse(model, root.resolve())
