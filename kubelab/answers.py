"""Answers a learner records in a notebook and a grader recomputes from the live cluster.

Some understanding is best shown by a value only someone who looked can give: the etcd revision of their
object, the user in an audit event, the node the scheduler chose. The notebook records it with
`%answer LAB KEY VALUE` (kubelab.notebook); the grader compares it with the value it reads itself
(kubelab.engine's `answers` fixture). The file lives on the control-plane node, in the login user's home,
so graders read it through the same target seam as everything else (recorded into evidence, replayed) and an
instructor grading the learner's machines sees what the learner saw.
"""

from __future__ import annotations

import json
import re
from datetime import datetime, timezone

from kubelab.errors import UsageError

KEY = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
MAX_VALUE_CHARS = 4096


def answers_path(lab_user: str, lab_id: str) -> str:
    """Where a lab's answers live on the control plane, as a shell word (`~user` expands, nothing else does)."""
    return f"~{lab_user}/.kubelab/answers/{lab_id}.json"


def check_key(key: str) -> str:
    if not KEY.match(key or ""):
        raise UsageError(f"{key!r} is not an answer key",
                         "write a lowercase name of letters, digits and _ that starts with a letter, e.g. etcd_revision")
    return key


def normalize(value: object) -> str:
    text = str(value).strip()
    if not text:
        raise UsageError("the answer is empty", "write the value after the key: %answer LAB KEY VALUE")
    if len(text) > MAX_VALUE_CHARS:
        raise UsageError(f"the answer is {len(text)} characters long", f"an answer holds at most {MAX_VALUE_CHARS}")
    return text


def parse(text: str) -> dict[str, str]:
    """{key: value} from an answers file; ValueError names what is wrong with one that is not ours."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise ValueError(f"not JSON ({e.msg} at line {e.lineno})") from None
    if not isinstance(data, dict):
        raise ValueError("not a JSON object")
    out = {}
    for key, entry in data.items():
        value = entry.get("value") if isinstance(entry, dict) else None
        if not isinstance(value, str) or not KEY.match(key):
            raise ValueError(f"entry {key!r} is not an answer")
        out[key] = value
    return out


def merged(text: str | None, key: str, value: str, now: datetime | None = None) -> str:
    """The file's new content with `key` set (an unreadable old file is replaced, its answers lost: they were
    already unusable to the grader)."""
    try:
        data = json.loads(text) if text else {}
        if not isinstance(data, dict):
            data = {}
    except json.JSONDecodeError:
        data = {}
    at = (now or datetime.now(timezone.utc)).isoformat(timespec="seconds")
    data[check_key(key)] = {"value": normalize(value), "recorded_at": at}
    return json.dumps(data, indent=1, sort_keys=True) + "\n"
