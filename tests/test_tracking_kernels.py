"""Tracker kernels: Kalman filter forms, box conversions, the IoU kernel, the assignment step."""
from __future__ import annotations

import numpy as np
import pytest

from tracking import kalman as kf
from tracking.matching import assign, iou_matrix, iou_rows, unambiguous

FPS = 25.0


def test_unambiguous_keeps_only_clear_mutual_best_pairs():
    inf = np.inf
    cost = np.array([[0.10, 0.50, inf],
                     [0.30, 0.32, inf],
                     [inf, inf, 0.20]])
    got = unambiguous(cost, 0.1)
    # row 0: best 0.10, runner-up 0.50 in the row, 0.30 in the column: kept
    # row 1: 0.30 vs 0.32 in its row, and column 0's best is row 0: refused
    # row 2: its only candidate, alone in its column: kept
    assert np.isfinite(got).sum() == 2 and got[0, 0] == 0.10 and got[2, 2] == 0.20
    assert np.isinf(unambiguous(np.full((2, 2), inf), 0.1)).all()
    assert unambiguous(np.zeros((0, 3)), 0.1).shape == (0, 3)


def _full_kalman_reference(z0, dt, z1, fps):
    """Textbook 8x8 Kalman filter, one box at a time, with the same noise model."""
    out = []
    for a, b in zip(z0, z1):
        s = np.array([a[2], a[3], a[2], a[3]])
        x = np.concatenate([a, np.zeros(4)])
        P = np.diag(np.concatenate([(2 * kf.STD_POS * s) ** 2, (10 * kf.STD_VEL * fps * s) ** 2]))
        F = np.eye(8)
        F[:4, 4:] = dt * np.eye(4)
        x = F @ x
        frames = dt * fps
        Q = np.diag(np.concatenate([(kf.STD_POS * s) ** 2 * frames, (kf.STD_VEL * fps * s) ** 2 * frames]))
        P = F @ P @ F.T + Q
        sb = np.array([b[2], b[3], b[2], b[3]])
        H = np.eye(4, 8)
        R = np.diag((kf.STD_POS * sb) ** 2)
        K = P @ H.T @ np.linalg.inv(H @ P @ H.T + R)
        x = x + K @ (b - H @ x)
        P = (np.eye(8) - K @ H) @ P
        out.append((x, P))
    return out


def test_batched_kalman_equals_the_full_matrix_filter():
    # the per-coordinate 2x2 blocks are exact, not an approximation of the 8x8 filter
    rng = np.random.default_rng(4)
    fps, dt = 25.0, 0.07
    z0 = np.abs(rng.normal(100, 30, size=(6, 4))) + 5
    z1 = z0 + rng.normal(0, 2, size=z0.shape)
    p, v, p00, p01, p11 = kf.initiate(z0, fps)
    kf.predict(p, v, p00, p01, p11, dt, fps)
    prior = p.copy(), p00.copy()
    kf.update(p, v, p00, p01, p11, z1)
    for i, (x, P) in enumerate(_full_kalman_reference(z0, dt, z1, fps)):
        np.testing.assert_allclose(p[i], x[:4], rtol=1e-9)
        np.testing.assert_allclose(v[i], x[4:], rtol=1e-9, atol=1e-9)
        np.testing.assert_allclose(p00[i], np.diag(P[:4, :4]), rtol=1e-9)
        np.testing.assert_allclose(p01[i], np.diag(P[:4, 4:]), rtol=1e-9)
        np.testing.assert_allclose(p11[i], np.diag(P[4:, 4:]), rtol=1e-9)
    # the update pulls the state towards the measurement and shrinks the uncertainty
    assert np.all(np.abs(p - z1) <= np.abs(prior[0] - z1) + 1e-9)
    assert np.all(p00 < prior[1])


def test_assign_is_optimal_with_the_lone_pair_shortcut():
    from scipy.optimize import linear_sum_assignment

    rng = np.random.default_rng(5)
    for trial in range(200):
        n, m = rng.integers(1, 12, size=2)
        cost = rng.uniform(0, 1, size=(n, m))
        cost[rng.uniform(size=(n, m)) < 0.7] = np.inf          # sparse, like IoU gating
        limit = 0.8
        rows, cols = assign(cost, limit)
        assert len(set(rows.tolist())) == rows.size and len(set(cols.tolist())) == cols.size
        assert np.all(cost[rows, cols] <= limit)
        # reference: unmatched costs limit/2 per side, so a pair is worth taking iff <= limit
        big = np.where(cost <= limit, cost, 1e6)
        ext = np.full((n + m, m + n), 1e6)
        ext[:n, :m] = big
        ext[:n, m:] = np.where(np.eye(n) > 0, limit / 2, 1e6)
        ext[n:, :m] = np.where(np.eye(m) > 0, limit / 2, 1e6)
        ext[n:, m:] = 0
        r, c = linear_sum_assignment(ext)
        ref = ext[r, c].sum()
        got = cost[rows, cols].sum() + (n - rows.size + m - cols.size) * limit / 2
        assert got == pytest.approx(ref, abs=1e-9), trial


