"""apt sources read the way apt reads them (kubelab.aptsources), and Labs 2 and 3 grading them.

Two kinds of proof, each test says which:

- "unit": the pure parser on texts in both formats of sources.list(5) — one-line (options in any order,
  arch=, comma lists) and deb822 (Docker's current Debian page: Types/URIs/Suites/Components/Signed-By,
  Architectures; Signed-By as a path or an inline key block; Enabled: no).
- "recorded evidence, real tools on a stand-in /etc/apt": the real Lab 2 and Lab 3 graders run through the
  engine's recording seam against `AptDirTarget`: each node's /etc/apt is a temporary directory, and the
  grader's commands that read it (the sources listing, test/stat, grep, gpg --show-keys, dpkg
  --print-architecture) run for real on this machine with the path rewritten. The key is a real OpenPGP key
  (kubelab.twin.aptrepo). Every other command answers "not part of this simulation": only the apt checks are
  asserted. The evidence is saved and replayed; replay == live.
"""

from __future__ import annotations

import subprocess
import textwrap

import pytest
from testinfra.backend.base import BaseBackend, CommandResult

from helpers import REPO
from kubelab import aptsources
from kubelab.course import load_course
from kubelab.engine.targets import Target
from kubelab.evidence import comparable, record_lab, replay_lab, save

DOCKER_KEY = "/etc/apt/keyrings/docker.asc"


# -- unit: the parser ------------------------------------------------------------------------------------

def test_one_line_options_in_any_order_and_arch():
    """Unit."""
    text = ("# Docker\n"
            "deb [ signed-by=/etc/apt/keyrings/docker.asc arch=amd64,arm64 ] https://download.docker.com/linux/debian "
            "bookworm stable # trailing comment\n"
            "#deb http://old bookworm main\n"
            "deb-src [signed-by=/k.gpg] http://src bookworm main\n")
    deb, src = aptsources.one_line_entries(text, "/etc/apt/sources.list.d/docker.list")
    assert (deb.type, deb.uri, deb.suite, deb.components) == (
        "deb", "https://download.docker.com/linux/debian", "bookworm", ("stable",))
    assert deb.architectures == ("amd64", "arm64") and deb.keyrings == [DOCKER_KEY]
    assert src.type == "deb-src"
    assert aptsources.find([deb, src], "https://download.docker.com/linux/debian/", "bookworm", ["stable"]) == deb
    assert aptsources.find([src], "http://src", "bookworm") is None  # deb-src is no binary repository
    assert aptsources.serves_architecture(deb, "arm64") and not aptsources.serves_architecture(deb, "riscv64")
    flat = "deb [signed-by=/etc/apt/keyrings/kubernetes-apt-keyring.gpg] https://pkgs.k8s.io/core:/stable:/v1.36/deb/ /\n"
    (k8s,) = aptsources.one_line_entries(flat)
    assert k8s.suite == "/" and k8s.components == () and not k8s.architectures


INLINE = """\
Types: deb
URIs: https://download.docker.com/linux/debian
Suites: bookworm
Components: stable
Architectures: amd64
Signed-By:
 -----BEGIN PGP PUBLIC KEY BLOCK-----
 .
 mQINBFit2ioBEADhWpZ8/wvZ6hUTiXOwQHXMAlaFHcPH9hAtr4F1y2+OYdbtMuth
 =0YYh
 -----END PGP PUBLIC KEY BLOCK-----
"""


