"""Lab 7 — etcd: the grader and the notebook's commands against etcd and the API server of a real cluster, and the
parsing behind the grader.

Kinds of proof, named in every test's docstring:

- "real 1.20 cluster on twins" (the session's `shared_cluster`: kubeadm v1.20.2, etcd server 3.5.30 from Debian,
  etcdctl 3.4.23 on the master): the solution's steps applied for real — the ConfigMap, the answers recorded with
  the notebook's own record_answer(), a snapshot, the notebook's own encryption cell (its sed on kubeadm's
  kube-apiserver.yaml, the kubelet restarting the API server), a Secret created after — graded, and one realistic
  mistake per check applied for real and graded: etcdctl missing, the ConfigMap in the wrong namespace, a revision
  recorded before the ConfigMap changed, the cluster ID recorded as the member ID, a snapshot older than the
  ConfigMap, a cut-short snapshot, no encryption flag, `identity` first in the EncryptionConfiguration, a Secret
  created before encryption and never rewritten. The cluster is put back in a `finally` (order matters: the
  namespace with the encrypted Secrets is deleted while the API server can still decrypt, then the original
  manifest returns, then the API server is waited for).
  The twins have etcdctl 3.4 and no etcdutl: there the grader checks the snapshot with `etcdctl snapshot status`,
  the command etcd <= 3.5 has (asserted below, so a twin that gains etcdutl shows up).
- "simulation on modelled output": what only etcd 3.6 prints (`etcdutl snapshot status -w json` with its
  `version` field; etcdctl 3.6 without `snapshot status`), EncryptionConfiguration variants and value headers,
  written from etcd's and Kubernetes' docs (etcd v3.6 "How to save the database"; Kubernetes "Encrypting
  Confidential Data at Rest": `k8s:enc:aescbc:v1:key1:`), parsed by kubelab.etcdfacts.
"""

from __future__ import annotations

import base64
import json
import os
import shlex
import stat
import subprocess
from pathlib import Path

import nbformat
import pytest

from helpers import by_check, environ, grade_live, load_grader, on_node, wait_for
from kubelab.etcdfacts import (NotAConfig, encryption_providers, member_id_matches, snapshot_status, stored_form,
                                stored_form_shown)
from kubelab.evidence import comparable, replay_lab

REPO = Path(__file__).resolve().parents[1]
LAB = "lab07"
NS, CM, SECRET = "lab07-etcd", "app-config", "app-secret"
SNAPSHOT = "/var/lib/kubelab/etcd-snapshot.db"
ENC_DIR = "/etc/kubernetes/enc"
MANIFEST = "/etc/kubernetes/manifests/kube-apiserver.yaml"
KUBECTL = "kubectl --kubeconfig=/etc/kubernetes/admin.conf"
PKI = "/etc/kubernetes/pki"
ETCDCTL_FLAGS = (f"--endpoints=https://127.0.0.1:2379 --cacert={PKI}/etcd/ca.crt "
                 f"--cert={PKI}/apiserver-etcd-client.crt --key={PKI}/apiserver-etcd-client.key")
ETCDCTL = f"etcdctl {ETCDCTL_FLAGS}"
HIDDEN_ETCDCTL = "/usr/bin/etcdctl.lab07-hidden"
live = pytest.mark.cluster  # the tests that use the real cluster (the twins marker comes with shared_cluster)


# a new 32-byte key per run (aescbc and secretbox take exactly 32 bytes here; another length stops the API server)
KEY_B64 = base64.b64encode(os.urandom(32)).decode()


def enc_config(providers: list[str]) -> str:
    keys = {"aescbc": KEY_B64, "secretbox": KEY_B64}
    lines = ["apiVersion: apiserver.config.k8s.io/v1", "kind: EncryptionConfiguration", "resources:",
             "  - resources:", "      - secrets", "    providers:"]
    for p in providers:
        if p == "identity":
            lines.append("      - identity: {}")
        else:
            lines += [f"      - {p}:", "          keys:", "            - name: key1", f"              secret: {keys[p]}"]
    return "\n".join(lines) + "\n"


# -------------------------------------------------------------------------------------------------
# parsing (no twins)
# -------------------------------------------------------------------------------------------------

