"""Shared fixtures. `twins`: the course's lab twins, booted once per test session (once per worker when the suite
runs on pytest-xdist workers: tests/parallel.py) and always torn down."""

from __future__ import annotations

import atexit
import os
import shutil
import signal
import tempfile
from pathlib import Path

import pytest

from helpers import CALL_FAILED
from kubelab.cluster import cluster as cl
from kubelab.course import load_course
from kubelab.errors import KubelabError
from kubelab.twin import TwinSet, lease
from kubelab.twin.hostcmd import missing_tools

REPO = Path(__file__).resolve().parents[1]
pytest_plugins = ["both_drivers"]  # every replay in the suite is checked on both drivers (both_drivers.py)
LEASE_WAIT_S = 30 * 60


def _twins_unavailable() -> str | None:
    if os.geteuid() != 0:
        return "the twins tests need root (they create a bridge, cgroups and systemd-nspawn containers): run pytest as root"
    missing = missing_tools()
    if missing:
        return f"the twins tests need {', '.join(missing)}: apt-get install -y debootstrap systemd-container"
    return None


def _lease(ts: TwinSet):
    """Hold the twin set for this whole test session (see kubelab.twin.lease)."""
    try:
        return lease.acquire(ts.course_id, wait_s=LEASE_WAIT_S)
    except KubelabError as e:
        pytest.fail(str(e), pytrace=False)


@pytest.fixture(scope="session")
def twins():
    """TwinSet of the repository's course, up from fresh root file systems; `.ssh_config_file()` for SSH.

    Tests using it are marked `@pytest.mark.twins`. A missing precondition fails (never skips).
    """
    reason = _twins_unavailable()
    if reason:
        pytest.fail(reason, pytrace=False)
    ts = TwinSet(load_course(REPO))
    held = _lease(ts)
    torn_down = False

    # Teardown must run whatever happens: finally (test failures, Ctrl-C), atexit (an exit that
    # skips fixture finalizers), SIGTERM turned into KeyboardInterrupt so both of those run.
    def _at_exit() -> None:
        if not torn_down:  # never after the lease is gone: the twins may be another session's by then
            try:
                ts.down()
            except Exception as e:  # at exit there is nobody left to raise to
                print(f"kubelab twins teardown at exit failed: {e}")

    atexit.register(_at_exit)
    previous = signal.getsignal(signal.SIGTERM)

    def _on_sigterm(signum, frame):
        raise KeyboardInterrupt("SIGTERM")

    signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        try:
            ts.up(fresh=True)
        except KubelabError as e:
            pytest.fail(f"twins did not come up: {e}", pytrace=False)
        _twins_fresh["now"] = True
        yield ts
    finally:
        try:
            try:
                _shared_cluster_down()  # while the lease is still held
            finally:
                ts.down()
        finally:
            torn_down = True
            signal.signal(signal.SIGTERM, previous)
            held.close()  # releases the session lock


# Whether the twins are as a fresh boot left them. Not kept by the fixtures that change them (one that forgot
# would hand the next module changed nodes): any test that has the twins among its fixtures may have changed
# them, so running it clears this; only a fresh boot sets it.
_twins_fresh = {"now": False}


def _shuffled(config) -> bool:
    # the plugin's own defaults read "default:..."; only an option given on the command line shuffles
    return config.pluginmanager.hasplugin("random_order") and any(
        v and not str(v).startswith("default:") for v in
        (config.getoption(o, default=None) for o in ("random_order", "random_order_bucket", "random_order_seed")))


def pytest_configure(config):
    if _shuffled(config):
        config.pluginmanager.register(_RegroupAfterShuffle(), "kubelab-regroup-after-shuffle")
    worker = getattr(config, "workerinput", {}).get("workerid")  # a pytest-xdist worker (scripts/test.sh: -n 3)
    if worker:
        from parallel import enter_own_network_namespace

        # each worker boots its own twin set, with the course's names and addresses, in a network of its own
        os.environ["KUBELAB_TWIN_INSTANCE"] = worker.replace("gw", "w")
        enter_own_network_namespace()
    elif _by_units(config):
        config.stash[_UNITS_DIR] = Path(tempfile.mkdtemp(prefix="kubelab-units-"))


