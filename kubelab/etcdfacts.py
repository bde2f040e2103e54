"""What etcd and the API server's encryption settings say, parsed from what a node prints: pure functions, no I/O.

- `encryption_providers(text)`: an EncryptionConfiguration (apiserver.config.k8s.io/v1) -> the provider names,
  in order, of the entry that covers Secrets. The API server encrypts new writes with the FIRST provider and
  tries every one to read (Kubernetes docs, "Encrypting Confidential Data at Rest"), so `identity` first means
  nothing new is encrypted even when `aescbc` follows.
- `stored_form(prefix)`: the first bytes of a value under /registry/... -> how the API server stored it:
  `k8s:enc:<provider>:v1:<key name>:` (encrypted by that provider), `k8s\\0` (protobuf, Kubernetes' storage
  serializer), `{` (JSON, what CRDs and old clusters store) or unknown.
- `snapshot_status(text)`: `etcdutl snapshot status -w json` (etcd >= 3.5; the only one in 3.6, whose etcdctl no
  longer has `snapshot status`) or etcdctl 3.4's -> hash, revision, total keys, size.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

import yaml

ENCRYPTION_API = "apiserver.config.k8s.io/v1"
ENCRYPTION_KIND = "EncryptionConfiguration"
# providers that really encrypt; identity writes plain protobuf
ENCRYPTING = ("aescbc", "aesgcm", "secretbox", "kms")
KNOWN_PROVIDERS = (*ENCRYPTING, "identity")
_ENC = re.compile(rb"^k8s:enc:([a-z0-9]+):(v[0-9]+):([^:]*):")
PROTOBUF_MAGIC = b"k8s\x00"


class NotAConfig(ValueError):
    """The text is not an EncryptionConfiguration this module can read; the message says why."""


def _covers_secrets(resources: list) -> bool:
    # `secrets`, `secrets.` (the core group spelt out), `*.` (every core resource) or `*.*` (everything)
    return any(str(r).strip() in ("secrets", "secrets.", "*.", "*.*") for r in resources or [])


def encryption_providers(text: str) -> list[str]:
    """Provider names, in order, of the first `resources` entry of an EncryptionConfiguration that covers Secrets;
    [] when no entry does. NotAConfig when the text is not one (kind, apiVersion, shape)."""
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise NotAConfig(f"not YAML ({str(e).splitlines()[0]})") from None
    if not isinstance(doc, dict):
        raise NotAConfig("not a YAML mapping")
    kind, api = doc.get("kind"), doc.get("apiVersion")
    if kind != ENCRYPTION_KIND or api != ENCRYPTION_API:
        raise NotAConfig(f"kind {kind!r}, apiVersion {api!r}: want {ENCRYPTION_KIND} {ENCRYPTION_API}")
    entries = doc.get("resources")
    if not isinstance(entries, list):
        raise NotAConfig("no `resources` list")
    for entry in entries:
        if isinstance(entry, dict) and _covers_secrets(entry.get("resources")):
            names = []
            for p in entry.get("providers") or []:
                if isinstance(p, dict) and len(p) == 1:
                    names.append(next(iter(p)))
                else:
                    names.append("(unreadable provider entry)")
            return names
    return []


@dataclass(frozen=True)
class StoredForm:
    kind: str            # "encrypted", "protobuf", "json", "empty", "unknown"
    provider: str = ""   # for "encrypted": aescbc, aesgcm, secretbox, kms
    key_name: str = ""   # for "encrypted": the key's name from the EncryptionConfiguration

    def describe(self) -> str:
        if self.kind == "encrypted":
            return f"encrypted: k8s:enc:{self.provider}:v1:{self.key_name}:…"
        return {"protobuf": "plain protobuf (k8s\\0 …): not encrypted",
                "json": "plain JSON: not encrypted", "empty": "no value (no such key)"}.get(self.kind, "unknown bytes")


def stored_form(prefix: bytes) -> StoredForm:
    """How a value under /registry/ was stored, from its first bytes (48 are enough)."""
    if not prefix:
        return StoredForm("empty")
    m = _ENC.match(prefix)
    if m:
        return StoredForm("encrypted", m.group(1).decode(), m.group(3).decode(errors="replace"))
    if prefix.startswith(PROTOBUF_MAGIC):
        return StoredForm("protobuf")
    if prefix.lstrip()[:1] == b"{":
        return StoredForm("json")
    return StoredForm("unknown")


_SHOWN_ENC = re.compile(r"^k8s:enc:([a-z0-9]+):(v[0-9]+):([^:]*)")


def stored_form_shown(text: str) -> StoredForm:
    """stored_form() of a header shown on the node as `head -c 48 | tr -c '[:alnum:]:{' '.' | cut -d: -f1-5`:
    printable, ciphertext cut off at the key name, k8s\\0 shown as `k8s.` (no base64 blob an evidence redactor
    would blank)."""
    text = text.strip()
    m = _SHOWN_ENC.match(text)
    if m:
        return StoredForm("encrypted", m.group(1), m.group(3))
    if not text:
        return StoredForm("empty")
    if text.startswith("k8s."):
        return StoredForm("protobuf")
    if text.startswith("{"):
        return StoredForm("json")
    return StoredForm("unknown")


@dataclass(frozen=True)
class SnapshotStatus:
    hash: int
    revision: int
    total_keys: int
    total_size: int
    version: str = ""    # etcdutl >= 3.6 adds the storage version


def snapshot_status(text: str) -> SnapshotStatus:
    """`etcdutl|etcdctl snapshot status FILE -w json`; ValueError when it is not that JSON."""
    # etcdctl 3.5 prints "Deprecated: Use `etcdutl snapshot status` instead." before the JSON
    lines = [ln for ln in text.splitlines() if ln.lstrip().startswith("{")]
    data = json.loads(lines[-1] if lines else text)
    if not isinstance(data, dict) or "revision" not in data or "totalKey" not in data:
        raise ValueError("not the JSON of `snapshot status -w json`")
    return SnapshotStatus(int(data.get("hash", 0)), int(data["revision"]), int(data["totalKey"]),
                          int(data.get("totalSize", 0)), str(data.get("version", "")))


def member_id_matches(given: str, member_id: int) -> bool:
    """An etcd member ID as a learner may write it: hex as `etcdctl member list` prints it (with or without 0x,
    any case, leading zeros) or the decimal of `-w json`."""
    g = given.strip().lower().removeprefix("0x")
    if not g:
        return False
    try:
        if int(g, 16) == member_id:
            return True
    except ValueError:
        pass
    return g.isdigit() and int(g) == member_id
