"""Run the whole test suite N times in a row while a load generator keeps every core busy.

    python -m scripts.test_stress [--runs 5] [--load-procs CORES] [-- extra pytest args]
    make test-stress [RUNS=5]

A test that depends on the machine's speed (a fixed sleep followed by a count of timer
ticks, a wall-clock threshold, a race between threads) passes on a quiet machine and fails
on a loaded CI runner. This script makes the machine slow on purpose: ``--load-procs`` busy
processes (default: one per core) spin for the whole session, at the same priority as the
tests. Each run writes a JUnit XML report under ``.run/stress/``; at the end it prints every
run's result and the names of the tests that failed in any run (with how many runs each),
and exits 1 if any run failed.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
SPIN = "while True: pass"


def failed_tests(report: Path) -> list[str]:
    """``file::name`` of every failed or errored test case in a JUnit XML report."""
    if not report.exists():
        return ["<no report: pytest did not finish>"]
    out = []
    for case in ET.parse(report).getroot().iter("testcase"):
        if case.find("failure") is not None or case.find("error") is not None:
            path = (case.get("classname") or "").replace(".", "/")
            out.append(f"{path}.py::{case.get('name')}")
    return out


def run_suite(i: int, reports: Path, extra: list[str]) -> tuple[int, float, list[str]]:
    report = reports / f"run-{i}.xml"
    report.unlink(missing_ok=True)
    t0 = time.monotonic()
    rc = subprocess.call([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--junitxml={report}",
                          *extra], cwd=REPO_ROOT)
    return rc, time.monotonic() - t0, failed_tests(report) if rc else []


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m scripts.test_stress", description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--load-procs", type=int, default=os.cpu_count() or 1,
                    help="busy processes kept running during the runs (default: one per core; 0: none)")
    ap.add_argument("pytest_args", nargs="*", help="extra pytest arguments (after --)")
    a = ap.parse_args(argv)
    reports = REPO_ROOT / ".run" / "stress"
    reports.mkdir(parents=True, exist_ok=True)
    load = [subprocess.Popen([sys.executable, "-c", SPIN]) for _ in range(a.load_procs)]
    print(f"stress: {a.runs} run(s) of the suite with {a.load_procs} busy process(es) beside it", flush=True)
    results = []
    try:
        for i in range(1, a.runs + 1):
            rc, wall, failed = run_suite(i, reports, a.pytest_args)
            results.append((rc, wall, failed))
            print(f"stress: run {i}/{a.runs}: {'passed' if rc == 0 else f'FAILED (exit {rc})'} in {wall:.0f} s"
                  + "".join(f"\n    {t}" for t in failed), flush=True)
    finally:
        for p in load:
            p.kill()
        for p in load:
            p.wait()
    counts = Counter(t for _, _, failed in results for t in failed)
    green = sum(rc == 0 for rc, _, _ in results)
    print(f"\nstress: {green}/{len(results)} run(s) green")
    for rc_i, (rc, wall, _) in enumerate(results, 1):
        print(f"  run {rc_i}: {'passed' if rc == 0 else 'FAILED'} ({wall:.0f} s)")
    if counts:
        print("tests that failed in any run:")
        for t, n in counts.most_common():
            print(f"  {t}: {n}/{len(results)} run(s)")
    return 0 if green == len(results) else 1


if __name__ == "__main__":
    sys.exit(main())
