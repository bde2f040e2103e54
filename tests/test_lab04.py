"""Lab 4 — kubeadm init: the grader on a real control plane right after `kubeadm init`, and on recorded evidence
for what that control plane's version cannot show.

Two kinds of proof, each test says which:

- "real 1.20 cluster on twins": `kubeadm init` (v1.20.2 from Debian's archive, kubelab/cluster) on the master twin,
  stopped where Lab 4 ends (`cluster.up(stage="init")`: no pod network, no join). The grader runs live over SSH
  and the kubernetes client, records evidence, and the evidence replays to the same result. 1.20's own forms are
  what the grader must accept there (taint node-role.kubernetes.io/master, ConfigMap kubelet-config-1.20, no
  super-admin.conf); what 1.20 lacks here (the pinned 1.36.4, the kube-proxy addon: the twin cluster skips it)
  fails, and is asserted to. Breaks done live and put back (each restore checked): the scheduler's manifest, a PKI
  file, scheduler.conf and the bootstrap token; the control-plane taint removed; the API server's manifest moved
  out. pinned_version passes live with a course copy pinned to what runs (1.20.2).
- "recorded evidence modelled on shared/realdata/...": a kubeadm v1.36 control plane simulated as data
  (tests/lab04_evidence.py, modelled on the real kubeadm-init-logs, nodes-json, pods-json and
  static-pod-manifests captures, and reading its service IPs from ../shared/realdata at test time), recorded
  through the same recording seam into an evidence file, and graded by replaying that file: the full-marks state
  and one realistic mistake per check, for the 1.36 forms 1.20 cannot show.
"""

from __future__ import annotations

import json
import subprocess
import time

import pytest

from helpers import REPO, kubelab, make_course, settled_time, wait_for
from kubelab.cluster import cluster as cl
from kubelab.course import load_course
from kubelab.engine.runner import run_lab
from kubelab.engine.targets import SshConfigTarget
from kubelab.errors import KubelabError
from kubelab.evidence import comparable, record_lab, replay_lab, save
from kubelab.evidence.redact import find_secrets
from kubelab.evidence.replay import ReplayClock
from lab04_evidence import MISTAKES, Sim136, SimTarget

LAB = "lab04"
ADMIN = "--kubeconfig=/etc/kubernetes/admin.conf"


@pytest.fixture(scope="module")
def course():
    return load_course(REPO)


# ------------------------------------------------------------------------------------------------------------
# recorded evidence modelled on shared/realdata (no twins)
# ------------------------------------------------------------------------------------------------------------

def _record_sim(course, mistake, path, **sim):
    """Record the simulated control plane into an evidence file on virtual time (record_lab's clock): a failing
    api_reachable would otherwise sleep its 30 s of polling against data that cannot change. Recording, grading
    and evidence are the real code; real waiting is proven live (test_lab05's pod_reachable)."""
    live, evidence = record_lab(course, LAB, SimTarget(course, Sim136(course.model, mistake, **sim)), clock=ReplayClock())
    return live, save(evidence, path)


def _by_check(result) -> dict:
    return {c.check: c for c in result.checks}


def test_simulated_136_control_plane_gets_full_marks_from_its_evidence(course, tmp_path):
    """Recorded evidence modelled on shared/realdata/{kubeadm-init-logs,nodes-json,pods-json,static-pod-manifests}:
    v1.36 as kubeadm init leaves it (node NotReady, CoreDNS Pending: not failures), full marks, replay == live."""
    live, path = _record_sim(course, None, tmp_path / "ok.json")
    replayed, evidence = replay_lab(course, LAB, path)
    assert comparable(replayed.to_dict()) == comparable(live.to_dict())
    assert replayed.status == "passed" and replayed.score == replayed.max_score == 15, \
        [(c.id, c.status, c.expected, c.actual, c.message) for c in replayed.checks if str(c.status) != "pass"]
    text = path.read_text()
    assert find_secrets(text) == [], "no key, token or token-secret in the evidence"
    assert "super-admin.conf" in text and "node-role.kubernetes.io/control-plane" in text
    assert "cni plugin not initialized" in text  # the NotReady node was seen and is not held against the learner
    assert {c.check for c in replayed.checks} == {
        "pki_files", "apiserver_sans", "kubeconfigs", "static_pods", "api_reachable", "control_plane_pods",
        "advertise_address", "node_ip", "control_plane_node", "kubeadm_configmaps", "pinned_version",
        "bootstrap_token", "addons", "lab_user_kubeconfig"}


