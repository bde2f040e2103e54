"""Lab 10 — The kubelet. Every check only observes: the worker over SSH, the cluster through the API with the
control plane's admin.conf (the kubelet's running configuration through the API server's node proxy, configz).

Three groups of checks:

- the learner's static pod: its manifest in the worker's staticPodPath, and the mirror pod the worker's kubelet
  publishes for it (`<name>-<node>`, annotation kubernetes.io/config.mirror, owned by the Node), Running there;
- a kubelet setting the learner changed in the worker's /var/lib/kubelet/config.yaml (containerLogMaxSize), in
  effect in the running kubelet (configz), and the kubelet healthy afterwards (healthz, node Ready, Lease fresh);
- answers the grader recomputes: the mirror pod's config.hash, the node Lease's leaseDurationSeconds, the serial
  of the worker kubelet's client certificate.
"""

import calendar

import yaml

from kubelab.engine import api_status, check, expect_equal, expect_true, fail, read_or_none

LAB = "lab10"
STATIC_POD = "static-web"                # the static pod the notebook writes on the worker
STATIC_POD_NAMESPACE = "default"
MANIFESTS = "/etc/kubernetes/manifests"  # kubeadm's staticPodPath on every node
KUBELET_CONFIG = "/var/lib/kubelet/config.yaml"
CLIENT_CERT = "/var/lib/kubelet/pki/kubelet-client-current.pem"
SETTING = "containerLogMaxSize"          # the setting the notebook changes
SETTING_VALUE = "20Mi"                   # ... from the kubelet's default 10Mi
MIRROR = "kubernetes.io/config.mirror"
CONFIG_HASH = "kubernetes.io/config.hash"
LEASE_FRESH_S = 40                       # renewed every 10 s; the node-monitor grace period is 40 s


def _worker(course):
    return next(n.name for n in course.nodes if n.role == "worker")


def _manifest_path():
    return f"{MANIFESTS}/{STATIC_POD}.yaml"


def _mirror(kube, node_name):
    name = f"{STATIC_POD}-{node_name}"
    pod = read_or_none(kube.core.read_namespaced_pod, name, STATIC_POD_NAMESPACE)
    if pod is None:
        fail(f"the mirror pod {STATIC_POD_NAMESPACE}/{name}", "none", what="kubectl get pod")
    return pod


def _configz(kube, node_name):
    """The kubelet's running configuration: GET /api/v1/nodes/<node>/proxy/configz (API server -> kubelet)."""
    api = kube.api_client
    try:
        request = api.param_serialize("GET", "/api/v1/nodes/{name}/proxy/configz", path_params={"name": node_name},
                                      header_params={"Accept": "application/json"}, auth_settings=["BearerToken"])
        response = api.call_api(*request)
        response.read()
        data = api.response_deserialize(response, {"200": "object"}).data
    except Exception as e:
        if api_status(e) is None:
            raise
        body = e.body.decode("utf-8", "replace") if isinstance(e.body, bytes) else (e.body or e.reason or "")
        fail("the kubelet's configz through the API server", f"HTTP {e.status}: {body.strip()[:200]}",
             what=f"kubectl get --raw /api/v1/nodes/{node_name}/proxy/configz")
    if not isinstance(data, dict) or not isinstance(data.get("kubeletconfig"), dict):
        fail('{"kubeletconfig": {...}}', str(data)[:200], what="configz")
    return data["kubeletconfig"]


def same_serial(given, live):
    """A certificate serial as openssl prints it (hex, any case, with or without colons or 0x) or in decimal."""
    text = given.strip().lower().removeprefix("serial=").replace(":", "")
    try:
        return int(text.removeprefix("0x"), 16) == int(live, 16) or (text.isdigit() and int(text) == int(live, 16))
    except ValueError:
        return False


# ------------------------------------------------------------------------------------------------
# the static pod
# ------------------------------------------------------------------------------------------------

