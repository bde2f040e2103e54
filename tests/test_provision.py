"""The provisioning scripts (vagrant/provision-*.sh) run for real on the master and worker lab twins.

Proof: live — real systemd + sshd twins (Debian 12, like the boxes in vagrant/boxes.yaml), provisioned the
way Vagrant's shell provisioner does it: the script uploaded to /tmp/vagrant-shell and run through
`sudo -E -H bash -l` over SSH as the box user, with the environment Vagrant passes. That environment and
the order of the scripts come from `ruby vagrant/kubelab.rb plan`, the same code the Vagrantfile calls
(test_vagrantfile.py checks Vagrant itself sees the same provisioners), so the two cannot drift.

What differs from a VM, and how it is emulated:
- Vagrant's synced folder /vagrant: emulated by COPYING the course folder (the files git tracks or would
  track) into each twin's root file system, owned by the lab user, as rsync-type synced folders do. The
  control plane's public key reaches the worker the way it does with rsync folders: the Vagrantfile's
  trigger copies it from the master's vagrant/.kubelab to the host, and the worker's copy of the folder
  has it when the worker comes up; here the test copies the master's vagrant/.kubelab into the worker's.
- No network beyond the twins: pip installs from a wheelhouse (KUBELAB_WHEELHOUSE, the classroom-mirror
  feature) downloaded once from PyPI on the host and cached under <cache>/wheelhouse/<key of
  pyproject.toml + vagrant/requirements-control-plane.txt + Python>; apt finds the Debian packages already
  in the twin (kubelab/twin/baserootfs.py carries them), as on a box that has them.
- systemd-timesyncd does not run in a container (the host keeps the time): the step says so.
The JupyterLab checks talk to the master twin's private IP from the host (the forwarded port of a VM
ends at the same server); Chromium is Debian's, driven by Playwright.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

import warm_caches
from helpers import kubelab, playwright_chromium
from kubelab.course import load_course

REPO = Path(__file__).resolve().parents[1]
COURSE = load_course(REPO)
USER = COURSE.model.lab_user
MASTER = COURSE.model.control_plane
WORKERS = [n for n in COURSE.model.nodes if n.role != "control-plane"]
PORT = 8888
GUEST_WHEELHOUSE = "vagrant/wheelhouse"  # KUBELAB_WHEELHOUSE as a learner's host would set it
ARTIFACTS_ENV = "KUBELAB_TEST_ARTIFACTS"  # a folder to keep the screenshots in (CI uploads it); else a tmp dir
SNAPSHOT_EXCLUDE = (  # run-time state, not provisioning: logs, runtime files, caches
    "*/.local/share/jupyter/runtime/*", "*/.cache/*", "*.log", "*/__pycache__/*", "/etc/ld.so.cache",
    "*/.jupyter/lab/workspaces/*", "*/.ipython/*", "/home/*/.bash_history", "/etc/.pwd.lock",
)


# -- the provisioning, as Vagrant runs it ------------------------------------------------------------------

def ssh(twins, node: str, command: str, *, input: str | None = None, check: bool = True,
        timeout: float = 120) -> subprocess.CompletedProcess:
    argv = ["ssh", "-F", str(twins.ssh_config_file()), "-o", "BatchMode=yes", "-o", "ConnectTimeout=10",
            node, command]
    p = subprocess.run(argv, input=input, capture_output=True, text=True, timeout=timeout)
    if check:
        assert p.returncode == 0, f"{node}$ {command} -> {p.returncode}: {p.stdout[-2000:]} {p.stderr[-2000:]}"
    return p


def vagrant_quote(value: str) -> str:
    # Vagrant's shell provisioner, quote_and_escape: "..." with " written as "\""
    return '"' + value.replace('"', '"\\""') + '"'


def vagrant_shell(twins, node: str, step: dict, timeout: float = 900) -> subprocess.CompletedProcess:
    """What Vagrant's shell provisioner (privileged: true, path:) does: upload the script as
    /tmp/vagrant-shell, then send `chmod +x ... && K="v" ... /tmp/vagrant-shell` to `sudo -E -H bash -l`."""
    script = (REPO / step["path"]).read_text()
    ssh(twins, node, "cat > /tmp/vagrant-shell", input=script)
    env = " ".join(f"{k}={vagrant_quote(v)}" for k, v in step["env"].items())
    command = f"chmod +x '/tmp/vagrant-shell' && {env} /tmp/vagrant-shell"
    return ssh(twins, node, "sudo -E -H bash -l", input=f"export TERM=vt100\n{command}\nexit $?\n",
               check=False, timeout=timeout)


def plan() -> dict:
    env = {"PATH": os.environ["PATH"], "KUBELAB_WHEELHOUSE": GUEST_WHEELHOUSE}
    p = subprocess.run(["ruby", str(REPO / "vagrant" / "kubelab.rb"), "plan"], capture_output=True, text=True,
                       env=env, timeout=60)
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout)


def steps_of(the_plan: dict, node: str) -> list[dict]:
    return next(n["provisioners"] for n in the_plan["nodes"] if n["name"] == node)


def provision(twins, node: str, the_plan: dict) -> str:
    out = []
    for step in steps_of(the_plan, node):
        p = vagrant_shell(twins, node, step)
        out.append(p.stdout + p.stderr)
        assert p.returncode == 0, f"{step['name']} on {node} failed:\n{p.stdout[-4000:]}\n{p.stderr[-4000:]}"
    return "".join(out)


# -- the synced folder and the wheelhouse ---------------------------------------------------------------------

def _lab_uid_gid(rootfs: Path) -> tuple[int, int]:
    for line in (rootfs / "etc/passwd").read_text().splitlines():
        f = line.split(":")
        if f[0] == USER:
            return int(f[2]), int(f[3])
    raise AssertionError(f"no user {USER} in {rootfs}")


def _chown_tree(path: Path, uid: int, gid: int) -> None:
    os.chown(path, uid, gid)
    for root, dirs, files in os.walk(path):
        for name in dirs + files:
            os.lchown(os.path.join(root, name), uid, gid)


def sync_course_folder(twins, node: str, wheelhouse: Path) -> None:
    """Copy the course folder into the twin's /vagrant (what Vagrant's rsync synced folder does at `up`)."""
    rootfs = twins.paths.node(node).rootfs
    dest = rootfs / "vagrant"
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=REPO,
                            capture_output=True, check=True).stdout.split(b"\0")
    for rel in filter(None, (x.decode() for x in listed)):
        src = REPO / rel
        if src.is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)
    shutil.copytree(wheelhouse, dest / GUEST_WHEELHOUSE, dirs_exist_ok=True)
    _chown_tree(dest, *_lab_uid_gid(rootfs))


def share_control_plane_key(twins) -> None:
    """The Vagrantfile's trigger copies the master's vagrant/.kubelab to the host; the workers' folders get it."""
    src = twins.paths.node(MASTER.name).rootfs / "vagrant" / "vagrant" / ".kubelab"
    assert (src / f"{MASTER.name}.pub").is_file(), "the master did not share its public key"
    for w in WORKERS:
        rootfs = twins.paths.node(w.name).rootfs
        dest = rootfs / "vagrant" / "vagrant" / ".kubelab"
        shutil.copytree(src, dest, dirs_exist_ok=True)
        _chown_tree(dest, *_lab_uid_gid(rootfs))


