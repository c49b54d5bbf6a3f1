"""The fault-injection harness in the suite (issue 10): the daemon killed at sampled steps of
each scenario, restarted, checked, the scenario completed (``tests/support/crashes.py``). The
sample is spread over each scenario's steps and fixed, so every run checks the same crashes;
``bench/crashes.py`` sweeps every step (over 1,000 crashes) and prints the counts.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.crashes import SCENARIOS, crash_harness
from tests.support.runtime import BUSYBOX_TAR

# Steps to crash at, three per scenario (each takes 110-140 steps), in different calls: a start
# with a published port, a connect, a disconnect, a restart, a kill. About 5 s each. And one
# the full sweep found: the start of a --rm container recorded, its process gone by the restart
# (the restore's --rm removed it, and the restart policy pass then looked it up).
SAMPLE = {"lifecycle": (40, 80, 100), "dual-stack": (30, 60, 90), "auto-remove": (38,)}


@pytest.mark.skipif(not BUSYBOX_TAR.exists(), reason="no busybox fixture")
@pytest.mark.parametrize("scenario", sorted(SAMPLE))
def test_crashes_leave_nothing_behind(tmp_path: Path, scenario: str) -> None:
    report = []
    with crash_harness(tmp_path) as harness:
        for k in SAMPLE[scenario]:
            outcome = harness.run(SCENARIOS[scenario], k)
            report += [f"k={k} ({outcome.crashed_in}): {v}" for v in outcome.violations]
            assert outcome.crashed_in is not None, f"the scenario has fewer than {k} steps"
    assert report == [], "\n".join(report)