# mistake -> {check: words in `actual`}; every other check passes (or is blocked, where named)
EXPECTED = {
    "nat_advertise": {"apiserver_sans": "missing: 192.168.56.10", "kubeconfigs": "https://10.0.2.15:6443",
                      "api_reachable": "no alternative certificate subject name", "advertise_address": "10.0.2.15"},
    "kubelet_nat_ip": {"node_ip": "10.0.2.15"},
    "taint_removed": {"control_plane_node": "missing: node-role.kubernetes.io/control-plane:NoSchedule"},
    "calico_cidr": {"kubeadm_configmaps": "podSubnet=192.168.0.0/16"},
    "wrong_version": {"pinned_version": "v1.35.2"},
    "skip_bootstrap_token": {"bootstrap_token": "kubeadm:kubelet-bootstrap=missing",
                             "kubeadm_configmaps": "missing: kube-public/cluster-info"},
    "no_kube_proxy": {"addons": "missing: DaemonSet kube-proxy"},
    "no_super_admin": {"kubeconfigs": "missing: super-admin.conf"},
    "apiserver_down": {"static_pods": "missing: kube-apiserver.yaml", "api_reachable": "Failed to connect",
                       "advertise_address": "no readable kube-apiserver.yaml"},
}
BLOCKED_BY_API = {"control_plane_pods", "node_ip", "control_plane_node", "kubeadm_configmaps", "pinned_version",
                  "bootstrap_token", "addons", "lab_user_kubeconfig"}
HINT_WORDS = {"node_ip": "node-ip", "apiserver_sans": "--apiserver-advertise-address",
              "advertise_address": "--apiserver-advertise-address",
              "kubeconfigs": "super-admin.conf", "api_reachable": "no alternative certificate subject name",
              "control_plane_node": "kubectl taint nodes", "kubeadm_configmaps": "--pod-network-cidr",
              "pinned_version": "--kubernetes-version", "bootstrap_token": "kubeadm token create",
              "addons": "kube-proxy", "static_pods": "/etc/kubernetes/manifests"}


@pytest.mark.parametrize("mistake", sorted(EXPECTED))
def test_each_mistake_fails_its_check_with_the_hint(course, tmp_path, mistake):
    """Recorded evidence modelled on shared/realdata (as above) with one realistic mistake (lab04_evidence.MISTAKES):
    the checks it breaks fail with expected vs actual and the hint; checks that need the API are blocked, not
    failed, when the API is out of reach; the rest pass. Graded by replaying the saved evidence."""
    live, path = _record_sim(course, mistake, tmp_path / f"{mistake}.json")
    replayed, _ = replay_lab(course, LAB, path)
    assert comparable(replayed.to_dict()) == comparable(live.to_dict())
    got = _by_check(replayed)
    api_down = "api_reachable" in EXPECTED[mistake]
    for name, c in got.items():
        if name in EXPECTED[mistake]:
            assert str(c.status) == "fail", (mistake, name, c.status, c.message)
            assert EXPECTED[mistake][name] in c.actual, (mistake, name, c.actual)
            assert c.expected and c.expected != c.actual
            assert HINT_WORDS[name] in c.hint, (name, c.hint)
        elif api_down and name in BLOCKED_BY_API:
            assert str(c.status) == "blocked" and c.blocked_by == ["api_reachable[cluster]"], (name, c.status)
        else:
            assert str(c.status) == "pass", (mistake, name, c.status, c.expected, c.actual, c.message)
    assert 0 <= replayed.score < replayed.max_score == 15


def test_every_mistake_is_exercised():
    assert set(EXPECTED) == set(MISTAKES)


@pytest.mark.parametrize("endpoint,status", [("name", "pass"), ("name_loopback", "fail"),
                                             ("name_loopback_first", "fail")])
