"""Lab 7 — etcd. Every check only observes: etcd through `etcdctl` on the control plane with the API server's own
etcd client certificate (endpoint health, member list, `get` of single keys; never put/del), the snapshot file
with `etcdutl snapshot status` (etcdctl's own `snapshot status` where no etcdutl exists: etcd <= 3.5), the API
server's manifest, its running command line and the EncryptionConfiguration it reads, and the learner's answers.

The learner's objects (the notebook creates them, the grader never does): namespace lab07-etcd with the ConfigMap
app-config and the Secret app-secret, and the snapshot at /var/lib/kubelab/etcd-snapshot.db.

Only the first 48 bytes of the Secret's value in etcd are read (base64 on the node): enough to see
`k8s:enc:aescbc:v1:<key>:` or the `k8s\\0` protobuf header, never the Secret's data. The encryption config is read
with its keys' `secret:` values blanked on the node, so no key reaches the evidence.
"""

import json
import shlex

import yaml

from kubelab.engine import check, expect_equal, expect_true, fail, flag_values, read_or_none
from kubelab.etcdfacts import (ENCRYPTING, NotAConfig, encryption_providers, member_id_matches, snapshot_status,
                               stored_form_shown)

NAMESPACE = "lab07-etcd"
CONFIGMAP = "app-config"
SECRET = "app-secret"
SNAPSHOT = "/var/lib/kubelab/etcd-snapshot.db"
PKI = "/etc/kubernetes/pki"
APISERVER_MANIFEST = "/etc/kubernetes/manifests/kube-apiserver.yaml"
# the API server's own etcd client (kubeadm's apiserver-etcd-client: the identity every Kubernetes write uses)
ETCDCTL = ("sudo -n etcdctl --endpoints=https://127.0.0.1:2379 "
           f"--cacert={PKI}/etcd/ca.crt --cert={PKI}/apiserver-etcd-client.crt --key={PKI}/apiserver-etcd-client.key")
PREFIX_BYTES = 48


def configmap_key():
    return f"/registry/configmaps/{NAMESPACE}/{CONFIGMAP}"


def secret_key():
    return f"/registry/secrets/{NAMESPACE}/{SECRET}"


# ------------------------------------------------------------------------------------------------
# helpers (no checks)
# ------------------------------------------------------------------------------------------------

def _etcdctl(host, args):
    return host.run(f"{ETCDCTL} {args}")


def _key_meta(host, key):
    """(create_revision, mod_revision) of one key, or None when etcd has no such key."""
    r = _etcdctl(host, f"get {shlex.quote(key)} --keys-only -w json")
    if r.rc != 0:
        fail(f"etcdctl get {key}", (r.stderr or r.stdout).strip()[:300] or f"exit {r.rc}", what="etcd")
    kvs = json.loads(r.stdout).get("kvs") or []
    if not kvs:
        return None
    return int(kvs[0].get("create_revision", 0)), int(kvs[0]["mod_revision"])


def _same(given, live):
    return live is not None and given.strip() == str(live)


_flag = flag_values  # values of --name=V or `--name V`, in order


def _running_apiserver_args(host):
    # the newest kube-apiserver: right after a manifest change the old one can still be there for a moment
    out = host.run("ps -C kube-apiserver -ww --sort=start_time -o args=").stdout.strip().splitlines()
    return out[-1].split() if out else []


def _manifest(host):
    r = host.run(f"sudo -n cat {APISERVER_MANIFEST}")
    if r.rc != 0:
        fail(APISERVER_MANIFEST, "missing or unreadable", what="kube-apiserver static pod")
    pod = yaml.safe_load(r.stdout) or {}
    c = (pod.get("spec", {}).get("containers") or [{}])[0]
    return pod, list(c.get("command") or []) + list(c.get("args") or [])


def _config_path(host):
    """The --encryption-provider-config the running API server was started with ('' when none)."""
    values = _flag(_running_apiserver_args(host), "encryption-provider-config")
    return values[-1] if values else ""