def twin_python_version(twins) -> str:
    return warm_caches.twin_python_version(twins.paths.node(MASTER.name).rootfs)  # 3.11


@pytest.fixture(scope="module")
def wheelhouse(fresh_twins) -> Path:
    """Wheels for the master's venv, for the twins' Python, downloaded from PyPI once and cached (by
    scripts/test.sh before the suite starts: the test workers have no network)."""
    final = warm_caches.wheelhouse(twin_python_version(fresh_twins))
    print(f"\nwheelhouse: {final}")
    return final


@pytest.fixture(scope="module")
def provisioned(fresh_twins, wheelhouse):
    """Both twins provisioned once, master first (as `vagrant up` does); outputs and timings kept."""
    twins = fresh_twins
    the_plan = plan()
    t0 = time.monotonic()
    for node in COURSE.model.nodes:
        sync_course_folder(twins, node.name, wheelhouse)
    print(f"\ncourse folder and wheelhouse copied into the twins in {time.monotonic() - t0:.0f}s")
    result = {"plan": the_plan, "output": {}, "seconds": {}}
    # `vagrant up worker` before the control plane: the worker cannot trust a key that does not exist yet
    early = vagrant_shell(twins, WORKERS[0].name, steps_of(the_plan, WORKERS[0].name)[0])
    result["worker_first"] = early
    for node in COURSE.model.nodes:
        if node.role != "control-plane":
            share_control_plane_key(twins)
        t0 = time.monotonic()
        result["output"][node.name] = provision(twins, node.name, the_plan)
        result["seconds"][node.name] = time.monotonic() - t0
    for name, out in result["output"].items():
        print(f"\n--- first provisioning of {name} ---\n{out}")
    print(f"\nprovisioning took {', '.join(f'{n} {s:.0f}s' for n, s in result['seconds'].items())}")
    return result


