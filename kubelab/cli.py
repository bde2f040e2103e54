"""The `kubelab` command."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from kubelab.cliutil import user_errors
from kubelab.lazycli import Lazy, lazy_group

# Imported only when run (kubelab.lazycli): each pulls heavy libraries `kubelab --help` and `grade` never need.
LAZY_COMMANDS = {
    "doctor": Lazy("kubelab.doctor.cli:doctor_command",
                   "Check this computer before `vagrant up`: Vagrant, a provider, memory, CPUs and networks.\n"
                   "Exit 0 ready (warnings allowed), 1 something to fix, 2 bad usage or input."),
    "url": Lazy("kubelab.vagrant_cli:url_command",
                "Print the JupyterLab URL (with its login token) of the control-plane node."),
    "twin": Lazy("kubelab.twin.cli:twin_app", "Lab twins: the course's nodes booted here with systemd-nspawn."),
    "snapshot": Lazy("kubelab.vagrant_cli:snapshot_app", "Per-lab snapshots of all nodes (vagrant snapshot)."),
    "trace": Lazy("kubelab.trace.cli:trace_command",
                  "Draw what happened to one object (a pod): who called the API server, etcd revisions, the "
                  "scheduler's binding, the kubelet's status updates and the pod's conditions, the EndpointSlice of a "
                  "Service selecting it, kube-proxy's endpoint chain for it on every node. Read-only.\n"
                  "Exit 0 drawn, 2 bad usage or unknown object, 3 cluster or node unreachable."),
    "class": Lazy("kubelab.classroom.cli:class_app",
                  "The instructor's side: grade a whole class, from evidence or live."),
}

app = typer.Typer(help="kubelab: a hands-on Kubernetes architecture course and its autograder.",
                  no_args_is_help=True, pretty_exceptions_enable=False, add_completion=False,
                  cls=lazy_group(LAZY_COMMANDS))

CourseOpt = typer.Option(None, "--course", help="The folder holding course.yaml (default: found upward from here, "
                                                 "or KUBELAB_COURSE).")


def _course(course: Optional[Path]):
    from kubelab.course import load_course

    return load_course(course)


@app.command()
@user_errors
def lint(course: Optional[Path] = CourseOpt) -> None:
    """Validate course.yaml and the course content it points at."""
    from kubelab.course import find_course_root
    from kubelab.lint import lint as run_lint

    problems = run_lint(course or find_course_root())
    for p in problems:
        typer.echo(str(p))
    if problems:
        typer.echo(f"{len(problems)} problem(s) found", err=True)
        raise typer.Exit(2)
    typer.echo("course OK")


@app.command()
@user_errors
def grade(
    lab: str = typer.Argument(..., help="The lab id from course.yaml, e.g. lab01."),
    ssh_config: Optional[Path] = typer.Option(None, "--ssh-config", help="How to reach the nodes (`vagrant ssh-config` "
                                              "format). Default: KUBELAB_SSH_CONFIG or ~/.kubelab/ssh-config."),
    local: bool = typer.Option(False, "--local", help="Grade this machine as every node (run on the node itself)."),
    record: Optional[Path] = typer.Option(None, "--record", help="Grade live and write the evidence of every "
                                          "observation to this file (secrets redacted)."),
    replay: Optional[Path] = typer.Option(None, "--replay", help="Grade from an evidence file alone, no node touched."),
    json_out: Optional[Path] = typer.Option(None, "--json", help="Write the result as JSON."),
    junit_out: Optional[Path] = typer.Option(None, "--junit", help="Write the result as JUnit XML."),
    course: Optional[Path] = CourseOpt,
) -> None:
    """Grade a lab on the nodes and print, check by check, what is right, what is wrong and what to do.
    Exit 0 all passed, 1 some check failed, 2 bad usage or input, 3 infrastructure error,
    4 (--replay only) graded, but the evidence is flagged as inconsistent: the reasons follow the table."""
    from rich.console import Console

    from kubelab.engine import report
    from kubelab.errors import UsageError

    loaded = _course(course)
    loaded.model.lab(lab)  # an unknown lab is bad usage before any node is touched
    if sum(bool(x) for x in (local, ssh_config, replay)) > 1:
        raise UsageError("--local, --ssh-config and --replay exclude each other", "pass one of them")
    if replay and record:
        raise UsageError("--record and --replay exclude each other", "record a live run, replay a recorded one")
    flags: list[str] = []
    if replay:
        from kubelab.evidence import replay_and_verify

        result, _, flags = replay_and_verify(loaded, lab, replay)
    else:  # live: pytest, testinfra and paramiko load here only
        from kubelab.engine.runner import run_lab
        from kubelab.engine.targets import LocalTarget, SshConfigTarget
        from kubelab.sshconfig import ssh_config_path

        target = LocalTarget(loaded) if local else SshConfigTarget(loaded, ssh_config_path(ssh_config))
        try:
            if record:
                from kubelab.evidence import record_lab, save

                result, evidence = record_lab(loaded, lab, target)
                try:
                    save(evidence, record)
                except OSError as e:
                    raise UsageError(f"cannot write {record}: {e.strerror}", "choose a writable path")
            else:
                result = run_lab(loaded, lab, target)
        finally:
            target.close()
    report.print_table(result, Console(highlight=False))
    for writer, path in ((report.write_json, json_out), (report.write_junit, junit_out)):
        if path:
            try:
                writer(result, path)
            except OSError as e:
                raise UsageError(f"cannot write {path}: {e.strerror}", "choose a writable path")
    if flags:
        from kubelab.evidence.honesty import EXIT_FLAGGED

        if json_out:  # the reasons travel with the result
            import json

            data = json.loads(json_out.read_text(encoding="utf-8"))
            json_out.write_text(json.dumps({**data, "flags": flags}, indent=1, ensure_ascii=False) + "\n",
                                encoding="utf-8")
        for reason in flags:
            typer.echo(f"flagged: {reason}", err=True)
        raise typer.Exit(EXIT_FLAGGED)
    raise typer.Exit(result.exit_code)


@app.command()
@user_errors
def release(course: Optional[Path] = CourseOpt) -> None:
    """Regenerate the student notebooks in labs/ from the nbgrader sources in solutions/."""
    from kubelab.notebook.release import generate_student_versions

    for path in generate_student_versions(_course(course)):
        typer.echo(f"wrote {path}")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
