"""Lab 2 end to end on lab twins, with containerd of BOTH configuration layouts: Debian bookworm's containerd
1.6 (config version 2) and sid's containerd 2.1 (config version 3; its .deb needs only libc6 >= 2.34 and runc,
so it installs on bookworm next to bookworm's runc).

Proof: live — real systemd + sshd twins booted with systemd-nspawn, reached over SSH like the Vagrant VMs.
The twins cannot reach Docker's repository, so each flavour serves a local signed apt repository in Docker's
layout (kubelab.twin.aptrepo) holding Debian's packages, and grades with a copy of course.yaml whose
package_sources.containerd points there (packages: [containerd], versions.containerd.major 1 or 2): the
notebook's commands run unchanged. For each flavour: fresh twins fail with hints; the solution notebook,
executed for real (nbclient, `%%node` over SSH), brings full marks (recorded evidence replays to the same
result); each check then fails, with its hint, for a realistic mistake, and passes again after the fix.
"""

from __future__ import annotations

import contextlib
import json
import re
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import nbformat
import pytest
import yaml

from helpers import CALL_FAILED, REPO, kubelab, execute_notebook
from kubelab.course import load_course
from kubelab.engine.results import Status
from kubelab.engine.runner import run_lab
from kubelab.engine.targets import SshConfigTarget
from kubelab.evidence import comparable
from kubelab.twin.aptrepo import LocalAptRepo, archive_debs

pytestmark = pytest.mark.twins

LAB = "lab02"
NODES = ("master", "worker")


@dataclass(frozen=True)
class Flavour:
    name: str
    containerd_suite: str   # Debian suite of the containerd .deb
    major: int
    layout_word: str        # a word of the runc options header in this layout


FLAVOURS = [Flavour("containerd-1.6-bookworm", "bookworm", 1, "io.containerd.grpc.v1.cri"),
            Flavour("containerd-2.1-sid", "sid", 2, "io.containerd.cri.v1.runtime")]


@dataclass
class Lab2:
    flavour: Flavour
    course_root: Path
    ssh_config: Path
    twins: object
    state: str = "fresh"    # what the nodes are known to be: "fresh", "solved" (full marks graded) or "changed"

    def course(self, root: Path | None = None):
        return load_course(root or self.course_root)

    def grade(self, root: Path | None = None) -> dict[str, dict[str, object]]:
        """Grade in-process; {check: {node: CheckResult}}."""
        target = SshConfigTarget(self.course(root), self.ssh_config)
        try:
            result = run_lab(self.course(root), LAB, target)
        finally:
            target.close()
        by: dict[str, dict[str, object]] = {}
        for c in result.checks:
            by.setdefault(c.check, {})[c.node] = c
        return by

    def sh(self, script: str, node: str | None = None) -> None:
        """Run a bash script as the lab user on the nodes (the way a learner's cell runs)."""
        target = SshConfigTarget(self.course(), self.ssh_config)
        try:
            for n in ([node] if node else NODES):
                r = target.host(n).run("bash -eo pipefail -c %s", script)
                assert r.rc == 0, f"{n}: {script}\n{r.stdout}\n{r.stderr}"
        finally:
            target.close()


