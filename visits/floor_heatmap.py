"""The store's floor heatmap: person-seconds per floor cell (metres) across all cameras, with
exponential time decay, hotspots, and a PNG over the floor plan.

    fh = FloorHeatmap(store.floor, "store-1", half_life_s=900)
    fh.add_path(path)                    # float64[P, 3] rows (t, x, y): one person's floor path
    rec = fh.report(t)                   # FloorHeatmapRecord, normalised to [0, 1]
    save_floor_png("floor.png", rec, store.floor)

The grid covers the plan's bounds (``FloorPlan.bounds``) in cells of ``FloorPlan.cell_m``:
cell (r, c) is x in [x0 + c * cell_m, ...), y in [y0 + r * cell_m, ...). Each path sample adds
its time step (to the next sample, at most ``max_step_s`` so a gap in a path adds little; the
last sample adds ``step_s``, the paths' sampling step) to the cell it falls in; samples off
the grid (or not finite) are ignored. The decay is the camera heatmap's (``analytics.heatmap``):
weights grow as 2^(t / half_life) from a reference time and the grid is rescaled when they
would overflow, so every sample decays from its own time whatever order paths arrive in.
Paths wait in a list and are added together (one compiled pass, ``_accumulate``) when the grid
is read, or once ``batch_rows`` samples wait: a path costs a list append, not a dozen numpy
calls. Hotspots and the PNG colouring are the camera heatmap's too.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from analytics.floor import FloorPlan
from analytics.heatmap import overlay
from analytics.records import FloorHeatmapRecord, Hotspot
from analytics.tracklets import PATH_STEP_S
from core.jit import jit


class FloorHeatmap:
    def __init__(self, plan: FloorPlan, store_id: str, half_life_s: float = 900.0, hotspots: int = 5,
                 hotspot_min: float = 0.5, step_s: float = PATH_STEP_S, max_step_s: float = 2.0,
                 batch_rows: int = 100_000) -> None:
        if not half_life_s > 0:
            raise ValueError(f"half_life_s must be > 0, not {half_life_s!r}")
        self.plan = plan
        self.store_id = store_id
        self.half_life_s = float(half_life_s)
        self.n_hotspots = int(hotspots)
        self.hotspot_min = float(hotspot_min)
        self.step_s = float(step_s)
        self.max_step_s = float(max_step_s)
        x0, y0, x1, y1 = plan.bounds
        self.cell_m = float(plan.cell_m)
        self.origin = (x0, y0)
        self.cols = max(1, math.ceil((x1 - x0) / self.cell_m - 1e-9))
        self.rows = max(1, math.ceil((y1 - y0) / self.cell_m - 1e-9))
        self.grid = np.zeros((self.rows, self.cols))  # decayed person-seconds, scaled by 2^-(t_ref/hl)
        self._t_ref: float | None = None
        self._last_t: float | None = None
        self.batch_rows = int(batch_rows)
        self._pending: list[np.ndarray] = []  # paths not in the grid yet
        self._pending_rows = 0
        compile_kernels()

    def add_path(self, path: np.ndarray) -> None:
        """One person's floor path: float[P, 3] rows (t, x, y), t in seconds, x, y in floor metres."""
        p = np.asarray(path, np.float64).reshape(-1, 3)
        if len(p):
            self._pending.append(p)
            self._pending_rows += len(p)
            if self._pending_rows >= self.batch_rows:
                self._add_pending()

    def _add_pending(self) -> None:
        paths, self._pending, self._pending_rows = self._pending, [], 0
        if not paths:
            return
        p = np.concatenate(paths)
        lens = [len(q) for q in paths]
        ends = np.cumsum(lens)  # each path's rows: up to here
        t_max = _ordered_t_max(p, ends)
        if not t_max == t_max:
            # a path not in time order, or samples without a time (rare): sorted, those left out
            which = np.repeat(np.arange(len(paths)), lens)
            keep = np.isfinite(p[:, 0])
            p, which = p[keep], which[keep]
            if len(p) == 0:
                return
            order = np.lexsort((p[:, 0], which))  # each path in time order, paths apart
            p, which = p[order], which[order]
            ends = np.append(np.nonzero(which[1:] != which[:-1])[0] + 1, len(p))
            t_max = float(p[:, 0].max())
        if self._t_ref is None:
            self._t_ref = t_max
        expo_max = (t_max - self._t_ref) / self.half_life_s
        if expo_max > 40:  # rebase before the weights overflow
            self.grid *= 2.0 ** -expo_max
            self._t_ref = t_max
        self._last_t = t_max if self._last_t is None else max(self._last_t, t_max)
        _accumulate(self.grid, p, ends, self.step_s, self.max_step_s, self.origin[0], self.origin[1], self.cell_m,
                    self._t_ref, self.half_life_s)

    def values(self, t: float | None = None) -> np.ndarray:
        """float[rows, cols]: decayed person-seconds per cell as of ``t`` (default: the newest sample)."""
        self._add_pending()
        if self._t_ref is None:
            return np.zeros_like(self.grid)
        t = self._last_t if t is None else t
        return self.grid * 2.0 ** (-(t - self._t_ref) / self.half_life_s)

    def hotspots(self, norm: np.ndarray) -> tuple[Hotspot, ...]:
        """Local maxima of the lightly smoothed, normalised grid, strongest first (as ``analytics.heatmap``);
        x, y normalised [0, 1] over the grid (cell centres)."""
        if self.n_hotspots == 0 or not norm.any():
            return ()
        from scipy.ndimage import gaussian_filter, maximum_filter

        sm = gaussian_filter(norm, 1.0)
        if sm.max() > 0:
            sm = sm / sm.max()
        peak = (sm == maximum_filter(sm, size=5)) & (sm >= self.hotspot_min)
        ys, xs = np.nonzero(peak)
        order = np.argsort(-sm[ys, xs], kind="stable")[: self.n_hotspots]
        return tuple(Hotspot(round(float((xs[i] + 0.5) / self.cols), 4), round(float((ys[i] + 0.5) / self.rows), 4),
                             round(float(sm[ys[i], xs[i]]), 4)) for i in order)

    def report(self, t: float) -> FloorHeatmapRecord:
        v = self.values(t)
        m = float(v.max())
        norm = v / m if m > 0 else v
        return FloorHeatmapRecord(self.store_id, float(t), (self.cols, self.rows), self.cell_m, self.origin,
                                  norm.tolist(), self.hotspots(norm))

    def reset(self) -> None:
        self._pending, self._pending_rows = [], 0
        self.grid[:] = 0
        self._t_ref = self._last_t = None


