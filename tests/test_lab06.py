"""Lab 6 — the API server: the grader against the twins' real kubeadm v1.20.2 cluster, with the solution notebook's
own cells run by a real kernel, and on a real kubeadm manifest where a check reads only a file.

Kinds of proof, named in every test's docstring:

- "real 1.20 cluster on twins": the solution notebook's cells executed (nbclient, `%%node master` over SSH) on the
  shared cluster, then graded live; each realistic mistake applied there for real, graded, and put back.
  Everything this lab does exists on 1.20 as on 1.36 (audit.k8s.io/v1, certificates.k8s.io/v1 with the
  kube-apiserver-client signer, rbac/v1, ResourceQuota admission, anonymous 403 / bad token 401).
- "recorded evidence modelled on shared/realdata/static-pod-manifests": the notebook's manifest edit run on a real
  kubeadm v1.29 kube-apiserver.yaml, and the flags check read from it through a stand-in host that answers `cat`
  (simulation of the node; the file is real).

The module puts the cluster back in a `finally`: the original kube-apiserver.yaml (API server healthy and without
audit flags), and no CSR, RBAC objects, namespace, files or answers of this lab left behind.
"""

from __future__ import annotations

import json
import re
import subprocess
import time
from pathlib import Path
from types import SimpleNamespace

import nbformat
import pytest

from helpers import (REPO, by_check, grade_live, load_grader, not_passing, on_node, run_cells_live, shared_realdata,
                     wait_for)
from kubelab.engine import CheckFailed

LAB = "lab06"
KUBECTL = "kubectl --kubeconfig=/etc/kubernetes/admin.conf"
MANIFEST = "/etc/kubernetes/manifests/kube-apiserver.yaml"
USER = "ada"  # the grader's NEW_USER (asserted below)
PHASE_1 = ("load-extension", "lab-values", "show-http", "curl", "check-curl", "answer-anonymous", "audit",
           "check-audit", "user", "check-user")
PHASE_2 = ("load-extension", "lab-values", "rbac", "check-rbac", "admission", "check-admission", "find-event",
           "show-event", "answer-event")


GRADER = load_grader("lab06_api_server.py")


def _solution():
    return nbformat.read(REPO / "solutions" / "lab06" / "lab06_api_server.ipynb", as_version=4)


def _cell(grade_id: str) -> str:
    (c,) = [c for c in _solution().cells if c.metadata.get("nbgrader", {}).get("grade_id") == grade_id]
    return c.source


# -------------------------------------------------------------------------------------------------
# the manifest edit on a real kubeadm manifest (no twins)
# -------------------------------------------------------------------------------------------------

class _FileHost:
    """Stands in for the control plane: answers `sudo -n cat <path>` from a dict of real file contents."""

    def __init__(self, files: dict[str, str]):
        self.files = files

    def run(self, command, *args):
        path = args[0] if args else command.split()[-1]
        if command.startswith("sudo -n cat") and path in self.files:
            return SimpleNamespace(rc=0, stdout=self.files[path], stderr="")
        return SimpleNamespace(rc=1, stdout="", stderr=f"cat: {path}: No such file or directory")


def _edited_manifest(tmp_path: Path) -> str:
    """The notebook's own sed edit (from its `audit` cell) applied to a real kubeadm kube-apiserver.yaml."""
    (real,) = sorted(shared_realdata("static-pod-manifests").glob("*kube-apiserver.yaml"))
    work = tmp_path / "kube-apiserver.yaml.audit"
    work.write_text(real.read_text())
    sed = re.search(r"^  sed -i \\\n(?:    .*\\\n)+    kube-apiserver\.yaml\.audit$", _cell("audit"), re.M)
    assert sed, "the audit cell's sed command"
    subprocess.run(["bash", "-euc", sed.group(0)], cwd=tmp_path, check=True)
    return work.read_text()


def test_notebook_edit_of_a_real_manifest_passes_the_flags_check(tmp_path):
    """recorded evidence modelled on shared/realdata/static-pod-manifests: the notebook's sed edit of a real kubeadm
    kube-apiserver.yaml gives the flags and the two mounts the flags check wants (read through a stand-in host)."""
    text = _edited_manifest(tmp_path)
    assert "--audit-log-path=/var/log/kubernetes/audit/audit.log" in text
    GRADER.test_audit_flags(_FileHost({GRADER.APISERVER_MANIFEST: text}))   # raises CheckFailed on a failure
    pod, c, policy, log = GRADER._audit_flags(_FileHost({GRADER.APISERVER_MANIFEST: text}))
    assert GRADER._host_path_for(pod, c, policy) == ("/etc/kubernetes/audit/policy.yaml", True)
    assert GRADER._host_path_for(pod, c, log) == ("/var/log/kubernetes/audit/audit.log", False)


