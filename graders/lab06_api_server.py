"""Lab 6 — The API server. Every check only observes: the control plane over SSH (its static-pod manifest, the
audit policy and the audit log, read with `sudo -n`, bounded by grep/tail), the cluster through the API with the
control plane's admin.conf.

- Auditing: the kube-apiserver manifest gives --audit-policy-file and --audit-log-path on paths the container
  can see (hostPath volumes mounted into it), the policy is an audit.k8s.io/v1 Policy, and the API server is up
  and writing the log.
- The new user (NEW_USER): its certificate issued through an approved CertificateSigningRequest for
  CN=NEW_USER with the kube-apiserver-client signer; the authorizer letting it list nodes and nothing more; the
  audit log holding its own `list nodes` (its certificate, not the admin impersonating it).
- Answers the learner found (recomputed here): the HTTP status of an anonymous request, the auditID of the
  user's list of nodes and the groups the API server saw.

Why SubjectAccessReview for "may list, may not delete": a SubjectAccessReview is a virtual resource — the API
server answers it from its authorizer chain and stores nothing (no etcd write, nothing to delete; the same question
`kubectl auth can-i --as` asks). Reading RBAC objects and evaluating them here would be a second, partial
authorizer: it would miss a group like system:masters in the certificate (allowed everything before RBAC is asked),
aggregated ClusterRoles, and the other authorization modes. The grader asks about the user *and the groups of its
issued certificate*, so the answer is the one the user's own requests get.
"""

import base64
import json
import posixpath
import shlex

import yaml
from kubernetes import client

from kubelab.engine import check, expect_equal, expect_true, fail, load_yaml, flag_values

NEW_USER = "ada"                    # the user the notebook creates (CN of its certificate)
NEW_USER_GROUP = "lab06-readers"    # its group (O of its certificate)
CSR_SIGNER = "kubernetes.io/kube-apiserver-client"
APISERVER_MANIFEST = "/etc/kubernetes/manifests/kube-apiserver.yaml"
AUDIT_FRESH_S = 120                 # the API server's own traffic (leases, health) writes events every few seconds
AUDIT_TAIL_LINES = 200              # at most this many of the user's audit events are read
ALLOWED = (("get", "nodes"), ("list", "nodes"), ("watch", "nodes"))
# what a node reader must not do: change nodes, and read anything but nodes
DENIED = (("delete", "nodes", ""), ("update", "nodes", ""), ("create", "pods", "default"),
          ("list", "secrets", "kube-system"), ("list", "pods", ""))


# ------------------------------------------------------------------------------------------------
# helpers (no checks)
# ------------------------------------------------------------------------------------------------

def _flag(args, name):
    """The last value of --name=V or `--name V` (the API server takes the last), or None."""
    values = flag_values(args, name)
    return values[-1] if values else None


def _manifest(host):
    text = host.run("sudo -n cat %s", APISERVER_MANIFEST)
    if text.rc != 0:
        fail(f"{APISERVER_MANIFEST} (written by kubeadm init)", text.stderr.strip() or "missing",
             what="kube-apiserver manifest")
    try:
        pod = load_yaml(text.stdout)
        container = next(c for c in pod["spec"]["containers"] if c.get("name") == "kube-apiserver")
    except Exception:  # noqa: BLE001 - whatever is wrong with it, the kubelet cannot run it either
        fail("a Pod with a kube-apiserver container", "a file that does not parse as one", what=APISERVER_MANIFEST)
    return pod, container


def _audit_flags(host):
    pod, c = _manifest(host)
    args = list(c.get("command") or []) + list(c.get("args") or [])
    return pod, c, _flag(args, "audit-policy-file"), _flag(args, "audit-log-path")


