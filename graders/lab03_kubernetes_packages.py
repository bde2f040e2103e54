"""Lab 3 — Install kubeadm, kubelet and kubectl. Every check runs on every node and only observes.

Versions, the repository and the node IPs come from course.yaml (`course` fixture); the pause image
containerd must use comes from the installed kubeadm itself (`kubeadm config images list`)."""

import json
import shlex

from kubelab import aptsources
from kubelab import containerd_config as cc
from kubelab.engine import check, expect_contains, expect_equal, expect_true, fail

# The three whose version is the course pin. course.yaml's package list (what the notebook installs) may add
# others a mirror serves, such as cri-tools, that carry versions of their own: they are not held to the pin.
PACKAGES = ("kubelet", "kubeadm", "kubectl")
NAT_IP = "10.0.2.15"
DEFAULTS = "/etc/default/kubelet"


def _source(course):
    return course.apt_source("kubernetes")


def _patch(course) -> str:
    return course.versions.kubernetes.patch


def _repository(host, course) -> aptsources.Finding:
    """The course's Kubernetes repository as apt reads it on this node (either sources format, any file)."""
    arch = host.run("dpkg --print-architecture").stdout.strip()
    return aptsources.course_repository(host.run(aptsources.LISTING).stdout, _source(course).apt_line, arch)


def extra_args(defaults_text: str) -> list[str]:
    """KUBELET_EXTRA_ARGS of /etc/default/kubelet as systemd's EnvironmentFile= reads it (the last assignment
    wins, quotes removed), split into arguments. Parsed here: the grader never runs the learner's file."""
    value = None
    for line in defaults_text.splitlines():
        line = line.strip()
        if line.startswith("export "):
            line = line[len("export "):].lstrip()
        if line.startswith("KUBELET_EXTRA_ARGS="):
            value = line.split("=", 1)[1]
    if value is None:
        return []
    try:
        return shlex.split(value)
    except ValueError:
        return value.split()


def node_ip_arg(args: list[str]) -> str | None:
    found = None
    for i, a in enumerate(args):
        if a.startswith("--node-ip="):
            found = a.split("=", 1)[1]
        elif a == "--node-ip" and i + 1 < len(args):
            found = args[i + 1]
    return found


@check("containerd (Lab 2) is running", on="all", points=1,
       hint="Lab 3 builds on Lab 2: finish it, or start containerd with `sudo systemctl enable --now containerd`.")
def test_containerd_active(host):
    expect_equal(host.run("systemctl is-active containerd").stdout.strip(), "active",
                 what="systemctl is-active containerd")


@check("The Kubernetes apt repository of the course's minor version is configured", on="all", points=1,
       hint="pkgs.k8s.io has one repository per minor version. Write exactly the line of $KUBELAB_KUBERNETES_APT_LINE "
            "into $KUBELAB_KUBERNETES_LIST_FILE (`echo \"$KUBELAB_KUBERNETES_APT_LINE\" | sudo tee "
            "$KUBELAB_KUBERNETES_LIST_FILE`), then `sudo apt-get update`. The same repository as a deb822 stanza in a "
            ".sources file (Types: deb, URIs:, Suites: /, Signed-By:) counts too, as do options such as arch=.")
def test_repository_line(host, course):
    found = _repository(host, course)
    expect_true(found.entry is not None, found.expected, found.actual, what="apt sources")


@check("The repository's signing key is installed where the apt line says", on="all", points=1,
       hint="Download the repository's Release.key and store it dearmored: `curl -fsSL $KUBELAB_KUBERNETES_KEY_URL | "
            "sudo gpg --dearmor -o $KUBELAB_KUBERNETES_KEYRING` (apt ignores an armored key in a .gpg file).")
