"""Secrets never enter evidence: they are replaced when an observation is recorded.

What counts as a secret, and what must survive (tests/redaction_corpus.py holds both, with where each
appears): private keys of every armor (PEM with or without its END line, OpenSSH, PGP); kubeconfig
credentials in YAML block or flow style and in JSON; bootstrap tokens, service-account JWTs and opaque
bearer tokens (curl, `kubectl -v=10`); kubeadm's certificate key; every value of a Secret's `data` and
`stringData` except the public ones (`ca.crt`, `*.crt`, `*.pub`, `namespace` and a bootstrap token's
id, expiry, usages and groups); registry credentials; EncryptionConfiguration keys; passwords and tokens
in TOML, environment output and URLs; static token files; a bare token read from a file named like one.

What is never touched: namespaces, certificates, resource names, paths, hashes (`--discovery-token-ca-cert-
hash` is a hash of a public key). Redaction keeps the evidence gradable: a Secret's data value becomes
base64 of "<redacted>" (a grader decoding it still can), JSON stays JSON, a key's name and everything
around it stay as they were."""

from __future__ import annotations

import base64
import json
import re
from typing import Callable

import yaml

from kubelab.engine.yamldata import load_yaml_all

REDACTED = "<redacted>"
REDACTED_B64 = base64.b64encode(REDACTED.encode()).decode()  # "PHJlZGFjdGVkPg=="
_SAFE_VALUES = {REDACTED, REDACTED_B64, "<masked>", "", "null", "~", "true", "false", "None"}

# keys whose value is a credential wherever they appear (kubeconfig, docker/containerd, EncryptionConfiguration,
# kubeadm config, OIDC auth-provider config); matched exactly, case-insensitively, in YAML, JSON and TOML
SECRET_KEYS = (
    "client-key-data", "token", "id-token", "refresh-token", "access-token", "access_token", "refresh_token",
    "id_token", "client-secret", "client_secret", "clientsecret", "password", "passwd", "secret", "certificate-key",
    "certificatekey", "token-secret", "auth", "identitytoken", "registrytoken", "api-key", "apikey", "api_key",
    "private-key", "privatekey", "private_key", "secret-key", "secretkey", "secret_key", "aws_secret_access_key",
    "aws_session_token", "bearer-token", "bearertoken", "bearer_token",
)
_SECRET_KEY_RE = re.compile(r"^(?:" + "|".join(re.escape(k) for k in SECRET_KEYS) + r"|jws-kubeconfig-[a-z0-9]+)$",
                            re.I)
# a Secret's data keys that are public, or facts a check needs (a bootstrap token's id, expiry, usages)
_PUBLIC_DATA = re.compile(r"^(?:.*\.crt|.*\.pub|namespace|token-id|expiration|description|auth-extra-groups|"
                          r"usage-bootstrap-[a-z-]+)$")

Rule = Callable[[str, str], tuple[str, int]]
# environment variables holding a credential, by the convention of their names (upper case)
_ENV_NAME = r"[A-Za-z0-9_]*(?:PASSWORD|PASSWD|TOKEN|SECRET|API_KEY|APIKEY|ACCESS_KEY|PRIVATE_KEY|CREDENTIALS?)[A-Za-z0-9_]*"
_ENV_NAME_RE = re.compile(_ENV_NAME)


def redact(text: str, context: str = "") -> str:
    """`text` with every secret replaced. `context` is where it came from (the command that printed it),
    which tells a bare token read from a token file from any other line of letters and digits."""
    return _apply(text, context)[0]


def find_secrets(text: str, context: str = "") -> list[str]:
    """Names of the kinds of secret present in text (after redaction this is empty)."""
    return _apply(text, context)[1]


def _apply(text: str, context: str) -> tuple[str, list[str]]:
    kinds = []
    for name, rule in _RULES:
        text, n = rule(text, context)
        if n:
            kinds.append(name)
    return text, kinds


# -- private keys ----------------------------------------------------------------------------------

_KEY_BEGIN = re.compile(r"-----BEGIN ([A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?)-----")
_ANY_END = re.compile(r"-----END [A-Z0-9 ]*-----")
_ARMOR_LINE = re.compile(r"(?:[A-Za-z0-9+/=]+|[A-Za-z-]+: .*|\s*)$")


