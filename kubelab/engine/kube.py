"""The `kube` fixture: the official kubernetes client, built from the control plane's admin kubeconfig.

It is lazy: nothing is read until a check touches it, so a lab without a cluster never pays for it,
and a missing admin.conf surfaces inside the check that needed it (as that check's failure)."""

from __future__ import annotations

import copy
import ipaddress
from functools import cached_property
from urllib.parse import urlsplit, urlunsplit
from typing import Any, Callable

import yaml

from kubelab.engine.checks import CheckFailed
from kubelab.errors import InfrastructureError

ADMIN_KUBECONFIG = "/etc/kubernetes/admin.conf"
# libyaml's safe loader where PyYAML was built with it (PyYAML's documented fast path), else the same in Python
SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class Kube:
    def __init__(self, control_plane_host: Any, control_plane_name: str, path: str = ADMIN_KUBECONFIG,
                 client_factory: Callable[[dict], Any] | None = None):
        self._host = control_plane_host
        self._node = control_plane_name
        self.path = path
        # the target decides how API requests travel (live, recorded, or replayed from evidence)
        self._client_factory = client_factory or live_api_client

    @cached_property
    def kubeconfig(self) -> dict:
        result = self._host.run("sudo -n cat %s", self.path)
        if result.rc != 0:
            raise CheckFailed(f"{self.path} on {self._node} (written by kubeadm init)",
                              (result.stderr.strip() or f"exit status {result.rc}"), what="admin kubeconfig")
        try:
            data = yaml.load(result.stdout, Loader=SAFE_LOADER)
            assert isinstance(data, dict) and data.get("clusters")
        except Exception:
            raise CheckFailed("a kubeconfig", f"{self.path} on {self._node} is not a kubeconfig", what="admin kubeconfig")
        return data

    @cached_property
    def api_client(self):
        return self._client_factory(self.kubeconfig)

    @cached_property
    def core(self):
        from kubernetes import client

        return client.CoreV1Api(self.api_client)

    @cached_property
    def apps(self):
        from kubernetes import client

        return client.AppsV1Api(self.api_client)

    @cached_property
    def coordination(self):
        from kubernetes import client

        return client.CoordinationV1Api(self.api_client)

    @cached_property
    def version(self):
        from kubernetes import client

        return client.VersionApi(self.api_client).get_code()

    def close(self) -> None:
        if "api_client" in self.__dict__:
            self.api_client.close()


def pinned_to_ip(kubeconfig: dict, ip: str) -> dict:
    """The kubeconfig with every cluster whose server is a DNS name (kubeadm's controlPlaneEndpoint may be one,
    e.g. master:6443) reached at `ip` instead, its certificate still verified against that name: the kubeconfig's
    own `tls-server-name` field (what kubectl and the Python client honour for SNI and the hostname check). The
    grading host need not resolve the name; an IP server, or one with tls-server-name already, is left as it is."""
    out = copy.deepcopy(kubeconfig)
    for entry in out.get("clusters") or []:
        cluster = (entry or {}).get("cluster") or {}
        server = urlsplit(str(cluster.get("server") or ""))
        name = server.hostname
        if not name or cluster.get("tls-server-name") or _is_ip(name):
            continue
        port = f":{server.port}" if server.port else ""
        cluster["server"] = urlunsplit((server.scheme, f"{ip}{port}", server.path, server.query, server.fragment))
        cluster["tls-server-name"] = name
    return out


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def live_api_client(kubeconfig: dict):
    from kubernetes import config

    try:
        return config.new_client_from_config_dict(kubeconfig)
    except config.ConfigException as e:
        raise InfrastructureError(f"cannot build a Kubernetes client from the admin kubeconfig: {e}",
                                  "regenerate admin.conf with kubeadm")
