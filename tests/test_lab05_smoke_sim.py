"""Lab 5's smoke-test checks called directly, each with a passing and a failing state — a SIMULATION of the
cluster: the API objects are the kubernetes client's own models (as `kubectl get -o json` shapes them), and the
command outputs are what the real tools print: busybox 1.36 nslookup and wget as run against the dnsmasq stand-in
(tests/test_dns_standin.py), kubectl 1.20's exec error for a kubelet it cannot reach, kubectl port-forward's
"Forwarding from" line. The live proof of the same checks is tests/test_lab05.py (real 1.20 cluster on twins);
this file pins each check's expected/actual wording without twins."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import SimpleNamespace

import pytest
from kubernetes.client import (V1Container, V1ContainerPort, V1Deployment, V1DeploymentSpec, V1LabelSelector,
                               V1ObjectMeta, V1Pod, V1PodCondition, V1PodList, V1PodSpec, V1PodStatus,
                               V1PodTemplateSpec, V1Service, V1ServicePort, V1ServiceSpec)
from kubernetes.client.exceptions import ApiException

from kubelab.course import load_course
from kubelab.engine.checks import CheckFailed

REPO = Path(__file__).resolve().parents[1]
COURSE = load_course(REPO).model
SPEC = importlib.util.spec_from_file_location("lab05_grader_sim", REPO / "graders" / "lab05_network_and_join.py")
G = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(G)

CLUSTER_IP = "10.103.44.7"
PODS = {"web-5d7c9b8f6-abcde": ("10.244.0.7", "master"), "web-5d7c9b8f6-fghij": ("10.244.1.9", "worker")}
NSLOOKUP_OK = (f"Server:\t\t10.96.0.10\nAddress:\t10.96.0.10:53\n\nName:\tweb.smoke.svc.cluster.local\n"
               f"Address: {CLUSTER_IP}\n\nNon-authoritative answer:\n\n")
NSLOOKUP_DOWN = ";; connection timed out; no servers could be reached\n\n"
EXEC_REFUSED = ('error: unable to upgrade connection: error dialing backend: dial tcp 192.168.56.11:10250: '
                'connect: connection refused\n')


def _pod(name, ip, node, ready=True):
    cond = [V1PodCondition(type="Ready", status="True" if ready else "False")]
    return V1Pod(metadata=V1ObjectMeta(name=name, namespace="smoke", labels={"app": "web"}),
                 spec=V1PodSpec(node_name=node, containers=[V1Container(
                     name="web", image="busybox:1.37", ports=[V1ContainerPort(container_port=8080)])]),
                 status=V1PodStatus(phase="Running", pod_ip=ip, conditions=cond))


class Sim:
    """The cluster as the checks see it; tests change one thing."""

    def __init__(self):
        self.pods = {n: _pod(n, ip, node) for n, (ip, node) in PODS.items()}
        self.slice_ips = [ip for ip, _ in PODS.values()]
        self.selector = {"app": "web"}
        self.cmd = {}  # substring of a command -> (rc, stdout, stderr)
        self.cmd["nslookup web.smoke.svc.cluster.local"] = (0, NSLOOKUP_OK, "")
        self.cmd["wget -qO- -T 5 http://web.smoke.svc.cluster.local/"] = (0, "web-5d7c9b8f6-fghij\n", "")
        for name, (ip, _) in PODS.items():
            self.cmd[f"http://{ip}:8080/"] = (0, name + "\n", "")
            self.cmd[f"exec {name} -- cat /proc/sys/kernel/hostname"] = (0, name + "\n", "")
        self.cmd["port-forward service/web"] = (0, "web-5d7c9b8f6-abcde\n", "")
        self.log_errors = {}

    # -- kube --------------------------------------------------------------------------------------
    def read_namespaced_deployment(self, name, ns):
        return V1Deployment(metadata=V1ObjectMeta(name=name, namespace=ns), spec=V1DeploymentSpec(
            replicas=2, selector=V1LabelSelector(match_labels={"app": "web"}),
            template=V1PodTemplateSpec(spec=V1PodSpec(containers=[V1Container(
                name="web", ports=[V1ContainerPort(container_port=8080)])]))))

    def list_namespaced_pod(self, ns, label_selector=""):
        return V1PodList(items=list(self.pods.values()) if label_selector == "app=web" else [])

    def read_namespaced_service(self, name, ns):
        return V1Service(metadata=V1ObjectMeta(name=name, namespace=ns), spec=V1ServiceSpec(
            cluster_ip=CLUSTER_IP, selector=self.selector, ports=[V1ServicePort(port=80, target_port=8080)]))

    def read_namespaced_pod_log(self, name, ns, tail_lines=None):
        if name in self.log_errors:
            raise _api_error(500, self.log_errors[name])
        return "GET / HTTP/1.1\n"

    def get_json(self, path, **query):
        assert path == "/apis/discovery.k8s.io/v1beta1/namespaces/smoke/endpointslices", path  # 1.20: v1beta1
        assert query == {"labelSelector": "kubernetes.io/service-name=web"}, query
        items = [{"endpoints": [{"addresses": [ip], "conditions": {"ready": True}} for ip in self.slice_ips],
                  "ports": [{"port": 8080, "protocol": "TCP", "name": ""}]}]
        return 200, {"items": items}

    @property
    def kube(self):
        return SimpleNamespace(core=self, apps=self, get_json=self.get_json,
                               version=SimpleNamespace(major="1", minor="20", git_version="v1.20.2"))

    # -- hosts -------------------------------------------------------------------------------------
    def run(self, command, *args):
        cmd = command % args if args else command
        hit = [v for k, v in self.cmd.items() if k in cmd]
        if not hit:
            pytest.fail(f"the simulation has no answer for: {cmd[:120]}")  # a gap, never a learner's verdict
        rc, out, err = hit[0]
        return SimpleNamespace(rc=rc, stdout=out, stderr=err)

    @property
    def hosts(self):
        return {"master": self, "worker": self}


def _api_error(status, message):
    e = ApiException(status=status, reason="Internal Server Error")
    e.body = json.dumps({"kind": "Status", "message": message, "code": status})
    return e


def _run(check, sim):
    fn = getattr(G, f"test_{check}")
    args = {"kube": sim.kube, "hosts": sim.hosts, "course": COURSE}
    params = fn.__code__.co_varnames[:fn.__code__.co_argcount]
    try:
        fn(**{p: args[p] for p in params})
    except CheckFailed as e:
        return e
    return None


ALL = ("smoke_web_spread", "smoke_service_endpoints", "smoke_dns", "smoke_service_by_name", "smoke_pod_to_pod",
       "smoke_exec", "smoke_port_forward")


def test_every_smoke_check_passes_on_a_working_smoke_test():
    """simulation (outputs of the real tools, see the module docstring): all seven pass."""
    sim = Sim()
    assert {c: _run(c, sim) for c in ALL} == dict.fromkeys(ALL)


def test_one_replica_fails_the_spread():
    """simulation: the Deployment scaled to one replica, its pod on the worker."""
    sim = Sim()
    del sim.pods["web-5d7c9b8f6-abcde"]
    e = _run("smoke_web_spread", sim)
    assert (e.expected, e.actual) == ("master, worker", "worker")


def test_a_not_ready_pod_does_not_count():
    """simulation: the master's web pod Running but not Ready (its readiness failing)."""
    sim = Sim()
    sim.pods["web-5d7c9b8f6-abcde"] = _pod("web-5d7c9b8f6-abcde", "10.244.0.7", "master", ready=False)
    assert _run("smoke_web_spread", sim).actual == "worker"


