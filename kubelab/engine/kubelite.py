"""The `kube` fixture's API groups when API reads are answered from evidence: the official client's read methods
and model objects, rebuilt from its own schema (kubeschema.py, kube_schema.json) instead of imported.

Why: importing the official client (~300 pydantic model modules) was ~0.75 s of a one-learner Lab 4 replay whose
checks take milliseconds. Graders do not change: `kube.core.list_namespaced_pod("kube-system").items[0].spec`
gives objects with the official attribute names and values (None for an absent field, an AttributeError for a
name the model does not have, datetimes for timestamps), built from the recorded JSON the same way.

Only what replay needs the schema for is done here: a 2xx answer whose type is a model. Anything else (an error
status, a log as text, a raw answer, a call option such as _preload_content) is handed to the official client's
own code (imported then), so its exceptions (ApiException, NotFoundException, ...) and results are the client's.
The schema must be the installed client's (same version), else the official client is used throughout."""

from __future__ import annotations

import json
from datetime import date, datetime
from functools import lru_cache
from typing import Any, Callable
from urllib.parse import quote

from kubelab.engine.kubeschema import KUBE_APIS, SCHEMA_FILE

# (method, path with query) -> (HTTP status, response text); raises what the evidence says is missing
Requester = Callable[[str, str], tuple[int, str]]
_CALL_OPTIONS = {"_request_timeout"}  # options the answer from evidence does not depend on


@lru_cache(maxsize=1)
def schema() -> dict | None:
    """The stored schema, or None when it is not the installed client's (then replay uses the official client)."""
    from importlib.metadata import PackageNotFoundError, version

    data = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
    try:
        installed = version("kubernetes")
    except PackageNotFoundError:
        return None
    return data if data["client_version"] == installed else None


def available() -> bool:
    return schema() is not None


class KubeObject:
    """An official client model (V1Pod, V1NodeList, ...) as attribute access over the JSON the API server sent.
    Built whole at once, like the official model: a required field that is absent (the official model's
    ValidationError) is a ValueError here, raised where the official client would raise."""

    __slots__ = ("_kind", "_fields", "_values")

    def __init__(self, kind: str, data: dict):
        self._kind = kind
        self._fields = fields = schema()["models"][kind]
        self._values: dict[str, Any] = {}
        values = self._values
        for name, (key, sub, *required) in fields.items():
            value = data.get(key)
            if value is None:
                if required:
                    raise ValueError(f"1 validation error for {kind}: {name} is required")
                values[name] = None
            else:
                values[name] = value if sub == "raw" else _build(sub, value)

    def __getattr__(self, name: str) -> Any:
        try:
            return self._values[name]
        except KeyError:
            pass
        public = schema()["aliases"].get(self._kind, {}).get(name)
        if public is None:
            raise AttributeError(f"'{self._kind}' object has no attribute '{name}'") from None
        return self._values[public]

    def to_dict(self) -> dict:
        """As the official model's to_dict(): Python attribute names, nested models as dicts, absent fields None."""
        return {name: _plain(getattr(self, name)) for name in self._fields}

    def __eq__(self, other) -> bool:
        return isinstance(other, KubeObject) and other._kind == self._kind and other.to_dict() == self.to_dict()

    __hash__ = None  # type: ignore[assignment] - mutable-looking, like the pydantic models

    def __repr__(self) -> str:
        return f"{self._kind}({self.to_dict()!r})"


def _build(kind, value):
    if value is None or kind == "raw":
        return value
    if isinstance(kind, list):
        container, inner = kind
        if container == "list" and isinstance(value, list):
            return [_build(inner, v) for v in value]
        if container == "dict" and isinstance(value, dict):
            return {k: _build(inner, v) for k, v in value.items()}
        raise ValueError(f"expected a {container} of {inner}, got {type(value).__name__}")
    if kind == "datetime":
        return datetime.fromisoformat(value)
    if kind == "date":
        return date.fromisoformat(value)
    if not isinstance(value, dict):
        raise ValueError(f"expected an object for {kind}, got {type(value).__name__}")
    return KubeObject(kind, value)


