"""`kubelab trace KIND NAME`: what happened to one object, as a timeline (or mermaid) in the terminal."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from kubelab.cliutil import user_errors
from kubelab.trace import AUDIT_LOG_PATH


@user_errors
def trace_command(
    kind: str = typer.Argument(..., help="What to trace: pod."),
    name: str = typer.Argument(..., help="Its name, e.g. web-1."),
    namespace: str = typer.Option("default", "-n", "--namespace", help="Its namespace."),
    ssh_config: Optional[Path] = typer.Option(None, "--ssh-config", help="How to reach the nodes (`vagrant ssh-config` "
                                              "format). Default: KUBELAB_SSH_CONFIG or ~/.kubelab/ssh-config."),
    local: bool = typer.Option(False, "--local", help="This machine is the control plane (run on the node itself)."),
    record: Optional[Path] = typer.Option(None, "--record", help="Trace live and keep what was read as evidence in "
                                          "this file."),
    evidence: Optional[Path] = typer.Option(None, "--evidence", help="Draw from a file written by --record, no node "
                                            "touched."),
    audit_log: str = typer.Option(AUDIT_LOG_PATH, "--audit-log", help="The API server's audit log on the control "
                                  "plane (--audit-log-path)."),
    mermaid: bool = typer.Option(False, "--mermaid", help="Print the mermaid sequence diagram instead of the table."),
    course: Optional[Path] = typer.Option(None, "--course", help="The folder holding course.yaml (default: found "
                                          "upward from here, or KUBELAB_COURSE)."),
) -> None:
    """Draw what happened to one object (a pod): who called the API server, etcd revisions, the scheduler's
    binding, the kubelet's status updates and the pod's conditions, the EndpointSlice of a Service selecting it,
    kube-proxy's endpoint chain for it on every node. Read-only.
    Exit 0 drawn, 2 bad usage or unknown object, 3 cluster or node unreachable."""
    # drawn from the API server's audit log, the object's events and managedFields, its resourceVersion, the Leases
    from rich.console import Console

    from kubelab.course import load_course
    from kubelab.errors import UsageError
    from kubelab.trace.record import trace_from_evidence, trace_live

    loaded = load_course(course)
    if evidence and (record or local or ssh_config):
        raise UsageError("--evidence excludes --record, --local and --ssh-config", "draw from evidence, or trace live")
    if local and ssh_config:
        raise UsageError("--local and --ssh-config exclude each other", "pass one of them")
    if evidence:
        trace = trace_from_evidence(loaded, evidence, kind, name, namespace)
    else:
        from kubelab.engine.targets import LocalTarget, SshConfigTarget
        from kubelab.sshconfig import ssh_config_path

        target = LocalTarget(loaded) if local else SshConfigTarget(loaded, ssh_config_path(ssh_config))
        try:
            trace = trace_live(loaded, target, kind, name, namespace, audit_log, record)
        finally:
            target.close()
    if mermaid:
        from kubelab.trace.mermaid import to_mermaid

        typer.echo(to_mermaid(trace), nl=False)
    else:
        from kubelab.trace.timeline import render

        render(trace, Console(highlight=False))
