"""A local, signed apt repository served to the lab twins over their bridge.

The twins (and this machine) cannot reach download.docker.com or pkgs.k8s.io, yet Labs 2 and 3
are about exactly that: adding a signed third-party repository, installing and holding packages.
This is the stand-in: the same two layouts those repositories use, signed with a throwaway key,
served over HTTP on the host side of the twins' private network. The learner's commands run
unchanged; only course.yaml's `package_sources` point elsewhere (as a classroom mirror would).

    debs = archive_debs("bookworm", ["containerd", "runc"])
    repo = LocalAptRepo(tmp / "repo")
    repo.add_dists("linux/debian", suite="bookworm", component="stable", debs=debs)   # Docker's layout
    repo.add_flat("core:/stable:/v1.20/deb", debs=k8s_debs)                           # pkgs.k8s.io's layout
    with repo.serve("192.168.56.1") as base_url:
        ...  # http://192.168.56.1:<port>/linux/debian, .../core:/stable:/v1.20/deb/

Packages come from Debian's archive (`archive_debs`, no dependency resolution: name what you need)
or are built here (`build_deb`).
"""

from __future__ import annotations

import contextlib
import functools
import gzip
import hashlib
import http.server
import lzma
import os
import shutil
import subprocess
import tempfile
import threading
import urllib.parse
import urllib.request
from email.utils import formatdate
from pathlib import Path

from kubelab.errors import InfrastructureError
from kubelab.twin.mirror import debian_mirror
from kubelab.twin.paths import cache_root

_GPG_ENV = {"LC_ALL": "C"}


def _host_arch() -> str:
    return subprocess.run(["dpkg", "--print-architecture"], capture_output=True, text=True,
                          check=True).stdout.strip()


# -- packages from Debian's archive --------------------------------------------------------------

def _packages_index(mirror: str, suite: str, arch: str) -> dict[str, dict[str, str]]:
    """Package name -> its stanza (Filename, Version, SHA256, ...) from the suite's main Packages.xz."""
    url = f"{mirror.rstrip('/')}/dists/{suite}/main/binary-{arch}/Packages.xz"
    try:
        with urllib.request.urlopen(url, timeout=120) as r:
            text = lzma.decompress(r.read()).decode("utf-8", "replace")
    except OSError as e:
        raise InfrastructureError(f"cannot read {url}: {e}",
                                  "check that the host's Debian mirror is reachable (or set KUBELAB_DEBIAN_MIRROR)")
    index: dict[str, dict[str, str]] = {}
    for block in text.split("\n\n"):
        fields: dict[str, str] = {}
        for line in block.splitlines():
            if line and not line[0].isspace() and ":" in line:
                k, v = line.split(":", 1)
                fields[k] = v.strip()
        if "Package" in fields:
            index.setdefault(fields["Package"], fields)  # first stanza wins (the archive lists one per arch)
    return index


def archive_debs(suite: str, names: list[str], arch: str | None = None) -> list[Path]:
    """The .debs of `names` from Debian `suite` (the host's mirror), downloaded once into the cache."""
    arch = arch or _host_arch()
    mirror = debian_mirror(suite)
    cache = cache_root() / "debs" / suite / arch
    cache.mkdir(parents=True, exist_ok=True)
    index = None
    out = []
    for name in names:
        found = sorted(cache.glob(f"{name}_*.deb"))
        if found:
            out.append(found[-1])
            continue
        index = index or _packages_index(mirror, suite, arch)
        stanza = index.get(name)
        if stanza is None:
            raise InfrastructureError(f"package {name} is not in Debian {suite}/{arch}",
                                      "name a package that exists in that suite")
        url = f"{mirror.rstrip('/')}/{stanza['Filename']}"
        dest = cache / Path(stanza["Filename"]).name
        tmp = dest.with_suffix(".part")
        try:
            with urllib.request.urlopen(url, timeout=300) as r, open(tmp, "wb") as f:
                shutil.copyfileobj(r, f)
        except OSError as e:
            raise InfrastructureError(f"cannot download {url}: {e}", "check that the host's Debian mirror is reachable")
        if hashlib.sha256(tmp.read_bytes()).hexdigest() != stanza.get("SHA256"):
            tmp.unlink()
            raise InfrastructureError(f"{url} does not match the archive's SHA256", "retry; the mirror may be syncing")
        tmp.rename(dest)
        out.append(dest)
    return out


