"""Who is in the class, and what each learner is graded from.

Two sources:

- a submissions folder (evidence, no node touched). Each learner is either a folder
  ``DIR/<learner>/`` searched for ``<lab>.evidence.json`` at any depth — nbgrader's ``submitted/`` and
  ``autograded/`` layouts ``DIR/<student>/<lab>/<lab>.evidence.json`` included — or a file
  ``DIR/<learner>.json`` (also ``DIR/<learner>.evidence.json``). A learner folder without that file is
  a learner who handed in no evidence for the lab (score 0, status ``missing``). Whatever else a
  learner's entry holds is that learner's ``error`` row with one line saying why, never the end of the
  run: two evidence files, both a folder and a .json, a folder or a device where the file should be, a
  looping symlink, a symlink out of the learner's own folder (to another learner's evidence), a file
  the instructor may not read, a folder name that cannot name a learner.
- a roster CSV (live): columns ``learner`` and ``ssh_config`` (a path, relative to the roster's folder),
  one learner per row; other columns are ignored. Every problem names its line and column.
"""

from __future__ import annotations

import csv
import errno
import hashlib
import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from kubelab import inputfiles
from kubelab.errors import UsageError

EVIDENCE_SUFFIX = ".evidence.json"
LEARNER_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@+-]*$")  # roster names: they name result files
# a submission folder's name is whatever the learner's name is (nbgrader: the student id, any language)
FOLDER_NAME_PATTERN = re.compile(r"^[^\W_][\w .@+'-]{0,199}$")
MAX_ROSTER_BYTES = 4 * inputfiles.MIB
# what nbgrader and Jupyter leave in a submission folder that is never the learner's evidence
_SKIP_PARTS = {"feedback", ".ipynb_checkpoints", "__pycache__"}


@dataclass(frozen=True)
class LearnerInput:
    learner: str
    kind: Literal["evidence", "live", "missing", "error"]
    source: Path | None      # the evidence file, or the learner's ssh-config
    digest: str              # sha256 of the source's bytes ("missing" when there is none)
    where: str = ""          # how to find it again in the input: a path or "roster line N"
    reason: str = ""         # kind "error": why this learner's submission cannot be graded, one line


def file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return "sha256:" + h.hexdigest()


def _error(learner: str, where: Path | str, reason: str) -> LearnerInput:
    return LearnerInput(learner, "error", None, "error:" + hashlib.sha256(reason.encode()).hexdigest(),
                        str(where), reason)


def _not_a_file(path: Path) -> str | None:
    """Why `path` is not an evidence file kubelab may open, or None for a regular file."""
    try:
        st = path.stat()
    except OSError as e:
        if e.errno == errno.ELOOP:
            return f"{path} is a symbolic link that loops"
        if isinstance(e, FileNotFoundError):
            return f"{path} is a symbolic link to nothing"
        return f"{path} cannot be read: {e.strerror or e}"
    if stat.S_ISDIR(st.st_mode):
        return f"{path} is a folder, not an evidence file"
    if not stat.S_ISREG(st.st_mode):
        return f"{path} is not a regular file (a device, FIFO or socket)"
    return None


def _outside(path: Path, folder: Path) -> str | None:
    """A link out of the learner's own folder (to another learner's evidence, say) is refused."""
    real, home = path.resolve(), folder.resolve()
    if real != home and home not in real.parents:
        return f"{path} is a symbolic link to {real}, outside {folder.name}'s own folder"
    return None


def _digest_or_error(learner: str, path: Path) -> LearnerInput:
    try:
        return LearnerInput(learner, "evidence", path, file_digest(path), str(path))
    except OSError as e:
        reason = (f"{path} cannot be read: permission denied (make it readable by the user running kubelab)"
                  if isinstance(e, PermissionError) else f"{path} cannot be read: {e.strerror or e}")
        return _error(learner, path, reason)


def _learner_folder(folder: Path, learner: str, lab_id: str) -> LearnerInput:
    name = lab_id + EVIDENCE_SUFFIX
    found: list[Path] = []
    problems: list[OSError] = []
    # os.walk, not rglob: it lists what rglob drops (a looping symlink, a folder of that name) and never
    # follows a link into another learner's folder
    for top, dirs, files in os.walk(folder, onerror=problems.append):
        dirs[:] = sorted(d for d in dirs if d not in _SKIP_PARTS and not d.startswith("."))
        found += [Path(top) / n for n in (*dirs, *files) if n == name]
    if problems and not found:
        return _error(learner, folder, f"{problems[0].filename} cannot be listed: {problems[0].strerror or problems[0]}")
    if not found:
        return LearnerInput(learner, "missing", None, "missing", str(folder))
    if len(found) > 1:
        names = " and ".join(str(p) for p in sorted(found)[:2]) + (f" (and {len(found) - 2} more)" if len(found) > 2 else "")
        return _error(learner, folder, f"two evidence files for {lab_id}: {names}; keep one")
    path = found[0]
    reason = _not_a_file(path) or _outside(path, folder)
    return _error(learner, path, reason) if reason else _digest_or_error(learner, path)


def _learner_of_file(path: Path) -> str:
    name = path.name
    return name[: -len(EVIDENCE_SUFFIX)] if name.endswith(EVIDENCE_SUFFIX) else path.stem


