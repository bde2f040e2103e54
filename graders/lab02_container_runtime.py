"""Lab 2 — Install the container runtime. Every check runs on every node and only observes.

Where containerd is configured is read from the merged configuration (`containerd config dump`), never
from the file alone: an import, a misplaced table or a key the running version ignores all show there.
Both layouts are understood: config version 2 (containerd 1.x) and version 3 (containerd 2.x).
"""

from kubelab import aptfacts, aptsources
from kubelab import containerd_config as cc
from kubelab.engine import check, expect_equal, expect_true, fail, load_yaml

CONFIG = "/etc/containerd/config.toml"
CRICTL_YAML = "/etc/crictl.yaml"


def _dump(host) -> dict:
    out = host.run("sudo -n containerd config dump")
    if out.rc != 0:
        fail("`containerd config dump` prints the merged configuration",
             (out.stderr or out.stdout).strip()[-300:] or f"exit status {out.rc}", what="containerd config dump")
    try:
        return cc.parse(out.stdout)
    except cc.ConfigError as e:
        fail("a TOML configuration", str(e), what="containerd config dump")


@check("The course's containerd apt repository is configured with its signing key", on="all", points=1,
       hint="Download the repository key to the keyring path of the course ($KUBELAB_CONTAINERD_KEYRING) and write "
            "the line $KUBELAB_CONTAINERD_APT_LINE to $KUBELAB_CONTAINERD_LIST_FILE (Step 1 of the notebook). "
            "The same repository as a deb822 stanza in a .sources file (Types: deb, URIs:, Suites:, Components:, "
            "Signed-By:) counts too, as do options such as arch= in any order.")
def test_apt_source(host, course):
    src = course.apt_source("containerd")
    arch = host.run("dpkg --print-architecture").stdout.strip()
    found = aptsources.course_repository(host.run(aptsources.LISTING).stdout, src.apt_line, arch)
    expect_true(found.entry is not None, found.expected, found.actual, what="apt sources")
    entry = found.entry
    if entry.inline_key:
        return  # the key is in the stanza itself (Signed-By: -----BEGIN PGP PUBLIC KEY BLOCK----- ...)
    keys = {k: host.file(k) for k in entry.keyrings}
    state = {k: "(missing)" if not f.exists else "(empty)" if f.size == 0 else "present" for k, f in keys.items()}
    expect_true(any(v == "present" for v in state.values()),
                f"{' or '.join(keys) or 'a keyring file'} holding the repository key (signed-by of {entry.file})",
                ", ".join(f"{k} {v}" for k, v in state.items()) or f"signed-by={entry.signed_by}: no keyring file",
                what="keyring")


@check("containerd is installed from the course's repository", on="all", points=1, needs=["apt_source"],
       hint="`sudo apt-get update && sudo apt-get install -y $KUBELAB_CONTAINERD_PACKAGES` after Step 1. "
            "A distribution's own containerd package is another build, often of another major version.")
def test_package_installed(host, course):
    src = course.apt_source("containerd")
    got = {}
    for pkg in src.packages:
        policy = aptfacts.apt_policy(host.run("LC_ALL=C apt-cache policy %s", pkg).stdout)
        if policy.installed is None:
            got[pkg] = "not installed"
        elif aptfacts.installed_from(policy, src.url):
            got[pkg] = f"installed from {src.url}"
        else:
            where = ", ".join(policy.sources.get(policy.installed, [])) or "unknown"
            got[pkg] = f"{policy.installed} installed, known only from {where}"
    expect_equal(got, {pkg: f"installed from {src.url}" for pkg in src.packages}, what="apt-cache policy")


@check("runc, the OCI runtime containerd starts containers with, is installed", on="all", points=0.5,
       hint="runc comes with the containerd package (containerd.io bundles it; Debian's containerd depends on it): "
            "reinstall it with `sudo apt-get install --reinstall $KUBELAB_CONTAINERD_PACKAGES`.")