def test_encryption_providers_in_order_for_secrets():
    """simulation on modelled output (the docs' EncryptionConfiguration): the provider order of the entry covering
    Secrets; identity first is read as such; wildcards cover Secrets; other kinds and versions are refused."""
    assert encryption_providers(enc_config(["aescbc", "identity"])) == ["aescbc", "identity"]
    assert encryption_providers(enc_config(["identity", "aescbc"])) == ["identity", "aescbc"]
    assert encryption_providers(enc_config(["secretbox"])) == ["secretbox"]
    star = enc_config(["aescbc"]).replace("- secrets", "- '*.*'")
    assert encryption_providers(star) == ["aescbc"]
    only_cm = enc_config(["aescbc"]).replace("- secrets", "- configmaps")
    assert encryption_providers(only_cm) == []
    with pytest.raises(NotAConfig, match="EncryptionConfig"):
        encryption_providers(enc_config(["aescbc"]).replace("EncryptionConfiguration", "EncryptionConfig"))
    with pytest.raises(NotAConfig, match="apiVersion"):
        encryption_providers("apiVersion: v1\nkind: EncryptionConfiguration\nresources: []\n")
    with pytest.raises(NotAConfig, match="not YAML"):
        encryption_providers("resources: [\n")


def test_stored_form_reads_the_value_header():
    """simulation on modelled output: `k8s:enc:aescbc:v1:key1:` + ciphertext (Kubernetes docs, "Verifying that data
    is encrypted"), `k8s\\0` + protobuf (seen on the twins, see the live test), JSON, nothing."""
    enc = stored_form(b"k8s:enc:aescbc:v1:key1:\x8f\x02\x11" + bytes(range(20)))
    assert (enc.kind, enc.provider, enc.key_name) == ("encrypted", "aescbc", "key1")
    assert stored_form(b"k8s:enc:secretbox:v1:k2:abc").provider == "secretbox"
    assert stored_form(b"k8s\x00\n\x0c\n\x02v1\x12\x06Secret").kind == "protobuf"
    assert stored_form(b'{"kind":"Secret"}').kind == "json"
    assert stored_form(b"").kind == "empty"
    assert stored_form(b"\x00\x01garbage").kind == "unknown"
    # the grader's printable form (tr -c '[:alnum:]:{' '.' | cut -d: -f1-5 on the node)
    shown = stored_form_shown("k8s:enc:aescbc:v1:key1\n")
    assert (shown.kind, shown.provider, shown.key_name) == ("encrypted", "aescbc", "key1")
    assert stored_form_shown("k8s..n..v1..Secret..x").kind == "protobuf"
    assert stored_form_shown("").kind == "empty" and stored_form_shown("{.kind").kind == "json"


def test_snapshot_status_of_etcdutl_36_and_etcdctl_34():
    """simulation on modelled output: etcdutl 3.6's `snapshot status -w json` (hash, revision, totalKey, totalSize,
    version — etcd's snapshot Status struct) and etcdctl 3.4's (no version); anything else is refused."""
    st = snapshot_status('{"hash":3377049920,"revision":9132,"totalKey":1203,"totalSize":5939200,"version":"3.6.0"}')
    assert (st.revision, st.total_keys, st.version) == (9132, 1203, "3.6.0")
    old = snapshot_status('{"hash":12345,"revision":880,"totalKey":412,"totalSize":2220032}')
    deprecated = snapshot_status('Deprecated: Use `etcdutl snapshot status` instead.\n\n'
                                 '{"hash":1,"revision":4727,"totalKey":971,"totalSize":2400000}\n')  # etcdctl 3.5
    assert deprecated.revision == 4727
    assert (old.revision, old.total_keys, old.version) == (880, 412, "")
    for bad in ('{"header":{}}', "[]"):
        with pytest.raises(ValueError):
            snapshot_status(bad)
    with pytest.raises(ValueError):
        snapshot_status("Error: snapshot file integrity check failed")


def test_member_id_as_the_learner_may_write_it():
    """simulation: the member ID in hex (member list's table), with 0x or leading zeros, or in decimal (-w json)."""
    mid = 0x8e9e05c52164694d
    for ok in ("8e9e05c52164694d", "8E9E05C52164694D", "0x8e9e05c52164694d", " 08e9e05c52164694d ", str(mid)):
        assert member_id_matches(ok, mid), ok
    for bad in ("", "cdf818194e3a8c32", "master", "0x"):
        assert not member_id_matches(bad, mid), bad


