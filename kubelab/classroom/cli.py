"""`kubelab class ...`: the instructor grades a whole class (mounted by the main CLI as a sub-app).

Exit codes of `kubelab class grade`: 0 every learner graded (whatever their scores; a learner whose
evidence is flagged as inconsistent is graded, status `flagged`), 2 bad usage or
input (a missing folder, a bad roster line), 3 some learner could not be graded (nodes unreachable,
a timeout, unreadable evidence): their reasons are in the report, and running the same command again
grades only them."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from kubelab.cliutil import user_errors
from kubelab.errors import UsageError

EXIT_ALL_GRADED, EXIT_USAGE, EXIT_NOT_GRADED = 0, 2, 3
MAX_TIMEOUT_S = 86400.0

class_app = typer.Typer(help="The instructor's side: grade a whole class, from evidence or live.",
                        no_args_is_help=True, pretty_exceptions_enable=False, add_completion=False)


@class_app.callback()
def _class() -> None:
    """The instructor's side: grade a whole class, from evidence or live."""


@class_app.command("grade")
@user_errors(on_interrupt="run the same command again: every learner graded so far is saved and is skipped")
def grade_command(
    lab: str = typer.Option(..., "--lab", help="The lab id from course.yaml, e.g. lab01."),
    submissions: Optional[Path] = typer.Option(
        None, "--submissions", help="Grade from evidence: a folder with DIR/<learner>/**/<lab>.evidence.json "
        "(nbgrader's submitted/ or autograded/) or DIR/<learner>.json. No node is touched."),
    roster: Optional[Path] = typer.Option(
        None, "--roster", help="Grade live: a CSV with the columns learner,ssh_config (one ssh-config per learner, "
        "paths relative to the CSV)."),
    out: Optional[Path] = typer.Option(None, "--out", help="Output folder (default: grades/LAB). Use one per lab."),
    jobs: Optional[int] = typer.Option(None, "--jobs", "-j", min=1, help="Learners graded at once (default: live "
                                       "min(8, 4 per CPU), evidence one per CPU)."),
    timeout: float = typer.Option(300.0, "--timeout", min=1.0, help="Seconds one learner may take; then that "
                                  "learner is stopped and reported as `error: timed out`."),
    force: bool = typer.Option(False, "--force", help="Regrade every learner, also those already graded."),
    course: Optional[Path] = typer.Option(None, "--course", help="The folder holding course.yaml (default: found "
                                          "upward from here, or KUBELAB_COURSE)."),
) -> None:
    """Grade every learner of a class; write a gradebook CSV, one JSON per learner, per-check pass rates
    (CSV and PNG) and a class report with copy detection. Re-running resumes."""
    from kubelab.classroom import reports
    from kubelab.classroom.learners import find_submissions, read_roster
    from kubelab.classroom.run import grade_class
    from kubelab.course import load_course

    if not math.isfinite(timeout) or timeout > MAX_TIMEOUT_S:
        raise UsageError(f"--timeout {timeout:g} is not a number of seconds kubelab can wait",
                         f"pass a finite number of seconds up to {MAX_TIMEOUT_S:g} (one day), e.g. --timeout 600")
    if (submissions is None) == (roster is None):
        raise UsageError("pass exactly one of --submissions DIR (evidence) and --roster CSV (live)",
                         "e.g. kubelab class grade --lab lab01 --submissions submitted/")
    loaded = load_course(course)
    loaded.model.lab(lab)  # an unknown lab is bad usage before anything runs
    out = out or Path("grades") / lab
    inputs = (find_submissions(submissions, lab, exclude=out) if submissions is not None else read_roster(roster))

    err = Console(stderr=True, highlight=False)
    progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                        TimeRemainingColumn(), console=err, transient=False)
    task = progress.add_task(f"{lab}: grading", total=len(inputs))

    def on_progress(record: dict, skipped: bool) -> None:
        what = "already graded" if skipped else record["status"]
        # escaped: a learner's name is data, and `[/x]` would be rich markup
        progress.update(task, advance=1, description=escape(f"{lab}: {record['learner']} {what}"))

    with progress:
        run = grade_class(loaded, lab, inputs, out, jobs=jobs, timeout_s=timeout, force=force,
                          on_progress=on_progress)
        progress.update(task, description=f"{lab}: done")
    reports.print_report(Console(highlight=False), run.report, run.records, out)
    raise typer.Exit(EXIT_NOT_GRADED if run.errors else EXIT_ALL_GRADED)


if __name__ == "__main__":  # `python -m kubelab.classroom.cli grade ...`
    class_app()
