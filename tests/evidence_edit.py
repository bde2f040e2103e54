"""A real recording changed one observation at a time into what a learner's mistake shows, then replayed through the
engine: the scaffold of the lab evidence tests (test_lab10_evidence.py and after). A subclass names its recording,
lab and course; what is particular to a lab's observations stays in that subclass."""

from __future__ import annotations

import json
from pathlib import Path

from kubelab.course import LoadedCourse
from kubelab.evidence import replay_lab, save
from kubelab.evidence.model import ApiObservation, CommandObservation, load


class EvidenceEdit:
    recording: Path
    lab: str
    course: LoadedCourse

    def __init__(self):
        self.ev = load(self.recording)

    # -- commands on a node ----------------------------------------------------------------------
    def cmd(self, node: str, cmd: str, stdout: str = "", rc: int = 0, stderr: str = "") -> "EvidenceEdit":
        """`cmd`'s observation on `node` (exactly that command line) replaced, or added when it was not made."""
        obs = self.ev.nodes.setdefault(node, [])
        obs[:] = [o for o in obs if o.cmd != cmd]
        obs.append(CommandObservation(cmd=cmd, rc=rc, stdout=stdout, stderr=stderr))
        return self

    def stdout(self, node: str, cmd: str) -> str:
        """What exactly the command line `cmd` printed on `node`."""
        return next(o.stdout for o in self.ev.nodes[node] if o.cmd == cmd)

    def starting_with(self, node: str, prefix: str) -> list[CommandObservation]:
        """The observations on `node` of every command line starting with `prefix` (one that names an ID, say)."""
        hits = [o for o in self.ev.nodes[node] if o.cmd.startswith(prefix)]
        assert hits, (prefix, [o.cmd for o in self.ev.nodes[node]])
        return hits

    def stdout_starting_with(self, node: str, prefix: str) -> str:
        return self.starting_with(node, prefix)[0].stdout

    def set_starting_with(self, node: str, prefix: str, stdout: str = "", rc: int = 0,
                          stderr: str = "") -> "EvidenceEdit":
        for o in self.starting_with(node, prefix):
            o.stdout, o.rc, o.stderr = stdout, rc, stderr
        return self

    def cmd_containing(self, node: str, part: str) -> str:
        hits = [o.cmd for o in self.ev.nodes[node] if part in o.cmd]
        assert hits, (node, part, [o.cmd for o in self.ev.nodes[node]])
        return hits[0]

    # -- API reads ---------------------------------------------------------------------------------
    def api(self, path: str, fn=None, status: int | None = None, data: str | None = None) -> "EvidenceEdit":
        """Every read of `path`: its JSON changed in place by `fn`, or its answer replaced by `status` and `data`."""
        hits = [o for o in self.ev.api if o.path == path]
        assert hits, (path, [o.path for o in self.ev.api])
        for o in hits:
            if fn:
                d = json.loads(o.data)
                fn(d)
                o.data = json.dumps(d)
            if status is not None:
                o.status, o.data = status, data or ""
        return self

    def api_path(self, part: str) -> str:
        hits = [o.path for o in self.ev.api if part in o.path]
        assert hits, (part, [o.path for o in self.ev.api])
        return hits[0]

    def api_data(self, path: str):
        return json.loads(next(o.data for o in self.ev.api if o.path == path))

    def add_api(self, path: str, data: dict) -> "EvidenceEdit":
        self.ev.api = [o for o in self.ev.api if o.path != path]
        self.ev.api.append(ApiObservation(method="GET", path=path, status=200, data=json.dumps(data)))
        return self

    # -- the replay --------------------------------------------------------------------------------
    def replay(self, tmp_path: Path, course: LoadedCourse | None = None):
        """The edited evidence saved and replayed (against `course`, by default the subclass's); an edit that leaves
        a check unable to observe is the test's mistake, never a result."""
        result, _ = replay_lab(course or self.course, self.lab, save(self.ev, tmp_path / "edited.json"))
        errors = [(c.id, c.message) for c in result.checks if str(c.status) == "error"]
        assert not errors, errors
        return result