def test_flags_without_the_log_mount_or_with_it_read_only_fail(tmp_path):
    """recorded evidence modelled on shared/realdata/static-pod-manifests: the same edited real manifest with the
    audit-log volumeMount removed, then with it readOnly — the flags check fails naming the path; the untouched
    real manifest fails on the flags themselves."""
    text = _edited_manifest(tmp_path)
    no_mount = text.replace("    - mountPath: /var/log/kubernetes/audit\n      name: audit-log\n", "")
    with pytest.raises(CheckFailed) as e:
        GRADER.test_audit_flags(_FileHost({GRADER.APISERVER_MANIFEST: no_mount}))
    assert "no hostPath volume mounted there" in e.value.actual and e.value.expected == "(none)"
    read_only = text.replace("      name: audit-log\n", "      name: audit-log\n      readOnly: true\n", 1)
    with pytest.raises(CheckFailed) as e:
        GRADER.test_audit_flags(_FileHost({GRADER.APISERVER_MANIFEST: read_only}))
    assert "mounted readOnly" in e.value.actual
    (real,) = sorted(shared_realdata("static-pod-manifests").glob("*kube-apiserver.yaml"))
    with pytest.raises(CheckFailed) as e:
        GRADER.test_audit_flags(_FileHost({GRADER.APISERVER_MANIFEST: real.read_text()}))
    assert "(not set)" in e.value.actual


class _LocalHost(_FileHost):
    """Stands in for the control plane whose audit log is a real file in a temporary folder: `cat` of the manifest
    from the dict, every other command run here by bash (without `sudo -n`: the test runs as root)."""

    def run(self, command, *args):
        import shlex

        if command.startswith("sudo -n cat"):
            return super().run(command, *args)
        line = command % tuple(shlex.quote(a) for a in args) if args else command
        line = line.removeprefix("sudo -n ")
        p = subprocess.run(["bash", "-c", line], capture_output=True, text=True)
        return SimpleNamespace(rc=p.returncode, stdout=p.stdout, stderr=p.stderr)


def _event(user: str, code: int, *, groups=("lab06-readers", "system:authenticated"), impersonated: str = "",
           audit_id: str = "0d4c8f0e-5b7a-4c39-9a51-6a2f2b1c0001") -> str:
    """One audit line as the 1.20 API server on the twins wrote it for `kubectl get nodes` (compact JSON, level
    Metadata, stage ResponseComplete; see shared/reference/tracing-on-twins.md)."""
    event = {"kind": "Event", "apiVersion": "audit.k8s.io/v1", "level": "Metadata", "auditID": audit_id,
             "stage": "ResponseComplete", "requestURI": "/api/v1/nodes?limit=500", "verb": "list",
             "user": {"username": user, "groups": list(groups)}, "sourceIPs": ["192.168.56.10"],
             "userAgent": "kubectl/v1.20.2 (linux/amd64) kubernetes/faecb19",
             "objectRef": {"resource": "nodes", "apiVersion": "v1"},
             "responseStatus": {"metadata": {}, "code": code},
             "requestReceivedTimestamp": "2026-11-30T06:00:00.000000Z", "stageTimestamp": "2026-11-30T06:00:00.010000Z",
             "annotations": {"authorization.k8s.io/decision": "allow" if code == 200 else "forbid"}}
    if impersonated:
        event["impersonatedUser"] = {"username": impersonated, "groups": ["lab06-readers"]}
    return json.dumps(event, separators=(",", ":"))


def _audit_host(tmp_path: Path, lines: list[str]) -> _LocalHost:
    tmp_path.mkdir(parents=True)
    text = _edited_manifest(tmp_path).replace("path: /var/log/kubernetes/audit\n", f"path: {tmp_path}/audit\n")
    (tmp_path / "audit").mkdir()
    (tmp_path / "audit" / "audit.log").write_text("".join(l + "\n" for l in lines))
    return _LocalHost({GRADER.APISERVER_MANIFEST: text})