def test_a_service_selecting_nothing_fails_with_its_selector_shown():
    """simulation: Service web's selector app=wbe: its EndpointSlice holds no endpoint."""
    sim = Sim()
    sim.selector, sim.slice_ips = {"app": "wbe"}, []
    e = _run("smoke_service_endpoints", sim)
    assert e.actual == "(none)" and e.expected == "10.244.0.7, 10.244.1.9" and "'app': 'wbe'" in str(e)


def test_cluster_dns_down_fails_the_lookup():
    """simulation: nothing answers at the kube-dns Service (busybox's timeout message)."""
    sim = Sim()
    sim.cmd["nslookup web.smoke.svc.cluster.local"] = (1, NSLOOKUP_DOWN, "")
    e = _run("smoke_dns", sim)
    assert e.expected == f"an answer with {CLUSTER_IP}" and e.actual.startswith("no answer (;; connection timed out")


def test_dns_answering_another_address_fails():
    """simulation: a stale record (the Service re-created with another ClusterIP)."""
    sim = Sim()
    sim.cmd["nslookup web.smoke.svc.cluster.local"] = (0, NSLOOKUP_OK.replace(CLUSTER_IP, "10.96.200.1"), "")
    assert _run("smoke_dns", sim).actual == "10.96.200.1"


