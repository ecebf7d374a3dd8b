"""Tracklet building in the camera analytics (analytics/tracklets.py) on hand-made tracks:
path samples across the per-row chunk buffer, a reused row, the young-crop rate."""
from __future__ import annotations

import numpy as np

from analytics.slots import TrackTable
from analytics.tracklets import EMBED_YOUNG_CROPS, PATH_CHUNK, Tracklet, TrackletBuilder

FPS = 10.0


def feet_of(tid: int, t: float) -> tuple[float, float]:
    return 100.0 * tid + 2.0 * t, 50.0 + t


def run(tracks: dict[int, tuple[float, float]], seconds: float, embeddings: bool = False):
    """tracks: id -> (first, last) seconds on camera; returns (builder, table, heads, finals)."""
    table = TrackTable(4)
    tb = TrackletBuilder("cam", table, head_s=2.0, image_height=720.0)
    heads, finals = [], []
    rng = np.random.default_rng(0)
    for k in range(int(seconds * FPS) + 1):
        t = 1000.0 + k / FPS
        live = [i for i, (a, b) in tracks.items() if a <= t - 1000.0 <= b]
        ended = [i for i, (a, b) in tracks.items() if b < t - 1000.0 and i in table.slots.ids().tolist()]
        if ended:
            ids = np.array(ended, np.int64)
            rows, _ = table.slots.lookup(ids)
            finals += tb.finals([(i, r, None, ()) for i, r in zip(ended, rows.tolist())])
            table.release(ids)
        ids = np.array(live, np.int64)
        rows, new, _ = table.observe(t, ids)
        feet = np.array([feet_of(i, t - 1000.0) for i in live]).reshape(-1, 2)
        boxes = np.column_stack([feet[:, 0] - 5, feet[:, 1] - 20, feet[:, 0] + 5, feet[:, 1]])  # tiny: low quality
        scores = np.full(len(live), 0.9, np.float32)
        emb = rng.normal(size=(len(live), 16)).astype(np.float32) if embeddings else None
        heads += tb.update(t, ids, rows, new, feet, boxes, scores if embeddings else None, emb,
                           np.arange(len(live)) if embeddings else None)
    return tb, table, heads, finals


def test_long_path_crosses_chunks_and_a_reused_row_starts_clean():
    seconds = 3 * PATH_CHUNK + 10.0
    tb, table, heads, finals = run({1: (0.0, seconds), 2: (0.0, 80.0), 3: (90.0, seconds)}, seconds + 1.0)
    assert [h.track_id for h in heads] == [1, 2, 3] and not any(h.final for h in heads)
    assert heads[0].end - heads[0].start >= 2.0
    by_id = {f.track_id: f for f in finals}
    assert set(by_id) == {1, 2, 3}
    for tid, (a, b) in {1: (0.0, seconds), 2: (0.0, 80.0), 3: (90.0, seconds)}.items():
        p = by_id[tid].path
        assert isinstance(by_id[tid], Tracklet) and by_id[tid].final
        assert p[0, 0] == 1000.0 + a and p[-1, 0] == by_id[tid].end  # first sighting ... last sighting
        assert np.all(np.diff(p[:, 0]) > 0)
        assert np.diff(p[:, 0]).max() <= 1.0 + 1e-9 and len(p) >= (b - a) - 1  # a sample a second
        want = np.array([feet_of(tid, t - 1000.0) for t in p[:, 0]])
        np.testing.assert_allclose(p[:, 1:], want, atol=1e-9)  # nothing of another track in its row
    assert len(by_id[1].path) > 3 * PATH_CHUNK  # more than three full chunks


def test_crops_come_once_a_second_while_young_then_every_ten():
    tb, table, heads, _ = run({1: (0.0, 60.0)}, 40.0, embeddings=True)
    row = int(table.slots.lookup(np.array([1]))[0][0])
    # tiny boxes never weigh EMBED_FULL_WEIGHT: the crop count ends the young rate
    assert tb.emb_w[row] < 4.0
    assert tb.emb_n[row] == EMBED_YOUNG_CROPS + 3  # 10 in the first 10 s, then at 19, 29 and 39 s
    assert heads[0].embedding is not None and abs(float(np.linalg.norm(heads[0].embedding)) - 1.0) < 1e-5