def _host_path_for(pod, container, path):
    """The node's path behind `path` inside the container (the mount whose mountPath holds it), or None."""
    volumes = {v.get("name"): (v.get("hostPath") or {}).get("path") for v in pod["spec"].get("volumes") or []}
    best = None
    for m in container.get("volumeMounts") or []:
        mp = (m.get("mountPath") or "").rstrip("/") or "/"
        inside = path == mp or path.startswith(mp + "/") or mp == "/"
        if inside and volumes.get(m.get("name")) and (best is None or len(mp) > len(best[0])):
            best = (mp, volumes[m.get("name")], bool(m.get("readOnly")))
    if best is None:
        return None
    mp, hp, ro = best
    rel = posixpath.relpath(path, mp)
    return (hp if rel == "." else posixpath.join(hp, rel)), ro


def _log_files(host):
    """The audit log on the node: the flag's path (through its mount) and its rotated backups' glob."""
    pod, c, _, log_path = _audit_flags(host)
    if not log_path or log_path == "-":
        fail("--audit-log-path=<a file>", log_path or "(not set)", what="kube-apiserver flags")
    mapped = _host_path_for(pod, c, log_path)
    if mapped is None:
        fail(f"a hostPath volume mounted at (or above) {log_path}", "none", what="kube-apiserver volumeMounts")
    path = mapped[0]
    stem, ext = posixpath.splitext(path)
    return path, f"{stem}-*{ext}"   # lumberjack names backups <name>-<timestamp><ext>


def _grep_log(host, needles):
    """Audit events (parsed) whose line holds every needle, from the log and its rotated backups: grep on the
    node, the last AUDIT_TAIL_LINES only (the log grows all the time)."""
    path, rotated = _log_files(host)
    first, *more = needles
    script = " | ".join([f"grep -h -F {shlex.quote(first)} {shlex.quote(path)} {rotated} 2>/dev/null"]
                        + [f"grep -F {shlex.quote(n)}" for n in more] + [f"tail -n {AUDIT_TAIL_LINES}"])
    events = []
    for line in host.run("sudo -n sh -c %s", script).stdout.splitlines():
        try:
            events.append(json.loads(line))
        except ValueError:
            continue  # a line cut by rotation
    return events


def _user_events(host, user, *needles):
    """The events made by `user` itself (its own credentials, not someone impersonating it)."""
    return [e for e in _grep_log(host, (f'"username":"{user}"', *needles))
            if (e.get("user") or {}).get("username") == user and not e.get("impersonatedUser")]


def _own_node_lists(host):
    return [e for e in _user_events(host, NEW_USER, '"resource":"nodes"')
            if e.get("verb") == "list" and (e.get("objectRef") or {}).get("resource") == "nodes"
            and not (e.get("objectRef") or {}).get("name")
            and (e.get("responseStatus") or {}).get("code") == 200 and e.get("stage") == "ResponseComplete"]


def _csrs_for_user(kube):
    from cryptography import x509

    out = []
    for c in kube.certificates.list_certificate_signing_request().items:
        try:
            req = x509.load_pem_x509_csr(base64.b64decode(c.spec.request))
            cns = [a.value for a in req.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)]
        except Exception:  # noqa: BLE001 - a request we cannot read is not the user's
            continue
        if cns == [NEW_USER]:
            out.append(c)
    return out


def _certificate_subject(pem_b64):
    """(CN, [O...]) of an issued certificate (base64 PEM as in status.certificate)."""
    from cryptography import x509

    cert = x509.load_pem_x509_certificate(base64.b64decode(pem_b64))
    name = cert.subject
    cn = [a.value for a in name.get_attributes_for_oid(x509.NameOID.COMMON_NAME)]
    orgs = [a.value for a in name.get_attributes_for_oid(x509.NameOID.ORGANIZATION_NAME)]
    return (cn[0] if cn else ""), orgs


def _csr_state(c):
    types = {cond.type for cond in (c.status.conditions or []) if cond.status in (None, "True")}
    if "Denied" in types:
        return "Denied"
    if "Failed" in types:
        return "Failed"
    if "Approved" in types:
        return "Approved,Issued" if c.status.certificate else "Approved (not issued yet)"
    return "Pending"


def _user_groups(kube, host):
    """The groups the API server gives NEW_USER: its issued certificate's O, else what the audit log saw."""
    for c in _csrs_for_user(kube):
        if c.status.certificate and c.spec.signer_name == CSR_SIGNER:
            return _certificate_subject(c.status.certificate)[1]
    seen = _user_events(host, NEW_USER)
    groups = (seen[-1].get("user") or {}).get("groups") if seen else None
    return [g for g in (groups or []) if g != "system:authenticated"]