def test_the_service_by_name_not_answering_fails():
    """simulation: wget's error when the ClusterIP has no backend (kube-proxy's REJECT)."""
    sim = Sim()
    sim.cmd["wget -qO- -T 5 http://web.smoke.svc.cluster.local/"] = (
        1, "", "wget: can't connect to remote host (10.103.44.7): Connection refused\n")
    e = _run("smoke_service_by_name", sim)
    assert e.actual == "no answer (wget: can't connect to remote host (10.103.44.7): Connection refused)"


def test_a_pod_across_nodes_not_answering_fails_naming_it():
    """simulation: the worker's web pod silent from the client (pod network broken between the nodes)."""
    sim = Sim()
    sim.cmd["http://10.244.1.9:8080/"] = (1, "", "wget: download timed out\n")
    e = _run("smoke_pod_to_pod", sim)
    assert "web-5d7c9b8f6-fghij (10.244.1.9 on worker)=no answer (wget: download timed out)" in e.actual
    assert "web-5d7c9b8f6-abcde (10.244.0.7 on master)=web-5d7c9b8f6-abcde" in e.actual


def test_a_kubelet_the_api_server_cannot_reach_fails_exec_and_logs():
    """simulation: port 10250 refused on the worker: logs (HTTP 500) and exec (kubectl's error) fail there."""
    sim = Sim()
    sim.cmd["exec web-5d7c9b8f6-fghij -- cat /proc/sys/kernel/hostname"] = (1, "", EXEC_REFUSED)
    sim.log_errors["web-5d7c9b8f6-fghij"] = ('Get "https://192.168.56.11:10250/containerLogs/smoke/web-5d7c9b8f6-fghij/'
                                            'web?tailLines=1": dial tcp 192.168.56.11:10250: connect: connection refused')
    e = _run("smoke_exec", sim)
    assert "web-5d7c9b8f6-abcde on master=logs=ok, exec=web-5d7c9b8f6-abcde" in e.actual
    assert "web-5d7c9b8f6-fghij on worker=logs=HTTP 500: Get" in e.actual and "exec=failed (error: unable" in e.actual


def test_port_forward_without_an_answer_fails_with_kubectls_words():
    """simulation: kubectl port-forward to a Service with no pods (kubectl 1.20's message)."""
    sim = Sim()
    sim.cmd["port-forward service/web"] = (0, "error: timed out waiting for the condition\n", "")
    e = _run("smoke_port_forward", sim)
    assert e.actual == "error: timed out waiting for the condition" and "web-5d7c9b8f6-abcde" in e.expected


def test_the_grader_runs_kubectl_bounded_and_only_reads():
    """simulation of nothing: the commands the smoke checks send, as recorded by the host stub, are kubectl exec of
    reading commands and a port-forward, each under `timeout`; none creates, applies, patches or deletes."""
    sent = []
    sim = Sim()
    real_run = sim.run

    def run(command, *args):
        sent.append(command % args if args else command)
        return real_run(command, *args)
    sim.run = run
    for c in ALL:
        _run(c, sim)
    kubectl = [c for c in sent if "kubectl" in c]
    assert kubectl and all("timeout 15 kubectl" in c for c in kubectl), kubectl
    for verb in (" create ", " apply ", " patch ", " delete ", " scale ", " edit ", " label ", " annotate "):
        assert not any(verb in c for c in sent), verb


def test_check_texts_are_not_taken_for_secrets_by_the_evidence_scan():
    """simulation of nothing (the grader's own texts): every Lab 5 check's title and hint, stored in each evidence
    file's result, passes the evidence secret scan (kubelab.evidence.redact.find_secrets). Seen live: a hint starting
    `port-forward, like exec, is ...` was a --token-auth-file line (token,user,uid) to the scan; the scan now takes
    only a real token line (no spaces around a field) for one."""
    from kubelab.evidence.redact import find_secrets

    specs = [fn._kubelab_check for fn in vars(G).values() if hasattr(fn, "_kubelab_check")]
    assert len(specs) >= 20
    flagged = {s.name: find_secrets(s.title + "\n") + find_secrets(s.hint) for s in specs}
    assert {k: v for k, v in flagged.items() if v} == {}
    assert find_secrets("port-forward, like exec, is the API server calling the kubelet") == []
    assert find_secrets("port-forward,like-exec,1000\n") == ["static token file"]
