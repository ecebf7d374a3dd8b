"""Appearance in the tracker: what the re-id embeddings add to association.

Pure functions over the tracker's arrays: T track rows and N detection rows that the tracker
has already selected (``Tracker`` owns the state; these never keep any). Embeddings are
L2-normalised float32 rows; a row without one is flagged False in its ``has``/``ok`` mask.

  clean_crops        which detections' crops are unoccluded (only those feed a track's average);
  emb_distance       cosine distance track x detection, a stand-in value where either has none;
  add_appearance     the appearance term of an overlap stage's cost, added in place;
  reid_cost          cosine distance inside re-identification's motion and view-edge gate;
  update_embeddings  each matched track's running average embedding, written in place.

    from tracking.appearance import emb_distance
    d = emb_distance(track_emb, track_has, det_emb, det_ok, missing=np.nan)   # float64[T, N]
"""
from __future__ import annotations

import numpy as np

from tracking.config import TrackerConfig
from tracking.matching import EDGE_MARGIN, cosine_distance, intersection_rows, near_edge

INF = np.inf
# someone coming back into the view is re-identified within this share of their box's size of
# its edge (a few frames in, by when a new track is confirmed)
REENTRY_MARGIN = 1.0


def clean_crops(boxes: np.ndarray, cand: np.ndarray, area: np.ndarray, boxes_t: np.ndarray,
                max_overlap: float) -> np.ndarray:
    """bool[N]: the candidate detections (``cand``) of which no detection in front (lower bottom
    edge: nearer the camera) covers more than ``max_overlap`` of the box: an occluded person's
    crop partly shows the occluder. boxes float64[N, 4] xyxy, area float64[N], boxes_t the
    boxes as float64[4, N] rows."""
    clean = cand.copy()
    if boxes.shape[0] > 1 and clean.any():
        dd = clean.nonzero()[0]
        bt = boxes_t[:, dd]
        inter = intersection_rows(bt, boxes_t)
        inter[boxes_t[3][None, :] <= bt[3][:, None]] = 0.0      # behind (or itself)
        clean[dd] = inter.max(axis=1) <= max_overlap * area[dd]
    return clean


def emb_distance(t_emb: np.ndarray, t_has: np.ndarray, d_emb: np.ndarray, d_ok: np.ndarray,
                 missing: float) -> np.ndarray:
    """float64[T, N] cosine distance of track embeddings t_emb [T, D] x detection embeddings
    d_emb [N, D]; ``missing`` where the track (t_has False) or the detection (d_ok False) has
    none."""
    e = cosine_distance(t_emb, d_emb)
    e[~(t_has[:, None] & d_ok[None, :])] = missing
    return e


def add_appearance(cost: np.ndarray, t_emb: np.ndarray, t_has: np.ndarray, d_emb: np.ndarray,
                   d_ok: np.ndarray, gate: np.ndarray, cfg: TrackerConfig) -> None:
    """Add appearance_weight * (cosine distance - neutral) to each pair's ``cost`` float64[T, N]
    (in place, term by term: the order of the sums is part of the results); pairs without both
    embeddings add exactly 0.0. A detection two or more tracks reach (``gate`` bool[T, N]: the
    pairs motion admits) needs clear appearance evidence (contested_neutral: a track whose
    person is hidden reaches for a neighbour's box); such a track's other candidate detections
    need some (crowded_neutral)."""
    w = cfg.appearance_weight
    neutral = cfg.appearance_neutral
    cost += w * (emb_distance(t_emb, t_has, d_emb, d_ok, neutral) - neutral)
    if cfg.contested_neutral < neutral:
        contested = np.add.reduce(gate, axis=0) > 1
        if contested.any():
            both = t_has[:, None] & d_ok[None, :]
            cost += (w * (neutral - cfg.contested_neutral)) * (contested[None, :] & both)
            if cfg.crowded_neutral < neutral:
                crowded = ((np.add.reduce(gate, axis=1) > 1)
                           & (gate & contested[None, :]).any(axis=1))
                cost += (w * (neutral - cfg.crowded_neutral)) * (
                    crowded[:, None] & ~contested[None, :] & both)


def _centres(b: np.ndarray) -> np.ndarray:
    return (b[:, :2] + b[:, 2:]) * 0.5


def reid_cost(last_box: np.ndarray, unseen_s: np.ndarray, boxes: np.ndarray, emb_d: np.ndarray,
              max_speed: float, lo: np.ndarray | None, hi: np.ndarray | None) -> np.ndarray:
    """float64[T, N]: the cosine distances ``emb_d`` of lost tracks x detections, INF outside the
    motion gate: a person can have walked at most ``max_speed`` box heights per second in the
    ``unseen_s`` float64[T] seconds since their ``last_box`` float64[T, 4], and keeps roughly
    the same size. With the extent of the view (``lo``: x1, y1; ``hi``: x2, y2; None: not
    known yet) a track last seen at its edge can only come back through an edge."""
    h = np.maximum(last_box[:, 3] - last_box[:, 1], 1.0)[:, None]
    d = _centres(last_box)[:, None, :] - _centres(boxes)[None, :, :]
    dist = np.sqrt((d * d).sum(-1))
    reach = h * (1.0 + max_speed * unseen_s[:, None])
    ratio = (boxes[:, 3] - boxes[:, 1])[None, :] / h
    cost = emb_d.copy()
    cost[(dist > reach) | (ratio < 0.5) | (ratio > 2.0)] = INF
    if lo is not None:
        # a track last seen at the edge of the view walked out of it, and comes back in through
        # an edge: never as someone in the middle of the view (who is most often a person
        # standing half-hidden there, whose own track keeps getting lost)
        left = near_edge(last_box, EDGE_MARGIN, lo, hi)
        if left.any():
            cost[left[:, None] & ~near_edge(boxes, REENTRY_MARGIN, lo, hi)[None, :]] = INF
    return cost


def update_embeddings(emb: np.ndarray, has_emb: np.ndarray, emb_n: np.ndarray, rows: np.ndarray,
                      d: np.ndarray, clean: np.ndarray, scores: np.ndarray, det_emb: np.ndarray,
                      cfg: TrackerConfig) -> None:
    """Fold this frame's detections ``d`` int64[K] into their tracks ``rows`` int64[K] (the
    tracker's emb float32[T, D], has_emb bool[T] and emb_n float64[T], written in place): the
    average of a track's embedding over clean crops only, a running mean over the first views,
    then an EMA; a less confident detection moves it less (momentum -> 1 as the score falls to
    high_thresh). A track seen only occluded so far keeps its first, provisional embedding
    (emb_n 0) until its first clean view replaces it."""
    ok = clean[d]
    upd, dd = rows[ok], d[ok]
    if upd.size == 0:
        return
    trust = (scores[dd] - cfg.high_thresh) / max(1.0 - cfg.high_thresh, 1e-6)
    np.minimum(np.maximum(trust, 0.0, out=trust), 1.0, out=trust)      # clip to [0, 1]
    m = cfg.ema_momentum + (1.0 - cfg.ema_momentum) * (1.0 - trust)
    n = emb_n[upd]
    m = np.minimum(m, n / (n + 1.0))[:, None]
    mixed = m * emb[upd] + (1.0 - m) * det_emb[dd]
    norm = np.sqrt(np.add.reduce(mixed * mixed, axis=1, keepdims=True))   # np.linalg.norm
    emb[upd] = mixed / np.maximum(norm, 1e-12)
    has_emb[upd] = True
    emb_n[upd] = n + 1.0