def make_course(tmp: Path, base_url: str, major: int) -> Path:
    """A copy of the repository's course whose containerd source is the local repository."""
    data = yaml.safe_load((REPO / "course.yaml").read_text())
    src = data["package_sources"]["containerd"]
    src["url"] = f"{base_url}/linux/debian"
    src["key_url"] = f"{base_url}/linux/debian/gpg"
    src["packages"] = ["containerd"]  # Debian's name; runc comes as its dependency
    data["versions"]["containerd"]["major"] = major
    root = tmp / f"course-major{major}"
    (root / "solutions" / LAB).mkdir(parents=True, exist_ok=True)
    (root / "course.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    if not (root / "graders").exists():
        (root / "graders").symlink_to(REPO / "graders")
    nb = load_course(REPO).solution_path(LAB)
    shutil.copyfile(nb, root / "solutions" / LAB / nb.name)
    return root


def solution_cell(grade_id: str) -> str:
    """The body of a solution cell of the lab's notebook, without the %%node line."""
    nb = nbformat.read(load_course(REPO).solution_path(LAB), as_version=4)
    cell = next(c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == grade_id)
    return "\n".join(ln for ln in cell.source.splitlines() if not ln.startswith("%%node"))


# Re-applies the lab's configuration steps exactly as the solution notebook writes them.
def fix_all() -> str:
    return "\n".join(solution_cell(g) for g in ("write-config", "restart", "write-crictl"))


@pytest.fixture(scope="module", params=FLAVOURS, ids=lambda f: f.name)
def lab2(request, twins, tmp_path_factory):
    flavour: Flavour = request.param
    t0 = time.monotonic()
    twins.up(fresh=True, progress=None)  # each flavour installs its own containerd on fresh nodes
    print(f"\n[{flavour.name}] fresh twins in {time.monotonic() - t0:.1f}s")
    tmp = tmp_path_factory.mktemp(flavour.name)
    debs = archive_debs(flavour.containerd_suite, ["containerd"]) + archive_debs("bookworm", ["runc"])
    repo = LocalAptRepo(tmp / "repo")
    repo.add_dists("linux/debian", suite="bookworm", component="stable", debs=debs)
    with contextlib.ExitStack() as stack:
        stack.callback(repo.cleanup)
        base_url = stack.enter_context(repo.serve(str(twins.bridge_iface.ip)))
        lab = Lab2(flavour, make_course(tmp, base_url, flavour.major), twins.ssh_config_file(), twins)
        without_mirror(lab)
        yield lab


def without_mirror(lab: Lab2) -> None:
    # The twins have no route to a Debian mirror (a VM has one): apt-get update must not fail on it.
    lab.sh("sudo sed -i -E 's/^(deb\\s)/# twin, no mirror: \\1/' /etc/apt/sources.list")


@pytest.fixture
def fresh(lab2):
    """Nodes as Lab 2 starts (fresh twins, no mirror), made again if a test before changed them."""
    if lab2.state != "fresh":
        lab2.twins.up(fresh=True, progress=None)
        without_mirror(lab2)
        lab2.state = "fresh"
    return lab2


@pytest.fixture
def solved(lab2, request):
    """Nodes with full marks (the solution notebook run, graded), made if a test before did not leave them so.
    The test may break them: it ends by putting them back and grading full marks again, so a test that passed
    leaves them solved; one that failed leaves them "changed" and the next test solves them again."""
    if lab2.state != "solved":
        lab2.state = "changed"
        run_solution_notebook(lab2)
        assert_all_pass(lab2.grade())
    lab2.state = "changed"
    yield lab2
    if not request.node.stash.get(CALL_FAILED, True):
        lab2.state = "solved"


def grade_json(lab: Lab2, tmp_path: Path, name: str):
    """Grade live with the CLI, recording evidence; replay it and demand the same result."""
    out, evidence, replayed = (tmp_path / f"{name}{s}" for s in (".json", ".evidence.json", ".replay.json"))
    p = kubelab("grade", LAB, "--ssh-config", str(lab.ssh_config), "--json", str(out), "--record", str(evidence),
                "--course", str(lab.course_root))
    r = kubelab("grade", LAB, "--replay", str(evidence), "--json", str(replayed), "--course", str(lab.course_root))
    live = json.loads(out.read_text())
    assert r.returncode == p.returncode, r.stdout + r.stderr
    assert comparable(json.loads(replayed.read_text())) == comparable(live)
    return p, live


def statuses(by: dict, check: str) -> set[str]:
    return {str(c.status) for c in by[check].values()}


def assert_fails(by: dict, check: str, hint_word: str, nodes=NODES) -> None:
    for n in nodes:
        c = by[check][n]
        assert c.status is Status.FAIL, (check, n, c)
        assert hint_word in c.hint, (check, c.hint)
        assert c.expected and c.actual and c.expected != c.actual, c


def assert_all_pass(by: dict) -> None:
    bad = [c for per in by.values() for c in per.values() if c.status is not Status.PASS]
    assert not bad, bad


# -- the tests --------------------------------------------------------------------------------------

def test_fresh_nodes_fail_with_hints(fresh, lab2, tmp_path):
    p, result = grade_json(lab2, tmp_path, "fresh")
    assert p.returncode == 1 and result["status"] == "failed" and result["score"] == 0, p.stdout
    by: dict[str, list[dict]] = {}
    for c in result["checks"]:
        by.setdefault(c["check"], []).append(c)
    expect = {"apt_source": ("fail", "KUBELAB_CONTAINERD_APT_LINE"), "package_installed": ("blocked", ""),
              "runc": ("fail", "runc"), "containerd_major": ("fail", "course.yaml"),
              "service_enabled": ("fail", "systemctl enable"), "service_active": ("fail", "systemctl restart"),
              "socket_answers": ("blocked", ""), "cri_loaded": ("blocked", ""), "systemd_cgroup": ("blocked", ""),
              "config_applied": ("blocked", ""), "crictl_endpoint": ("fail", "/etc/crictl.yaml")}
    assert set(by) == set(expect)
    for check, (status, word) in expect.items():
        for c in by[check]:
            assert c["status"] == status, c
            assert word in c["hint"], c
    assert "Traceback" not in p.stdout + p.stderr


def run_solution_notebook(lab2: Lab2):
    """The lab's solution notebook (in the course copy's solutions/, a tmp dir) run in a real kernel."""
    nb_path = lab2.course(None).solution_path(LAB)
    nb = nbformat.read(nb_path, as_version=4)
    env = {"KUBELAB_SSH_CONFIG": str(lab2.ssh_config), "KUBELAB_COURSE": str(lab2.course_root)}
    t0 = time.monotonic()
    execute_notebook(nb, nb_path.parent, env)
    print(f"[{lab2.flavour.name}] notebook executed in {time.monotonic() - t0:.1f}s")
    return nb


def test_solution_notebook_brings_full_marks(fresh, lab2, tmp_path):
    lab2.state = "changed"
    nb = run_solution_notebook(lab2)
    grading = nb.cells[-1]
    assert f'grade("{LAB}")' in grading.source
    results = [o for o in grading.outputs if o.output_type == "execute_result"]
    assert results and float(results[0]["data"]["text/plain"]) == lab2.course().model.lab(LAB).points, grading.outputs
    assert not [o for o in grading.outputs if o.output_type == "stream" and o.name == "stderr"]
    # the layout the notebook wrote is the one of the installed major version
    shown = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []))
    assert lab2.flavour.layout_word in shown
    p, result = grade_json(lab2, tmp_path, "solved")
    assert p.returncode == 0 and result["score"] == result["max_score"], p.stdout
    lab2.state = "solved"


