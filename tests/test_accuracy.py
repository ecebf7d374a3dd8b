"""Accuracy held by a test: the analytics of a busy simulated hour meet every scorer goal.

The pixel-free generator runs the real tracker and analytics on the store simulator's
detections for the evening peak (17:00-18:00: the longest queues, the most crossings at the
door) and ``simulator.score`` compares the outputs with the simulator's ground truth. A
regression in tracking, journeys, queues or footfall that moves a number past its goal
fails here, not only in the README's tables. About 40 s on 2 cores.
"""
from __future__ import annotations

import math

import pytest

from simulator.day import generate
from simulator.score import TARGETS, score


@pytest.fixture(scope="module")
def peak_hour(tmp_path_factory):
    out = tmp_path_factory.mktemp("peak-hour")
    generate(out, hours=1.0, seed=42, start="2024-01-15T17:00:00Z", png=False, log=lambda *a, **k: None)
    return score(out)


def test_busy_hour_meets_every_scorer_goal(peak_hour):
    s = peak_hour
    assert s["visits"]["true_visits"] > 150 and s["records"]["queue_metrics.json"] > 0  # a busy hour
    assert not any(math.isnan(s[k]) for k in TARGETS), {k: s[k] for k in TARGETS}
    missed = {k: (s[k], goal) for k, goal in TARGETS.items() if not s[k] <= goal}
    assert not missed, f"goals missed (value, goal): {missed}"
    assert all(s["passed"][k] for k in TARGETS)


def test_busy_hour_store_visits(peak_hour):
    """The evening rush is the linker's hardest hour (queues reach into the aisle camera's view,
    people cross at camera edges); the day's goals (IDF1 >= 0.95 ...) are checked on 24 h by
    ``make sample-data && make score``. Here: the floor this hour must stay above."""
    v = peak_hour["visits"]
    assert v["idf1"] >= 0.92, v
    assert v["visit_count_error_pct"] <= 5.0, v
    assert v["store_conversion_error_points"] <= 3.0, v
    assert v["visit_duration_error_pct"] <= 10.0, v
