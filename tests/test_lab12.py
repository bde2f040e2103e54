"""Lab 12 — the container runtime (CRI): the grader against the twins' real kubeadm v1.20.2 cluster
(`shared_cluster`), after the solution notebook's own cells ran there, and after realistic mistakes; plus the
grader's readers of ctr, /proc and cgroup paths on the shapes of both containerd lines.

Kinds of proof, named in every test's docstring:

- "real 1.20 cluster on twins": the solution notebook's cells run by a real kernel against the twins (the
  Guaranteed pod created on the worker, its sandbox and container found through containerd, the container killed and
  restarted by the kubelet, a scratch pod deleted through the API, the shim, the namespaces, the cgroup, the four
  answers recorded with %answer), graded live (recorded, and the recording replayed to the same result); each
  mistake made for real, graded, put back. Two changes to the notebook: its image `busybox:1.37` (no registry here)
  becomes the course's local busybox with `imagePullPolicy: Never` (kubelab.cluster.build.BUSYBOX_IMAGE); and the
  notebook takes its `else` branches, containerd's own client `ctr -n k8s.io`, where a node has no CRI v1 crictl —
  the twins have none: Debian packages no cri-tools (the twins' `crictl`, where Lab 3 installed it, is the course's
  stand-in that answers `version` only, see kubelab/cluster/debs.py), and building cri-tools from its Go module
  needs a newer Go than Debian's. What the kubelet sees through the CRI is the same containerd state ctr reads:
  containerd 1.6 serves the CRI from the same containers and tasks.
- "simulation": the grader's parsers on text in the shapes containerd 1.6 and 2.x print (`ctr tasks ls` has the same
  columns in both), and cgroup paths of both cgroup drivers; the notebook's pod manifest parsed.

The 2.x-only facts (systemd cgroup driver, cgroup v2 paths) are graded from recorded evidence in
test_lab12_evidence.py. The module puts the cluster back as it found it in a `finally` (the namespace lab12-cri
deleted, the lab12 answers removed, no ~/.kube/config it created), or marks the shared cluster dirty.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from helpers import (by_id, grade_live, learner_kubeconfig_missing, load_grader, not_passing, remove_lab_objects,
                     run_cells_live, solution_cells, ssh, ssh_ok)
from kubelab.cluster import build
from kubelab.evidence import comparable, replay_lab

LAB = "lab12"
NOTEBOOK = f"{LAB}/lab12_container_runtime.ipynb"  # under solutions/
KUBECTL = "kubectl --kubeconfig=/etc/kubernetes/admin.conf"
ANSWERS = "/home/vagrant/.kubelab/answers/lab12.json"
NOTEBOOK_IMAGE = "    image: busybox:1.37\n    imagePullPolicy: IfNotPresent\n"
RUN_IMAGE = "--image=busybox:1.37 --image-pull-policy=IfNotPresent"
ANSWER_CHECKS = {"answer_pid", "answer_cgroup", "answer_sandbox", "answer_netns_ip"}
KEEP_RECORDING = "KUBELAB_LAB12_RECORDING"  # a path: the live recording is copied there (to refresh tests/data)


G = load_grader("lab12_container_runtime.py")


def notebook_pod(local_image: bool = False) -> dict:
    """The Pod of the solution's create-pod cell, with the course's values put in (and the twins' local image)."""
    manifest = solution_cells(NOTEBOOK)["create-pod"].source.split("<<EOF\n", 1)[1].split("\nEOF\n", 1)[0]
    for var, value in {"POD": G.POD, "NAMESPACE": G.NAMESPACE, "CONTAINER": G.CONTAINER, "WORKER": "worker"}.items():
        manifest = manifest.replace(f"${var}", value)
    if local_image:
        manifest = manifest.replace(NOTEBOOK_IMAGE, f"    image: {build.BUSYBOX_IMAGE}\n    imagePullPolicy: Never\n")
    return yaml.safe_load(manifest)


# -------------------------------------------------------------------------------------------------
# no twins: the notebook and the grader agree; the readers of ctr, /proc and cgroup paths
# -------------------------------------------------------------------------------------------------

def test_notebook_creates_what_the_grader_looks_for():
    """simulation: the solution's pod manifest, parsed with the course's values put in — the grader's pod in the
    grader's namespace, one container named as the grader expects, requests equal to limits (Guaranteed); the
    values cell names the same; the answers recorded under the grader's keys."""
    cells = solution_cells(NOTEBOOK)
    assert cells["create-pod"].source.count(NOTEBOOK_IMAGE) == 1  # the one text the live test swaps
    pod = notebook_pod()
    assert (pod["kind"], pod["metadata"]["name"], pod["metadata"]["namespace"]) == ("Pod", G.POD, G.NAMESPACE)
    (c,) = pod["spec"]["containers"]
    assert c["name"] == G.CONTAINER and c["resources"]["requests"] == c["resources"]["limits"]
    assert set(c["resources"]["limits"]) == {"cpu", "memory"}
    values = cells["course-values"].source
    assert f'NAMESPACE = "{G.NAMESPACE}"' in values and f'POD = "{G.POD}"' in values
    assert f'CONTAINER = "{G.CONTAINER}"' in values
    recorded = "".join(cells[g].source for g in ("record-sandbox", "record-pid-ip", "record-cgroup"))
    for key in ("sandbox_id", "container_pid", "netns_ip", "cgroup_path"):
        assert f"%answer lab12 {key} " in recorded


def test_notebook_teaches_crictl_with_flags_cri_tools_has():
    """simulation: the crictl command lines of the solution, against the flags of cri-tools' cmd/crictl
    (sandbox.go, container.go at kubernetes-sigs/cri-tools b7c2770): pods --namespace/--name/--state/-q/--no-trunc,
    ps --pod/--name/-q/--no-trunc/-a, inspect -o go-template --template, stop."""
    text = "".join(c.source for c in solution_cells(NOTEBOOK).values())
    for line in ('crictl pods --namespace "$NAMESPACE" --name "^$POD\\$" --state ready -q --no-trunc',
                 'crictl ps --pod "$sid" --name "^$CONTAINER\\$" -q --no-trunc',
                 "crictl inspect -o go-template --template '{{.info.pid}}' \"$cid\"",
                 'crictl stop "$cid"', "crictl ps -a --pod"):
        assert line in text, line


CTR_TASKS_16 = """TASK                                                                PID     STATUS
4f0e9c7a2b1d3e5f60718293a4b5c6d7e8f90123456789abcdef0123456789ab    2811    RUNNING
9a8b7c6d5e4f30211203948576a6b5c4d3e2f1a0b9c8d7e6f5a4b3c2d1e0f9a8    2874    RUNNING
0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef    0       STOPPED
"""


def test_ctr_task_list_is_read_by_id():
    """simulation: `ctr -n k8s.io tasks ls` in its TASK PID STATUS columns (the same in containerd 1.6 and 2.x) —
    each task's PID and status by its full ID; the header and blank lines are no task."""
    t = G.tasks(CTR_TASKS_16 + "\n")
    assert t["4f0e9c7a2b1d3e5f60718293a4b5c6d7e8f90123456789abcdef0123456789ab"] == (2811, "RUNNING")
    assert t["0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"] == (0, "STOPPED")
    assert "TASK" not in t and len(t) == 3


UID = "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"
CID = "9a8b7c6d5e4f30211203948576a6b5c4d3e2f1a0b9c8d7e6f5a4b3c2d1e0f9a8"
V2_SYSTEMD = f"0::/kubepods.slice/kubepods-pod{UID.replace('-', '_')}.slice/cri-containerd-{CID}.scope\n"
V1_CGROUPFS = (f"12:memory:/kubepods/pod{UID}/{CID}\n11:cpu,cpuacct:/kubepods/pod{UID}/{CID}\n"
               f"1:name=systemd:/kubepods/pod{UID}/{CID}\n0::/system.slice/containerd.service\n")


@pytest.mark.parametrize("text,want", [
    (V2_SYSTEMD, f"/kubepods.slice/kubepods-pod{UID.replace('-', '_')}.slice/cri-containerd-{CID}.scope"),
    (V1_CGROUPFS, f"/kubepods/pod{UID}/{CID}"),
    ("", "")])
def test_cgroup_of_a_process(text, want):
    """simulation: /proc/<pid>/cgroup on cgroup v2 (one 0:: line, systemd driver) and on v1 (a line per controller,
    cgroupfs driver; the memory controller's line, not the unified one a hybrid host adds) — the container's path."""
    assert G.cgroup_path(text) == want


@pytest.mark.parametrize("driver,qos,want", [
    ("systemd", "Guaranteed", f"/kubepods.slice/kubepods-pod{UID.replace('-', '_')}.slice/"),
    ("systemd", "Burstable", f"/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{UID.replace('-', '_')}.slice/"),
    ("systemd", "BestEffort", f"/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{UID.replace('-', '_')}.slice/"),
    ("cgroupfs", "Guaranteed", f"/kubepods/pod{UID}/"),
    ("cgroupfs", "Burstable", f"/kubepods/burstable/pod{UID}/")])
def test_where_the_kubelet_puts_a_pod_of_each_class(driver, qos, want):
    """simulation: the kubelet's cgroup naming per driver and QoS class (kubernetes.io Pod QoS classes; the systemd
    driver's slices with the UID's dashes as underscores) — and a Burstable pod is not in the Guaranteed place."""
    assert G.qos_cgroup(driver, qos, UID) == want
    if qos != "Guaranteed":
        assert G.qos_cgroup(driver, "Guaranteed", UID) not in want


@pytest.mark.parametrize("given,ok", [
    (V2_SYSTEMD.strip(), True), (V2_SYSTEMD.strip().removeprefix("0::"), True),
    ("/sys/fs/cgroup" + V2_SYSTEMD.strip().removeprefix("0::") + "/", True),
    (V2_SYSTEMD.strip().replace("kubepods-pod", "kubepods-burstable-pod"), False), ("cri-containerd.scope", False),
    ("", False)])
def test_cgroup_answer_in_any_spelling(given, ok):
    """simulation: the cgroup path as a learner may copy it (the /proc line, the bare path, the /sys/fs/cgroup folder
    with a trailing slash) — the same cgroup; another pod's or a fragment — not."""
    assert G.same_cgroup(given, V2_SYSTEMD.strip().removeprefix("0::")) is ok


@pytest.mark.parametrize("given,ok", [(CID, True), (CID[:13], True), (CID[:13].upper(), True), (CID[:11], False),
                                      (CID[1:14], False)])
def test_sandbox_answer_full_or_as_crictl_pods_shows_it(given, ok):
    """simulation: the sandbox ID in full (`-q --no-trunc`) or in the 13 characters `crictl pods` shows — the
    sandbox; fewer than 12 characters or another ID — not."""
    assert G.same_sandbox(given, CID) is ok


def test_ip_inside_the_network_namespace():
    """simulation: `ip -4 -o addr show scope global` inside a pod's network namespace (eth0 only: lo is scope
    host) — the address without its prefix length; nothing printed — no address; an answer with /24 still counts."""
    out = "3: eth0    inet 10.244.1.7/24 brd 10.244.1.255 scope global eth0\\       valid_lft forever preferred_lft forever\n"
    assert G.netns_ip(out) == "10.244.1.7" and G.netns_ip("") == ""
    assert G.same_ip("10.244.1.7/24", "10.244.1.7") and not G.same_ip("10.244.1.8", "10.244.1.7")


# -------------------------------------------------------------------------------------------------
# live on the real 1.20 cluster
# -------------------------------------------------------------------------------------------------

def _runnable(cells) -> list:
    run = [c for gid, c in cells.items() if c.cell_type == "code" and gid != "grade_lab12"]
    create = cells["create-pod"]
    assert create.source.count(NOTEBOOK_IMAGE) == 1
    create.source = create.source.replace(NOTEBOOK_IMAGE, f"    image: {build.BUSYBOX_IMAGE}\n    imagePullPolicy: Never\n")
    scratch = cells["scratch-create"]
    assert scratch.source.count(RUN_IMAGE) == 1
    scratch.source = scratch.source.replace(RUN_IMAGE, f"--image={build.BUSYBOX_IMAGE} --image-pull-policy=Never")
    return run


@pytest.fixture(scope="module")
def lab12(shared_cluster, tmp_path_factory):
    """The solution notebook run on the shared cluster, then its graded, recorded state; put back afterwards."""
    ts = shared_cluster["ts"]
    made_kubeconfig = learner_kubeconfig_missing(ts)
    folder = tmp_path_factory.mktemp("lab12")
    state = {"course": shared_cluster["course"], "ts": ts}
    try:
        t0 = time.monotonic()
        state["outputs"] = run_cells_live(_runnable(solution_cells(NOTEBOOK)), folder, ts)
        state["notebook_s"] = time.monotonic() - t0
        print(f"lab12 solution notebook ran on the twins in {state['notebook_s']:.1f}s")
        t0 = time.monotonic()
        state["evidence"] = folder / "solved.evidence.json"
        state["live"] = grade_live(state, LAB, record=state["evidence"])
        print(f"lab12 graded live (recording) in {time.monotonic() - t0:.1f}s")
        if os.environ.get(KEEP_RECORDING):
            shutil.copy(state["evidence"], os.environ[KEEP_RECORDING])
        yield state
    finally:
        problems = remove_lab_objects(ts, G.NAMESPACE, ANSWERS, made_kubeconfig=made_kubeconfig)
        if problems:
            shared_cluster["dirty"] = True
            print("lab12 could not put the cluster back:", problems)


@pytest.mark.cluster
def test_solution_notebook_on_the_cluster_earns_full_marks_and_replays(lab12):
    """real 1.20 cluster on twins: after the solution notebook's cells (the pod Guaranteed on the worker; its
    sandbox and container found in containerd; the container killed and back in the same pod; a scratch pod deleted
    through the API and its sandbox's task gone; the shim parent of pause and app; net/ipc/uts shared with pause,
    mnt/pid its own; the cgroup of the Guaranteed class; the four answers recorded), every check passes — 10 of 10 —
    and the recording replays to the same result."""
    out = lab12["outputs"]
    for gid in ("check-pod", "show-cri", "check-restart", "scratch-after", "show-shim", "show-ns", "show-cgroup",
                "check-ns"):
        print(f"--- {gid}\n{out[gid]}")
    assert "qosClass: Guaranteed" in out["check-pod"], out["check-pod"]
    assert "(no CRI v1 crictl on this node" in out["show-cri"] and " sandbox " in out["show-cri"], out["show-cri"]
    assert "✓ the kubelet restarted the container in the same pod" in out["check-restart"], out["check-restart"]
    assert "✓ no task of cri-scratch left" in out["scratch-after"], out["scratch-after"]
    ns = {line.split()[0]: line.split()[-1] for line in out["show-ns"].splitlines()
          if line.split() and line.split()[0] in ("net", "ipc", "uts", "pid", "mnt")}
    assert ns == {"net": "shared", "ipc": "shared", "uts": "shared", "pid": "own", "mnt": "own"}, out["show-ns"]
    assert "containerd-shim-runc-v2" in out["show-shim"] and "/pause" in out["show-shim"], out["show-shim"]
    live = lab12["live"]
    assert not_passing(live) == {}, [(c.id, c.expected, c.actual, c.message) for c in live.checks
                                     if str(c.status) != "pass"]
    assert live.score == live.max_score == 10
    replayed, _ = replay_lab(lab12["course"], LAB, lab12["evidence"])
    assert comparable(replayed.to_dict()) == comparable(live.to_dict())


@pytest.mark.cluster
def test_the_twins_have_no_crictl_that_speaks_the_cri(lab12):
    """real 1.20 cluster on twins: why the notebook's crictl branches do not run here — on the worker `crictl pods`
    fails (no crictl at all, or the course's stand-in, which answers `version` only), while `ctr -n k8s.io` lists
    the pod's containers: what the grader reads."""
    ts = lab12["ts"]
    p = ssh(ts, "worker", "crictl pods")
    assert p.returncode != 0, p.stdout
    assert "not found" in p.stderr or "stand-in" in p.stderr, p.stderr
    listed = ssh_ok(ts, "worker", f"ctr -n k8s.io containers list -q 'labels.\"io.kubernetes.pod.name\"=={G.POD}'")
    assert len(listed.split()) >= 2  # the sandbox and at least one container


@pytest.mark.cluster
def test_wrong_answers_fail_without_giving_the_live_values_away(lab12):
    """real 1.20 cluster on twins: the answers file rewritten with another PID, another pod's cgroup, a sandbox ID
    of another pod and another IP — the four answer checks fail showing the learner's values, never the live ones;
    the rest passes."""
    ts = lab12["ts"]
    original = ssh_ok(ts, "master", f"cat {ANSWERS}")
    live = {k: v["value"] for k, v in json.loads(original).items()}
    wrong_values = {"container_pid": str(int(live["container_pid"]) + 1),
                    "cgroup_path": live["cgroup_path"].replace("/kubepods/", "/kubepods/burstable/"),
                    "sandbox_id": "f" * 64, "netns_ip": "10.244.9.9"}
    wrong = {k: {"value": v, "recorded_at": "2026-11-30T06:00:00+00:00"} for k, v in wrong_values.items()}
    ssh_ok(ts, "master", f"cat > {ANSWERS}", input=json.dumps(wrong))
    try:
        result = grade_live(lab12, LAB)
    finally:
        ssh_ok(ts, "master", f"cat > {ANSWERS} && chown vagrant: {ANSWERS}", input=original)
    got = by_id(result)
    assert not_passing(result) == {f"{c}[cluster]": "fail" for c in ANSWER_CHECKS}
    for check, key in (("answer_pid", "container_pid"), ("answer_cgroup", "cgroup_path"),
                       ("answer_sandbox", "sandbox_id"), ("answer_netns_ip", "netns_ip")):
        c = got[f"{check}[cluster]"]
        assert c.actual == wrong_values[key] and c.expected.startswith("the value of ")
        assert live[key] not in f"{c.expected} {c.message}", (check, c.message)


@pytest.mark.cluster
def test_pod_deleted_and_recreated_through_the_api_is_not_a_restart(lab12):
    """real 1.20 cluster on twins: the pod deleted through the API and created again from the same manifest — a new
    pod (new UID, new sandbox, restartCount 0): `restarted` fails on restartCount 0 with the hint naming crictl stop;
    the answers of the old pod (sandbox ID, PID, cgroup path) fail; the new pod is Running, Guaranteed, in its
    cgroup, in containerd. Runs last: it leaves a pod the restore deletes with the namespace."""
    ts = lab12["ts"]
    ssh_ok(ts, "master", f"{KUBECTL} -n {G.NAMESPACE} delete pod {G.POD} --wait=true --timeout=60s")
    ssh_ok(ts, "master", f"{KUBECTL} apply -f - && {KUBECTL} -n {G.NAMESPACE} wait --for=condition=Ready "
                         f"pod/{G.POD} --timeout=120s", input=json.dumps(notebook_pod(local_image=True)))
    result = grade_live(lab12, LAB)
    got = by_id(result)
    r = got["restarted[cluster]"]
    assert str(r.status) == "fail" and r.actual == "restartCount 0" and "crictl stop" in r.hint, (r.actual, r.message)
    failing = set(not_passing(result))
    assert {"restarted[cluster]", "answer_sandbox[cluster]", "answer_pid[cluster]", "answer_cgroup[cluster]"} \
        <= failing <= {"restarted[cluster]", "answer_sandbox[cluster]", "answer_pid[cluster]",
                       "answer_cgroup[cluster]", "answer_netns_ip[cluster]"}, not_passing(result)


def _node_script(source: str) -> str:
    lines = source.splitlines()[1:]
    if lines and lines[0].startswith("%%node"):  # under %%capture
        lines = lines[1:]
    return "\n".join(ln for ln in lines if "### BEGIN SOLUTION" not in ln and "### END SOLUTION" not in ln)


RUNNING, DEAD, SANDBOX = "a" * 64, "d" * 64, "5" * 64


def _run_on_fake_node(tmp_path: Path, grade_id: str) -> subprocess.CompletedProcess:
    """A solution cell's bash as %%node runs it (bash -eo pipefail), with `sudo` passing through, no crictl that
    speaks the CRI (as on the twins), and a `ctr` that answers like containerd after a restart: the pod's dead
    container listed after the running one's replacement, as containerd keeps it until the kubelet's GC."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    (bin_dir / "sudo").write_text('#!/bin/sh\nexec "$@"\n')
    (bin_dir / "crictl").write_text("#!/bin/sh\necho 'crictl (stand-in) does not implement' >&2\nexit 1\n")
    (bin_dir / "ctr").write_text(f"""#!/bin/sh
case "$*" in
  *"tasks ls"*) printf 'TASK PID STATUS\\n{SANDBOX} 4100 RUNNING\\n{RUNNING} 4321 RUNNING\\n{DEAD} 0 STOPPED\\n' ;;
  *"containers list -q"*"kind\\"==sandbox"*) echo {SANDBOX} ;;
  *"containers list -q"*"kind\\"==container"*) printf '{RUNNING}\\n{DEAD}\\n' ;;
  *) echo "unexpected: $*" >&2; exit 2 ;;
