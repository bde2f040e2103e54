"""Lab 3 (kubeadm, kubelet, kubectl) end to end on lab twins.

Proof: live on twins — real systemd + sshd nodes reached over SSH like the Vagrant VMs. The repository file,
the keyring, apt's holds, the kubelet unit and /etc/default/kubelet, the node IP, containerd's merged config
and kubeadm's image list are all real. What stands in for the internet: pkgs.k8s.io is out of reach, so the
packages are kubelet/kubeadm/kubectl 1.20.2-1.1 built here (kubelab.cluster.debs) from the real v1.20.2
binaries (Debian's source, kubelab.cluster.build), served over HTTP on the twins' bridge by a local signed
repository in pkgs.k8s.io's layout (kubelab.twin.aptrepo). The course is a COPY of course.yaml pinned at
minor 1.20 / patch 1.20.2 whose package_sources point at that repository: the notebook's commands and the
grader read everything from it. Lab 2's state (containerd running, full default config) is put in place by
the fixture with Debian bookworm's containerd 1.6 from the same repository; the twins' Debian archive line
(unreachable here) is turned off first. cri-tools, which the course lists and Lab 3 installs (kubeadm >= 1.32 no
longer pulls it in), is a STAND-IN: Debian has no cri-tools, so the repository serves a package named cri-tools
whose crictl only answers `--version` and `version` (kubelab.cluster.debs.cri_tools_standin_deb) — real enough
for "is it installed from the course's repository and on PATH", nothing about the CRI.
"""

from __future__ import annotations

import ipaddress
import json
import shutil
import time

import nbformat
import pytest
import yaml

from helpers import CALL_FAILED, REPO, kubelab, execute_notebook
from kubelab.cluster.cluster import Ssh
from kubelab.cluster.debs import cri_tools_standin_deb, deb_version, ensure_debs
from kubelab.course import load_course
from kubelab.evidence import comparable
from kubelab.twin.aptrepo import LocalAptRepo, archive_debs

pytestmark = pytest.mark.twins

MINOR, PATCH = "1.20", "1.20.2"
LAB2_STATE = r"""set -e
# The twins cannot reach Debian's archive: keep apt to the local repositories (a VM keeps its mirror)
sed -i 's/^deb /# offline: deb /' /etc/apt/sources.list
install -d -m 755 /etc/apt/keyrings
curl -fsSL {url}/debian/gpg -o /etc/apt/keyrings/kubelab-debian.asc
echo "deb [signed-by=/etc/apt/keyrings/kubelab-debian.asc] {url}/debian bookworm main" > /etc/apt/sources.list.d/kubelab-debian.list
apt-get update -q
DEBIAN_FRONTEND=noninteractive apt-get install -y -q containerd
mkdir -p /etc/containerd
containerd config default > /etc/containerd/config.toml
sed -i 's/SystemdCgroup = false/SystemdCgroup = true/' /etc/containerd/config.toml
systemctl restart containerd
systemctl is-active containerd
"""


def _quiet(_: str) -> None:
    pass