def test_the_users_own_list_counts_and_impersonation_or_a_refusal_does_not(tmp_path):
    """simulation (an audit log written here in the 1.20 API server's format, read by the grader's own grep through
    the manifest's hostPath): ada's own `list nodes` answered 200 passes audit_user_list; the admin's
    `--as ada` (user kubernetes-admin, impersonatedUser ada) and ada's 403 do not, and the failure shows what ada's
    events were."""
    admin_as_ada = _event("kubernetes-admin", 200, groups=("system:masters", "system:authenticated"), impersonated=USER)
    refused = _event(USER, 403)
    bad = _audit_host(tmp_path / "bad", [admin_as_ada, refused])
    with pytest.raises(CheckFailed) as e:
        GRADER.test_audit_user_list(bad)
    assert e.value.actual == "list nodes -> 403", e.value.actual
    good = _audit_host(tmp_path / "good", [admin_as_ada, refused, _event(USER, 200)])
    GRADER.test_audit_user_list(good)
    assert [ev["auditID"] for ev in GRADER._own_node_lists(good)] == ["0d4c8f0e-5b7a-4c39-9a51-6a2f2b1c0001"]


def _approval(name: str, code: int = 200) -> str:
    """The audit line of `kubectl certificate approve <name>` (PUT .../certificatesigningrequests/<name>/approval)."""
    event = json.loads(_event("kubernetes-admin", code, groups=("system:masters", "system:authenticated")))
    event.update(verb="update", requestURI=f"/apis/certificates.k8s.io/v1/certificatesigningrequests/{name}/approval",
                 objectRef={"resource": "certificatesigningrequests", "name": name, "apiGroup": "certificates.k8s.io",
                            "apiVersion": "v1", "subresource": "approval"})
    return json.dumps(event, separators=(",", ":"))


def test_after_the_hourly_csr_clean_up_the_approval_in_the_audit_log_counts(tmp_path, monkeypatch):
    """simulation (no CSR left, as an hour after approval; an audit log in the 1.20 format): the approval of the CSR
    `ada` in the audit log passes user_certificate; the approval of another CSR, or none, fails it with the hint."""
    monkeypatch.setattr(GRADER, "_csrs_for_user", lambda kube: [])
    course = SimpleNamespace(control_plane=SimpleNamespace(name="master"))
    good = _audit_host(tmp_path / "good", [_approval("csr-x7k2p"), _approval(USER)])
    GRADER.test_user_certificate(None, {"master": good}, course)
    bad = _audit_host(tmp_path / "bad", [_approval("csr-x7k2p"), _event(USER, 200)])
    with pytest.raises(CheckFailed) as e:
        GRADER.test_user_certificate(None, {"master": bad}, course)
    assert e.value.actual == "none" and "after the hourly clean-up" in e.value.expected


def test_notebook_and_grader_name_the_same_user():
    """simulation: the user, group and signer the notebook uses are the grader's constants."""
    values = _cell("lab-values")
    assert f'NEW_USER = "{GRADER.NEW_USER}"' in values and f'NEW_USER_GROUP = "{GRADER.NEW_USER_GROUP}"' in values
    assert GRADER.NEW_USER == USER and f"signerName: {GRADER.CSR_SIGNER}" in _cell("user")


# -------------------------------------------------------------------------------------------------
# live on the twins' cluster
# -------------------------------------------------------------------------------------------------

# everything on the control plane, `sudo -n` before the command (the lab user's shell parses it)
_ssh = on_node("master", sudo="first", timeout=90)


def _run_cells(state, ids, tmp_path):
    source = _solution()
    cells = {c.metadata.get("nbgrader", {}).get("grade_id"): c for c in source.cells}
    return run_cells_live([cells[i] for i in ids], tmp_path, state["ts"], metadata=source.metadata)


def _apiserver_command(ts) -> str:
    return _ssh(ts, f"{KUBECTL} -n kube-system get pod -l component=kube-apiserver "
                    "-o jsonpath='{.items[0].spec.containers[0].command}'").stdout


def _wait_apiserver(ts, audit: bool, what: str):
    """The API server answering /readyz, its mirror pod showing (or not) the audit flags."""
    def seen():
        ready = _ssh(ts, "curl -sk -m 3 https://127.0.0.1:6443/readyz").stdout.strip()
        return ready, "--audit-policy-file" in _apiserver_command(ts) if ready == "ok" else None
    wait_for(seen, what, until=lambda s: s == ("ok", audit), timeout_s=240, interval_s=3)


