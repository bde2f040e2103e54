"""The replayed `kube` fixture (kubelab/engine/kubelite.py) gives graders what the official Kubernetes client gives
them, without importing it.

Proof, by kind: the stored schema is the installed official client's (generated from it again and compared);
objects built from real captures (shared/realdata: Node and Pod lists as the API server sent them) equal the
official client's deserialization of the same text, field by field; the request paths equal the ones the official
client sends (its own param_serialize, called for real); every replayable Lab 4 and Lab 5 evidence file of the
suite (tests/replay_corpus.py, recorded evidence modelled on shared/realdata) grades the same through both; an
error status raises the official client's own exception class. Nothing here is mocked: the "official side" is the
installed client."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

import replay_corpus
from helpers import shared_realdata
from kubelab.engine import kubelite, kubeschema
from kubelab.engine.kube import Kube
from kubelab.evidence import comparable, load
from kubelab.evidence.replay import ReplayClock, ReplayTarget


def test_stored_schema_is_the_installed_clients():
    """The installed official client, read again: a client upgrade without `python -m kubelab.engine.kubeschema`
    fails here (and at run time replay falls back to the official client, see kubelite.schema)."""
    assert kubeschema.SCHEMA_FILE.read_text(encoding="utf-8") == kubeschema.render(kubeschema.generate())
    assert kubelite.available()


def _official(text: str, kind: str):
    from kubernetes.client import ApiClient

    return ApiClient().deserialize(text, kind, "application/json")


@pytest.mark.parametrize("sub,kind", [("nodes-json", "V1NodeList"), ("pods-json", "V1PodList")])
def test_objects_from_real_captures_equal_the_official_clients(sub, kind):
    """Real captures (shared/realdata/<sub>, the current-format ones: v1.28/v1.29): every field of every object
    equals the official client's, timestamps included; graders' idioms read the same values."""
    files = [p for p in sorted(shared_realdata(sub).glob("v1.2*.json"))]
    assert files, f"no v1.2x capture in shared/realdata/{sub}"
    for path in files:
        text = path.read_text(encoding="utf-8")
        data = json.loads(text)
        if isinstance(data, list):  # a bare list of objects: wrap it as the API's List
            text = json.dumps({"kind": kind[2:], "apiVersion": "v1", "items": data})
        official = _official(text, kind)
        lite = kubelite._build(kind, json.loads(text))
        assert lite.to_dict() == official.to_dict(), path
        first, off = lite.items[0], official.items[0]
        assert first.metadata.creation_timestamp == off.metadata.creation_timestamp is not None
        assert [c.type for c in first.status.conditions] == [c.type for c in off.status.conditions]


def test_a_name_the_model_lacks_is_an_attributeerror_like_the_official_model():
    """Literal object: an absent field is None, a misspelt one an AttributeError, as with the official model."""
    text = '{"kind": "Node", "metadata": {"name": "master"}}'
    lite, official = kubelite._build("V1Node", json.loads(text)), _official(text, "V1Node")
    assert lite.spec is None and official.spec is None
    for obj in (lite, official):
        with pytest.raises(AttributeError):
            obj.metadata.nmae  # noqa: B018


CALLS = [("CoreV1Api", "list_namespaced_pod", ("kube-system",), {"label_selector": "tier=control-plane"}),
         ("CoreV1Api", "list_node", (), {"field_selector": "metadata.name=master", "limit": 5, "watch": False}),
         ("CoreV1Api", "read_namespaced_pod", ("a b/c", "ns"), {}),
         ("AppsV1Api", "list_daemon_set_for_all_namespaces", (), {"label_selector": "app in (flannel,x),k!=v"}),
         ("RbacAuthorizationV1Api", "list_cluster_role_binding", (), {"field_selector": "metadata.name=kubeadm:x"}),
         ("CoordinationV1Api", "read_namespaced_lease", ("worker", "kube-node-lease"), {}),
         ("VersionApi", "get_code", (), {})]


@pytest.mark.parametrize("api,method,args,kwargs", CALLS)
def test_request_paths_are_the_official_clients(api, method, args, kwargs):
    """The official client's own request building (its ApiClient, the request captured at the REST layer) vs
    kubelite's: the same method and path with query, so evidence recorded live is found in replay."""
    from kubernetes import client
    from kubernetes.client.rest import RESTResponse

    sent = []

    def official_request(method, url, headers=None, body=None, post_params=None, _request_timeout=None):
        sent.append((method, "/" + url.split("/", 3)[3]))
        return RESTResponse(SimpleNamespace(status=401, reason="Unauthorized", data=b"", headers={}))

    api_client = client.ApiClient(client.Configuration(host="https://h"))
    api_client.rest_client.request = official_request
    with pytest.raises(client.exceptions.ApiException):  # 401: no body to build, the request is what counts
        getattr(getattr(client, api)(api_client), method)(*args, **kwargs)
    lite = []
    lite_api = kubelite.LiteApi(api, lambda m, p: lite.append((m, p)) or (401, ""), client.ApiClient)
    with pytest.raises(client.exceptions.ApiException):
        getattr(lite_api, method)(*args, **kwargs)
    assert lite == sent


