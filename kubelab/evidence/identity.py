"""Who the evidence came from: per node hostname and machine-id; per cluster the kube-system namespace
UID and the etcd cluster ID. Instructors compare these across a class to spot copied submissions."""

from __future__ import annotations

import json

from kubelab.engine.targets import Target

ETCD_STATUS = ("sudo -n curl -sS --max-time 5 --cacert /etc/kubernetes/pki/etcd/ca.crt "
               "--cert /etc/kubernetes/pki/etcd/healthcheck-client.crt "
               "--key /etc/kubernetes/pki/etcd/healthcheck-client.key "
               "-X POST -d '{}' https://127.0.0.1:2379/v3/maintenance/status")


def collect(target: Target) -> dict:
    """Read-only; an unreachable node or a missing cluster leaves that part empty."""
    nodes: dict[str, dict] = {}
    for node in target.course.model.nodes:
        try:
            out = target.host(node.name).run("hostname; cat /etc/machine-id").stdout.split()
            nodes[node.name] = {"hostname": out[0] if out else None, "machine_id": out[1] if len(out) > 1 else None}
        except Exception:  # noqa: BLE001 - identity is best effort: the checks already report unreachable nodes
            nodes[node.name] = {"hostname": None, "machine_id": None}
    return {"nodes": nodes, "cluster": _cluster(target)}


def _cluster(target: Target) -> dict:
    cp = target.course.model.control_plane.name
    cluster = {"kube_system_uid": None, "etcd_cluster_id": None}
    try:
        host = target.host(cp)
        etcd = host.run(ETCD_STATUS)
        if etcd.rc == 0 and etcd.stdout.strip():
            found = json.loads(etcd.stdout).get("header", {}).get("cluster_id")
            # str(None) would be "None": two submissions without an etcd id would look like copies.
            cluster["etcd_cluster_id"] = str(found) if found else None
        conf = host.run("sudo -n cat /etc/kubernetes/admin.conf")
        if conf.rc == 0:
            from kubernetes import client

            from kubelab.engine.yamldata import load_yaml

            api = target.api_client(load_yaml(conf.stdout))
            try:
                cluster["kube_system_uid"] = client.CoreV1Api(api).read_namespace("kube-system", _request_timeout=5).metadata.uid
            finally:
                api.close()
    except Exception:  # noqa: BLE001 - best effort, as above
        pass
    return cluster