def test_deb822_stanzas_path_inline_key_disabled_and_many_suites():
    """Unit: Docker's Debian page's .sources form, an inline key, `Enabled: no`, URIs x Suites."""
    text = textwrap.dedent("""\
        # written by hand
        types: deb
        URIs: https://download.docker.com/linux/debian
        Suites: bookworm
        Components: stable
        Signed-By: /etc/apt/keyrings/docker.asc

        Types: deb deb-src
        URIs: http://a http://b
        Suites: bookworm bookworm-updates
        Components: main
        Enabled: no
        """)
    found = aptsources.deb822_entries(text, "/etc/apt/sources.list.d/docker.sources")
    assert len(found) == 1 + 2 * 2 * 2
    docker = found[0]
    assert (docker.uri, docker.suite, docker.components, docker.keyrings) == (
        "https://download.docker.com/linux/debian", "bookworm", ("stable",), [DOCKER_KEY])
    assert not any(e.enabled for e in found[1:])
    assert aptsources.find(found, "http://a", "bookworm") is None  # disabled
    (inline,) = aptsources.deb822_entries(INLINE)
    assert inline.inline_key and inline.keyrings == [] and inline.architectures == ("amd64",)
    key = aptsources.inline_key_text(inline)
    assert key.startswith("-----BEGIN PGP PUBLIC KEY BLOCK-----\n\nmQIN") and key.endswith("-----\n")
    assert "(inline key)" in inline.one_line()


def test_listing_splits_files_and_skips_what_apt_ignores():
    """Unit: LISTING's output, file by file; a file apt ignores (bad name or extension) adds nothing."""
    out = ("==> /etc/apt/sources.list <==\ndeb http://deb.debian.org/debian bookworm main\n\n"
           "==> /etc/apt/sources.list.d/docker.sources <==\n" + INLINE + "\n"
           "==> /etc/apt/sources.list.d/old.list.save <==\ndeb http://x bookworm main\n\n"
           "==> /etc/apt/sources.list.d/k8s.list <==\ndeb [arch=amd64 signed-by=/k.gpg] https://pkgs.k8s.io/core:/stable:/v1.36/deb/ /\n")
    found = aptsources.entries(out)
    assert [e.file.rsplit("/", 1)[-1] for e in found] == ["sources.list", "docker.sources", "k8s.list"]


def test_course_repository_findings():
    """Unit: the verdict both graders share — found in either format; not found, unsigned or another arch fail."""
    line = "deb [signed-by=/etc/apt/keyrings/docker.asc] https://download.docker.com/linux/debian bookworm stable"
    ok = aptsources.course_repository("==> /etc/apt/sources.list.d/docker.sources <==\n" + INLINE, line, "amd64")
    assert ok.entry is not None and ok.expected == line
    other_arch = aptsources.course_repository("==> /etc/apt/sources.list.d/docker.sources <==\n" + INLINE, line, "arm64")
    assert other_arch.entry is None and "leave out this node's arm64" in other_arch.actual
    unsigned = aptsources.course_repository(
        "==> /etc/apt/sources.list.d/docker.list <==\ndeb https://download.docker.com/linux/debian bookworm stable\n",
        line, "amd64")
    assert unsigned.entry is None and "no signed-by" in unsigned.actual
    wrong = aptsources.course_repository(
        "==> /etc/apt/sources.list.d/docker.list <==\n"
        "deb [signed-by=/etc/apt/keyrings/docker.asc] https://download.docker.com/linux/ubuntu bookworm stable\n",
        line, "amd64")
    assert wrong.entry is None and "linux/ubuntu" in wrong.actual
    nothing = aptsources.course_repository("", line, "amd64")
    assert nothing.entry is None and "no deb entry" in nothing.actual


# -- recorded evidence: the real graders on a stand-in /etc/apt ---------------------------------------------

class _AptDirBackend(BaseBackend):
    NAME = "kubelab-aptdir"
    # the only commands answered: they read the stand-in /etc/apt (or the architecture) with real tools
    READS = ("uname", "lsb_release", "cat /etc/os-release", "cat /etc/debian_version", "dpkg --print-architecture", "test -e ", "stat -Lc ", "grep -q ", "d=$(mktemp -d)",
             aptsources.LISTING[:20])

    def __init__(self, node: str, root, stats, **kwargs):
        super().__init__(node, **kwargs)
        self.root, self.stats = root, stats

    def run(self, command: str, *args: str, **kwargs) -> CommandResult:
        cmd = self.get_command(command, *args)
        self.stats.commands_sent += 1
        if not cmd.startswith(self.READS):
            return self.result(127, self.encode(cmd), b"", b"not part of this simulation\n")
        real = cmd.replace("/etc/apt", f"{self.root}/etc/apt")
        p = subprocess.run(["bash", "-c", real], capture_output=True, timeout=60)
        out = p.stdout.replace(str(self.root).encode(), b"")
        return self.result(p.returncode, self.encode(cmd), out, p.stderr.replace(str(self.root).encode(), b""))