# -- packages built here ---------------------------------------------------------------------

def build_deb(out_dir: Path, name: str, version: str, files: dict[str, Path | bytes | str], *,
              arch: str | None = None, depends: list[str] | None = None, description: str = "",
              modes: dict[str, int] | None = None, maintainer_scripts: dict[str, str] | None = None,
              conffiles: list[str] | None = None) -> Path:
    """A .deb holding `files` (absolute path in the package -> source file or content).

    `modes` sets file modes (default 0755 for sources that are executable, else 0644);
    `maintainer_scripts` maps postinst/prerm/... to their shell text; `conffiles` lists files under /etc
    that dpkg keeps when the admin changed them (what debhelper does for every file in /etc).
    """
    arch = arch or _host_arch()
    modes = modes or {}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "root"
        for dest, src in files.items():
            target = root / dest.lstrip("/")
            target.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(src, Path):
                shutil.copyfile(src, target)
                mode = 0o755 if os.access(src, os.X_OK) else 0o644
            else:
                target.write_bytes(src.encode() if isinstance(src, str) else src)
                mode = 0o644
            target.chmod(modes.get(dest, mode))
        debian = root / "DEBIAN"
        debian.mkdir(parents=True)
        control = [f"Package: {name}", f"Version: {version}", f"Architecture: {arch}",
                   "Maintainer: kubelab <kubelab@localhost>", "Priority: optional", "Section: admin"]
        if depends:
            control.append(f"Depends: {', '.join(depends)}")
        control.append(f"Description: {description or name + ' (built by kubelab for the lab twins)'}")
        (debian / "control").write_text("\n".join(control) + "\n")
        if conffiles:
            (debian / "conffiles").write_text("".join(f"{c}\n" for c in conffiles))
        for script, text in (maintainer_scripts or {}).items():
            p = debian / script
            p.write_text(text if text.startswith("#!") else "#!/bin/sh\nset -e\n" + text)
            p.chmod(0o755)
        out_dir.mkdir(parents=True, exist_ok=True)
        deb = out_dir / f"{name}_{version}_{arch}.deb"
        subprocess.run(["dpkg-deb", "--root-owner-group", "-Zgzip", "--build", str(root), str(deb)],
                       check=True, capture_output=True)
    return deb


# -- the repository ---------------------------------------------------------------------------

