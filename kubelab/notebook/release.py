"""Learner versions of the lab notebooks: nbgrader's generate_assignment, run where it cannot hurt.

For every lab of course.yaml, `solutions/<lab>/` is copied with course.yaml and nbgrader_config.py
into a temporary course directory, `nbgrader generate_assignment <lab> --force` runs there (its
gradebook and log die with that directory, no user or system Jupyter config is read), and the
result is written to `labs/<lab>/` (or OUT_DIR/<lab>/) in nbformat's canonical JSON, so the same
sources always give the same bytes.

    python -m kubelab.notebook.release [--course PATH] [--out DIR]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import nbformat

from kubelab.course import COURSE_FILE, LoadedCourse, find_course_root, load_course
from kubelab.errors import InfrastructureError, KubelabError, UsageError

NBGRADER_CONFIG = "nbgrader_config.py"
SOURCE_DIR = "solutions"
RELEASE_DIR = "labs"
# *.evidence.json: a solution notebook graded in solutions/ must never ship its evidence to learners.
_IGNORE = shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__", "*.pyc", "*.evidence.json")


def canonical_notebook(text: str) -> str:
    """A notebook's JSON exactly as nbformat writes it (sorted keys, indent 1, final newline)."""
    nb = nbformat.reads(text, as_version=nbformat.NO_CONVERT)
    out = nbformat.writes(nb)
    return out if out.endswith("\n") else out + "\n"


def _run_nbgrader(work: Path, lab_id: str) -> None:
    env = dict(os.environ)
    jupyter_dir = work / ".jupyter"
    jupyter_dir.mkdir(exist_ok=True)
    # Only the course's own nbgrader_config.py (in cwd) counts: no ~/.jupyter or /etc/jupyter settings.
    env.update(JUPYTER_NO_CONFIG="1", JUPYTER_CONFIG_DIR=str(jupyter_dir), KUBELAB_NBGRADER_HOME=str(work / ".nbgrader"))
    # nbgrader runs `alembic` from PATH for its gradebook: find the one installed beside this Python
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    cmd = [sys.executable, "-m", "nbgrader", "generate_assignment", lab_id, "--force",
           f"--CourseDirectory.root={work}",
           f"--CourseDirectory.db_url=sqlite:///{work / '.nbgrader' / 'gradebook.db'}",
           "--log-level=WARN"]
    proc = subprocess.run(cmd, cwd=work, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        detail = [line.strip() for line in (proc.stderr + proc.stdout).splitlines() if line.strip()]
        errors = [line for line in detail if re.match(r"^[\w.]*(Error|Exception)\b.*:", line)]
        last = (errors or detail or ["no output"])[-1]
        raise UsageError(f"nbgrader generate_assignment {lab_id} failed (exit {proc.returncode}): {last}",
                         f"fix the notebook in {SOURCE_DIR}/{lab_id}/ (run the command by hand with --debug to see more)")


def generate_student_versions(course: LoadedCourse, out_dir: Path | None = None) -> list[Path]:
    """Write the learner version of every lab to OUT_DIR/<lab>/ (default: the course's labs/); return the files written."""
    root = course.root
    out = Path(out_dir) if out_dir is not None else root / RELEASE_DIR
    config = root / NBGRADER_CONFIG
    if not config.is_file():
        raise UsageError(f"{config} does not exist", "restore nbgrader_config.py at the course root")
    for lab in course.model.labs:
        src = course.solution_path(lab.id)
        if not src.is_file():
            raise UsageError(f"lab {lab.id}: its source notebook {src} does not exist",
                             f"write {SOURCE_DIR}/{lab.id}/{lab.notebook}, or fix notebook: in course.yaml")
    written: list[Path] = []
    with tempfile.TemporaryDirectory(prefix="kubelab-release-") as tmp:
        work = Path(tmp)
        shutil.copy2(root / COURSE_FILE, work / COURSE_FILE)
        shutil.copy2(config, work / NBGRADER_CONFIG)
        for lab in course.model.labs:
            shutil.copytree(root / SOURCE_DIR / lab.id, work / SOURCE_DIR / lab.id, ignore=_IGNORE)
            _run_nbgrader(work, lab.id)
            produced = work / RELEASE_DIR / lab.id
            expected = produced / lab.notebook
            if not expected.is_file():
                raise InfrastructureError(f"nbgrader wrote no {RELEASE_DIR}/{lab.id}/{lab.notebook}",
                                          "check the nbgrader version (0.9.x) and nbgrader_config.py")
            for f in sorted(p for p in produced.rglob("*") if p.is_file()):
                dest = out / lab.id / f.relative_to(produced)
                dest.parent.mkdir(parents=True, exist_ok=True)
                if f.suffix == ".ipynb":
                    dest.write_text(canonical_notebook(f.read_text(encoding="utf-8")), encoding="utf-8")
                else:
                    shutil.copyfile(f, dest)
                written.append(dest)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m kubelab.notebook.release",
                                     description="Regenerate the learner notebooks (labs/) from solutions/ with nbgrader.")
    parser.add_argument("--course", help="course folder or its course.yaml (default: KUBELAB_COURSE, else the nearest course.yaml)")
    parser.add_argument("--out", help="write into this folder instead of the course's labs/")
    args = parser.parse_args(argv)
    try:
        course = load_course(Path(args.course).expanduser() if args.course else find_course_root())
        written = generate_student_versions(course, Path(args.out) if args.out else None)
    except KubelabError as e:
        print(f"error: {e.problem}", file=sys.stderr)
        if e.fix:
            print(f"fix: {e.fix}", file=sys.stderr)
        return e.exit_code
    for path in written:
        try:
            shown = path.resolve().relative_to(Path.cwd().resolve())
        except ValueError:
            shown = path
        print(f"wrote {shown}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