def pytest_unconfigure(config):
    if _UNITS_DIR in config.stash:
        shutil.rmtree(config.stash[_UNITS_DIR], ignore_errors=True)


# the suite on pytest-xdist workers, `--dist loadgroup`: whole modules and shared-fixture units (tests/parallel.py)
_UNITS_DIR = pytest.StashKey[Path]()


def _by_units(config) -> bool:
    return config.getoption("dist", "no") == "loadgroup" and bool(config.getoption("numprocesses", None))


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node):
    from parallel import UNITS_KEY

    node.workerinput[UNITS_KEY] = str(node.config.stash[_UNITS_DIR] / "units.json")


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    if _by_units(config):
        from parallel import UnitScheduling

        return UnitScheduling(config, log, config.stash[_UNITS_DIR] / "units.json")
    return None


@pytest.hookimpl(tryfirst=True)  # before pytest-random-order reads the markers
def pytest_collection_modifyitems(config, items):
    shuffling = config.pluginmanager.hasplugin("random_order")
    if not _shuffled(config):
        _group_shared_cluster_modules(items)
    units_file = getattr(config, "workerinput", {}).get("kubelab_units_file")  # parallel.UNITS_KEY
    if units_file:  # a worker: the controller's UnitScheduling hands out whole units
        from parallel import order_into_units, write_units

        write_units(units_file, order_into_units(items, config.workerinput["workercount"]),
                    config.workerinput["workerid"])
    for item in items:
        # a test that uses the twins through any fixture is a twins test: `-m "not twins"` never waits for the lease
        if "twins" in item.fixturenames and not item.get_closest_marker("twins"):
            item.add_marker(pytest.mark.twins)
        # `--random-order-bucket=module` shuffles the modules; inside one, the tests keep their written order
        # (a cluster module breaks its cluster last)
        if shuffling:
            item.add_marker(pytest.mark.random_order(disabled=True))


class _RegroupAfterShuffle:
    """A shuffled run keeps the shuffled order of every module, but the shared-cluster modules run as one block
    (in their shuffled order among themselves, where the first of them landed): shuffled apart, each run of them
    between plain-twins modules would boot the cluster again (~2 min each, +10-15 min a run). Each still meets
    the cluster as whichever module drew the place before it left it, which is what the shuffle is there to test."""

    @pytest.hookimpl(trylast=True)  # after pytest-random-order has shuffled
    def pytest_collection_modifyitems(self, config, items):
        _group_shared_cluster_modules(items)


def _cluster_rank(item) -> int:
    if item.get_closest_marker("takes_cluster_down"):
        return 2
    return 1 if item.get_closest_marker("leaves_cluster_dirty") else 0


def _group_shared_cluster_modules(items) -> None:
    """Modules that use `shared_cluster` run one after another, where the first of them would, so the session boots
    it once instead of once per run of them that a plain-twins module interrupts; a module marked
    `leaves_cluster_dirty` (it breaks what it cannot put back) goes last among them, and one marked
    `takes_cluster_down` after that: it takes the cluster down as the modules before left it, dirty or not."""
    def module(item):
        return item.nodeid.split("::")[0]

    users = {module(i) for i in items if "shared_cluster" in i.fixturenames}
    if not users:
        return
    first = next(k for k, i in enumerate(items) if module(i) in users)
    group = [i for i in items if module(i) in users]
    rest = [i for i in items if module(i) not in users]
    group.sort(key=_cluster_rank)  # stable: file order otherwise
    # a dirty cluster stays up for the module that takes it down, instead of being taken down and booted again
    _shared["keep_dirty"] = any(_cluster_rank(i) == 2 for i in group)
    before = [i for i in items[:first] if module(i) not in users]
    items[:] = before + group + rest[len(before):]


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    report = (yield).get_result()
    if report.when == "call":
        item.stash[CALL_FAILED] = report.failed


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item):
    if "twins" in item.fixturenames:  # directly or through fresh_twins, lab01_evidence, a cluster, ...
        _twins_fresh["now"] = False
    yield


