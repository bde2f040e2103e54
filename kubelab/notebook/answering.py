"""`%answer LAB KEY VALUE` and record_answer(): keep a value the learner found, for the grader to recompute.

The answers file sits on the control-plane node (kubelab.answers says why); it is written over the same SSH
connection `%%node` uses, read-modify-write, so answering one key keeps the others."""

from __future__ import annotations

import io
import os
import shlex

from kubelab.answers import answers_path, check_key, merged, normalize
from kubelab.errors import KubelabError, UsageError


def record_answer(lab_id: str, key: str, value: object, runner=None) -> str:
    """Record `value` as the answer `key` of `lab_id`; returns the line the notebook shows."""
    from kubelab.notebook.magics import NodeCommandError, NodeError, NodeRunner, _from_kubelab

    if os.environ.get("NBGRADER_EXECUTION") == "autograde":
        return f"(%answer {lab_id} {key}: not recorded while nbgrader autogrades; the grader reads the learner's)"
    own = runner is None
    runner = runner or NodeRunner()
    try:
        course = runner.course()
        course.model.lab(lab_id)  # an unknown lab is the learner's typo: say so before touching the node
        check_key(key)
        text = normalize(value)
        cp = course.model.control_plane
        _, targets = runner.targets([cp])
        path = answers_path(course.model.lab_user, lab_id)
        old = io.StringIO()
        status = runner.run(cp.name, targets[cp.name], f"cat {path} 2>/dev/null || true", {}, 30, out=old)
        if status != 0:
            raise NodeCommandError(cp.name, status, f"could not read {path} (exit status {status})")
        new = merged(old.getvalue(), key, text)
        folder = path.rsplit("/", 1)[0]
        script = (f"mkdir -p {folder} && printf '%s' {shlex.quote(new)} > {path}.tmp && mv {path}.tmp {path}")
        status = runner.run(cp.name, targets[cp.name], script, {}, 30, out=io.StringIO())
        if status != 0:
            raise NodeCommandError(cp.name, status, f"could not write {path} (exit status {status})")
    except KubelabError as e:
        raise _from_kubelab(None, e) from None
    except NodeError:
        raise
    finally:
        if own:
            runner.close()
    return f"✓ {lab_id} {key} = {text} (recorded on {cp.name})"


def parse_answer_line(line: str) -> tuple[str, str, str]:
    parts = line.strip().split(None, 2)
    if len(parts) < 3:
        raise UsageError(f"%answer {line.strip()}: needs a lab, a key and a value",
                         "write %answer LAB KEY VALUE, e.g. %answer lab07 configmap_revision 496")
    return parts[0], parts[1], parts[2]
