"""Lab 2's parsing of containerd and apt facts (kubelab.containerd_config, kubelab.aptfacts).

Proof: recorded evidence — `containerd config default` as printed by Debian's containerd 1.6.20 (bookworm)
and 2.1.9 (sid) on the project's machine (tests/data/containerd/), outputs captured from the lab twins, and
the public captures in ../shared/realdata/containerd-config/ beside the checkout (containerd 1.7 and 2.1.4 with
SystemdCgroup set; read there, not copied: they carry no licence; missing, the test fails saying where it looked)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from helpers import shared_realdata
from kubelab import aptfacts
from kubelab import containerd_config as cc

DATA = Path(__file__).parent / "data" / "containerd"
DEFAULT_16 = (DATA / "config-default-1.6.20-debian.toml").read_text()
DEFAULT_21 = (DATA / "config-default-2.1.9-debian.toml").read_text()


def set_systemd_cgroup(text: str) -> str:
    """What the notebook's sed does: drop any SystemdCgroup line, add one below the runc options header."""
    text = re.sub(r"(?m)^\s*SystemdCgroup\s*=.*\n", "", text)
    return re.sub(r"(?m)^(\s*)(\[plugins\..*\.containerd\.runtimes\.runc\.options\])\s*$",
                  r"\1\2\n\1  SystemdCgroup = true", text)


@pytest.mark.parametrize("text, version, header", [
    (DEFAULT_16, 2, '[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]'),
    (DEFAULT_21, 3, "[plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]"),
])
def test_defaults_have_cgroupfs_and_the_layouts_header(text, version, header):
    cfg = cc.parse(text)
    found = cc.runtime_cgroup(cfg)
    assert found.layout.version == version and found.runtime == "runc" and found.runtime_defined
    assert found.systemd_cgroup is False and not found.ok
    assert found.header == header and header in text  # the header as containerd prints it
    assert cc.cri_disabled_by(cfg) == [] and cc.grpc_address(cfg) == cc.DEFAULT_SOCKET


@pytest.mark.parametrize("text", [DEFAULT_16, DEFAULT_21, re.sub(r"(?m)^.*SystemdCgroup.*\n", "", DEFAULT_21)],
                         ids=["1.6", "2.1.9", "2.1-without-the-key"])
def test_the_notebooks_edit_sets_it_in_every_layout(text):
    edited = set_systemd_cgroup(text)
    cfg = cc.parse(edited)
    assert cc.runtime_cgroup(cfg).ok
    assert edited.count("SystemdCgroup") == 1
    assert cc.misplaced_systemd_cgroup(cfg) == []


def test_the_classic_sed_does_nothing_without_the_key():
    keyless = re.sub(r"(?m)^.*SystemdCgroup.*\n", "", DEFAULT_21)  # as containerd 2.1.0-2.1.4 print it
    after = keyless.replace("SystemdCgroup = false", "SystemdCgroup = true")
    found = cc.runtime_cgroup(cc.parse(after))
    assert after == keyless and found.systemd_cgroup is None and not found.ok


def test_a_table_one_level_too_high_is_reported_where_it_is():
    text = DEFAULT_21.replace("SystemdCgroup = false\n", "").replace(
        "[plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc]\n",
        "[plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc]\n  SystemdCgroup = true\n")
    cfg = cc.parse(text)
    assert cc.runtime_cgroup(cfg).systemd_cgroup is None
    assert cc.misplaced_systemd_cgroup(cfg) == ["[plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc]"]


def test_a_1x_table_in_a_version_3_file_is_misplaced():
    cfg = cc.parse('version = 3\n[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]\n'
                   "  SystemdCgroup = true\n")
    assert cc.misplaced_systemd_cgroup(cfg) == ["[plugins.'io.containerd.grpc.v1.cri'.containerd.runtimes.runc.options]"]
    assert not cc.runtime_cgroup(cfg).ok


def test_the_default_runtime_is_the_one_that_counts():
    text = set_systemd_cgroup(DEFAULT_21).replace("default_runtime_name = 'runc'", "default_runtime_name = 'crun'")
    found = cc.runtime_cgroup(cc.parse(text))
    assert found.runtime == "crun" and not found.runtime_defined and not found.ok


@pytest.mark.parametrize("disabled, expected", [
    ('["cri"]', ["cri"]),                                   # Docker's containerd.io config.toml (version 1)
    ("['io.containerd.grpc.v1.cri']", ["io.containerd.grpc.v1.cri"]),   # the same after 2.x migrated it
    ('["io.containerd.cri.v1.runtime", "io.containerd.snapshotter.v1.btrfs"]', ["io.containerd.cri.v1.runtime"]),
    ('["io.containerd.snapshotter.v1.btrfs"]', []),
])
def test_cri_disabled_by(disabled, expected):
    assert cc.cri_disabled_by(cc.parse(f"version = 3\ndisabled_plugins = {disabled}\n")) == expected