_compiled = False


def compile_kernels() -> None:
    """Compile (or load from numba's cache) the passes below once per process, when a heatmap is
    made: a live run's first report does not wait for the compiler."""
    global _compiled
    if not _compiled:
        p, ends = np.zeros((1, 3)), np.ones(1, np.int64)
        _accumulate(np.zeros((1, 1)), p, ends, 1.0, 1.0, 0.0, 0.0, 1.0, _ordered_t_max(p, ends), 1.0)
        _compiled = True


@jit
def _ordered_t_max(p, ends):  # pragma: no cover (compiled)
    """The latest time in ``p`` (float64[P, 3] rows (t, x, y), paths ending at rows ``ends``), NaN
    when a path goes back in time or has a time that is not finite."""
    t_max, start = -math.inf, 0
    for end in ends:
        for i in range(start, end):
            t = p[i, 0]
            if not (math.isfinite(t) and (i == start or t >= p[i - 1, 0])):
                return math.nan
            if t > t_max:
                t_max = t
        start = end
    return t_max


@jit
def _accumulate(grid, p, ends, step_s, max_step_s, x0, y0, cell, t_ref, half_life):  # pragma: no cover (compiled)
    """Adds paths in time order (``p``, ``ends`` as ``_ordered_t_max``) to ``grid`` (float64[rows, cols]):
    each sample its step to the path's next sample (at most ``max_step_s``; a path's last: ``step_s``),
    decayed as 2^((t - t_ref) / half_life), in its cell; samples off the grid (or NaN) left out. One
    pass where NumPy took a dozen over every sample."""
    rows, cols = grid.shape
    start = 0
    for end in ends:
        for i in range(start, end):
            w = min(p[i + 1, 0] - p[i, 0], max_step_s) if i + 1 < end else step_s
            cx = np.floor((p[i, 1] - x0) / cell)
            cy = np.floor((p[i, 2] - y0) / cell)
            if w > 0.0 and 0.0 <= cx < cols and 0.0 <= cy < rows:  # (NaN compares False)
                grid[int(cy), int(cx)] += w * 2.0 ** ((p[i, 0] - t_ref) / half_life)
        start = end


