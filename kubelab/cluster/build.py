"""The cached build of Kubernetes v1.20.2 from Debian's archive: binaries and container images.

Why this version: bookworm's source package `kubernetes 1.20.5+really1.20.2-1.1+deb12u1` is the only one in
Debian's archive that still holds the whole tree with `vendor/` (later versions hold kubectl alone), and
pkgs.k8s.io and container registries are out of reach here. See shared/reference/real-cluster.md.

The build runs once per (source package version, recipe version, architecture) and its result is kept in
<cache>/cluster/<key>/ (bin/, images/, build.json). Steps run in a sid build root file system under
<cache>/cluster/.work-<key>/ (resumable: each finished step leaves a stamp), and the result is renamed
into place only when complete, so an interrupted build never leaves a cache that looks valid. The work
folder (~3 GB with Go's cache) is deleted after a successful build.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import tarfile
import io
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from kubelab.errors import InfrastructureError
from kubelab.twin import hostcmd, mounts
from kubelab.twin.mirror import debian_mirror
from kubelab.twin.paths import cache_root

SOURCE_PACKAGE = "kubernetes"
SOURCE_VERSION = "1.20.5+really1.20.2-1.1+deb12u1"
KUBE_VERSION = "v1.20.2"
# upstream v1.20.2's commit, for `kubectl version` (the tarball has no git history)
KUBE_COMMIT = "faecb196815e248d3ecfb03c680a4507229c2a56"
KUBE_BUILD_DATE = "2021-01-13T13:20:00Z"
BUILD_SUITE = "sid"  # Debian's current Go, etcd-server, busybox-static, gcc
RECIPE_VERSION = 1

BINARIES = ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubelet", "kube-proxy",
            "kubeadm", "kubectl")
BUILD_PACKAGES = ("golang-go", "make", "rsync", "jq", "gcc", "libc6-dev", "dpkg-dev", "xz-utils", "ca-certificates",
                  "etcd-server", "etcd-client", "openssl", "busybox-static",
                  "golang-github-modern-go-reflect2-dev", "golang-github-json-iterator-go-dev")
# image references kubeadm v1.20.2 asks for (kubeadm config images list), plus a test workload image
PAUSE_IMAGE = "k8s.gcr.io/pause:3.2"
ETCD_IMAGE = "k8s.gcr.io/etcd:3.4.13-0"
BUSYBOX_IMAGE = "docker.io/local/busybox:debian"
CONTROL_PLANE_IMAGES = ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "kube-proxy")

Progress = Callable[[str], None]
GOPATH = "/build/gopath"
SRC = f"{GOPATH}/src/k8s.io/kubernetes"


def cache_key(arch: str = "amd64") -> str:
    spec = {"source": f"{SOURCE_PACKAGE}={SOURCE_VERSION}", "recipe": RECIPE_VERSION, "arch": arch}
    digest = hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:8]
    return f"{SOURCE_VERSION.replace('+', '_')}-{digest}"


@dataclass(frozen=True)
class Artifacts:
    """A complete build: <dir>/bin/<binary>, <dir>/images/<name>.tar (docker-archive), <dir>/build.json."""
    dir: Path

    @property
    def bin(self) -> Path:
        return self.dir / "bin"

    @property
    def images(self) -> Path:
        return self.dir / "images"

    def image_tars(self) -> list[Path]:
        return sorted(self.images.glob("*.tar"))

    def info(self) -> dict:
        return json.loads((self.dir / "build.json").read_text())


def artifacts_dir() -> Path:
    return cache_root() / "cluster" / cache_key(_arch())


def cached() -> Artifacts | None:
    d = artifacts_dir()
    return Artifacts(d) if (d / "build.json").is_file() else None


def _arch() -> str:
    try:
        return subprocess.run(["dpkg", "--print-architecture"], capture_output=True, text=True,
                              env=hostcmd.env()).stdout.strip() or "amd64"
    except OSError:
        return "amd64"


def ensure_built(progress: Progress = print) -> Artifacts:
    """The v1.20.2 binaries and images, built first (~8 min cold on 2 cores) if not cached."""
    final = artifacts_dir()
    if (final / "build.json").is_file():
        return Artifacts(final)
    if _arch() != "amd64":
        raise InfrastructureError(f"the cluster build supports amd64 hosts only (this is {_arch()})",
                                  "run the cluster tests on an amd64 Debian 12 machine")
    final.parent.mkdir(parents=True, exist_ok=True)
    with open(final.parent / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # a second builder waits and reuses the first one's result
        if (final / "build.json").is_file():
            return Artifacts(final)
        _Build(final, progress).run()
    return Artifacts(final)



def write_docker_archive(out: Path, ref: str, contents: dict[str, bytes], entrypoint: list[str] | None,
                         links: dict[str, str] | None = None) -> None:
    """A docker-archive tarball (what `ctr images import` reads) named `ref`, with one layer holding `contents`
    (path in the image -> bytes, all mode 0755), symlinks `links` (path -> target), the usual empty top-level
    directories and an /etc/passwd."""
    layer = io.BytesIO()
    with tarfile.open(fileobj=layer, mode="w", format=tarfile.GNU_FORMAT) as t:
        dirs = set()
        for dest in sorted(contents):
            parts = Path(dest).parts
            for i in range(1, len(parts)):
                d = "/".join(parts[:i])
                if d not in dirs:
                    dirs.add(d)
                    ti = tarfile.TarInfo(d)
                    ti.type, ti.mode, ti.mtime = tarfile.DIRTYPE, 0o755, 0
                    t.addfile(ti)
        for d in ("tmp", "etc", "var", "var/lib", "proc", "sys", "dev"):
            if d not in dirs:
                dirs.add(d)
                ti = tarfile.TarInfo(d)
                ti.type, ti.mode, ti.mtime = tarfile.DIRTYPE, 0o1777 if d == "tmp" else 0o755, 0
                t.addfile(ti)
        for dest, data in sorted(contents.items()):
            ti = tarfile.TarInfo(dest)
            ti.size, ti.mode, ti.mtime = len(data), 0o755, 0
            t.addfile(ti, io.BytesIO(data))
        for dest, target in sorted((links or {}).items()):
            ti = tarfile.TarInfo(dest)
            ti.type, ti.linkname, ti.mode, ti.mtime = tarfile.SYMTYPE, target, 0o777, 0
            t.addfile(ti)
        passwd = b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n"
        ti = tarfile.TarInfo("etc/passwd")
        ti.size, ti.mode, ti.mtime = len(passwd), 0o644, 0
        t.addfile(ti, io.BytesIO(passwd))
    layer_bytes = layer.getvalue()
    lid = hashlib.sha256(layer_bytes).hexdigest()
    config = {"architecture": "amd64", "os": "linux",
              "config": {"Env": ["PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin"],
                         **({"Entrypoint": entrypoint} if entrypoint else {})},
              "rootfs": {"type": "layers", "diff_ids": [f"sha256:{lid}"]}}
    cbytes = json.dumps(config).encode()
    cid = hashlib.sha256(cbytes).hexdigest()
    manifest = json.dumps([{"Config": f"{cid}.json", "RepoTags": [ref], "Layers": [f"{lid}/layer.tar"]}]).encode()
    with tarfile.open(out, "w") as t:
        for name, data in (("manifest.json", manifest), (f"{cid}.json", cbytes), (f"{lid}/layer.tar", layer_bytes)):
            ti = tarfile.TarInfo(name)
            ti.size, ti.mode, ti.mtime = len(data), 0o644, 0
            t.addfile(ti, io.BytesIO(data))


class _Build:
    def __init__(self, final: Path, progress: Progress):
        self.final = final
        self.say = progress
        self.work = final.parent / f".work-{final.name}"
        self.root = self.work / "root"  # the sid build root file system
        self.log = final.parent / f"{final.name}.build.log"
        self.mirror = debian_mirror(BUILD_SUITE)

    # -- steps ---------------------------------------------------------------------------------
    def run(self) -> None:
        t0 = time.monotonic()
        self.work.mkdir(parents=True, exist_ok=True)
        self.say(f"building Kubernetes {KUBE_VERSION} from Debian's {SOURCE_PACKAGE} {SOURCE_VERSION} "
                 f"(once, ~8 min on 2 cores; log {self.log})")
        steps = [("debootstrap", self._debootstrap), ("packages", self._packages), ("source", self._source),
                 ("openapi", self._openapi), ("binaries", self._binaries), ("pause", self._pause)]
        for name, fn in steps:
            stamp = self.work / f"{name}.done"
            if stamp.exists():
                self.say(f"  {name}: done earlier (resuming)")
                continue
            t = time.monotonic()
            fn()
            stamp.write_text(f"{time.monotonic() - t:.0f}\n")
            self.say(f"  {name}: {time.monotonic() - t:.0f}s")
        t_collect = time.monotonic()
        tmp = self.final.parent / f".out-{self.final.name}-{os.getpid()}"
        mounts.remove_tree(tmp)
        try:
            self._collect(tmp)
            info = {"source": f"{SOURCE_PACKAGE}={SOURCE_VERSION}", "version": KUBE_VERSION,
                    "recipe": RECIPE_VERSION,
                    # summed over the steps, also when the build was resumed after an interruption
                    "build_seconds": round(sum(float((self.work / f"{n}.done").read_text() or 0) for n, _ in steps)
                                           + time.monotonic() - t_collect),
                    "steps_seconds": {n: round(float((self.work / f"{n}.done").read_text() or 0)) for n, _ in steps},
                    "built": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                    "binaries": list(BINARIES), "images": self._image_refs}
            (tmp / "build.json").write_text(json.dumps(info, indent=1) + "\n")
            if self.final.exists():
                mounts.remove_tree(self.final)
            os.rename(tmp, self.final)  # the commit point
        except BaseException:
            mounts.remove_tree(tmp)
            raise
        if not os.environ.get("KUBELAB_CLUSTER_KEEP_WORK"):
            self.say(f"  removing the build folder {self.work}")
            mounts.remove_tree(self.work)
        self.say(f"Kubernetes {KUBE_VERSION} built in {time.monotonic() - t0:.0f}s: {self.final}")

    def _debootstrap(self) -> None:
        mounts.remove_tree(self.root)
        self._host(["debootstrap", "--variant=minbase", BUILD_SUITE, str(self.root), self.mirror],
                   what=f"debootstrap {BUILD_SUITE} (build root)", timeout=900,
                   show=("I: Retrieving Release", "I: Base system installed"))
        (self.root / "etc/apt/apt.conf.d/99kubelab").write_text(
            # the archive snapshot's Release files can read as expired
            'Acquire::Check-Valid-Until "false";\nAPT::Install-Recommends "false";\n'
            'Acquire::Retries "3";\n')
        (self.root / "etc/apt/sources.list").write_text(
            f"deb {self.mirror} {BUILD_SUITE} main\n"
            f"deb-src {self.mirror} {BUILD_SUITE} main\n"
            f"deb-src {self.mirror} bookworm main\n")
        for d in ("build", "root"):
            (self.root / d).mkdir(exist_ok=True)

    def _packages(self) -> None:
        self._in(["apt-get", "update", "-q"], what="apt-get update (build root)")
        self._in(["apt-get", "install", "-y", "-q", *BUILD_PACKAGES], what="installing the build tools",
                 timeout=1800, show=("Setting up golang-", "Setting up etcd-server"))

    def _source(self) -> None:
        self._in(["sh", "-ec",
                  f"rm -rf /build/src && mkdir -p /build/src && cd /build/src && "
                  f"apt-get source -q --download-only {SOURCE_PACKAGE}={SOURCE_VERSION} && "
                  f"dpkg-source --no-check -x *.dsc k8s && "
                  f"mkdir -p {GOPATH}/src/k8s.io && rm -rf {SRC} && mv k8s {SRC} && rm -rf /build/src && "
                  # the vendored reflect2 1.0.1 segfaults under Go >= 1.18: use Debian's packaged copies
                  f"for p in github.com/modern-go/reflect2 github.com/json-iterator/go; do "
                  f"  rm -rf {SRC}/vendor/$p && cp -a /usr/share/gocode/src/$p {SRC}/vendor/$p; done"],
                 what=f"apt-get source {SOURCE_PACKAGE}={SOURCE_VERSION}", timeout=900)

    def _go_env(self) -> list[str]:
        return ["env", f"GOPATH={GOPATH}", "GOTOOLCHAIN=local", "GOPROXY=off", "GO111MODULE=off",
                "CGO_ENABLED=0", "GOCACHE=/build/gocache", "HOME=/root", "GOFLAGS=",
                "PATH=/usr/lib/go/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]

    def _openapi(self) -> None:
        # the tarball lacks the generated OpenAPI code kube-apiserver needs
        self._in([*self._go_env(), "sh", "-ec", f"cd {SRC} && make gen_openapi"],
                 what="make gen_openapi", timeout=1800)

    def _binaries(self) -> None:
        ld = "-s -w"
        for p in ("k8s.io/kubernetes/vendor/k8s.io/component-base/version",
                  "k8s.io/kubernetes/vendor/k8s.io/client-go/pkg/version"):
            ld += (f" -X {p}.gitVersion={KUBE_VERSION} -X {p}.gitMajor=1 -X {p}.gitMinor=20"
                   f" -X {p}.gitCommit={KUBE_COMMIT} -X {p}.gitTreeState=clean -X {p}.buildDate={KUBE_BUILD_DATE}")
        for b in BINARIES:
            out = self.root / "build/out" / b
            if out.exists():
                continue
            t = time.monotonic()
            self._in([*self._go_env(), "sh", "-ec",
                      f"cd {SRC} && mkdir -p /build/out && go build -p 2 -trimpath -ldflags '{ld}' "
                      f"-o /build/out/{b}.tmp ./cmd/{b} && mv /build/out/{b}.tmp /build/out/{b}"],
                     what=f"go build cmd/{b}", timeout=3600)
            self.say(f"    {b}: {time.monotonic() - t:.0f}s")

    def _pause(self) -> None:
        self._in(["sh", "-ec", f"gcc -Os -static -o /build/out/pause {SRC}/build/pause/linux/pause.c && "
                               "strip /build/out/pause"], what="building pause")

    # -- result --------------------------------------------------------------------------------
    def _collect(self, out: Path) -> None:
        built = self.root / "build/out"
        (out / "bin").mkdir(parents=True)
        (out / "images").mkdir()
        for b in BINARIES:
            shutil.copy2(built / b, out / "bin" / b)
        self._image_refs: dict[str, str] = {}
        imgs = out / "images"
        self.say("  images: pause, etcd, kube-*, busybox")
        self._image(imgs / "pause.tar", PAUSE_IMAGE, {"pause": built / "pause"}, ["/pause"])
        for b in CONTROL_PLANE_IMAGES:
            self._image(imgs / f"{b}.tar", f"k8s.gcr.io/{b}:{KUBE_VERSION}",
                        {f"usr/local/bin/{b}": built / b}, None)
        etcd = {"usr/local/bin/etcd": self.root / "usr/bin/etcd", "usr/local/bin/etcdctl": self.root / "usr/bin/etcdctl"}
        if (self.root / "usr/bin/etcdutl").exists():
            etcd["usr/local/bin/etcdutl"] = self.root / "usr/bin/etcdutl"
        self._image(imgs / "etcd.tar", ETCD_IMAGE, etcd, None, with_libs=True)
        self._image(imgs / "busybox.tar", BUSYBOX_IMAGE,
                    {"bin/busybox": self.root / "usr/bin/busybox", "bin/sh": self.root / "usr/bin/busybox"},
                    ["/bin/sh"])

    def _image(self, out: Path, ref: str, files: dict[str, Path], entrypoint: list[str] | None,
               with_libs: bool = False) -> None:
        """A docker-archive tarball (what `ctr images import` reads) with one layer holding `files`."""
        if with_libs:
            files = dict(files)
            for src in list(files.values()):
                for lib in self._libs(src):
                    files[lib.lstrip("/")] = self.root / lib.lstrip("/")
        contents = {}
        for dest, src in files.items():
            real = Path(os.path.realpath(src)) if not str(src).startswith(str(self.root)) else \
                self.root / os.path.relpath(os.path.realpath(src), os.path.realpath(self.root))
            contents[dest] = real.read_bytes()
        write_docker_archive(out, ref, contents, entrypoint)
        self._image_refs[out.stem] = ref

    def _libs(self, binary: Path) -> list[str]:
        rel = "/" + os.path.relpath(binary, self.root)
        # a plain chroot: ldd needs no mounts (and nspawn would wait for the build root's lock)
        proc = subprocess.run(["chroot", str(self.root), "ldd", rel], capture_output=True, text=True,
                              env=hostcmd.env()).stdout
        libs = []
        for line in proc.splitlines():
            for word in line.split():
                if word.startswith("/"):
                    libs.append(word)
        return libs

    # -- running -------------------------------------------------------------------------------
    def _in(self, argv: Sequence[str], *, what: str, timeout: float = 600, show: tuple[str, ...] = (),
            capture: bool = False) -> str:
        """Run argv inside the build root (systemd-nspawn: its own mounts, gone when it exits; host network)."""
        nspawn = shutil.which("systemd-nspawn", path=hostcmd.tool_path()) or "systemd-nspawn"
        cmd = [nspawn, "-q", "--register=no", "--keep-unit", "-D", str(self.root), "--pipe",
               "--setenv=DEBIAN_FRONTEND=noninteractive", "--setenv=LC_ALL=C.UTF-8", "--", *argv]
        return self._host(cmd, what=what, timeout=timeout, show=show, capture=capture)

    def _host(self, cmd: Sequence[str], *, what: str, timeout: float = 600, show: tuple[str, ...] = (),
              capture: bool = False) -> str:
        out_lines: list[str] = []
        with open(self.log, "a") as log:
            log.write(f"\n$ {' '.join(cmd)}\n")
            log.flush()
            proc = subprocess.Popen(list(cmd), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                    env=hostcmd.env(), stdin=subprocess.DEVNULL, errors="replace")
            deadline = time.monotonic() + timeout
            try:
                assert proc.stdout is not None
                for line in proc.stdout:
                    log.write(line)
                    out_lines.append(line)
                    if len(out_lines) > 5000 and not capture:
                        del out_lines[:1000]
                    if show and line.startswith(show):
                        self.say(f"    {line.rstrip()[:100]}")
                    if time.monotonic() > deadline:
                        proc.kill()
                        raise InfrastructureError(f"{what}: did not finish within {timeout:g}s", f"read {self.log}")
                rc = proc.wait()
            except BaseException:
                hostcmd.stop(proc, grace_s=20)
                raise
        if rc != 0:
            last = next((ln.strip() for ln in reversed(out_lines) if ln.strip()), f"exit code {rc}")
            raise InfrastructureError(f"{what} failed (exit code {rc}): {last[:300]}",
                                      f"read {self.log}; a rerun resumes from the failed step")
        return "".join(out_lines)


if __name__ == "__main__":
    import sys
    try:
        a = ensure_built(lambda s: print(s, flush=True))
        print(a.dir)
    except InfrastructureError as e:
        print(f"error: {e.problem}\nfix: {e.fix}", file=sys.stderr)
        sys.exit(3)
