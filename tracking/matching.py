"""Pairwise costs, box geometry and the assignment step (vectorised; one lap call per stage).

The project's one IoU kernel lives here (``iou_rows``; ``iou_matrix`` for [N, 4] boxes;
``intersection_rows`` for coverage): the tracker, its tests and benchmarks all call it.
``near_edge`` tells boxes at the edge of a camera's view (someone walking out of it).
"""
from __future__ import annotations

import lap
import numpy as np
from scipy.optimize import linear_sum_assignment

SMALL = 64  # cells of a contested sub-problem solved by scipy instead of lapjv (cheaper call)

_ZERO = np.float64(0.0)
# a box within this share of its own size of the edge of the view is at the edge: its person
# is walking out of the view (not hidden in it)
EDGE_MARGIN = 0.1


def intersection_rows(at: np.ndarray, bt: np.ndarray) -> np.ndarray:
    """Intersection area between boxes given as coordinate rows, at [4, T] and bt [4, N]
    (x1, y1, x2, y2 rows; bt best contiguous) -> [T, N]. Rows, not boxes, because every
    operation then runs along the N axis, whole rows at a time (the tracker's hot path)."""
    lt = np.maximum(at[:2, :, None], bt[:2, None, :])
    rb = np.minimum(at[2:, :, None], bt[2:, None, :])
    np.subtract(rb, lt, out=rb)
    np.maximum(rb, _ZERO, out=rb)
    return rb[0] * rb[1]


