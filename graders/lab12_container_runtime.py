"""Lab 12 — The container runtime (CRI). Every check only observes: the cluster through the API with the control
plane's admin.conf, the worker over SSH with `ctr -n k8s.io` (containerd's own client: containers and tasks by
containerd's names) and reads of /proc and the kubelet's config.yaml. No crictl: the grader asks containerd
directly, which works the same with containerd 1.6 and 2.x (crictl needs a CRI v1 runtime and is the learner's
tool in the notebook).

Three groups of checks:

- the learner's pod `lab12-cri/cri-demo`: Running on the worker; Guaranteed, and its container in the kubepods
  cgroup of that QoS class (the kubelet's cgroup driver decides the naming: systemd slices or cgroupfs folders);
  its sandbox and container known to containerd under the kinds `sandbox` and `container`;
- the container killed by the learner and restarted by the kubelet in the same pod (restartCount >= 1);
- answers the grader recomputes on the worker: the container's host PID, its cgroup path, its sandbox ID, the IP
  of the network namespace it runs in.
"""

import json

import yaml

from kubelab.engine import check, expect_equal, expect_true, fail, read_or_none

LAB = "lab12"
NAMESPACE = "lab12-cri"        # the learner's namespace
POD = "cri-demo"               # the pod the notebook creates
CONTAINER = "app"              # its one container
QOS = "Guaranteed"             # the QoS class the notebook asks for (requests == limits)
CTR = "sudo -n ctr -n k8s.io"  # the kubelet's containers live in containerd's namespace k8s.io
KUBELET_CONFIG = "/var/lib/kubelet/config.yaml"
KIND_LABEL = "io.cri-containerd.kind"             # containerd's CRI plugin labels: sandbox | container
SANDBOX_ANNOTATION = "io.kubernetes.cri.sandbox-id"  # in the OCI spec of every CRI container


def _worker(course):
    return next(n.name for n in course.nodes if n.role == "worker")


def _pod(kube):
    pod = read_or_none(kube.core.read_namespaced_pod, POD, NAMESPACE)
    if pod is None:
        fail(f"the pod {NAMESPACE}/{POD}", "none", what="kubectl get pod")
    return pod


def _status(pod):
    return next((s for s in (pod.status.container_statuses or []) if s.name == CONTAINER), None)


def _container_id(pod) -> str:
    s = _status(pod)
    cid = (s.container_id or "") if s else ""
    if not cid.startswith("containerd://"):
        fail(f"a running container {CONTAINER} (containerd://<id>)", cid or "none", what=f"pod {POD}")
    return cid.removeprefix("containerd://")


def tasks(text: str) -> dict[str, tuple[int, str]]:
    """`ctr tasks ls` (TASK PID STATUS, the same columns in containerd 1.6 and 2.x) -> {id: (pid, status)}."""
    out = {}
    for line in text.splitlines()[1:]:
        parts = line.split()
        if len(parts) >= 3 and parts[1].isdigit():
            out[parts[0]] = (int(parts[1]), parts[2])
    return out


def _task(host, cid: str) -> int:
    got = host.run(f"{CTR} tasks ls")
    expect_true(got.rc == 0, "containerd's task list", got.stderr.strip() or f"exit {got.rc}", what=f"{CTR} tasks ls")
    pid, status = tasks(got.stdout).get(cid, (0, "no task"))
    expect_equal(status, "RUNNING", what=f"containerd task {cid[:13]}")
    return pid


def _info(host, cid: str) -> dict:
    got = host.run(f"{CTR} containers info %s", cid)
    if got.rc != 0:
        fail(f"containerd container {cid[:13]}", got.stderr.strip() or "unknown", what=f"{CTR} containers info")
    return json.loads(got.stdout)


def sandbox_of(info: dict) -> str:
    return ((info.get("Spec") or {}).get("annotations") or {}).get(SANDBOX_ANNOTATION, "")


def cgroup_path(text: str) -> str:
    """The cgroup /proc/<pid>/cgroup names: the memory controller's on cgroup v1, the unified (0::) one on v2."""
    unified = ""
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        if "memory" in parts[1].split(","):
            return parts[2]
        if parts[0] == "0" and parts[1] == "":
            unified = parts[2]
    return unified


def qos_cgroup(driver: str, qos: str, uid: str) -> str:
    """Where the kubelet puts a pod of this QoS class: systemd slices (uid with _) or cgroupfs folders."""
    q = qos.lower()
    if driver == "systemd":
        u = uid.replace("-", "_")
        return (f"/kubepods.slice/kubepods-pod{u}.slice/" if qos == "Guaranteed"
                else f"/kubepods.slice/kubepods-{q}.slice/kubepods-{q}-pod{u}.slice/")
    return f"/kubepods/pod{uid}/" if qos == "Guaranteed" else f"/kubepods/{q}/pod{uid}/"