def course_copy(root, url: str, patch: str = PATCH):
    """The repository's course, pinned at 1.20.x, installing from the local repository at `url`."""
    data = yaml.safe_load((REPO / "course.yaml").read_text())
    data["versions"]["kubernetes"] = {"minor": MINOR, "patch": patch}
    k8s = data["package_sources"]["kubernetes"]
    k8s["url"] = url + "/core:/stable:/v{minor}/deb/"
    k8s["key_url"] = url + "/core:/stable:/v{minor}/deb/Release.key"
    root.mkdir(parents=True)
    (root / "course.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    shutil.copytree(REPO / "graders", root / "graders")
    shutil.copytree(REPO / "solutions" / "lab03", root / "solutions" / "lab03")
    return root


class Lab3:
    def __init__(self, twins, root, url, tmp):
        self.twins = twins
        self.root = root
        self.url = url
        self.tmp = tmp
        self.ssh = Ssh(twins.ssh_config_file())
        self.course = load_course(root)
        self.state = "changed"  # "before" (Lab 2 done, Lab 3 not started), "solved" (full marks graded), "changed"

    def make_before(self) -> None:
        """Fresh twins with Lab 2's state: what Lab 3 starts from."""
        self.twins.up(fresh=True, progress=None)
        for n in self.course.model.nodes:
            self.sh(n.name, LAB2_STATE.format(url=self.url), what="Lab 2's state (containerd)")
        self.state = "before"

    def sh(self, node: str, script: str, what: str = "test step", check: bool = True):
        return self.ssh.run(node, script, what=what, timeout=300, check=check)

    def grade(self, name: str, root=None):
        """Grade live with the CLI (recording evidence), replay the evidence, demand the same result."""
        root = root or self.root
        out, ev, rep = (self.tmp / f"{name}{s}" for s in (".json", ".evidence.json", ".replay.json"))
        p = kubelab("grade", "lab03", "--ssh-config", str(self.twins.ssh_config_file()), "--json", str(out),
                    "--record", str(ev), "--course", str(root))
        r = kubelab("grade", "lab03", "--replay", str(ev), "--json", str(rep), "--course", str(root))
        live = json.loads(out.read_text())
        assert p.returncode in (0, 1), p.stdout + p.stderr
        assert r.returncode == p.returncode, r.stdout + r.stderr
        assert comparable(json.loads(rep.read_text())) == comparable(live)
        assert "Traceback" not in p.stdout + p.stderr
        return p, live


def by_check(result) -> dict[tuple[str, str], dict]:
    return {(c["check"], c["node"]): c for c in result["checks"]}


@pytest.fixture(scope="module")
def lab3(fresh_twins, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("lab03")
    k8s = ensure_debs(progress=_quiet)
    repo = LocalAptRepo(tmp / "repo")
    try:
        repo.add_flat(f"core:/stable:/v{MINOR}/deb", k8s + [cri_tools_standin_deb(tmp / "cri-tools")])
        repo.add_dists("debian", "bookworm", "main", archive_debs("bookworm", ["containerd", "runc"]))
        course = load_course(REPO)
        host_ip = str(next(ipaddress.ip_network(str(course.model.network.private_subnet)).hosts()))
        with repo.serve(host_ip) as url:
            env = Lab3(fresh_twins, course_copy(tmp / "course", url), url, tmp)
            t0 = time.monotonic()
            for n in course.model.nodes:
                env.sh(n.name, LAB2_STATE.format(url=url), what="Lab 2's state (containerd)")
            env.state = "before"
            env.lab2_s = time.monotonic() - t0
            yield env
    finally:
        repo.cleanup()


@pytest.fixture
def before(lab3):
    """Lab 2 done, Lab 3 not started: made again (fresh twins) if a test before changed the nodes."""
    if lab3.state != "before":
        lab3.make_before()
    return lab3


@pytest.fixture
def solved(lab3, request):
    """Full marks (the solution notebook run, graded), made if a test before did not leave them so. A test that
    changes the nodes puts them back and grades full marks again before it passes."""
    if lab3.state != "solved":
        if lab3.state != "before":
            lab3.make_before()
        lab3.state = "changed"
        run_notebook(lab3.course.solution_path("lab03"), lab3.twins.ssh_config_file(), lab3.root)
        p, result = lab3.grade("solved-for-the-next-test")
        assert p.returncode == 0, [c for c in result["checks"] if c["status"] != "pass"]
    lab3.state = "changed"
    yield lab3
    if not request.node.stash.get(CALL_FAILED, True):
        lab3.state = "solved"


def test_before_lab3_everything_fails_or_is_blocked_with_hints(before, lab3):
    """Live on twins: Lab 2 done, Lab 3 not started."""
    p, result = lab3.grade("before")
    assert p.returncode == 1
    checks = by_check(result)
    for node in ("master", "worker"):
        assert checks[("containerd_active", node)]["status"] == "pass"
        for name, word in (("repository_line", "KUBELAB_KUBERNETES_APT_LINE"), ("keyring", "dearmor"),
                           ("packages_installed", "apt-get install"), ("packages_held", "apt-mark hold"),
                           ("other_packages", "cri-tools")):
            c = checks[(name, node)]
            assert c["status"] == "fail" and word in c["hint"], c
            assert c["expected"] and c["actual"] and c["expected"] != c["actual"]
        assert checks[("repository_line", node)]["expected"] == lab3.course.model.apt_source("kubernetes").apt_line
        for name in ("tools_report_version", "kubelet_enabled", "node_ip", "sandbox_image"):
            assert checks[(name, node)]["status"] == "blocked", checks[(name, node)]


def run_notebook(path, ssh_config, course_root):
    nb = nbformat.read(path, as_version=4)
    env = {"KUBELAB_SSH_CONFIG": str(ssh_config), "KUBELAB_COURSE": str(course_root)}
    execute_notebook(nb, path.parent, env, timeout=900)
    return nb


def test_solution_notebook_brings_full_marks(before, lab3):
    """Live on twins: the solution notebook run for real (nbclient, `%%node` cells over SSH) against the
    local repository; then graded by the CLI, read-only."""
    lab3.state = "changed"
    t0 = time.monotonic()
    try:
        nb = run_notebook(lab3.course.solution_path("lab03"), lab3.twins.ssh_config_file(), lab3.root)
    except Exception:
        lab3.grade("notebook-failed")  # shows the grader's table in the assertion message
        raise
    lab3.notebook_s = time.monotonic() - t0
    print(f"Lab 2 state {lab3.lab2_s:.0f}s, solution notebook {lab3.notebook_s:.0f}s")
    text = "\n".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []))
    assert f"kubeadm expects: k8s.gcr.io/pause:3.2" in text  # asked from the installed kubeadm
    assert "crictl version v1.20.0 (kubelab stand-in, not cri-tools)" in text  # the course's cri-tools, installed
    grading = nb.cells[-1]
    assert 'grade("lab03")' in grading.source
    results = [o for o in grading.outputs if o.output_type == "execute_result"]
    if not (results and float(results[0]["data"]["text/plain"]) == lab3.course.model.lab("lab03").points):
        p, _ = lab3.grade("notebook-not-full")
        pytest.fail(p.stdout)
    assert not [o for o in grading.outputs if o.output_type == "stream" and o.name == "stderr"]

    marker = "/tmp/.kubelab-lab03-readonly"
    for n in ("master", "worker"):
        lab3.sh(n, f"touch {marker} && sleep 1")
    p, result = lab3.grade("solved")
    assert p.returncode == 0, p.stdout
    assert result["score"] == result["max_score"] and result["status"] == "passed"
    for n in ("master", "worker"):
        changed = lab3.sh(n, f"find /etc /var/lib /root /home -xdev -newer {marker} -not -path '/var/lib/systemd/*' "
                             "-not -path '/var/lib/containerd/*' -not -path '/var/lib/kubelet/*' -print").stdout
        assert changed.strip() == "", f"grading changed files on {n}: {changed}"
    # what the learner's commands left, seen directly
    master = lab3.sh("master", "dpkg-query -W -f='${Version}' kubeadm; echo; cat /etc/default/kubelet; "
                               "apt-mark showhold | tr '\\n' ' '").stdout
    assert deb_version() in master and "--node-ip=192.168.56.10" in master and "kubeadm kubectl kubelet" in master
    lab3.state = "solved"


