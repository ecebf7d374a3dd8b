"""The store's floor heatmap (visits/floor_heatmap.py) with hand-made floor paths."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from analytics.floor import Door, FloorPlan
from visits.floor_heatmap import FloorHeatmap, floor_image, save_floor_png

# a 10 m x 6 m floor at 0.5 m cells: 20 columns x 12 rows, origin (2, 1)
OUTLINE = np.array([[2.0, 1.0], [12.0, 1.0], [12.0, 7.0], [2.0, 7.0]])
DOOR = Door("main", np.array([5.0, 7.0]), np.array([7.0, 7.0]), np.array([0.0, -1.0]))


def plan(**kw) -> FloorPlan:
    return FloorPlan(OUTLINE, {"main": DOOR}, **kw)


def stand(x: float, y: float, t0: float, seconds: float, step: float = 0.5, dtype=np.float64) -> np.ndarray:
    t = np.arange(t0, t0 + seconds + 1e-9, step)
    return np.stack([t, np.full_like(t, x), np.full_like(t, y)], axis=1).astype(dtype)


def walk(a, b, t0: float, seconds: float, step: float = 0.5, dtype=np.float64) -> np.ndarray:
    t = np.arange(t0, t0 + seconds + 1e-9, step)
    u = (t - t0)[:, None] / seconds
    xy = np.asarray(a) + u * (np.asarray(b) - np.asarray(a))
    return np.column_stack([t, xy]).astype(dtype)


def test_grid_covers_the_plan_bounds():
    fh = FloorHeatmap(plan(), "store-1")
    rec = fh.report(0.0)
    assert (fh.cols, fh.rows) == rec.resolution == (20, 12)
    assert rec.origin == (2.0, 1.0) and rec.cell_m == 0.5
    assert np.asarray(rec.data).shape == (12, 20) and not np.asarray(rec.data).any() and rec.hotspots == ()
    assert rec.store_id == "store-1" and rec.to_dict()["resolution"] == [20, 12]


def test_a_person_standing_a_minute_in_one_cell_is_the_hotspot():
    fh = FloorHeatmap(plan(), "store-1")
    t0 = 1_700_000_000.0  # epoch times (float64 paths here: float32 cannot hold them to 0.5 s)
    fh.add_path(walk((2.2, 1.2), (11.8, 6.8), t0, 20.0, dtype=np.float64))  # a passer-by across the floor
    fh.add_path(stand(8.3, 4.6, t0, 60.0, dtype=np.float64))  # cell (col 12, row 7)
    v = fh.values(t0 + 60)
    assert np.unravel_index(v.argmax(), v.shape) == (7, 12)
    assert v[7, 12] == pytest.approx(60.5 * 2 ** (-30 / 900), rel=0.02)  # 121 samples x 0.5 s, decayed
    rec = fh.report(t0 + 60)
    data = np.asarray(rec.data)
    assert data.max() == 1.0 and data[7, 12] == 1.0 and data.min() >= 0.0
    assert 0 < data[0, 0] < 0.1  # the passer-by is there, faintly
    top = rec.hotspots[0]
    assert top.intensity == 1.0
    assert (top.x, top.y) == (pytest.approx(12.5 / 20), pytest.approx(7.5 / 12))
    assert rec.origin[0] + top.x * 20 * 0.5 == pytest.approx(8.25)  # the cell centre in metres


def test_decay_halves_after_a_half_life_whatever_order_paths_arrive_in():
    fh = FloorHeatmap(plan(), "s", half_life_s=600.0)
    fh.add_path(stand(3.1, 2.1, 1000.0, 10.0))
    now = fh.values(1010.0)[2, 2]
    assert fh.values(1610.0)[2, 2] == pytest.approx(now / 2)
    assert fh.values(2210.0)[2, 2] == pytest.approx(now / 4)
    # the same presence added later in time, then an older one: each decays from its own time
    late = FloorHeatmap(plan(), "s", half_life_s=600.0)
    late.add_path(stand(9.1, 2.1, 1600.0, 10.0))
    late.add_path(stand(3.1, 2.1, 1000.0, 10.0))
    v = late.values(1610.0)
    assert v[2, 2] == pytest.approx(v[2, 14] / 2)


def test_far_future_paths_rebase_without_overflow():
    fh = FloorHeatmap(plan(), "s", half_life_s=1.0)
    fh.add_path(stand(3.1, 2.1, 0.0, 5.0))
    fh.add_path(stand(9.1, 2.1, 10_000.0, 5.0))  # 10^4 half-lives later
    v = fh.values(10_005.0)
    assert np.isfinite(v).all() and v[2, 2] == 0.0 and v[2, 14] > 0


def test_points_off_the_grid_and_gaps_are_ignored():
    fh = FloorHeatmap(plan(), "s", step_s=0.5)
    off = np.concatenate([stand(1.9, 3.0, 0, 30), stand(12.1, 3.0, 31, 30), stand(5.0, 0.5, 62, 30),
                          stand(5.0, 7.5, 93, 30), stand(np.nan, 3.0, 124, 30)])
    fh.add_path(off)
    assert not fh.values(200.0).any()
    fh.add_path(np.array([[200.0, 3.1, 2.1]], np.float64))  # one sample: one sampling step
    assert fh.values(200.0)[2, 2] == 0.5 and fh.values(200.0).sum() == 0.5
    gap = np.array([[0.0, 3.1, 2.1], [0.5, 3.1, 2.1], [100.0, 3.1, 2.1]], np.float64)  # unseen for 99.5 s
    g = FloorHeatmap(plan(), "s", half_life_s=1e9, step_s=0.5)
    g.add_path(gap)
    assert g.values(100.0)[2, 2] == pytest.approx(0.5 + 2.0 + 0.5)  # the gap capped at max_step_s


def test_png_over_the_drawn_outline_has_the_grid_size(tmp_path):
    fh = FloorHeatmap(plan(plan_px_per_m=20.0), "s")
    fh.add_path(stand(8.3, 4.6, 0.0, 60.0))
    rec = fh.report(60.0)
    out = save_floor_png(tmp_path / "floor.png", rec, plan(plan_px_per_m=20.0))
    img = cv2.imread(str(out))
    assert img.shape == (12 * 10, 20 * 10, 3)  # 6 m x 10 m at 20 px/m
    hot = img[int(7.5 * 10), int(12.5 * 10)]
    assert hot[2] > hot[0]  # red-ish where the person stood
    assert (img[0:2, 100] > 150).all()  # the outline's top edge is drawn


def test_png_over_the_plan_image_has_the_image_size(tmp_path):
    # a 16 m x 10 m plan picture at 10 px/m; the grid (x 2..12 m, y 1..7 m) sits inside it
    pic = np.full((100, 160, 3), 255, np.uint8)
    cv2.imwrite(str(tmp_path / "plan.png"), pic)
    p = plan(plan_image=tmp_path / "plan.png", plan_px_per_m=10.0)
    fh = FloorHeatmap(p, "s")
    fh.add_path(stand(8.3, 4.6, 0.0, 60.0))
    img = cv2.imread(str(save_floor_png(tmp_path / "floor.png", fh.report(60.0), p)))
    assert img.shape == (100, 160, 3)
    assert (img[5, 5] == 255).all() and (img[95, 150] == 255).all()  # off the grid: the plan untouched
    y, x = int(4.6 * 10), int(8.3 * 10)
    assert img[y, x][2] > img[y, x][0]
    # a plan picture smaller than the floor: same size out, the grid clipped to it
    small = tmp_path / "small.png"
    cv2.imwrite(str(small), pic[:50, :60])
    img = floor_image(fh.report(60.0), plan(plan_image=small, plan_px_per_m=10.0))
    assert img.shape == (50, 60, 3)


def test_missing_plan_image_is_an_error(tmp_path):
    p = plan(plan_image=tmp_path / "nope.png")
    with pytest.raises(OSError, match="nope.png"):
        save_floor_png(tmp_path / "f.png", FloorHeatmap(p, "s").report(0.0), p)


def test_paths_added_in_a_batch_equal_paths_added_one_by_one():
    """Paths wait in a list until the grid is read: the same grid as adding each at once
    (unsorted samples, a NaN row, a gap longer than max_step_s, one-sample paths)."""
    rng = np.random.default_rng(4)
    paths = [walk((2.5, 1.5), (11.5, 6.5), 100.0, 30.0), stand(8.3, 4.6, 50.0, 20.0),
             np.array([[200.0, 4.0, 4.0]]), np.array([[300.0, 5.0, 5.0], [301.0, np.nan, 5.0], [309.0, 5.2, 5.0]])]
    shuffled = walk((3.0, 6.0), (11.0, 2.0), 400.0, 12.0)
    paths.append(shuffled[rng.permutation(len(shuffled))])
    one = FloorHeatmap(plan(), "s", batch_rows=1)
    batch = FloorHeatmap(plan(), "s")
    for p in paths:
        one.add_path(p)
        batch.add_path(p)
    assert batch._pending and not one._pending
    np.testing.assert_allclose(batch.values(420.0), one.values(420.0), rtol=1e-12)
    assert one.values(420.0).sum() > 0


def test_a_path_out_of_time_order_counts_as_the_same_path_in_order():
    """Paths usually come in time order (the sort is skipped then); one that does not is sorted
    first, so each sample still weighs its step to the next one in time."""
    path = walk((2.5, 1.5), (11.5, 6.5), 100.0, 30.0)
    path[10, 0] += 0.4  # an uneven step, so a wrong order would weigh samples differently
    shuffled = path[np.random.default_rng(1).permutation(len(path))]
    a, b = FloorHeatmap(plan(), "s"), FloorHeatmap(plan(), "s")
    a.add_path(path)
    b.add_path(shuffled)
    np.testing.assert_allclose(b.values(140.0), a.values(140.0), rtol=1e-12)