def test_versions_and_unknown_layouts():
    with pytest.raises(cc.ConfigError):
        cc.layout(cc.parse("version = 4\n"))
    with pytest.raises(cc.ConfigError):
        cc.parse("version = \n")
    assert cc.parse_version("containerd github.com/containerd/containerd 1.6.20~ds1 1.6.20~ds1-1+deb12u3\n") \
        == cc.Version(1, 6, 20, "1.6.20~ds1")
    assert cc.parse_version("containerd github.com/containerd/containerd/v2 2.1.9+unknown \n").major == 2
    assert cc.parse_version("containerd containerd.io 2.1.4 05044ec0a9a75232cad458027ca83437aae3f4da").text == "2.1.4"
    assert cc.parse_version("containerd github.com/containerd/containerd/v2 v2.3.0 abc").minor == 3
    with pytest.raises(cc.ConfigError):
        cc.parse_version("bash: containerd: command not found")


PLUGINS_LS = """TYPE                                      ID                       PLATFORMS      STATUS
io.containerd.content.v1                  content                  -              ok
io.containerd.snapshotter.v1              btrfs                    linux/amd64    skip
io.containerd.cri.v1                      images                   -              ok
io.containerd.cri.v1                      runtime                  linux/amd64    ok
io.containerd.podsandbox.controller.v1    podsandbox               -              ok
io.containerd.grpc.v1                     cri                      -              ok
"""


def test_plugin_status():
    assert cc.cri_status(PLUGINS_LS) == "ok"
    assert cc.plugin_status(PLUGINS_LS)[("io.containerd.snapshotter.v1", "btrfs")] == "skip"
    assert cc.cri_status(PLUGINS_LS.replace("grpc.v1                     cri", "grpc.v1 x")) == "not loaded"
    assert cc.cri_status(PLUGINS_LS.replace("-              ok\n", "-              error\n")
                         .replace("images                   -              error", "images - ok")) == "error"


@pytest.mark.parametrize("name, version", [("containerd-1.7_*.toml", 2), ("containerd-2.1.4_*.toml", 3)])
def test_public_captures_with_systemd_cgroup(name, version):
    (path,) = shared_realdata("containerd-config").glob(name)
    cfg = cc.parse(path.read_text())
    found = cc.runtime_cgroup(cfg)
    assert found.layout.version == version and found.ok
    assert cc.cri_disabled_by(cfg) == [] and cc.misplaced_systemd_cgroup(cfg) == []


# -- apt --------------------------------------------------------------------------------------------

POLICY = """containerd:
  Installed: 1.6.20~ds1-1+deb12u3
  Candidate: 1.6.20~ds1-1+deb12u3
  Version table:
 *** 1.6.20~ds1-1+deb12u3 500
        500 http://192.168.56.1:40000/linux/debian bookworm/stable amd64 Packages
        100 /var/lib/dpkg/status
     1.6.20~ds1-1 500
        500 http://deb.debian.org/debian bookworm/main amd64 Packages
"""


def test_apt_policy():
    p = aptfacts.apt_policy(POLICY)
    assert p.installed == "1.6.20~ds1-1+deb12u3"
    assert p.sources["1.6.20~ds1-1+deb12u3"] == ["http://192.168.56.1:40000/linux/debian", "/var/lib/dpkg/status"]
    assert aptfacts.installed_from(p, "http://192.168.56.1:40000/linux/debian")
    assert not aptfacts.installed_from(p, "http://deb.debian.org/debian")
    none = aptfacts.apt_policy("containerd.io:\n  Installed: (none)\n  Candidate: 2.1.4-1\n  Version table:\n")
    assert none.installed is None and not aptfacts.installed_from(none, "http://x")
    assert aptfacts.apt_policy("").installed is None


def test_sandbox_image_is_read_from_each_layouts_own_key():
    """Lab 3 compares this with kubeadm's pause image. A 2.x config with a leftover 1.x `sandbox_image`
    (ignored by containerd 2.x) must not count."""
    assert cc.sandbox_image(cc.parse(DEFAULT_16)) == "registry.k8s.io/pause:3.6"
    assert cc.sandbox_image(cc.parse(DEFAULT_21)) == "registry.k8s.io/pause:3.10"
    edited = DEFAULT_21.replace("sandbox = 'registry.k8s.io/pause:3.10'", "sandbox = 'registry.k8s.io/pause:3.10.1'")
    assert cc.sandbox_image(cc.parse(edited)) == "registry.k8s.io/pause:3.10.1"
    stale = 'version = 3\n[plugins."io.containerd.grpc.v1.cri"]\nsandbox_image = "registry.k8s.io/pause:3.10.1"\n'
    assert cc.sandbox_image(cc.parse(stale)) is None
