"""course.yaml, its schema and `kubelab lint`: each broken input gives file, key path, problem and fix, exit 2.
Proof: the real CLI on real files."""

from __future__ import annotations

import shutil

import pytest
import yaml

from helpers import REPO, kubelab
from kubelab.course import CourseProblems, load_course, parse_course


def test_repository_course_is_valid_and_lint_clean():
    course = load_course(REPO).model
    assert course.control_plane.name == "master"
    assert [n.name for n in course.select_nodes("worker")] == ["worker"]
    p = kubelab("lint", "--course", str(REPO))
    assert p.returncode == 0, p.stdout + p.stderr
    assert "course OK" in p.stdout


COPY_IGNORE = shutil.ignore_patterns(".git", ".venv", "artifacts", "tests", "*.egg-info", "__pycache__")


def broken(mutate):
    data = yaml.safe_load((REPO / "course.yaml").read_text())
    mutate(data)
    return yaml.safe_dump(data, sort_keys=False)


def _set(path, value):
    def mutate(d):
        node = d
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value
    return mutate


CASES = [
    (_set(["nodes", 1, "ip"], "192.168.56.300"), "nodes[worker].ip", "IPv4"),
    (_set(["nodes", 1, "ip"], "10.1.2.3"), "nodes", "not a host address of network.private_subnet"),
    (_set(["nodes", 1, "name"], "master"), "nodes", "two nodes have name master"),
    (_set(["nodes", 0, "cpus"], 1), "nodes[master]", "kubeadm preflight"),
    (_set(["nodes", 1, "role"], "boss"), "nodes[worker].role", "'control-plane' or 'worker'"),
    (_set(["versions", "kubernetes", "patch"], "1.35.2"), "versions.kubernetes", "not a release of minor"),
    (_set(["versions", "kubernets"], {}), "versions.kubernets", "Extra inputs"),
    (lambda d: d["versions"].pop("containerd"), "versions.containerd", "Field required"),
    (_set(["labs", 0, "depends_on"], ["lab99"]), "labs", "unknown lab lab99"),
    (_set(["network", "pod_cidr"], "192.168.0.0/16"), "network", "overlaps"),
    (_set(["package_sources", "kubernetes", "url"], "https://pkgs.k8s.io/core:/stable:/v{major}/deb/"),
     "package_sources.kubernetes", "only {minor} is known"),
    (_set(["package_sources", "containerd", "keyring"], "/tmp/docker.asc"), "package_sources.containerd.keyring",
     "pattern"),
    (lambda d: d.pop("package_sources"), "package_sources", "Field required"),
]


def test_package_sources_render_the_pinned_minor():
    """Pure: the apt line a lab writes comes from course.yaml, {minor} filled in."""
    course = load_course(REPO).model
    k8s = course.apt_source("kubernetes")
    minor = course.versions.kubernetes.minor
    assert k8s.apt_line == (f"deb [signed-by=/etc/apt/keyrings/kubernetes-apt-keyring.gpg] "
                            f"https://pkgs.k8s.io/core:/stable:/v{minor}/deb/ /")
    assert k8s.key_url.endswith(f"/v{minor}/deb/Release.key") and k8s.dearmor
    ctd = course.apt_source("containerd")
    assert ctd.apt_line.endswith(" bookworm stable") and not ctd.dearmor
    assert ctd.packages == ("containerd.io",)


@pytest.mark.parametrize("mutate, where, problem", CASES)
def test_broken_course_is_located_and_explained(tmp_path, mutate, where, problem):
    root = tmp_path / "c"
    shutil.copytree(REPO, root, ignore=COPY_IGNORE)
    original = broken(mutate)
    (root / "course.yaml").write_text(original)
    with pytest.raises(CourseProblems) as e:
        parse_course(original)
    assert any(p.where.startswith(where) and problem in p.problem for p in e.value.problems), e.value.problems
    p = kubelab("lint", "--course", str(root))
    assert p.returncode == 2
    line = next(line for line in p.stdout.splitlines() if problem in line)
    assert line.startswith(f"{root / 'course.yaml'}: {where}") and "(fix: " in line
    g = kubelab("grade", "lab01", "--local", "--course", str(root))
    assert g.returncode == 2 and "Traceback" not in g.stderr and g.stderr.startswith("error: ")
    assert (root / "course.yaml").read_text() == original, "nothing lost: the file is untouched"


def test_yaml_syntax_error_names_line(tmp_path):
    (tmp_path / "course.yaml").write_text("course:\n  id: x\n  title: [unclosed\n")
    p = kubelab("lint", "--course", str(tmp_path))
    assert p.returncode == 2 and "line " in p.stdout and "not valid YAML" in p.stdout


def test_missing_course_is_one_line(tmp_path):
    p = kubelab("grade", "lab01", "--local", cwd=tmp_path, env={"KUBELAB_COURSE": ""})
    assert p.returncode == 2 and "no course.yaml" in p.stderr and "Traceback" not in p.stderr


def test_lint_checks_content(tmp_path):
    root = tmp_path / "c"
    shutil.copytree(REPO, root, ignore=COPY_IGNORE)
    grader = root / "graders" / "lab01_prepare_nodes.py"
    grader.write_text(grader.read_text().replace('needs=["hostname"]', 'needs=["no_such_check"]'))
    (root / "labs" / "lab01" / "lab01_prepare_nodes.ipynb").unlink()
    p = kubelab("lint", "--course", str(root))
    assert p.returncode == 2
    assert "needs 'no_such_check', which is not a check defined above it" in p.stdout
    assert "student notebook" in p.stdout and "kubelab release" in p.stdout
