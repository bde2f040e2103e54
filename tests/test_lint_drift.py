"""`kubelab lint`'s version-drift rule (kubelab/lint_drift.py): versions, image tags and URLs in the labs'
code cells and the graders come from course.yaml, or are reported with file, cell or line, and fix.

Proof: the repository's own notebooks and graders pass (real content); the failing and passing cases are
hand-written notebooks and graders in a temporary copy of the course (simulation: text fed to the real rule
and to the real `kubelab lint` command), one per kind of drift."""

from __future__ import annotations

import nbformat
import pytest

from helpers import REPO, kubelab, make_course
from kubelab.course import load_course
from kubelab.lint_drift import IMAGES_NOT_PINNED_BY_THE_COURSE, lint_drift

GRADER_OK = '''
from kubelab.engine import check, expect_equal

SINCE = (1, 29)  # super-admin.conf from 1.29 on; 1.36.4 in a comment is documentation


@check("A check", on="all", points=1, hint="super-admin.conf exists since 1.29; install with $KUBELAB_K8S_VERSION.")
def test_a(host, course):
    expect_equal(course.model.versions.kubernetes.patch, course.model.versions.kubernetes.patch, what="patch")
'''


def course_with(tmp_path, cells: list[str], grader: str = GRADER_OK, markdown: str = ""):
    """A course whose only lab has a notebook with these code cells (and a markdown cell) and this grader."""
    root = make_course(tmp_path, grader)
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell(markdown or "History: dockershim was removed in 1.24.")]
    for i, src in enumerate(cells):
        cell = nbformat.v4.new_code_cell(src)
        cell.id = f"cell-{i}"
        nb.cells.append(cell)
    folder = root / "solutions" / "lab90"
    folder.mkdir(parents=True)
    nbformat.write(nb, folder / "lab90.ipynb")
    return load_course(root)


def problems_of(course) -> list[str]:
    return [str(p) for p in lint_drift(course)]


def test_the_repository_names_nothing_that_is_not_in_course_yaml():
    assert problems_of(load_course(REPO)) == []


def test_commands_that_read_course_yaml_pass(tmp_path):
    course = course_with(tmp_path, [
        '%%node all\nV="$KUBELAB_K8S_VERSION-*"\nsudo apt-get install -y kubelet="$V"  # e.g. 1.36.4-1.1\n'
        'curl -fsSL "$KUBELAB_KUBERNETES_KEY_URL" | sudo gpg --dearmor -o "$KUBELAB_KUBERNETES_KEYRING"',
        '%%node master --env FLANNEL_VERSION\n'
        'curl -fsSLo f.yml "https://github.com/flannel-io/flannel/releases/download/${FLANNEL_VERSION}/kube-flannel.yml"',
        "kubectl run t --image=x\ncat <<EOF\n    image: busybox:1.37\nEOF\ncurl -sk https://$KUBELAB_CONTROL_PLANE_IP:6443/readyz",
    ], markdown="kubeadm 1.36.4 from https://pkgs.k8s.io/core:/stable:/v1.36/deb/ — prose is not read")
    assert problems_of(course) == []
    assert "busybox:1.37" in IMAGES_NOT_PINNED_BY_THE_COURSE


@pytest.mark.parametrize("code, expected", [
    ('sudo apt-get install -y kubeadm="1.35.2-*"', "names Kubernetes 1.35.2"),   # a full patch is a pin, whatever its minor
    ('sudo apt-get install -y kubeadm="1.36.4-*"', "names Kubernetes 1.36.4"),   # a copy of course.yaml
    ("kubeadm init --kubernetes-version v1.37.0", "names Kubernetes v1.37.0"),
    ("curl -fsSL https://pkgs.k8s.io/core:/stable:/v1.36/deb/Release.key | gpg --dearmor",
     "a host of course.yaml's package_sources.kubernetes"),
    ("curl -fsSL https://download.docker.com/linux/debian/gpg -o k.asc", "package_sources.containerd"),
    ("curl -LO https://github.com/flannel-io/flannel/releases/download/v0.27.0/kube-flannel.yml",
     "names the versioned URL"),
    ("sed -i s/v0.28.4/x/ kube-flannel.yml", "copies the CNI version v0.28.4"),
    ("cat <<EOF\n  containers:\n  - image: registry.k8s.io/pause:3.10\nEOF", "names the image registry.k8s.io/pause:3.10"),
    ("sudo ctr images pull docker.io/library/nginx:1.27", "names the image docker.io/library/nginx:1.27"),
])
def test_each_kind_of_drift_in_a_code_cell_is_reported_with_its_cell(tmp_path, code, expected):
    course = course_with(tmp_path, ["%%node all\n# a comment naming 1.36.4 is documentation\n" + code])
    problems = problems_of(course)
    assert problems and all("lab90.ipynb: cell cell-0:" in p and "(fix: " in p for p in problems), problems
    assert any(expected in p for p in problems), problems


def test_drift_in_a_grader_string_is_reported_with_its_line_and_comments_are_not(tmp_path):
    bad = GRADER_OK.replace('hint="super-admin.conf exists since 1.29;', 'hint="kubeadm 1.36 writes it;')
    problems = problems_of(course_with(tmp_path, [], grader=bad))
    assert len(problems) == 1 and "lab90_engine.py: line 7: names Kubernetes 1.36" in problems[0], problems


def test_kubelab_lint_fails_on_drift_and_names_the_fix(tmp_path):
    course = course_with(tmp_path, ['%%node all\nsudo apt-get install -y kubelet="1.36.4-*"'])
    p = kubelab("lint", "--course", str(course.root))
    assert p.returncode != 0 and "Traceback" not in p.stdout + p.stderr
    assert "names Kubernetes 1.36.4; course.yaml pins 1.36.4" in p.stdout and "$KUBELAB_K8S_VERSION" in p.stdout