class AptDirTarget(Target):
    """Each node's /etc/apt is a folder under `root/<node>`; see the module docstring."""

    def __init__(self, course, root):
        super().__init__(course)
        self.root = root
        self.description = "stand-in /etc/apt folders, real tools"

    def _backend(self, node: str) -> BaseBackend:
        return _AptDirBackend(node, self.root / node, self.stats)


@pytest.fixture(scope="module")
def signing_key(tmp_path_factory):
    from kubelab.twin.aptrepo import LocalAptRepo

    repo = LocalAptRepo(tmp_path_factory.mktemp("key"))
    armored = repo.public_key_armored
    dearmored = subprocess.run(["gpg", "--dearmor"], input=armored.encode(), capture_output=True, check=True).stdout
    repo.cleanup()
    return armored, dearmored


def _write(root, path: str, content: str | bytes):
    f = root / path.lstrip("/")
    f.parent.mkdir(parents=True, exist_ok=True)
    f.write_bytes(content if isinstance(content, bytes) else content.encode())


def _grade(lab, tmp_path, nodes: dict[str, dict[str, str | bytes]]):
    """Record `lab` against the stand-in folders, save, replay; the apt checks' results per (check, node)."""
    from kubelab.evidence.replay import ReplayClock

    course = load_course(REPO)
    for node, files in nodes.items():
        for path, content in files.items():
            _write(tmp_path / "nodes" / node, path, content)
    # virtual time: polling checks that cannot pass here do not sleep
    live, evidence = record_lab(course, lab, AptDirTarget(course, tmp_path / "nodes"), clock=ReplayClock())
    path = save(evidence, tmp_path / f"{lab}.evidence.json")
    replayed, _ = replay_lab(course, lab, path)
    assert comparable(replayed.to_dict()) == comparable(live.to_dict())
    return {(c.check, c.node): c for c in replayed.checks}


def _docker_sources(key_line: str, arch: str) -> str:
    return ("Types: deb\nURIs: https://download.docker.com/linux/debian\nSuites: bookworm\nComponents: stable\n"
            f"Architectures: {arch}\n{key_line}\n")


def _native_arch() -> str:
    return subprocess.run(["dpkg", "--print-architecture"], capture_output=True, text=True, check=True).stdout.strip()


def test_lab02_apt_source_accepts_deb822_and_arch_lines_and_fails_wrong_ones(signing_key, tmp_path):
    """Recorded evidence, real tools on a stand-in /etc/apt: master has Docker's page's deb822 docker.sources
    (Signed-By a path, Architectures the node's), worker an `arch=` one-line with reordered options and the key
    inline in another deb822 file on a third node... pass; a .sources whose Architectures leave the node out and a
    one-line entry without signed-by fail with expected vs actual and the hint."""
    armored, _ = signing_key
    arch = _native_arch()
    course = load_course(REPO).model
    master, worker = (n.name for n in course.nodes)
    inline = "Signed-By:\n" + "".join(f" {ln or '.'}\n" for ln in armored.strip().splitlines())
    good = {master: {"/etc/apt/sources.list.d/docker.sources": _docker_sources(f"Signed-By: {DOCKER_KEY}", arch),
                     DOCKER_KEY: armored},
            worker: {"/etc/apt/sources.list.d/docker.list":
                     f"deb [arch={arch} signed-by={DOCKER_KEY}] https://download.docker.com/linux/debian bookworm stable\n",
                     DOCKER_KEY: armored}}
    got = _grade("lab02", tmp_path / "good", good)
    assert {n: str(got[("apt_source", n)].status) for n in (master, worker)} == {master: "pass", worker: "pass"}, \
        [(got[("apt_source", n)].expected, got[("apt_source", n)].actual) for n in (master, worker)]

    inline_only = {master: {"/etc/apt/sources.list.d/docker.sources": _docker_sources(inline.rstrip("\n"), arch)},
                   worker: {"/etc/apt/sources.list.d/docker.list":
                            "deb https://download.docker.com/linux/debian bookworm stable\n"}}
    got = _grade("lab02", tmp_path / "inline", inline_only)
    assert str(got[("apt_source", master)].status) == "pass"   # the key inside the stanza: no keyring file needed
    unsigned = got[("apt_source", worker)]
    assert str(unsigned.status) == "fail" and "no signed-by" in unsigned.actual
    assert "KUBELAB_CONTAINERD_APT_LINE" in unsigned.hint and ".sources" in unsigned.hint

    other = "riscv64" if arch != "riscv64" else "amd64"
    bad = {master: {"/etc/apt/sources.list.d/docker.sources": _docker_sources(f"Signed-By: {DOCKER_KEY}", other),
                    DOCKER_KEY: armored},
           worker: {"/etc/apt/sources.list.d/docker.sources": _docker_sources(f"Signed-By: {DOCKER_KEY}", arch)}}
    got = _grade("lab02", tmp_path / "bad", bad)
    wrong_arch, no_key = got[("apt_source", master)], got[("apt_source", worker)]
    assert str(wrong_arch.status) == "fail" and f"leave out this node's {arch}" in wrong_arch.actual
    assert str(no_key.status) == "fail" and f"{DOCKER_KEY} (missing)" in no_key.actual


