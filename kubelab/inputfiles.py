"""Reading a file a person handed us (course.yaml, evidence, doctor facts, notebooks, a roster) so that
whatever it holds ends in one UsageError line, never a traceback or a hang.

Every read is bounded: only a regular file is opened (a FIFO would block forever, /dev/zero never ends),
at most `limit` bytes, text must be UTF-8, and parsed data at most MAX_DEPTH levels deep with integers of
at most MAX_INT_DIGITS digits (Python refuses to parse >4300 digits with a ValueError, and deep data
overflows the recursion of whoever walks it)."""

from __future__ import annotations

import errno
import json
import os
import stat
from pathlib import Path

import yaml

from kubelab.errors import UsageError

KIB, MIB = 1024, 1024 * 1024
MAX_DEPTH = 64
MAX_INT_DIGITS = 40

_KINDS = ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISCHR, "a character device"),
          (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))


def read_bytes(path: Path | str, what: str, limit: int, fix: str) -> bytes:
    """The bytes of a regular file of at most `limit` bytes. `what` names the file for the user
    ("evidence file x.json"); `fix` is what to do about a file that is there but unusable."""
    path = Path(path)
    try:
        # O_NONBLOCK: opening a FIFO for reading must not wait for a writer; fstat below refuses it.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOCTTY", 0))
    except FileNotFoundError:
        raise UsageError(f"{what} does not exist", fix) from None
    except PermissionError:
        raise UsageError(f"{what} cannot be read: permission denied",
                         "make it readable by the user running kubelab (chmod/chown), or run as its owner") from None
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise UsageError(f"{what} is a symbolic link that loops", "replace the link by the file itself") from None
        raise UsageError(f"{what} cannot be read: {e.strerror or e}", fix) from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            kind = next((name for test, name in _KINDS if test(st.st_mode)), "not a regular file")
            raise UsageError(f"{what} is {kind}, not a file", fix)
        if st.st_size > limit:
            raise UsageError(f"{what} is {_size(st.st_size)}, more than the {_size(limit)} such a file can be", fix)
        chunks, total = [], 0
        while total <= limit:
            try:
                chunk = os.read(fd, min(MIB, limit + 1 - total))
            except OSError as e:
                raise UsageError(f"{what} cannot be read: {e.strerror or e}", fix) from None
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
        if total > limit:  # it grew while we read it
            raise UsageError(f"{what} is more than the {_size(limit)} such a file can be", fix)
        return b"".join(chunks)
    finally:
        os.close(fd)


def _size(n: int) -> str:
    return f"{n / MIB:.1f} MiB" if n >= MIB else f"{n / KIB:.0f} KiB" if n >= KIB else f"{n} bytes"


def decode_utf8(raw: bytes, what: str, fix: str) -> str:
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise UsageError(f"{what} is UTF-16 text; kubelab reads UTF-8 only", "save it as UTF-8 (without BOM) and " + fix)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise UsageError(f"{what} is not UTF-8 text (byte {e.start} is {raw[e.start:e.start + 1]!r})",
                         "save it as UTF-8 and " + fix) from None
    return text[1:] if text.startswith("\ufeff") else text


def read_text(path: Path | str, what: str, limit: int, fix: str) -> str:
    return decode_utf8(read_bytes(path, what, limit, fix), what, fix)


def depth_of(data) -> int:
    """Nesting depth of dicts and lists, without recursion (data is from outside: no stack for it)."""
    deepest, stack = 0, [(data, 1)]
    while stack:
        node, d = stack.pop()
        if isinstance(node, dict):
            node = list(node.values())
        if isinstance(node, list):
            deepest = max(deepest, d)
            if d > MAX_DEPTH:
                return d
            stack.extend((child, d + 1) for child in node)
    return deepest


def _check_depth(data, what: str, fix: str):
    if depth_of(data) > MAX_DEPTH:
        raise UsageError(f"{what} nests data more than {MAX_DEPTH} levels deep", fix)
    return data


def parse_int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_INT_DIGITS:
        raise ValueError(f"an integer of {len(text.lstrip('-'))} digits")
    return int(text)


def no_constant(name: str):
    raise ValueError(f"{name} is not a JSON number")


def parse_json(text: str, what: str, fix: str):
    """JSON data, or a UsageError: invalid JSON, NaN/Infinity, huge integers, nesting past MAX_DEPTH."""
    try:
        data = json.loads(text, parse_int=parse_int, parse_constant=no_constant)
    except json.JSONDecodeError as e:
        raise UsageError(f"{what} is not valid JSON: {e.msg} at line {e.lineno}, column {e.colno}", fix) from None
    except RecursionError:
        raise UsageError(f"{what} nests data more than {MAX_DEPTH} levels deep", fix) from None
    except ValueError as e:
        raise UsageError(f"{what} holds a value kubelab refuses: {e}", fix) from None
    return _check_depth(data, what, fix)


# -- YAML ------------------------------------------------------------------------------------------

_BaseLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml's parser when built with it


class DuplicateKey(yaml.constructor.ConstructorError):
    pass


class UniqueKeys:
    """A constructor mixin that refuses a key given twice in one mapping: YAML says keys are unique, PyYAML
    silently keeps the last one — a second `nodes:` block would replace the first. The constructor is
    Python with both parsers (libyaml's CSafeLoader and the pure SafeLoader), so this works with either."""

    def construct_mapping(self, node, deep=False):
        seen: dict = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=True)
            try:
                hash(key)
            except TypeError:
                continue  # the base class reports an unhashable key
            if key in seen:
                first = seen[key]
                raise DuplicateKey("while constructing a mapping", node.start_mark,
                                   f"key {key!r} is given twice: line {first.line + 1} and line "
                                   f"{key_node.start_mark.line + 1}", key_node.start_mark)
            seen[key] = key_node.start_mark
        return super().construct_mapping(node, deep=deep)


class StrictLoader(UniqueKeys, _BaseLoader):  # type: ignore[misc, valid-type]
    """SafeLoader with libyaml's parser when available, refusing duplicate keys."""


def parse_yaml(text: str, what: str, fix: str):
    """YAML data (one document), or a UsageError naming the line: syntax, duplicate keys, depth, huge ints."""
    try:
        data = yaml.load(text, Loader=StrictLoader)  # noqa: S506 - a SafeLoader subclass
    except DuplicateKey as e:
        raise UsageError(f"{what}: {e.problem}", "keep one of them (a key given twice replaces the first silently)") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        reason = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise UsageError(f"{what} is not valid YAML{where}: {reason}",
                         "fix the YAML syntax at that position (indentation, quotes, colons)") from None
    except RecursionError:
        raise UsageError(f"{what} nests data more than {MAX_DEPTH} levels deep", fix) from None
    except ValueError as e:  # an integer of more than 4300 digits: Python refuses to convert it
        reason = "an integer of thousands of digits" if "digits" in str(e) else str(e).splitlines()[0]
        raise UsageError(f"{what} holds a value kubelab refuses: {reason}", fix) from None
    data = _check_depth(data, what, fix)
    _check_ints(data, what, fix)
    return data


def _check_ints(data, what: str, fix: str) -> None:
    stack = [data]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            stack.extend(node.keys())
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
        elif isinstance(node, int) and not isinstance(node, bool) and node.bit_length() > 3.33 * MAX_INT_DIGITS:
            raise UsageError(f"{what} holds an integer of more than {MAX_INT_DIGITS} digits", fix)
