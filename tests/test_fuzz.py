"""Fuzzing every file and argument a person hands kubelab: course.yaml, evidence, a roster, doctor facts and
the command line. Hypothesis generates malformed inputs (mutations of the real files and arbitrary data);
each must end in exit 2 (bad input) — or 0/1 where the input happens to be valid — with one `error:` line
(lint: one line per problem), never a traceback, within Hypothesis' per-example deadline.

Proof: the real `kubelab` command, in process (tests/cli_inproc.py); the real course.yaml and a real
evidence file recorded on this machine (local target) as seeds. The counts of inputs tried and of clean
exits are printed when the module ends (pytest -s) and written to $KUBELAB_FUZZ_COUNTS when it is set; each
kind must reach 60 inputs (300 in all, KUBELAB_FUZZ_EXAMPLES per kind, default 80), every one clean."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections import Counter
from datetime import timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cli_inproc import clean, parser_refused, run
from helpers import REPO, make_course
from kubelab.course import load_course
from kubelab.engine.targets import LocalTarget
from kubelab.errors import UsageError
from kubelab.evidence import record_lab, save

EXAMPLES = int(os.environ.get("KUBELAB_FUZZ_EXAMPLES", "80"))
# The same inputs every run by default (derandomize), so a red CI is a regression, not the luck of the draw;
# KUBELAB_FUZZ_RANDOM=1 explores new inputs (with KUBELAB_FUZZ_EXAMPLES=2000, say) when hunting bugs.
FUZZ = settings(max_examples=EXAMPLES, deadline=timedelta(seconds=20), database=None,
                derandomize=os.environ.get("KUBELAB_FUZZ_RANDOM") != "1",
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                       HealthCheck.data_too_large])
COUNTS: Counter = Counter()
COURSE_TEXT = (REPO / "course.yaml").read_text()
GRADER = '''
from kubelab.engine import check, expect_equal

@check("Kernel is Linux", on="all", points=1, hint="h")
def test_linux(host):
    expect_equal(host.system_info.type, "linux")
'''


MIN_PER_KIND = 60  # five kinds: at least 300 generated inputs per run


def assert_enough(kind: str) -> None:
    """Each kind stands on its own (tests may run in any order): enough inputs tried, every one clean."""
    assert COUNTS[f"{kind} tried"] >= min(MIN_PER_KIND, EXAMPLES - 5), dict(COUNTS)
    assert COUNTS[f"{kind} clean"] == COUNTS[f"{kind} tried"], dict(COUNTS)


def tally(kind: str, ok: bool) -> bool:
    COUNTS[f"{kind} tried"] += 1
    COUNTS[f"{kind} clean"] += int(ok)
    return ok


# -- generators ------------------------------------------------------------------------------------

# YAML/JSON scalars as they would be written (text, so that a 5,000-digit number never becomes a Python int
# in the test itself)
scalars = st.one_of(st.sampled_from(["true", "false", "null", "~", ".inf", "-.nan", "0x1F", "1e400", "0o17", "''",
                                     "[]", "{}", "&a x", "*a", "!!python/object:os.system x", "3232249866"]),
                    st.integers(-10 ** 12, 10 ** 12).map(str), st.floats().map(repr), st.text(max_size=30),
                    st.integers(4301, 6000).map(lambda n: "9" * n))
json_values = st.recursive(st.one_of(st.none(), st.booleans(), st.integers(-10 ** 30, 10 ** 30),
                                     st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=20)),
                           lambda kids: st.one_of(st.lists(kids, max_size=4),
                                                  st.dictionaries(st.text(max_size=10), kids, max_size=4)),
                           max_leaves=20)
odd_text = st.one_of(
    st.text(max_size=200),
    st.binary(max_size=200).map(lambda b: b.decode("latin-1")),
    st.integers(1, 1500).map(lambda n: "[" * n + "]" * n),
    st.integers(1, 1500).map(lambda n: "a:\n" + "".join(" " * i + "- b:\n" for i in range(0, n, 2))),
    st.integers(4301, 6000).map(lambda n: "9" * n),
)


@st.composite
def mutated(draw, seed: str):
    """The seed text, changed the way a hand edit, a bad copy or a forger would change it."""
    lines = seed.splitlines(keepends=True)
    how = draw(st.sampled_from(["truncate", "delete", "duplicate", "replace", "insert", "bytes", "deep", "bigint"]))
    i = draw(st.integers(0, max(0, len(lines) - 1)))
    if how == "truncate":
        return seed[:draw(st.integers(0, len(seed) - 1))]
    if how == "delete":
        return "".join(lines[:i] + lines[i + 1:])
    if how == "duplicate":
        j = draw(st.integers(i, min(len(lines), i + 8)))
        return "".join(lines[:j] + lines[i:j] + lines[j:])
    if how == "replace":
        line = lines[i]
        head = line.split(":", 1)[0] + ":" if ":" in line else line[: len(line) // 2]
        return "".join(lines[:i] + [head + " " + draw(scalars) + "\n"] + lines[i + 1:])
    if how == "insert":
        return "".join(lines[:i] + [draw(odd_text) + "\n"] + lines[i:])
    if how == "bytes":
        pos = draw(st.integers(0, len(seed) - 1))
        return seed[:pos] + draw(st.text(min_size=1, max_size=8)) + seed[pos + 1:]
    if how == "deep":
        n = draw(st.integers(65, 3000))
        return "".join(lines[:i] + ["x: " + "[" * n + "]" * n + "\n"] + lines[i:])
    return "".join(lines[:i] + ["big: " + "7" * draw(st.integers(4301, 6000)) + "\n"] + lines[i:])


@pytest.fixture(scope="module")
def work():
    base = Path(tempfile.mkdtemp(prefix="kubelab-fuzz-"))
    course = load_course(make_course(base, GRADER))
    evidence = save(record_lab(course, "lab90", LocalTarget(course))[1], base / "seed.json").read_text()
    yield {"base": base, "course": course, "evidence": evidence}
    shutil.rmtree(base, ignore_errors=True)


def _write(path: Path, text: str) -> Path:
    path.write_bytes(text.encode("utf-8", "surrogatepass"))
    return path


# -- course.yaml -----------------------------------------------------------------------------------

def test_fuzz_course_yaml(work):
    @FUZZ
    @given(text=st.one_of(mutated(COURSE_TEXT), odd_text, json_values.map(lambda v: json.dumps(v))))
    def one(text):
        root = work["base"] / "course-fuzz"
        root.mkdir(exist_ok=True)
        _write(root / "course.yaml", text)
        r = run("lint", "--course", root)
        # a mutation that leaves the course valid still lacks graders and notebooks here: lint says so, exit 2
        assert tally("course.yaml", clean(r)), r

    one()
    assert_enough("course.yaml")


# -- evidence --------------------------------------------------------------------------------------

@st.composite
def forged_json(draw, seed: str):
    """The evidence, one field replaced with arbitrary JSON (the digest then no longer matches, or is
    recomputed: both must end cleanly)."""
    data = json.loads(seed)
    key = draw(st.sampled_from(sorted(data)))
    data[key] = draw(json_values)
    if draw(st.booleans()):
        import hashlib

        body = {k: v for k, v in data.items() if k != "digest"}
        data["digest"] = "sha256:" + hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":"),
                                                                ensure_ascii=False).encode()).hexdigest()
    return json.dumps(data)


def test_fuzz_evidence(work):
    @FUZZ
    @given(data=st.data())
    def one(data):
        text = data.draw(st.one_of(mutated(work["evidence"]), forged_json(work["evidence"]), odd_text,
                                   json_values.map(json.dumps)))
        path = _write(work["base"] / "ev-fuzz.json", text)
        r = run("grade", "lab90", "--replay", path, "--course", work["course"].root)
        # 2: refused; 0/1/3/4: the input was still readable evidence (a forged field the digest covers) and graded
        ok = clean(r) if r.code == 2 else (r.crash is None and r.code in (0, 1, 3, 4) and "Traceback" not in r.output)
        assert tally("evidence", ok), r

    one()
    assert_enough("evidence")


# -- roster ----------------------------------------------------------------------------------------

cells = st.one_of(st.text(max_size=12), st.sampled_from(["learner", "ssh_config", "", " ", '"', "a,b", "x\ny",
                                                         "alice", "../../etc/shadow", "/dev/zero", "[/x]"]))


def test_fuzz_roster(work):
    @FUZZ
    @given(rows=st.lists(st.lists(cells, max_size=4), max_size=6), header=st.booleans(), raw=st.booleans(),
           junk=odd_text)
    def one(rows, header, raw, junk):
        from kubelab.classroom.learners import read_roster

        folder = work["base"] / "roster-fuzz"
        folder.mkdir(exist_ok=True)
        lines = (["learner,ssh_config"] if header else []) + [",".join(r) for r in rows]
        roster = _write(folder / "roster.csv", junk if raw else "\n".join(lines) + "\n")
        try:
            read_roster(roster)
            COUNTS["roster valid (not run: it would grade live)"] += 1
            return
        except UsageError:
            pass
        r = run("class", "grade", "--lab", "lab90", "--roster", roster, "--course", work["course"].root,
                "--out", work["base"] / "out")
        assert tally("roster", clean(r)), r

    one()
    assert_enough("roster")


# -- doctor facts ----------------------------------------------------------------------------------

FACTS = {"os": "linux", "arch": "amd64", "machine": "x86_64", "vagrant_version": "2.4.9",
         "providers": {"virtualbox": "7.1.4r165100"}, "free_memory_mb": 16000, "total_memory_mb": 32000, "cpus": 8,
         "networks": [{"interface": "eth0", "cidr": "192.168.1.23/24"}], "vbox_networks_conf": None}


@st.composite
def facts_text(draw):
    data = dict(FACTS)
    for key in draw(st.lists(st.sampled_from(sorted(FACTS) + ["extra", "probe_notes", "kvm"]), max_size=3)):
        data[key] = draw(json_values)
    text = json.dumps(data)
    if draw(st.booleans()):  # a raw scalar where a value was: a huge number, NaN, a bare word
        key = draw(st.sampled_from(sorted(FACTS)))
        text = text.replace(f'"{key}": ' + json.dumps(data.get(key)), f'"{key}": ' + draw(scalars), 1)
    return text


def test_fuzz_doctor_facts(work):
    @FUZZ
    @given(text=st.one_of(facts_text(), odd_text, mutated(json.dumps(FACTS, indent=1))))
    def one(text):
        path = _write(work["base"] / "facts-fuzz.json", text)
        r = run("doctor", "--course", REPO, "--facts", path)
        # 2: refused; 0/1: the facts were valid and judged (ready / something to fix)
        ok = clean(r) if r.code == 2 else (r.crash is None and r.code in (0, 1) and "Traceback" not in r.output)
        assert tally("doctor facts", ok), r

    one()
    assert_enough("doctor facts")


# -- command line ----------------------------------------------------------------------------------

TOKENS = ["grade", "lint", "class", "doctor", "lab01", "lab90", "lab99", "--replay", "--course", "--json",
          "--junit", "--timeout", "--jobs", "--lab", "--submissions", "--roster", "--out", "--facts", "--provider",
          "--force", "-j", "inf", "nan", "-1", "0", "1e999", "[/x]", "Jöhn Dœ", "", "--", "-", "/dev/zero",
          "/nonexistent/x", "virtualbox", "banana"]


def test_fuzz_command_line(work):
    @FUZZ
    @given(argv=st.lists(st.one_of(st.sampled_from(TOKENS), st.text(max_size=12)), min_size=1, max_size=7))
    def one(argv):
        # only commands that read what they are given: never `twin`, `snapshot`, `url` or a live grade
        first = argv[0] if argv[0] in ("grade", "lint", "class", "doctor") else "lint"
        argv = [first, *argv[1:]]
        if first == "grade" and not ({"--replay"} & set(argv)):
            argv += ["--replay", "/nonexistent/ev.json"]
        if first == "class":
            argv = ["class", "grade", *argv[1:]]
            if not ({"--submissions", "--roster"} & set(argv)):
                argv += ["--submissions", "/nonexistent/subs"]
        if first == "doctor" and "--facts" not in argv:
            argv += ["--facts", "/nonexistent/facts.json"]
        out = work["base"] / "cli-out"
        r = run(*argv, "--out" if first == "class" else "--course", out if first == "class" else work["course"].root)
        ok = (clean(r, codes=(2, 3)) or parser_refused(r)
              or (r.crash is None and r.code in (0, 1, 3, 4) and "Traceback" not in r.output))
        assert tally("command line", ok), (argv, r)

    one()
    assert_enough("command line")


@pytest.fixture(scope="module", autouse=True)
def counts_report():
    """The closing note's figures: inputs tried and clean exits per kind, printed (pytest -s) and written to
    $KUBELAB_FUZZ_COUNTS when set, once the module has run (in any order)."""
    yield
    tried = {k[:-6]: v for k, v in COUNTS.items() if k.endswith(" tried")}
    cleaned = {k[:-6]: v for k, v in COUNTS.items() if k.endswith(" clean")}
    report = {"tried": tried, "clean": cleaned, "total_tried": sum(tried.values()),
              "total_clean": sum(cleaned.values()),
              "valid_rosters_skipped": COUNTS.get("roster valid (not run: it would grade live)", 0)}
    print("\nfuzz counts:", json.dumps(report))
    dest = os.environ.get("KUBELAB_FUZZ_COUNTS")
    if dest:
        Path(dest).write_text(json.dumps(report, indent=1) + "\n")
