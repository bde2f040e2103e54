"""Who is in the class, and what each learner is graded from.

Two sources:

- a submissions folder (evidence, no node touched). Each learner is either a folder
  ``DIR/<learner>/`` searched for ``<lab>.evidence.json`` at any depth — nbgrader's ``submitted/`` and
  ``autograded/`` layouts ``DIR/<student>/<lab>/<lab>.evidence.json`` included — or a file
  ``DIR/<learner>.json`` (also ``DIR/<learner>.evidence.json``). A learner folder without that file is
  a learner who handed in no evidence for the lab (score 0, status ``missing``).
- a roster CSV (live): columns ``learner`` and ``ssh_config`` (a path, relative to the roster's folder),
  one learner per row; other columns are ignored. Every problem names its line and column.
"""

from __future__ import annotations

import csv
import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from kubelab.errors import UsageError

EVIDENCE_SUFFIX = ".evidence.json"
LEARNER_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@+-]*$")
# what nbgrader and Jupyter leave in a submission folder that is never the learner's evidence
_SKIP_PARTS = {"feedback", ".ipynb_checkpoints", "__pycache__"}


@dataclass(frozen=True)
class LearnerInput:
    learner: str
    kind: Literal["evidence", "live", "missing"]
    source: Path | None      # the evidence file, or the learner's ssh-config
    digest: str              # sha256 of the source's bytes ("missing" when there is none)
    where: str = ""          # how to find it again in the input: a path or "roster line N"


def file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return "sha256:" + h.hexdigest()


def _evidence_in(folder: Path, lab_id: str) -> Path | None:
    name = lab_id + EVIDENCE_SUFFIX
    found = [p for p in folder.rglob(name)
             if p.is_file() and not any(part in _SKIP_PARTS or part.startswith(".")
                                        for part in p.relative_to(folder).parts[:-1])]
    if not found:
        return None
    preferred = folder / lab_id / name  # nbgrader: <student>/<assignment>/<file>
    if preferred in found:
        return preferred
    return sorted(found, key=lambda p: (len(p.parts), str(p)))[0]


def _learner_of_file(path: Path) -> str:
    name = path.name
    return name[: -len(EVIDENCE_SUFFIX)] if name.endswith(EVIDENCE_SUFFIX) else path.stem


def find_submissions(folder: Path, lab_id: str, exclude: Path | None = None) -> list[LearnerInput]:
    folder = Path(folder)
    if not folder.exists():
        raise UsageError(f"submissions folder {folder} does not exist",
                         "pass the folder holding one folder (or one .json file) per learner, e.g. nbgrader's submitted/")
    if not folder.is_dir():
        raise UsageError(f"submissions folder {folder} is not a folder",
                         "pass the folder holding one folder (or one .json file) per learner")
    skip = exclude.resolve() if exclude is not None else None
    learners: dict[str, LearnerInput] = {}
    for entry in sorted(folder.iterdir()):
        if entry.name.startswith(".") or entry.name in _SKIP_PARTS:
            continue
        if skip is not None and (entry.resolve() == skip or entry.resolve() in skip.parents):
            continue  # the output folder of `kubelab class grade` itself
        if entry.is_dir():
            learner = entry.name
            evidence = _evidence_in(entry, lab_id)
            item = (LearnerInput(learner, "evidence", evidence, file_digest(evidence), str(evidence))
                    if evidence else LearnerInput(learner, "missing", None, "missing", str(entry)))
        elif entry.is_file() and entry.suffix == ".json":
            learner = _learner_of_file(entry)
            item = LearnerInput(learner, "evidence", entry, file_digest(entry), str(entry))
        else:
            continue
        if not LEARNER_PATTERN.match(learner):
            raise UsageError(f"submissions folder {folder}: {entry.name!r} does not name a learner",
                             "learner names may hold letters, digits and . _ - @ + only: rename or move it")
        if learner in learners:
            raise UsageError(f"submissions folder {folder}: learner {learner!r} has both {learners[learner].where} "
                             f"and {entry}", "keep one of them")
        learners[learner] = item
    if not learners:
        raise UsageError(f"no learners in {folder}: expected {folder}/<learner>/**/{lab_id}{EVIDENCE_SUFFIX} "
                         f"or {folder}/<learner>.json", "pass the folder of the collected submissions (nbgrader's submitted/)")
    return list(learners.values())


def read_roster(path: Path) -> list[LearnerInput]:
    path = Path(path)
    name = path.name
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise UsageError(f"roster {path} does not exist", "pass a CSV file with the columns learner and ssh_config")
    except (OSError, UnicodeDecodeError) as e:
        raise UsageError(f"roster {path} cannot be read: {getattr(e, 'strerror', None) or e}",
                         "save it as a UTF-8 CSV file")
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
            out.append(LearnerInput(learner, "live", ssh_config, file_digest(ssh_config), f"{where}"))
    except csv.Error as e:
        raise UsageError(f"roster {name} line {reader.line_num}: not valid CSV: {e}", "fix the quoting on that line")
    if not out:
        raise UsageError(f"roster {name} lists no learners", "add one line per learner: NAME,PATH-TO-SSH-CONFIG")
    return out
