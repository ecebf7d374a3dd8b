"""The store linker on odd tracklet streams (random, seeded): whatever arrives, it never raises,
every final tracklet's camera journey comes out once, and every visit it writes names tracklets
it was given. Odd here: one-row and NaN paths, tracks that end before they start, reused track
ids, looks that are NaN, zeros or of another re-id model's length, huge time jumps, a store
without a floor plan, uncalibrated cameras, no doors."""
from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from analytics.records import CameraJourneyRecord, VisitRecord
from analytics.tracklets import Tracklet
from tests.test_visits_linker import CAMS, ident, noisy, store, tracklet
from visits.linker import VisitLinker


def odd(rng: np.random.Generator, t0: float) -> Tracklet:
    dur = float(rng.choice([0.0, 0.1, 1.0, 5.0, 30.0, 300.0]))
    look = int(rng.integers(0, 5))
    emb = [None, noisy(ident(int(rng.integers(0, 5))), int(rng.integers(0, 99))), np.zeros(64, np.float32),
           np.full(64, np.nan, np.float32), noisy(ident(1, d=32), 3)][look]
    tl = tracklet(CAMS[int(rng.integers(0, 3))], t0, t0 + dur, tuple(rng.uniform(-5, 45, 2)),
                  tuple(rng.uniform(-5, 45, 2)), emb, zones=tuple(rng.choice(["a", "b", "checkout"], rng.integers(0, 3))),
                  converted=bool(rng.integers(0, 2)), final=bool(rng.integers(0, 4)),
                  on_floor=bool(rng.integers(0, 5)), tid=int(rng.integers(0, 10**9)))
    kind = int(rng.integers(0, 8))
    if kind == 0:
        return dataclasses.replace(tl, path=tl.path[:1])
    if kind == 1:
        p = tl.path.copy()
        p[:, 1] = np.nan
        return dataclasses.replace(tl, path=p)
    if kind == 2:
        return dataclasses.replace(tl, embedding_weight=math.inf)
    if kind == 3:
        return dataclasses.replace(tl, end=tl.start - 1.0)
    if kind == 4:
        return dataclasses.replace(tl, track_id=7)
    return tl


@pytest.mark.parametrize("seed", range(40))
def test_odd_tracklet_streams_never_break_the_linker(seed):
    rng = np.random.default_rng(seed)
    cfg = store(calibrated=bool(seed % 3), doors=bool(seed % 2))
    linker = VisitLinker(dataclasses.replace(cfg, floor=None) if seed % 5 == 0 else cfg)
    t, given, out = 0.0, [], []
    for _ in range(int(rng.integers(5, 60))):
        t += float(rng.choice([0.0, 0.5, 3.0, 50.0, 500.0]))
        batch = [odd(rng, t - float(rng.uniform(0, 40))) for _ in range(int(rng.integers(1, 4)))]
        given += batch
        out += linker.process(batch, t)
        if rng.integers(0, 3) == 0:
            out += linker.advance(t + float(rng.uniform(-10, 200)))
    out += linker.flush(t + 1000.0)
    finals = [tl for tl in given if tl.final and tl.journey is not None]
    assert sum(isinstance(r, CameraJourneyRecord) for r in out) == len(finals)
    labels = {tl.label for tl in given}
    for v in (r for r in out if isinstance(r, VisitRecord)):
        assert set(v.tracklets) <= labels
    assert linker.footprint()["open_visits"] == 0  # flushed
