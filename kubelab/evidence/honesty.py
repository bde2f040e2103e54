"""What replay checks about an evidence file beyond its digest, and what that proves.

The learner is root on the machines that record the evidence, so nothing in the file is proof: anyone
can edit an observation and recompute the digest (model.py). These checks raise the cost of a forgery
from "edit one line" to "edit every place the same fact was seen, consistently, and the result too":

- the result replayed now must equal the `result` stored at recording (an edited observation changes
  the replay, an edited result no longer matches the observations);
- the evidence must have been recorded against the course.yaml grading it (`course_digest`);
- `identity` (machine-ids, kube-system UID, etcd cluster ID: what copy detection compares) must be
  present and well formed;
- a fact observed twice must agree with itself: hostname and machine-id in `identity` and in commands,
  the kube-system UID in `identity` and in the API, the etcd cluster ID in `identity` and in etcd's answers,
  every kubeconfig's CA with each other and with /etc/kubernetes/pki/ca.crt, each node's InternalIP in
  the API with the node's own `ip addr`, one object UID always with the same name, and timestamps in order.

A submission failing any of them is still graded; it is *flagged* with the reasons. None of this is
engine knowledge of a lab: every check reads generic Kubernetes and Linux facts, and skips what the
evidence does not hold."""

from __future__ import annotations

import base64
import json
import re
from datetime import datetime, timedelta, timezone
from typing import Iterator

from kubelab.course import LoadedCourse
from kubelab.engine.results import LabResult
from kubelab.evidence.model import Evidence, course_digest

EXIT_FLAGGED = 4  # `kubelab grade --replay`: graded, but the evidence is flagged

_MACHINE_ID = re.compile(r"^[0-9a-f]{32}$")
_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
_ETCD_ID = re.compile(r"^\d{1,20}$")
_CLUSTER_ID_IN_OUTPUT = re.compile(r'"cluster_id"\s*:\s*"?(\d{1,20})"?')
_CA_DATA = re.compile(r"certificate-authority-data\"?\s*:\s*\"?([A-Za-z0-9+/=]{40,})")
_PEM_CERT = re.compile(r"-----BEGIN CERTIFICATE-----\s*([A-Za-z0-9+/=\s]+?)\s*-----END CERTIFICATE-----")
_INET = re.compile(r"\binet6?\s+([0-9a-fA-F.:]+)/\d+")
_PLAIN_IP_ADDR = re.compile(r"(?:^|\s)ip(?:\s+-(?:4|6|o|br|brief|oneline))*\s+a(?:ddr(?:ess)?)?(?:\s+(?:show|list))?\s*$")
CLOCK_SKEW = timedelta(days=1)  # a home VM's clock may be off after a suspend; a forgery is usually further


def verify(course: LoadedCourse, evidence: Evidence, replayed: LabResult, now: datetime | None = None) -> list[str]:
    """The reasons to flag this evidence, one line each; empty when nothing is inconsistent."""
    flags: list[str] = []
    checks = [(c.__name__, lambda c=c: c(course, evidence, replayed)) for c in (
        _result_matches, _course_matches, _identity_well_formed, _identity_agrees_with_observations,
        _one_cluster_ca, _node_addresses_agree, _object_uids_agree)]
    checks.append(("_timestamps_in_order",
                   lambda: _timestamps_in_order(evidence, replayed, now or datetime.now(timezone.utc))))
    for name, run in checks:
        try:
            flags += run()
        except Exception as e:  # noqa: BLE001 - a crafted shape no check foresaw is itself a reason to flag
            flags.append(f"the evidence has a part of an unexpected shape ({name.strip('_').replace('_', ' ')}: "
                         f"{type(e).__name__}): it cannot have come from a recording")
    return flags


# -- result and course ---------------------------------------------------------------------------

def _shape(check: dict) -> dict:
    keep = ("id", "status", "points", "max_points", "expected", "actual", "blocked_by")
    # an observation that failed live was never recorded: its replay errors with another message
    return {k: check.get(k) for k in keep + (() if check.get("status") == "error" else ("message",))}


def _result_matches(course, evidence: Evidence, replayed: LabResult) -> list[str]:
    stored = evidence.result.get("checks") if isinstance(evidence.result, dict) else None
    if not isinstance(stored, list) or not all(isinstance(c, dict) for c in stored):
        return ["the result stored at recording is missing or malformed"]
    now = [_shape(c.to_dict()) for c in replayed.checks]
    then = [_shape(c) for c in stored]
    if now == then:
        return []
    then_by_id = {str(c.get("id")): c for c in then}  # str(): a forged id may be any JSON, a list included
    differ = [c["id"] for c in now if then_by_id.get(str(c["id"])) != c]
    differ += [str(c.get("id")) for c in then if str(c.get("id")) not in {n["id"] for n in now}]
    first = ", ".join(str(d) for d in differ[:3]) + (f" and {len(differ) - 3} more" if len(differ) > 3 else "")
    return [f"the replayed result differs from the result stored at recording ({first}): observations or "
            "result were changed after recording, or the grader changed since (then record again)"]