def test_realistic_mistakes_fail_with_their_hints(solved, lab3):
    """Live on twins: on top of the solved state, one realistic mistake per check, each failing alone with
    expected vs actual and its hint; then undone, back to full marks."""
    src = lab3.course.model.apt_source("kubernetes")
    wrong_line = src.apt_line.replace(f"v{MINOR}", "v1.19")
    lab3.sh("master", f"""
cp {src.list_file} /root/list.bak; echo '{wrong_line}' > {src.list_file}
apt-mark unhold kubeadm
cp /etc/default/kubelet /root/kubelet.bak; echo 'KUBELET_EXTRA_ARGS=--node-ip=10.0.2.15' > /etc/default/kubelet
cp /etc/containerd/config.toml /root/config.toml.bak
sed -i -E 's|^(\\s*sandbox_image\\s*=\\s*).*|\\1"registry.k8s.io/pause:3.6"|' /etc/containerd/config.toml
systemctl restart containerd
""")
    lab3.sh("worker", f"""
cp {src.keyring} /root/keyring.bak; curl -fsSL {src.key_url} -o {src.keyring}
systemctl disable kubelet
cp /etc/default/kubelet /root/kubelet.bak; echo 'KUBELET_EXTRA_ARGS=' > /etc/default/kubelet
cat > /usr/local/bin/kubectl <<'END'
#!/bin/sh
echo '{{"clientVersion":{{"gitVersion":"v1.19.16"}}}}'
END
chmod 755 /usr/local/bin/kubectl
DEBIAN_FRONTEND=noninteractive apt-get remove -y -q cri-tools
""")
    p, result = lab3.grade("mistakes")
    assert p.returncode == 1
    checks = by_check(result)
    expected_failures = {
        ("repository_line", "master"): ("v1.19", "KUBELAB_KUBERNETES_APT_LINE"),
        ("packages_held", "master"): ("missing: kubeadm", "apt-mark hold"),
        ("node_ip", "master"): ("10.0.2.15", "10.0.2.15"),
        ("sandbox_image", "master"): ("registry.k8s.io/pause:3.6", "kubeadm config images list"),
        ("keyring", "worker"): ("armored", "gpg --dearmor"),
        ("kubelet_enabled", "worker"): ("disabled", "systemctl enable"),
        ("node_ip", "worker"): ("no --node-ip", "KUBELET_EXTRA_ARGS"),
        ("tools_report_version", "worker"): ("v1.19.16", "/usr/local/bin"),
        ("other_packages", "worker"): ("cri-tools=(not installed)", "apt-get install -y cri-tools"),
    }
    for key, (actual_word, hint_word) in expected_failures.items():
        c = checks[key]
        assert c["status"] == "fail", c
        assert actual_word in c["actual"] and hint_word in c["hint"], c
    assert checks[("node_ip", "master")]["expected"] == "192.168.56.10"
    assert checks[("sandbox_image", "master")]["expected"] == "k8s.gcr.io/pause:3.2"
    others = [c for k, c in checks.items() if k not in expected_failures and c["status"] != "pass"]
    assert not others, others

    lab3.sh("master", f"""
cp /root/list.bak {src.list_file}; apt-mark hold kubeadm; cp /root/kubelet.bak /etc/default/kubelet
cp /root/config.toml.bak /etc/containerd/config.toml; systemctl restart containerd
""")
    lab3.sh("worker", f"""
cp /root/keyring.bak {src.keyring}; systemctl enable kubelet; cp /root/kubelet.bak /etc/default/kubelet
rm /usr/local/bin/kubectl
DEBIAN_FRONTEND=noninteractive apt-get install -y -q cri-tools
""")
    p, result = lab3.grade("undone")
    assert p.returncode == 0, [c for c in result["checks"] if c["status"] != "pass"]