# -- shellcheck (no twins) ----------------------------------------------------------------------------------

def test_provisioning_scripts_are_shellcheck_clean(tmp_path):
    if shutil.which("shellcheck") is None:
        pytest.fail("shellcheck is missing: apt-get install -y shellcheck", pytrace=False)
    scripts = sorted(str(p.relative_to(REPO)) for p in (REPO / "vagrant").glob("*.sh"))
    assert "vagrant/provision-node.sh" in scripts and "vagrant/provision-control-plane.sh" in scripts
    p = subprocess.run(["shellcheck", "-x", *scripts], cwd=REPO, capture_output=True, text=True)
    assert p.returncode == 0, p.stdout
    for s in scripts:
        if s != "vagrant/lib.sh":
            assert "set -euo pipefail" in (REPO / s).read_text(), s
    # the failing case: shellcheck does flag a script with an unquoted expansion
    bad = tmp_path / "bad.sh"
    bad.write_text("#!/usr/bin/env bash\nset -euo pipefail\nrm -rf $1/tmp\n")
    assert subprocess.run(["shellcheck", str(bad)], capture_output=True).returncode != 0


# -- on the twins ------------------------------------------------------------------------------------------------

@pytest.mark.twins
def test_provisioning_runs_on_both_nodes_and_installs_no_kubernetes(provisioned, fresh_twins):
    early = provisioned["worker_first"]
    assert early.returncode == 1
    assert f"the control plane's public key /vagrant/vagrant/.kubelab/{MASTER.name}.pub is missing" in early.stderr
    assert f"vagrant up {MASTER.name}" in early.stderr and "Traceback" not in early.stderr

    out = provisioned["output"]
    assert "no Kubernetes" in out[MASTER.name] and f"control plane {MASTER.name} is ready" in out[MASTER.name]
    assert "from the wheelhouse /vagrant/vagrant/wheelhouse (offline)" in out[MASTER.name]
    for w in WORKERS:
        assert f"node {w.name} is ready" in out[w.name]
        assert "authorized the control plane's key" in out[w.name]
    for node in COURSE.model.nodes:
        p = ssh(fresh_twins, node.name, "for t in kubeadm kubelet kubectl containerd crictl; do "
                "command -v $t || true; done; dpkg-query -W -f='${Package}\\n' 'kube*' 2>/dev/null || true")
        assert p.stdout.strip() == "", f"Kubernetes pieces on {node.name}: {p.stdout}"
        assert ssh(fresh_twins, node.name, "hostname").stdout.strip() == node.name
        assert ssh(fresh_twins, node.name, "sudo -n true").returncode == 0


