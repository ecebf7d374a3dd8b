"""ByteTrack-style multi-object tracker with appearance fusion and re-identification.

All live tracks are rows of a few NumPy arrays (struct of arrays); every stage of ``update``
works on whole arrays: one Kalman predict for all tracks, one cost matrix and at most one
``lap`` call per association stage, masked writes for the results. No Python loop runs
per track.

Per update:
  1. predict every track by dt (timestamps) or 1 / frame_rate;
  2. high-score detections vs tracked + recently lost tracks: 1 - IoU (x score) plus
     appearance_weight * (cosine distance to the track's EMA embedding - appearance_neutral)
     when both have an embedding; motion always gates (the IoU alone must pass the limit);
  3. the remaining detections (low-score ones, and high ones appearance kept out of 2.) vs
     the same tracks still unmatched, by IoU only (ByteTrack's recovery of occluded,
     low-confidence boxes, whose crops show the occluder);
  4. tentative tracks (seen once) vs the remaining high-score detections, costed as in 2.;
  5. re-identification: remaining confident detections vs lost tracks (up to reid_window_s),
     by appearance with a loose motion gate from where the track was last seen;
  6. unmatched confident detections start tentative tracks; a track is confirmed once seen
     min_hits times in a row, and then either takes the id of a lost track it matches by
     appearance (re-id of someone whose first frames back were ambiguous) or a new id.
     Ids are never reused.
Confirmed tracks missed for a moment are output at their predicted box (``coasting``), see
``TrackerConfig.coast_output_s``.
A detection and a track of different classes never match (a cart never takes a person's id).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from analytics.tracking import kalman as kf
from analytics.tracking.config import TrackerConfig
from analytics.tracking.inputs import check_detections, check_timestamp
from analytics.tracking.matching import assign, cosine_distance, iou_matrix, unambiguous

TENTATIVE, TRACKED, LOST = 0, 1, 2
INF = np.inf
# a coasting box stops being output once it comes within this share of its own size of the
# edge of the area detections have covered (someone leaving the view, not hidden)
EDGE_MARGIN = 0.1


@dataclass(frozen=True, slots=True)
class Tracks:
    """Confirmed tracks output by one ``update`` call (M may be 0).

    track_ids: int64[M]      stable per object, never reused within a Tracker's life
    xyxy:      float32[M, 4] Kalman-filtered box this frame (pixels)
    scores:    float32[M]    score of the matched detection (the last one when coasting)
    class_ids: int32[M]
    det_index: int64[M]      row of the input detection matched this frame, -1 when the
                             track is coasting
    coasting:  bool[M]       True: not detected this frame, xyxy is the motion prediction
                             (for up to TrackerConfig.coast_output_s)
    """

    track_ids: np.ndarray
    xyxy: np.ndarray
    scores: np.ndarray
    class_ids: np.ndarray
    det_index: np.ndarray
    coasting: np.ndarray

    def __len__(self) -> int:
        return int(self.track_ids.shape[0])


# per-track arrays, all with the track as first axis
_FIELDS = ("pos", "vel", "p00", "p01", "p11", "cls", "status", "hits", "tid",
           "last_seen", "born", "score", "last_box", "emb", "has_emb")


def _centres(b: np.ndarray) -> np.ndarray:
    return (b[:, :2] + b[:, 2:]) * 0.5


class Tracker:
    """One stream's tracker. Not thread-safe; use one per camera."""

    def __init__(self, config: TrackerConfig | None = None) -> None:
        self.config = config if config is not None else TrackerConfig()
        self._next_id = 1
        self.reset()

    def reset(self) -> None:
        """Forget all tracks and the clock (a new stream). Ids keep counting up: never reused."""
        self._now: float | None = None
        self._view: np.ndarray | None = None   # extent of the detections seen so far (xyxy)
        self._dim = 0
        self.pos = np.zeros((0, 4))          # cx, cy, w, h (pixels)
        self.vel = np.zeros((0, 4))          # pixels per second
        self.p00 = np.zeros((0, 4))          # per-coordinate 2x2 covariance blocks
        self.p01 = np.zeros((0, 4))
        self.p11 = np.zeros((0, 4))
        self.cls = np.zeros(0, np.int64)
        self.status = np.zeros(0, np.int8)
        self.hits = np.zeros(0, np.int32)    # matches in a row while tentative
        self.tid = np.zeros(0, np.int64)     # -1 until confirmed
        self.last_seen = np.zeros(0)         # seconds
        self.born = np.zeros(0)              # seconds, first detection
        self.score = np.zeros(0)
        self.last_box = np.zeros((0, 4))     # last matched detection, xyxy
        self.emb = np.zeros((0, 0), np.float32)
        self.has_emb = np.zeros(0, bool)

    @property
    def num_tracks(self) -> int:
        """Live tracks of any state (tentative, tracked, lost)."""
        return int(self.pos.shape[0])

    # -- state helpers -------------------------------------------------------------------
    def _keep(self, keep: np.ndarray) -> None:
        for f in _FIELDS:
            setattr(self, f, getattr(self, f)[keep])

    def _append(self, boxes, scores, cls, emb, has_emb) -> None:
        k = boxes.shape[0]
        pos, vel, p00, p01, p11 = kf.initiate(kf.xyxy_to_cxcywh(boxes), self.config.frame_rate)
        new = dict(pos=pos, vel=vel, p00=p00, p01=p01, p11=p11, cls=cls,
                   status=np.full(k, TENTATIVE, np.int8), hits=np.ones(k, np.int32),
                   tid=np.full(k, -1, np.int64), last_seen=np.full(k, self._now), born=np.full(k, self._now), score=scores,
                   last_box=boxes, emb=emb if emb is not None else np.zeros((k, self._dim), np.float32),
                   has_emb=has_emb)
        for f in _FIELDS:
            setattr(self, f, np.concatenate([getattr(self, f), new[f]]))

    def _restart_motion(self, rows: np.ndarray, boxes: np.ndarray) -> None:
        pos, vel, p00, p01, p11 = kf.initiate(kf.xyxy_to_cxcywh(boxes), self.config.frame_rate)
        self.pos[rows], self.vel[rows], self.p00[rows], self.p01[rows], self.p11[rows] = pos, vel, p00, p01, p11

    def _kalman_update(self, rows: np.ndarray, boxes: np.ndarray) -> None:
        st = [self.pos[rows], self.vel[rows], self.p00[rows], self.p01[rows], self.p11[rows]]
        kf.update(*st, kf.xyxy_to_cxcywh(boxes))
        self.pos[rows], self.vel[rows], self.p00[rows], self.p01[rows], self.p11[rows] = st

    def _set_dim(self, d: int) -> None:
        if self._dim == d:
            return
        if self._dim and self.has_emb.any():
            raise ValueError(f"embeddings: dimension changed from {self._dim} to {d} "
                             f"(call reset() when switching re-id models)")
        self._dim = d
        self.emb = np.zeros((self.num_tracks, d), np.float32)
        self.has_emb[:] = False

    def _reid_cost(self, t_rows: np.ndarray, boxes: np.ndarray, emb_d: np.ndarray, now: float) -> np.ndarray:
        """Cosine distance lost-track x detection, INF outside the motion gate: a person can
        have walked at most reid_max_speed box heights per second since last seen, and keeps
        roughly the same size."""
        cfg = self.config
        last = self.last_box[t_rows]
        h = np.maximum(last[:, 3] - last[:, 1], 1.0)[:, None]
        d = _centres(last)[:, None, :] - _centres(boxes)[None, :, :]
        dist = np.sqrt((d * d).sum(-1))
        reach = h * (1.0 + cfg.reid_max_speed * (now - self.last_seen[t_rows])[:, None])
        ratio = (boxes[:, 3] - boxes[:, 1])[None, :] / h
        cost = emb_d.copy()
        cost[(dist > reach) | (ratio < 0.5) | (ratio > 2.0)] = INF
        return cost

    # -- main entry ----------------------------------------------------------------------
    def update(self, xyxy, scores, class_ids=None, embeddings=None, timestamp=None) -> Tracks:
        """Associate one frame's detections; return the confirmed tracks.

        xyxy float[N, 4] pixels, scores float[N], class_ids int[N] (None: one class),
        embeddings float[N, D] L2-normalised (None: motion only; zero rows: no embedding),
        timestamp seconds (None: 1 / frame_rate after the previous call). N may be 0.
        Raises ValueError naming the field and row of bad input; the state is unchanged then.
        """
        cfg = self.config
        boxes, scores, cls, emb, emb_ok = check_detections(xyxy, scores, class_ids, embeddings)
        n_in = boxes.shape[0]
        if timestamp is None:
            now = 0.0 if self._now is None else self._now + 1.0 / cfg.frame_rate
        else:
            now = check_timestamp(timestamp, self._now)
        if emb is not None:
            self._set_dim(emb.shape[1])
        dt = 0.0 if self._now is None else now - self._now
        self._now = now
        if n_in:
            ext = np.concatenate([boxes[:, :2].min(axis=0), boxes[:, 2:].max(axis=0)])
            if self._view is None:
                self._view = ext
            else:
                self._view = np.concatenate([np.minimum(self._view[:2], ext[:2]), np.maximum(self._view[2:], ext[2:])])

        # 1. predict; a lost track keeps its size (size velocity is noise once unobserved)
        lost = self.status == LOST
        self.vel[lost, 2:4] = 0.0
        kf.predict(self.pos, self.vel, self.p00, self.p01, self.p11, dt, cfg.frame_rate)
        n_tr = self.num_tracks
        lost_for = now - self.last_seen
        match_det = np.full(n_tr, -1, np.int64)        # detection row matched per track
        # zero-area boxes cannot be matched by overlap: legal input, never tracked
        det_free = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1]) & (scores >= cfg.low_thresh)
        high = scores >= cfg.high_thresh
        track_free = np.ones(n_tr, bool)
        # only tracks still followed by motion take part in stages 2-4: one IoU row each
        motion = (self.status != LOST) | (lost_for <= cfg.max_lost_s)
        use_emb = emb is not None and bool(emb_ok.any()) and bool(self.has_emb.any())
        clean = self._clean(boxes, high & emb_ok) if emb is not None else None
        iou = np.zeros((n_tr, n_in))
        if n_tr and n_in:
            m_rows = np.flatnonzero(motion)
            sub = iou_matrix(kf.cxcywh_to_xyxy(self.pos[m_rows]), boxes)
            sub[self.cls[m_rows][:, None] != cls[None, :]] = 0.0    # classes never mix
            iou[m_rows] = sub

        def match(t_mask, d_mask, cost_fn, limit):
            ti = np.flatnonzero(t_mask & track_free)
            di = np.flatnonzero(d_mask & det_free)
            if ti.size == 0 or di.size == 0:
                return ti[:0], di[:0]
            r, c = assign(cost_fn(ti, di), limit)
            t, d = ti[r], di[c]
            track_free[t] = False
            det_free[d] = False
            match_det[t] = d
            return t, d

        def emb_dist(ti, di):
            """Cosine distance track EMA x detection, NaN where either has no embedding."""
            e = cosine_distance(self.emb[ti], emb[di])
            e[~(self.has_emb[ti][:, None] & emb_ok[di][None, :])] = np.nan
            return e

        def overlap_cost(ti, di, fuse, appearance, limit):
            i = iou[np.ix_(ti, di)]
            cost = 1.0 - (i * scores[di][None, :] if fuse else i)
            if appearance and use_emb and cfg.appearance_weight > 0:
                delta = emb_dist(ti, di) - cfg.appearance_neutral
                cost += cfg.appearance_weight * np.nan_to_num(delta, nan=0.0)
            # appearance refines overlap-based matches, never replaces them: the overlap alone
            # must pass the stage's limit (alone, appearance only re-identifies, in 5.)
            cost[i < 1.0 - limit] = INF
            return cost

        if n_tr and n_in:
            pool = motion & (self.status != TENTATIVE)
            # 2. high-score detections vs tracked + recently lost tracks (by their prediction),
            #    appearance-weighted
            match(pool, high, lambda ti, di: overlap_cost(ti, di, cfg.fuse_score, True, cfg.match_thresh),
                  cfg.match_thresh)
            # 3. the rest (low-score detections, and high ones appearance kept out of 2: an
            #    occluded person's crop shows the occluder) vs the same tracks: overlap only
            match(pool, det_free, lambda ti, di: overlap_cost(ti, di, False, False, cfg.low_match_thresh),
                  cfg.low_match_thresh)
            # 4. tentative tracks vs remaining high-score detections
            match(self.status == TENTATIVE, high, lambda ti, di: overlap_cost(ti, di, cfg.fuse_score, True, cfg.tentative_match_thresh),
                  cfg.tentative_match_thresh)

        # 5. re-identification of lost tracks by appearance (motion has lost them)
        t_reid = np.zeros(0, np.int64)
        if use_emb:
            confident = (scores >= cfg.new_track_thresh) & emb_ok
            reid_pool = (self.status == LOST) & self.has_emb & (lost_for <= cfg.reid_window_s)

            def reid_cost(ti, di):
                cost = self._reid_cost(ti, boxes[di], emb_dist(ti, di), now)
                cost[self.cls[ti][:, None] != cls[di][None, :]] = INF
                return unambiguous(cost, cfg.reid_margin) if cfg.reid_margin > 0 else cost

            t_reid, _ = match(reid_pool, confident, reid_cost, cfg.reid_thresh)

        # -- apply matches ----------------------------------------------------------------
        rows = np.flatnonzero(match_det >= 0)
        is_reid = np.zeros(n_tr, bool)
        is_reid[t_reid] = True
        kal = rows[~is_reid[rows]]
        self._kalman_update(kal, boxes[match_det[kal]])
        if t_reid.size:     # the prediction drifted through a long gap: restart at the detection
            self._restart_motion(t_reid, boxes[match_det[t_reid]])
        d = match_det[rows]
        self.last_seen[rows] = now
        self.score[rows] = scores[d]
        self.last_box[rows] = boxes[d]
        self.hits[rows] += 1
        self.status[rows[self.status[rows] == LOST]] = TRACKED
        if emb is not None:
            self._update_embeddings(rows, d, clean, scores, emb)
        unmatched = match_det < 0
        self.status[(self.status == TRACKED) & unmatched] = LOST

        # drop tentative tracks that missed a frame and lost tracks past their horizon
        horizon = np.where(self.has_emb, cfg.reid_window_s, cfg.max_lost_s)
        dead = ((self.status == TENTATIVE) & unmatched) | (
            (self.status == LOST) & (now - self.last_seen > horizon))
        keep = ~dead

        # 6. new tentative tracks from unmatched confident detections
        new_d = np.flatnonzero(det_free & (scores >= cfg.new_track_thresh))
        self._keep(keep)
        match_det = match_det[keep]
        if new_d.size:
            self._append(boxes[new_d], scores[new_d], cls[new_d],
                         emb[new_d] if emb is not None else None, emb_ok[new_d])
            match_det = np.concatenate([match_det, new_d])

        confirm = np.flatnonzero((self.status == TENTATIVE) & (self.hits >= cfg.min_hits))
        if confirm.size:
            kept = self._confirm(confirm, now)
            if kept is not None:
                match_det = match_det[kept]
        return self._output(match_det)

    def _clean(self, boxes: np.ndarray, cand: np.ndarray) -> np.ndarray:
        """bool[N]: candidate detections that no other detection overlaps by more than
        ema_max_overlap IoU (an occluded person's crop mostly shows the occluder)."""
        clean = cand.copy()
        if clean.any() and boxes.shape[0] > 1:
            dd = np.flatnonzero(clean)
            ov = iou_matrix(boxes[dd], boxes)
            ov[np.arange(dd.size), dd] = 0.0
            clean[dd] = ov.max(axis=1) <= self.config.ema_max_overlap
        return clean

    def _update_embeddings(self, rows, d, clean, scores, emb) -> None:
        """EMA of the track's embedding from clean crops only; a less confident detection
        moves it less (momentum -> 1 as the score falls to high_thresh)."""
        cfg = self.config
        ok = clean[d]
        upd, dd = rows[ok], d[ok]
        trust = np.clip((scores[dd] - cfg.high_thresh) / max(1.0 - cfg.high_thresh, 1e-6), 0.0, 1.0)
        m = cfg.ema_momentum + (1.0 - cfg.ema_momentum) * (1.0 - trust)
        m = np.where(self.has_emb[upd], m, 0.0)[:, None]
        mixed = m * self.emb[upd] + (1.0 - m) * emb[dd]
        self.emb[upd] = mixed / np.maximum(np.linalg.norm(mixed, axis=1, keepdims=True), 1e-12)
        self.has_emb[upd] = True

    def _confirm(self, rows: np.ndarray, now: float) -> np.ndarray | None:
        """Give newly confirmed tracks an id: a lost track's, when one of the same class matches
        by appearance within the re-id window and motion gate, else a fresh one. Returns the
        keep mask when lost tracks were absorbed (rows removed), else None."""
        cfg = self.config
        inherit = np.full(rows.size, -1, np.int64)
        lost = np.flatnonzero((self.status == LOST) & self.has_emb & (self.tid >= 0)
                              & (now - self.last_seen <= cfg.reid_window_s))
        cand = rows[self.has_emb[rows]]
        if lost.size and cand.size:
            cost = self._reid_cost(lost, self.last_box[cand], cosine_distance(self.emb[lost], self.emb[cand]), now)
            cost[self.cls[lost][:, None] != self.cls[cand][None, :]] = INF
            if cfg.reid_margin > 0:
                cost = unambiguous(cost, cfg.reid_margin)
            r, c = assign(cost, cfg.reid_thresh)
            pos = np.searchsorted(rows, cand[c])
            inherit[pos] = lost[r]
        got = inherit >= 0
        self.tid[rows[got]] = self.tid[inherit[got]]
        fresh = rows[~got]
        self.tid[fresh] = np.arange(self._next_id, self._next_id + fresh.size)
        self._next_id += int(fresh.size)
        self.status[rows] = TRACKED
        if not got.any():
            return None
        kept = np.ones(self.num_tracks, bool)
        kept[inherit[got]] = False
        self._keep(kept)
        return kept

    def _output(self, match_det: np.ndarray) -> Tracks:
        cfg = self.config
        confirmed = self.tid >= 0
        out = confirmed & (match_det >= 0)
        boxes = kf.cxcywh_to_xyxy(self.pos)
        if cfg.coast_output_s > 0:
            lost_for = self._now - self.last_seen
            limit = np.minimum(min(cfg.coast_output_s, cfg.max_lost_s), self.last_seen - self.born)
            coast = confirmed & (self.status == LOST) & (lost_for <= limit)
            if self._view is not None and coast.any():
                wh = boxes[:, 2:] - boxes[:, :2]
                m = EDGE_MARGIN * wh
                v = self._view
                coast &= ((boxes[:, :2] - m >= v[:2]) & (boxes[:, 2:] + m <= v[2:])).all(axis=1)
            out |= coast
        rows = np.flatnonzero(out)
        det_index = match_det[rows].copy()
        return Tracks(
            track_ids=self.tid[rows].copy(),
            xyxy=boxes[rows].astype(np.float32),
            scores=self.score[rows].astype(np.float32),
            class_ids=self.cls[rows].astype(np.int32),
            det_index=det_index,
            coasting=det_index < 0,
        )