def test_encryption_cell_on_a_real_kubeadm_manifest(tmp_path):
    """simulation on shared/realdata/static-pod-manifests (kubeadm v1.29's kube-apiserver.yaml, the layout kubeadm
    still writes): the notebook's enable-encryption cell, its own bash, with stand-ins for what needs a cluster
    (`sudo` passes through, `ps` shows an API server started with the flag, `kubectl` answers /readyz) and its
    paths moved into a temporary folder. The manifest gets the flag, the hostPath volume and its mount and still
    parses; the grader's mount rule accepts it and rejects the manifest without the mount; the config is aescbc
    first, root-only; a second run changes nothing."""
    import yaml

    from helpers import shared_realdata

    if os.geteuid() != 0:
        pytest.fail("run as root: the cell's `sudo install -m 600` makes a root-only file", pytrace=False)
    manifest = tmp_path / "kube-apiserver.yaml"
    manifest.write_text((shared_realdata("static-pod-manifests") / "v1.29.0_zetaoss-zeta-linux_kube-apiserver.yaml").read_text())
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "sudo").write_text('#!/bin/sh\nexec "$@"\n')
    (bin_dir / "ps").write_text('#!/bin/sh\necho "kube-apiserver --encryption-provider-config=/x/enc.yaml"\n')
    (bin_dir / "kubectl").write_text("#!/bin/sh\necho ok\n")
    for f in bin_dir.iterdir():
        f.chmod(0o755)
    enc = tmp_path / "enc"
    script = (solution_script("enable-encryption").replace(MANIFEST, str(manifest))
              .replace("/root/kube-apiserver.yaml.before-lab07", str(tmp_path / "backup.yaml")))
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "ENC_DIR": str(enc)}
    run = lambda: subprocess.run(["bash", "-eo", "pipefail", "-c", script], env=env, capture_output=True, text=True,
                                 timeout=60)
    p = run()
    assert p.returncode == 0 and "✓ the API server runs with --encryption-provider-config" in p.stdout, (p.stdout, p.stderr)
    assert "secret:" not in p.stdout
    pod = yaml.safe_load(manifest.read_text())
    c = pod["spec"]["containers"][0]
    assert c["command"][:2] == ["kube-apiserver", f"--encryption-provider-config={enc}/enc.yaml"]
    grader = load_grader("lab07_etcd.py")
    assert grader._mounted(pod, f"{enc}/enc.yaml")
    assert (tmp_path / "backup.yaml").read_text() == (shared_realdata("static-pod-manifests") /
                                                    "v1.29.0_zetaoss-zeta-linux_kube-apiserver.yaml").read_text()
    no_mount = dict(pod, spec=dict(pod["spec"], volumes=[v for v in pod["spec"]["volumes"]
                                                         if v["name"] != "encryption-config"]))
    assert not grader._mounted(no_mount, f"{enc}/enc.yaml")
    config = (enc / "enc.yaml")
    assert stat.S_IMODE(config.stat().st_mode) == 0o600
    assert encryption_providers(config.read_text()) == ["aescbc", "identity"]
    key = base64.b64decode(yaml.safe_load(config.read_text())["resources"][0]["providers"][0]["aescbc"]["keys"][0]["secret"])
    assert len(key) == 32
    before = manifest.read_text()
    assert run().returncode == 0 and manifest.read_text() == before and (enc / "enc.yaml").read_text() == config.read_text()


# -------------------------------------------------------------------------------------------------
# live on the real cluster
# -------------------------------------------------------------------------------------------------

# everything on the control plane, as root through `sudo -n sh -c` unless sudo=None
_ssh = on_node("master")
_ok = on_node("master", must_succeed=True)
# grade_live(..., settled=True) before the encryption step: nothing restarts the API server there, so
# encryption_flag's 60 s of polling cannot turn out otherwise


def solution_script(grade_id: str) -> str:
    nb = nbformat.read(REPO / "solutions" / "lab07" / "lab07_etcd.ipynb", as_version=4)
    (cell,) = [c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == grade_id]
    lines = cell.source.splitlines()
    assert lines[0].startswith("%%node control-plane")
    return "\n".join(ln for ln in lines[1:] if "### " not in ln)


