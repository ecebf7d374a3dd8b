"""ByteTrack-style multi-object tracker with appearance fusion and re-identification.

All live tracks are rows of a few NumPy arrays (struct of arrays); every stage of ``update``
works on whole arrays: one Kalman predict for all tracks, one cost matrix and at most one
``lap`` call per association stage, masked writes for the results. No Python loop runs
per track.

Per update:
  1. predict every track by dt (timestamps) or 1 / frame_rate;
  2. high-score detections vs tracked + recently lost tracks: 1 - IoU (x score) plus
     appearance_weight * (cosine distance to the track's EMA embedding - appearance_neutral)
     when both have an embedding (measured from contested_neutral instead for a detection
     that two or more tracks reach, from crowded_neutral for the other detections of a track
     that reaches such a one); motion always gates (the IoU alone must pass the limit);
  3. the remaining detections (low-score ones, and high ones appearance kept out of 2.) vs
     the same tracks still unmatched, by IoU only (ByteTrack's recovery of occluded,
     low-confidence boxes, whose crops show the occluder); a larger overlap is required when
     embeddings are in use;
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

from tracking import kalman as kf
from tracking.config import TrackerConfig
from tracking.inputs import check_detections, check_timestamp
from tracking.matching import assign, cosine_distance, iou_matrix, unambiguous

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


def _empty_tracks() -> Tracks:
    return Tracks(np.zeros(0, np.int64), np.zeros((0, 4), np.float32), np.zeros(0, np.float32),
                  np.zeros(0, np.int32), np.zeros(0, np.int64), np.zeros(0, bool))


# per-track state, stacked by kind so that keeping, appending and gathering tracks is one
# indexing operation per block, while every named field stays a contiguous array (NumPy's
# per-call cost is what matters at a retail camera's 0-20 tracks): _k float64[6, T, 4] (pos,
# vel, p00, p01, p11, last_box), _m float64[3, T] (last_seen, born, score), _i int64[4, T]
# (cls, status, hits, tid), plus the embeddings. _bind names the views after a reallocation.


_ZERO = np.float64(0.0)


def _centres(b: np.ndarray) -> np.ndarray:
    return (b[:, :2] + b[:, 2:]) * 0.5


def _iou(at: np.ndarray, area_a: np.ndarray, bt: np.ndarray, area_b: np.ndarray) -> np.ndarray:
    """``matching.iou_matrix`` (the same arithmetic, so the same bits) between boxes given by
    coordinate rows, at [4, T] and bt [4, N] (xyxy; bt contiguous), with their areas already
    known: every operation runs along the N axis, whole rows at a time."""
    if at.shape[1] == 0:
        return np.zeros((0, bt.shape[1]))
    lt = np.maximum(at[:2, :, None], bt[:2, None, :])
    rb = np.minimum(at[2:, :, None], bt[2:, None, :])
    np.subtract(rb, lt, out=rb)
    np.maximum(rb, _ZERO, out=rb)
    inter = rb[0] * rb[1]
    union = area_a[:, None] + area_b[None, :]
    union -= inter
    if union.min() > 0:           # always, unless boxes of no area meet
        return np.divide(inter, union, out=inter)
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


class Tracker:
    """One stream's tracker. Not thread-safe; use one per camera."""

    def __init__(self, config: TrackerConfig | None = None) -> None:
        self.config = config if config is not None else TrackerConfig()
        self._next_id = 1
        self.reset()

    def reset(self) -> None:
        """Forget all tracks and the clock (a new stream). Ids keep counting up: never reused."""
        self._now: float | None = None
        self._lo: np.ndarray | None = None     # extent of the detections seen so far: x1, y1 of
        self._hi: np.ndarray | None = None     # _lo and x2, y2 of _hi
        self._dim = 0
        self._k = np.zeros((6, 0, 4))
        self._m = np.zeros((4, 0))
        self._i = np.zeros((4, 0), np.int64)
        self.emb = np.zeros((0, 0), np.float32)
        self.has_emb = np.zeros(0, bool)
        self._bind()

    def _bind(self) -> None:
        self.pos, self.vel, self.p00, self.p01, self.p11, self.last_box = self._k
        # pos: cx, cy, w, h (pixels); vel: pixels per second; p00, p01, p11: per-coordinate 2x2
        # covariance blocks; last_box: last matched detection, xyxy
        self.last_seen, self.born, self.score, self.emb_n = self._m   # seconds, seconds (first
        #   detection), score, clean views averaged into emb (0: emb is a provisional, occluded one)
        self.cls, self.status, self.hits, self.tid = self._i   # hits: matches in a row while
        #                                                        tentative; tid -1 until confirmed

    @property
    def num_tracks(self) -> int:
        """Live tracks of any state (tentative, tracked, lost)."""
        return int(self._m.shape[1])

    # -- state helpers -------------------------------------------------------------------
    def _keep(self, keep: np.ndarray) -> None:
        self._k = self._k[:, keep]
        self._m = self._m[:, keep]
        self._i = self._i[:, keep]
        self.emb = self.emb[keep]
        self.has_emb = self.has_emb[keep]
        self._bind()

    def _append(self, boxes, scores, cls, emb, has_emb, emb_n) -> None:
        k = boxes.shape[0]
        pos, vel, p00, p01, p11 = kf.initiate(kf.xyxy_to_cxcywh(boxes), self.config.frame_rate)
        self._k = np.concatenate([self._k, np.stack([pos, vel, p00, p01, p11, boxes])], axis=1)
        m = np.empty((4, k))
        m[0:2] = self._now
        m[2] = scores
        m[3] = emb_n
        self._m = np.concatenate([self._m, m], axis=1)
        i = np.empty((4, k), np.int64)
        i[0] = cls
        i[1] = TENTATIVE
        i[2] = 1
        i[3] = -1
        self._i = np.concatenate([self._i, i], axis=1)
        self.emb = np.concatenate([self.emb, emb if emb is not None else np.zeros((k, self._dim), np.float32)])
        self.has_emb = np.concatenate([self.has_emb, has_emb])
        self._bind()

    def _restart_motion(self, rows: np.ndarray, boxes: np.ndarray) -> None:
        self._k[:5, rows] = kf.initiate(kf.xyxy_to_cxcywh(boxes), self.config.frame_rate)

    def _kalman_update(self, rows: np.ndarray, z: np.ndarray) -> None:
        if rows.size == self._k.shape[1]:     # every track matched (rows ascending): in place
            kf.update_stacked(self._k[:5], z)
            return
        st = self._k[:5, rows]
        kf.update_stacked(st, z)
        self._k[:5, rows] = st

    def _set_dim(self, d: int) -> None:
        if self._dim == d:
            return
        if self._dim and self.has_emb.any():
            raise ValueError(f"embeddings: dimension changed from {self._dim} to {d} "
                             f"(call reset() when switching re-id models)")
        self._dim = d
        self.emb = np.zeros((self.num_tracks, d), np.float32)
        self.has_emb[:] = False
        self.emb_n[:] = 0.0

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

        Cost is dominated by NumPy's per-call overhead at the sizes of a retail camera (0-20
        tracks), so stages with nothing to do are skipped and per-track state is stacked
        (one indexing operation keeps, appends or gathers every field).
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
            # extent of all detections so far: x1, y1 of the running minimum, x2, y2 of the maximum
            lo = np.minimum.reduce(boxes, 0)
            hi = np.maximum.reduce(boxes, 0)
            if self._lo is None:
                self._lo, self._hi = lo, hi
            else:
                np.minimum(self._lo, lo, out=self._lo)
                np.maximum(self._hi, hi, out=self._hi)

        n_tr = self._m.shape[1]
        status = self.status
        match_det = np.empty(n_tr, np.int64)           # detection row matched per track
        match_det.fill(-1)
        if n_tr:
            # 1. predict; a lost track keeps its size (size velocity is noise once unobserved)
            lost = status == LOST
            any_lost = bool(lost.any())
            if any_lost:
                self.vel[lost, 2:4] = 0.0
            kf.predict_stacked(self._k[:5], dt, cfg.frame_rate)
            lost_for = now - self.last_seen
        t_reid = None
        det_free = None
        clean = None
        if n_tr and n_in:
            det_c = kf.xyxy_to_cxcywh(boxes)        # cx, cy, w, h
            boxes_t = np.ascontiguousarray(boxes.T)  # x1, y1, x2, y2 rows
            w, h = det_c[:, 2], det_c[:, 3]
            # zero-area boxes cannot be matched by overlap: legal input, never tracked
            det_free = (np.minimum(w, h) > 0) & (scores >= cfg.low_thresh)
            area = w * h
            high = scores >= cfg.high_thresh
            track_free = np.empty(n_tr, bool)
            track_free.fill(True)
            # only tracks still followed by motion take part in stages 2-4: one IoU row each
            motion = ((status != LOST) | (lost_for <= cfg.max_lost_s)) if any_lost else None
            use_emb = emb is not None and bool(emb_ok.any()) and bool(self.has_emb.any())
            if emb is not None:
                clean = self._clean(boxes, high & emb_ok, area, boxes_t)
            all_motion = motion is None or bool(motion.all())
            m_rows = None if all_motion else motion.nonzero()[0]
            pos = self.pos if all_motion else self.pos[m_rows]
            tb = kf.cxcywh_to_xyxy(pos)
            tw = tb[:, 2:] - tb[:, :2]
            sub = _iou(tb.T, tw[:, 0] * tw[:, 1], boxes_t, area)
            t_cls = self.cls if all_motion else self.cls[m_rows]
            sub[t_cls[:, None] != cls[None, :]] = 0.0    # classes never mix (IoU 0 never passes a gate)
            if all_motion:
                iou = sub
            else:
                iou = np.zeros((n_tr, n_in))
                iou[m_rows] = sub

            def take(ti, di, r, c):
                t, d = ti[r], di[c]
                track_free[t] = False
                det_free[d] = False
                match_det[t] = d
                return t

            def emb_dist(ti, di, missing):
                """Cosine distance track EMA x detection; ``missing`` where either has none."""
                e = cosine_distance(self.emb[ti], emb[di])
                e[~(self.has_emb[ti][:, None] & emb_ok[di][None, :])] = missing
                return e

            def overlap_match(t_mask, d_mask, fuse, appearance, limit):
                """One overlap stage: cost 1 - IoU (x score), plus the appearance term; the
                overlap alone must pass the stage's limit (appearance refines overlap-based
                matches, never replaces them; alone it only re-identifies, in 5.)."""
                ti = (t_mask & track_free).nonzero()[0]
                if ti.size == 0:
                    return
                di = (d_mask & det_free).nonzero()[0]
                if di.size == 0:
                    return
                all_d = di.size == n_in
                i = iou if ti.size == n_tr else iou[ti]
                if not all_d:
                    i = i[:, di]
                # motion gate: the IoU alone must reach 1 - limit, and be above 0 whatever the
                # limit (at limit 1.0, ``>= 0`` would admit every pair: boxes far apart, and
                # pairs of different classes, whose IoU is set to 0 above)
                min_iou = 1.0 - limit
                gate = i >= min_iou if min_iou > 0.0 else i > 0.0
                if not gate.any():          # nothing overlaps enough: no pair can match
                    return
                cost = 1.0 - (i * (scores if all_d else scores[di])[None, :] if fuse else i)
                if appearance and use_emb and cfg.appearance_weight > 0:
                    # pairs without both embeddings: no appearance term (adds exactly 0.0)
                    delta = emb_dist(ti, di, cfg.appearance_neutral) - cfg.appearance_neutral
                    cost += cfg.appearance_weight * delta
                    if cfg.contested_neutral < cfg.appearance_neutral:
                        # a detection two or more tracks reach: its pairs need clear appearance
                        # evidence (a track whose person is hidden reaches for a neighbour's box);
                        # such a track's other candidate detections need some
                        contested = np.add.reduce(gate, axis=0) > 1
                        if contested.any():
                            both = self.has_emb[ti][:, None] & emb_ok[di][None, :]
                            w = cfg.appearance_weight
                            cost += (w * (cfg.appearance_neutral - cfg.contested_neutral)) * (
                                contested[None, :] & both)
                            if cfg.crowded_neutral < cfg.appearance_neutral:
                                crowded = ((np.add.reduce(gate, axis=1) > 1)
                                           & (gate & contested[None, :]).any(axis=1))
                                cost += (w * (cfg.appearance_neutral - cfg.crowded_neutral)) * (
                                    crowded[:, None] & ~contested[None, :] & both)
                cost = np.where(gate, cost, INF)
                r, c = assign(cost, limit)
                if r.size:
                    take(ti, di, r, c)

            tentative = status == TENTATIVE
            pool = ~tentative if motion is None else motion & ~tentative
            if pool.any():
                # 2. high-score detections vs tracked + recently lost tracks (by their
                #    prediction), appearance-weighted
                overlap_match(pool, high, cfg.fuse_score, True, cfg.match_thresh)
                # 3. the rest (low-score detections, and high ones appearance kept out of 2: an
                #    occluded person's crop shows the occluder) vs the same tracks: overlap only
                #    (stricter with embeddings: a track that lost its person is then lost and
                #    comes back by appearance, rather than taking a neighbour's box)
                overlap_match(pool, det_free, False, False,
                              cfg.appearance_low_match_thresh if use_emb else cfg.low_match_thresh)
            # 4. tentative tracks vs remaining high-score detections
            if tentative.any():
                overlap_match(tentative, high, cfg.fuse_score, True, cfg.tentative_match_thresh)

            # 5. re-identification of lost tracks by appearance (motion has lost them)
            if use_emb:
                confident = (scores >= cfg.new_track_thresh) & emb_ok
                reid_pool = (status == LOST) & self.has_emb & (lost_for <= cfg.reid_window_s)

                ti = (reid_pool & track_free).nonzero()[0]
                di = (confident & det_free).nonzero()[0] if ti.size else ti
                if ti.size and di.size:
                    cost = self._reid_cost(ti, boxes[di], emb_dist(ti, di, np.nan), now)
                    cost[self.cls[ti][:, None] != cls[di][None, :]] = INF
                    if cfg.reid_margin > 0:
                        cost = unambiguous(cost, cfg.reid_margin)
                    r, c = assign(cost, cfg.reid_thresh)
                    if r.size:
                        t_reid = take(ti, di, r, c)
        elif n_in:
            det_free = ((boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
                        & (scores >= cfg.low_thresh))
            if emb is not None:
                wh = boxes[:, 2:] - boxes[:, :2]
                clean = self._clean(boxes, (scores >= cfg.high_thresh) & emb_ok, wh[:, 0] * wh[:, 1],
                                    np.ascontiguousarray(boxes.T))

        if n_tr:
            # -- apply matches ----------------------------------------------------------------
            matched = match_det >= 0
            rows = matched.nonzero()[0]
            if rows.size:
                if t_reid is None:
                    kal = rows
                else:
                    is_reid = np.zeros(n_tr, bool)
                    is_reid[t_reid] = True
                    kal = rows[~is_reid[rows]]
                if kal.size:
                    self._kalman_update(kal, det_c[match_det[kal]])
                if t_reid is not None:  # the prediction drifted through a long gap: restart at the detection
                    self._restart_motion(t_reid, boxes[match_det[t_reid]])
                d = match_det[rows]
                self.last_seen[rows] = now
                self.score[rows] = scores[d]
                self.last_box[rows] = boxes[d]
                self.hits[rows] += 1
                if emb is not None:
                    self._update_embeddings(rows, d, clean, scores, emb)
            # matched lost tracks are tracked again, unmatched tracked ones lost
            status[matched & (status == LOST)] = TRACKED
            unmatched = ~matched
            status[(status == TRACKED) & unmatched] = LOST

            # drop tentative tracks that missed a frame and lost tracks past their horizon
            dead = (status == TENTATIVE) & unmatched
            lost = status == LOST
            if lost.any():
                horizon = np.where(self.has_emb, cfg.reid_window_s, cfg.max_lost_s)
                dead |= lost & (now - self.last_seen > horizon)
            if dead.any():
                keep = ~dead
                self._keep(keep)
                match_det = match_det[keep]

        # 6. new tentative tracks from unmatched confident detections
        if n_in:
            new_d = (det_free & (scores >= cfg.new_track_thresh)).nonzero()[0]
            if new_d.size:
                self._append(boxes[new_d], scores[new_d], cls[new_d],
                             emb[new_d] if emb is not None else None, emb_ok[new_d],
                             clean[new_d] if emb is not None else 0.0)
                match_det = np.concatenate([match_det, new_d])

        if self._m.shape[1] == 0:
            return _empty_tracks()
        confirm = ((self.status == TENTATIVE) & (self.hits >= cfg.min_hits)).nonzero()[0]
        if confirm.size:
            kept = self._confirm(confirm, now)
            if kept is not None:
                match_det = match_det[kept]
        return self._output(match_det)

    def _clean(self, boxes: np.ndarray, cand: np.ndarray, area: np.ndarray, boxes_t: np.ndarray) -> np.ndarray:
        """bool[N]: candidate detections of which no detection in front (lower bottom edge:
        nearer the camera) covers more than ema_max_overlap of the box (an occluded person's
        crop partly shows the occluder)."""
        clean = cand.copy()
        if boxes.shape[0] > 1 and clean.any():
            dd = clean.nonzero()[0]
            bt = boxes_t[:, dd]
            lt = np.maximum(bt[:2, :, None], boxes_t[:2, None, :])
            rb = np.minimum(bt[2:, :, None], boxes_t[2:, None, :])
            np.subtract(rb, lt, out=rb)
            np.maximum(rb, _ZERO, out=rb)
            inter = rb[0] * rb[1]
            inter[boxes_t[3][None, :] <= bt[3][:, None]] = 0.0      # behind (or itself)
            clean[dd] = inter.max(axis=1) <= self.config.ema_max_overlap * area[dd]
        return clean

    def _update_embeddings(self, rows, d, clean, scores, emb) -> None:
        """Average of the track's embedding over clean crops only: a running mean over the first
        views, then an EMA; a less confident detection moves it less (momentum -> 1 as the
        score falls to high_thresh). A track seen only occluded so far keeps its first,
        provisional embedding until its first clean view replaces it."""
        cfg = self.config
        ok = clean[d]
        upd, dd = rows[ok], d[ok]
        if upd.size == 0:
            return
        trust = (scores[dd] - cfg.high_thresh) / max(1.0 - cfg.high_thresh, 1e-6)
        np.minimum(np.maximum(trust, 0.0, out=trust), 1.0, out=trust)      # clip to [0, 1]
        m = cfg.ema_momentum + (1.0 - cfg.ema_momentum) * (1.0 - trust)
        n = self.emb_n[upd]
        m = np.minimum(m, n / (n + 1.0))[:, None]
        mixed = m * self.emb[upd] + (1.0 - m) * emb[dd]
        norm = np.sqrt(np.add.reduce(mixed * mixed, axis=1, keepdims=True))   # np.linalg.norm
        self.emb[upd] = mixed / np.maximum(norm, 1e-12)
        self.has_emb[upd] = True
        self.emb_n[upd] = n + 1.0

    def _confirm(self, rows: np.ndarray, now: float) -> np.ndarray | None:
        """Give newly confirmed tracks an id: a lost track's, when one of the same class matches
        by appearance within the re-id window and motion gate, else a fresh one. Returns the
        keep mask when lost tracks were absorbed (rows removed), else None."""
        cfg = self.config
        inherit = np.full(rows.size, -1, np.int64)
        lost = ((self.status == LOST) & self.has_emb & (self.tid >= 0)
                              & (now - self.last_seen <= cfg.reid_window_s)).nonzero()[0]
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
        boxes = None
        if cfg.coast_output_s > 0:
            coast = confirmed & (self.status == LOST)
            if coast.any():
                lost_for = self._now - self.last_seen
                limit = np.minimum(min(cfg.coast_output_s, cfg.max_lost_s), self.last_seen - self.born)
                coast &= lost_for <= limit
                if self._lo is not None:
                    c_rows = coast.nonzero()[0]
                    if c_rows.size:
                        boxes = kf.cxcywh_to_xyxy(self.pos)     # row by row: the same bits as a subset
                        b = boxes[c_rows]
                        wh = b[:, 2:] - b[:, :2]
                        m = EDGE_MARGIN * wh
                        coast[c_rows] = ((b[:, :2] - m >= self._lo[:2]) & (b[:, 2:] + m <= self._hi[2:])).all(axis=1)
                out |= coast
        rows = out.nonzero()[0]
        det_index = match_det[rows]
        xyxy = kf.cxcywh_to_xyxy(self.pos[rows]) if boxes is None else boxes[rows]
        return Tracks(
            track_ids=self.tid[rows],
            xyxy=xyxy.astype(np.float32),
            scores=self.score[rows].astype(np.float32),
            class_ids=self.cls[rows].astype(np.int32),
            det_index=det_index,
            coasting=det_index < 0,
        )