def _course_matches(course: LoadedCourse, evidence: Evidence, replayed) -> list[str]:
    here = course_digest(course.path)
    if evidence.course_digest == here:
        return []
    return [f"recorded against another course.yaml ({evidence.course_digest[:19]}…), graded against "
            f"{course.path} ({here[:19]}…): a changed IP, version or check can change the score"]


# -- identity ------------------------------------------------------------------------------------

def _identity_well_formed(course: LoadedCourse, evidence: Evidence, replayed: LabResult) -> list[str]:
    ident = evidence.identity
    nodes = ident.get("nodes") if isinstance(ident, dict) else None
    cluster = ident.get("cluster") if isinstance(ident, dict) else None
    if not isinstance(nodes, dict) or not isinstance(cluster, dict):
        return ["identity is missing or malformed (needs nodes and cluster): copy detection cannot see this submission"]
    flags = []
    observed = {c.node for c in replayed.checks if c.status.value in ("pass", "fail")}
    for node in course.model.nodes:
        info = nodes.get(node.name)
        if info is not None and not isinstance(info, dict):
            flags.append(f"identity of node {node.name} is malformed")
            continue
        mid = (info or {}).get("machine_id")
        if mid is None:
            if node.name in observed:  # the grader reached that node, so its machine-id was readable too
                flags.append(f"identity of node {node.name} has no machine-id although the node was observed")
        elif not isinstance(mid, str) or not _MACHINE_ID.match(mid):
            flags.append(f"identity of node {node.name} has a malformed machine-id {str(mid)[:40]!r}")
    for key, pattern in (("kube_system_uid", _UUID), ("etcd_cluster_id", _ETCD_ID)):
        value = cluster.get(key)
        if value is not None and (not isinstance(value, str) or not pattern.match(value)):
            flags.append(f"identity cluster.{key} is malformed: {str(value)[:40]!r}")
    return flags


def _identity_agrees_with_observations(course, evidence: Evidence, replayed) -> list[str]:
    ident = evidence.identity if isinstance(evidence.identity, dict) else {}
    nodes = ident.get("nodes") if isinstance(ident.get("nodes"), dict) else {}
    flags = []
    for node, observations in evidence.nodes.items():
        info = nodes.get(node) if isinstance(nodes.get(node), dict) else {}
        for obs in observations:
            if obs.rc != 0:
                continue
            cmd = obs.cmd.strip().removeprefix("sudo -n ").strip()
            value = obs.stdout.strip()
            if cmd in ("hostname", "cat /etc/hostname") and info.get("hostname") not in (None, value):
                flags.append(f"node {node}: identity says hostname {info.get('hostname')!r}, `{cmd}` said {value!r}")
            if cmd == "cat /etc/machine-id" and info.get("machine_id") not in (None, value):
                flags.append(f"node {node}: identity says machine-id {info.get('machine_id')!r}, /etc/machine-id "
                             f"said {value!r}")
    cluster = ident.get("cluster") if isinstance(ident.get("cluster"), dict) else {}
    uid = cluster.get("kube_system_uid")
    for data in _api_objects(evidence):
        meta = data.get("metadata") if isinstance(data.get("metadata"), dict) else {}
        if data.get("kind") == "Namespace" and meta.get("name") == "kube-system" and uid and meta.get("uid") \
                and meta["uid"] != uid:
            flags.append(f"identity says kube-system UID {uid}, the API said {meta['uid']}")
    etcd = cluster.get("etcd_cluster_id")
    seen_ids = {m for _, obs in _commands(evidence) for m in _CLUSTER_ID_IN_OUTPUT.findall(obs.stdout)}
    if etcd and seen_ids - {str(etcd)}:
        flags.append(f"identity says etcd cluster ID {etcd}, etcd answered {', '.join(sorted(seen_ids - {str(etcd)}))}")
    elif len(seen_ids) > 1:
        flags.append(f"etcd answered with {len(seen_ids)} different cluster IDs in one recording")
    return _dedupe(flags)


# -- cross-observation consistency ---------------------------------------------------------------

def _one_cluster_ca(course, evidence: Evidence, replayed) -> list[str]:
    """Every kubeconfig of a kubeadm cluster embeds the same CA, which is /etc/kubernetes/pki/ca.crt."""
    from_kubeconfigs: dict[str, str] = {}
    from_pki: dict[str, str] = {}
    for node, obs in _commands(evidence):
        for b64 in _CA_DATA.findall(obs.stdout):
            body = _cert_body(_b64_text(b64))
            if body:
                from_kubeconfigs.setdefault(body, f"a kubeconfig on {node}")
        if obs.rc == 0 and re.search(r"\bcat\s+/etc/kubernetes/pki/ca\.crt\s*$", obs.cmd):
            for body in _PEM_CERT.findall(obs.stdout):
                from_pki.setdefault(re.sub(r"\s+", "", body), f"/etc/kubernetes/pki/ca.crt on {node}")
    flags = []
    if len(from_kubeconfigs) > 1:
        flags.append(f"kubeconfigs embed {len(from_kubeconfigs)} different CAs ({', '.join(sorted(set(from_kubeconfigs.values())))})")
    if from_kubeconfigs and from_pki and not set(from_kubeconfigs) & set(from_pki):
        flags.append("the CA in the kubeconfigs is not /etc/kubernetes/pki/ca.crt")
    return flags


