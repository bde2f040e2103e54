"""The shape of the official Kubernetes client's read API, taken from the installed client itself, for the
replayed `kube` fixture (kubelite.py) that answers from evidence without importing that client (its ~300 model
modules cost ~0.75 s of a one-learner replay).

What is taken, per API class the `kube` fixture offers (KUBE_APIS): every read method (list_*, read_*, get_*):
its HTTP method, path template, positional and path parameters, query parameters in the order the client sends
them (an evidence key is the exact path and query the live client asked for), and its response types; and every
model those methods can return, field by field: the Python attribute, the JSON key and the kind of value (another
model, a list or map of them, a timestamp, or plain JSON) and whether the model requires it.

Regenerate after upgrading the client: `python -m kubelab.engine.kubeschema` (tests/test_kubelite.py fails
until the stored schema is the installed client's)."""

from __future__ import annotations

import ast
import datetime
import inspect
import json
import re
import sys
import typing
from pathlib import Path
from typing import Any

SCHEMA_FILE = Path(__file__).with_name("kube_schema.json")
# attribute of the `kube` fixture -> the official API class it is
KUBE_APIS = {"core": "CoreV1Api", "apps": "AppsV1Api", "coordination": "CoordinationV1Api",
             "rbac": "RbacAuthorizationV1Api", "certificates": "CertificatesV1Api", "version_api": "VersionApi"}
_READ = re.compile(r"^(list|read|get)_\w+$")
_TYPES_MAP = re.compile(r"_response_types_map: Dict\[str, Optional\[str\]\] = (\{.*?\})", re.S)


class _Capture:
    """Stands for the ApiClient while a method builds its request: keeps what it was asked to send."""

    def __init__(self):
        self.serialized: dict = {}
        self.types_map: dict = {}

    def param_serialize(self, **kw):
        self.serialized = kw
        return ()

    def select_header_accept(self, accepts):
        return accepts[0] if accepts else None

    def select_header_content_type(self, types):
        return types[0] if types else None

    def _call_with_legacy_options(self, request, response_types_map, *rest):
        self.types_map = dict(response_types_map)


def _kind(annotation) -> Any:
    """A field's annotation as the kind of value replay builds: model name, ["list", k], ["dict", k],
    "datetime", "date", or "raw" (JSON as it is: strings, numbers, booleans, free-form objects)."""
    from pydantic import BaseModel

    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Union and type(None) in args:
        rest = [a for a in args if a is not type(None)]
        return _kind(rest[0]) if len(rest) == 1 else "raw"
    if origin is typing.Annotated:
        return _kind(args[0])
    if origin in (list, typing.List):
        inner = _kind(args[0])
        return "raw" if inner == "raw" else ["list", inner]
    if origin in (dict, typing.Dict):
        inner = _kind(args[1])
        return "raw" if inner == "raw" else ["dict", inner]
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation.__name__
    if annotation is datetime.datetime:
        return "datetime"
    if annotation is datetime.date:
        return "date"
    return "raw"


def _json_key(name: str, field) -> str:
    """The key the API server sends (the model's from_dict reads that one): var_continue is "continue"."""
    if field.serialization_alias:
        return field.serialization_alias
    choices = getattr(field.validation_alias, "choices", None)
    if choices:
        return choices[0]
    return field.alias or name


def _model(name: str) -> type:
    from kubernetes.client import models

    return getattr(models, name)


def _method(api_cls, name: str) -> dict:
    fn = getattr(api_cls, name)
    sig = inspect.signature(getattr(fn, "__wrapped__", fn))
    # the request's own parameters are the serializer's (the method adds async_req, _preload_content, ...)
    own = [p for p in inspect.signature(getattr(api_cls, f"_{name}_serialize")).parameters
           if p not in ("self", "_request_auth", "_content_type", "_headers", "_host_index")]
    positional = [p for p in own if sig.parameters[p].default is inspect.Parameter.empty]
    optional = [p for p in own if sig.parameters[p].default is not inspect.Parameter.empty]
    types_map = ast.literal_eval(_TYPES_MAP.search(inspect.getsource(fn)).group(1))
    capture = _Capture()
    api = api_cls(api_client=capture)
    marker = {p: f"@{p}@" for p in positional + optional}
    getattr(api, f"_{name}_serialize")(**marker, _request_auth=None, _content_type=None, _headers=None, _host_index=0)
    s = capture.serialized
    by_marker = {v: k for k, v in marker.items()}
    return {"http": s["method"], "path": s["resource_path"], "positional": positional, "optional": optional,
            "path_params": {k: by_marker[v] for k, v in (s["path_params"] or {}).items()},
            "query": [[by_marker[v], wire] for wire, v in s["query_params"]],
            "body": s["body"] is not None, "types": types_map}


def generate() -> dict:
    import kubernetes
    from kubernetes import client

    apis: dict[str, dict] = {}
    wanted: list[str] = []
    for api_name in KUBE_APIS.values():
        api_cls = getattr(client, api_name)
        methods = {}
        for name in sorted(dir(api_cls)):
            if _READ.match(name) and not name.endswith(("_with_http_info", "_without_preload_content")):
                methods[name] = _method(api_cls, name)
                wanted += [t for t in methods[name]["types"].values() if t]
        apis[api_name] = methods
    models: dict[str, dict] = {}
    aliases: dict[str, dict] = {}
    while wanted:
        name = wanted.pop()
        if name in models or not hasattr(client.models, name):
            continue
        model = _model(name)
        by_key = {_json_key(attr, field): (attr, field) for attr, field in model.model_fields.items()}
        fields = {}
        # attributes by the client's public names (attribute_map: `_continue`, as to_dict() names them); the
        # pydantic field name (`var_continue`) reads the same value
        for public, key in model.attribute_map.items():
            attr, field = by_key[key]
            kind = _kind(field.annotation)
            fields[public] = [key, kind] + ([1] if field.is_required() else [])
            if attr != public:
                aliases.setdefault(name, {})[attr] = public
            while isinstance(kind, list):
                kind = kind[1]
            if kind not in ("raw", "datetime", "date"):
                wanted.append(kind)
        models[name] = fields
    return {"client_version": kubernetes.__version__, "apis": apis, "models": dict(sorted(models.items())),
            "aliases": aliases}


def render(schema: dict) -> str:
    return json.dumps(schema, indent=0, sort_keys=True, separators=(",", ":")) + "\n"


if __name__ == "__main__":
    SCHEMA_FILE.write_text(render(generate()), encoding="utf-8")
    print(f"wrote {SCHEMA_FILE} ({SCHEMA_FILE.stat().st_size // 1024} KiB)", file=sys.stderr)