def _private_keys(text: str, _ctx: str) -> tuple[str, int]:
    """Every private key block, to its END line whatever it says (a mismatched END included); without an
    END, as far as the armor's lines go (base64, `Proc-Type:` headers), in text or inside a JSON string."""
    out, pos, n = [], 0, 0
    for m in _KEY_BEGIN.finditer(text):
        if m.start() < pos:
            continue
        out.append(text[pos:m.end()])
        rest = text[m.end():]
        if rest.startswith(REDACTED):
            pos = m.end()
            continue
        end = _ANY_END.search(rest)
        nxt = _KEY_BEGIN.search(rest)
        if end and (not nxt or end.start() < nxt.start()):
            body, stop = rest[:end.start()], m.end() + end.start()
        else:
            stop = m.end() + _armor_length(rest)
            body = text[m.end():stop]
        if body.strip(" \n\\n") == REDACTED or body == REDACTED:
            out.append(body)
        else:
            out.append(REDACTED)
            n += 1
        pos = stop
    out.append(text[pos:])
    return "".join(out), n


def _armor_length(rest: str) -> int:
    escaped = "\\n" in rest[:200] and "\n" not in rest[:200]  # the key inside a JSON string
    sep = "\\n" if escaped else "\n"
    length = 0
    for line in rest.split(sep):
        if escaped and '"' in line:
            head = line[:line.index('"')]
            return length + (len(head) if _ARMOR_LINE.match(head) else 0)
        if not _ARMOR_LINE.match(line):
            break
        length += len(line) + len(sep)
    return min(length, len(rest))


# -- structured: Secrets and credential keys in JSON and YAML --------------------------------------

def _walk(node, parent_kind: str = "") -> int:
    """Redact in place; returns how many values were replaced."""
    n = 0
    if isinstance(node, list):
        for item in node:
            n += _walk(item, parent_kind)
        return n
    if not isinstance(node, dict):
        return 0
    kind = node.get("kind") if isinstance(node.get("kind"), str) else ""
    is_secret = kind == "Secret" or (not kind and parent_kind == "SecretList")
    # a container's env entry {"name": "REGISTRY_PASSWORD", "value": "..."}
    if isinstance(node.get("name"), str) and isinstance(node.get("value"), str) and _ENV_NAME_RE.fullmatch(node["name"]) \
            and node["value"] not in _SAFE_VALUES:
        node["value"] = REDACTED
        n += 1
    for key, value in list(node.items()):
        if is_secret and key in ("data", "stringData") and isinstance(value, dict):
            for k, v in value.items():
                if isinstance(v, str) and not _PUBLIC_DATA.match(str(k)) and v not in _SAFE_VALUES:
                    value[k] = REDACTED_B64 if key == "data" else REDACTED
                    n += 1
        elif isinstance(key, str) and _SECRET_KEY_RE.match(key) and isinstance(value, str) \
                and value not in _SAFE_VALUES:
            node[key] = REDACTED
            n += 1
        elif isinstance(value, str) and len(value) > 20:
            red, kinds = _apply_text_only(value)
            if kinds:
                node[key] = red
                n += 1
        else:
            n += _walk(value, kind)
    return n


def _apply_text_only(text: str) -> tuple[str, list[str]]:
    kinds = []
    for name, rule in _RULES:
        if rule in (_whole_json, _embedded_json):
            continue
        text, n = rule(text, "")
        if n:
            kinds.append(name)
    return text, kinds


def _dump_like(original: str, data) -> str:
    if "\n" in original.strip():
        second = original.split("\n", 2)[1] if original.count("\n") >= 1 else ""
        indent = len(second) - len(second.lstrip(" ")) or 4
        text = json.dumps(data, indent=indent, ensure_ascii=False)
    else:  # one line: the API server's compact form, or Python's ", " / ": "
        spaced = '": ' in original
        text = json.dumps(data, separators=(", ", ": ") if spaced else (",", ":"), ensure_ascii=False)
    return text + ("\n" if original.endswith("\n") else "")