def test_systemd_cgroup_in_the_wrong_table_fails(solved, lab2):
    # One level too high: in the runc runtime's table instead of its options (valid TOML, silently ignored).
    lab2.sh(r"""sudo sed -i -E -e '/^\s*SystemdCgroup\s*=/d' \
      -e 's/^(\s*)(\[plugins\..*\.containerd\.runtimes\.runc\])\s*$/\1\2\n\1  SystemdCgroup = true/' /etc/containerd/config.toml
      sudo systemctl restart containerd""")
    by = lab2.grade()
    assert_fails(by, "systemd_cgroup", "runc options")
    c = by["systemd_cgroup"]["master"]
    assert lab2.flavour.layout_word in c.expected and "runtimes.runc]" in c.actual, c
    assert statuses(by, "cri_loaded") == {"pass"}
    lab2.sh(fix_all())
    assert_all_pass(lab2.grade())


def test_the_sed_trap_fails_and_the_notebooks_edit_works(solved, lab2):
    # A containerd release whose `config default` omits SystemdCgroup (containerd issue #12101): the classic
    # sed changes nothing and exits 0. The notebook's own edit (its solution cell, run as is) still works.
    lab2.sh(r"""containerd config default | sed '/SystemdCgroup/d' | sudo tee /etc/containerd/config.toml > /dev/null
      sudo sed -i 's/SystemdCgroup = false/SystemdCgroup = true/' /etc/containerd/config.toml
      sudo systemctl restart containerd""")
    by = lab2.grade()
    assert_fails(by, "systemd_cgroup", "config default")
    # absent from the file: the merged config shows containerd's default (2.1.9 prints false, 2.1.0-2.1.4 nothing)
    assert re.search(r"not set|SystemdCgroup = false", by["systemd_cgroup"]["worker"].actual)
    lab2.sh(r"""containerd config default | sed '/SystemdCgroup/d' | sudo tee /etc/containerd/config.toml > /dev/null
      """ + solution_cell("write-config") + "\nsudo systemctl restart containerd")
    assert_all_pass(lab2.grade())