def leaf(driver: str, cid: str) -> str:
    return f"cri-containerd-{cid}.scope" if driver == "systemd" else cid


def _driver(host) -> str:
    got = host.run("sudo -n cat %s", KUBELET_CONFIG)
    try:
        conf = yaml.safe_load(got.stdout) if got.rc == 0 else {}
    except yaml.YAMLError:
        conf = {}
    return str((conf or {}).get("cgroupDriver") or "cgroupfs")  # the kubelet's default when the file is silent


def _container_cgroup(host, pid: int) -> str:
    got = host.run(f"sudo -n cat /proc/{pid}/cgroup")
    expect_true(got.rc == 0, f"/proc/{pid}/cgroup", got.stderr.strip() or "unreadable", what="the container's cgroup")
    return cgroup_path(got.stdout)


def from_kubepods(path: str) -> str:
    """A cgroup path from /kubepods on, however it was copied: `0::/kubepods...`, /sys/fs/cgroup/..., a v1 line."""
    text = path.strip()
    at = text.find("/kubepods")
    return text[at:].rstrip("/") if at >= 0 else ""


def same_cgroup(given: str, live: str) -> bool:
    return bool(from_kubepods(given)) and from_kubepods(given) == from_kubepods(live)


def same_sandbox(given: str, live: str) -> bool:
    """The full ID or the 13-character one `crictl pods` shows (any prefix of 12 or more)."""
    g = given.strip().lower()
    return len(g) >= 12 and live.startswith(g)


def same_ip(given: str, live: str) -> bool:
    return given.strip().split("/")[0] == live


def netns_ip(text: str) -> str:
    """The IPv4 of `ip -4 -o addr show scope global` inside the pod's network namespace."""
    for line in text.splitlines():
        parts = line.split()
        if "inet" in parts:
            return parts[parts.index("inet") + 1].split("/")[0]
    return ""


# ------------------------------------------------------------------------------------------------
# the learner's pod, its QoS class and cgroup, its objects in containerd
# ------------------------------------------------------------------------------------------------

@check(f"Your pod {NAMESPACE}/{POD} runs on the worker", on="cluster", points=2, wait_s=30, interval_s=3,
       hint=f"Create the namespace {NAMESPACE} and the pod {POD} (one container `{CONTAINER}`, `nodeName` or a "
            f"nodeSelector for the worker); `kubectl -n {NAMESPACE} describe pod {POD}` shows why it is not Running "
            f"(an image the node cannot pull, a pod scheduled elsewhere).")
def test_pod_running(kube, course):
    pod = _pod(kube)
    s = _status(pod)
    expect_equal({"node": pod.spec.node_name, "phase": pod.status.phase, "ready": bool(s and s.ready)},
                 {"node": _worker(course), "phase": "Running", "ready": True}, what=f"pod {POD}")


@check(f"Its container is {QOS} and sits in the {QOS} pods' cgroup of the kubepods tree", on="worker", points=2,
       needs=["pod_running"],
       hint="A pod is Guaranteed when every container has cpu and memory limits equal to its requests (requests "
            "alone make it Burstable, none BestEffort): `kubectl get pod -o jsonpath='{.status.qosClass}'`. The QoS "
            "class cannot be changed on a running pod: delete and create it again. On the worker, `cat "
            "/proc/<PID>/cgroup` shows where the kubelet put it (systemd driver: kubepods.slice/kubepods-pod<uid>.slice "
            "for Guaranteed, kubepods-burstable.slice/... for Burstable).")
def test_guaranteed_cgroup(host, kube):
    pod = _pod(kube)
    cid = _container_id(pod)
    driver = _driver(host)
    path = _container_cgroup(host, _task(host, cid))
    want = qos_cgroup(driver, QOS, pod.metadata.uid)
    expect_equal(pod.status.qos_class, QOS, what=f"qosClass of pod {POD}")
    expect_true(want in path and path.endswith(leaf(driver, cid)),
                f"a cgroup under ...{want}{leaf(driver, cid)} ({driver} cgroup driver)", path or "(none)",
                what=f"the cgroup of container {CONTAINER}")


@check("containerd on the worker runs the pod's sandbox and its container (ctr -n k8s.io)", on="worker", points=1,
       needs=["pod_running"],
       hint=f"`sudo ctr -n k8s.io containers list` lists both: the sandbox (the pause image, label {KIND_LABEL}=sandbox) "
            "and your container (kind container), whose OCI spec names its sandbox in the annotation "
            f"{SANDBOX_ANNOTATION}; `sudo ctr -n k8s.io tasks ls` shows both RUNNING with their host PIDs.")