def _whole_json(text: str, _ctx: str) -> tuple[str, int]:
    """An API answer or `kubectl -o json`: parsed, redacted by structure, written back (still JSON)."""
    s = text.lstrip()
    if not s.startswith(("{", "[")):
        return text, 0
    try:
        data = json.loads(text)
    except (ValueError, RecursionError):
        return text, 0
    try:
        n = _walk(data)
    except RecursionError:
        return text, 0
    return (_dump_like(text, data), n) if n else (text, 0)


_JSON_IN_LINE = re.compile(r"(?m)^(.*?)(\{\".*\})[ \t]*$")


def _embedded_json(text: str, _ctx: str) -> tuple[str, int]:
    """A JSON object at the end of a log line (`kubectl -v=10`'s `Response Body: {...}`)."""
    if '{"' not in text:
        return text, 0
    total = 0

    def one(m: re.Match) -> str:
        nonlocal total
        if not m.group(1).strip():
            return m.group(0)  # a whole line of JSON is the whole-text rule's
        try:
            data = json.loads(m.group(2))
            n = _walk(data)
        except (ValueError, RecursionError):
            return m.group(0)
        if not n:
            return m.group(0)
        total += n
        return m.group(1) + json.dumps(data, separators=(",", ":"), ensure_ascii=False)

    return _JSON_IN_LINE.sub(one, text), total


_YAML_SECRET = re.compile(r"(?m)^[ \t-]*kind:[ \t]*[\"']?Secret[\"']?[ \t]*$")


def _yaml_secrets(text: str, _ctx: str) -> tuple[str, int]:
    """`kubectl get secret -o yaml`: each data value's line, found through the parsed documents."""
    if not _YAML_SECRET.search(text):
        return text, 0
    try:
        docs = load_yaml_all(text)
    except (yaml.YAMLError, RecursionError, ValueError):
        return text, 0
    found: list[tuple[str, str, str]] = []

    def collect(node, parent_kind=""):
        if isinstance(node, list):
            for item in node:
                collect(item, parent_kind)
        elif isinstance(node, dict):
            kind = node.get("kind") if isinstance(node.get("kind"), str) else ""
            if kind == "Secret":
                for block in ("data", "stringData"):
                    if isinstance(node.get(block), dict):
                        found.extend((block, str(k), v) for k, v in node[block].items()
                                     if isinstance(v, str) and not _PUBLIC_DATA.match(str(k)) and v not in _SAFE_VALUES)
            for value in node.values():
                collect(value, kind)

    collect(docs)
    n = 0
    for block, key, value in found:
        line = re.compile(r"(?m)^([ \t]*[\"']?" + re.escape(key) + r"[\"']?:[ \t]*)[\"']?" + re.escape(value)
                          + r"[\"']?([ \t]*)$")
        text, k = line.subn(lambda m: m.group(1) + (REDACTED_B64 if block == "data" else REDACTED) + m.group(2), text)
        n += k
    return text, n


# -- key: value, flags, headers, environment -------------------------------------------------------

_KEY_VALUE = re.compile(
    r"(?P<pre>(?:^|(?<=[\s{,\[\"'(]))(?P<q>[\"']?)(?P<key>[A-Za-z][\w.-]*)(?P=q)[ \t]*[:=][ \t]*)"
    r"(?P<val>\"(?:[^\"\\\n]|\\.)*\"|'[^'\n]*'|(?![{\[|>])[^\s,}\]#\"']+)", re.M)


def _key_values(text: str, _ctx: str) -> tuple[str, int]:
    n = 0

    def one(m: re.Match) -> str:
        nonlocal n
        if not _SECRET_KEY_RE.match(m.group("key")):
            return m.group(0)
        val = m.group("val")
        quote = val[0] if val[:1] in "\"'" else ""
        inner = val[1:-1] if quote else val
        if inner in _SAFE_VALUES or inner.startswith(("/", "<", "$")) or re.fullmatch(r"[\d.]+", inner):
            return m.group(0)  # a path, a <placeholder>, a $VARIABLE, a number, already redacted: no secret
        n += 1
        return m.group("pre") + quote + REDACTED + quote

    return _KEY_VALUE.sub(one, text), n


def _sub_rule(pattern: str, replacement: str, flags: int = 0) -> Rule:
    compiled = re.compile(pattern, flags)

    def rule(text: str, _ctx: str) -> tuple[str, int]:
        return compiled.subn(replacement, text)

    return rule