def _node_addresses_agree(course, evidence: Evidence, replayed) -> list[str]:
    """A Node's InternalIP is an address of that node: its unfiltered `ip addr` must list it."""
    own: dict[str, set[str]] = {}
    for node, obs in _commands(evidence):
        if obs.rc == 0 and _PLAIN_IP_ADDR.search(obs.cmd.strip()):
            own.setdefault(node, set()).update(_INET.findall(obs.stdout))
    flags = []
    for data in _api_objects(evidence):
        if data.get("kind") not in ("Node", None) or not isinstance(data.get("status"), dict):
            continue
        name = (data.get("metadata") or {}).get("name") if isinstance(data.get("metadata"), dict) else None
        addresses = data["status"].get("addresses")
        if name not in own or not isinstance(addresses, list):
            continue
        for a in addresses:
            if isinstance(a, dict) and a.get("type") == "InternalIP" and a.get("address") not in own[name]:
                flags.append(f"the API says node {name} has InternalIP {a.get('address')}, but `ip addr` on {name} "
                             f"lists {', '.join(sorted(own[name])) or 'no address'}")
    return _dedupe(flags)


def _object_uids_agree(course, evidence: Evidence, replayed) -> list[str]:
    """An object seen in two API answers (a list and a get) is the same object: same UID, same name."""
    by_uid: dict[str, tuple] = {}
    flags = []
    for data in _api_objects(evidence):
        meta = data.get("metadata")
        if not isinstance(meta, dict) or not isinstance(meta.get("uid"), str):
            continue
        seen = (meta.get("namespace"), meta.get("name"), meta.get("creationTimestamp"))
        first = by_uid.setdefault(meta["uid"], seen)
        if first != seen:
            flags.append(f"object UID {meta['uid']} is {first[0] or ''}/{first[1]} created {first[2]} in one "
                         f"observation and {seen[0] or ''}/{seen[1]} created {seen[2]} in another")
    return _dedupe(flags)


def _timestamps_in_order(evidence: Evidence, replayed: LabResult, now: datetime) -> list[str]:
    recorded = _when(evidence.recorded_at)
    if recorded is None:
        return [f"recorded_at {evidence.recorded_at[:40]!r} is not a timestamp"]
    flags = []
    if recorded > now + CLOCK_SKEW:
        flags.append(f"recorded_at {evidence.recorded_at} is in the future")
    started = _when(evidence.result.get("started_at")) if isinstance(evidence.result, dict) else None
    if started is not None and not (started <= recorded + timedelta(minutes=1)):
        flags.append(f"the recording ended ({evidence.recorded_at}) before the grading started "
                     f"({evidence.result.get('started_at')})")
    latest = None
    for data in _api_objects(evidence):
        meta = data.get("metadata") if isinstance(data.get("metadata"), dict) else {}
        created = _when(meta.get("creationTimestamp"))
        if created is not None and (latest is None or created > latest[0]):
            latest = (created, meta.get("name"))
    if latest and latest[0] > recorded + CLOCK_SKEW:
        flags.append(f"the API shows {latest[1]} created {latest[0].isoformat()}, after the recording "
                     f"({evidence.recorded_at})")
    return flags


# -- helpers -------------------------------------------------------------------------------------

def _commands(evidence: Evidence) -> Iterator[tuple[str, object]]:
    for node, observations in evidence.nodes.items():
        for obs in observations:
            yield node, obs


def _api_objects(evidence: Evidence) -> Iterator[dict]:
    """Every object in every API answer: the answer itself and, for a list, its items."""
    for obs in evidence.api:
        try:
            data = json.loads(obs.data)
        except (ValueError, RecursionError):
            continue
        if not isinstance(data, dict):
            continue
        yield data
        items = data.get("items")
        if isinstance(items, list):
            kind = data.get("kind", "")
            for item in items:
                if isinstance(item, dict):
                    yield {"kind": kind[:-4], **item} if kind.endswith("List") and "kind" not in item else item


def _b64_text(value: str) -> str:
    try:
        return base64.b64decode(value, validate=False).decode("ascii", "replace")
    except ValueError:
        return ""


def _cert_body(pem: str) -> str | None:
    m = _PEM_CERT.search(pem)
    return re.sub(r"\s+", "", m.group(1)) if m else None


def _when(text) -> datetime | None:
    if not isinstance(text, str):
        return None
    try:
        t = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return t if t.tzinfo else t.replace(tzinfo=timezone.utc)


def _dedupe(flags: list[str]) -> list[str]:
    return list(dict.fromkeys(flags))