def _put_manifest(ts, text: str):
    put = _ssh(ts, f"sh -c 'cat > /root/kube-apiserver.yaml.new && cp /root/kube-apiserver.yaml.new {MANIFEST}'",
               input=text)
    assert put.returncode == 0, put.stderr


@pytest.fixture(scope="module")
def lab06(shared_cluster, tmp_path_factory):
    """The shared cluster with the notebook's first phase applied (auditing on, ada certified, no RBAC yet);
    everything of this lab removed afterwards and the original API server manifest back."""
    ts = shared_cluster["ts"]
    original = _ssh(ts, f"cat {MANIFEST}")
    assert original.returncode == 0 and "--audit-policy-file" not in original.stdout, original.stderr
    had_kube_config = _ssh(ts, "test -f ~/.kube/config", sudo=None).returncode == 0
    state = dict(shared_cluster, original=original.stdout)
    try:
        t0 = time.monotonic()
        state["phase1"] = _run_cells(state, PHASE_1, tmp_path_factory.mktemp("lab06-nb1"))
        print(f"lab06 phase 1 cells in {time.monotonic() - t0:.1f}s")
        yield state
    finally:
        _put_manifest(ts, original.stdout)
        try:
            _wait_apiserver(ts, False, "the original API server (no audit flags) back and ready")
        except BaseException:
            shared_cluster["dirty"] = True
            raise
        finally:
            _ssh(ts, f"{KUBECTL} delete csr/{USER} clusterrolebinding/{USER}-node-reader clusterrole/node-reader "
                     "role/node-reader rolebinding/node-reader namespace/lab06-admission --ignore-not-found --wait=true",
                 timeout=180)
            _ssh(ts, "rm -rf /etc/kubernetes/audit /var/log/kubernetes/audit /root/kube-apiserver.yaml.new")
            _ssh(ts, "rm -rf ~/lab06 ~/.kubelab/answers/lab06.json" + ("" if had_kube_config else " ~/.kube/config"),
                 sudo=None)


def test_phase_one_cells_show_the_http_request_and_the_three_statuses(lab06):
    """real 1.20 cluster on twins: the notebook's Step 1-2 cells print kubectl's GET of /api/v1/nodes with 200, the
    admin certificate's subject, and 200 / 403 (system:anonymous) / 401 from curl; Step 3's check sees the audit
    flags in the running API server, Step 4's the CSR Approved,Issued and ada forbidden (no RBAC yet)."""
    out = lab06["phase1"]
    assert "/api/v1/nodes?limit=500" in out["show-http"] and "200 OK" in out["show-http"], out["show-http"]
    assert "CN = kubernetes-admin" in out["curl"] or "CN=kubernetes-admin" in out["curl"], out["curl"]
    assert "system:anonymous" in out["curl"], out["curl"]
    assert "admin 200, anonymous 403, bad token 401" in out["check-curl"], out["check-curl"]
    assert "--audit-log-path=/var/log/kubernetes/audit/audit.log" in out["check-audit"], out["check-audit"]
    assert "Approved,Issued" in out["check-user"] and f'User "{USER}" cannot list' in out["check-user"], out["check-user"]


def test_before_rbac_the_users_refused_list_does_not_count(lab06):
    """real 1.20 cluster on twins, a realistic mistake: ada certified but not bound to any role (and the admin
    asking `get nodes --as ada`, which the audit log records as kubernetes-admin impersonating ada). The auditing
    and certificate checks pass; user_reads_nodes fails with the ClusterRole hint; audit_user_list fails showing
    ada's refused 403; the answers about her event are blocked."""
    ts = lab06["ts"]
    _ssh(ts, f"{KUBECTL} get nodes --as {USER} --as-group lab06-readers")
    result = grade_live(lab06, LAB)
    got = by_check(result)
    for cid in ("audit_flags", "audit_policy", "audit_log_written", "user_certificate", "user_nothing_else",
                "answer_anonymous"):
        assert str(got[cid].status) == "pass", (cid, got[cid].expected, got[cid].actual, got[cid].message)
    reads = got["user_reads_nodes"]
    assert str(reads.status) == "fail" and "list nodes=False" in reads.actual and "ClusterRole" in reads.hint
    listed = got["audit_user_list"]
    assert str(listed.status) == "fail" and "list nodes -> 403" in listed.actual, listed.actual
    assert "--as" in listed.hint
    assert str(got["answer_audit_id"].status) == "blocked" and str(got["answer_groups"].status) == "blocked"