# one line of kube-apiserver's --token-auth-file, as its docs give it: token,user,uid then optionally the groups,
# several of them in one double-quoted column ("group1,group2"). A CSV field keeps its spaces, so a name or uid
# never starts or ends with one: that tells the file from a sentence with commas ("port-forward, like exec, ...").
_TOKEN_ROW = re.compile(r'^(?P<token>[A-Za-z0-9._~+/=-]{8,}),(?P<user>[^\s,"](?:[^,"\n]*[^\s,"])?),'
                        r'(?P<uid>[^\s,"]+)(?:,(?:"[^"\n]*"|[^\s,"]+))?\r?$', re.M)


def _static_token_file(text: str, ctx: str) -> tuple[str, int]:
    """kube-apiserver's --token-auth-file: a file whose every line is a token line."""
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines or not all(_TOKEN_ROW.match(line) for line in lines) or REDACTED in text:
        return text, 0
    return _TOKEN_ROW.sub(lambda m: REDACTED + m.group(0)[len(m.group("token")):], text), len(lines)


_TOKEN_FILE = re.compile(r"(?i)(token|secret|passw|credential|\.key\b)")


def _bare_token(text: str, ctx: str) -> tuple[str, int]:
    """`cat` of a file named like a token (a Jupyter token file, a service-account token): one line, one
    credential. Only with that context: without it a bare line of hex is a machine-id."""
    value = text.strip()
    if not ctx or not _TOKEN_FILE.search(ctx) or "\n" in value or value in _SAFE_VALUES or value.startswith("/") \
            or not re.fullmatch(r"[A-Za-z0-9._~+/=-]{16,}", value) or not re.search(r"\d", value) \
            or not re.search(r"[A-Za-z]", value):
        return text, 0
    return text.replace(value, REDACTED), 1


_RULES: list[tuple[str, Rule]] = [
    ("private key", _private_keys),
    ("Secret data or credential in JSON", _whole_json),
    ("Secret data or credential in a log line's JSON", _embedded_json),
    ("Secret data in YAML", _yaml_secrets),
    ("credential key", _key_values),
    ("kubeadm certificate key",
     _sub_rule(r"(Using certificate key:\s*)(?!<redacted>)([0-9a-fA-F]{32,})", r"\1" + REDACTED)),
    ("command-line credential",
     _sub_rule(r"(--(?:token|certificate-key|password|passwd|client-secret|token-secret|discovery-token)(?:=|[ \t]+)"
               r"['\"]?)(?!<|\$|\.\.\.)([^\s'\"\\]+)", r"\1" + REDACTED)),
    ("authorization header",
     _sub_rule(r"(?i)(authorization:[ \t]*(?:bearer|basic|token)[ \t]+)(?!<redacted>|<masked>)([^\s'\"\\]+)",
               r"\1" + REDACTED)),
    ("bootstrap token", _sub_rule(r"\b[a-z0-9]{6}\.[a-z0-9]{16}\b", REDACTED)),
    ("JSON web token (service-account token)",
     _sub_rule(r"\beyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}", REDACTED)),
    ("token in a URL",
     _sub_rule(r"(?i)([?&](?:token|access_token|api_key|apikey|secret|password)=)(?!<redacted>)([^&\s\"'#<]+)",
               r"\1" + REDACTED)),
    ("password in a URL", _sub_rule(r"(://[^/\s:@]+:)(?!<redacted>)([^/\s@]+)(@)", r"\1" + REDACTED + r"\3")),
    ("curl user:password", _sub_rule(r"((?:\s-u|--user)[ \t=]+['\"]?[^:\s'\"]+:)(?!<redacted>)([^\s'\"]+)",
                                     r"\1" + REDACTED)),
    ("secret in the environment",
     _sub_rule(r"(?m)((?:^|[\s\"'])(?:export[ \t]+)?" + _ENV_NAME + r"=)(?!<redacted>)(['\"]?)([^\s'\"]+)",
               r"\1\2" + REDACTED)),
    ("static token file", _static_token_file),
    ("Jupyter token", _sub_rule(r"(?i)(\btoken[=:]\s*)(?!<redacted>)[0-9a-f]{32,}", r"\1" + REDACTED)),
    ("bare token read from a file", _bare_token),
]
