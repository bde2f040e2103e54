"""Run the labs' notebooks in order on real nodes and grade each: the maintainers' proof (scripts/e2e-vms.sh).

For each lab (course order, or --labs): copy its notebook (solutions/ by default, the learner version in labs/
with --source labs) into OUT/<lab>/, execute every cell with nbclient — the `%%node` cells reach the nodes over
SSH as in JupyterLab — save the executed notebook there, then grade the lab with `kubelab grade` against the
same nodes. A lab below full marks, or a cell that stops, ends the run: later labs build on it.

    python scripts/e2e_labs.py --ssh-config FILE [--course DIR] [--labs lab01,lab02] [--source solutions|labs]
                               [--k8s-patch 1.36.5] [--out DIR]

--k8s-patch (or KUBELAB_K8S_PATCH) runs against another patch of course.yaml's pinned minor (the weekly drift
alarm: the newest patch): a copy of the course with that patch is written to OUT/course and used throughout.
Exit: 0 every lab full marks, 1 a lab short of it (or a cell stopped), 2 bad input, 3 a node unreachable.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import yaml

EXIT_OK, EXIT_SHORT, EXIT_USAGE, EXIT_INFRA = 0, 1, 2, 3
REPO = Path(__file__).resolve().parent.parent
CELL_TIMEOUT_S = 1800  # a `%%node` cell carries its own --timeout; this only catches a hung kernel


class Stop(Exception):
    def __init__(self, code: int, message: str, fix: str = ""):
        super().__init__(message)
        self.code, self.message, self.fix = code, message, fix


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    try:
        return run(args)
    except Stop as e:
        print(f"error: {e.message}" + (f" (fix: {e.fix})" if e.fix else ""), file=sys.stderr)
        return e.code


def _parse(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--ssh-config", required=True, type=Path, help="ssh-config naming the course's nodes")
    p.add_argument("--course", type=Path, default=REPO, help="the course checkout (default: this repository)")
    p.add_argument("--labs", default="", help="comma-separated lab ids (default: every lab of course.yaml)")
    p.add_argument("--source", choices=("solutions", "labs"), default="solutions",
                   help="run the solution notebooks (default) or the learner versions")
    p.add_argument("--k8s-patch", default=os.environ.get("KUBELAB_K8S_PATCH", ""),
                   help="another patch of the pinned minor (default: course.yaml's, or $KUBELAB_K8S_PATCH)")
    p.add_argument("--out", type=Path, default=Path("e2e-out"), help="where executed notebooks and results go")
    return p.parse_args(argv)


def run(args) -> int:
    from kubelab.course import CourseProblems, load_course

    if not args.ssh_config.is_file():
        raise Stop(EXIT_USAGE, f"no ssh-config at {args.ssh_config}",
                   "write one: `vagrant ssh-config > FILE` or `kubelab twin ssh-config > FILE`")
    args.out.mkdir(parents=True, exist_ok=True)
    root = args.course.resolve()
    try:
        if args.k8s_patch:
            root = _course_at_patch(root, args.k8s_patch, args.out / "course")
        course = load_course(root)
    except CourseProblems as e:
        raise Stop(EXIT_USAGE, "; ".join(str(p) for p in e.problems), "fix course.yaml") from None
    known = [lab.id for lab in course.model.labs]
    labs = [x for x in args.labs.split(",") if x] or known
    unknown = [x for x in labs if x not in known]
    if unknown:
        raise Stop(EXIT_USAGE, f"unknown lab(s) {', '.join(unknown)}", f"choose from {', '.join(known)}")
    labs = [x for x in known if x in labs]  # course order: each lab builds on the one before
    print(f"==> Kubernetes {course.model.versions.kubernetes.patch}, labs {', '.join(labs)}, "
          f"{args.source} notebooks, nodes from {args.ssh_config}", flush=True)

    rows, code = [], EXIT_OK
    for lab_id in labs:
        row = _run_lab(course, lab_id, args)
        rows.append(row)
        print(f"==> {row['lab']}: {row['score']}/{row['max_score']} in {row['seconds']:.0f} s"
              + (f" — stopped at cell {row['stopped_at']}" if row["stopped_at"] else ""), flush=True)
        if row["infrastructure"]:
            code = EXIT_INFRA
            break
        if row["stopped_at"] or row["score"] != row["max_score"]:
            code = EXIT_SHORT
            break
    (args.out / "summary.json").write_text(json.dumps({"kubernetes": course.model.versions.kubernetes.patch,
                                                        "labs": rows, "exit": code}, indent=2) + "\n")
    print("\n" + "\n".join(f"{r['lab']}  {r['score']}/{r['max_score']}  "
                          f"{'full marks' if r['score'] == r['max_score'] and not r['stopped_at'] else 'SHORT'}"
                          for r in rows))
    print("all labs at full marks" if code == EXIT_OK else f"stopped: see {args.out}/<lab>/ and summary.json")
    return code


def _course_at_patch(root: Path, patch: str, dest: Path) -> Path:
    """A copy of the course whose kubernetes.patch is `patch` (same minor: pkgs.k8s.io serves one minor per repo)."""
    data = yaml.safe_load((root / "course.yaml").read_text(encoding="utf-8"))
    minor = data["versions"]["kubernetes"]["minor"]
    if not re.fullmatch(rf"{re.escape(minor)}\.\d+", patch):
        raise Stop(EXIT_USAGE, f"Kubernetes patch {patch!r} is not a patch of the pinned minor {minor}",
                   f"give {minor}.N, or change versions.kubernetes.minor in course.yaml")
    data["versions"]["kubernetes"]["patch"] = patch
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    (dest / "course.yaml").write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    for folder in ("graders", "solutions", "labs"):
        shutil.copytree(root / folder, dest / folder, ignore=shutil.ignore_patterns("__pycache__", "*.evidence.json"))
    return dest


def _run_lab(course, lab_id: str, args) -> dict:
    from nbclient.exceptions import CellExecutionError

    from kubelab.notebook.execute import run_notebook

    lab = course.model.lab(lab_id)
    source = course.solution_path(lab_id) if args.source == "solutions" else course.student_path(lab_id)
    if not source.is_file():
        raise Stop(EXIT_USAGE, f"no notebook {source}", "run `kubelab release` or check course.yaml")
    work = (args.out / lab_id).resolve()
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    nb = nbformat.read(source, as_version=4)
    env = {"KUBELAB_SSH_CONFIG": str(args.ssh_config.resolve()), "KUBELAB_COURSE": str(course.root)}
    stopped_at, t0 = "", time.monotonic()
    try:  # the kernel inherits env: `%%node` and the grading cell read them
        run_notebook(nb, work, env, timeout=CELL_TIMEOUT_S)
    except CellExecutionError as e:
        stopped_at = _failed_cell(nb) or "?"
        print(f"--- {lab_id}: a cell stopped:\n{_last_line(str(e))}", flush=True)
    finally:
        nbformat.write(nb, work / source.name)
    seconds = time.monotonic() - t0
    result_file = work / f"{lab_id}.result.json"
    grade = subprocess.run([_kubelab(), "grade", lab_id, "--ssh-config", str(args.ssh_config), "--course",
                            str(course.root), "--json", str(result_file)], capture_output=True, text=True)
    print(grade.stdout, end="", flush=True)
    if grade.returncode not in (0, 1, 3) or not result_file.is_file():
        raise Stop(EXIT_INFRA, f"kubelab grade {lab_id} failed (exit {grade.returncode}): "
                               f"{_last_line(grade.stderr or grade.stdout)}")
    result = json.loads(result_file.read_text())
    return {"lab": lab_id, "score": result["score"], "max_score": result["max_score"], "points": lab.points,
            "stopped_at": stopped_at, "seconds": round(seconds, 1), "infrastructure": grade.returncode == 3}


def _failed_cell(nb) -> str:
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            if out.get("output_type") == "error":
                return cell.get("id", "")
    return ""


def _last_line(text: str) -> str:
    lines = [ln for ln in re.sub(r"\x1b\[[0-9;]*m", "", text).splitlines() if ln.strip()]
    return lines[-1] if lines else "(no output)"


def _kubelab() -> str:
    beside = Path(sys.executable).parent / "kubelab"
    return str(beside) if beside.exists() else (shutil.which("kubelab") or "kubelab")


if __name__ == "__main__":
    sys.path.insert(0, str(REPO))
    sys.exit(main())