def test_keyring(host, course):
    src = _source(course)
    entry = _repository(host, course).entry
    if entry is not None and entry.inline_key:
        # Signed-By holds the armored key itself: show it to gpg on the node, as apt would read it
        keys = host.run('d=$(mktemp -d) && printf %%s %s | gpg --homedir "$d" --batch --show-keys --with-colons; '
                        'rc=$?; rm -rf "$d"; exit $rc', aptsources.inline_key_text(entry))
        where = f"the inline Signed-By key of {entry.file}"
    else:
        # the keyring the entry names (the course's path when the repository is not configured yet)
        keyring = (entry.keyrings[0] if entry is not None and entry.keyrings else src.keyring)
        f = host.file(keyring)
        if not f.exists:
            fail(f"an OpenPGP key in {keyring}", "no such file", what="keyring")
        if keyring.endswith(".gpg"):
            # grep's exit status only: the dearmored key is binary, its bytes are no text to show
            armored = host.run("grep -q -e '-----BEGIN PGP' %s", keyring).rc == 0
            expect_true(not armored, "a dearmored (binary) key", "an armored (text) key: not dearmored",
                        what=keyring)
        # a throwaway GNUPGHOME: gpg would otherwise create ~/.gnupg, and the grader changes nothing
        keys = host.run('d=$(mktemp -d) && gpg --homedir "$d" --batch --show-keys --with-colons %s; rc=$?; '
                        'rm -rf "$d"; exit $rc', keyring)
        where = keyring
    pubs = [ln for ln in keys.stdout.splitlines() if ln.startswith("pub:")]
    expect_true(keys.rc == 0 and bool(pubs), "at least one public key", (keys.stderr.strip() or "no key")[:200],
                what=f"gpg --show-keys {where}")


@check("kubelet, kubeadm and kubectl are installed at the course's version", on="all", points=2,
       hint="Install the pinned version: `sudo apt-get install -y kubelet=\"$KUBELAB_K8S_VERSION-*\" "
            "kubeadm=\"$KUBELAB_K8S_VERSION-*\" kubectl=\"$KUBELAB_K8S_VERSION-*\"` (unhold first if they are held).")
def test_packages_installed(host, course):
    out = host.run("dpkg-query -W -f='${Package} ${db:Status-Abbrev} ${Version}\\n' %s %s %s", *PACKAGES).stdout
    got = {p: "(not installed)" for p in PACKAGES}
    for line in out.splitlines():
        parts = line.split()
        # status "ii" or, once held, "hi": the second letter says installed
        if len(parts) == 3 and parts[0] in got and parts[1][1:2] == "i":
            got[parts[0]] = parts[2].split(":", 1)[-1].rsplit("-", 1)[0]  # upstream part: 1.36.4-1.1 -> 1.36.4
    expect_equal(got, {p: _patch(course) for p in PACKAGES}, what="installed versions (dpkg, upstream part)")


@check("The tools themselves report the course's version", on="all", points=1, needs=["packages_installed"],
       hint="A kubeadm, kubelet or kubectl binary from elsewhere shadows the package's (look at `type -a kubeadm`, "
            "e.g. a copy in /usr/local/bin): remove it.")
def test_tools_report_version(host, course):
    want = "v" + _patch(course)
    got = {"kubeadm": host.run("kubeadm version -o short").stdout.strip() or "(no answer)"}
    try:
        got["kubectl"] = json.loads(host.run("kubectl version --client -o json").stdout)["clientVersion"]["gitVersion"]
    except (ValueError, KeyError, TypeError):
        got["kubectl"] = "(no answer)"
    got["kubelet"] = host.run("kubelet --version").stdout.strip().removeprefix("Kubernetes ") or "(no answer)"
    expect_equal(got, {"kubeadm": want, "kubectl": want, "kubelet": want}, what="kubeadm/kubectl/kubelet version")


@check("The course's other Kubernetes packages are installed (cri-tools: crictl)", on="all", points=1,
       hint="kubeadm >= 1.32 packages no longer depend on cri-tools, so crictl (the CRI client Lab 4 and the hints "
            "use) is installed on its own, from the same repository: `sudo apt-get install -y cri-tools` (unpinned: it "
            "has versions of its own). `command -v crictl` then finds /usr/bin/crictl.")