def test_control_plane_endpoint_by_node_name(course, tmp_path, endpoint, status):
    """Recorded evidence modelled on shared/realdata (as above), init with `controlPlaneEndpoint: master:6443`: the
    kubeconfigs say https://master:6443. Passing when the control plane resolves that name to its private IP
    (`getent ahostsv4`, Lab 1's /etc/hosts); failing when it resolves to Debian's 127.0.1.1 hostname line."""
    live, path = _record_sim(course, None, tmp_path / f"{endpoint}.json", endpoint=endpoint)
    replayed, _ = replay_lab(course, LAB, path)
    assert comparable(replayed.to_dict()) == comparable(live.to_dict())
    got = _by_check(replayed)
    c = got["kubeconfigs"]
    assert str(c.status) == status, (c.expected, c.actual)
    if status == "fail":
        assert c.actual == f"https://{course.model.control_plane.name}:6443" and c.expected != c.actual
    others = [n for n, x in got.items() if n != "kubeconfigs" and str(x.status) != "pass"]
    assert not others, others


@pytest.mark.parametrize("next_day", ["expired", "cleaned"])
def test_a_correct_init_regraded_the_next_day_keeps_full_marks(course, tmp_path, next_day):
    """Recorded evidence modelled on shared/realdata (as above), no mistake, graded again 25 h after init: the
    default token's 24 h ran out ("expired": its Secret still there; "cleaned": deleted by the controller
    manager's token cleaner, what a regrade sees). bootstrap_token keeps passing: the check asks for kubeadm's
    RBAC that lets any token of the default group join, which outlives the token (Lab 5 creates a fresh token).
    Its failing case is the `skip_bootstrap_token` mistake above."""
    live, path = _record_sim(course, None, tmp_path / f"{next_day}.json", next_day=next_day)
    replayed, _ = replay_lab(course, LAB, path)
    assert comparable(replayed.to_dict()) == comparable(live.to_dict())
    assert replayed.status == "passed" and replayed.score == replayed.max_score, \
        [(c.id, c.status, c.expected, c.actual) for c in replayed.checks if str(c.status) != "pass"]


def test_a_question_the_simulation_cannot_answer_is_an_error_not_a_fail(course, tmp_path):
    """Simulation: a check asking the simulated nodes something the simulation does not model gets status
    "error" with the gap named (an infrastructure error), never a learner-facing "fail"."""
    grader = """
        from kubelab.engine import check

        @check("asks what the simulation does not model", on="control-plane", points=1, hint="none")
        def test_unmodelled(host):
            host.run("systemctl is-active kubelet")
    """
    copy = load_course(make_course(tmp_path, grader, lab_id=LAB))
    result = run_lab(copy, LAB, SimTarget(copy, Sim136(copy.model)))
    (c,) = result.checks
    assert str(c.status) == "error", (c.status, c.actual, c.message)
    assert "the simulated control plane has no answer for `systemctl is-active kubelet`" in c.message, c.message


# ------------------------------------------------------------------------------------------------------------
# real 1.20 cluster on twins, stopped after kubeadm init
# ------------------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def init_cluster(twins):
    """The twins as a control plane right after `kubeadm init` (no pod network, no join); plain fresh twins
    again afterwards for the modules that follow."""
    course = load_course(REPO)
    t0 = time.monotonic()
    try:
        ts, timings = cl.up(course, progress=print, stage="init")
    except KubelabError as e:
        cl.down(course)
        twins.up(fresh=True, progress=None)
        pytest.fail(f"cluster did not come up: {e.problem}", pytrace=False)
    print(f"stage init: {time.monotonic() - t0:.1f}s (kubeadm init {timings.init_s:.1f}s)")
    try:
        yield {"course": course, "ts": ts, "timings": timings}
    finally:
        cl.down(course)
        twins.up(fresh=True, progress=None)


def _ssh(ts, node: str, cmd: str, user_cmd: bool = False, timeout: float = 90) -> subprocess.CompletedProcess:
    return subprocess.run(["ssh", "-F", str(ts.ssh_config_file()), node, cmd if user_cmd else f"sudo -n {cmd}"],
                          capture_output=True, text=True, timeout=timeout)