def _read_config(host, path):
    # keys blanked on the node: the grader needs the provider order, never the key material
    r = host.run("sudo -n sed -E 's/^([[:space:]-]*secret:).*/\\1 <redacted>/' %s", path)
    if r.rc != 0:
        fail(f"the file {path}", (r.stderr or "unreadable").strip()[:200], what="encryption config")
    return r.stdout


def _mounted(pod, path):
    """Whether a hostPath volume mounted into the container holds `path` (the API server runs in its own
    mount namespace: a file on the node it cannot see stops it at start)."""
    volumes = {v.get("name"): (v.get("hostPath") or {}).get("path", "") for v in pod.get("spec", {}).get("volumes") or []}
    c = (pod.get("spec", {}).get("containers") or [{}])[0]
    for m in c.get("volumeMounts") or []:
        host_dir, mount = volumes.get(m.get("name")), (m.get("mountPath") or "").rstrip("/")
        if host_dir and mount and (path == mount or path.startswith(mount + "/")) and host_dir.rstrip("/") == mount:
            return True
    return False


# ------------------------------------------------------------------------------------------------
# etcd reached as the API server reaches it
# ------------------------------------------------------------------------------------------------

@check("etcdctl on the control plane reaches etcd with the API server's client certificate", on="control-plane",
       points=1,
       hint="Install etcdctl and etcdutl of the etcd version your cluster runs (the notebook's Step 1: the release "
            "tarball of the etcd image's version into /usr/local/bin), then `sudo etcdctl --endpoints="
            "https://127.0.0.1:2379 --cacert=/etc/kubernetes/pki/etcd/ca.crt --cert=/etc/kubernetes/pki/"
            "apiserver-etcd-client.crt --key=/etc/kubernetes/pki/apiserver-etcd-client.key endpoint health`.")
def test_etcdctl_reaches_etcd(host):
    if host.run("command -v etcdctl").rc != 0:
        fail("etcdctl on the PATH", "not installed", what="etcdctl")
    r = _etcdctl(host, "endpoint health")
    said = (r.stdout + r.stderr).strip()
    expect_true(r.rc == 0 and "is healthy" in said, "https://127.0.0.1:2379 is healthy", said[:300] or f"exit {r.rc}",
                what="etcdctl endpoint health")


# ------------------------------------------------------------------------------------------------
# the learner's objects in etcd, and answers about them
# ------------------------------------------------------------------------------------------------

@check(f"Your ConfigMap {NAMESPACE}/{CONFIGMAP} is stored in etcd, at the revision the API calls resourceVersion",
       on="control-plane", points=1, needs=["etcdctl_reaches_etcd"],
       hint=f"Create it (`kubectl create namespace {NAMESPACE}`, `kubectl -n {NAMESPACE} create configmap {CONFIGMAP} "
            f"--from-literal=...`); it is then the key {configmap_key()}.")
def test_configmap_in_etcd(host, kube):
    cm = read_or_none(kube.core.read_namespaced_config_map, CONFIGMAP, NAMESPACE)
    if cm is None:
        fail(f"ConfigMap {NAMESPACE}/{CONFIGMAP}", "none", what="kubectl get configmap")
    meta = _key_meta(host, configmap_key())
    if meta is None:
        fail(f"the key {configmap_key()}", "none in etcd", what="etcdctl get --keys-only")
    # one read of each; a write between them is the only way they differ, and the engine does not poll this check
    expect_equal(str(meta[1]), cm.metadata.resource_version, what="etcd mod_revision vs API resourceVersion")


@check("The revision you recorded is your ConfigMap's mod_revision in etcd", on="control-plane", points=1,
       needs=["configmap_in_etcd"],
       hint="Read it from etcd, not from the API: `etcdctl get <the ConfigMap's key> -w json` shows mod_revision; "
            "record it with `%answer lab07 configmap_revision <number>`. Changed the ConfigMap since? Look again.")
def test_answer_configmap_revision(host, answers):
    meta = _key_meta(host, configmap_key())
    answers.expect("configmap_revision", meta[1] if meta else None,
                   where="the mod_revision of your ConfigMap's key (`etcdctl get <key> -w json`)", same=_same)


