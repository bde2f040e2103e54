"""The local apt repository the twins install from (kubelab.twin.aptrepo).
Proof: real apt-get (in a private apt directory on this host) against the repository served over HTTP."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from kubelab.twin.aptrepo import LocalAptRepo, build_deb


@pytest.fixture
def repo(tmp_path):
    deb = build_deb(tmp_path / "built", "kubeadm", "1.20.2-1.1", {"/usr/bin/kubeadm": "#!/bin/sh\necho v1.20.2\n"},
                    modes={"/usr/bin/kubeadm": 0o755})
    r = LocalAptRepo(tmp_path / "root")
    r.add_flat("core:/stable:/v1.20/deb", [deb])
    r.add_dists("linux/debian", "bookworm", "stable", [deb])
    yield r
    r.cleanup()


def _apt(tmp: Path, sources: str, key: str) -> tuple[subprocess.CompletedProcess, Path]:
    (tmp / "state/lists/partial").mkdir(parents=True, exist_ok=True)
    (tmp / "cache/archives/partial").mkdir(parents=True, exist_ok=True)
    (tmp / "key.asc").write_text(key)
    (tmp / "sources.list").write_text(sources.format(key=tmp / "key.asc"))
    opts = ["-o", f"Dir::Etc::SourceList={tmp}/sources.list", "-o", "Dir::Etc::SourceParts=/nonexistent",
            "-o", f"Dir::State={tmp}/state", "-o", f"Dir::Cache={tmp}/cache", "-o", "APT::Sandbox::User=root"]
    update = subprocess.run(["apt-get", *opts, "update"], capture_output=True, text=True)
    policy = subprocess.run(["apt-cache", *opts, "policy", "kubeadm"], capture_output=True, text=True)
    return update, policy


def test_apt_reads_both_layouts_signed_with_the_repository_key(repo, tmp_path):
    with repo.serve("127.0.0.1") as url:
        update, policy = _apt(tmp_path / "apt", f"deb [signed-by={{key}}] {url}/core:/stable:/v1.20/deb/ /\n"
                                                f"deb [signed-by={{key}}] {url}/linux/debian bookworm stable\n",
                              repo.public_key_armored)
    assert update.returncode == 0 and "W:" not in update.stderr.replace("unsandboxed", ""), update.stderr
    assert "Candidate: 1.20.2-1.1" in policy.stdout
    assert "core:/stable:/v1.20/deb" in policy.stdout and "bookworm/stable" in policy.stdout


def test_apt_refuses_the_repository_with_another_key(repo, tmp_path):
    other = LocalAptRepo(tmp_path / "other")
    try:
        with repo.serve("127.0.0.1") as url:
            update, policy = _apt(tmp_path / "apt", f"deb [signed-by={{key}}] {url}/core:/stable:/v1.20/deb/ /\n",
                                  other.public_key_armored)
    finally:
        other.cleanup()
    assert "NO_PUBKEY" in update.stderr or "not signed" in update.stderr, update.stderr
    assert "Candidate: 1.20.2-1.1" not in policy.stdout