def _grade_cli(ssh_config, tmp_path, name):
    """`kubelab grade lab04` live with --record, then --replay of that evidence: the same result (issue 4)."""
    out, evidence, replayed = (tmp_path / f"{name}{s}" for s in (".json", ".evidence.json", ".replay.json"))
    p = kubelab("grade", LAB, "--ssh-config", str(ssh_config), "--json", str(out), "--record", str(evidence),
                "--course", str(REPO))
    r = kubelab("grade", LAB, "--replay", str(evidence), "--json", str(replayed), "--course", str(REPO))
    live = json.loads(out.read_text())
    assert r.returncode == p.returncode, (p.stdout, r.stdout, r.stderr)
    assert comparable(json.loads(replayed.read_text())) == comparable(live)
    assert find_secrets(evidence.read_text()) == []
    return p, {c["check"]: c for c in live["checks"]}


def _grade(course, ts, settled: bool = False):
    """Graded live; `settled`: on virtual time, for a state that stays broken while the checks poll (helpers)."""
    target = SshConfigTarget(course, ts.ssh_config_file())
    try:
        return _by_check(run_lab(course, LAB, target, **(settled_time() if settled else {})))
    finally:
        target.close()


@pytest.mark.cluster  # and twins (conftest marks every test that uses them)
def test_right_after_init_the_grader_sees_what_kubeadm_left(init_cluster, tmp_path):
    """Real 1.20 cluster on twins, right after kubeadm init: PKI + SANs, kubeconfigs, the four static pods running,
    the API at https://192.168.56.10:6443 from both nodes, advertise address and node IP, the uploaded ConfigMaps
    (1.20: kubelet-config-1.20), the control-plane label and (1.20: master) taint, the bootstrap token and CoreDNS
    all pass, while the node is NotReady and CoreDNS Pending (no pod network yet: expected, not failed).
    Failing for real: no ~/.kube/config for the lab user yet ("localhost:8080"), 1.20.2 is not the pinned 1.36.4,
    and the twin cluster has no kube-proxy addon. Live result == replay of its evidence."""
    ts = init_cluster["ts"]
    p, got = _grade_cli(ts.ssh_config_file(), tmp_path, "after-init")
    assert p.returncode == 1, p.stdout + p.stderr
    failing = {"lab_user_kubeconfig": "localhost:8080", "pinned_version": "v1.20.2",
               "addons": "missing: DaemonSet kube-proxy"}
    for name, c in got.items():
        if name in failing:
            assert c["status"] == "fail" and failing[name] in c["actual"], c
            assert c["hint"] and c["expected"] != c["actual"]
        else:
            assert c["status"] == "pass", c
    assert got["pinned_version"]["expected"] == "v1.36.4"
    # the pre-CNI state the grader must not hold against the learner, seen on the same cluster
    node = _ssh(ts, "master", f"kubectl {ADMIN} get node master -o jsonpath="
                "'{.status.conditions[?(@.type==\"Ready\")].status} {.status.conditions[?(@.type==\"Ready\")].message}'")
    assert node.stdout.startswith("False") and "cni plugin not initialized" in node.stdout, node.stdout
    dns = _ssh(ts, "master", f"kubectl {ADMIN} -n kube-system get pods -l k8s-app=kube-dns "
               "-o jsonpath='{.items[*].status.phase} {.items[*].status.conditions[*].message}'")
    assert dns.stdout.startswith("Pending Pending") and "node.kubernetes.io/not-ready" in dns.stdout, dns.stdout


@pytest.mark.cluster  # and twins (conftest marks every test that uses them)
def test_lab_user_kubeconfig_as_the_notebook_writes_it(init_cluster, course):
    """Real 1.20 cluster on twins: the lab user copies admin.conf to ~/.kube/config exactly as kubeadm's success
    message (and the notebook) says; `kubectl get node` as that user then works and the check passes."""
    ts = init_cluster["ts"]
    before = _ssh(ts, "master", "kubectl get nodes", user_cmd=True)
    assert before.returncode != 0 and "localhost:8080" in before.stderr + before.stdout
    made = _ssh(ts, "master", "mkdir -p $HOME/.kube && sudo cp -i /etc/kubernetes/admin.conf $HOME/.kube/config "
                "&& sudo chown $(id -u):$(id -g) $HOME/.kube/config && kubectl get nodes", user_cmd=True)
    assert made.returncode == 0 and "NotReady" in made.stdout, made.stdout + made.stderr
    try:
        got = _grade(course, ts)
    finally:
        removed = _ssh(ts, "master", "rm -r $HOME/.kube", user_cmd=True)
    assert str(got["lab_user_kubeconfig"].status) == "pass", got["lab_user_kubeconfig"]
    # back to the state right after init, which the other tests of this module start from
    assert removed.returncode == 0, removed.stderr
    again = _ssh(ts, "master", "kubectl get nodes", user_cmd=True)
    assert again.returncode != 0 and "localhost:8080" in again.stderr + again.stdout


