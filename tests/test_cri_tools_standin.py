"""The cri-tools STAND-IN .deb the twins' local repository serves (kubelab.cluster.debs.cri_tools_standin_deb:
Debian has no cri-tools and pkgs.k8s.io is out of reach), and Lab 3's other_packages check on dpkg's real output
shapes.

Kinds of proof: "real dpkg-deb" (the package built and read back by dpkg-deb, its crictl run); "simulation" (the
check called with a host stub answering what dpkg-query and `command -v` print). The live proof is
tests/test_lab03.py (twins: the notebook installs the stand-in from the local repository; removing it fails)."""

from __future__ import annotations

import importlib.util
import subprocess
from pathlib import Path
from types import SimpleNamespace

import pytest
from _pytest.outcomes import Skipped

from kubelab.cluster.debs import cri_tools_standin_deb
from kubelab.course import load_course
from kubelab.engine.checks import CheckFailed

REPO = Path(__file__).resolve().parents[1]
SPEC = importlib.util.spec_from_file_location("lab03_grader_sim", REPO / "graders" / "lab03_kubernetes_packages.py")
G = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(G)
COURSE = load_course(REPO).model
# `ctr version` of Debian bookworm's containerd 1.6 (its layout: Client then Server, each with a Version line)
CTR_VERSION = ("Client:\n  Version:  1.6.20~ds1\n  Revision: 1.6.20~ds1-1+b1\n  Go version: go1.19.8\n\n"
               "Server:\n  Version:  1.6.20~ds1\n  Revision: 1.6.20~ds1-1+b1\n  UUID: 0f7c\n")


@pytest.fixture(scope="module")
def deb(tmp_path_factory) -> Path:
    return cri_tools_standin_deb(tmp_path_factory.mktemp("cri-tools"))


def test_the_package_is_named_cri_tools_and_says_it_is_a_stand_in(deb, tmp_path):
    """real dpkg-deb: Package cri-tools holding an executable /usr/bin/crictl; its description says STAND-IN."""
    info = subprocess.run(["dpkg-deb", "-f", str(deb), "Package", "Description"], capture_output=True, text=True,
                          check=True).stdout
    assert "Package: cri-tools" in info and "STAND-IN" in info
    listing = subprocess.run(["dpkg-deb", "-c", str(deb)], capture_output=True, text=True, check=True).stdout
    assert any(ln.startswith("-rwxr-xr-x") and ln.endswith("./usr/bin/crictl") for ln in listing.splitlines())


def _crictl(deb: Path, tmp: Path, *args: str, ctr: str | None = None) -> subprocess.CompletedProcess:
    (tmp / "root").mkdir(parents=True)
    subprocess.run(["dpkg-deb", "-x", str(deb), str(tmp / "root")], check=True)
    path = str(tmp / "root/usr/bin")
    if ctr is not None:  # a stub ctr printing containerd 1.6's `ctr version` (no containerd here)
        (tmp / "bin").mkdir()
        (tmp / "bin/ctr").write_text(f"#!/bin/sh\ncat <<'END'\n{ctr}END\n")
        (tmp / "bin/ctr").chmod(0o755)
        path = f"{tmp / 'bin'}:{path}"
    return subprocess.run([str(tmp / "root/usr/bin/crictl"), *args], capture_output=True, text=True,
                          env={"PATH": f"{path}:/usr/bin:/bin"}, timeout=30)


def test_crictl_answers_its_version_and_refuses_the_rest_saying_why(deb, tmp_path):
    """real dpkg-deb: `crictl --version` names the stand-in; `crictl ps` fails saying Debian has no cri-tools."""
    v = _crictl(deb, tmp_path, "--version")
    assert v.returncode == 0 and v.stdout == "crictl version v1.20.0 (kubelab stand-in, not cri-tools)\n"
    ps = _crictl(deb, tmp_path / "b", "ps")
    assert ps.returncode == 1 and "stand-in" in ps.stderr and "Debian has no cri-tools" in ps.stderr


def test_crictl_version_reports_containerd_through_ctr_and_says_so(deb, tmp_path):
    """real dpkg-deb, stub ctr (simulation of containerd's answer): the runtime's version from `ctr version`'s
    Server part, and a note on stderr that it did not come over the CRI."""
    r = _crictl(deb, tmp_path, "version", ctr=CTR_VERSION)
    assert r.returncode == 0, r.stderr
    assert "RuntimeName:  containerd\nRuntimeVersion:  1.6.20~ds1\n" in r.stdout
    assert "not over the CRI" in r.stderr


class Host:
    def __init__(self, dpkg: str, crictl: str):
        self.dpkg, self.crictl = dpkg, crictl

    def run(self, command, *args):
        cmd = command % args if args else command
        if cmd.startswith("dpkg-query"):
            return SimpleNamespace(rc=0 if self.dpkg else 1, stdout=self.dpkg,
                                   stderr="" if self.dpkg else "dpkg-query: no packages found matching cri-tools\n")
        if cmd == "command -v crictl":
            return SimpleNamespace(rc=0 if self.crictl else 1, stdout=self.crictl, stderr="")
        pytest.fail(f"the simulation has no answer for {cmd}")


def _check(host, course=COURSE):
    try:
        G.test_other_packages(host, course)
    except CheckFailed as e:
        return e
    return None


def test_other_packages_passes_with_cri_tools_installed_or_held():
    """simulation of dpkg-query's `${Package} ${db:Status-Abbrev}` lines: "ii " and, held, "hi "."""
    assert _check(Host("cri-tools ii \n", "/usr/bin/crictl\n")) is None
    assert _check(Host("cri-tools hi \n", "/usr/bin/crictl\n")) is None


def test_other_packages_fails_without_cri_tools_or_crictl():
    """simulation: not installed (dpkg-query's message), removed with its config left ("rc"), or installed with
    crictl gone from PATH."""
    e = _check(Host("", ""))
    assert (e.expected, e.actual) == ("cri-tools=installed", "cri-tools=(not installed)")
    assert _check(Host("cri-tools rc \n", "")).actual == "cri-tools=(not installed)"
    e = _check(Host("cri-tools ii \n", ""))
    assert e.actual == "(not found)" and "crictl" in e.expected


def test_other_packages_is_skipped_when_the_course_lists_only_the_three():
    """simulation: a course whose Kubernetes package list is kubelet, kubeadm, kubectl only."""
    k8s = COURSE.package_sources.kubernetes.model_copy(update={"packages": ["kubelet", "kubeadm", "kubectl"]})
    course = COURSE.model_copy(update={"package_sources": COURSE.package_sources.model_copy(
        update={"kubernetes": k8s})})
    with pytest.raises(Skipped):
        _check(Host("", ""), course)
