"""What the twin and cluster commands share (`kubelab twin ...`, `kubelab twin up --cluster`,
`python -m kubelab.cluster.cli`). Its own module, so that neither CLI imports the other."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from kubelab.cliutil import user_errors

CourseOption = Annotated[
    Optional[Path],
    typer.Option("--course", help="Folder holding course.yaml (default: KUBELAB_COURSE, else the nearest "
                                  "course.yaml from the current folder up).", show_default=False),
]

errors_as_one_line = user_errors(on_interrupt="run `kubelab twin down` to stop what was started")


def progress(line: str) -> None:
    print(line, flush=True)
