"""Reading a component's command line (a static pod's command/args, a process's argv): graders of several labs ask
the same question of kube-apiserver, kube-controller-manager, flanneld."""

from __future__ import annotations

from typing import Sequence


def flag_values(args: Sequence[str], name: str) -> list[str]:
    """Values of `--name=V` or `--name V` in `args`, in order (a Go component takes the last)."""
    values = []
    for i, a in enumerate(args):
        if a.startswith(f"--{name}="):
            values.append(a.split("=", 1)[1])
        elif a == f"--{name}" and i + 1 < len(args):
            values.append(args[i + 1])
    return values