@check(f"The static pod manifest {STATIC_POD}.yaml is in the worker's staticPodPath", on="worker", points=1,
       hint=f"Write the Pod `{STATIC_POD}` as {MANIFESTS}/{STATIC_POD}.yaml ON THE WORKER (`%%node worker`), not on the "
            f"control plane: each kubelet runs only the files in its own staticPodPath. It must be valid YAML: "
            f"`python3 -c 'import yaml,sys; yaml.safe_load(open(sys.argv[1]))' FILE` or `kubectl apply --dry-run=client -f FILE`; "
            f"`journalctl -u kubelet | grep -i static` shows why the kubelet skipped it.")
def test_static_pod_file(host, hosts, course):
    path = _manifest_path()
    got = host.run("sudo -n cat %s", path)
    if got.rc != 0:
        cp = course.control_plane.name
        elsewhere = hosts[cp].run("sudo -n test -e %s", path).rc == 0
        fail(f"{path} on this node", f"missing{f' (it is on {cp}: its kubelet runs it there)' if elsewhere else ''}",
             what="static pod manifest")
    try:
        doc = yaml.safe_load(got.stdout)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        fail("a YAML Pod manifest", f"not valid YAML{where}: {getattr(e, 'problem', None) or e}", what=path)
    doc = doc if isinstance(doc, dict) else {}
    expect_equal({"kind": doc.get("kind"), "name": (doc.get("metadata") or {}).get("name")},
                 {"kind": "Pod", "name": STATIC_POD}, what=path)


@check(f"Its mirror pod {STATIC_POD}-<worker> is Running on the worker, owned by the Node", on="cluster", points=2,
       needs=["static_pod_file"], wait_s=40, interval_s=4,
       hint="The kubelet picks up a new file in its staticPodPath within ~20 s (fileCheckFrequency), runs the pod and "
            "publishes a read-only mirror pod named <pod>-<node>. Not there: `sudo journalctl -u kubelet -n 50` on the "
            "worker (an image it cannot pull, a manifest it rejects); deleting the mirror with kubectl only makes the "
            "kubelet create it again.")
def test_mirror_pod(kube, course):
    worker = _worker(course)
    pod = _mirror(kube, worker)
    annotations = pod.metadata.annotations or {}
    owners = [(o.kind, o.name) for o in (pod.metadata.owner_references or [])]
    expect_true(MIRROR in annotations, f"annotation {MIRROR}", sorted(annotations) or "(no annotations)",
                what=f"pod {pod.metadata.name}")
    expect_true(("Node", worker) in owners, f"an ownerReference to Node {worker}", owners or "(none)",
                what=f"pod {pod.metadata.name}")
    expect_equal({"node": pod.spec.node_name, "phase": pod.status.phase}, {"node": worker, "phase": "Running"},
                 what=f"pod {pod.metadata.name}")


# ------------------------------------------------------------------------------------------------
# a kubelet setting changed, in effect, and the kubelet healthy
# ------------------------------------------------------------------------------------------------

@check(f"The worker's kubelet config.yaml sets {SETTING}: {SETTING_VALUE}", on="worker", points=1,
       hint=f"Edit {KUBELET_CONFIG} on the worker: one line `{SETTING}: {SETTING_VALUE}` at the top level (replace an "
            f"existing {SETTING} line rather than adding a second one).")
def test_setting_in_file(host):
    got = host.run("sudo -n cat %s", KUBELET_CONFIG)
    expect_true(got.rc == 0, KUBELET_CONFIG, got.stderr.strip() or "missing", what="kubelet configuration file")
    try:
        conf = yaml.safe_load(got.stdout) or {}
    except yaml.YAMLError as e:
        fail("a YAML KubeletConfiguration", f"not valid YAML: {getattr(e, 'problem', None) or e}", what=KUBELET_CONFIG)
    expect_equal(str(conf.get(SETTING, "(not set: the default 10Mi)")), SETTING_VALUE, what=f"{SETTING} in {KUBELET_CONFIG}")


@check(f"The running kubelet on the worker uses {SETTING} {SETTING_VALUE} (configz)", on="worker", points=2,
       needs=["setting_in_file"], wait_s=20, interval_s=4,
       hint="The kubelet reads config.yaml only when it starts: `sudo systemctl restart kubelet` on the worker, then "
            "`kubectl get --raw /api/v1/nodes/<worker>/proxy/configz` shows the value it runs with.")