def _run_cell(ts, grade_id: str, env: dict[str, str], timeout: float = 400) -> str:
    """A notebook `%%node control-plane` cell's bash, run as the lab user the way the magic runs it (bash -eo pipefail,
    its --env values in the environment)."""
    assigns = " ".join(f"{k}={shlex.quote(v)}" for k, v in env.items())
    p = _ssh(ts, f'env {assigns} bash -eo pipefail -c "$(cat)"', sudo=None, timeout=timeout,
             input=solution_script(grade_id))
    assert p.returncode == 0, (grade_id, p.stdout[-3000:], p.stderr[-2000:])
    return p.stdout


def _statuses(result) -> dict[str, str]:
    return {c.check: str(c.status) for c in result.checks}


def _answer(cluster, key: str, value) -> None:
    from kubelab.notebook import record_answer

    with environ({"KUBELAB_SSH_CONFIG": str(cluster["ts"].ssh_config_file()), "KUBELAB_COURSE": str(REPO)}):
        record_answer(LAB, key, value)


def _key_meta(ts, key: str) -> dict:
    out = json.loads(_ok(ts, f"{ETCDCTL} get {key} --keys-only -w json"))
    return out["kvs"][0]


def _apiserver_args(ts) -> str:
    return _ssh(ts, "ps -C kube-apiserver -ww -o args=", sudo=None).stdout


def _wait_apiserver(ts, with_flag: bool, what: str) -> None:
    """Every kube-apiserver process with (or without) the flag and /readyz ok, three observations in a row: right
    after a manifest change the old process can answer while the new one crash-loops off its port."""
    streak = {"n": 0}

    def seen():
        lines = [ln for ln in _apiserver_args(ts).splitlines() if ln.strip()]
        flagged = {"--encryption-provider-config=" in ln for ln in lines}
        ready = _ssh(ts, f"{KUBECTL} get --raw=/readyz").stdout.strip()
        streak["n"] = streak["n"] + 1 if (flagged == {with_flag} and ready == "ok") else 0
        return {"processes": len(lines), "flag": sorted(flagged), "readyz": ready, "streak": streak["n"]}
    wait_for(seen, what, until=lambda s: s["streak"] >= 3, timeout_s=300, interval_s=4)


def _restart_apiserver(ts) -> None:
    """What the hint tells the learner: the manifest out of the folder (the kubelet stops the pod), then back."""
    _ok(ts, f"mv {MANIFEST} /root/kube-apiserver.yaml.lab07-moved")
    wait_for(lambda: _apiserver_args(ts).strip(), "the API server to stop", until=lambda s: s == "", timeout_s=120)
    _ok(ts, f"mv /root/kube-apiserver.yaml.lab07-moved {MANIFEST}")
    _wait_apiserver(ts, True, "the API server back with --encryption-provider-config")


@pytest.fixture(scope="module")
def etcd_lab(shared_cluster):
    """The shared cluster with the lab's steps applied one by one by the tests of this module; put back afterwards."""
    ts = shared_cluster["ts"]
    original = _ok(ts, f"cat {MANIFEST}")
    had_kubeconfig = _ssh(ts, "test -f ~/.kube/config", sudo=None).returncode == 0
    if not had_kubeconfig:  # the notebook's kubectl runs as the lab user with Lab 5's ~/.kube/config
        _ok(ts, 'mkdir -p ~/.kube && sudo -n cat /etc/kubernetes/admin.conf > ~/.kube/config && chmod 600 ~/.kube/config',
            sudo=None)
    state = {"cluster": shared_cluster, "ts": ts, "evidence": None}
    try:
        yield state
    finally:
        _put_back(shared_cluster, ts, original, had_kubeconfig)


