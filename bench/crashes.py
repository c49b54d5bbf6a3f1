"""The full fault-injection sweep (issue 10): the daemon killed at every step k of each scenario
of ``tests/support/crashes.py``, restarted, the invariants checked, the scenario completed.

For each scenario it crashes the daemon at k = 1, 2, ... until a k passes the scenario's last
step (the scenario then completes without a crash), and prints the number of steps, of injected
crashes and of violations, each violation with the step and the call it cut short. The suite
runs a sample of the same sweep (``tests/faults``); this runs all of it (~3 s per crash: two
daemon starts, the scenario, the checks).

Everything runs in throwaway namespaces under a temp dir, removed on exit (also on Ctrl-C).

    sudo .venv/bin/python bench/crashes.py [--scenario NAME] [--from K] [--stride N]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from benchlib import bench_root, install_signal_handlers, run_main

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.support.crashes import SCENARIOS, crash_harness  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", choices=sorted(SCENARIOS), action="append")
    parser.add_argument("--from", dest="first", type=int, default=1, help="first k (1)")
    parser.add_argument("--stride", type=int, default=1, help="every Nth k (1: all)")
    args = parser.parse_args()
    total_crashes = total_violations = 0
    started = time.monotonic()
    with bench_root("cnm-crashes-") as tmp:
        for name in args.scenario or sorted(SCENARIOS):
            crashes, violations, steps = 0, 0, 0
            began = time.monotonic()
            with crash_harness(Path(tmp) / name) as harness:
                k = args.first
                while True:
                    outcome = harness.run(SCENARIOS[name], k)
                    for violation in outcome.violations:
                        print(f"  {name} k={k} ({outcome.crashed_in}): {violation}", flush=True)
                    violations += len(outcome.violations)
                    if outcome.crashed_in is None:
                        steps = k - 1
                        break
                    crashes += 1
                    if crashes % 50 == 0:
                        print(f"  {name}: {crashes} crashes so far", flush=True)
                    k += args.stride
            print(
                f"{name}: {steps} steps, {crashes} crashes injected, {violations} violations, "
                f"{time.monotonic() - began:.0f} s",
                flush=True,
            )
            total_crashes += crashes
            total_violations += violations
    print(
        f"total: {total_crashes} crashes injected, {total_violations} violations, "
        f"{time.monotonic() - started:.0f} s"
    )


if __name__ == "__main__":
    install_signal_handlers()
    run_main(main)