def test_cri_disabled_fails(solved, lab2):
    # Docker's containerd.io package ships this file (no version header: config version 1)
    lab2.sh("""printf '%s\\n' '#root = "/var/lib/containerd"' 'disabled_plugins = ["cri"]' \
      | sudo tee /etc/containerd/config.toml > /dev/null
      sudo systemctl restart containerd""")
    by = lab2.grade()
    assert_fails(by, "cri_loaded", "disabled_plugins")
    assert "cri" in by["cri_loaded"]["master"].actual
    assert statuses(by, "socket_answers") == {"pass"}
    lab2.sh(fix_all())
    assert_all_pass(lab2.grade())


def test_config_changed_without_restart_fails(solved, lab2):
    lab2.sh("sleep 2; sudo touch /etc/containerd/config.toml")
    by = lab2.grade()
    assert_fails(by, "config_applied", "restart")
    lab2.sh("sudo systemctl restart containerd")
    assert_all_pass(lab2.grade())


def test_service_stopped_and_disabled_fails_and_blocks(solved, lab2):
    lab2.sh("sudo systemctl disable --now containerd")
    by = lab2.grade()
    assert_fails(by, "service_enabled", "systemctl enable")
    assert_fails(by, "service_active", "systemctl restart")
    for check in ("socket_answers", "cri_loaded", "systemd_cgroup", "config_applied"):
        assert statuses(by, check) == {"blocked"}, (check, by[check])
    assert statuses(by, "runc") == {"pass"} and statuses(by, "crictl_endpoint") == {"pass"}
    lab2.sh(fix_all())
    assert_all_pass(lab2.grade())


def test_crictl_endpoint_missing_fails(solved, lab2):
    lab2.sh("echo 'image-endpoint: unix:///run/containerd/containerd.sock' | sudo tee /etc/crictl.yaml")
    by = lab2.grade()
    assert_fails(by, "crictl_endpoint", "runtime-endpoint")
    lab2.sh(fix_all())
    assert_all_pass(lab2.grade())


def test_runc_missing_fails(solved, lab2):
    lab2.sh('p=$(sudo sh -c "command -v runc"); echo "$p" | sudo tee /root/runc.path; sudo mv "$p" /root/runc.moved')
    by = lab2.grade()
    assert_fails(by, "runc", "reinstall")
    lab2.sh('sudo mv /root/runc.moved "$(sudo cat /root/runc.path)"; sudo rm /root/runc.path')
    assert_all_pass(lab2.grade())


