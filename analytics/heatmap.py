"""Occupancy heatmaps: person-seconds per grid cell with exponential time decay, hotspots,
and a PNG overlay.

Each frame adds the frame's time step to the cell under each person's feet; older
presence fades with half-life ``half_life_s``. The decay is applied lazily (weights grow
as 2^(t/half_life) and the grid is rescaled now and then), so a frame costs one
``np.add.at`` whatever the grid size.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from analytics.config import HeatmapSettings
from analytics.records import HeatmapRecord, Hotspot


class Heatmap:
    def __init__(self, stream_id: str, image_size: tuple[int, int], settings: HeatmapSettings = HeatmapSettings(),
                 max_step_s: float = 1.0) -> None:
        self.stream_id = stream_id
        self.w, self.h = image_size
        self.cols, self.rows = settings.resolution
        self.s = settings
        self.max_step_s = max_step_s
        self.grid = np.zeros((self.rows, self.cols))  # decayed person-seconds, scaled by 2^-(t_ref/hl)
        self._t_ref: float | None = None
        self._last_t: float | None = None
        self._cells: list[np.ndarray] = []  # flat cell indices and weights not yet added to the grid
        self._weights: list[float] = []
        self._counts: list[int] = []

    def update(self, t: float, feet_xy: np.ndarray) -> None:
        if self._t_ref is None:
            self._t_ref = t
        dt = 0.0 if self._last_t is None else min(max(t - self._last_t, 0.0), self.max_step_s)
        self._last_t = t
        if len(feet_xy) == 0 or dt == 0.0:
            return
        expo = (t - self._t_ref) / self.s.half_life_s
        if expo > 40:  # rebase before the weights overflow
            self._apply()
            self.grid *= 2.0 ** -expo
            self._t_ref, expo = t, 0.0
        self._cells.append(feet_xy)  # binned in _apply, many frames at once
        self._weights.append(dt * 2.0 ** expo)
        self._counts.append(len(feet_xy))
        if len(self._cells) >= 512:  # one bincount per many frames: the per-frame cost stays tiny
            self._apply()

    def _apply(self) -> None:
        if not self._cells:
            return
        xy = np.concatenate(self._cells)
        w = np.repeat(np.array(self._weights), self._counts)
        cx = np.floor(xy[:, 0] * (self.cols / self.w)).astype(np.int64)
        cy = np.floor(xy[:, 1] * (self.rows / self.h)).astype(np.int64)
        ok = (cx >= 0) & (cx < self.cols) & (cy >= 0) & (cy < self.rows)
        cells = cy[ok] * self.cols + cx[ok]
        self.grid += np.bincount(cells, w[ok], minlength=self.rows * self.cols).reshape(self.rows, self.cols)
        self._cells, self._weights, self._counts = [], [], []

    def values(self, t: float | None = None) -> np.ndarray:
        """float[rows, cols]: decayed person-seconds per cell as of ``t`` (default: last frame)."""
        if self._t_ref is None:
            return np.zeros_like(self.grid)
        self._apply()
        t = self._last_t if t is None else t
        return self.grid * 2.0 ** (-(t - self._t_ref) / self.s.half_life_s)

    def hotspots(self, norm: np.ndarray) -> tuple[Hotspot, ...]:
        """Local maxima of the lightly smoothed, normalised grid, strongest first."""
        if self.s.hotspots == 0 or not norm.any():
            return ()
        from scipy.ndimage import gaussian_filter, maximum_filter

        sm = gaussian_filter(norm, 1.0)
        if sm.max() > 0:
            sm = sm / sm.max()
        peak = (sm == maximum_filter(sm, size=5)) & (sm >= self.s.hotspot_min)
        ys, xs = np.nonzero(peak)
        order = np.argsort(-sm[ys, xs])[: self.s.hotspots]
        return tuple(Hotspot(round(float((xs[i] + 0.5) / self.cols), 4), round(float((ys[i] + 0.5) / self.rows), 4),
                             round(float(sm[ys[i], xs[i]]), 4)) for i in order)

    def report(self, t: float) -> HeatmapRecord:
        v = self.values(t)
        m = float(v.max())
        norm = v / m if m > 0 else v
        return HeatmapRecord(self.stream_id, (self.cols, self.rows), max(1, round(self.w / self.cols)),
                             norm.tolist(), self.hotspots(norm), t)

    def reset(self) -> None:
        self.grid[:] = 0
        self._cells, self._weights, self._counts = [], [], []
        self._t_ref = self._last_t = None


def overlay(data: np.ndarray | list, background: np.ndarray | None = None, size: tuple[int, int] = (640, 360),
            alpha: float = 0.55, hotspots=()) -> np.ndarray:
    """BGR uint8 image: the normalised grid (rows x cols, [0, 1]) colour-mapped and blended
    over ``background`` (a camera frame or floor plan, BGR) or a dark canvas of ``size``.

    Shown on a log scale (1 % of the peak -> 0.15): occupancy is heavy-tailed (a till or a
    queue spot collects far more person-seconds than an aisle), so a linear map would show
    the one hot cell and hide the walkways."""
    import cv2

    g = np.clip(np.asarray(data, np.float32), 0.0, 1.0)
    if background is None:
        background = np.full((size[1], size[0], 3), 40, np.uint8)
    h, w = background.shape[:2]
    up = cv2.resize(g, (w, h), interpolation=cv2.INTER_LINEAR)
    up = cv2.GaussianBlur(up, (0, 0), max(w / g.shape[1], 1.0))
    if up.max() > 0:
        up *= g.max() / up.max()  # the blur spreads a hot cell over its neighbours: keep its peak
    disp = np.log1p(99.0 * up) / np.log(100.0)
    u8 = (disp * 255).astype(np.uint8)
    colour = cv2.applyColorMap(u8, cv2.COLORMAP_JET)
    a = np.where(u8 > 0, disp, 0.0)[..., None] * alpha  # cold cells leave the picture untouched
    out = (background.astype(np.float32) * (1 - a) + colour.astype(np.float32) * a).astype(np.uint8)
    for hs in hotspots:
        x, y = (hs.x, hs.y) if hasattr(hs, "x") else (hs["x"], hs["y"])
        cv2.circle(out, (int(x * w), int(y * h)), 9, (255, 255, 255), 2, cv2.LINE_AA)
    return out


def save_overlay(path: str | Path, record: HeatmapRecord, background: np.ndarray | None = None) -> Path:
    import cv2

    path = Path(path)
    img = overlay(record.data, background, hotspots=record.hotspots)
    if not cv2.imwrite(str(path), img):
        raise OSError(f"cannot write heatmap PNG {path}")
    return path
