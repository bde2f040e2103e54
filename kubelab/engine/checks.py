"""The vocabulary of a grader module: @check, expect_*, and polling for convergence.

A check reads like a sentence:

    @check("Swap is off now", on="all", points=1,
           hint="Run `sudo swapoff -a`.")
    def test_swap_off_now(host):
        expect_equal(host.run("swapon --show --noheadings").stdout.strip(), "", what="active swap")
"""

from __future__ import annotations

import time
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, TypeVar

T = TypeVar("T")

CHECK_ATTR = "_kubelab_check"

# The engine's time while a check runs: a replay runs on virtual time, so a grader's own `eventually()` must not
# sleep for real there (it gets the recorded answers in order at once, like `wait_s`).
ENGINE_TIME: ContextVar[tuple[Callable[[], float], Callable[[float], None]]] = \
    ContextVar("kubelab_engine_time", default=(time.monotonic, time.sleep))


@dataclass(frozen=True)
class CheckSpec:
    name: str            # the function name without "test_"
    title: str
    points: float
    on: str              # "all", "control-plane", "worker", a node name, or "cluster"
    hint: str
    needs: tuple[str, ...] = ()
    wait_s: float = 0.0  # poll the whole check until it passes, at most this long
    interval_s: float = 2.0
    fields: dict = field(default_factory=dict)


def check(title: str, *, points: float, hint: str, on: str = "all", needs: Iterable[str] = (),
          wait_s: float = 0.0, interval_s: float = 2.0) -> Callable[[Callable], Callable]:
    """Declare a grader check. `on` selects the nodes it runs on (one result per node);
    "cluster" runs it once against the cluster (it then takes `kube`/`hosts`, not `host`).
    `needs` names checks (function names without `test_`) that must pass first, on the same node
    where they ran there; otherwise this check is reported `blocked`, not failed."""
    if points < 0:
        raise ValueError("points must be >= 0")

    def decorate(fn: Callable) -> Callable:
        name = fn.__name__.removeprefix("test_")
        setattr(fn, CHECK_ATTR, CheckSpec(name=name, title=title, points=float(points), on=on,
                                          hint=hint.strip(), needs=tuple(needs), wait_s=float(wait_s),
                                          interval_s=float(interval_s)))
        return fn

    return decorate


def spec_of(fn: Any) -> CheckSpec | None:
    return getattr(fn, CHECK_ATTR, None)


class CheckFailed(AssertionError):
    """The learner's state differs from what the check expects."""

    def __init__(self, expected: Any, actual: Any, what: str | None = None):
        self.expected = _show(expected)
        self.actual = _show(actual)
        self.what = what
        super().__init__(f"{what + ': ' if what else ''}expected {self.expected}, got {self.actual}")


def _show(value: Any) -> str:
    if isinstance(value, str):
        return value if value.strip() else repr(value)
    if isinstance(value, dict):
        return ", ".join(f"{k}={_show(v)}" for k, v in value.items()) if value else "(none)"
    if isinstance(value, (list, tuple, set, frozenset)):
        items = sorted(value, key=str) if isinstance(value, (set, frozenset)) else value
        return ", ".join(str(v) for v in items) if items else "(none)"
    return str(value)


def fail(expected: Any, actual: Any, what: str | None = None) -> None:
    raise CheckFailed(expected, actual, what)


def expect_equal(actual: Any, expected: Any, what: str | None = None) -> None:
    if actual != expected:
        raise CheckFailed(expected, actual, what)


def expect_true(ok: bool, expected: Any, actual: Any, what: str | None = None) -> None:
    if not ok:
        raise CheckFailed(expected, actual, what)


def expect_contains(actual: Iterable, wanted: Iterable, what: str | None = None) -> None:
    have = set(actual)
    missing = [w for w in wanted if w not in have]
    if missing:
        raise CheckFailed(", ".join(map(str, wanted)), _show(sorted(have, key=str)) + f" (missing: {', '.join(map(str, missing))})", what)


def eventually(probe: Callable[[], T], until: Callable[[T], bool], timeout_s: float,
               interval_s: float = 2.0, clock: Callable[[], float] | None = None,
               sleep: Callable[[float], None] | None = None) -> T:
    """Call probe until `until(value)` holds or timeout_s passes; return the last value either way.
    Checks use it to wait for convergence (a node becoming Ready) instead of failing on the first look.
    Clock and sleep default to the engine's (virtual during a replay)."""
    engine_clock, engine_sleep = ENGINE_TIME.get()
    clock, sleep = clock or engine_clock, sleep or engine_sleep
    deadline = clock() + timeout_s
    while True:
        value = probe()
        if until(value) or clock() >= deadline:
            return value
        sleep(min(interval_s, max(0.0, deadline - clock())))