def _put_back(cluster, ts, original: str, had_kubeconfig: bool) -> None:
    try:
        if _ssh(ts, f"test -e {HIDDEN_ETCDCTL}").returncode == 0:
            _ok(ts, f"mv {HIDDEN_ETCDCTL} /usr/bin/etcdctl")
        if _ssh(ts, "test -e /root/kube-apiserver.yaml.lab07-moved").returncode == 0:
            _ok(ts, f"mv /root/kube-apiserver.yaml.lab07-moved {MANIFEST}")
        # 1. while the API server can still decrypt them: the namespace and its (encrypted) Secrets go
        _ssh(ts, f"{KUBECTL} delete namespace {NS} --ignore-not-found --wait=true --timeout=180s", timeout=240)
        _ssh(ts, f"{KUBECTL} -n default delete configmap {CM} --ignore-not-found")
        # 2. nothing else may stay encrypted: an encrypted value the restored API server cannot read breaks it
        leftovers = _ssh(ts, f"for k in $({ETCDCTL} get /registry/secrets/ --prefix --keys-only | grep -v '^$'); do "
                             f"{ETCDCTL} get \"$k\" --print-value-only | head -c 8 | grep -q '^k8s:enc' && echo \"$k\"; "
                             "done; true").stdout.split()
        # 3. the original manifest; the kubelet brings back the API server without encryption
        if _ssh(ts, f"cmp -s {MANIFEST} -", input=original).returncode != 0:
            _ok(ts, f"cat > {MANIFEST}", input=original)
        _wait_apiserver(ts, False, "the API server back without --encryption-provider-config")
        _ok(ts, f"rm -rf {ENC_DIR} {SNAPSHOT} /root/kube-apiserver.yaml.before-lab07 && rmdir /var/lib/kubelab 2>/dev/null; true")
        _ok(ts, f"rm -f ~/.kubelab/answers/{LAB}.json" + ("" if had_kubeconfig else " ~/.kube/config"), sudo=None)
        wait_for(lambda: _ssh(ts, f"{KUBECTL} get nodes --no-headers").stdout, "both nodes Ready",
                 until=lambda out: out.count(" Ready ") == 2, timeout_s=120)
        if leftovers:
            print(f"secrets left encrypted by others during the test: {leftovers}: the next module gets a new cluster")
            cluster["dirty"] = True
    except BaseException:
        cluster["dirty"] = True
        raise


@live
def test_1_nothing_done_etcdctl_missing_and_no_encryption(etcd_lab):
    """real 1.20 cluster on twins, mistake "etcdctl not installed" (the twins' /usr/bin/etcdctl moved aside):
    etcdctl_reaches_etcd fails with its install hint and every etcd check that needs it is blocked; with no
    --encryption-provider-config, encryption_flag fails and the rest of encryption is blocked."""
    ts = etcd_lab["ts"]
    # the twins' etcd client is 3.4, without etcdutl (the grader then falls back to etcdctl's snapshot status)
    assert "etcdctl version: 3.4" in _ok(ts, "etcdctl version")
    assert _ssh(ts, "command -v etcdutl").returncode != 0
    _ok(ts, f"mv /usr/bin/etcdctl {HIDDEN_ETCDCTL}")
    try:
        result = grade_live(etcd_lab["cluster"], LAB, settled=True)
    finally:
        _ok(ts, f"mv {HIDDEN_ETCDCTL} /usr/bin/etcdctl")
    got = _statuses(result)
    assert got["etcdctl_reaches_etcd"] == "fail"
    c = by_check(result)["etcdctl_reaches_etcd"]
    assert c.actual == "not installed" and "release tarball" in c.hint
    for blocked in ("configmap_in_etcd", "answer_member_id", "snapshot_valid", "answer_configmap_revision",
                    "answer_configmap_key", "snapshot_recent"):
        assert got[blocked] == "blocked", (blocked, got)
    assert got["encryption_flag"] == "fail" and "(not set)" in by_check(result)["encryption_flag"].actual
    assert got["encryption_config"] == got["secret_encrypted"] == "blocked"


@live
def test_2_configmap_in_the_wrong_namespace_and_no_snapshot(etcd_lab):
    """real 1.20 cluster on twins, mistake "the ConfigMap created in `default`": configmap_in_etcd fails (none in
    lab07-etcd) and the answers about it are blocked; no snapshot file: snapshot_valid fails; etcdctl with the
    API server's client certificate passes (etcdctl 3.4 speaks v3 without ETCDCTL_API)."""
    ts = etcd_lab["ts"]
    _ok(ts, f"{KUBECTL} -n default create configmap {CM} --from-literal=color=blue")
    try:
        result = grade_live(etcd_lab["cluster"], LAB, settled=True)
    finally:
        _ok(ts, f"{KUBECTL} -n default delete configmap {CM}")
    got = _statuses(result)
    assert got["etcdctl_reaches_etcd"] == "pass"
    assert got["configmap_in_etcd"] == "fail" and by_check(result)["configmap_in_etcd"].actual == "none"
    assert got["answer_configmap_revision"] == got["answer_configmap_key"] == got["snapshot_recent"] == "blocked"
    assert got["snapshot_valid"] == "fail" and "missing" in by_check(result)["snapshot_valid"].actual
    assert got["answer_member_id"] == "fail"  # nothing recorded yet
    assert by_check(result)["answer_member_id"].actual == "none recorded"