@pytest.mark.cluster  # and twins (conftest marks every test that uses them)
def test_breaks_fail_their_checks_live(init_cluster, course):
    """Real 1.20 cluster on twins, four realistic breaks at once: the scheduler's manifest moved out (its mirror pod
    goes away), a PKI file and scheduler.conf moved away, kubeadm's ClusterRoleBinding for joining tokens deleted
    (a deleted or expired token is no break: see the next-day test). Each fails its own check with
    expected vs actual; the others still pass. Everything is put back afterwards. Graded on virtual time (the
    breaks stay while it grades): control_plane_pods' polls give up at once instead of waiting 60 s."""
    ts = init_cluster["ts"]
    listed = _ssh(ts, "master", "kubeadm token list").stdout.splitlines()
    token = listed[1].split()[0].split(".")[0] if len(listed) > 1 else ""
    assert token, "no bootstrap token after init"
    broke = _ssh(ts, "master", "sh -c 'mkdir -p /root/moved && mv /etc/kubernetes/manifests/kube-scheduler.yaml "
                 "/etc/kubernetes/pki/front-proxy-client.crt /etc/kubernetes/scheduler.conf /root/moved/'")
    assert broke.returncode == 0, broke.stderr
    assert _ssh(ts, "master", f"kubectl {ADMIN} delete clusterrolebinding kubeadm:kubelet-bootstrap").returncode == 0
    try:
        # kubelet stops the static pod and deletes its mirror pod
        wait_for(lambda: _ssh(ts, "master", f"kubectl {ADMIN} -n kube-system get pod kube-scheduler-master").returncode,
                 "the scheduler's mirror pod to go after its manifest was moved out", until=lambda rc: rc != 0)
        got = _grade(course, ts, settled=True)  # nothing puts the files back while it grades
        fails = {"static_pods": "missing: kube-scheduler.yaml", "control_plane_pods": "kube-scheduler=missing",
                 "pki_files": "missing: front-proxy-client.crt", "kubeconfigs": "missing: scheduler.conf",
                 "bootstrap_token": "kubeadm:kubelet-bootstrap=missing"}
        for name, words in fails.items():
            c = got[name]
            assert str(c.status) == "fail" and words in c.actual, (name, c.status, c.actual, c.message)
        for name in ("api_reachable", "apiserver_sans", "advertise_address", "node_ip", "control_plane_node",
                     "kubeadm_configmaps"):
            assert str(got[name].status) == "pass", got[name]
    finally:
        back = _ssh(ts, "master", "sh -c 'mv /root/moved/scheduler.conf /etc/kubernetes/ && "
                    "mv /root/moved/front-proxy-client.crt /etc/kubernetes/pki/ && "
                    "mv /root/moved/kube-scheduler.yaml /etc/kubernetes/manifests/ && rmdir /root/moved'")
        rbac = _ssh(ts, "master", f"kubectl {ADMIN} create clusterrolebinding kubeadm:kubelet-bootstrap "
                    "--clusterrole=system:node-bootstrapper --group=system:bootstrappers:kubeadm:default-node-token")
    assert back.returncode == 0 and rbac.returncode == 0, (back.stderr, rbac.stderr)
    _assert_as_after_init(ts)


@pytest.mark.cluster  # and twins (conftest marks every test that uses them)
def test_next_day_regrade_without_the_token_passes_live(init_cluster, course):
    """Real 1.20 cluster on twins: the state a regrade the next day sees — the default token deleted, as the
    controller manager's token cleaner does when its 24 h run out (here `kubeadm token delete`, the same
    deletion of the Secret). bootstrap_token still passes: kubeadm's RBAC for joining tokens is there. (Its
    failing case, that RBAC removed, is in test_breaks_fail_their_checks_live.)"""
    ts = init_cluster["ts"]
    for line in _ssh(ts, "master", "kubeadm token list").stdout.splitlines()[1:]:
        assert _ssh(ts, "master", f"kubeadm token delete {line.split()[0]}").returncode == 0
    assert len(_ssh(ts, "master", "kubeadm token list").stdout.strip().splitlines()) <= 1, "a token is left"
    try:
        got = _grade(course, ts)
    finally:
        # back to the state after init for the tests after this one: a bootstrap token
        made = _ssh(ts, "master", "kubeadm token create")
    assert made.returncode == 0, made.stderr
    c = got["bootstrap_token"]
    assert str(c.status) == "pass", (c.status, c.expected, c.actual, c.message)