def test_runc(host):
    out = host.run("sudo -n runc --version")
    first = (out.stdout.splitlines() or [""])[0]
    expect_true(out.rc == 0 and first.startswith("runc version"), "runc version ...",
                first or (out.stderr.strip()[-200:] or f"exit status {out.rc}"), what="runc --version")


@check("containerd has the major version the course is built for", on="all", points=0.5,
       hint="Install containerd from the course's repository (Step 1): the Kubernetes version of this course "
            "needs the containerd major version in course.yaml (versions.containerd.major).")
def test_containerd_major(host, course):
    out = host.run("containerd --version")
    if out.rc != 0:
        fail(f"containerd {course.versions.containerd.major}.x", "containerd is not installed (no `containerd` command)",
             what="containerd --version")
    try:
        v = cc.parse_version(out.stdout)
    except cc.ConfigError as e:
        fail(f"containerd {course.versions.containerd.major}.x", str(e), what="containerd --version")
    expect_equal(f"{v.major}.x ({v.text})" if v.major != course.versions.containerd.major else f"{v.major}.x",
                 f"{course.versions.containerd.major}.x", what="containerd --version")


@check("The containerd service starts at boot", on="all", points=0.5,
       hint="`sudo systemctl enable containerd` (the kubelet needs the runtime after every reboot).")
def test_service_enabled(host):
    out = host.run("systemctl is-enabled containerd.service")
    expect_equal(out.stdout.strip() or out.stderr.strip() or "not found", "enabled",
                 what="systemctl is-enabled containerd")


@check("The containerd service is running", on="all", points=1, wait_s=10, interval_s=2,
       hint="`sudo systemctl restart containerd`, then `sudo journalctl -u containerd -n 50` if it does not stay "
            "active (a TOML error in /etc/containerd/config.toml stops it at start).")
def test_service_active(host):
    out = host.run("systemctl is-active containerd.service")
    expect_equal(out.stdout.strip() or "not found", "active", what="systemctl is-active containerd")


@check("containerd answers on its socket /run/containerd/containerd.sock", on="all", points=1,
       needs=["service_active"], wait_s=10, interval_s=2,
       hint="The kubelet (and crictl, ctr) talk to containerd over this Unix socket: check `sudo ctr version`; "
            "`[grpc] address` in the config must stay /run/containerd/containerd.sock.")
def test_socket_answers(host):
    out = host.run("sudo -n ctr --address %s version", cc.DEFAULT_SOCKET)
    server = "Server:" in out.stdout
    expect_true(out.rc == 0 and server, "a Server: section with containerd's version",
                (out.stderr or out.stdout).strip()[-300:] or f"exit status {out.rc}", what="ctr version")


@check("The CRI plugin is enabled and loaded", on="all", points=1.5, needs=["socket_answers"],
       hint="The kubelet talks to containerd only through its CRI plugin. Docker's containerd.io ships a "
            "config.toml with `disabled_plugins = [\"cri\"]`: replace it with a full config (`containerd config "
            "default`), keep `disabled_plugins = []`, restart containerd and look at `sudo ctr plugins ls`.")
def test_cri_loaded(host):
    cfg = _dump(host)
    disabled = cc.cri_disabled_by(cfg)
    expect_equal(disabled, [], what="CRI plugins in disabled_plugins of the merged config")
    status = cc.cri_status(host.run("sudo -n ctr plugins ls").stdout)
    expect_equal(status, "ok", what="io.containerd.grpc.v1 cri in `ctr plugins ls`"
                 + (" (see `sudo journalctl -u containerd`)" if status not in ("ok", "not loaded") else ""))


@check("The CRI plugin's runc runtime uses the systemd cgroup driver (SystemdCgroup = true)", on="all",
       points=2, needs=["service_active"],
       hint="systemd must be the only manager of the cgroup tree, and the kubelet takes its driver from containerd. Set "
            "`SystemdCgroup = true` under the runc options table of the CRI plugin: containerd 2.x "
            "[plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options], containerd 1.x "
            "[plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.runc.options]. Some containerd 2.x "
            "releases leave the key out of `containerd config default`, so a `sed` that replaces "
            "`SystemdCgroup = false` changes nothing there. Verify with `sudo containerd config dump`.")