class LocalAptRepo:
    """Files under `root`, signed with a key generated for this repository alone."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        # The signing key lives outside the served tree, and only as long as this object does.
        self._gnupg = Path(tempfile.mkdtemp(prefix="kubelab-aptrepo-gnupg-"))
        self._gpg(["--quick-gen-key", "kubelab lab-twin repository <kubelab@localhost>", "rsa3072", "sign", "never"])
        self.public_key_armored = self._gpg(["--armor", "--export"]).stdout

    def _gpg(self, args: list[str], input: str | None = None) -> subprocess.CompletedProcess:
        cmd = ["gpg", "--homedir", str(self._gnupg), "--batch", "--yes", "--pinentry-mode", "loopback",
               "--passphrase", "", *args]
        proc = subprocess.run(cmd, input=input, capture_output=True, text=True, env={**os.environ, **_GPG_ENV})
        if proc.returncode != 0:
            raise InfrastructureError(f"gpg {' '.join(args[:1])} failed: {proc.stderr.strip()[-300:]}",
                                      "check that gnupg works on this host (apt-get install gnupg)")
        return proc

    def add_flat(self, prefix: str, debs: list[Path], key_name: str = "Release.key") -> Path:
        """pkgs.k8s.io's layout: `deb [signed-by=...] <url>/<prefix>/ /`, the key at <prefix>/<key_name>."""
        base = self.root / prefix.strip("/")
        base.mkdir(parents=True, exist_ok=True)
        for deb in debs:
            shutil.copyfile(deb, base / deb.name)
        self._index(base, base, ".")
        self._release(base, base, {"Suite": "./", "Archive": "./"}, ["Packages", "Packages.gz"])
        (base / key_name).write_text(self.public_key_armored)
        return base

    def add_dists(self, prefix: str, suite: str, component: str, debs: list[Path], arch: str | None = None,
                  key_name: str = "gpg") -> Path:
        """Debian/Docker's layout: `deb [signed-by=...] <url>/<prefix> <suite> <component>`, key at <prefix>/<key_name>."""
        arch = arch or _host_arch()
        base = self.root / prefix.strip("/")
        pool = base / "pool" / component
        pool.mkdir(parents=True, exist_ok=True)
        for deb in debs:
            shutil.copyfile(deb, pool / deb.name)
        dist = base / "dists" / suite
        bindir = dist / component / f"binary-{arch}"
        bindir.mkdir(parents=True, exist_ok=True)
        self._index(base, bindir, f"pool/{component}")
        rel = [f"{component}/binary-{arch}/Packages", f"{component}/binary-{arch}/Packages.gz"]
        self._release(dist, dist, {"Suite": suite, "Codename": suite, "Components": component,
                                   "Architectures": arch}, rel)
        (base / key_name).write_text(self.public_key_armored)
        return base

    def _index(self, cwd: Path, out_dir: Path, pool: str) -> None:
        proc = subprocess.run(["dpkg-scanpackages", "--multiversion", pool, "/dev/null"], cwd=cwd,
                              capture_output=True, text=True)
        if proc.returncode != 0:
            raise InfrastructureError(f"dpkg-scanpackages failed: {proc.stderr.strip()[-300:]}",
                                      "apt-get install dpkg-dev")
        (out_dir / "Packages").write_text(proc.stdout)
        (out_dir / "Packages.gz").write_bytes(gzip.compress(proc.stdout.encode(), mtime=0))

    def _release(self, dist: Path, files_root: Path, fields: dict[str, str], files: list[str]) -> None:
        lines = ["Origin: kubelab", "Label: kubelab lab-twin repository", *(f"{k}: {v}" for k, v in fields.items()),
                 f"Date: {formatdate(usegmt=True)}"]
        for algo, name in (("md5", "MD5Sum"), ("sha256", "SHA256")):
            lines.append(f"{name}:")
            for rel in files:
                data = (files_root / rel).read_bytes()
                lines.append(f" {hashlib.new(algo, data).hexdigest()} {len(data)} {rel}")
        release = "\n".join(lines) + "\n"
        (dist / "Release").write_text(release)
        (dist / "InRelease").write_text(self._gpg(["--clearsign", "--digest-algo", "SHA256"], input=release).stdout)
        (dist / "Release.gpg").write_text(
            self._gpg(["--armor", "--detach-sign", "--digest-algo", "SHA256"], input=release).stdout)

    @contextlib.contextmanager
    def serve(self, host_ip: str, port: int = 0):
        """Serve the repository on host_ip (the twins' bridge address) until the block ends; yields the base URL."""
        handler = functools.partial(_QuietHandler, directory=str(self.root))
        try:
            server = http.server.ThreadingHTTPServer((host_ip, port), handler)
        except OSError as e:
            raise InfrastructureError(f"cannot serve the local apt repository on {host_ip}:{port}: {e}",
                                      "start the twins first (the address is their bridge's)")
        thread = threading.Thread(target=server.serve_forever, name="kubelab-aptrepo", daemon=True)
        thread.start()
        try:
            yield f"http://{host_ip}:{server.server_address[1]}"
        finally:
            server.shutdown()
            server.server_close()
            thread.join(timeout=5)

    def cleanup(self) -> None:
        subprocess.run(["gpgconf", "--homedir", str(self._gnupg), "--kill", "all"], capture_output=True)
        shutil.rmtree(self._gnupg, ignore_errors=True)


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # apt's requests are not worth a line each on stderr
        pass

    def translate_path(self, path: str) -> str:
        # pkgs.k8s.io paths carry ':' ("core:/stable:/v1.36"): unquote, then resolve as usual.
        return super().translate_path(urllib.parse.unquote(path))