def _assert_as_after_init(ts):
    """What kubeadm init left, checked after a test put it back: the scheduler's mirror pod Ready, the API
    answering, a bootstrap token."""
    # polled, not `kubectl wait`: a mirror pod may be gone for a moment while kubelet re-creates it
    wait_for(lambda: _ssh(ts, "master", f"kubectl {ADMIN} -n kube-system get pod kube-scheduler-master "
                          "kube-apiserver-master -o jsonpath='{.items[*].status.conditions[?(@.type==\"Ready\")].status}'"
                          ).stdout.split(), "the scheduler's and the API server's mirror pods to be Ready",
             until=lambda s: s == ["True", "True"], timeout_s=180, interval_s=3)
    tokens = _ssh(ts, "master", "kubeadm token list").stdout.splitlines()
    assert len(tokens) > 1 and "system:bootstrappers:kubeadm:default-node-token" in tokens[1], tokens


@pytest.mark.cluster  # and twins (conftest marks every test that uses them)
def test_control_plane_taint_removed_fails_live(init_cluster, course):
    """Real 1.20 cluster on twins: the single-node tutorial step `kubectl taint nodes --all <role>-` (1.20's key:
    node-role.kubernetes.io/master) — control_plane_node fails showing the taints, everything else as after
    init. The taint is put back and checked."""
    ts = init_cluster["ts"]
    taint = "node-role.kubernetes.io/master"
    untainted = _ssh(ts, "master", f"kubectl {ADMIN} taint nodes --all {taint}-")
    assert untainted.returncode == 0, untainted.stderr
    try:
        got = _grade(course, ts)
    finally:
        back = _ssh(ts, "master", f"kubectl {ADMIN} taint nodes master {taint}=:NoSchedule")
    c = got["control_plane_node"]
    assert str(c.status) == "fail" and f"missing: {taint}:NoSchedule" in c.actual, (c.status, c.actual)
    assert "kubectl taint nodes" in c.hint and c.expected != c.actual
    assert {n for n, r in got.items() if str(r.status) != "pass"} == \
        {"control_plane_node", "lab_user_kubeconfig", "pinned_version", "addons"}  # the last three: as after init
    assert back.returncode == 0, back.stderr
    taints = _ssh(ts, "master", f"kubectl {ADMIN} get node master -o jsonpath='{{.spec.taints[*].key}}'").stdout
    assert taint in taints.split(), taints


@pytest.mark.cluster  # and twins (conftest marks every test that uses them)
def test_api_server_manifest_moved_out_fails_live_and_blocks_the_api_checks(init_cluster, course):
    """Real 1.20 cluster on twins: kube-apiserver.yaml moved out of /etc/kubernetes/manifests (kubelet stops the
    API server) — static_pods, api_reachable and advertise_address fail with what they saw; every check that needs
    the API is blocked, not failed. Put back, the API server answers again and its mirror pod is Ready. Graded on
    virtual time once the API server stopped answering (it stays stopped): api_reachable gives up at once."""
    ts = init_cluster["ts"]
    moved = _ssh(ts, "master", "sh -c 'mkdir -p /root/moved-api && "
                 "mv /etc/kubernetes/manifests/kube-apiserver.yaml /root/moved-api/'")
    assert moved.returncode == 0, moved.stderr
    readyz = "curl -sS --max-time 5 -k https://192.168.56.10:6443/readyz"
    try:
        wait_for(lambda: _ssh(ts, "master", readyz, user_cmd=True).returncode,
                 "the API server to stop answering after its manifest was moved out", until=lambda rc: rc != 0,
                 timeout_s=120)
        got = _grade(course, ts, settled=True)  # the API server stays stopped while it grades
    finally:
        back = _ssh(ts, "master", "sh -c 'mv /root/moved-api/kube-apiserver.yaml /etc/kubernetes/manifests/ "
                    "&& rmdir /root/moved-api'")
    assert back.returncode == 0, back.stderr
    fails = {"static_pods": "missing: kube-apiserver.yaml", "api_reachable": "Failed to connect",
             "advertise_address": "no readable kube-apiserver.yaml"}
    for name, words in fails.items():
        c = got[name]
        assert str(c.status) == "fail" and words in c.actual, (name, c.status, c.actual, c.message)
    blocked = {n for n, c in got.items() if str(c.status) == "blocked"}
    assert blocked == BLOCKED_BY_API, blocked
    assert {n for n, c in got.items() if str(c.status) == "pass"} == \
        set(got) - set(fails) - BLOCKED_BY_API, {n: str(c.status) for n, c in got.items()}
    wait_for(lambda: _ssh(ts, "master", readyz, user_cmd=True).stdout.strip(), "the API server to answer again",
             until=lambda out: out == "ok", timeout_s=180)
    _assert_as_after_init(ts)