def test_assign_few_rows_many_columns_is_optimal():
    """The store linker's shape: a few heads against hundreds of visits, most pairs feasible
    (each row keeps its k cheapest columns; one row takes its cheapest)."""
    from scipy.optimize import linear_sum_assignment

    rng = np.random.default_rng(11)
    for trial in range(200):
        n, m = int(rng.integers(1, 5)), int(rng.integers(10, 80))
        cost = rng.uniform(0, 1, size=(n, m))
        cost[rng.uniform(size=(n, m)) < 0.2] = np.inf
        if trial % 3 == 0:
            cost[:, : m // 2] = cost[0, : m // 2]  # rows that all want the same cheap columns
        limit = 0.9
        rows, cols = assign(cost, limit)
        assert len(set(cols.tolist())) == cols.size and np.all(cost[rows, cols] <= limit)
        ok = cost <= limit
        r, c = linear_sum_assignment(np.where(ok, cost - limit, 0.0))  # a pair pays cost - limit < 0 if taken
        ref = sum(cost[i, j] - limit for i, j in zip(r, c) if ok[i, j])
        assert (cost[rows, cols] - limit).sum() == pytest.approx(ref, abs=1e-9), trial


def test_iou_matrix():
    a = np.array([[0, 0, 10, 10], [0, 0, 0, 0]], np.float64)
    b = np.array([[0, 0, 10, 10], [5, 0, 15, 10], [20, 20, 30, 30]], np.float64)
    np.testing.assert_allclose(iou_matrix(a, b), [[1, 1 / 3, 0], [0, 0, 0]])


def test_box_conversions_are_exact():
    rng = np.random.default_rng(0)
    b = rng.uniform(0, 2000, size=(50, 4))
    b[:, 2:] += b[:, :2] + rng.uniform(0, 3, size=(50, 2))
    b[:5, 2] = b[:5, 0]                                    # zero width
    c = kf.xyxy_to_cxcywh(b)
    assert np.array_equal(c[:, 0], (b[:, 0] + b[:, 2]) * 0.5) and np.array_equal(c[:, 2], b[:, 2] - b[:, 0])
    assert np.array_equal(c[:, 1], (b[:, 1] + b[:, 3]) * 0.5) and np.array_equal(c[:, 3], b[:, 3] - b[:, 1])
    half = np.maximum(c[:, 2:], kf.MIN_SIDE) * 0.5
    assert np.array_equal(kf.cxcywh_to_xyxy(c), np.concatenate([c[:, :2] - half, c[:, :2] + half], axis=1))


def test_stacked_kalman_equals_per_array_functions():
    rng = np.random.default_rng(1)
    z0 = np.column_stack([rng.uniform(0, 1000, (7, 2)), rng.uniform(0.5, 300, (7, 2))])
    a = list(kf.initiate(z0, FPS))
    a[1] = rng.normal(0, 50, size=(7, 4))
    st = np.stack([x.copy() for x in a])
    kf.predict(*a, 0.08, FPS)
    kf.predict_stacked(st, 0.08, FPS)
    assert all(np.array_equal(x, y) for x, y in zip(a, st))
    z1 = z0 + rng.normal(0, 5, size=z0.shape)
    kf.update(*a, z1)
    kf.update_stacked(st, z1)
    assert all(np.array_equal(x, y) for x, y in zip(a, st))


def test_iou_kernel_matches_the_textbook_formula_bit_for_bit():
    """The one IoU kernel (rows layout, used by the tracker) against the plain [N, 4] formula."""
    rng = np.random.default_rng(2)
    a = rng.uniform(0, 200, size=(6, 4))
    a[:, 2:] += a[:, :2]
    b = rng.uniform(0, 200, size=(9, 4))
    b[:, 2:] += b[:, :2]
    b[0, 2:] = b[0, :2]                                    # a box of no area
    area = lambda x: (x[:, 2] - x[:, 0]) * (x[:, 3] - x[:, 1])  # noqa: E731
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    wh = np.clip(np.minimum(a[:, None, 2:], b[None, :, 2:]) - lt, 0, None)
    inter = wh[..., 0] * wh[..., 1]
    union = area(a)[:, None] + area(b)[None, :] - inter
    ref = np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)
    assert np.array_equal(iou_rows(a.T, area(a), np.ascontiguousarray(b.T), area(b)), ref)
    assert np.array_equal(iou_matrix(a, b), ref)
    pts = np.array([[5.0, 5, 5, 5]])                       # no area on either side: 0, not nan
    assert np.array_equal(iou_rows(pts.T, area(pts), pts.T.copy(), area(pts)), [[0.0]])


def test_assign_equals_the_full_solver():
    import lap

    rng = np.random.default_rng(3)
    for _ in range(200):
        t, n = rng.integers(1, 8, size=2)
        cost = rng.uniform(0, 1, size=(t, n))
        cost[rng.uniform(size=(t, n)) < 0.6] = np.inf
        rows, cols = assign(cost, 0.5)
        ok = cost <= 0.5
        _, x, _ = lap.lapjv(np.where(ok, cost, 2.0), extend_cost=True, cost_limit=0.5)
        ref = sorted((r, int(c)) for r, c in enumerate(x) if c >= 0 and ok[r, c])
        assert sorted(zip(rows.tolist(), cols.tolist())) == ref or np.isclose(
            cost[rows, cols].sum() + 0.25 * (t + n - 2 * len(rows)),
            sum(cost[r, c] for r, c in ref) + 0.25 * (t + n - 2 * len(ref)))
