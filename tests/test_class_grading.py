"""`kubelab class grade`: a whole class graded in parallel from evidence, and live from a roster.

Proof:
- evidence: 40 learners derived from two real recordings of Lab 1 on the lab twins (fixture
  `lab01_evidence`: the notebooks' own grading cell on fresh and on prepared twins). Each learner's file
  is that real evidence re-sealed with `kubelab.evidence.model.save` after changing its identity (own
  machine-ids, two learners sharing one, two sharing a kube-system UID) and, for one group, one recorded
  observation (the worker's /proc/sys/net/ipv4/ip_forward reads 0): every grade still comes from
  replaying real observations through the real grader. One learner's file is truncated, one learner
  handed in none. Graded by the real `kubelab class grade` command in worker processes.
- live: the real command against the real twins over SSH (two learners whose ssh-config points at the
  twins), a learner whose nodes refuse connections (127.0.0.1 port 1), and one whose "node" accepts TCP
  but never speaks SSH (a listening socket in this test) to prove the per-learner timeout.
- bad input: the real command; exit 2 and one `error:` line naming the roster's line and column."""

from __future__ import annotations

import csv
import json
import socket
import struct
import threading
from pathlib import Path

import pytest

from helpers import REPO, kubelab
from kubelab.evidence.model import load, save

LAB = "lab01"
POINTS = 10.0
N_LEARNERS = 40
CORRUPT, MISSING = "learner13", "learner29"
SHARED_MACHINE = ("learner05", "learner17")
SHARED_CLUSTER = ("learner08", "learner09")


def ssh_config_to(port: int) -> str:
    return "".join(f"Host {n}\n  HostName 127.0.0.1\n  Port {port}\n  User vagrant\n  StrictHostKeyChecking no\n"
                   "  UserKnownHostsFile /dev/null\n" for n in ("master", "worker"))


def class_grade(*args: str, timeout: float = 600):
    return kubelab("class", "grade", "--lab", LAB, "--course", str(REPO), *args, timeout=timeout)


# -- the class: 40 learners from two real recordings ---------------------------------------------

def forwarding_off(evidence):
    """The passing recording, but the worker's IP forwarding reads 0 (one observation changed)."""
    nodes = {k: [o.model_copy() for o in v] for k, v in evidence.nodes.items()}
    changed = 0
    for obs in nodes["worker"]:
        if obs.cmd.endswith("/proc/sys/net/ipv4/ip_forward"):
            obs.stdout = obs.stdout.replace("1", "0")
            changed += 1
    assert changed, "the recording must hold the observation this variant changes"
    return rerecorded(evidence.model_copy(update={"nodes": nodes}))


def rerecorded(evidence):
    """The result a recording of the changed state would have stored: replayed from its observations
    (without it, the file is exactly the forgery kubelab flags: observations edited after recording)."""
    from kubelab.course import load_course
    from kubelab.engine.runner import run_lab
    from kubelab.evidence.replay import ReplayClock, ReplayTarget

    course = load_course(REPO)
    clock = ReplayClock()
    result = run_lab(course, LAB, ReplayTarget(course, evidence), clock=clock.now, sleep=clock.sleep)
    return evidence.model_copy(update={"result": result.to_dict()})


def expected_statuses(result: dict, override: dict | None = None) -> dict[str, str]:
    statuses = {c["id"]: c["status"] for c in result["checks"]}
    statuses.update(override or {})
    return statuses