def find_submissions(folder: Path, lab_id: str, exclude: Path | None = None) -> list[LearnerInput]:
    """One LearnerInput per learner. Whatever one learner's entry holds is that learner's row (missing,
    or error with a reason), never the end of the class run."""
    folder = Path(folder)
    if not folder.exists():
        raise UsageError(f"submissions folder {folder} does not exist",
                         "pass the folder holding one folder (or one .json file) per learner, e.g. nbgrader's submitted/")
    if not folder.is_dir():
        raise UsageError(f"submissions folder {folder} is not a folder",
                         "pass the folder holding one folder (or one .json file) per learner")
    skip = exclude.resolve() if exclude is not None else None
    learners: dict[str, LearnerInput] = {}
    try:
        entries = sorted(folder.iterdir())
    except OSError as e:
        raise UsageError(f"submissions folder {folder} cannot be listed: {e.strerror or e}",
                         "make it readable by the user running kubelab") from None
    for entry in entries:
        if entry.name.startswith(".") or entry.name in _SKIP_PARTS:
            continue
        if skip is not None and (entry.resolve() == skip or entry.resolve() in skip.parents):
            continue  # the output folder of `kubelab class grade` itself
        is_json = entry.name.endswith(".json")
        if entry.is_dir() and not entry.is_symlink():
            learner = entry.name
            item = _learner_folder(entry, learner, lab_id)
        elif is_json or entry.is_symlink():
            learner = _learner_of_file(entry) if is_json else entry.name
            if entry.is_symlink():
                item = _error(learner, entry, f"{entry} is a symbolic link to {entry.resolve()}: hand in the file itself")
            else:
                reason = _not_a_file(entry)
                item = _error(learner, entry, reason) if reason else _digest_or_error(learner, entry)
        else:
            continue
        if not FOLDER_NAME_PATTERN.match(learner):
            item = _error(learner, entry, f"{entry.name!r} does not name a learner (letters, digits, spaces and "
                                          ". _ - @ + ' only, at most 200): rename it")
        if learner in learners:
            first = learners[learner]
            item = _error(learner, entry, f"learner {learner} handed in both {first.where} and {entry}; keep one")
        learners[learner] = item
    if not learners:
        raise UsageError(f"no learners in {folder}: expected {folder}/<learner>/**/{lab_id}{EVIDENCE_SUFFIX} "
                         f"or {folder}/<learner>.json", "pass the folder of the collected submissions (nbgrader's submitted/)")
    return list(learners.values())


def read_roster(path: Path) -> list[LearnerInput]:
    path = Path(path)
    name = path.name
    text = inputfiles.read_text(path, f"roster {path}", MAX_ROSTER_BYTES,
                                "pass a CSV file with the columns learner and ssh_config, saved as UTF-8")
    fix_header = "the first line must name the columns learner and ssh_config (e.g. `learner,ssh_config`)"
    try:
        reader = csv.reader(text.splitlines())
        header = next(reader, None)
        if not header or not any(h.strip() for h in header):
            raise UsageError(f"roster {name} is empty: no header line", fix_header)
        columns = [h.strip().lower() for h in header]
        for needed in ("learner", "ssh_config"):
            if needed not in columns:
                raise UsageError(f"roster {name} line 1: no column {needed} (the header has: {', '.join(columns)})",
                                 fix_header)
        li, si = columns.index("learner"), columns.index("ssh_config")
        learners: dict[str, int] = {}
        out: list[LearnerInput] = []
        for row in reader:
            line = reader.line_num
            if not any(cell.strip() for cell in row):
                continue  # blank lines are allowed
            learner = row[li].strip() if li < len(row) else ""
            where = f"roster {name} line {line}"
            if not learner:
                raise UsageError(f"{where}, column learner: empty", "give every row a learner name")
            if not LEARNER_PATTERN.match(learner):
                raise UsageError(f"{where}, column learner: {learner!r} is not a valid learner name",
                                 "use letters, digits and . _ - @ + only (it names the learner's result file)")
            if learner in learners:
                raise UsageError(f"{where}, column learner: {learner!r} is listed again (first on line {learners[learner]})",
                                 "list every learner once")
            raw = row[si].strip() if si < len(row) else ""
            if not raw:
                raise UsageError(f"{where}, column ssh_config: empty (learner {learner})",
                                 "give the path of the learner's ssh-config (`vagrant ssh-config` output)")
            ssh_config = Path(raw).expanduser()
            if not ssh_config.is_absolute():
                ssh_config = path.parent / ssh_config
            if not ssh_config.is_file():
                raise UsageError(f"{where}, column ssh_config: {ssh_config} does not exist (learner {learner})",
                                 "fix the path (relative paths are read from the roster's folder)")
            learners[learner] = line
            try:
                digest = file_digest(ssh_config)
            except OSError as e:
                raise UsageError(f"{where}, column ssh_config: {ssh_config} cannot be read: {e.strerror or e} "
                                 f"(learner {learner})", "make it readable by the user running kubelab") from None
            out.append(LearnerInput(learner, "live", ssh_config, digest, f"{where}"))
    except csv.Error as e:
        raise UsageError(f"roster {name} line {reader.line_num}: not valid CSV: {e}", "fix the quoting on that line")
    if not out:
        raise UsageError(f"roster {name} lists no learners", "add one line per learner: NAME,PATH-TO-SSH-CONFIG")
    return out