@pytest.mark.twins
def test_node_ip_is_found_by_subnet_and_exported(provisioned, fresh_twins):
    subnet = str(COURSE.model.network.private_subnet)
    for node in COURSE.model.nodes:
        env = ssh(fresh_twins, node.name, "cat /etc/environment").stdout
        assert f"KUBELAB_NODE_IP={node.ip}\n" in env and f"KUBELAB_NODE_NAME={node.name}\n" in env
        # a login shell (pam_env) has it, whatever the interface is called (host0 in a twin)
        assert ssh(fresh_twins, node.name, "echo $KUBELAB_NODE_IP").stdout.strip() == str(node.ip)
        lib = ". /vagrant/vagrant/lib.sh; node_ip_by_subnet"
        assert ssh(fresh_twins, node.name, f"bash -c '{lib} {subnet}'").stdout.strip() == str(node.ip)
        # the failing case: no address in another subnet (Vagrant's NAT 10.0.2.0/24 on a VM, say)
        assert ssh(fresh_twins, node.name, f"bash -c '{lib} 10.0.2.0/24'", check=False).returncode == 1


def _get(url: str) -> tuple[int, str]:
    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args, **kwargs):
            return None
    opener = urllib.request.build_opener(NoRedirect)
    try:
        with opener.open(url, timeout=15) as r:
            return r.status, ""
    except urllib.error.HTTPError as e:
        return e.code, e.headers.get("Location", "")


def token(twins) -> str:
    # as `kubelab url` and the Vagrantfile's trigger read it: the lab user cats the file
    return ssh(twins, MASTER.name, "cat /etc/kubelab/jupyter-token").stdout.strip()


@pytest.mark.twins
def test_jupyterlab_answers_with_the_token_and_refuses_without(provisioned, fresh_twins):
    t = token(fresh_twins)
    assert re.fullmatch(r"[0-9a-f]{48}", t)
    base = f"http://{MASTER.ip}:{PORT}"
    assert _get(f"{base}/api/status?token={t}")[0] == 200
    assert _get(f"{base}/api/status")[0] == 403
    assert _get(f"{base}/api/status?token={'0' * 48}")[0] == 403
    code, location = _get(f"{base}/lab")
    assert code == 302 and "/login" in location
    mode = ssh(fresh_twins, MASTER.name, "stat -c '%a %U %G' /etc/kubelab/jupyter-token").stdout.split()
    assert mode == ["640", "root", USER]
    assert ssh(fresh_twins, MASTER.name, "systemctl is-enabled kubelab-jupyter.service").stdout.strip() == "enabled"
    # the notebooks' environment: the ssh-config and the course
    env = ssh(fresh_twins, MASTER.name, "systemctl show -p Environment kubelab-jupyter.service").stdout
    assert f"KUBELAB_SSH_CONFIG=/home/{USER}/.kubelab/ssh-config" in env and "KUBELAB_COURSE=/vagrant" in env
    # JupyterLab 4 and nbgrader in the venv, kubelab importable
    versions = ssh(fresh_twins, MASTER.name, "/opt/kubelab/venv/bin/python -c 'import jupyterlab, nbgrader, "
                   "kubelab.notebook; print(jupyterlab.__version__, nbgrader.__version__)'").stdout.split()
    assert versions[0].startswith("4.") and versions[1].startswith("0.9")