def _may(kube, groups, verb, resource, namespace=""):
    review = client.V1SubjectAccessReview(spec=client.V1SubjectAccessReviewSpec(
        user=NEW_USER, groups=list(groups) + ["system:authenticated"],
        resource_attributes=client.V1ResourceAttributes(verb=verb, resource=resource, namespace=namespace or None)))
    return bool(client.AuthorizationV1Api(kube.api_client).create_subject_access_review(review).status.allowed)


# ------------------------------------------------------------------------------------------------
# auditing switched on
# ------------------------------------------------------------------------------------------------

@check("The API server's manifest turns audit logging on, with both paths mounted", on="control-plane", points=1,
       hint="In /etc/kubernetes/manifests/kube-apiserver.yaml add `--audit-policy-file=/etc/kubernetes/audit/"
            "policy.yaml` and `--audit-log-path=/var/log/kubernetes/audit/audit.log` (with --audit-log-maxage, "
            "-maxbackup, -maxsize), AND a hostPath volume plus a volumeMount for each: the API server runs in a "
            "container and sees only what is mounted into it (the policy read-only, the log directory writable). "
            "Without the mounts it exits with 'no such file or directory'.")
def test_audit_flags(host):
    pod, c, policy, log_path = _audit_flags(host)
    expect_equal({"--audit-policy-file": "set" if policy else "(not set)",
                  "--audit-log-path": "a file" if log_path and log_path != "-" else (log_path or "(not set)")},
                 {"--audit-policy-file": "set", "--audit-log-path": "a file"}, what="kube-apiserver audit flags")
    missing = {}
    for flag, path, writable in (("--audit-policy-file", policy, False), ("--audit-log-path", log_path, True)):
        mapped = _host_path_for(pod, c, path)
        if mapped is None:
            missing[flag] = f"{path}: no hostPath volume mounted there"
        elif writable and mapped[1]:
            missing[flag] = f"{path}: mounted readOnly (the API server cannot write its log)"
    expect_equal(missing, {}, what="volumeMounts of the kube-apiserver container")


@check("The audit policy is an audit.k8s.io/v1 Policy with rules", on="control-plane", points=1,
       needs=["audit_flags"],
       hint="The file named by --audit-policy-file needs `apiVersion: audit.k8s.io/v1`, `kind: Policy` and a list of "
            "`rules` (e.g. one `- level: Metadata`): an empty or unreadable policy stops the API server from "
            "starting. See the notebook's Step 3 and kubernetes.io 'Auditing'.")
def test_audit_policy(host):
    pod, c, policy, _ = _audit_flags(host)
    path = _host_path_for(pod, c, policy)[0]
    text = host.run("sudo -n cat %s", path)
    expect_true(text.rc == 0, f"a policy file at {path} on the node", text.stderr.strip() or "missing",
                what="audit policy")
    try:
        doc = load_yaml(text.stdout) or {}
    except yaml.YAMLError:
        fail("YAML", f"{path} does not parse", what="audit policy")
    got = {"apiVersion": doc.get("apiVersion") if isinstance(doc, dict) else None,
           "kind": doc.get("kind") if isinstance(doc, dict) else None,
           "rules": "present" if isinstance(doc, dict) and doc.get("rules") else "(none)"}
    expect_equal(got, {"apiVersion": "audit.k8s.io/v1", "kind": "Policy", "rules": "present"}, what=path)


@check("The API server is healthy and writing the audit log", on="control-plane", points=1,
       needs=["audit_policy"], wait_s=60, interval_s=5,
       hint="After the manifest changed, the kubelet restarts the API server within seconds. If it does not come "
            "back: `sudo crictl ps -a --name kube-apiserver` and `sudo crictl logs <id>` (or `journalctl -u kubelet`) "
            "name the missing file or the bad flag. Fix the manifest, and the kubelet tries again.")