def ensure_fresh(twins) -> None:
    """The twins as a fresh Vagrant Debian box: new copies, unless nothing could have changed them since the last."""
    _shared_cluster_down()
    if not _twins_fresh["now"]:
        twins.up(fresh=True, progress=None)
        _twins_fresh["now"] = True


# The session's kubeadm cluster on the twins, shared by every module that asks for `shared_cluster`: booting one
# costs ~2 min warm, so modules that only need *a* healthy cluster take turns on one instead of a boot each.
# ensure_fresh() takes it down (plain fresh twins are another root file system); the next user boots it again.
_shared = {"state": None, "keep_dirty": False}


def _shared_cluster_down() -> None:
    state = _shared["state"]
    if state is not None:
        _shared["state"] = None
        cl.down(state["course"])


@pytest.fixture(scope="module")
def shared_cluster(twins, request):
    """The twins as a joined kubeadm v1.20.2 cluster (kubelab.cluster.cluster.up: init, join, kube-proxy, the demo
    Deployment `bb`), booted at most once per session while no module needs plain twins in between.

    A dict: "course" (LoadedCourse), "ts" (TwinSet), "timings", "dirty". A module that changes the cluster puts it
    back in a `finally` (healthy control plane, nodes Ready, its own objects deleted); one that cannot sets
    state["dirty"] = True and the next module gets a new cluster. "host_before": tests/hoststate.py's view of the
    host just before this cluster booted. A module marked `takes_cluster_down` gets the cluster as it is, dirty or
    not (booted only if there is none), and takes it down."""
    from hoststate import host_state

    state = _shared["state"]
    takes_down = request.node.get_closest_marker("takes_cluster_down") is not None
    # dirty, or replaced since (a module that boots its own cluster or fresh twins leaves none behind)
    if state is not None and not takes_down and (state["dirty"] or not _api_ready(state)):
        _shared_cluster_down()
        state = None
    if state is None:
        course = load_course(REPO)
        before = host_state()
        try:
            ts, timings = cl.up(course, progress=print)
        except KubelabError as e:
            cl.down(course)
            twins.up(fresh=True, progress=None)
            pytest.fail(f"cluster did not come up: {e.problem}", pytrace=False)
        state = _shared["state"] = {"course": course, "ts": ts, "timings": timings, "dirty": False,
                                    "host_before": before}
    yield state
    if state["dirty"] and not (_shared["keep_dirty"] and not takes_down):
        _shared_cluster_down()


def _api_ready(state) -> bool:
    import subprocess

    cp = state["course"].model.control_plane.name
    probe = subprocess.run(["ssh", "-F", str(state["ts"].ssh_config_file()), cp,
                            "sudo -n kubectl --kubeconfig=/etc/kubernetes/admin.conf get --raw /readyz"],
                           capture_output=True, text=True, timeout=60)
    return probe.returncode == 0 and probe.stdout.strip() == "ok"



@pytest.fixture(scope="module")
def fresh_twins(twins):
    """The session twins in their starting state (a fresh Vagrant Debian box) for a module that changes them."""
    ensure_fresh(twins)
    return twins


@pytest.fixture(scope="session")
def lab01_evidence(twins, tmp_path_factory):
    """Lab 1 evidence recorded once per session on the twins by the notebooks' own grading cell:
    `.failing` (the learner notebook run on fresh twins, tasks undone) and `.passing` (the solution
    notebook run after it); see lab01_recordings.py."""
    from lab01_recordings import record_lab01

    ensure_fresh(twins)
    _twins_fresh["now"] = False  # the notebooks prepare them
    return record_lab01(twins.ssh_config_file(), tmp_path_factory.mktemp("lab01-evidence"))