@check("The key you recorded is where etcd keeps your ConfigMap", on="control-plane", points=1,
       needs=["configmap_in_etcd"],
       hint="List the keys (`etcdctl get /registry/ --prefix --keys-only | grep ...`): resources live under "
            "/registry/<resource>/<namespace>/<name>. Record it with `%answer lab07 configmap_key <key>`.")
def test_answer_configmap_key(host, answers):
    key = configmap_key() if _key_meta(host, configmap_key()) else None
    answers.expect("configmap_key", key, where="the etcd key of your ConfigMap", same=_same)


@check("The member ID you recorded is your etcd member's", on="control-plane", points=1,
       needs=["etcdctl_reaches_etcd"],
       hint="`etcdctl member list -w table` prints each member's ID (hex), name and URLs; record yours with "
            "`%answer lab07 etcd_member_id <ID>`.")
def test_answer_member_id(host, answers):
    r = _etcdctl(host, "member list -w json")
    members = json.loads(r.stdout).get("members") or [] if r.rc == 0 else []
    ids = [int(m["ID"]) for m in members if "ID" in m]
    answers.expect("etcd_member_id", ids[0] if len(ids) == 1 else None,
                   where="the ID in `etcdctl member list`",
                   same=lambda given, live: live is not None and member_id_matches(given, live))


# ------------------------------------------------------------------------------------------------
# the snapshot backup
# ------------------------------------------------------------------------------------------------

@check(f"A valid etcd snapshot is at {SNAPSHOT}", on="control-plane", points=2, needs=["etcdctl_reaches_etcd"],
       hint=f"Take it with `sudo etcdctl ... snapshot save {SNAPSHOT}` (the API server's certificate flags, one "
            f"endpoint), then check it with `sudo etcdutl snapshot status {SNAPSHOT} -w table` (etcd 3.6's etcdctl "
            "has no `snapshot status`). A file that etcdutl cannot read was cut short or copied badly: save it again.")
def test_snapshot_valid(host):
    if host.run("sudo -n test -s %s", SNAPSHOT).rc != 0:
        fail(f"a snapshot file {SNAPSHOT}", "missing or empty", what="etcd snapshot")
    tool = "etcdutl" if host.run("command -v etcdutl").rc == 0 else "etcdctl"
    r = host.run(f"sudo -n {tool} snapshot status %s -w json", SNAPSHOT)
    try:
        st = snapshot_status(r.stdout)
    except ValueError:
        fail("a snapshot etcd can read", ((r.stderr or r.stdout).strip() or f"exit {r.rc}")[:300],
             what=f"{tool} snapshot status {SNAPSHOT}")
    expect_true(st.total_keys > 0 and st.revision > 0, "a snapshot with keys and a revision",
                f"{st.total_keys} keys at revision {st.revision}", what=f"{tool} snapshot status")


@check("The snapshot was taken after your ConfigMap was written: it holds it", on="control-plane", points=1,
       needs=["snapshot_valid", "configmap_in_etcd"],
       hint="A backup from before your changes cannot bring them back. Take the snapshot again now "
            f"(`snapshot save {SNAPSHOT}`): its revision must be at least the mod_revision of "
            f"{configmap_key()} (`etcdctl get {configmap_key()} -w json`).")
def test_snapshot_recent(host):
    tool = "etcdutl" if host.run("command -v etcdutl").rc == 0 else "etcdctl"
    st = snapshot_status(host.run(f"sudo -n {tool} snapshot status %s -w json", SNAPSHOT).stdout)
    meta = _key_meta(host, configmap_key())
    if meta is None:
        fail(f"the key {configmap_key()}", "none in etcd", what="etcd")
    expect_true(st.revision >= meta[1], f"revision >= {meta[1]} (the ConfigMap's mod_revision)",
                f"revision {st.revision}: older than your ConfigMap", what=f"snapshot {SNAPSHOT}")