def test_audit_log_written(host, course):
    ready = host.run("curl -sk -m 5 https://127.0.0.1:6443/readyz").stdout.strip()
    expect_equal(ready, "ok", what="GET /readyz of the API server")
    path, _ = _log_files(host)
    age = host.run("sudo -n sh -c %s", f'echo $(( $(date +%s) - $(stat -c %Y {shlex.quote(path)}) ))')
    got = age.stdout.strip()
    expect_true(age.rc == 0 and got.lstrip("-").isdigit(), f"{path} on the node", "missing", what="audit log")
    expect_true(int(got) <= AUDIT_FRESH_S, f"written within the last {AUDIT_FRESH_S}s",
                f"last written {got}s ago", what=path)


# ------------------------------------------------------------------------------------------------
# the new user: certificate, authorization, its request in the audit log
# ------------------------------------------------------------------------------------------------

@check(f"{NEW_USER}'s certificate was issued through an approved CertificateSigningRequest", on="cluster", points=1,
       hint=f"Make a key and a CSR with `openssl req -new -subj \"/CN={NEW_USER}/O={NEW_USER_GROUP}\"`, send it as a "
            f"CertificateSigningRequest (certificates.k8s.io/v1) with signerName {CSR_SIGNER} and usages "
            f"[client auth], then `kubectl certificate approve {NEW_USER}` and take the certificate from "
            "`.status.certificate`. The controller manager deletes issued CSRs after an hour: then the approval in the "
            "audit log counts.")
def test_user_certificate(kube, hosts, course):
    csrs = _csrs_for_user(kube)
    if not csrs:
        # the csrcleaner removes approved CSRs an hour after approval; the audit log still has the approval
        approvals = [e for e in _grep_log(hosts[course.control_plane.name], ('"subresource":"approval"',))
                     if (e.get("objectRef") or {}).get("resource") == "certificatesigningrequests"
                     and (e.get("objectRef") or {}).get("name") == NEW_USER
                     and (e.get("responseStatus") or {}).get("code") == 200]
        expect_true(bool(approvals), f"a CertificateSigningRequest for CN={NEW_USER} (or, after the hourly clean-up, "
                    f"its approval in the audit log)", "none", what="kubectl get csr")
        return
    state = {c.metadata.name: (_csr_state(c), c.spec.signer_name) for c in csrs}
    good = [c for c in csrs if c.spec.signer_name == CSR_SIGNER and _csr_state(c) == "Approved,Issued"]
    expect_true(bool(good), f"a CSR for CN={NEW_USER} with signer {CSR_SIGNER}, Approved,Issued",
                {k: f"{s} ({sig})" for k, (s, sig) in state.items()}, what="kubectl get csr")
    cn, orgs = _certificate_subject(good[0].status.certificate)
    expect_equal({"CN": cn, "O": sorted(orgs)}, {"CN": NEW_USER, "O": [NEW_USER_GROUP]},
                 what=f"subject of the certificate issued for {good[0].metadata.name}")


@check(f"{NEW_USER} may get, list and watch nodes", on="cluster", points=1, needs=["user_certificate"],
       hint=f"Create a ClusterRole (nodes are cluster-scoped: a namespaced Role cannot grant them) with rules "
            f"apiGroups [\"\"], resources [nodes], verbs [get, list, watch], and a ClusterRoleBinding of it to the "
            f"User {NEW_USER}. Check with `kubectl auth can-i list nodes --as {NEW_USER} --as-group {NEW_USER_GROUP}`.")
def test_user_reads_nodes(kube, hosts, course):
    groups = _user_groups(kube, hosts[course.control_plane.name])
    got = {f"{verb} {res}": _may(kube, groups, verb, res) for verb, res in ALLOWED}
    expect_equal(got, {k: True for k in got}, what=f"SubjectAccessReview for {NEW_USER} (groups {groups})")


@check(f"{NEW_USER} may do nothing else: not delete or change nodes, not read pods or secrets", on="cluster",
       points=1, needs=["user_certificate"],
       hint=f"{NEW_USER} must hold only get/list/watch on nodes. Look for a broader binding: "
            f"`kubectl get clusterrolebindings,rolebindings -A -o wide | grep -e {NEW_USER} -e {NEW_USER_GROUP}`, "
            "a ClusterRole with verbs or resources `*`, or a certificate with O=system:masters (a group every "
            "authorizer lets through; make a new key and CSR without it).")