esac
""")
    (bin_dir / "nsenter").write_text("#!/bin/sh\necho '3: eth0    inet 10.244.1.7/24 brd 10.244.1.255 scope global eth0'\n")
    for f in bin_dir.iterdir():
        f.chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "NAMESPACE": G.NAMESPACE, "POD": G.POD,
           "CONTAINER": G.CONTAINER}
    return subprocess.run(["bash", "-eo", "pipefail", "-c", _node_script(solution_cells(NOTEBOOK)[grade_id].source)],
                          env=env, capture_output=True, text=True, timeout=60)


def test_answer_cells_find_the_running_container_when_a_dead_one_is_listed_last(tmp_path):
    """simulation: the find-sandbox and find-pid-ip solution cells through their containerd branch (no CRI crictl),
    under bash -eo pipefail, with a dead container listed last — the sandbox ID, and the PID of the running
    container with the IP of its network namespace (the failing case this guards against: the first live run ended
    the cell with status 1 when the helper's last test was false)."""
    p = _run_on_fake_node(tmp_path, "find-sandbox")
    assert p.returncode == 0 and p.stdout.split() == [SANDBOX], (p.stdout, p.stderr)
    p = _run_on_fake_node(tmp_path, "find-pid-ip")
    assert p.returncode == 0 and p.stdout.split() == ["4321", "10.244.1.7"], (p.stdout, p.stderr)
    # the ID assigned on its own (as show-shim does): the helper's status is the assignment's
    direct = _node_script(solution_cells(NOTEBOOK)["find-pid-ip"].source).replace(
        'pid=$(task_pid "$(running_id container)")', 'cid=$(running_id container); pid=$(task_pid "$cid")')
    assert "cid=$(running_id container)" in direct
    broken = direct.replace('if [ -n "$(task_pid "$id")" ]; then echo "$id"; fi', '[ -n "$(task_pid "$id")" ] && echo "$id"')
    env = {**os.environ, "PATH": f"{tmp_path / 'bin'}:{os.environ['PATH']}", "NAMESPACE": G.NAMESPACE, "POD": G.POD,
           "CONTAINER": G.CONTAINER}
    good = subprocess.run(["bash", "-eo", "pipefail", "-c", direct], capture_output=True, text=True, timeout=60, env=env)
    assert good.returncode == 0 and good.stdout.split() == ["4321", "10.244.1.7"], (good.stdout, good.stderr)
    bad = subprocess.run(["bash", "-eo", "pipefail", "-c", broken], capture_output=True, text=True, timeout=60, env=env)
    assert bad.returncode != 0 and "4321" not in bad.stdout
