"""A pytest plugin of the suite (registered in conftest.py): every replay any test makes through
`kubelab.evidence.replay_lab` — Lab 1's notebook recordings, Lab 5's flannel variants of the real cluster's
recording, the cluster's lab90, the simulated Lab 4 — also runs through the pytest driver, on a fresh target
and clock, and must give identical check results. So "both drivers agree" covers every evidence file the
suite knows, twins and cluster included, not only those test_replay_drivers.py makes itself."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True, scope="session")
def replays_agree_on_both_drivers():
    import kubelab.evidence as ev
    from kubelab.engine.runner import run_lab
    from kubelab.evidence.replay import ReplayClock, ReplayTarget

    direct = getattr(ev, "run_lab_direct", None)
    assert direct is not None, "kubelab.evidence.replay_lab no longer replays through run_lab_direct: update this plugin"

    def both(course, lab_id, target, clock, sleep):
        result = direct(course, lab_id, target, clock=clock, sleep=sleep)
        again = ReplayClock()
        via_pytest = run_lab(course, lab_id, ReplayTarget(course, target.evidence, source="evidence"),
                             clock=again.now, sleep=again.sleep)
        assert [c.to_dict() for c in result.checks] == [c.to_dict() for c in via_pytest.checks], \
            f"{lab_id}: the direct and the pytest driver disagree on {target.description}"
        return result

    ev.run_lab_direct = both
    try:
        yield
    finally:
        ev.run_lab_direct = direct