def floor_canvas(record: FloorHeatmapRecord, plan: FloorPlan) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """(BGR background, (x, y, w, h) of the grid in it, pixels): the plan image when the plan has one
    (pixels = metres * ``plan_px_per_m`` from its top-left), else a dark canvas just covering the grid
    with the floor outline and doors drawn."""
    import cv2

    s = float(plan.plan_px_per_m)
    cols, rows = int(record.resolution[0]), int(record.resolution[1])
    gx, gy = record.origin
    gw, gh = max(1, round(cols * record.cell_m * s)), max(1, round(rows * record.cell_m * s))
    if plan.plan_image is not None:
        img = cv2.imread(str(plan.plan_image), cv2.IMREAD_COLOR)
        if img is None:
            raise OSError(f"cannot read the floor plan image {plan.plan_image}")
        return img, (round(gx * s), round(gy * s), gw, gh)
    img = np.full((gh, gw, 3), 40, np.uint8)

    def px(xy: np.ndarray) -> np.ndarray:
        return np.round((np.asarray(xy, np.float64).reshape(-1, 2) - (gx, gy)) * s).astype(np.int32)

    cv2.polylines(img, [px(plan.outline)], True, (200, 200, 200), 2, cv2.LINE_AA)
    for door in plan.doors.values():
        a, b = px(np.stack([door.a, door.b]))
        cv2.line(img, tuple(int(v) for v in a), tuple(int(v) for v in b), (80, 200, 80), 4, cv2.LINE_AA)
    return img, (0, 0, gw, gh)


def floor_image(record: FloorHeatmapRecord, plan: FloorPlan, alpha: float = 0.55) -> np.ndarray:
    """BGR uint8: the floor grid colour-mapped over the plan image (its size) or the drawn outline
    (the grid's extent at ``plan_px_per_m``), hotspots circled."""
    import cv2

    img, (x, y, w, h) = floor_canvas(record, plan)
    H, W = img.shape[:2]
    # the grid may reach past the plan picture: pad, overlay, crop back
    pad = (max(0, -y), max(0, y + h - H), max(0, -x), max(0, x + w - W))  # top, bottom, left, right
    big = cv2.copyMakeBorder(img, *pad, cv2.BORDER_CONSTANT, value=(40, 40, 40)) if any(pad) else img.copy()
    x0, y0 = x + pad[2], y + pad[0]
    big[y0:y0 + h, x0:x0 + w] = overlay(record.data, big[y0:y0 + h, x0:x0 + w], alpha=alpha,
                                        hotspots=record.hotspots)
    return big[pad[0]:pad[0] + H, pad[2]:pad[2] + W]


def save_floor_png(path: str | Path, record: FloorHeatmapRecord, plan: FloorPlan) -> Path:
    import cv2

    path = Path(path)
    if not cv2.imwrite(str(path), floor_image(record, plan)):
        raise OSError(f"cannot write floor heatmap PNG {path}")
    return path
