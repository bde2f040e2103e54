"""The `kube` fixture: the official kubernetes client, built from the control plane's admin kubeconfig.

It is lazy: nothing is read until a check touches it, so a lab without a cluster never pays for it,
and a missing admin.conf surfaces inside the check that needed it (as that check's failure).

API groups: kube.core, .apps, .coordination, .rbac, .certificates (CoreV1Api, AppsV1Api, ...), kube.version
(/version), kube.get_json(path, **query) for a path no API class covers. Replayed from evidence, the groups'
read methods answer without importing the official client (kubelite.py: its objects, rebuilt from its schema);
kube.api_client is always the official ApiClient, built when a grader touches it."""

from __future__ import annotations

import copy
import ipaddress
from functools import cached_property
from urllib.parse import urlsplit, urlunsplit
from typing import Any, Callable

from kubelab.engine.kubeschema import KUBE_APIS

from kubelab.engine.checks import CheckFailed
from kubelab.engine.yamldata import load_yaml
from kubelab.errors import InfrastructureError

ADMIN_KUBECONFIG = "/etc/kubernetes/admin.conf"


class Kube:
    def __init__(self, control_plane_host: Any, control_plane_name: str, path: str = ADMIN_KUBECONFIG,
                 client_factory: Callable[[dict], Any] | None = None,
                 requester_factory: Callable[[], Any] | None = None):
        self._host = control_plane_host
        self._node = control_plane_name
        self.path = path
        # the target decides how API requests travel (live, recorded, or replayed from evidence)
        self._client_factory = client_factory or live_api_client
        # replay: (method, path) -> (status, text) from evidence, for the groups' reads without the official client
        self._requester_factory = requester_factory

    @cached_property
    def kubeconfig(self) -> dict:
        result = self._host.run("sudo -n cat %s", self.path)
        if result.rc != 0:
            raise CheckFailed(f"{self.path} on {self._node} (written by kubeadm init)",
                              (result.stderr.strip() or f"exit status {result.rc}"), what="admin kubeconfig")
        try:
            data = load_yaml(result.stdout)
            assert isinstance(data, dict) and data.get("clusters")
        except Exception:
            raise CheckFailed("a kubeconfig", f"{self.path} on {self._node} is not a kubeconfig", what="admin kubeconfig")
        return data

    @cached_property
    def api_client(self):
        return self._client_factory(self.kubeconfig)

    @cached_property
    def _requester(self):
        requester = self._requester_factory() if self._requester_factory else None
        if requester is None:
            return None
        from kubelab.engine import kubelite

        if not kubelite.available():
            return None
        self.kubeconfig  # noqa: B018 - the observation (admin.conf, or its failure) the official client makes first
        return requester

    def _group(self, attribute: str):
        if self._requester is not None:
            from kubelab.engine.kubelite import lite_api

            return lite_api(attribute, self._requester, lambda: self.api_client)
        from kubernetes import client

        return getattr(client, KUBE_APIS[attribute])(self.api_client)

    @cached_property
    def core(self):
        return self._group("core")

    @cached_property
    def apps(self):
        return self._group("apps")

    @cached_property
    def coordination(self):
        return self._group("coordination")

    @cached_property
    def rbac(self):
        return self._group("rbac")

    @cached_property
    def certificates(self):
        return self._group("certificates")

    @cached_property
    def version(self):
        return self._group("version_api").get_code()

    def get_json(self, path: str, **query: Any) -> tuple[int, Any]:
        """GET an API path no API class covers (e.g. a group version that depends on the cluster's version), query
        parameters by their wire names: (HTTP status, the answer as JSON, or as text when it is not JSON)."""
        import json

        if self._requester is not None:
            from kubelab.engine.kubelite import request_path

            status, text = self._requester("GET", request_path(path, list(query.items())))
        else:
            client = self.api_client
            request = client.param_serialize("GET", path, query_params=list(query.items()),
                                             header_params={"Accept": "application/json"}, auth_settings=["BearerToken"])
            response = client.call_api(*request)
            raw = response.read()
            status, text = response.status, raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
        try:
            return status, json.loads(text)
        except ValueError:
            return status, text

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