def test_lab03_repository_and_keyring_accept_deb822_and_arch_and_fail_an_armored_gpg(signing_key, tmp_path):
    """Recorded evidence, real tools on a stand-in /etc/apt: pkgs.k8s.io as a deb822 kubernetes.sources (flat
    suite `/`, Signed-By the dearmored .gpg) on master and as an `arch=` one-line on worker: repository_line and
    keyring pass; the keyring check reads the key where the entry says (real gpg --show-keys). Then an inline key
    (passes, gpg reads it) and an armored key in a .gpg keyring (fails: apt ignores it), and another minor (fails)."""
    armored, dearmored = signing_key
    arch = _native_arch()
    course = load_course(REPO).model
    src = course.apt_source("kubernetes")
    master, worker = (n.name for n in course.nodes)
    keyring = "/etc/apt/keyrings/pkgs-k8s.gpg"  # another path than the course's: the entry says where
    sources = f"Types: deb\nURIs: {src.url}\nSuites: /\nSigned-By: {keyring}\n"
    good = {master: {"/etc/apt/sources.list.d/kubernetes.sources": sources, keyring: dearmored},
            worker: {src.list_file: f"deb [arch={arch} signed-by={src.keyring}] {src.url} /\n", src.keyring: dearmored}}
    got = _grade("lab03", tmp_path / "good", good)
    for n in (master, worker):
        for check in ("repository_line", "keyring"):
            c = got[(check, n)]
            assert str(c.status) == "pass", (check, n, c.expected, c.actual)

    inline = "Signed-By:\n" + "".join(f" {ln or '.'}\n" for ln in armored.strip().splitlines())
    bad = {master: {"/etc/apt/sources.list.d/kubernetes.sources": f"Types: deb\nURIs: {src.url}\nSuites: /\n{inline}"},
           worker: {src.list_file: f"deb [signed-by={src.keyring}] {src.url} /\n", src.keyring: armored}}
    got = _grade("lab03", tmp_path / "bad", bad)
    assert str(got[("repository_line", master)].status) == "pass"
    assert str(got[("keyring", master)].status) == "pass", got[("keyring", master)].actual
    armored_gpg = got[("keyring", worker)]
    assert str(armored_gpg.status) == "fail" and "not dearmored" in armored_gpg.actual
    assert "gpg --dearmor" in armored_gpg.hint

    minor = {master: {src.list_file: f"deb [signed-by={src.keyring}] {src.url.replace('v1.', 'v0.')} /\n",
                      src.keyring: dearmored}}
    got = _grade("lab03", tmp_path / "minor", minor)
    c = got[("repository_line", master)]
    assert str(c.status) == "fail" and "v0." in c.actual and c.expected == src.apt_line
    assert "KUBELAB_KUBERNETES_APT_LINE" in c.hint