@pytest.mark.twins
def test_master_reaches_every_node_over_ssh_with_the_provisioned_key(provisioned, fresh_twins):
    cfg = f"/home/{USER}/.kubelab/ssh-config"
    hosts = re.findall(r"^Host (\S+)", ssh(fresh_twins, MASTER.name, f"cat {cfg}").stdout, re.M)
    assert hosts == [n.name for n in COURSE.model.nodes]
    for node in COURSE.model.nodes:
        p = ssh(fresh_twins, MASTER.name, f"ssh -F {cfg} -o BatchMode=yes {node.name} hostname")
        assert p.stdout.strip() == node.name
    # a terminal in JupyterLab: plain `ssh worker` works through ~/.ssh/config
    w = WORKERS[0].name
    assert ssh(fresh_twins, MASTER.name, f"ssh -o BatchMode=yes {w} whoami").stdout.strip() == USER
    # the key was made on the master, never comes from the repository
    assert ssh(fresh_twins, MASTER.name, "head -1 ~/.ssh/kubelab_ed25519").stdout.startswith("-----BEGIN OPENSSH")
    assert subprocess.run(["git", "check-ignore", "-q", f"vagrant/.kubelab/{MASTER.name}.pub"], cwd=REPO).returncode == 0
    # the failing case: the trust goes one way, a worker cannot log in to the master with any key of its own
    p = ssh(fresh_twins, w, f"ssh -o BatchMode=yes -o StrictHostKeyChecking=no -o ConnectTimeout=5 "
            f"{MASTER.ip} true", check=False)
    assert p.returncode != 0 and "Permission denied" in p.stderr


@pytest.mark.twins
def test_provisioning_leaves_lab1_to_the_learner(provisioned, fresh_twins, tmp_path):
    """Lab 1 teaches swap, /etc/hosts, modules and sysctls: provisioning must not have done any of it."""
    out = tmp_path / "lab01.json"
    p = kubelab("grade", "lab01", "--ssh-config", str(fresh_twins.ssh_config_file()), "--json", str(out),
                "--course", str(REPO))
    assert p.returncode == 1, p.stdout + p.stderr
    failed = {c["id"].split("[")[0] for c in json.loads(out.read_text())["checks"] if c["status"] == "fail"}
    for check in ("swap_off_at_boot", "modules_at_boot", "sysctls_at_boot", "resolves_other_nodes",
                  "resolves_own_name"):
        assert check in failed, f"{check} passes after provisioning: provisioning did Lab 1's work"


def snapshot(twins, node: str) -> dict[str, str]:
    """Path -> checksum, mode and owner of everything under /etc, /opt/kubelab and the lab user's home."""
    prune = " -o ".join(f"-path '{p}'" for p in SNAPSHOT_EXCLUDE)
    cmd = (f"sudo find /etc /opt/kubelab /home/{USER} -xdev \\( {prune} \\) -prune -o -print0 | "
           "sudo xargs -0 stat -c '%n|%a|%U:%G|%F' | sort; "
           f"sudo find /etc /opt/kubelab /home/{USER} -xdev \\( {prune} \\) -prune -o -type f -print0 | "
           "sudo xargs -0 sha256sum | sort")
    lines = ssh(twins, node, cmd, timeout=300).stdout.splitlines()
    return {ln.split("|")[0] if "|" in ln else ln.split(None, 1)[1]: ln for ln in lines}


def _diff(a: dict, b: dict) -> list[str]:
    return sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))


@pytest.mark.twins
def test_a_second_run_changes_nothing_and_says_already(provisioned, fresh_twins):
    twins = fresh_twins
    before = {n.name: snapshot(twins, n.name) for n in COURSE.model.nodes}
    for node in COURSE.model.nodes:
        t0 = time.monotonic()
        out = provision(twins, node.name, provisioned["plan"])
        print(f"second run on {node.name}: {time.monotonic() - t0:.0f}s")
        steps = [ln for ln in out.splitlines() if ln.startswith("kubelab[")]
        doing = [ln for ln in steps if " already: " not in ln and not re.search(
            r"preparing|is ready|answers on port", ln)]
        assert doing == [], f"the second run on {node.name} did something:\n" + "\n".join(doing)
        assert sum(" already: " in ln for ln in steps) >= 5
    after = {n.name: snapshot(twins, n.name) for n in COURSE.model.nodes}
    for node in COURSE.model.nodes:
        assert _diff(before[node.name], after[node.name]) == [], f"{node.name} changed"
    # the failing case: the snapshot does see a change, and provisioning repairs what is missing
    ssh(twins, MASTER.name, "sudo rm /etc/kubelab/jupyter-token")
    out = provision(twins, MASTER.name, provisioned["plan"])
    assert "generating the JupyterLab token" in out and "(re)starting JupyterLab" in out
    changed = _diff(after[MASTER.name], snapshot(twins, MASTER.name))
    assert "/etc/kubelab/jupyter-token" in changed