@pytest.fixture(scope="module")
def lab06_done(lab06, tmp_path_factory):
    """Phase 2 of the notebook: the ClusterRole and binding, the admission steps, ada's list and the answers."""
    t0 = time.monotonic()
    lab06["phase2"] = _run_cells(lab06, PHASE_2, tmp_path_factory.mktemp("lab06-nb2"))
    print(f"lab06 phase 2 cells in {time.monotonic() - t0:.1f}s")
    return lab06


def test_solution_notebook_passes_every_check(lab06_done):
    """real 1.20 cluster on twins: after the whole solution notebook every check passes, full marks; the notebook's
    own cells showed the quota refusal and ada's audit event, and recorded the answers."""
    out = lab06_done["phase2"]
    assert "exceeded quota" in out["admission"] and 'namespaces "no-such-namespace" not found' in out["admission"]
    assert f"✓ {USER} may not delete nodes" in out["check-rbac"], out["check-rbac"]
    assert "403" in out["check-admission"], out["check-admission"]
    assert f'"username": "{USER}"' in out["show-event"] and "lab06 audit_id" in out["answer-event"]
    t0 = time.monotonic()
    result = grade_live(lab06_done, LAB)
    print(f"lab06 graded live in {time.monotonic() - t0:.1f}s")
    assert not_passing(result, key="check") == {}, [(c.id, c.expected, c.actual, c.message) for c in result.checks
                                                    if str(c.status) != "pass"]
    assert result.score == result.max_score == 10


def _write_answers(ts, answers: dict):
    body = json.dumps({k: {"value": v, "recorded_at": "2026-11-30T06:00:00+00:00"} for k, v in answers.items()})
    done = _ssh(ts, "sh -c 'mkdir -p ~/.kubelab/answers && cat > ~/.kubelab/answers/lab06.json'", input=body, sudo=None)
    assert done.returncode == 0, done.stderr


def test_wrong_answers_fail_without_showing_the_live_values(lab06_done):
    """real 1.20 cluster on twins: 401 as the anonymous status, a made-up auditID and ada's group without
    system:authenticated — each answer check fails showing what was written and where to look, never the live
    value; the right answers put back pass again."""
    ts = lab06_done["ts"]
    saved = _ssh(ts, "cat ~/.kubelab/answers/lab06.json", sudo=None).stdout
    right = {k: v["value"] for k, v in json.loads(saved).items()}
    _write_answers(ts, {"anonymous_status": "401", "audit_id": "00000000-0000-0000-0000-000000000000",
                        "user_groups": "lab06-readers"})
    try:
        got = by_check(grade_live(lab06_done, LAB))
    finally:
        _write_answers(ts, right)
    for cid, key, wrong in (("answer_anonymous", "anonymous_status", "401"),
                            ("answer_audit_id", "audit_id", "00000000-0000-0000-0000-000000000000"),
                            ("answer_groups", "user_groups", "lab06-readers")):
        c = got[cid]
        assert str(c.status) == "fail" and c.actual == wrong, (cid, c.status, c.actual)
        shown = f"{c.expected} {c.actual} {c.message or ''}"
        assert c.expected.startswith("the value of ") and right[key] not in shown, shown
    assert right["anonymous_status"] == "403" and "system:authenticated" in right["user_groups"]


def test_a_node_reader_allowed_everything_on_nodes_fails_nothing_else(lab06_done):
    """real 1.20 cluster on twins, a realistic mistake: the ClusterRole with verbs ["*"] on nodes — ada may
    delete and update nodes; user_nothing_else fails with them, user_reads_nodes still passes."""
    ts = lab06_done["ts"]
    broad = _ssh(ts, f"{KUBECTL} patch clusterrole node-reader --type=json "
                     "-p='[{\"op\":\"replace\",\"path\":\"/rules/0/verbs\",\"value\":[\"*\"]}]'")
    assert broad.returncode == 0, broad.stderr
    try:
        got = by_check(grade_live(lab06_done, LAB))
    finally:
        back = _ssh(ts, f"{KUBECTL} patch clusterrole node-reader --type=json "
                        "-p='[{\"op\":\"replace\",\"path\":\"/rules/0/verbs\",\"value\":[\"get\",\"list\",\"watch\"]}]'")
    assert back.returncode == 0, back.stderr
    c = got["user_nothing_else"]
    assert str(c.status) == "fail" and "delete nodes=True" in c.actual and "update nodes=True" in c.actual
    assert "O=system:masters" in c.hint
    assert str(got["user_reads_nodes"].status) == "pass"


