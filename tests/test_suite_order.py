"""The suite's own module order (tests/conftest.py), as pytest and pytest-random-order really collect it:
shared-cluster modules run as one block, the module that leaves the cluster dirty last among them, in the written
order and in a shuffled one. Proof: real collection in a subprocess over a few of the suite's own files."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# two shared-cluster modules, the one marked leaves_cluster_dirty, and plain modules around them
FILES = ["tests/test_course.py", "tests/test_lab10.py", "tests/test_engine.py", "tests/test_lab05.py",
         "tests/test_yamldata.py", "tests/test_lab11.py", "tests/test_swapfacts.py"]
CLUSTER = ["tests/test_lab10.py", "tests/test_lab11.py", "tests/test_lab05.py"]


def _module_order(*args: str, files: list[str] = FILES) -> list[str]:
    out = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider",
                          *args, *files], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    order: list[str] = []
    for line in out.stdout.splitlines():
        if "::" in line and (m := line.split("::")[0]) not in order[-1:]:
            order.append(m)
    assert sorted(set(order)) == sorted(files), order
    return order


def _cluster_block(order: list[str]) -> list[str]:
    places = [order.index(m) for m in CLUSTER]
    block = order[min(places):max(places) + 1]
    assert block == [m for m in order if m in CLUSTER], f"shared-cluster modules interleaved: {order}"
    return block


SEEDS = (1, 2)


@pytest.fixture(scope="module")
def shuffled() -> dict[int, list[str]]:
    return {seed: _module_order("--random-order-bucket=module", f"--random-order-seed={seed}") for seed in SEEDS}


def test_written_order_runs_the_shared_cluster_modules_as_one_block_dirty_last():
    order = _module_order()
    assert _cluster_block(order) == ["tests/test_lab10.py", "tests/test_lab11.py", "tests/test_lab05.py"]
    assert order[0] == "tests/test_course.py"  # the block sits where its first module was written


@pytest.mark.parametrize("seed", SEEDS)
def test_a_shuffled_order_keeps_the_block_dirty_last(shuffled, seed):
    assert _cluster_block(shuffled[seed])[-1] == "tests/test_lab05.py"


def test_the_seeds_really_shuffle(shuffled):
    assert len({tuple(o) for o in shuffled.values()}) == len(SEEDS), shuffled


def test_the_module_that_takes_the_cluster_down_runs_after_the_dirty_one():
    """test_cluster_down takes down the cluster test_lab05 leaves dirty, so neither boots one of its own."""
    files = ["tests/test_cluster_down.py", "tests/test_course.py", "tests/test_lab05.py", "tests/test_cluster.py"]
    assert _module_order(files=files) == ["tests/test_cluster.py", "tests/test_lab05.py", "tests/test_cluster_down.py",
                                          "tests/test_course.py"]