def test_systemd_cgroup(host):
    cfg = _dump(host)
    try:
        found = cc.runtime_cgroup(cfg)
    except cc.ConfigError as e:
        fail("config version 2 or 3", str(e), what="containerd config dump")
    if found.ok:
        return
    actual = ("SystemdCgroup is not set (containerd then uses cgroupfs)" if found.systemd_cgroup is None
              else f"SystemdCgroup = {str(found.systemd_cgroup).lower()}")
    if not found.runtime_defined:
        actual = f"no runtime named {found.runtime!r} is defined"
    raw = host.run("sudo -n cat %s", CONFIG)
    if raw.rc == 0:
        try:
            elsewhere = cc.misplaced_systemd_cgroup(cc.parse(raw.stdout), found.runtime)
        except cc.ConfigError:
            elsewhere = []
        if elsewhere:
            actual += f"; {CONFIG} sets it under {', '.join(elsewhere)}, where the CRI plugin does not read it"
    fail(f"SystemdCgroup = true in {found.header}", actual, what="containerd config dump")


@check("containerd runs with its current configuration (restarted after the last change)", on="all",
       points=0.5, needs=["service_active"],
       hint="containerd reads its configuration only at start: `sudo systemctl restart containerd` after "
            "every change to /etc/containerd/config.toml (or to a file it imports).")
def test_config_applied(host):
    cfg = _dump(host)
    files = " ".join([CONFIG, *cc.imports(cfg)])
    # newest modification time of the config files vs. the start time of the running containerd
    script = ("pid=$(systemctl show -p MainPID --value containerd.service); "
              "echo started $(( $(date +%%s) - $(ps -o etimes= -p \"$pid\") )); "
              "for f in %s; do for g in $f; do [ -e \"$g\" ] && echo changed $(stat -c %%Y \"$g\") \"$g\"; done; done; true")
    out = host.run("sudo -n sh -c %s", script % files)
    started, changed = None, []
    for line in out.stdout.splitlines():
        words = line.split()
        if words[:1] == ["started"] and len(words) == 2:
            started = int(words[1])
        elif words[:1] == ["changed"] and len(words) == 3:
            changed.append((int(words[1]), words[2]))
    if started is None:
        fail("the start time of the running containerd", out.stdout.strip() or out.stderr.strip(), what="ps")
    late = [f for t, f in changed if t > started + 1]
    state = f"{', '.join(late)} changed after containerd started" if late else "started after the last change"
    expect_equal(state, "started after the last change", what="containerd's start vs. its config files")


@check("crictl is configured to talk to containerd", on="all", points=0.5,
       hint="Write `runtime-endpoint: unix:///run/containerd/containerd.sock` (and the same image-endpoint) "
            "to /etc/crictl.yaml: without it crictl tries other runtimes' sockets first and warns. (crictl itself is the "
            "package cri-tools, installed from the Kubernetes repository in Lab 3; this file can be written before.)")
def test_crictl_endpoint(host):
    import yaml

    f = host.file(CRICTL_YAML)
    if not f.exists:
        fail(f"runtime-endpoint: unix://{cc.DEFAULT_SOCKET}", "(no /etc/crictl.yaml)", what=CRICTL_YAML)
    try:
        data = load_yaml(f.content_string) or {}
    except yaml.YAMLError as e:
        fail("a YAML file", str(e).splitlines()[0], what=CRICTL_YAML)
    got = data.get("runtime-endpoint") if isinstance(data, dict) else None
    expect_equal(got or "(not set)", f"unix://{cc.DEFAULT_SOCKET}", what=f"runtime-endpoint in {CRICTL_YAML}")
