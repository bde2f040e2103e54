"""`kubelab lint`: course.yaml and the content it points at, each problem with file, key path and fix."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from kubelab.course import (COURSE_FILE, CourseProblems, LoadedCourse, Problem, find_course_root, parse_course,
                            read_course_text)
from kubelab.engine.checks import spec_of
from kubelab.errors import UsageError
from kubelab.lint_drift import lint_drift
from kubelab.lint_inputs import import_problem, read_notebook

GRADE_CALL = 'grade("{lab}")'


def lint(root: Path | None = None) -> list[Problem]:
    root = Path(root) if root else find_course_root()
    path = root / COURSE_FILE
    if not path.is_file():
        return [Problem(str(path), "", "does not exist", "run from the course checkout or pass --course PATH")]
    try:
        model = parse_course(read_course_text(path), str(path))
    except CourseProblems as e:
        return e.problems
    except UsageError as e:
        return [Problem(str(path), "", e.problem.removeprefix(str(path)).lstrip(": "), e.fix)]
    course = LoadedCourse(model, root.resolve())
    problems: list[Problem] = []
    for lab in model.labs:
        where = f"labs[{lab.id}]"
        grader = course.grader_path(lab.id)
        if not grader.is_file():
            problems.append(Problem(str(path), f"{where}.grader", f"{grader} does not exist",
                                    f"create graders/{lab.grader} or correct the file name"))
        else:
            problems += _lint_grader(grader, course)
        for kind, nb in (("solution", course.solution_path(lab.id)), ("student", course.student_path(lab.id))):
            if not nb.is_file():
                fix = ("write the nbgrader source notebook" if kind == "solution"
                       else "generate it with `kubelab release`")
                problems.append(Problem(str(path), f"{where}.notebook", f"{kind} notebook {nb} does not exist", fix))
            else:
                problems += _lint_notebook(nb, lab.id, lab.points)
    problems += lint_drift(course)
    return problems


def _lint_grader(grader: Path, course: LoadedCourse) -> list[Problem]:
    spec = importlib.util.spec_from_file_location(f"kubelab_lint_{grader.stem}", grader)
    module = importlib.util.module_from_spec(spec)
    problem = import_problem(grader, lambda: spec.loader.exec_module(module))
    if problem:
        return [problem]
    problems, seen = [], []
    tests = [(name, obj) for name, obj in vars(module).items() if name.startswith("test_") and callable(obj)]
    if not tests:
        problems.append(Problem(str(grader), "", "has no checks", "add functions decorated with @check"))
    for name, fn in tests:
        s = spec_of(fn)
        if s is None:
            problems.append(Problem(str(grader), name, "is a test without @check", "decorate it with @check(...)"))
            continue
        if not s.title.strip() or not s.hint.strip():
            problems.append(Problem(str(grader), name, "has no title or no hint", "say what it checks and how to fix it"))
        if s.on != "cluster":
            try:
                course.model.select_nodes(s.on)
            except Exception:  # noqa: BLE001
                problems.append(Problem(str(grader), name, f"on={s.on!r} selects no node of course.yaml",
                                        "use all, control-plane, worker, cluster or a node name"))
        for need in s.needs:
            if need not in seen:
                problems.append(Problem(str(grader), name, f"needs {need!r}, which is not a check defined above it",
                                        "name an earlier check (function name without test_)"))
        seen.append(s.name)
    from kubelab.engine.graderrules import grader_rules  # what live (pytest) and replay (direct) both run

    problems += [Problem(str(grader), where, what, fix) for where, what, fix in grader_rules(grader, module)]
    return problems


def _lint_notebook(nb: Path, lab_id: str, points: float) -> list[Problem]:
    cells, problem = read_notebook(nb)
    if problem:
        return [problem]
    grading = [c for c in cells if GRADE_CALL.format(lab=lab_id) in "".join(c.get("source", []))]
    if not grading:
        return [Problem(str(nb), "", f"has no grading cell calling {GRADE_CALL.format(lab=lab_id)}",
                        "end the notebook with the grading cell")]
    meta = grading[-1].get("metadata", {}).get("nbgrader", {})
    if not meta.get("grade"):
        return [Problem(str(nb), "grading cell", "is not an nbgrader autograded cell", 'set "grade": true')]
    if float(meta.get("points", -1)) != float(points):
        return [Problem(str(nb), "grading cell.points", f"is {meta.get('points')}, course.yaml says {points:g}",
                        "make the cell's nbgrader points equal labs[].points in course.yaml")]
    return []