@live
def test_3_stale_answers_and_a_snapshot_older_than_the_configmap(etcd_lab):
    """real 1.20 cluster on twins: the notebook's create-configmap and watch cells run for real (the watch shows the
    same revisions as etcd's ModRevision and the API's resourceVersion); the value starts with k8s\\0 (protobuf);
    mistakes: the revision recorded before the watch step changed the ConfigMap, the cluster ID recorded as the
    member ID, the snapshot saved before the watch step. Those three checks fail, with hints; the key answer, the
    ConfigMap check (mod_revision == resourceVersion) and the snapshot's validity pass."""
    ts = etcd_lab["ts"]
    _run_cell(ts, "create-configmap", {"NAMESPACE": NS, "CONFIGMAP": CM})
    key = f"/registry/configmaps/{NS}/{CM}"
    head = _ok(ts, f"{ETCDCTL} get {key} --print-value-only | head -c 4 | od -An -c")
    assert head.split() == ["k", "8", "s", "\\0"], head
    kv = _key_meta(ts, key)
    _answer(etcd_lab["cluster"], "configmap_key", base64.b64decode(kv["key"]).decode())
    _answer(etcd_lab["cluster"], "configmap_revision", kv["mod_revision"])
    members = json.loads(_ok(ts, f"{ETCDCTL} member list -w json"))
    _answer(etcd_lab["cluster"], "etcd_member_id", format(members["header"]["cluster_id"], "x"))  # the wrong ID
    _ok(ts, f"mkdir -p /var/lib/kubelab && {ETCDCTL} snapshot save {SNAPSHOT}")

    watched = _run_cell(ts, "watch", {"ETCDCTL_FLAGS": ETCDCTL_FLAGS, "NAMESPACE": NS, "CONFIGMAP": CM}, timeout=60)
    etcd_part, kubectl_part = watched.split("--- kubectl get -w:")
    mods = [int(line.split(":")[1]) for line in etcd_part.splitlines() if line.startswith('"ModRevision"')]
    assert len(mods) == 2 and f'"Key" : "{key}"' in etcd_part, watched
    for rev in mods:
        assert str(rev) in kubectl_part, (rev, watched)

    result = grade_live(etcd_lab["cluster"], LAB, settled=True)
    got = _statuses(result)
    for passing in ("etcdctl_reaches_etcd", "configmap_in_etcd", "answer_configmap_key", "snapshot_valid"):
        assert got[passing] == "pass", (passing, by_check(result)[passing])
    by = by_check(result)
    assert got["answer_configmap_revision"] == "fail" and by["answer_configmap_revision"].actual == str(kv["mod_revision"])
    assert "Look again" in by["answer_configmap_revision"].hint and str(mods[-1]) not in by["answer_configmap_revision"].expected
    assert got["answer_member_id"] == "fail" and "member list" in by["answer_member_id"].hint
    assert got["snapshot_recent"] == "fail" and "older than your ConfigMap" in by["snapshot_recent"].actual
    etcd_lab["mod_revision"] = mods[-1]