def test_setting_in_effect(host, node, kube):
    running = _configz(kube, node.name)
    expect_equal(str(running.get(SETTING, "(not reported)")), SETTING_VALUE,
                 what=f"{SETTING} of the running kubelet on {node.name}")


@check("The worker's kubelet is healthy: healthz ok, Node Ready, Lease renewed", on="worker", points=1, wait_s=30,
       interval_s=3,
       hint="After a change to config.yaml a kubelet that does not come back has rejected it: "
            "`sudo systemctl status kubelet` and `sudo journalctl -u kubelet -n 30` on the worker name the bad field; "
            "fix it (or restore your backup of config.yaml) and restart the kubelet.")
def test_kubelet_healthy(host, node, kube, hosts, course):
    health = host.run("curl -s -m 5 http://127.0.0.1:10248/healthz")
    expect_equal(health.stdout.strip() or f"no answer (curl exit {health.rc})", "ok",
                 what=f"http://127.0.0.1:10248/healthz on {node.name}")
    n = kube.core.read_node(node.name)
    ready = next((c for c in (n.status.conditions or []) if c.type == "Ready"), None)
    expect_equal(ready.status if ready else "Unknown", "True", what=f"Ready condition of {node.name}")
    now = int(hosts[course.control_plane.name].run("date +%s").stdout.strip())
    lease = kube.coordination.read_namespaced_lease(node.name, "kube-node-lease")
    age = now - calendar.timegm(lease.spec.renew_time.utctimetuple())
    expect_true(age <= LEASE_FRESH_S, f"renewed within {LEASE_FRESH_S}s", f"renewed {age}s ago",
                what=f"Lease kube-node-lease/{node.name}")


# ------------------------------------------------------------------------------------------------
# answers the grader recomputes
# ------------------------------------------------------------------------------------------------

@check("The config.hash you found is your mirror pod's", on="cluster", points=1, needs=["mirror_pod"],
       hint=f"`kubectl get pod {STATIC_POD}-<worker> -o yaml` shows the annotations the kubelet set; record "
            f"{CONFIG_HASH} with `%answer {LAB} mirror_config_hash <value>`. It changes when the manifest changes.")
def test_answer_config_hash(answers, kube, course):
    pod = _mirror(kube, _worker(course))
    answers.expect("mirror_config_hash", (pod.metadata.annotations or {}).get(CONFIG_HASH, ""),
                   where=f"the {CONFIG_HASH} annotation of your mirror pod")


@check("The lease duration you found is the worker's node Lease's", on="cluster", points=1,
       hint=f"`kubectl -n kube-node-lease get lease <worker> -o yaml`: spec.leaseDurationSeconds; record it with "
            f"`%answer {LAB} lease_duration_seconds <value>`.")
def test_answer_lease_duration(answers, kube, course):
    lease = kube.coordination.read_namespaced_lease(_worker(course), "kube-node-lease")
    answers.expect("lease_duration_seconds", lease.spec.lease_duration_seconds,
                   where="spec.leaseDurationSeconds of the worker's Lease in kube-node-lease")


@check("The serial you found is the worker kubelet's client certificate's", on="cluster", points=1,
       hint=f"On the worker: `sudo openssl x509 -noout -serial -enddate -in {CLIENT_CERT}`; record the serial (hex, "
            f"as printed) with `%answer {LAB} kubelet_client_serial <value>`.")
def test_answer_client_serial(answers, hosts, course):
    out = hosts[_worker(course)].run("sudo -n openssl x509 -noout -serial -in %s", CLIENT_CERT)
    serial = out.stdout.strip().removeprefix("serial=")
    expect_true(out.rc == 0 and bool(serial), f"the serial of {CLIENT_CERT}", out.stderr.strip() or "unreadable",
                what="kubelet client certificate")
    answers.expect("kubelet_client_serial", serial, where=f"the serial of the worker's {CLIENT_CERT}",
                   same=same_serial)