@pytest.mark.twins
def test_labs_are_copied_once_and_the_learners_work_is_kept(provisioned, fresh_twins):
    twins = fresh_twins
    nb = f"/home/{USER}/labs/lab01/{COURSE.model.lab('lab01').notebook}"
    assert ssh(twins, MASTER.name, f"stat -c %U {nb}").stdout.strip() == USER
    ssh(twins, MASTER.name, f"echo '{{}}' > {nb}.mine && cp {nb}.mine {nb}")  # the learner's work
    out = provision(twins, MASTER.name, provisioned["plan"])
    assert "already: the labs are in" in out
    assert ssh(twins, MASTER.name, f"cat {nb}").stdout.strip() == "{}"
    # the failing case: a deleted notebook comes back (a re-provision restores missing labs only)
    ssh(twins, MASTER.name, f"rm {nb} {nb}.mine")
    out = provision(twins, MASTER.name, provisioned["plan"])
    assert "copied 1 lab file(s)" in out
    assert ssh(twins, MASTER.name, f"cmp {nb} /vagrant/labs/lab01/{COURSE.model.lab('lab01').notebook}").returncode == 0


@pytest.mark.twins
def test_headless_chromium_opens_lab1_in_jupyterlab(provisioned, fresh_twins, tmp_path):
    """A real browser: Debian's Chromium via Playwright opens the Lab 1 notebook; the screenshots are kept in
    $KUBELAB_TEST_ARTIFACTS, else the test's tmp dir, never in the repository (look at them: the notebook is
    rendered, not a login page)."""
    sync_playwright, chromium = playwright_chromium()
    lab = COURSE.model.lab("lab01")
    url = f"http://{MASTER.ip}:{PORT}/lab/tree/labs/lab01/{lab.notebook}"
    artifacts = Path(os.environ.get(ARTIFACTS_ENV) or tmp_path / "artifacts")
    artifacts.mkdir(parents=True, exist_ok=True)
    print(f"screenshots in {artifacts}")
    shot = artifacts / "jupyterlab-lab01.png"
    login_shot = artifacts / "jupyterlab-without-token.png"
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync"]
    with sync_playwright() as pw:
        browser = pw.chromium.launch_persistent_context(
            str(tmp_path / "profile"), executable_path=chromium, headless=True, args=flags,
            viewport={"width": 1400, "height": 900})
        try:
            page = browser.new_page()
            # the failing case first: without the token JupyterLab shows its login page, not the notebook
            page.goto(url, wait_until="domcontentloaded", timeout=60_000)
            page.wait_for_selector("input[type=password], input[name=password]", timeout=30_000)
            page.screenshot(path=str(login_shot))
            assert page.locator(".jp-Notebook").count() == 0
            page.goto(f"{url}?token={token(fresh_twins)}", wait_until="domcontentloaded", timeout=60_000)
            page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=120_000)
            title = lab.title
            page.wait_for_selector(f".jp-Notebook .jp-RenderedMarkdown:has-text('{title}')", timeout=60_000)
            page.wait_for_timeout(1500)  # let the layout settle for the picture
            page.screenshot(path=str(shot))
            assert page.locator(".jp-Notebook .jp-Cell").count() > 3
            # no calls home from the lab VM: JupyterLab's news prompt is off (LabApp.news_url = None)
            assert page.locator("text=get notified about official Jupyter news").count() == 0
            assert lab.notebook in page.title() or page.locator(f"text={lab.notebook}").count() > 0
        finally:
            browser.close()
    assert shot.stat().st_size > 10_000