def _plain(value):
    if isinstance(value, KubeObject):
        return value.to_dict()
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def _query_value(v) -> str:
    # the official ApiClient.parameters_to_url_query, for the scalar values read methods take
    if isinstance(v, bool):
        v = str(v).lower()
    if isinstance(v, (int, float)):
        v = str(v)
    if isinstance(v, dict):
        v = json.dumps(v)
    return quote(str(v))


def request_path(path: str, query: list[tuple[str, Any]]) -> str:
    """Path and query string exactly as the official client sends them (an evidence key is that string)."""
    return path + ("?" + "&".join(f"{k}={_query_value(v)}" for k, v in query) if query else "")


class LiteApi:
    """One official API class (CoreV1Api, ...): its read methods answered through `request`."""

    def __init__(self, api_name: str, request: Requester, official: Callable[[], Any]):
        self._name = api_name
        self._methods = schema()["apis"][api_name]
        self._request = request
        self._official = official  # () -> the official ApiClient, built only when needed

    def __getattr__(self, name: str):
        spec = self._methods.get(name)
        if spec is None:  # a write, or a method the schema does not hold: the official class, as live
            from kubernetes import client

            return getattr(getattr(client, self._name)(self._official()), name)
        return lambda *args, **kwargs: self._call(name, spec, args, kwargs)

    def _call(self, name: str, spec: dict, args: tuple, kwargs: dict):
        if any(k.startswith("_") and k not in _CALL_OPTIONS for k in kwargs) or "async_req" in kwargs:
            from kubernetes import client

            return getattr(getattr(client, self._name)(self._official()), name)(*args, **kwargs)
        values = dict(zip(spec["positional"], args))
        if len(args) > len(spec["positional"]):
            raise TypeError(f"{self._name}.{name}() takes {len(spec['positional'])} positional arguments")
        for k, v in kwargs.items():
            if k in _CALL_OPTIONS:
                continue
            if k not in spec["positional"] and k not in spec["optional"] or k in values:
                raise TypeError(f"{self._name}.{name}() got an unexpected or repeated argument '{k}'")
            values[k] = v
        missing = [p for p in spec["positional"] if values.get(p) is None]
        if missing:
            raise TypeError(f"{self._name}.{name}() missing required argument: '{missing[0]}'")
        path = spec["path"]
        for placeholder, param in spec["path_params"].items():
            path = path.replace("{%s}" % placeholder, quote(str(values[param]), safe=""))
        query = [(wire, values[param]) for param, wire in spec["query"] if values.get(param) is not None]
        status, text = self._request(spec["http"], request_path(path, query))
        kind = spec["types"].get(str(status))
        if 200 <= status <= 299 and kind in schema()["models"]:
            return _build(kind, json.loads(text))
        return self._official_answer(status, text, spec["types"])

    def _official_answer(self, status: int, text: str, types: dict):
        """What the official client makes of an answer the schema does not cover (error statuses raise its
        ApiException subclasses; text, raw and bytes answers are its own deserialization)."""
        from types import SimpleNamespace

        from kubernetes.client.rest import RESTResponse

        # a text answer (pod logs) came as text/plain: as JSON, a log line starting with `[` would not parse
        kind = "text/plain" if types.get(str(status)) == "str" else "application/json"
        raw = SimpleNamespace(status=status, reason="replayed", data=text.encode(), headers={"content-type": kind})
        response = RESTResponse(raw)
        response.read()
        return self._official().response_deserialize(response_data=response, response_types_map=types).data


def lite_api(attribute: str, request: Requester, official: Callable[[], Any]) -> LiteApi:
    """The `kube` fixture's `attribute` (core, apps, ...) answered through `request`."""
    return LiteApi(KUBE_APIS[attribute], request, official)