def test_sandbox_in_containerd(host, kube):
    pod = _pod(kube)
    cid = _container_id(pod)
    info = _info(host, cid)
    labels = info.get("Labels") or {}
    expect_equal({"kind": labels.get(KIND_LABEL), "pod uid": labels.get("io.kubernetes.pod.uid")},
                 {"kind": "container", "pod uid": pod.metadata.uid}, what=f"containerd container {cid[:13]}")
    sid = sandbox_of(info)
    expect_true(bool(sid), f"annotation {SANDBOX_ANNOTATION}", "(none)", what=f"containerd container {cid[:13]}")
    sandbox = _info(host, sid)
    slabels = sandbox.get("Labels") or {}
    expect_equal({"kind": slabels.get(KIND_LABEL), "pod uid": slabels.get("io.kubernetes.pod.uid")},
                 {"kind": "sandbox", "pod uid": pod.metadata.uid}, what="the containerd sandbox your container names")
    _task(host, sid)


@check("The kubelet restarted your killed container in the same pod (restartCount >= 1)", on="cluster", points=1,
       needs=["pod_running"],
       hint="Stop the container on the worker (`sudo crictl stop <CONTAINER-ID>`, or `sudo kill <PID>` of its main "
            "process) and watch `kubectl -n lab12-cri get pod cri-demo -w`: the kubelet starts a new container in the "
            "same sandbox and counts it in restartCount. Deleting the pod through the API gives a new pod with "
            "restartCount 0 instead.")
def test_restarted(kube):
    s = _status(_pod(kube))
    count = s.restart_count if s else 0
    expect_true(count >= 1, "restartCount >= 1", f"restartCount {count}", what=f"container {CONTAINER} of pod {POD}")


# ------------------------------------------------------------------------------------------------
# answers the grader recomputes on the worker
# ------------------------------------------------------------------------------------------------

@check("The PID you found is your container's main process on the worker", on="cluster", points=1,
       needs=["pod_running"],
       hint=f"On the worker: `sudo crictl inspect -o go-template --template '{{{{.info.pid}}}}' <CONTAINER-ID>` (or "
            f"`sudo ctr -n k8s.io tasks ls`); record it with `%answer {LAB} container_pid <PID>`. A restarted container "
            "has a new PID: record it after the restart.")
def test_answer_pid(answers, hosts, kube, course):
    pid = _task(hosts[_worker(course)], _container_id(_pod(kube)))
    answers.expect("container_pid", pid, where="the host PID of your container's main process")


@check("The cgroup path you found is your container's", on="cluster", points=1, needs=["pod_running"],
       hint=f"On the worker: `cat /proc/<PID>/cgroup` (cgroup v2: the one line after `0::`); record the path with "
            f"`%answer {LAB} cgroup_path <path>`.")
def test_answer_cgroup(answers, hosts, kube, course):
    host = hosts[_worker(course)]
    path = _container_cgroup(host, _task(host, _container_id(_pod(kube))))
    answers.expect("cgroup_path", path, where="the cgroup of your container (/proc/<PID>/cgroup)", same=same_cgroup)


@check("The sandbox ID you found is your pod's", on="cluster", points=1, needs=["pod_running"],
       hint=f"On the worker: `sudo crictl pods --namespace {NAMESPACE} --name {POD} -q --no-trunc` (the POD ID of "
            f"`crictl pods`); record it with `%answer {LAB} sandbox_id <ID>`. A deleted and re-created pod has a new one.")
def test_answer_sandbox(answers, hosts, kube, course):
    sid = sandbox_of(_info(hosts[_worker(course)], _container_id(_pod(kube))))
    answers.expect("sandbox_id", sid, where="the ID of your pod's sandbox", same=same_sandbox)


@check("The IP you found is the one of your pod's network namespace", on="cluster", points=1, needs=["pod_running"],
       hint=f"On the worker: `sudo nsenter -t <PID> -n ip -4 -o addr show scope global` runs `ip` inside the "
            f"container's network namespace; record the address (without /24) with `%answer {LAB} netns_ip <IP>`.")
def test_answer_netns_ip(answers, hosts, kube, course):
    host = hosts[_worker(course)]
    pid = _task(host, _container_id(_pod(kube)))
    got = host.run(f"sudo -n nsenter -t {pid} -n ip -4 -o addr show scope global")
    ip = netns_ip(got.stdout)
    expect_true(bool(ip), "an IPv4 address in the pod's network namespace", got.stderr.strip() or "none",
                what="nsenter into the network namespace of your container's main process")
    answers.expect("netns_ip", ip, where="the IPv4 address inside your pod's network namespace", same=same_ip)