@pytest.fixture(scope="module")
def klass(lab01_evidence, tmp_path_factory):
    root = tmp_path_factory.mktemp("class")
    subs = root / "submitted"
    failing, passing = load(lab01_evidence.failing.evidence), load(lab01_evidence.passing.evidence)
    variants = {
        "passing": (passing, expected_statuses(lab01_evidence.passing.result)),
        "failing": (failing, expected_statuses(lab01_evidence.failing.result)),
        "forwarding-off": (forwarding_off(passing),
                           expected_statuses(lab01_evidence.passing.result, {"ip_forward_live[worker]": "fail"})),
    }
    expected: dict[str, dict] = {}
    for i in range(N_LEARNERS):
        learner = f"learner{i:02d}"
        if learner == MISSING:
            (subs / learner / LAB).mkdir(parents=True)
            (subs / learner / LAB / "lab01_prepare_nodes.ipynb").write_text("{}")
            expected[learner] = {"status": "missing"}
            continue
        name = ("passing", "failing", "forwarding-off")[i % 3]
        evidence, statuses = variants[name]
        # own machine-ids; the recorded hostnames stay (kubelab flags an identity contradicting `hostname`)
        identity = {"nodes": {n: {"hostname": evidence.identity["nodes"][n]["hostname"],
                                  "machine_id": f"{i:08x}{k:024x}"}
                              for k, n in enumerate(("master", "worker"))},
                    "cluster": {"kube_system_uid": None, "etcd_cluster_id": None}}
        if learner in SHARED_MACHINE:
            identity["nodes"]["worker"]["machine_id"] = "5ba4ed" + "0" * 26
        if learner in SHARED_CLUSTER:
            identity["cluster"]["kube_system_uid"] = "0c1d2e3f-4a5b-6c7d-8e9f-0a1b2c3d4e5f"
        variant = evidence.model_copy(update={"identity": identity})
        # two layouts: nbgrader's DIR/<student>/<lab>/<lab>.evidence.json, and DIR/<learner>.json
        path = subs / f"{learner}.json" if i % 5 == 4 else subs / learner / LAB / "lab01.evidence.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        save(variant, path)
        if learner == CORRUPT:
            path.write_text(path.read_text()[:5000])
            expected[learner] = {"status": "error"}
            continue
        passed = sum(1 for s in statuses.values() if s == "pass")
        raw = sum(c["max_points"] for c in passing.result["checks"] if statuses[c["id"]] == "pass")
        expected[learner] = {"status": "passed" if passed == len(statuses) else "failed",
                             "score": round(raw / passing.result["max_score"] * POINTS, 2), "checks": statuses}
    return {"root": root, "subs": subs, "expected": expected, "titles": {c["check"]: c["title"] for c in passing.result["checks"]}}


@pytest.fixture(scope="module")
def first_run(klass):
    out = klass["root"] / "out"
    p = class_grade("--submissions", str(klass["subs"]), "--out", str(out), "--jobs", "4")
    return p, out