def test_user_nothing_else(kube, hosts, course):
    groups = _user_groups(kube, hosts[course.control_plane.name])
    got = {f"{verb} {res}" + (f" -n {ns}" if ns else ""): _may(kube, groups, verb, res, ns)
           for verb, res, ns in DENIED}
    expect_equal(got, {k: False for k in got}, what=f"SubjectAccessReview for {NEW_USER} (groups {groups})")


@check(f"The audit log holds {NEW_USER}'s own `list nodes`, answered 200", on="control-plane", points=1,
       needs=["audit_log_written"],
       hint=f"Run `kubectl --kubeconfig ~/lab06/{NEW_USER}.kubeconfig get nodes` with {NEW_USER}'s own certificate "
            f"(not `--as {NEW_USER}`: that is the admin impersonating it, recorded as kubernetes-admin), after "
            "auditing is on and the ClusterRoleBinding exists; then look for it: "
            f"`sudo grep '\"username\":\"{NEW_USER}\"' /var/log/kubernetes/audit/audit.log`.")
def test_audit_user_list(host):
    seen = _user_events(host, NEW_USER)
    if not _own_node_lists(host):
        summary = sorted({f"{e.get('verb')} {(e.get('objectRef') or {}).get('resource')} -> "
                          f"{(e.get('responseStatus') or {}).get('code')}" for e in seen})
        fail(f"an event: user {NEW_USER}, verb list, resource nodes, code 200",
             ", ".join(summary[:8]) if summary else f"no event by {NEW_USER} at all", what="audit log")


# ------------------------------------------------------------------------------------------------
# answers the learner found, recomputed
# ------------------------------------------------------------------------------------------------

@check("The HTTP status you found for a request without credentials is the API server's", on="control-plane",
       points=1, needs=["audit_log_written"],
       hint="Step 2: `curl -sk -o /dev/null -w '%{http_code}\\n' https://<control plane>:6443/api/v1/nodes` — no "
            "certificate, no token. Record the code with `%answer lab06 anonymous_status <code>`.")
def test_answer_anonymous(host, answers, course):
    # a GET with no credentials changes nothing (the anonymous user reads nothing)
    code = host.run(f"curl -sk -m 5 -o /dev/null -w '%{{http_code}}' https://{course.control_plane.ip}:6443/api/v1/nodes")
    answers.expect("anonymous_status", code.stdout.strip(),
                   where="the HTTP status of GET /api/v1/nodes sent without any credentials")


@check(f"The auditID you found is one of {NEW_USER}'s `list nodes` events", on="control-plane", points=1,
       needs=["audit_user_list"],
       hint=f"Step 7: the `auditID` field of an audit event with user.username {NEW_USER}, verb list, resource nodes. "
            "Record it with `%answer lab06 audit_id <auditID>`.")
def test_answer_audit_id(host, answers):
    ids = {e.get("auditID") for e in _own_node_lists(host)}
    answers.expect("audit_id", sorted(ids)[0] if ids else "", same=lambda given, live: given in ids,
                   where=f"the auditID of one of {NEW_USER}'s own list-nodes events")


@check(f"The groups you found are those the API server saw for {NEW_USER}", on="control-plane", points=1,
       needs=["audit_user_list"],
       hint=f"Step 7: `user.groups` in {NEW_USER}'s audit event: the certificate's O plus what the authenticator adds. "
            "Record them comma-separated: `%answer lab06 user_groups <group>,<group>`.")
def test_answer_groups(host, answers):
    events = _own_node_lists(host)
    live = sorted((events[-1].get("user") or {}).get("groups") or []) if events else []

    def same(given, _live):
        return sorted(g.strip() for g in given.split(",") if g.strip()) == live
    answers.expect("user_groups", ",".join(live), same=same,
                   where=f"user.groups of {NEW_USER}'s list-nodes event in the audit log")