# ------------------------------------------------------------------------------------------------
# Secrets encrypted at rest
# ------------------------------------------------------------------------------------------------

@check("The API server runs with --encryption-provider-config, its file mounted from the node", on="control-plane",
       points=1, wait_s=60, interval_s=5,
       hint=f"In {APISERVER_MANIFEST} add `- --encryption-provider-config=/etc/kubernetes/enc/enc.yaml` to the "
            "command, and a hostPath volume for /etc/kubernetes/enc mounted at the same path (readOnly). The kubelet "
            "restarts the API server when the file changes: `kubectl get pods -n kube-system` answers again "
            "within a minute; if not, `sudo crictl ps -a | grep apiserver` and its logs say why.")
def test_encryption_flag(host):
    running = _config_path(host)
    pod, args = _manifest(host)
    in_manifest = _flag(args, "encryption-provider-config")
    expect_true(bool(in_manifest), "--encryption-provider-config=<file> in the manifest", "(not set)",
                what=APISERVER_MANIFEST)
    expect_equal(running, in_manifest[-1], what="--encryption-provider-config of the running kube-apiserver")
    expect_true(_mounted(pod, running), f"a hostPath volume mounted at {running} or a folder holding it",
                "no such volumeMount", what=f"{APISERVER_MANIFEST} volumes")


@check("Its EncryptionConfiguration encrypts Secrets: a real provider first, identity at most as fallback",
       on="control-plane", points=2, needs=["encryption_flag"],
       hint="The FIRST provider encrypts every new write; the others are only tried to read. Put `aescbc` (or "
            "secretbox) with a 32-byte random key (`head -c 32 /dev/urandom | base64`) first under `resources: "
            "[secrets]`, `identity: {}` after it so Secrets written before stay readable; apiVersion "
            "apiserver.config.k8s.io/v1, kind EncryptionConfiguration. The API server reads the file at start: "
            "restart it after a change (move its manifest out of /etc/kubernetes/manifests and back).")
def test_encryption_config(host):
    path = _config_path(host)
    try:
        providers = encryption_providers(_read_config(host, path))
    except NotAConfig as e:
        fail("an EncryptionConfiguration (apiserver.config.k8s.io/v1)", str(e), what=path)
    expect_true(bool(providers), "an entry whose resources include secrets", "no entry covers secrets", what=path)
    expect_true(providers[0] in ENCRYPTING, f"first provider one of {', '.join(ENCRYPTING)}",
                f"providers in order: {', '.join(providers)}", what=f"{path} (secrets)")


@check(f"Your Secret {NAMESPACE}/{SECRET} is stored encrypted in etcd", on="control-plane", points=2,
       needs=["encryption_config"],
       hint="A Secret is encrypted when it is written: one created before the API server read the config stays "
            "plain protobuf (`k8s\\0…`). Create it after the restart, or rewrite the existing ones with "
            "`kubectl get secrets -A -o json | kubectl replace -f -`. Then `etcdctl get "
            f"{secret_key()} --print-value-only | head -c 40` starts with k8s:enc:aescbc:v1:.")
def test_secret_encrypted(host, kube):
    if read_or_none(kube.core.read_namespaced_secret, SECRET, NAMESPACE) is None:
        fail(f"Secret {NAMESPACE}/{SECRET}", "none", what="kubectl get secret")
    # the value's first bytes only, made printable and cut after the key name: the header says how it was stored,
    # never holds the data, and is no base64 blob that evidence redaction would blank
    r = host.run(f"{ETCDCTL} get {shlex.quote(secret_key())} --print-value-only | head -c {PREFIX_BYTES} "
                 "| tr -c '[:alnum:]:{' '.' | cut -d: -f1-5")
    form = stored_form_shown(r.stdout)
    providers = encryption_providers(_read_config(host, _config_path(host)))
    expect_true(form.kind == "encrypted" and form.provider == providers[0],
                f"k8s:enc:{providers[0]}:v1:<key name>:… (your config's first provider)", form.describe(),
                what=f"etcd value of {secret_key()}")