@pytest.mark.cluster  # and twins (conftest marks every test that uses them)
def test_pinned_version_passes_live_when_the_course_pins_what_runs(init_cluster, tmp_path):
    """Real 1.20 cluster on twins, graded with a course copy pinned to 1.20.2: pinned_version passes, compared
    with the version the real API server reports (/version), which nothing in the course wrote."""
    def pin_1_20(data):
        data["versions"]["kubernetes"] = {"minor": "1.20", "patch": "1.20.2"}
    copy = load_course(make_course(tmp_path, (REPO / "graders" / "lab04_kubeadm_init.py").read_text(), lab_id=LAB,
                                   mutate=pin_1_20))
    got = _grade(copy, init_cluster["ts"])
    c = got["pinned_version"]
    assert str(c.status) == "pass", (c.status, c.expected, c.actual, c.message)


# ------------------------------------------------------------------------------------------------------------
# the notebook's kubeadm configuration (no twins: kubeadm 1.36 cannot run here)
# ------------------------------------------------------------------------------------------------------------

def test_notebook_config_is_v1beta4_with_the_course_values(course):
    """Static check of the solution notebook: the kubeadm config its `%%node` cell writes, with the KUBELAB_*
    values the control plane's script gets, is kubeadm.k8s.io/v1beta4 with list-form kubeletExtraArgs and the
    course's advertise address, node IP, networks and pinned version. (kubeadm 1.36 itself is not available here:
    its `kubeadm config validate` runs in the notebook on the VMs.)"""
    import os
    import re as _re

    import nbformat
    import yaml

    from kubelab.notebook.magics import node_environment

    nb = nbformat.read(course.solution_path(LAB), as_version=4)
    cell = next(c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == "write-config")
    assert cell.source.startswith("%%node control-plane")
    body = cell.source.split('<<EOF\n', 1)[1].split("\nEOF\n", 1)[0]
    env = node_environment(course, course.model.control_plane)
    rendered = _re.sub(r"\$\{(\w+)\}", lambda m: env[m.group(1)], body)
    assert "$" not in rendered
    # two documents: no KubeletConfiguration, since the kubelet takes its cgroup driver from containerd (CRI)
    init, cluster = yaml.safe_load_all(rendered)
    m = course.model
    assert init["apiVersion"] == cluster["apiVersion"] == "kubeadm.k8s.io/v1beta4"
    assert init["kind"] == "InitConfiguration" and cluster["kind"] == "ClusterConfiguration"
    assert init["localAPIEndpoint"]["advertiseAddress"] == str(m.control_plane.ip)
    assert init["nodeRegistration"]["kubeletExtraArgs"] == [{"name": "node-ip", "value": str(m.control_plane.ip)}]
    assert cluster["kubernetesVersion"] == "v" + m.versions.kubernetes.patch
    assert cluster["networking"] == {"podSubnet": str(m.network.pod_cidr), "serviceSubnet": str(m.network.service_cidr)}
    grading = nb.cells[-1]
    assert grading.source == 'from kubelab.notebook import grade\ngrade("lab04")'
    assert grading.metadata["nbgrader"]["points"] == m.lab(LAB).points == 15
    assert os.path.isfile(course.student_path(LAB))