def iou_rows(at: np.ndarray, area_a: np.ndarray, bt: np.ndarray, area_b: np.ndarray) -> np.ndarray:
    """The IoU kernel: boxes as coordinate rows (see ``intersection_rows``) with their areas
    already known -> float64[T, N]; 0 where the union is empty. T may be 0; N must not be."""
    if at.shape[1] == 0:
        return np.zeros((0, bt.shape[1]))
    inter = intersection_rows(at, bt)
    union = area_a[:, None] + area_b[None, :]
    union -= inter
    if union.min() > 0:           # always, unless boxes of no area meet
        return np.divide(inter, union, out=inter)
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU between boxes a [T, 4] and b [N, 4] (xyxy) -> float64[T, N]; 0 for empty boxes."""
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    if a.shape[0] == 0 or b.shape[0] == 0:
        return np.zeros((a.shape[0], b.shape[0]))
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    return iou_rows(a.T, area_a, np.ascontiguousarray(b.T), area_b)


def near_edge(b: np.ndarray, margin: float, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """bool[len(b)]: boxes b [K, 4] xyxy within ``margin`` of their own size of the edge of the
    view (x1, y1 of ``lo``, x2, y2 of ``hi``: the area detections have covered)."""
    m = margin * (b[:, 2:] - b[:, :2])
    return ((b[:, :2] - m < lo[:2]) | (b[:, 2:] + m > hi[2:])).any(axis=1)


def cosine_distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """1 - cos between L2-normalised rows of a [T, D] and b [N, D] -> float64[T, N] in [0, 2]."""
    if a.shape[0] == 0 or b.shape[0] == 0:
        return np.zeros((a.shape[0], b.shape[0]))
    d = 1.0 - a.astype(np.float64) @ b.astype(np.float64).T
    np.maximum(d, 0.0, out=d)      # np.clip(d, 0, 2), without its Python wrapper
    return np.minimum(d, 2.0, out=d)


def assign(cost: np.ndarray, limit: float) -> tuple[np.ndarray, np.ndarray]:
    """Minimum-cost matching; pairs costing more than ``limit`` (or inf) are never matched.

    Returns (rows, cols) int64[K] of the matched pairs. Most rows in a tracking cost matrix
    have a single feasible column that no other row wants: those pairs are taken directly
    (an isolated pair is part of every optimal matching), and only the contested rest goes
    to the Jonker-Volgenant solver, which keeps its matrices small in crowds. Few rows against
    many columns (the store linker: a few heads, hundreds of open visits) keep only each row's
    k cheapest columns (k contested rows), and one contested row takes its cheapest.
    """
    feasible = cost <= limit          # False for inf and nan
    per_row = feasible.sum(axis=1)
    n_rows = np.count_nonzero(per_row)
    if n_rows == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    per_col = feasible.sum(axis=0)
    if per_row.max() == 1 and per_col.max() == 1:     # no contest at all (the usual case)
        rows = per_row.nonzero()[0]
        return rows, feasible[rows].argmax(axis=1)
    lone_r = (per_row == 1).nonzero()[0]
    lone_c = feasible[lone_r].argmax(axis=1)
    iso = per_col[lone_c] == 1
    rows, cols = lone_r[iso], lone_c[iso]
    if rows.size < n_rows:            # contested rows left: the solver decides those
        rest = per_row > 0
        rest[rows] = False
        rest_r = rest.nonzero()[0]
        k = len(rest_r)
        if k == 1:                    # one row: its cheapest column
            r = int(rest_r[0])
            c = int(np.argmin(np.where(feasible[r], cost[r], np.inf)))
            return (np.append(rows, r).astype(np.int64, copy=False),
                    np.append(cols, c).astype(np.int64, copy=False))
        rest_c = feasible[rest_r].any(axis=0).nonzero()[0]
        if len(rest_c) > 2 * k:
            # a row matched outside its k cheapest columns could swap to one of them left free
            # (k - 1 other rows): the union of those is enough, and keeps the solver's matrix k-sized
            sub = np.where(feasible[rest_r][:, rest_c], cost[rest_r][:, rest_c], np.inf)
            near = np.argpartition(sub, k - 1, axis=1)[:, :k]
            rest_c = rest_c[np.unique(near)]
        sub = cost[rest_r][:, rest_c]
        if k * len(rest_c) <= SMALL:
            # lapjv's wrapper costs more than a tiny problem: scipy's solver on the gain of each pair
            # over leaving both sides unmatched (limit / 2 each), 0 where a pair gains nothing
            gain = np.where(feasible[rest_r][:, rest_c], np.minimum(sub - limit, 0.0), 0.0)
            r, c = linear_sum_assignment(gain)
        else:
            sub = np.where(feasible[rest_r][:, rest_c], sub, 2.0 * limit + 1.0)
            _, x, _ = lap.lapjv(sub, extend_cost=True, cost_limit=limit)
            r = (x >= 0).nonzero()[0]
            c = x[r]
        ok = sub[r, c] <= limit
        rows = np.concatenate([rows, rest_r[r[ok]]])
        cols = np.concatenate([cols, rest_c[c[ok]]])
    return rows.astype(np.int64, copy=False), cols.astype(np.int64, copy=False)


def unambiguous(cost: np.ndarray, margin: float) -> np.ndarray:
    """Copy of ``cost`` with inf for every pair that is not clearly the best of both its row
    and its column: the second-best finite cost in that row and in that column must be at least
    ``margin`` dearer. Used for re-identification by appearance alone, where a crowd holds many
    look-alikes and a near tie is more often a stranger than the lost person."""
    out = np.full_like(cost, np.inf, dtype=np.float64)
    t, n = cost.shape
    if t == 0 or n == 0:
        return out
    c = np.where(np.isfinite(cost), cost, np.inf)
    r_best = c.argmin(axis=1)
    ok = np.isfinite(c[np.arange(t), r_best])
    col_best = c.argmin(axis=0)
    ok &= col_best[r_best] == np.arange(t)          # also its column's best
    if n > 1:
        r2 = np.partition(c, 1, axis=1)[:, 1]
    else:
        r2 = np.full(t, np.inf)
    if t > 1:
        c2 = np.partition(c, 1, axis=0)[1]
    else:
        c2 = np.full(n, np.inf)
    best = c[np.arange(t), r_best]
    with np.errstate(invalid="ignore"):           # inf - inf: no finite runner-up, fine
        ok &= ~((r2 - best < margin) | (c2[r_best] - best < margin))
    rows = np.flatnonzero(ok)
    out[rows, r_best[rows]] = c[rows, r_best[rows]]
    return out