def test_an_error_status_raises_the_official_exception():
    """A recorded 404 (a Lease not there yet): the official client's NotFoundException, its status and reason."""
    from kubernetes.client import ApiClient
    from kubernetes.client.exceptions import NotFoundException

    body = '{"kind":"Status","apiVersion":"v1","status":"Failure","reason":"NotFound","code":404}'
    api = kubelite.LiteApi("CoordinationV1Api", lambda m, p: (404, body), ApiClient)
    with pytest.raises(NotFoundException) as e:
        api.read_namespaced_lease("worker", "kube-node-lease")
    assert e.value.status == 404


class OfficialReplayTarget(ReplayTarget):
    """The same evidence, every API read through the official client (what replay did before kubelite)."""

    def api_requester(self):
        return None


def test_every_api_evidence_file_grades_the_same_through_both(tmp_path):
    """Recorded evidence (tests/replay_corpus.py: Lab 4's simulated v1.36 control plane, healthy and each mistake,
    and Lab 5's, modelled on shared/realdata): replayed with kubelite and with the official client, identical."""
    from kubelab.engine.direct import run_lab_direct

    cases = replay_corpus.sim_cases(tmp_path)
    assert {c.lab for c in cases} == {"lab04", "lab05"} and len(cases) >= 10
    for case in cases:
        evidence = load(case.path)
        results = []
        for target_cls in (ReplayTarget, OfficialReplayTarget):
            clock = ReplayClock()
            results.append(comparable(run_lab_direct(case.course, case.lab, target_cls(case.course, evidence),
                                                     clock=clock.now, sleep=clock.sleep).to_dict()))
        assert results[0] == results[1], case.name


def test_live_targets_keep_the_official_client():
    """Live and recording targets answer no API read themselves: the official client is used (the fixture's default)."""
    from helpers import REPO
    from kubelab.course import load_course
    from kubelab.engine.targets import LocalTarget

    target = LocalTarget(load_course(REPO))
    assert target.api_requester() is None
    kube = Kube(target.host("master"), "master", client_factory=target.api_client, requester_factory=target.api_requester)
    assert kube._requester is None


def test_a_lab04_replay_never_imports_the_official_client(tmp_path):
    """Recorded evidence (the simulated healthy v1.36 control plane) replayed in a fresh interpreter, as `kubelab
    grade --replay` runs it: full marks, and no module of the official client was imported."""
    import subprocess
    import sys

    from helpers import REPO, clean_environ

    case = replay_corpus.sim_cases(tmp_path, mistakes=[])[0]
    code = ("import sys; from kubelab.course import load_course; from kubelab.evidence import replay_lab; "
            f"r, _ = replay_lab(load_course({str(REPO)!r}), 'lab04', {str(case.path)!r}); "
            "print(r.status, sorted(m for m in sys.modules if m.split('.')[0] == 'kubernetes'))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO,
                         env={**clean_environ(), "PYTHONPATH": str(REPO)}, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split(None, 1) == ["passed", "[]\n"], out.stdout


@pytest.mark.twins
@pytest.mark.cluster
def test_lab04_live_on_the_real_cluster_replays_the_same_through_both(shared_cluster, tmp_path):
    """Real 1.20 cluster on twins (the session's shared cluster; grading only reads it): Lab 4 graded live with the
    official client (kube.rbac for the bootstrap bindings, kube.get_json for 1.20's v1beta1 EndpointSlices) and
    recorded; the evidence replayed through kubelite and through the official client gives the live result."""
    from kubelab.engine.direct import run_lab_direct
    from kubelab.engine.targets import SshConfigTarget
    from kubelab.evidence import record_lab, save

    course = shared_cluster["course"]
    target = SshConfigTarget(course, shared_cluster["ts"].ssh_config_file())
    try:
        live, evidence = record_lab(course, "lab04", target)
    finally:
        target.close()
    by_check = {c.check: c for c in live.checks}
    assert [(c.id, c.message) for c in live.checks if str(c.status) == "error"] == []
    for name in ("node_ip", "bootstrap_token", "control_plane_pods"):  # the reads kube.get_json/rbac/core serve
        assert str(by_check[name].status) == "pass", by_check[name]
    path = save(evidence, tmp_path / "lab04-live.json")
    for target_cls in (ReplayTarget, OfficialReplayTarget):
        clock = ReplayClock()
        replayed = run_lab_direct(course, "lab04", target_cls(course, load(path)), clock=clock.now, sleep=clock.sleep)
        assert comparable(replayed.to_dict()) == comparable(live.to_dict()), target_cls.__name__


def test_a_text_answer_replays_as_the_text_even_when_it_looks_like_json():
    """simulation (a recorded answer handed back): a pod log line that starts with `[` (busybox httpd's) comes back
    as the same text, as the official client gives it live from a text/plain answer — not a JSON parse error."""
    from kubelab.engine import kubelite

    line = "[::ffff:10.244.1.1]:40512 200 /index.html"
    api = kubelite.lite_api("core", lambda method, path: (200, line),
                            lambda: __import__("kubernetes").client.ApiClient())
    assert api.read_namespaced_pod_log("web-1", "smoke", tail_lines=1) == line
    assert api.read_namespaced_pod_log("web-1", "smoke") == line
