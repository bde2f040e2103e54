"""Secrets never enter evidence: they are replaced when an observation is recorded."""

from __future__ import annotations

import re

REDACTED = "<redacted>"

_PATTERNS: list[tuple[str, re.Pattern, str]] = [
    ("PEM private key",
     re.compile(r"-----BEGIN ([A-Z0-9 ]*)PRIVATE KEY-----.*?-----END \1PRIVATE KEY-----", re.S),
     f"-----BEGIN \\1PRIVATE KEY-----{REDACTED}-----END \\1PRIVATE KEY-----"),
    ("kubeconfig key or token",
     re.compile(r"(?m)^(\s*(?:client-key-data|token|id-token|refresh-token|password)\s*:\s*)\S.*$"),
     f"\\1{REDACTED}"),
    ("bootstrap token", re.compile(r"\b[a-z0-9]{6}\.[a-z0-9]{16}\b"), REDACTED),
    ("JSON web token (service-account token)",
     re.compile(r"\beyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}"), REDACTED),
    ("Jupyter token", re.compile(r"(?i)(token[=:]\s*)[0-9a-f]{32,}"), f"\\1{REDACTED}"),
    ("Secret data", re.compile(r'("(?:token|ca\.crt|namespace|tls\.key|jws-kubeconfig-[a-z0-9]+|token-secret)"\s*:\s*)"[^"]*"'),
     f'\\1"{REDACTED}"'),
]


def redact(text: str) -> str:
    for _, pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


def find_secrets(text: str) -> list[str]:
    """Names of the kinds of secret present in text (after redaction this must be empty)."""
    found = []
    for name, pattern, _ in _PATTERNS:
        for m in pattern.finditer(text):
            if REDACTED not in m.group(0):
                found.append(name)
                break
    return found
