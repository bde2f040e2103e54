"""The evidence file: what the grader saw, versioned, with a digest over its content.

Format `kubelab-evidence`, version 1, JSON (UTF-8):

    {"format": "kubelab-evidence", "version": 1,
     "kubelab_version": "0.1.0", "course_digest": "sha256:…", "lab": "lab01",
     "recorded_at": "2026-…Z", "target": "ssh-config …",
     "identity": {"nodes": {"master": {"hostname": "master", "machine_id": "…"}},
                  "cluster": {"kube_system_uid": "…", "etcd_cluster_id": "…"}},
     "nodes": {"master": [{"cmd": "…", "rc": 0, "stdout": "…", "stderr": "…"}]},
     "api": [{"method": "GET", "path": "/api/v1/nodes", "body": null, "status": 200, "data": "…"}],
     "result": {…the LabResult of the live run…},
     "digest": "sha256:…"}

`digest` is the SHA-256 of the canonical JSON of every other field. It detects a damaged file or an
edit made without recomputing it; it is not a signature: anyone can recompute it (a learner owns the
machine that records it). What replay checks beyond it is in honesty.py."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from kubelab import inputfiles
from kubelab.errors import UsageError

FORMAT = "kubelab-evidence"
VERSION = 1
MAX_BYTES = 256 * inputfiles.MIB  # a whole lab's observations are a few MiB; a bound keeps /dev/zero out


class CommandObservation(BaseModel):
    model_config = ConfigDict(extra="forbid")
    cmd: str
    rc: int
    stdout: str
    stderr: str


class ApiObservation(BaseModel):
    model_config = ConfigDict(extra="forbid")
    method: str
    path: str
    body: Any = None
    status: int
    data: str


class Evidence(BaseModel):
    model_config = ConfigDict(extra="forbid")
    format: Literal["kubelab-evidence"]
    version: int
    kubelab_version: str
    course_digest: str
    lab: str
    recorded_at: str
    target: str
    identity: dict = Field(default_factory=dict)
    nodes: dict[str, list[CommandObservation]] = Field(default_factory=dict)
    api: list[ApiObservation] = Field(default_factory=list)
    result: dict
    digest: str = ""

    def body_digest(self) -> str:
        body = self.model_dump(exclude={"digest"})
        canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        return "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()

    def sealed(self) -> "Evidence":
        return self.model_copy(update={"digest": self.body_digest()})


_digests: dict[str, str] = {}  # course.yaml's text -> its digest: a class run checks it once per learner


def course_digest(course_file: Path) -> str:
    """A digest of what the course says, not of how its file is spelled: a Windows checkout (CRLF line endings,
    rsynced to the master) or an edited comment must not flag honest evidence; any changed value does."""
    text = course_file.read_text(encoding="utf-8")
    if text not in _digests:
        if len(_digests) > 8:
            _digests.clear()
        _digests[text] = _digest_of(text)
    return _digests[text]


def _digest_of(text: str) -> str:
    import yaml

    from kubelab.engine.yamldata import load_yaml

    try:  # the file was validated when the course was loaded (duplicate keys, depth, size)
        data = load_yaml(text)
    except yaml.YAMLError:
        data = text.replace("\r\n", "\n")
    canonical = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return "sha256:" + hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def save(evidence: Evidence, path: str | Path) -> Path:
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(evidence.sealed().model_dump(), indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    tmp.replace(path)  # never a half-written evidence file
    return path


def load(path: str | Path) -> Evidence:
    path = Path(path)
    regen = f"record it again with `kubelab grade LAB --record {path.name}`"
    what = f"evidence file {path}"
    raw = inputfiles.read_bytes(path, what, MAX_BYTES, "pass the evidence file itself, or " + regen)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise UsageError(f"evidence file {path} is not text (corrupt)", regen) from None
    try:
        data = json.loads(text, parse_int=inputfiles.parse_int, parse_constant=inputfiles.no_constant)
    except json.JSONDecodeError as e:
        stripped = raw.strip()
        if not stripped.startswith(b"{"):
            kind = "not JSON"
        else:  # a file cut short (a copy interrupted, a quota hit) no longer ends with the closing brace
            kind = "corrupt" if stripped.endswith(b"}") else "truncated"
        raise UsageError(f"evidence file {path} is {kind}: invalid JSON at line {e.lineno}, column {e.colno}",
                         regen) from None
    except RecursionError:
        raise UsageError(f"evidence file {path} nests data more than {inputfiles.MAX_DEPTH} levels deep", regen) from None
    except ValueError as e:
        raise UsageError(f"evidence file {path} holds a value kubelab refuses: {e}", regen) from None
    if inputfiles.depth_of(data) > inputfiles.MAX_DEPTH:
        raise UsageError(f"evidence file {path} nests data more than {inputfiles.MAX_DEPTH} levels deep", regen)
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise UsageError(f"{path} is not a kubelab evidence file", "pass a file written by `kubelab grade --record`")
    if data.get("version") != VERSION:
        raise UsageError(f"evidence file {path} has format version {data.get('version')!r}; this kubelab reads "
                         f"version {VERSION}", "grade it with the kubelab version that recorded it, or " + regen)
    try:
        evidence = Evidence.model_validate(data)
    except ValidationError as e:
        err = e.errors()[0]
        where = ".".join(str(x) for x in err["loc"])
        raise UsageError(f"evidence file {path} is malformed at {where}: {err['msg']}", regen)
    if evidence.digest != evidence.body_digest():
        raise UsageError(f"evidence file {path} was modified after it was recorded (digest mismatch)", regen)
    return evidence
