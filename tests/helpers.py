"""Shared test helpers: throwaway courses with hand-written graders, running the real CLI, the real captures
beside the checkout, bounded waits on a state, and the live modules' shell on a twin and grading on the cluster."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

from kubelab.notebook.execute import environ, run_notebook  # noqa: F401 - environ: the tests' too

# item.stash[CALL_FAILED]: whether the test's own body failed (set in conftest), for fixtures that keep track of
# the state a passing test promises to leave behind
CALL_FAILED = pytest.StashKey[bool]()

REPO = Path(__file__).resolve().parent.parent
SHARED_ENV = "KUBELAB_SHARED"  # where shared/ is when the checkout is not beside it (a git worktree, say)


def shared_realdata(sub: str = "") -> Path:
    """The real captures (shared/realdata/<sub>), read at test time, never copied into the repository: most carry
    no licence. CI lays them out as ../shared beside the repository root; a missing folder fails the test with
    where it looked and how to fix it, never skips it."""
    shared = Path(os.environ.get(SHARED_ENV) or REPO.parent / "shared")
    path = shared / "realdata" / sub
    if not path.exists():
        pytest.fail(f"the real captures are not at {path}: check out shared/ beside the repository "
                    f"({REPO.parent / 'shared'}) or set {SHARED_ENV}=/path/to/shared", pytrace=False)
    return path


def make_course(tmp: Path, grader_source: str, lab_id: str = "lab90", mutate=None) -> Path:
    """A copy of the repository's course.yaml whose only lab is `lab_id`, graded by `grader_source`."""
    data = yaml.safe_load((REPO / "course.yaml").read_text())
    data["labs"] = [{"id": lab_id, "title": "Engine test lab", "notebook": f"{lab_id}.ipynb",
                     "grader": f"{lab_id}_engine.py", "depends_on": [], "points": 10}]
    if mutate:
        mutate(data)
    root = tmp / "course"
    (root / "graders").mkdir(parents=True, exist_ok=True)
    (root / "course.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    (root / "graders" / f"{lab_id}_engine.py").write_text(textwrap.dedent(grader_source))
    return root


# where this host keeps the twins, its caches and its Debian mirror: the CLI under test must use the same ones
HOST_SETTINGS = ("KUBELAB_TWIN_DIR", "KUBELAB_TWIN_INSTANCE", "KUBELAB_CACHE_DIR", "KUBELAB_DEBIAN_MIRROR", "KUBELAB_CLUSTER_KEEP_WORK")


def clean_environ() -> dict[str, str]:
    """This process's environment without what would change what the CLI grades or how (KUBELAB_COURSE,
    KUBELAB_SSH_CONFIG, ... set in CI or a shell, NBGRADER_EXECUTION): a test passes those it means."""
    return {k: v for k, v in os.environ.items()
            if not (k.startswith("KUBELAB_") and k not in HOST_SETTINGS) and k != "NBGRADER_EXECUTION"}


def kubelab(*args: str, cwd: Path | None = None, env: dict | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run the installed `kubelab` command for real and capture what a user would see."""
    full_env = {**clean_environ(), **(env or {})}
    exe = shutil.which("kubelab") or str(Path(sys.executable).parent / "kubelab")
    return subprocess.run([exe, *args], cwd=cwd, env=full_env, capture_output=True, text=True, timeout=timeout)


def execute_notebook(nb, folder: Path, env: dict[str, str], *, timeout: int = 600, allow_errors: bool = False,
                     drop: tuple[str, ...] = ()):
    """Run every cell of `nb` in a real kernel whose working folder is `folder`; returns nb with its outputs.
    The kernel sees `env`, and none of this process's KUBELAB_*/NBGRADER_EXECUTION settings it was not given."""
    kept = clean_environ()
    drop = tuple(set(drop) | {k for k in os.environ if k not in kept and k not in env})
    return run_notebook(nb, folder, env, timeout=timeout, allow_errors=allow_errors, drop=drop)


def wait_for(observe, what: str, *, until=bool, timeout_s: float = 60, interval_s: float = 2):
    """Poll `observe()` until `until(value)` holds; returns that value. Waits on the state, never a fixed time: a
    state that does not come within `timeout_s` (a generous bound, not a speed claim) fails the test with what was
    last seen."""
    import time

    deadline = time.monotonic() + timeout_s
    while True:
        seen = observe()
        if until(seen):
            return seen
        if time.monotonic() >= deadline:
            pytest.fail(f"waited {timeout_s:.0f}s for {what}; last seen: {seen!r}", pytrace=False)
        time.sleep(interval_s)


def playwright_chromium():
    """Playwright's sync API and Debian's chromium for a real-browser test; either missing fails it, saying how to
    install it (never a skip)."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("playwright is missing: pip install playwright (the browser is Debian's chromium)", pytrace=False)
    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.fail("chromium is missing: apt-get install -y chromium", pytrace=False)
    return sync_playwright, chromium


def settled_time() -> dict:
    """run_lab's (and record_lab's) clock for grading a state that stays as it is while the checks poll: a component
    stopped or a file moved on purpose, with nothing running that would put it back. On virtual time a polling
    check (wait_s, eventually()) gives up at once instead of waiting out its whole timeout for nothing; every
    observation is still made live, as often as on real time, only the sleeps between them are skipped. Not for a
    state still on its way (a node about to turn NotReady, a static pod restarting): grade that on real time.

    `run_lab(course, lab, target, **settled_time())`."""
    from kubelab.evidence.replay import ReplayClock

    clock = ReplayClock()
    return {"clock": clock.now, "sleep": clock.sleep}


def load_grader(filename: str):
    """graders/<filename> as a module of its own (not registered in sys.modules), for calling its checks and
    helpers directly."""
    import importlib.util

    path = REPO / "graders" / filename
    spec = importlib.util.spec_from_file_location(f"{path.stem}_under_test", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# -- live lab modules: a command on a twin, a lab graded on the twins' cluster, its results by name ---------------

def ssh(ts, node: str, cmd: str, *, sudo: str | None = "sh", timeout: float = 120,
        input: str | None = None) -> subprocess.CompletedProcess:
    """`cmd` on twin `node` through the TwinSet's ssh config. `sudo`: "sh" runs the whole command line as root
    (`sudo -n sh -c '<cmd>'`: a pipe's every command, `~` is root's home); "first" puts `sudo -n` before it, so
    the lab user's login shell parses it (`~` is that user's home, only the first command of a pipe is root's);
    None runs it as the lab user."""
    remote = {"sh": f"sudo -n sh -c {shlex.quote(cmd)}", "first": f"sudo -n {cmd}", None: cmd}[sudo]
    return subprocess.run(["ssh", "-F", str(ts.ssh_config_file()), node, remote], capture_output=True, text=True,
                          timeout=timeout, input=input)


def ssh_ok(ts, node: str, cmd: str, **kw) -> str:
    """ssh() that must succeed: its stdout."""
    p = ssh(ts, node, cmd, **kw)
    assert p.returncode == 0, (node, cmd, p.stdout[-2000:], p.stderr[-2000:])
    return p.stdout


NOTEBOOK_METADATA = {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}}


LEARNER_KUBECONFIG = "/home/vagrant/.kube/config"


def learner_kubeconfig_missing(ts) -> bool:
    """Whether the lab user has no ~/.kube/config yet: a module whose notebook makes one removes it again."""
    return ssh(ts, "master", f"test -e {LEARNER_KUBECONFIG}").returncode != 0


def remove_lab_objects(ts, namespace: str, answers: str, *, made_kubeconfig: bool) -> list[str]:
    """A lab module's cluster put back as it found it: its namespace deleted (and gone), its answers file and the
    kubeconfig its notebook made removed. What could not be put back."""
    kubectl = "kubectl --kubeconfig=/etc/kubernetes/admin.conf"
    cmd = (f"{kubectl} delete ns {namespace} --ignore-not-found --wait=true --timeout=120s; rm -f {answers}"
           + (f"; rm -f {LEARNER_KUBECONFIG}" if made_kubeconfig else ""))
    problems = []
    p = ssh(ts, "master", cmd, timeout=180)
    if p.returncode != 0:
        problems.append(f"master: {cmd}: {p.stderr.strip()[-200:]}")
    if ssh(ts, "master", f"{kubectl} get ns {namespace}").returncode == 0:
        problems.append(f"namespace {namespace} still there")
    return problems


def solution_cells(notebook: str) -> dict:
    """The cells of solutions/<notebook> (e.g. "lab10/lab10_kubelet.ipynb") by their nbgrader grade_id."""
    import nbformat

    nb = nbformat.read(REPO / "solutions" / notebook, as_version=4)
    return {c.metadata["nbgrader"]["grade_id"]: c for c in nb.cells}


def run_cells_live(cells: list, folder: Path, ts, *, metadata: dict | None = None, timeout: int = 300) -> dict[str, str]:
    """`cells` run in order as one notebook in a real kernel against the twins of `ts` (KUBELAB_SSH_CONFIG, this
    checkout's course), as a learner's notebook runs them; the text each printed, by grade_id."""
    import nbformat

    nb = nbformat.v4.new_notebook(cells=cells, metadata=metadata or NOTEBOOK_METADATA)
    env = {"KUBELAB_SSH_CONFIG": str(ts.ssh_config_file()), "KUBELAB_COURSE": str(REPO)}
    execute_notebook(nb, folder, env, timeout=timeout, drop=("NBGRADER_EXECUTION",))
    return {c.metadata["nbgrader"]["grade_id"]: "".join(o.get("text", "") for o in c.outputs) for c in nb.cells}


def on_node(node: str, *, must_succeed: bool = False, **defaults):
    """ssh(ts, node, cmd) (or ssh_ok) bound to one node and a module's own defaults, called as f(ts, cmd, **kw):
    for a module that runs everything on the control plane, e.g. `_ssh = on_node("master", sudo="first")`."""
    run = ssh_ok if must_succeed else ssh
    return lambda ts, cmd, **kw: run(ts, node, cmd, **{**defaults, **kw})


def grade_live(state: dict, lab: str, *, record: Path | None = None, settled: bool = False):
    """`lab` graded live on the cluster of `state` (a shared_cluster-like dict: "course", "ts"); with `record`, also
    recorded into that evidence file. `settled`: on virtual time, for a state that stays as it is while the checks
    poll (settled_time)."""
    from kubelab.engine.runner import run_lab
    from kubelab.engine.targets import SshConfigTarget
    from kubelab.evidence import record_lab, save
    from kubelab.evidence.replay import ReplayClock

    target = SshConfigTarget(state["course"], state["ts"].ssh_config_file())
    try:
        if record is None:
            return run_lab(state["course"], lab, target, **(settled_time() if settled else {}))
        live, evidence = record_lab(state["course"], lab, target, clock=ReplayClock() if settled else None)
        save(evidence, record)
        return live
    finally:
        target.close()


def by_id(result) -> dict:
    """The checks by id: "mirror_pod[cluster]"."""
    return {c.id: c for c in result.checks}


def by_check(result) -> dict:
    """The checks by name without the node: "mirror_pod" (for labs whose checks each run on one node)."""
    return {c.check: c for c in result.checks}


def not_passing(result, key: str = "id") -> dict[str, str]:
    """{id (or check name, key="check"): status} of every check that did not pass."""
    return {getattr(c, key): str(c.status) for c in result.checks if str(c.status) != "pass"}


def brief(result) -> list[tuple]:
    """Each check as (id, status, expected, actual): what an assertion message shows of a whole run."""
    return [(c.id, str(c.status), c.expected, c.actual) for c in result.checks]