def test_other_packages(host, course):
    others = [p for p in _source(course).packages if p not in PACKAGES]
    if not others:
        import pytest  # the engine reports pytest.skip as `skipped`

        pytest.skip("course.yaml lists no Kubernetes packages besides kubelet, kubeadm and kubectl")
    out = host.run("dpkg-query -W -f='${Package} ${db:Status-Abbrev}\\n' " + " ".join(["%s"] * len(others)),
                   *others).stdout
    installed = {parts[0] for parts in (line.split() for line in out.splitlines())
                 if len(parts) == 2 and parts[1][1:2] == "i"}  # "ii", or "hi" once held
    expect_equal({p: "installed" if p in installed else "(not installed)" for p in others},
                 dict.fromkeys(others, "installed"), what="dpkg-query -W " + " ".join(others))
    if "cri-tools" in others:
        found = host.run("command -v crictl").stdout.strip()
        expect_true(bool(found), "crictl on PATH (cri-tools installs /usr/bin/crictl)", "(not found)",
                    what="command -v crictl")


@check("kubelet, kubeadm and kubectl are held at their version", on="all", points=1,
       hint="`sudo apt-mark hold kubelet kubeadm kubectl`: an `apt upgrade` must never move the cluster to another "
            "version behind kubeadm's back (upgrades go through `kubeadm upgrade`).")
def test_packages_held(host):
    held = host.run("apt-mark showhold").stdout.split()
    expect_contains(held, PACKAGES, what="apt-mark showhold")


@check("The kubelet service is enabled", on="all", points=1, needs=["packages_installed"],
       hint="`sudo systemctl enable --now kubelet`. Until `kubeadm init`/`join` writes its configuration it "
            "restarts every few seconds: that is expected.")
def test_kubelet_enabled(host):
    expect_equal(host.run("systemctl is-enabled kubelet").stdout.strip() or "(unknown unit)", "enabled",
                 what="systemctl is-enabled kubelet")


@check("The kubelet will register the node with its private IP", on="all", points=1, needs=["packages_installed"],
       hint=f"Vagrant's NAT interface has {NAT_IP} on every VM, and the kubelet picks it unless told otherwise. "
            f"Find this node's address on the course's private subnet (`ip -4 -o addr show to "
            f"$KUBELAB_PRIVATE_SUBNET`) and write `KUBELET_EXTRA_ARGS=--node-ip=<that IP>` to {DEFAULTS}.")
def test_node_ip(host, node):
    f = host.file(DEFAULTS)
    ip = node_ip_arg(extra_args(f.content_string if f.exists else ""))
    expect_equal(ip or "(no --node-ip)", str(node.ip), what=f"--node-ip in KUBELET_EXTRA_ARGS of {DEFAULTS}")
    # the unit systemd loaded must read that file (kubeadm's drop-in does)
    unit = host.run("systemctl cat kubelet").stdout
    reads = [ln.split("=", 1)[1].lstrip("-") for ln in unit.splitlines() if ln.startswith("EnvironmentFile=")]
    expect_contains(reads, [DEFAULTS], what="EnvironmentFile= of the kubelet unit (systemctl cat kubelet)")


@check("containerd's sandbox (pause) image is the one kubeadm expects", on="all", points=1,
       needs=["containerd_active", "packages_installed"],
       hint="Ask kubeadm: `kubeadm config images list --kubernetes-version $KUBELAB_K8S_VERSION | grep pause`. Set it "
            "in /etc/containerd/config.toml (containerd 2.x: `sandbox` under "
            "[plugins.'io.containerd.cri.v1.images'.pinned_images]; 1.x: `sandbox_image` under "
            "[plugins.\"io.containerd.grpc.v1.cri\"]), then `sudo systemctl restart containerd`.")
def test_sandbox_image(host, course):
    images = host.run("kubeadm config images list --kubernetes-version %s", _patch(course))
    pauses = [ln.strip() for ln in images.stdout.splitlines() if "/pause:" in ln]
    expect_true(images.rc == 0 and len(pauses) == 1, "one pause image from kubeadm",
                (images.stderr.strip() or images.stdout.strip() or "no answer")[:200],
                what="kubeadm config images list")
    dump = host.run("sudo -n containerd config dump")
    expect_true(dump.rc == 0, "the merged containerd config", (dump.stderr.strip() or "no answer")[:200],
                what="containerd config dump")
    try:
        got = cc.sandbox_image(cc.parse(dump.stdout))
    except cc.ConfigError as e:
        fail("the merged containerd config", str(e), what="containerd config dump")
    expect_equal(got or "(not set)", pauses[0], what="containerd's sandbox image (containerd config dump)")