def test_a_role_instead_of_a_cluster_role_cannot_grant_nodes(lab06_done):
    """real 1.20 cluster on twins, a realistic mistake: the binding replaced by a namespaced Role + RoleBinding
    about nodes in `default` — nodes are cluster-scoped, so ada may not list them: user_reads_nodes fails."""
    ts = lab06_done["ts"]
    role = f"""apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {{name: node-reader, namespace: default}}
rules: [{{apiGroups: [""], resources: [nodes], verbs: [get, list, watch]}}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {{name: node-reader, namespace: default}}
subjects: [{{kind: User, name: {USER}, apiGroup: rbac.authorization.k8s.io}}]
roleRef: {{kind: Role, name: node-reader, apiGroup: rbac.authorization.k8s.io}}
"""
    binding = _ssh(ts, f"{KUBECTL} get clusterrolebinding {USER}-node-reader -o json").stdout
    swap = _ssh(ts, f"sh -c '{KUBECTL} delete clusterrolebinding {USER}-node-reader && {KUBECTL} apply -f -'", input=role)
    assert swap.returncode == 0, swap.stderr
    try:
        got = by_check(grade_live(lab06_done, LAB))
    finally:
        _ssh(ts, f"{KUBECTL} -n default delete role/node-reader rolebinding/node-reader")
        back = _ssh(ts, f"{KUBECTL} create -f -", input=binding)
    assert back.returncode == 0, back.stderr
    c = got["user_reads_nodes"]
    assert str(c.status) == "fail" and "list nodes=False" in c.actual and "namespaced Role" in c.hint


def test_a_pending_csr_fails_the_certificate_check(lab06_done):
    """real 1.20 cluster on twins, a realistic mistake: ada's CSR sent but never approved — user_certificate fails
    with the state Pending and the approve hint; the checks that need it are blocked."""
    ts = lab06_done["ts"]
    csr = json.loads(_ssh(ts, f"{KUBECTL} get csr {USER} -o json").stdout)
    fresh = {"apiVersion": "certificates.k8s.io/v1", "kind": "CertificateSigningRequest",
             "metadata": {"name": USER}, "spec": {k: csr["spec"][k] for k in ("request", "signerName", "usages")}}
    redo = _ssh(ts, f"sh -c '{KUBECTL} delete csr {USER} && {KUBECTL} create -f -'", input=json.dumps(fresh))
    assert redo.returncode == 0, redo.stderr
    try:
        got = by_check(grade_live(lab06_done, LAB))
    finally:
        back = _ssh(ts, f"{KUBECTL} certificate approve {USER}")
    assert back.returncode == 0, back.stderr
    c = got["user_certificate"]
    assert str(c.status) == "fail" and "Pending" in c.actual and "kubectl certificate approve" in c.hint
    assert str(got["user_reads_nodes"].status) == "blocked"


def test_csr_deleted_as_after_an_hour_passes_on_the_audit_log(lab06_done):
    """real 1.20 cluster on twins: ada's CSR deleted (the controller manager's csrcleaner does so an hour after
    approval) — user_certificate passes on the approval recorded in the audit log, and the authorization checks,
    which then take ada's groups from her audit events, still pass. The CSR is sent and approved again after."""
    ts = lab06_done["ts"]
    csr = json.loads(_ssh(ts, f"{KUBECTL} get csr {USER} -o json").stdout)
    gone = _ssh(ts, f"{KUBECTL} delete csr {USER}")
    assert gone.returncode == 0, gone.stderr
    try:
        got = by_check(grade_live(lab06_done, LAB))
    finally:
        fresh = {"apiVersion": "certificates.k8s.io/v1", "kind": "CertificateSigningRequest",
                 "metadata": {"name": USER}, "spec": {k: csr["spec"][k] for k in ("request", "signerName", "usages")}}
        back = _ssh(ts, f"sh -c '{KUBECTL} create -f - && {KUBECTL} certificate approve {USER}'", input=json.dumps(fresh))
    assert back.returncode == 0, back.stderr
    for cid in ("user_certificate", "user_reads_nodes", "user_nothing_else"):
        assert str(got[cid].status) == "pass", (cid, got[cid].expected, got[cid].actual, got[cid].message)