def test_wrong_major_version_and_wrong_repository_fail(solved, lab2, tmp_path):
    other = 2 if lab2.flavour.major == 1 else 1
    data = yaml.safe_load((lab2.course_root / "course.yaml").read_text())
    data["versions"]["containerd"]["major"] = other
    data["package_sources"]["containerd"]["url"] = "https://download.example.org/linux/debian"
    root = tmp_path / "other-course"
    root.mkdir()
    (root / "course.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    (root / "graders").symlink_to(REPO / "graders")
    by = lab2.grade(root)
    assert_fails(by, "containerd_major", "versions.containerd.major")
    assert f"{lab2.flavour.major}.x" in by["containerd_major"]["master"].actual
    assert_fails(by, "apt_source", "KUBELAB_CONTAINERD_APT_LINE")
    assert statuses(by, "package_installed") == {"blocked"}
    assert statuses(by, "systemd_cgroup") == {"pass"}


def test_socket_moved_elsewhere_fails_the_socket_check(solved, lab2):
    """Live on the twins: `[grpc] address` pointed away from /run/containerd/containerd.sock — the service is
    active, but nothing answers where the kubelet and crictl look: socket_answers fails with its hint (no longer
    only ever blocked), the service checks pass. Put back, full marks."""
    # 1.x writes "double", 2.x 'single' quotes: match either
    lab2.sh("""sudo sed -i -E "s#^(\\s*address = [\\"'])/run/containerd/containerd.sock#\\1/run/containerd/elsewhere.sock#" \\
      /etc/containerd/config.toml
      grep -q elsewhere.sock /etc/containerd/config.toml
      sudo systemctl restart containerd""")
    by = lab2.grade()
    assert_fails(by, "socket_answers", "[grpc] address")
    assert statuses(by, "service_active") == {"pass"} and statuses(by, "service_enabled") == {"pass"}
    lab2.sh(fix_all())
    assert_all_pass(lab2.grade())


def test_containerd_from_another_repository_fails_the_package_check(solved, lab2, tmp_path):
    """Live on the twins: containerd installed from a second apt repository (a stand-in for the distribution's
    archive, served here and signed with its own key) while the course's source is configured — the same
    binaries under another version string, so nothing else changes: package_installed fails on both nodes
    naming where the installed version comes from. Put back with the course's version, full marks. Both
    flavours: the course's containerd 2.x (sid's package) as well as 1.6."""
    course_deb = archive_debs(lab2.flavour.containerd_suite, ["containerd"])[0]
    tree = tmp_path / "deb"
    subprocess.run(["dpkg-deb", "-R", str(course_deb), str(tree)], check=True)
    control = tree / "DEBIAN" / "control"
    version = re.search(r"^Version: (\S+)$", control.read_text(), re.M).group(1)
    other = version + "+distro1"
    control.write_text(control.read_text().replace(f"Version: {version}\n", f"Version: {other}\n"))
    rebuilt = tmp_path / f"containerd_{other}.deb"
    subprocess.run(["dpkg-deb", "-Zgzip", "-z1", "-b", str(tree), str(rebuilt)], check=True, capture_output=True)
    repo = LocalAptRepo(tmp_path / "distro")
    try:
        repo.add_dists("debian", suite="bookworm", component="main", debs=[rebuilt])
        with repo.serve(str(lab2.twins.bridge_iface.ip)) as url:
            key = repo.public_key_armored.replace("'", "")
            lab2.sh(f"""echo '{key}' | sudo tee /etc/apt/keyrings/distro.asc > /dev/null
              echo 'deb [signed-by=/etc/apt/keyrings/distro.asc] {url}/debian bookworm main' \\
                | sudo tee /etc/apt/sources.list.d/distro.list
              sudo apt-get update -q
              sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -q -o Dpkg::Options::=--force-confold \\
                containerd={other}
              sudo systemctl restart containerd""")
            by = lab2.grade()
        assert_fails(by, "package_installed", "distribution")
        actual = by["package_installed"]["master"].actual
        assert f"{other} installed, known only from" in actual and "/debian" in actual, actual
        assert statuses(by, "containerd_major") == {"pass"} and statuses(by, "apt_source") == {"pass"}
    finally:
        repo.cleanup()
        lab2.sh(f"""sudo rm -f /etc/apt/sources.list.d/distro.list /etc/apt/keyrings/distro.asc
          sudo apt-get update -q
          sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -q --allow-downgrades \\
            -o Dpkg::Options::=--force-confold containerd={version}""")
    lab2.sh(fix_all())
    assert_all_pass(lab2.grade())


def test_full_marks_survive_a_restart(solved, lab2):
    if lab2.flavour.major != 2:
        pytest.skip("restarting the twins once (with the course's containerd 2.x) is enough")
    lab2.twins.restart(progress=None)
    assert_all_pass(lab2.grade())