def test_containerd_down_blocks_the_checks_that_need_it(solved, lab3):
    """Live on twins: containerd stopped on the worker -> its own check fails, the pause-image check is
    blocked (not failed); everything else still passes."""
    lab3.sh("worker", "systemctl stop containerd")
    try:
        p, result = lab3.grade("containerd-down")
    finally:
        lab3.sh("worker", "systemctl start containerd && systemctl is-active containerd")
    checks = by_check(result)
    assert checks[("containerd_active", "worker")]["status"] == "fail"
    assert "systemctl enable --now containerd" in checks[("containerd_active", "worker")]["hint"]
    assert checks[("sandbox_image", "worker")]["status"] == "blocked"
    assert "containerd_active[worker]" in checks[("sandbox_image", "worker")]["blocked_by"]
    assert {c["id"] for c in result["checks"] if c["status"] != "pass"} == \
        {"containerd_active[worker]", "sandbox_image[worker]"}


def test_the_grader_reads_the_pin_from_course_yaml(solved, lab3):
    """Live on twins: the same nodes graded against a course pinned at 1.20.3 fail the version checks
    (1.20.2 is installed) and the repository line still passes (same minor)."""
    other = course_copy(lab3.tmp / "course-1.20.3", lab3.url, patch="1.20.3")
    p, result = lab3.grade("pin-1.20.3", root=other)
    checks = by_check(result)
    for node in ("master", "worker"):
        c = checks[("packages_installed", node)]
        assert c["status"] == "fail" and "1.20.3" in c["expected"] and "1.20.2" in c["actual"], c
        assert checks[("repository_line", node)]["status"] == "pass"
        assert checks[("tools_report_version", node)]["status"] == "blocked"
        assert checks[("sandbox_image", node)]["status"] == "blocked"