def test_a_policy_without_rules_fails_the_policy_check(lab06_done):
    """real 1.20 cluster on twins, a realistic mistake: the policy file emptied of its rules (the API server only
    reads it at start, so it keeps running) — audit_policy fails with apiVersion/kind/rules, and the checks that
    build on it are blocked."""
    ts = lab06_done["ts"]
    policy = "/etc/kubernetes/audit/policy.yaml"
    _ssh(ts, f"cp {policy} /root/policy.yaml.keep")
    _ssh(ts, f"tee {policy}", input="apiVersion: audit.k8s.io/v1\nkind: Policy\n")
    try:
        got = by_check(grade_live(lab06_done, LAB))
    finally:
        back = _ssh(ts, f"mv /root/policy.yaml.keep {policy}")
    assert back.returncode == 0, back.stderr
    c = got["audit_policy"]
    assert str(c.status) == "fail" and "rules=(none)" in c.actual, c.actual
    assert str(got["audit_log_written"].status) == "blocked" and str(got["audit_user_list"].status) == "blocked"


def test_a_bad_flag_value_keeps_the_api_server_down(lab06_done):
    """real 1.20 cluster on twins, a realistic mistake: `--audit-log-maxage=7d` (not a number) — the manifest has
    flags and mounts, the kubelet starts the new API server and it exits: audit_log_written fails on /readyz
    with the crictl/journalctl hint. Graded on virtual time: every start of that manifest exits the same way, so
    its 60 s of polling /readyz (each poll live) are not waited out in real time."""
    ts = lab06_done["ts"]
    applied = _ssh(ts, f"cat {MANIFEST}").stdout
    _put_manifest(ts, applied.replace("--audit-log-maxage=7\n", "--audit-log-maxage=7d\n"))
    try:
        wait_for(lambda: _ssh(ts, "curl -sk -m 3 https://127.0.0.1:6443/readyz").stdout.strip(),
                 "the old API server to stop", until=lambda s: s != "ok", timeout_s=120, interval_s=2)
        got = by_check(grade_live(lab06_done, LAB, settled=True))
    finally:
        _put_manifest(ts, applied)
        _wait_apiserver(ts, True, "the audited API server back")
    c = got["audit_log_written"]
    assert str(c.status) == "fail" and c.expected == "ok", (c.status, c.actual)
    assert "crictl" in c.hint and str(got["audit_flags"].status) == "pass"


def test_flags_without_the_mounts_fail_the_flags_check(lab06_done):
    """real 1.20 cluster on twins, the classic mistake: the audit flags in the manifest without its volumes and
    volumeMounts — the API server cannot start; audit_flags fails naming both paths, the rest of the auditing
    checks are blocked. The right manifest put back brings the API server up again."""
    ts = lab06_done["ts"]
    applied = _ssh(ts, f"cat {MANIFEST}").stdout
    # the two volumeMounts and the two volumes the notebook added, dropped; the flags stay
    text = re.sub(r"    - mountPath: /etc/kubernetes/audit\n      name: audit-policy\n      readOnly: true\n"
                  r"    - mountPath: /var/log/kubernetes/audit\n      name: audit-log\n", "", applied)
    text = re.sub(r"  - hostPath:\n      path: (/etc/kubernetes/audit|/var/log/kubernetes/audit)\n"
                  r"      type: DirectoryOrCreate\n    name: audit-(policy|log)\n", "", text)
    assert "name: audit-" not in text and "--audit-log-path" in text
    _put_manifest(ts, text)
    try:
        got = by_check(grade_live(lab06_done, LAB))
    finally:
        _put_manifest(ts, applied)
        _wait_apiserver(ts, True, "the audited API server back")
    c = got["audit_flags"]
    assert str(c.status) == "fail" and c.actual.count("no hostPath volume mounted there") == 2, c.actual
    assert "volumeMount" in c.hint
    assert str(got["audit_policy"].status) == "blocked"
