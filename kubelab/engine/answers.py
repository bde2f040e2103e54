"""The `answers` fixture: the lab's recorded answers, compared with what the grader reads live.

A wrong answer fails showing what the learner wrote and where to look, never the live value: the failure
message must not give the answer away."""

from __future__ import annotations

from functools import cached_property
from typing import Any, Callable

from kubelab.answers import answers_path, check_key, parse
from kubelab.engine.checks import CheckFailed


class Answers:
    def __init__(self, lab_id: str, lab_user: str, control_plane_host: Any, control_plane_name: str):
        self.lab_id = lab_id
        self.path = answers_path(lab_user, lab_id)
        self._host = control_plane_host
        self._node = control_plane_name

    @cached_property
    def _values(self) -> dict[str, str]:
        result = self._host.run(f"cat {self.path}")
        if result.rc != 0:
            if "No such file" in result.stderr:
                return {}
            raise CheckFailed(f"the answers file {self.path} on {self._node}", result.stderr.strip()
                              or f"exit status {result.rc}", what="recorded answers")
        try:
            return parse(result.stdout)
        except ValueError as e:
            raise CheckFailed(f"answers recorded with %answer in {self.path} on {self._node}",
                              f"a file that is {e}: record your answers again", what="recorded answers")

    def get(self, key: str) -> str | None:
        return self._values.get(check_key(key))

    def expect(self, key: str, live: Any, where: str, same: Callable[[str, Any], bool] | None = None) -> None:
        """Pass when the learner's answer is the live value (or `same(given, live)` says so)."""
        given = self.get(key)
        if given is None:
            raise CheckFailed(f"an answer {key!r} (`%answer {self.lab_id} {key} <value>` in the notebook)",
                              "none recorded", what=f"answer {key}")
        ok = same(given, live) if same else given == str(live).strip()
        if not ok:
            raise CheckFailed(f"the value of {where}", given, what=f"answer {key}")