@live
def test_4_identity_first_and_a_cut_short_snapshot(etcd_lab):
    """real 1.20 cluster on twins: the right answers recorded (the member ID in hex, the current mod_revision) pass;
    mistakes: an EncryptionConfiguration with identity first (then aescbc), put in place by the notebook's own
    enable-encryption cell (its sed on kubeadm's manifest, the kubelet restarting the API server), and a
    snapshot cut short by a bad copy. encryption_flag passes (running flag = manifest flag, hostPath mount);
    encryption_config fails naming the order; snapshot_valid fails with etcdctl's error, snapshot_recent blocked."""
    ts = etcd_lab["ts"]
    members = json.loads(_ok(ts, f"{ETCDCTL} member list -w json"))["members"]
    _answer(etcd_lab["cluster"], "etcd_member_id", format(members[0]["ID"], "x"))
    _answer(etcd_lab["cluster"], "configmap_revision", _key_meta(ts, f"/registry/configmaps/{NS}/{CM}")["mod_revision"])
    _ok(ts, f"{ETCDCTL} snapshot save {SNAPSHOT}.full && head -c 200000 {SNAPSHOT}.full > {SNAPSHOT} && rm {SNAPSHOT}.full")
    _ok(ts, f"install -d -m 700 {ENC_DIR} && install -m 600 /dev/null {ENC_DIR}/enc.yaml && cat > {ENC_DIR}/enc.yaml",
        input=enc_config(["identity", "aescbc"]))
    out = _run_cell(ts, "enable-encryption", {"ENC_DIR": ENC_DIR})
    assert "✓ the API server runs with --encryption-provider-config and is ready" in out, out
    _wait_apiserver(ts, True, "the API server settled with --encryption-provider-config")
    assert "secret:" not in out  # the cell shows the config without its key
    manifest = _ok(ts, f"cat {MANIFEST}")
    assert f"- --encryption-provider-config={ENC_DIR}/enc.yaml" in manifest and f"path: {ENC_DIR}" in manifest
    _ok(ts, f"{KUBECTL} -n {NS} create secret generic {SECRET} --from-literal=password=s3cr3t-lab07")

    result = grade_live(etcd_lab["cluster"], LAB)
    got = _statuses(result)
    by = by_check(result)
    for passing in ("answer_member_id", "answer_configmap_revision", "encryption_flag"):
        assert got[passing] == "pass", (passing, by[passing])
    assert got["encryption_config"] == "fail" and by["encryption_config"].actual == "providers in order: identity, aescbc"
    assert "FIRST provider" in by["encryption_config"].hint
    assert got["secret_encrypted"] == "blocked"
    assert got["snapshot_valid"] == "fail" and got["snapshot_recent"] == "blocked"
    assert "save it again" in by["snapshot_valid"].hint


@live
def test_5_a_secret_written_before_encryption_stays_plain(etcd_lab):
    """real 1.20 cluster on twins: the config fixed (aescbc first, identity after) and the API server restarted
    the way the hint says (manifest out and back); the Secret created under identity-first was never rewritten:
    secret_encrypted fails showing "plain protobuf"; the snapshot saved again passes both snapshot checks."""
    ts = etcd_lab["ts"]
    _ok(ts, f"cat > {ENC_DIR}/enc.yaml", input=enc_config(["aescbc", "identity"]))
    _restart_apiserver(ts)
    _ok(ts, f"{ETCDCTL} snapshot save {SNAPSHOT}")
    result = grade_live(etcd_lab["cluster"], LAB)
    got = _statuses(result)
    by = by_check(result)
    for passing in ("encryption_flag", "encryption_config", "snapshot_valid", "snapshot_recent"):
        assert got[passing] == "pass", (passing, by[passing])
    assert got["secret_encrypted"] == "fail" and by["secret_encrypted"].actual.startswith("plain protobuf")
    assert "kubectl replace" in by["secret_encrypted"].hint


@live
def test_6_rewritten_secret_encrypted_full_marks_and_replay(etcd_lab, tmp_path):
    """real 1.20 cluster on twins: the namespace's Secrets rewritten (`kubectl get ... -o json | kubectl replace -f
    -`, the docs' way, limited to the lab's namespace on this shared cluster): stored as k8s:enc:aescbc:v1:key1:,
    every check passes, full marks; the recording replays to the same result and holds neither the key of the
    EncryptionConfiguration nor the Secret's value."""
    ts = etcd_lab["ts"]
    _ok(ts, f"{KUBECTL} -n {NS} get secrets -o json | {KUBECTL} replace -f -")
    head = _ok(ts, f"{ETCDCTL} get /registry/secrets/{NS}/{SECRET} --print-value-only | head -c 23")
    assert head == "k8s:enc:aescbc:v1:key1:"
    path = tmp_path / "lab07.evidence.json"
    live = grade_live(etcd_lab["cluster"], LAB, record=path)
    bad = [(c.id, c.status, c.expected, c.actual) for c in live.checks if str(c.status) != "pass"]
    assert not bad, bad
    assert live.score == live.max_score
    text = path.read_text()
    assert KEY_B64 not in text and "s3cr3t-lab07" not in text
    assert base64.b64encode(b"s3cr3t-lab07").decode() not in text
    replayed, _ = replay_lab(etcd_lab["cluster"]["course"], LAB, path)
    assert comparable(replayed.to_dict()) == comparable(live.to_dict())
