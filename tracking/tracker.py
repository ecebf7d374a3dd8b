"""ByteTrack-style multi-object tracker with appearance fusion and re-identification.

All live tracks are rows of a few NumPy arrays (struct of arrays); every stage of ``update``
works on whole arrays: one Kalman predict for all tracks, one cost matrix and at most one
``lap`` call per association stage, masked writes for the results. No Python loop runs
per track.

Per update, one method per stage over a per-frame ``_FrameState`` (this frame's arrays:
which detections and tracks are still unmatched, the IoU matrix, the matches so far):
  _begin               check the input, advance the clock (timestamps, or 1 / frame_rate);
  _detection_geometry  usable / high-score / unoccluded ("clean") detections;
  _predict             Kalman-predict every track by dt;
  _overlaps            IoU of each motion-followed track's prediction with each detection;
  _match_high          high-score detections vs tracked + recently lost tracks: 1 - IoU
                       (x score) plus appearance_weight * (cosine distance to the track's EMA
                       embedding - appearance_neutral) when both have an embedding (measured
                       from contested_neutral for a detection two or more tracks reach, from
                       crowded_neutral for such a track's other detections); motion always
                       gates (the IoU alone must pass the limit);
  _match_low           the remaining detections (low-score ones, and high ones appearance kept
                       out) vs the same tracks, by IoU only (ByteTrack's recovery of occluded,
                       low-confidence boxes); a larger overlap is required with embeddings;
  _match_tentative     tentative tracks (seen once) vs the remaining high-score detections;
  _reid_lost           remaining confident detections vs lost tracks (up to reid_window_s),
                       by appearance within a loose motion gate from where last seen;
  _apply_matches       Kalman update, last box/score, embedding EMA, tracked <-> lost;
  _prune               tentative tracks that missed a frame, lost ones past their horizon;
  _spawn               unmatched confident detections start tentative tracks;
  _confirm             a track seen min_hits times in a row takes the id of a lost track it
                       matches by appearance (someone whose first frames back were ambiguous)
                       or a new id; ids are never reused;
  _output              the confirmed tracks as ``core.types.Tracks``.
Confirmed tracks missed for a moment are output at their predicted box (``coasting``), see
``TrackerConfig.coast_output_s``.
The appearance terms (embedding distances, the re-id gate, each track's running embedding)
are pure functions in ``tracking/appearance.py``; this class owns the state and the stages.
A detection and a track of different classes never match (a cart never takes a person's id).
Why the defaults are what they are: docs/tracking-tuning.md.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from core.types import Tracks
from tracking import appearance as ap
from tracking import kalman as kf
from tracking.config import TrackerConfig
from tracking.inputs import check_detections, check_timestamp
from tracking.matching import EDGE_MARGIN, assign, cosine_distance, iou_rows, near_edge, unambiguous

TENTATIVE, TRACKED, LOST = 0, 1, 2
INF = np.inf
_IOU_ABSORBS = 0.1  # box heights a new track may move in a frame and still pass the tentative IoU gate

# per-track state, stacked by kind so that keeping, appending and gathering tracks is one
# indexing operation per block, while every named field stays a contiguous array (NumPy's
# per-call cost is what matters at a retail camera's 0-20 tracks): _k float64[6, T, 4] (pos,
# vel, p00, p01, p11, last_box), _m float64[4, T] (last_seen, born, score, emb_n), _i int64[4, T]
# (cls, status, hits, tid), plus the embeddings. _bind names the views after a reallocation.


@dataclass(slots=True, eq=False)
class _FrameState:
    """One ``update``'s working arrays (N detections, T tracks as at the start of the frame).
    The stages read them and record matches in place: a match clears ``track_free`` and
    ``det_free`` and sets ``match_det``."""

    now: float                  # this frame's time, seconds
    dt: float                   # seconds since the previous update (0 for the first)
    boxes: np.ndarray           # float64[N, 4] detections, xyxy
    scores: np.ndarray          # float64[N]
    cls: np.ndarray             # int64[N]
    emb: np.ndarray | None      # float32[N, D] unit rows (zero rows: no embedding), or None
    emb_ok: np.ndarray          # bool[N] detection has an embedding
    match_det: np.ndarray       # int64[T] detection row matched per track, -1: none (follows
    #                             the track rows through _prune and _spawn)
    det_free: np.ndarray | None = None    # bool[N] usable detections not matched yet
    high: np.ndarray | None = None        # bool[N] score >= high_thresh
    det_c: np.ndarray | None = None       # float64[N, 4] detections as cx, cy, w, h
    boxes_t: np.ndarray | None = None     # float64[4, N] detections as x1, y1, x2, y2 rows
    area: np.ndarray | None = None        # float64[N]
    clean: np.ndarray | None = None       # bool[N] unoccluded crop (see appearance.clean_crops)
    track_free: np.ndarray | None = None  # bool[T] tracks not matched yet
    lost_for: np.ndarray | None = None    # float64[T] seconds since each track was last matched
    motion: np.ndarray | None = None      # bool[T] still followed by motion (None: all are)
    iou: np.ndarray | None = None         # float64[T, N] predicted box x detection, 0 across classes
    use_emb: bool = False                 # appearance terms apply this frame
    t_reid: np.ndarray | None = None      # int64[K] tracks re-identified this frame
    matched: np.ndarray | None = None     # bool[T] after association
    gone: tuple | None = None             # tentative tracks dropped this frame: (cx, cy, h, cls, seen at)


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

    # -- main entry ----------------------------------------------------------------------
    def update(self, xyxy, scores, class_ids=None, embeddings=None, timestamp=None) -> Tracks:
        """Associate one frame's detections; return the confirmed tracks.

        xyxy float[N, 4] pixels, scores float[N], class_ids int[N] (None: one class),
        embeddings float[N, D] L2-normalised (None: motion only; zero rows: no embedding),
        timestamp seconds (None: 1 / frame_rate after the previous call). N may be 0.
        Raises ValueError naming the field and row of bad input; the state is unchanged then.

        Cost is dominated by NumPy's per-call overhead at the sizes of a retail camera (0-20
        tracks), so stages with nothing to do are skipped.
        """
        st = self._begin(xyxy, scores, class_ids, embeddings, timestamp)
        n_in = st.boxes.shape[0]
        if n_in:
            self._detection_geometry(st)
        if st.match_det.size:
            self._predict(st)
            if n_in:
                self._overlaps(st)
                tentative = self.status == TENTATIVE
                pool = ~tentative if st.motion is None else st.motion & ~tentative
                if pool.any():
                    self._match_high(st, pool)
                    self._match_low(st, pool)
                if tentative.any():
                    self._match_tentative(st, tentative)
                if st.use_emb:
                    self._reid_lost(st)
            self._apply_matches(st)
            self._prune(st)
        if n_in:
            self._spawn(st)
        if self._m.shape[1] == 0:
            return Tracks.empty()
        match_det = st.match_det
        confirm = ((self.status == TENTATIVE) & (self.hits >= self.config.min_hits)).nonzero()[0]
        if confirm.size:
            kept = self._confirm(confirm, st.now)
            if kept is not None:
                match_det = match_det[kept]
        return self._output(match_det)

    # -- stages, in the order update runs them --------------------------------------------
    def _begin(self, xyxy, scores, class_ids, embeddings, timestamp) -> _FrameState:
        """Check the input, advance the clock, widen the area detections have covered."""
        boxes, scores, cls, emb, emb_ok = check_detections(xyxy, scores, class_ids, embeddings)
        if timestamp is None:
            now = 0.0 if self._now is None else self._now + 1.0 / self.config.frame_rate
        else:
            now = check_timestamp(timestamp, self._now)
        if emb is not None:
            self._set_dim(emb.shape[1])
        dt = 0.0 if self._now is None else now - self._now
        self._now = now
        if boxes.shape[0]:
            # extent of all detections so far: x1, y1 of the running minimum, x2, y2 of the maximum
            lo = np.minimum.reduce(boxes, 0)
            hi = np.maximum.reduce(boxes, 0)
            if self._lo is None:
                self._lo, self._hi = lo, hi
            else:
                np.minimum(self._lo, lo, out=self._lo)
                np.maximum(self._hi, hi, out=self._hi)
        match_det = np.empty(self._m.shape[1], np.int64)
        match_det.fill(-1)
        return _FrameState(now, dt, boxes, scores, cls, emb, emb_ok, match_det)

    def _detection_geometry(self, st: _FrameState) -> None:
        """Which detections can be used (and are high-score, and unoccluded)."""
        cfg = self.config
        st.det_c = det_c = kf.xyxy_to_cxcywh(st.boxes)        # cx, cy, w, h
        st.boxes_t = np.ascontiguousarray(st.boxes.T)         # x1, y1, x2, y2 rows
        w, h = det_c[:, 2], det_c[:, 3]
        # zero-area boxes cannot be matched by overlap: legal input, never tracked
        st.det_free = (np.minimum(w, h) > 0) & (st.scores >= cfg.low_thresh)
        st.area = w * h
        st.high = st.scores >= cfg.high_thresh
        if st.emb is not None:
            st.clean = ap.clean_crops(st.boxes, st.high & st.emb_ok, st.area, st.boxes_t, cfg.ema_max_overlap)

    def _predict(self, st: _FrameState) -> None:
        """Kalman-predict every track by dt; a lost track keeps its size (size velocity is
        noise once unobserved)."""
        st.lost_for = st.now - self.last_seen
        lost = self.status == LOST
        if lost.any():
            self.vel[lost, 2:4] = 0.0
            # only tracks still followed by motion take part in the overlap stages
            st.motion = ~lost | (st.lost_for <= self.config.max_lost_s)
        kf.predict_stacked(self._k[:5], st.dt, self.config.frame_rate)

    def _overlaps(self, st: _FrameState) -> None:
        """IoU of every motion-followed track's predicted box with every detection (one row
        per track; 0 for the other tracks and across classes)."""
        n_tr = self._m.shape[1]
        st.track_free = np.empty(n_tr, bool)
        st.track_free.fill(True)
        st.use_emb = st.emb is not None and bool(st.emb_ok.any()) and bool(self.has_emb.any())
        all_motion = st.motion is None or bool(st.motion.all())
        m_rows = None if all_motion else st.motion.nonzero()[0]
        tb = kf.cxcywh_to_xyxy(self.pos if all_motion else self.pos[m_rows])
        tw = tb[:, 2:] - tb[:, :2]
        sub = iou_rows(tb.T, tw[:, 0] * tw[:, 1], st.boxes_t, st.area)
        t_cls = self.cls if all_motion else self.cls[m_rows]
        sub[t_cls[:, None] != st.cls[None, :]] = 0.0    # classes never mix (IoU 0 never passes a gate)
        if all_motion:
            st.iou = sub
        else:
            st.iou = np.zeros((n_tr, st.boxes.shape[0]))
            st.iou[m_rows] = sub

    def _match_high(self, st: _FrameState, pool: np.ndarray) -> None:
        """High-score detections vs tracked + recently lost tracks (by their prediction),
        appearance-weighted."""
        self._overlap_match(st, pool, st.high, self.config.fuse_score, True, self.config.match_thresh)

    def _match_low(self, st: _FrameState, pool: np.ndarray) -> None:
        """The rest (low-score detections, and high ones appearance kept out of the high
        stage: an occluded person's crop shows the occluder) vs the same tracks, by overlap
        only; stricter with embeddings (a track that lost its person then goes lost and comes
        back by appearance, rather than taking a neighbour's box)."""
        cfg = self.config
        limit = cfg.appearance_low_match_thresh if st.use_emb else cfg.low_match_thresh
        self._overlap_match(st, pool, st.det_free, False, False, limit)

    def _match_tentative(self, st: _FrameState, tentative: np.ndarray) -> None:
        """Tentative tracks (seen once so far) vs the remaining high-score detections."""
        cfg = self.config
        self._overlap_match(st, tentative, st.high, cfg.fuse_score, True, cfg.tentative_match_thresh)

    def _reid_lost(self, st: _FrameState) -> None:
        """Re-identification of lost tracks by appearance (motion has lost them), within a
        loose motion gate from where each was last seen."""
        cfg = self.config
        reid_pool = (self.status == LOST) & self.has_emb & (st.lost_for <= cfg.reid_window_s)
        ti = (reid_pool & st.track_free).nonzero()[0]
        if ti.size == 0:
            return
        di = ((st.scores >= cfg.new_track_thresh) & st.emb_ok & st.det_free).nonzero()[0]
        if di.size == 0:
            return
        emb_d = ap.emb_distance(self.emb[ti], self.has_emb[ti], st.emb[di], st.emb_ok[di], np.nan)
        cost = ap.reid_cost(self.last_box[ti], st.lost_for[ti], st.boxes[di], emb_d,
                            cfg.reid_max_speed, self._lo, self._hi)
        cost[self.cls[ti][:, None] != st.cls[di][None, :]] = INF
        if cfg.reid_margin > 0:
            cost = unambiguous(cost, cfg.reid_margin)
        r, c = assign(cost, cfg.reid_thresh)
        if r.size:
            st.t_reid = self._take(st, ti, di, r, c)

    def _apply_matches(self, st: _FrameState) -> None:
        """Write the matches into the tracks: Kalman update (restart at the detection for a
        re-identified track, whose prediction drifted through a long gap), last box, score,
        embedding; matched lost tracks are tracked again, unmatched tracked ones lost."""
        match_det = st.match_det
        st.matched = matched = match_det >= 0
        rows = matched.nonzero()[0]
        if rows.size:
            kal = rows
            if st.t_reid is not None:
                is_reid = np.zeros(matched.size, bool)
                is_reid[st.t_reid] = True
                kal = rows[~is_reid[rows]]
            if kal.size:
                self._kalman_update(kal, st.det_c[match_det[kal]])
            if st.t_reid is not None:
                self._restart_motion(st.t_reid, st.boxes[match_det[st.t_reid]])
            d = match_det[rows]
            self.last_seen[rows] = st.now
            self.score[rows] = st.scores[d]
            self.last_box[rows] = st.boxes[d]
            self.hits[rows] += 1
            if st.emb is not None:
                ap.update_embeddings(self.emb, self.has_emb, self.emb_n, rows, d, st.clean, st.scores,
                                     st.emb, self.config)
        status = self.status
        status[matched & (status == LOST)] = TRACKED
        status[(status == TRACKED) & ~matched] = LOST

    def _prune(self, st: _FrameState) -> None:
        """Drop tentative tracks that missed a frame and lost tracks past their horizon
        (reid_window_s with an embedding, else max_lost_s)."""
        cfg = self.config
        status = self.status
        dead = (status == TENTATIVE) & ~st.matched
        if cfg.new_track_speed > 0 and dead.any():
            p = self.pos[dead]
            st.gone = (p[:, 0].copy(), p[:, 1].copy(), p[:, 3].copy(), self.cls[dead].copy(), self.last_seen[dead].copy())
        lost = status == LOST
        if lost.any():
            horizon = np.where(self.has_emb, cfg.reid_window_s, cfg.max_lost_s)
            dead |= lost & (st.now - self.last_seen > horizon)
        if dead.any():
            keep = ~dead
            self._keep(keep)
            st.match_det = st.match_det[keep]

    def _spawn(self, st: _FrameState) -> None:
        """Unmatched confident detections start tentative tracks."""
        new_d = (st.det_free & (st.scores >= self.config.new_track_thresh)).nonzero()[0]
        if new_d.size:
            emb = st.emb
            self._append(st.boxes[new_d], st.scores[new_d], st.cls[new_d],
                         emb[new_d] if emb is not None else None, st.emb_ok[new_d],
                         st.clean[new_d] if emb is not None else 0.0)
            st.match_det = np.concatenate([st.match_det, new_d])
            if st.gone is not None:
                self._seed_velocity(st, new_d)

    def _seed_velocity(self, st: _FrameState, new_d: np.ndarray) -> None:
        """A new track that starts where a tentative track just died, further than plain IoU
        follows (at 4 fps someone walking across the view moves ~2/3 of a box width a frame, so
        their one-frame tracks die one after another and never confirm), starts with the velocity
        of that move: its next prediction is where the person walks on. Only pairs that are each
        other's only candidate within ``new_track_speed`` box heights per second."""
        gx, gy, gh, gcls, gt = st.gone
        c = st.det_c[new_d]
        dt = np.maximum(st.now - gt, 1e-6)
        dx, dy = c[:, None, 0] - gx[None, :], c[:, None, 1] - gy[None, :]
        d = np.hypot(dx, dy)
        ok = (st.cls[new_d][:, None] == gcls[None, :]) & (d <= self.config.new_track_speed * dt * gh) \
            & (d > _IOU_ABSORBS * gh)
        lone = ok & (ok.sum(axis=1, keepdims=True) == 1) & (ok.sum(axis=0, keepdims=True) == 1)
        rows, g = lone.nonzero()
        if rows.size:
            track_rows = self.num_tracks - len(new_d) + rows
            self.vel[track_rows, 0] = dx[rows, g] / dt[g]
            self.vel[track_rows, 1] = dy[rows, g] / dt[g]

    # -- association helpers ---------------------------------------------------------------
    def _take(self, st: _FrameState, ti, di, r, c) -> np.ndarray:
        """Record matched pairs (r, c) of the candidate tracks ti and detections di."""
        t, d = ti[r], di[c]
        st.track_free[t] = False
        st.det_free[d] = False
        st.match_det[t] = d
        return t

    def _overlap_match(self, st: _FrameState, t_mask, d_mask, fuse: bool, appearance: bool,
                       limit: float) -> None:
        """One overlap stage: cost 1 - IoU (x score), plus the appearance term; the overlap
        alone must pass the stage's limit (appearance refines overlap-based matches, never
        replaces them; alone it only re-identifies, in _reid_lost)."""
        ti = (t_mask & st.track_free).nonzero()[0]
        if ti.size == 0:
            return
        di = (d_mask & st.det_free).nonzero()[0]
        if di.size == 0:
            return
        all_d = di.size == st.boxes.shape[0]
        i = st.iou if ti.size == st.iou.shape[0] else st.iou[ti]
        if not all_d:
            i = i[:, di]
        # motion gate: the IoU alone must reach 1 - limit, and be above 0 whatever the limit
        # (at limit 1.0, ``>= 0`` would admit every pair: boxes far apart, and pairs of
        # different classes, whose IoU is set to 0)
        min_iou = 1.0 - limit
        gate = i >= min_iou if min_iou > 0.0 else i > 0.0
        if not gate.any():          # nothing overlaps enough: no pair can match
            return
        cost = 1.0 - (i * (st.scores if all_d else st.scores[di])[None, :] if fuse else i)
        if appearance and st.use_emb and self.config.appearance_weight > 0:
            ap.add_appearance(cost, self.emb[ti], self.has_emb[ti], st.emb[di], st.emb_ok[di], gate,
                              self.config)
        r, c = assign(np.where(gate, cost, INF), limit)
        if r.size:
            self._take(st, ti, di, r, c)

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
            cost = ap.reid_cost(self.last_box[lost], now - self.last_seen[lost], self.last_box[cand],
                                cosine_distance(self.emb[lost], self.emb[cand]), cfg.reid_max_speed,
                                self._lo, self._hi)
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
        """The confirmed tracks matched this frame, plus those coasting (see
        TrackerConfig.coast_output_s)."""
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
                        coast[c_rows] = ~near_edge(boxes[c_rows], EDGE_MARGIN, self._lo, self._hi)
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
