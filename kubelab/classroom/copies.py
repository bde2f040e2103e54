"""Copy detection: learners whose submissions come from the same machines or the same cluster.

Every evidence file records, per node, /etc/machine-id and, once a cluster exists, the kube-system
namespace UID and the etcd cluster ID. Two learners who built their labs on different machines never
share any of these; evidence handed in by two learners that does is flagged with the learners and
nodes involved. Empty identities (a node that was not reachable, no cluster yet) are ignored.

A flag is a lead, not a verdict: two learners sharing one lab machine (a lab room, a pair) also share
its machine-id."""

from __future__ import annotations

from collections import defaultdict

KINDS = ("machine-id", "kube-system-uid", "etcd-cluster-id")
_MEANINGLESS = {"", "none", "null", "uninitialized", "0" * 32}


def _usable(value) -> str | None:
    if not isinstance(value, (str, int)) or isinstance(value, bool):
        return None
    text = str(value).strip()
    return None if text.lower() in _MEANINGLESS else text


def shared_identities(records: list[dict]) -> list[dict]:
    """[{kind, value, learners: [...], where: {learner: [node, ...]}}] for every identity found in the
    evidence of two or more learners, sorted by kind, then by the learners involved."""
    seen: dict[tuple[str, str], dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    for rec in records:
        # identity comes from a learner's file: any shape may arrive (honesty.py flags it); never fail on it
        identity = rec.get("identity") if isinstance(rec.get("identity"), dict) else {}
        learner = rec["learner"]
        nodes = identity.get("nodes") if isinstance(identity.get("nodes"), dict) else {}
        for node, info in sorted(nodes.items(), key=lambda kv: str(kv[0])):
            value = _usable(info.get("machine_id")) if isinstance(info, dict) else None
            if value:
                seen[("machine-id", value)][learner].append(str(node))
        cluster = identity.get("cluster") if isinstance(identity.get("cluster"), dict) else {}
        for kind, key in (("kube-system-uid", "kube_system_uid"), ("etcd-cluster-id", "etcd_cluster_id")):
            value = _usable(cluster.get(key))
            if value:
                seen[(kind, value)][learner].append("cluster")
    flags = [{"kind": kind, "value": value, "learners": sorted(where), "where": {k: where[k] for k in sorted(where)}}
             for (kind, value), where in seen.items() if len(where) >= 2]
    return sorted(flags, key=lambda f: (KINDS.index(f["kind"]), f["learners"], f["value"]))
