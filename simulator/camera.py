"""What one camera sees of the floor: true boxes (ground truth) and noisy detections.

Boxes stand on the feet: a person ``height_m`` tall at floor point p is a box whose bottom
centre is ``project(p)`` and whose height is ``height_m`` times the pixels per metre at p
(perspective). The detector model adds what a real one does: missed boxes (more often
when partly out of frame or behind someone nearer), box jitter, a spread of confidences
(some below the tracker's high threshold) and occasional false positives.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from simulator import world as W
from simulator.agents import Positions, Store

PERSON, CART = 0, 1
CLASS_NAMES = {PERSON: "person", CART: "cart"}
CART_ID_OFFSET = 1_000_000  # truth id of customer c's cart


@dataclass(frozen=True)
class NoiseModel:
    p_miss: float = 0.04
    p_miss_cart: float = 0.08
    p_miss_occluded: float = 0.45  # mostly hidden behind a nearer person
    jitter: float = 0.03  # box edge noise, fraction of box size (1 sigma)
    fp_per_frame: float = 0.03
    score_mean: float = 0.78
    score_sd: float = 0.1
    min_score: float = 0.25  # the detector's own threshold


@dataclass
class Objects:
    """True objects in view, sorted by frame: K rows."""

    frame: np.ndarray  # int64[K]
    truth_id: np.ndarray  # int64[K]: customer id, or CART_ID_OFFSET + customer id
    cls: np.ndarray  # int32[K]
    xyxy: np.ndarray  # float32[K, 4], clipped to the image
    feet: np.ndarray  # float64[K, 2], unclipped bottom centre (where the person stands)
    visible: np.ndarray  # float64[K]: fraction of the box inside the image
    full: np.ndarray | None = None  # float64[K, 4]: the box before clipping (renderer)
    src: np.ndarray | None = None  # int64[K]: row in the ``Positions`` it came from


def objects_in_view(store: Store, cam: W.Camera, pos: Positions) -> Objects:
    heights = _heights(store)
    carts = _carts(store)
    parts = []
    allrows = np.arange(len(pos.frame))
    for cls in (PERSON, CART):
        if cls == PERSON:
            xy, cid, frame, src = pos.xy, pos.cid, pos.frame, allrows
        else:
            has = carts[pos.cid]
            xy, cid, frame, src = pos.xy[has] + 0.75 * pos.head[has], pos.cid[has], pos.frame[has], allrows[has]
        seen = cam.sees(xy)
        xy, cid, frame, src = xy[seen], cid[seen], frame[seen], src[seen]
        f = cam.project(xy)
        ppm = cam.px_per_m(xy)
        if cls == PERSON:
            h = heights[cid] * ppm
            w = W.PERSON_WIDTH_M * ppm
        else:
            w, h = W.CART_SIZE_M[0] * ppm, W.CART_SIZE_M[1] * ppm
        box = np.stack([f[:, 0] - w / 2, f[:, 1] - h, f[:, 0] + w / 2, f[:, 1]], 1)
        parts.append((frame, cid + (CART_ID_OFFSET if cls == CART else 0), np.full(len(cid), cls, np.int32), box, f,
                      src))
    frame = np.concatenate([p[0] for p in parts])
    order = np.argsort(frame, kind="stable")
    box = np.concatenate([p[3] for p in parts])[order]
    iw, ih = W.IMAGE_SIZE
    clipped = np.stack([np.clip(box[:, 0], 0, iw), np.clip(box[:, 1], 0, ih), np.clip(box[:, 2], 0, iw),
                        np.clip(box[:, 3], 0, ih)], 1)
    area = np.maximum((box[:, 2] - box[:, 0]) * (box[:, 3] - box[:, 1]), 1e-6)
    vis = np.maximum(clipped[:, 2] - clipped[:, 0], 0) * np.maximum(clipped[:, 3] - clipped[:, 1], 0) / area
    return Objects(frame[order], np.concatenate([p[1] for p in parts])[order],
                   np.concatenate([p[2] for p in parts])[order], clipped.astype(np.float32),
                   np.concatenate([p[4] for p in parts])[order], vis, box,
                   np.concatenate([p[5] for p in parts])[order])


def _heights(store: Store) -> np.ndarray:
    h = getattr(store, "_heights", None)
    if h is None:
        h = np.array([c.height_m for c in store.customers] or [1.7])
        store._heights = h  # type: ignore[attr-defined]
    return h


def _carts(store: Store) -> np.ndarray:
    c = getattr(store, "_carts", None)
    if c is None:
        c = np.array([cu.cart for cu in store.customers] or [False])
        store._carts = c  # type: ignore[attr-defined]
    return c


def occluded(obj: Objects) -> np.ndarray:
    """bool[K]: mostly hidden (>60 % of the box) behind a nearer (lower feet) person in the same frame."""
    k = len(obj.frame)
    out = np.zeros(k, bool)
    if k < 2:
        return out
    # candidate pairs within a frame: objects are sorted by frame, frames hold few people
    starts = np.searchsorted(obj.frame, obj.frame, side="left")
    ends = np.searchsorted(obj.frame, obj.frame, side="right")
    n = ends - starts
    i = np.repeat(np.arange(k), n)
    j = np.repeat(starts, n) + (np.arange(n.sum()) - np.repeat(np.cumsum(n) - n, n))
    m = (i != j) & (obj.cls[j] == PERSON) & (obj.feet[j, 1] > obj.feet[i, 1] + 2.0)
    i, j = i[m], j[m]
    a, b = obj.xyxy[i], obj.xyxy[j]
    iw = np.clip(np.minimum(a[:, 2], b[:, 2]) - np.maximum(a[:, 0], b[:, 0]), 0, None)
    ih = np.clip(np.minimum(a[:, 3], b[:, 3]) - np.maximum(a[:, 1], b[:, 1]), 0, None)
    area = np.maximum((a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1]), 1e-6)
    hid = (iw * ih / area) > 0.6
    out[i[hid]] = True
    return out


@dataclass
class Detections:
    frame: np.ndarray  # int64[D], sorted
    xyxy: np.ndarray  # float32[D, 4]
    scores: np.ndarray  # float32[D]
    cls: np.ndarray  # int32[D]
    truth_id: np.ndarray  # int64[D]: -1 for false positives


def detect(obj: Objects, n_frames: int, cam: W.Camera, rng: np.random.Generator,
           noise: NoiseModel = NoiseModel()) -> Detections:
    k = len(obj.frame)
    p_miss = np.where(obj.cls == PERSON, noise.p_miss, noise.p_miss_cart)
    p_miss = p_miss + (1 - p_miss) * np.clip((0.6 - obj.visible) / 0.6, 0, 1)  # partly out of frame
    p_miss = np.where(occluded(obj), np.maximum(p_miss, noise.p_miss_occluded), p_miss)
    hit = rng.random(k) >= p_miss
    box = obj.xyxy[hit].astype(np.float64)
    if len(box):
        wh = np.stack([box[:, 2] - box[:, 0], box[:, 3] - box[:, 1]] * 2, 1)
        box = box + rng.normal(0.0, noise.jitter, box.shape) * wh
    score = np.clip(rng.normal(noise.score_mean, noise.score_sd, len(box)) * np.sqrt(obj.visible[hit]), 0.0, 0.99)
    # false positives: person-sized boxes anywhere on the floor in view
    n_fp = rng.poisson(noise.fp_per_frame * n_frames)
    x0, y0, x1, y1 = cam.floor_rect
    fxy = np.stack([rng.uniform(x0, x1, n_fp), rng.uniform(y0, y1, n_fp)], 1)
    ff = cam.project(fxy)
    ppm = cam.px_per_m(fxy)
    fbox = np.stack([ff[:, 0] - 0.25 * ppm, ff[:, 1] - 1.6 * ppm, ff[:, 0] + 0.25 * ppm, ff[:, 1]], 1)
    frame = np.concatenate([obj.frame[hit], rng.integers(0, max(n_frames, 1), n_fp)])
    box = np.concatenate([box, fbox])
    score = np.concatenate([score, rng.uniform(0.25, 0.55, n_fp)])
    cls = np.concatenate([obj.cls[hit], np.zeros(n_fp, np.int32)])
    tid = np.concatenate([obj.truth_id[hit], np.full(n_fp, -1, np.int64)])
    iw, ih = W.IMAGE_SIZE
    box = np.stack([np.clip(box[:, 0], 0, iw - 1), np.clip(box[:, 1], 0, ih - 1), np.clip(box[:, 2], 1, iw),
                    np.clip(box[:, 3], 1, ih)], 1)
    ok = (score >= noise.min_score) & (box[:, 2] - box[:, 0] > 2) & (box[:, 3] - box[:, 1] > 2)
    order = np.argsort(frame[ok], kind="stable")
    return Detections(frame[ok][order], box[ok][order].astype(np.float32), score[ok][order].astype(np.float32),
                      cls[ok][order].astype(np.int32), tid[ok][order])
