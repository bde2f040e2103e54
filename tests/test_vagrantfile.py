"""The Vagrantfile with the real Vagrant from Debian's archive (`vagrant`, `vagrant-libvirt`): no VM is started.

Proof, per provider (boxes are never downloaded; `vagrant validate` and `vagrant status` need none):
- libvirt: live — Debian's vagrant-libvirt plugin validates its own provider options and our checks.
- virtualbox: live Vagrant, `vagrant validate --ignore-provider` — VirtualBox itself is not in Debian 12,
  and without VBoxManage Vagrant calls the provider unusable; the option is Vagrant's own way of
  validating everything else (our checks, network, provisioners) with the provider mocked.
- vmware_desktop, parallels: their plugins are not in Debian's archive. A home Vagrantfile (VAGRANT_HOME)
  registers stand-ins that accept exactly the provider options the plugins document and that this
  Vagrantfile uses (vmware: vmx, gui; parallels: name, cpus, memory): a misspelled option fails, and
  Vagrant runs our checks for that provider. That the real plugins accept them is from their docs.
- Which box each provider gets per architecture, the forwarded port, synced folders and provisioners are
  read from Vagrant's own evaluation of the Vagrantfile (Vagrant::Vagrantfile#machine_config, the API
  `vagrant up` uses), not re-derived here.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
PROVIDERS = ("virtualbox", "libvirt", "vmware_desktop", "parallels")

# The stand-ins for the two providers whose plugins Debian does not ship (see the module docstring).
PROVIDER_STANDINS = '''
module KubelabTestStandins
  class VmwareConfig < Vagrant.plugin("2", :config)
    attr_accessor :gui, :linked_clone
    def vmx; @vmx ||= {}; end
  end
  class ParallelsConfig < Vagrant.plugin("2", :config)
    attr_accessor :name, :cpus, :memory, :linked_clone, :update_guest_tools
  end
  class Provider < Vagrant.plugin("2", :provider)
    def initialize(machine); @machine = machine; end
    def self.usable?(raise_error = false); true; end
    def self.installed?; true; end
    def state; Vagrant::MachineState.new(:not_created, "not created", "stand-in provider"); end
  end
  class Plugin < Vagrant.plugin("2")
    name "kubelab test stand-ins for vmware_desktop and parallels"
    config(:vmware_desktop, :provider) { VmwareConfig }
    config(:parallels, :provider) { ParallelsConfig }
    provider(:vmware_desktop, box_format: "vmware_desktop") { Provider }
    provider(:parallels) { Provider }
  end
end
'''

# Vagrant's own view of every machine for every provider, as JSON (run with the system ruby + Debian's vagrant).
MACHINE_CONFIG_RB = r'''
require "json"
require "vagrant"
env = Vagrant::Environment.new(cwd: Dir.pwd)
out = {}
env.vagrantfile.machine_names.each do |name|
  out[name] = {}
  %i[virtualbox libvirt vmware_desktop parallels].each do |provider|
    c = env.vagrantfile.machine_config(name, provider, env.boxes, nil, false)[:config]
    pc = c.vm.get_provider_config(provider)
    out[name][provider] = {
      "box" => c.vm.box,
      "hostname" => c.vm.hostname,
      "networks" => c.vm.networks.map { |type, opts| [type.to_s, opts.reject { |k, _| k == :protocol }] },
      "synced_folders" => c.vm.synced_folders.transform_values { |o| { "type" => o[:type].to_s, "guestpath" => o[:guestpath] } },
      "provisioners" => c.vm.provisioners.map { |p| { "name" => p.name.to_s, "type" => p.type.to_s,
        "path" => p.config.path, "env" => p.config.env, "privileged" => p.config.privileged } },
      "cpus" => (pc.respond_to?(:cpus) ? pc.cpus : nil),
      "memory" => (pc.respond_to?(:memory) ? pc.memory : nil),
      "vmx" => (pc.respond_to?(:vmx) ? pc.vmx : nil),
    }
  end
end
puts JSON.generate(out)
'''


@pytest.fixture(scope="module")
def tools():
    missing = [t for t in ("vagrant", "ruby") if shutil.which(t) is None]
    if missing:
        pytest.fail(f"{', '.join(missing)} not found: apt-get install -y --no-install-recommends vagrant vagrant-libvirt",
                    pytrace=False)
    plugins = subprocess.run(["vagrant", "plugin", "list"], capture_output=True, text=True,
                             env={**os.environ, "VAGRANT_CHECKPOINT_DISABLE": "1"}, timeout=120)
    if "vagrant-libvirt" not in plugins.stdout:
        pytest.fail("the vagrant-libvirt plugin is missing: apt-get install -y --no-install-recommends vagrant-libvirt",
                    pytrace=False)


@pytest.fixture(scope="module")
def vagrant_home(tmp_path_factory, tools):
    home = tmp_path_factory.mktemp("vagrant.d")
    (home / "Vagrantfile").write_text(PROVIDER_STANDINS)
    return home


def course_copy(tmp_path: Path, mutate=None, local_boxes: dict | None = None) -> Path:
    """The Vagrantfile, vagrant/ and course.yaml in a temporary folder (the repository is never touched)."""
    root = tmp_path / "course"
    root.mkdir(parents=True)
    shutil.copy(REPO / "Vagrantfile", root)
    shutil.copytree(REPO / "vagrant", root / "vagrant",
                    ignore=shutil.ignore_patterns(".kubelab", "boxes.local.yaml", "wheelhouse"))
    data = yaml.safe_load((REPO / "course.yaml").read_text())
    if mutate:
        mutate(data)
    (root / "course.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    if local_boxes is not None:
        (root / "vagrant" / "boxes.local.yaml").write_text(yaml.safe_dump({"boxes": local_boxes}))
    return root


def run_vagrant(args: list[str], cwd: Path, home: Path, provider: str | None = None,
                env: dict | None = None) -> subprocess.CompletedProcess:
    full = {k: v for k, v in os.environ.items() if not k.startswith(("VAGRANT_", "KUBELAB_"))}
    full.update({"VAGRANT_HOME": str(home), "VAGRANT_CHECKPOINT_DISABLE": "1", "VAGRANT_NO_COLOR": "1"})
    if provider:
        full["VAGRANT_DEFAULT_PROVIDER"] = provider
    full.update(env or {})
    return subprocess.run(["vagrant", *args], cwd=cwd, env=full, capture_output=True, text=True, timeout=180)


def validate(root: Path, home: Path, provider: str, env: dict | None = None) -> subprocess.CompletedProcess:
    # VirtualBox cannot be installed here, so Vagrant must be told to mock it (see the module docstring)
    args = ["validate", "--ignore-provider"] if provider == "virtualbox" else ["validate"]
    return run_vagrant(args, root, home, provider, env)


def machine_configs(root: Path, home: Path, env: dict | None = None) -> dict:
    full = {k: v for k, v in os.environ.items() if not k.startswith(("VAGRANT_", "KUBELAB_"))}
    full.update({"VAGRANT_HOME": str(home), "VAGRANT_CHECKPOINT_DISABLE": "1", **(env or {})})
    p = subprocess.run(["ruby", "-e", MACHINE_CONFIG_RB], cwd=root, env=full, capture_output=True, text=True,
                       timeout=180)
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout.strip().splitlines()[-1])


def assert_one_line_abort(p: subprocess.CompletedProcess, *fragments: str) -> None:
    assert p.returncode == 1, p
    lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("kubelab: "), p.stderr
    assert "Traceback" not in p.stderr and ".rb:" not in p.stderr and "from /" not in p.stderr
    for f in fragments:
        assert f in lines[0], lines[0]


# -- every provider's configuration validates ------------------------------------------------------------

@pytest.mark.parametrize("provider", PROVIDERS)
def test_vagrant_validate_each_provider(provider, tmp_path, vagrant_home):
    p = validate(course_copy(tmp_path), vagrant_home, provider)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "Vagrantfile validated successfully" in p.stdout


def test_a_misspelled_provider_option_is_caught_by_the_standins(tmp_path, vagrant_home):
    """The failing case for the stand-in providers: they reject an option the real plugin does not have."""
    root = course_copy(tmp_path)
    vf = root / "Vagrantfile"
    vf.write_text(vf.read_text().replace("p.vmx[\"numvcpus\"] = node.cpus.to_s", "p.numvcpus = node.cpus"))
    p = validate(root, vagrant_home, "vmware_desktop")
    assert p.returncode != 0 and "numvcpus" in p.stdout + p.stderr


# -- machines come from course.yaml ------------------------------------------------------------------------

def _add_worker2(data):
    data["nodes"].append({"name": "worker2", "role": "worker", "ip": "192.168.56.12", "cpus": 1, "memory_mb": 1024})


def test_three_nodes_in_course_yaml_are_three_machines(tmp_path, vagrant_home):
    p = run_vagrant(["status"], course_copy(tmp_path, _add_worker2), vagrant_home, "libvirt")
    assert p.returncode == 0, p.stderr
    listed = [ln.split()[0] for ln in p.stdout.splitlines() if "not created (libvirt)" in ln]
    assert listed == ["master", "worker", "worker2"]
    # and the repository's own course: two
    p = run_vagrant(["status"], course_copy(tmp_path / "two"), vagrant_home, "libvirt")
    assert [ln.split()[0] for ln in p.stdout.splitlines() if "not created" in ln] == ["master", "worker"]


def test_machines_get_names_ips_resources_port_and_provisioning_from_course_yaml(tmp_path, vagrant_home):
    def bigger(data):
        _add_worker2(data)
        data["nodes"][0]["cpus"] = 3
        data["nodes"][0]["memory_mb"] = 5120
    root = course_copy(tmp_path, bigger)
    conf = machine_configs(root, vagrant_home)
    assert list(conf) == ["master", "worker", "worker2"]
    plan = json.loads(subprocess.run(["ruby", "vagrant/kubelab.rb", "plan"], cwd=root, capture_output=True,
                                     text=True, check=True, env={"PATH": os.environ["PATH"]}).stdout)
    for node in plan["nodes"]:
        for provider in PROVIDERS:
            c = conf[node["name"]][provider]
            assert c["hostname"] == node["name"]
            private = [o for t, o in c["networks"] if t == "private_network"]
            assert [o["ip"] for o in private] == [node["ip"]]
            ports = [o for t, o in c["networks"] if t == "forwarded_port" and o.get("id") == "jupyterlab"]
            if node["role"] == "control-plane":
                assert len(ports) == 1 and ports[0]["guest"] == 8888 and ports[0]["host"] == 8888
                assert ports[0]["host_ip"] == "127.0.0.1"
            else:
                assert ports == []
            # the provisioners are exactly the plan the twins test runs (vagrant/kubelab.rb): no drift
            assert [{k: p[k] for k in ("name", "path", "env")} for p in c["provisioners"]] == \
                [{"name": s["name"], "path": s["path"], "env": s["env"]} for s in node["provisioners"]]
            assert all(p["type"] == "shell" and p["privileged"] for p in c["provisioners"])
            folder = c["synced_folders"]["/vagrant"]
            assert folder["guestpath"] == "/vagrant"
            assert folder["type"] == ("rsync" if provider == "libvirt" else "")
        assert conf[node["name"]]["libvirt"]["cpus"] == node["cpus"]
        assert conf[node["name"]]["libvirt"]["memory"] == node["memory_mb"]
        assert conf[node["name"]]["parallels"]["cpus"] == node["cpus"]
        assert conf[node["name"]]["vmware_desktop"]["vmx"]["memsize"] == str(node["memory_mb"])
    assert conf["master"]["libvirt"]["cpus"] == 3 and conf["master"]["libvirt"]["memory"] == 5120
    names = [p["name"] for p in conf["master"]["libvirt"]["provisioners"]]
    assert names == ["kubelab-node", "kubelab-control-plane"]
    assert [p["name"] for p in conf["worker"]["libvirt"]["provisioners"]] == ["kubelab-node"]
    env = conf["worker2"]["libvirt"]["provisioners"][0]["env"]
    assert env["KUBELAB_NODES"] == "master=192.168.56.10 worker=192.168.56.11 worker2=192.168.56.12"
    assert env["KUBELAB_NODE_IP"] == "192.168.56.12" and env["KUBELAB_CONTROL_PLANE_NAME"] == "master"


# -- the box map --------------------------------------------------------------------------------------------

EXPECTED_BOXES = {
    ("virtualbox", "amd64"): "bento/debian-12",
    ("libvirt", "amd64"): "debian/bookworm64",
    ("vmware_desktop", "amd64"): "bento/debian-12",
    ("parallels", "amd64"): "bento/debian-12",
    ("vmware_desktop", "arm64"): "bento/debian-12",
    ("parallels", "arm64"): "bento/debian-12",
}


@pytest.mark.parametrize("arch", ["amd64", "arm64"])
def test_box_map_chooses_the_box_per_provider_and_arch(arch, tmp_path, vagrant_home):
    conf = machine_configs(course_copy(tmp_path), vagrant_home, {"KUBELAB_ARCH": arch})
    for provider in PROVIDERS:
        expected = EXPECTED_BOXES.get((provider, arch), f"kubelab/no-box-for-{provider}-{arch}")
        assert conf["master"][provider]["box"] == expected, (provider, arch)
        assert conf["worker"][provider]["box"] == expected, (provider, arch)


def test_box_overrides_env_then_local_file(tmp_path, vagrant_home):
    root = course_copy(tmp_path, local_boxes={"libvirt": {"amd64": "generic/debian12"},
                                              "virtualbox": {"arm64": "my/debian-12-arm"}})
    conf = machine_configs(root, vagrant_home, {"KUBELAB_ARCH": "amd64"})
    assert conf["master"]["libvirt"]["box"] == "generic/debian12"
    assert conf["master"]["vmware_desktop"]["box"] == "bento/debian-12"  # untouched entries stay
    conf = machine_configs(root, vagrant_home, {"KUBELAB_ARCH": "arm64"})
    assert conf["worker"]["virtualbox"]["box"] == "my/debian-12-arm"
    conf = machine_configs(root, vagrant_home, {"KUBELAB_BOX": "example/debian", "KUBELAB_ARCH": "arm64"})
    assert {conf[m][p]["box"] for m in conf for p in PROVIDERS} == {"example/debian"}


def test_a_provider_without_a_box_for_this_arch_stops_with_the_fix(tmp_path, vagrant_home):
    root = course_copy(tmp_path)
    p = validate(root, vagrant_home, "libvirt", {"KUBELAB_ARCH": "arm64"})
    assert p.returncode == 1
    assert "no Debian 12 box is known for provider libvirt on arm64 hosts" in p.stderr
    assert "vmware_desktop or parallels" in p.stderr and "KUBELAB_BOX" in p.stderr
    assert "Traceback" not in p.stderr
    # the same host with a provider that has an arm64 box: fine, if this Vagrant can pick a box's architecture
    p = validate(root, vagrant_home, "parallels", {"KUBELAB_ARCH": "arm64"})
    if vagrant_version() >= (2, 4, 0):
        assert p.returncode == 0, p.stderr
    else:  # Debian 12 ships 2.3.4: it would download the amd64 build of the multi-architecture box
        assert p.returncode == 1 and "cannot pick the arm64 build of box bento/debian-12" in p.stderr
        assert "Vagrant 2.4.0 or newer" in p.stderr
    # with a box of the user's own choice, any Vagrant
    assert validate(root, vagrant_home, "libvirt", {"KUBELAB_ARCH": "arm64", "KUBELAB_BOX": "x/y"}).returncode == 0
    assert validate(root, vagrant_home, "parallels", {"KUBELAB_ARCH": "arm64", "KUBELAB_BOX": "x/y"}).returncode == 0


def vagrant_version() -> tuple[int, ...]:
    out = subprocess.run(["vagrant", "--version"], capture_output=True, text=True,
                         env={**os.environ, "VAGRANT_CHECKPOINT_DISABLE": "1"}).stdout
    return tuple(int(x) for x in out.split()[-1].split(".")[:3])


def test_host_arch_detection_and_override():
    def arch(env):
        p = subprocess.run(["ruby", "-r", str(REPO / "vagrant" / "kubelab.rb"), "-e", "puts Kubelab.host_arch"],
                           capture_output=True, text=True, env={"PATH": os.environ["PATH"], **env})
        return p.returncode, p.stdout.strip(), p.stderr.strip()
    machine = subprocess.run(["uname", "-m"], capture_output=True, text=True).stdout.strip()
    assert arch({}) == (0, {"x86_64": "amd64", "aarch64": "arm64"}[machine], "")
    assert arch({"KUBELAB_ARCH": "aarch64"})[1] == "arm64"
    assert arch({"KUBELAB_ARCH": "x86_64"})[1] == "amd64"
    rc, _, err = arch({"KUBELAB_ARCH": "sparc"})
    assert rc != 0 and "KUBELAB_ARCH" in err


# -- kubeadm's minimums, the VirtualBox network range, broken input ------------------------------------

@pytest.mark.parametrize("key,value,message", [
    ("cpus", 1, "needs at least 2 CPUs (kubeadm preflight), it has 1"),
    ("memory_mb", 1024, "needs at least 2048 MB (kubeadm preflight), it has 1024"),
])
def test_a_control_plane_below_kubeadm_minimums_aborts(key, value, message, tmp_path, vagrant_home):
    def shrink(data):
        data["nodes"][0][key] = value
    p = validate(course_copy(tmp_path, shrink), vagrant_home, "libvirt")
    assert_one_line_abort(p, f"nodes[master].{key}", message, "(fix: set ")
    # a worker may be that small
    def small_worker(data):
        data["nodes"][1][key] = value
    assert validate(course_copy(tmp_path / "w", small_worker), vagrant_home, "libvirt").returncode == 0


@pytest.mark.parametrize("breakage,fragments", [
    ("nodes:\n  - name: master\n   role: control-plane\n", ("not valid YAML", "line ")),
    ("ip", ("nodes[worker].ip", "is not a host address of network.private_subnet 192.168.56.0/24")),
    ("role", ("exactly one node must have role control-plane, found 2",)),
    ("missing", ("course.yaml: network", "is missing")),
])
def test_a_broken_course_yaml_aborts_with_one_line(breakage, fragments, tmp_path, vagrant_home):
    def mutate(data):
        if breakage == "ip":
            data["nodes"][1]["ip"] = "10.0.0.5"
        elif breakage == "role":
            data["nodes"][1]["role"] = "control-plane"
        elif breakage == "missing":
            del data["network"]
    root = course_copy(tmp_path, None if breakage.startswith("nodes:") else mutate)
    if breakage.startswith("nodes:"):
        text = (root / "course.yaml").read_text()
        (root / "course.yaml").write_text(text.replace("nodes:\n", breakage, 1))
    for args in (["validate"], ["status"]):
        assert_one_line_abort(run_vagrant(args, root, vagrant_home, "libvirt"), *fragments)


def test_virtualbox_refuses_a_subnet_outside_its_host_only_range(tmp_path, vagrant_home):
    def other_subnet(data):
        data["network"]["private_subnet"] = "10.10.0.0/24"
        data["nodes"][0]["ip"] = "10.10.0.10"
        data["nodes"][1]["ip"] = "10.10.0.11"
    root = course_copy(tmp_path, other_subnet)
    p = validate(root, vagrant_home, "virtualbox")
    assert p.returncode == 1 and "outside the host-only ranges VirtualBox allows" in p.stderr
    assert "/etc/vbox/networks.conf" in p.stderr
    assert validate(root, vagrant_home, "libvirt").returncode == 0  # other providers do not care
    assert validate(course_copy(tmp_path / "ok"), vagrant_home, "virtualbox").returncode == 0


def test_wheelhouse_must_be_inside_the_course_folder(tmp_path, vagrant_home):
    root = course_copy(tmp_path)
    plan = subprocess.run(["ruby", "vagrant/kubelab.rb", "plan"], cwd=root, capture_output=True, text=True,
                          env={"PATH": os.environ["PATH"], "KUBELAB_WHEELHOUSE": "vagrant/wheelhouse"})
    env = json.loads(plan.stdout)["nodes"][0]["provisioners"][1]["env"]
    assert env["KUBELAB_WHEELHOUSE"] == "/vagrant/vagrant/wheelhouse"
    p = validate(root, vagrant_home, "libvirt", {"KUBELAB_WHEELHOUSE": "/srv/wheels"})
    assert_one_line_abort(p, "KUBELAB_WHEELHOUSE", "outside the course folder")


# -- what runs on the host after the control plane is up -----------------------------------------------------

TRIGGER_RB = r'''
require "json"
require "vagrant"
load File.join(Dir.pwd, "Vagrantfile") rescue nil  # defines COURSE and KubelabVagrant as `vagrant` would
Fake = Struct.new(:name, :files, :said) do
  def communicate; self; end
  def ui; self; end
  def execute(cmd, opts = {})
    path = cmd.delete_prefix("cat ")
    return 1 unless files.key?(path)
    yield :stdout, files[path]
    0
  end
  %i[info warn success detail].each { |lvl| define_method(lvl) { |msg| said << "#{lvl}: #{msg}" } }
end
files = JSON.parse(ARGV[0])
m = Fake.new(:master, files, [])
KubelabVagrant.after_control_plane_up(m)
puts JSON.generate(m.said)
'''


def test_control_plane_trigger_shares_the_key_and_prints_the_url(tmp_path, vagrant_home):
    """The trigger's Ruby with a stand-in machine (its communicator answers `cat` from a dict): proof of
    the host side only; the Vagrantfile registering it as `after [:up, :provision, :reload]` on the
    control plane is what `vagrant validate` accepts above."""
    root = course_copy(tmp_path)
    pub = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFakeKeyForTheTest kubelab-master"
    env = {"PATH": os.environ["PATH"], "VAGRANT_HOME": str(vagrant_home), "VAGRANT_CHECKPOINT_DISABLE": "1"}

    def run(files):
        p = subprocess.run(["ruby", "-e", TRIGGER_RB, json.dumps(files)], cwd=root, env=env, capture_output=True,
                           text=True, timeout=120)
        assert p.returncode == 0, p.stderr
        return json.loads(p.stdout.strip().splitlines()[-1])

    said = run({"/vagrant/vagrant/.kubelab/master.pub": pub + "\n", "/etc/kubelab/jupyter-token": "abc123def456\n"})
    assert (root / "vagrant" / ".kubelab" / "master.pub").read_text() == pub + "\n"
    assert any("copied master's public SSH key" in s for s in said)
    assert "success: kubelab: JupyterLab is at http://127.0.0.1:8888/lab?token=abc123def456" in said
    assert any("labs/lab01/lab01_prepare_nodes.ipynb" in s for s in said)
    # again: the key is already there, nothing is written
    said = run({"/vagrant/vagrant/.kubelab/master.pub": pub, "/etc/kubelab/jupyter-token": "abc123def456"})
    assert not any("copied" in s for s in said)
    # a re-created control plane (new key): the host copy is replaced and the workers must re-trust it
    said = run({"/vagrant/vagrant/.kubelab/master.pub": pub.replace("Fake", "Anew"),
                "/etc/kubelab/jupyter-token": "abc123def456"})
    assert "Anew" in (root / "vagrant" / ".kubelab" / "master.pub").read_text()
    assert "warn: kubelab: master has a new SSH key: run `vagrant reload worker --provision` so the other " \
           "nodes trust it" in said
    # the failing case: not provisioned yet (`vagrant up --no-provision`): a hint, not a broken link
    said = run({})
    assert said == ["warn: kubelab: JupyterLab is not provisioned on master yet: run `vagrant provision master`"]