def read_csv(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


@pytest.mark.twins
def test_gradebook_has_every_learner_with_the_right_score(first_run, klass):
    p, out = first_run
    assert p.returncode == 3, p.stdout + p.stderr  # one learner could not be graded (the truncated file)
    rows = {r["learner"]: r for r in read_csv(out / "gradebook.csv")}
    assert list(rows) == sorted(klass["expected"]) and len(rows) == N_LEARNERS
    for learner, exp in klass["expected"].items():
        row = rows[learner]
        assert row["lab"] == LAB and float(row["max"]) == POINTS and row["status"] == exp["status"], row
        if exp["status"] in ("passed", "failed"):
            assert float(row["score"]) == pytest.approx(exp["score"], abs=0.01), row
        elif exp["status"] == "missing":
            assert float(row["score"]) == 0
        else:
            assert row["score"] == "", "a learner who could not be graded has no score, not a zero"
    assert {r["status"] for r in rows.values()} == {"passed", "failed", "missing", "error"}


@pytest.mark.twins
def test_one_json_per_learner_with_its_result(first_run, klass):
    _, out = first_run
    files = sorted((out / "learners").glob("*.json"))
    assert [f.stem for f in files] == sorted(klass["expected"])
    for learner, exp in klass["expected"].items():
        rec = json.loads((out / "learners" / f"{learner}.json").read_text())
        assert rec["learner"] == learner and rec["lab"] == LAB and rec["status"] == exp["status"]
        if "checks" in exp:
            assert {c["id"]: c["status"] for c in rec["result"]["checks"]} == exp["checks"]
            assert rec["input_digest"].startswith("sha256:") and rec["mode"] == "evidence"


@pytest.mark.twins
def test_a_corrupt_file_is_that_learners_one_line_error_only(first_run):
    p, out = first_run
    rec = json.loads((out / "learners" / f"{CORRUPT}.json").read_text())
    assert rec["status"] == "error" and rec["error_kind"] == "evidence" and rec["score"] is None
    assert "truncated" in rec["reason"] and "\n" not in rec["reason"]
    assert "Traceback" not in p.stdout + p.stderr
    assert "1 learner(s) could not be graded" in p.stdout


@pytest.mark.twins
def test_pass_rates_csv_and_png(first_run, klass):
    _, out = first_run
    rows = read_csv(out / "pass_rates.csv")
    graded = {l: e for l, e in klass["expected"].items() if "checks" in e}
    assert [r["check"] for r in rows] == list(klass["titles"])
    for r in rows:
        per_learner = [[s for cid, s in e["checks"].items() if cid.startswith(r["check"] + "[")] for e in graded.values()]
        passed = sum(1 for statuses in per_learner if all(s == "pass" for s in statuses))
        assert r["title"] == klass["titles"][r["check"]]
        assert (int(r["passed"]), int(r["learners"])) == (passed, len(graded)), r
        assert float(r["pass_rate"]) == pytest.approx(passed / len(graded), abs=1e-4)
    # the class differs on some checks, and agrees on others
    assert {float(r["pass_rate"]) for r in rows} - {0.0, 1.0}
    png = (out / "pass_rates.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", png[16:24])
    assert width >= 600 and height >= 100 + 30 * len(rows)


@pytest.mark.twins
def test_copy_detection_flags_shared_machine_id_and_cluster(first_run):
    p, out = first_run
    report = json.loads((out / "report.json").read_text())
    flags = {(f["kind"], tuple(f["learners"])) for f in report["copies"]}
    assert flags == {("machine-id", SHARED_MACHINE), ("kube-system-uid", SHARED_CLUSTER)}, report["copies"]
    machine = next(f for f in report["copies"] if f["kind"] == "machine-id")
    assert machine["where"] == {SHARED_MACHINE[0]: ["worker"], SHARED_MACHINE[1]: ["worker"]}
    assert report["by_status"]["missing"] == 1 and report["by_status"]["error"] == 1
    md = (out / "report.md").read_text()
    assert "## Possible copies" in md and "learner05 (worker); learner17 (worker)" in md
    assert "possible copy: 2 learners share machine-id" in p.stdout


@pytest.mark.twins
def test_rerun_resumes_and_force_regrades(first_run, klass):
    _, out = first_run
    subs = klass["subs"]
    before = json.loads((out / "learners" / "learner00.json").read_text())
    p = class_grade("--submissions", str(subs), "--out", str(out))
    assert p.returncode == 3
    run = json.loads((out / "report.json").read_text())["this_run"]
    # every learner with a result is skipped; the one whose evidence could not be read is tried again
    assert (run["graded"], run["skipped"]) == (1, N_LEARNERS - 1)
    assert json.loads((out / "learners" / "learner00.json").read_text())["graded_at"] == before["graded_at"]

    # a learner hands in new evidence: only that learner (and the error) are graded again
    changed = subs / "learner00" / LAB / "lab01.evidence.json"
    ev = load(changed)
    save(ev.model_copy(update={"recorded_at": "2026-12-01T00:00:00+00:00"}), changed)
    p = class_grade("--submissions", str(subs), "--out", str(out))
    assert p.returncode == 3, p.stdout + p.stderr  # the truncated file is still there: still not graded
    run = json.loads((out / "report.json").read_text())["this_run"]
    assert (run["graded"], run["skipped"]) == (2, N_LEARNERS - 2)

    p = class_grade("--submissions", str(subs), "--out", str(out), "--force")
    assert p.returncode == 3, p.stdout + p.stderr
    run = json.loads((out / "report.json").read_text())["this_run"]
    assert (run["graded"], run["skipped"]) == (N_LEARNERS, 0)
    assert len(read_csv(out / "gradebook.csv")) == N_LEARNERS


# -- live, from a roster ---------------------------------------------------------------------------

class SilentNode:
    """Accepts TCP connections and never says a word: an SSH connect to it hangs until the timeout."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.conns: list[socket.socket] = []
        self.stop = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        self.sock.settimeout(0.2)
        while not self.stop:
            try:
                self.conns.append(self.sock.accept()[0])
            except OSError:
                continue

    def close(self):
        self.stop = True
        for c in self.conns:
            c.close()
        self.sock.close()


@pytest.mark.twins
def test_live_roster_grades_twins_and_reports_unreachable_learners(twins, tmp_path):
    shared = tmp_path / "twins.ssh"
    shared.write_text(twins.ssh_config_file().read_text())
    (tmp_path / "offline.ssh").write_text(ssh_config_to(1))
    (tmp_path / "roster.csv").write_text("learner,ssh_config,email\npair-a,twins.ssh,a@example.org\n"
                                         "offline,offline.ssh,o@example.org\npair-b," + str(shared) + ",b@example.org\n")
    # The twins are in whatever state the modules before this one left them: the status they imply is read
    # first through the one-learner path (`kubelab grade`, no class machinery); grading is read-only, so the class
    # run sees the same state. Both learners who hand in these twins must get exactly that.
    direct = tmp_path / "direct.json"
    r = kubelab("grade", LAB, "--ssh-config", str(shared), "--json", str(direct), "--course", str(REPO))
    implied = json.loads(direct.read_text())
    assert r.returncode == {"passed": 0, "failed": 1}[implied["status"]], r.stdout + r.stderr
    out = tmp_path / "out"
    p = class_grade("--roster", str(tmp_path / "roster.csv"), "--out", str(out), "--jobs", "3", "--timeout", "180")
    assert p.returncode == 3, p.stdout + p.stderr
    rows = {r["learner"]: r for r in read_csv(out / "gradebook.csv")}
    assert rows["offline"]["status"] == "error" and rows["offline"]["score"] == ""
    offline = json.loads((out / "learners" / "offline.json").read_text())
    assert offline["error_kind"] == "infrastructure" and "cannot reach" in offline["reason"]
    for learner in ("pair-a", "pair-b"):
        assert rows[learner]["status"] == implied["status"], rows[learner]
        rec = json.loads((out / "learners" / f"{learner}.json").read_text())
        assert rec["raw_score"] == implied["score"], rec
        assert rec["mode"] == "live" and rec["identity"]["nodes"]["master"]["machine_id"]
        # the live grade left its evidence, which replays to the same result
        evidence = out / "evidence" / f"{learner}.{LAB}.evidence.json"
        replayed = tmp_path / f"{learner}.replay.json"
        r = kubelab("grade", LAB, "--replay", str(evidence), "--json", str(replayed), "--course", str(REPO))
        # the one exit code that status implies; a flag (exit 4) on a live recording would be a false one
        assert r.returncode == {"passed": 0, "failed": 1}[rows[learner]["status"]], r.stderr
        assert json.loads(replayed.read_text())["score"] == rec["raw_score"]
    assert rows["pair-a"]["score"] == rows["pair-b"]["score"]
    # both learners graded the very same machines: copy detection says so
    report = json.loads((out / "report.json").read_text())
    assert any(f["kind"] == "machine-id" and f["learners"] == ["pair-a", "pair-b"] for f in report["copies"])


def test_live_timeout_and_refused_are_errors_others_kept(tmp_path):
    silent = SilentNode()
    try:
        (tmp_path / "silent.ssh").write_text(ssh_config_to(silent.port))
        (tmp_path / "offline.ssh").write_text(ssh_config_to(1))
        (tmp_path / "roster.csv").write_text("learner,ssh_config\nsilent,silent.ssh\noffline,offline.ssh\n")
        out = tmp_path / "out"
        p = class_grade("--roster", str(tmp_path / "roster.csv"), "--out", str(out), "--timeout", "3", timeout=120)
    finally:
        silent.close()
    assert p.returncode == 3, p.stdout + p.stderr
    silent_rec = json.loads((out / "learners" / "silent.json").read_text())
    assert silent_rec["status"] == "error" and silent_rec["error_kind"] == "timeout", silent_rec
    assert silent_rec["reason"].startswith("timed out after 3s")
    offline = json.loads((out / "learners" / "offline.json").read_text())
    assert offline["status"] == "error" and offline["error_kind"] == "infrastructure"
    assert len(read_csv(out / "gradebook.csv")) == 2


# -- bad input: exit 2, one line ------------------------------------------------------------------

@pytest.mark.parametrize("roster, words", [
    ("name,ssh_config\nann,a.ssh\n", "roster roster.csv line 1: no column learner"),
    ("learner,ssh_config\nann,a.ssh\n,a.ssh\n", "roster roster.csv line 3, column learner: empty"),
    ("learner,ssh_config\nann,a.ssh\nann,a.ssh\n", "line 3, column learner: 'ann' is listed again (first on line 2)"),
    ("learner,ssh_config\nann,a.ssh\nbob,\n", "line 3, column ssh_config: empty"),
    ("learner,ssh_config\nann,a.ssh\nbob,nowhere.ssh\n", "line 3, column ssh_config:"),
    ("learner,ssh_config\nan n,a.ssh\n", "line 2, column learner: 'an n' is not a valid learner name"),
    ("learner,ssh_config\n", "lists no learners"),
])
def test_bad_roster_is_exit_2_one_line(tmp_path, roster, words):
    (tmp_path / "a.ssh").write_text(ssh_config_to(1))
    (tmp_path / "roster.csv").write_text(roster)
    p = class_grade("--roster", str(tmp_path / "roster.csv"), "--out", str(tmp_path / "out"), timeout=120)
    assert p.returncode == 2, p.stdout + p.stderr
    lines = p.stderr.strip().splitlines()
    assert lines[0].startswith("error: ") and words in lines[0], lines
    assert len(lines) == 2 and lines[1].startswith("fix: ") and "Traceback" not in p.stderr
    assert not (tmp_path / "out" / "gradebook.csv").exists()


@pytest.mark.parametrize("args, words", [
    (["--submissions", "/nonexistent/submitted"], "submissions folder /nonexistent/submitted does not exist"),
    ([], "pass exactly one of --submissions"),
])
def test_bad_usage_is_exit_2_one_line(tmp_path, args, words):
    p = class_grade(*args, "--out", str(tmp_path / "out"), timeout=120)
    assert p.returncode == 2 and words in p.stderr.splitlines()[0], p.stderr
    assert "Traceback" not in p.stderr
