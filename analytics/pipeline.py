"""Per-camera analytics: tracks in, seed-schema records out.

    store = load_store_config("configs/store.yaml")
    cams = StoreAnalytics(store)                       # shares journey/alert id counters
    cam = cams.for_stream("cam-checkout-1")
    records = cam.update(frame_or_timestamp, tracks, class_names)   # every frame, in time order
    records += cam.flush(last_timestamp)               # end of stream: open journeys close
    cams.reconfigure(reloaded_store)                   # a live edit: later analytics use it,
    cam = cams.fresh("cam-checkout-1")                 # ids continue (None: camera removed)

``tracks`` is the tracker's output, a ``core.types.Tracks`` (``Tracks.empty()`` when nobody
is in view; None means the same); its coasting tracks (motion predictions of someone missed
for a moment) take part in everything but detection records. ``class_names`` maps class
id -> label (a dict or a sequence). Persons are labels like ``person``; carts ``cart``/``basket``/
``shopping cart``. ``frame_or_timestamp`` is a ``core.types.Frame`` (its
``timestamp`` and ``frame_number`` are used) or float seconds since the epoch.

Records: ``DetectionRecord`` per track (every frame, or every ``detections_every_s``),
``JourneyRecord`` when a journey ends, ``QueueMetricsRecord`` / ``FootfallRecord`` /
``ZoneOccupancyRecord`` every ``metrics_interval_s``, ``HeatmapRecord`` every
``heatmap_interval_s`` (and at flush), ``AlertRecord`` when a rule raises or clears. With
``tracklets=True`` (``StoreAnalytics`` sets it for a store with ``visits:``) a journey comes as
``analytics.tracklets.Tracklet`` objects instead (a head while the track runs, a final that
carries the ``JourneyRecord``), for the store's linker (``visits.linker``); they lead the list
(finals, then heads), so ``clients.store_link.StoreLink`` takes them without reading the rest
(a frame's detection records, hundreds in a crowd).
Report instants are aligned to multiples of the interval in stream time.
"""
from __future__ import annotations

import math
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from analytics.alerts import AlertEngine
from analytics.config import AlertRule, CameraConfig, StoreConfig
from analytics.footfall import LineCounter
from analytics.heatmap import Heatmap
from analytics.journeys import CartOwners, JourneyTracker, counter_ids
from analytics.queues import CheckoutQueues
from analytics.records import DetectionRecord, ZoneOccupancyRecord
from analytics.slots import TrackTable
from analytics.tracklets import TrackletBuilder
from analytics.zones import ZoneSet
from core.types import Frame, Tracks

PERSON_LABELS = frozenset({"person", "people", "customer", "pedestrian", "normal"})
CART_LABELS = frozenset({"cart", "shopping cart", "shopping_cart", "shopping-cart", "trolley", "basket",
                         "shopping basket", "shopping_basket"})
# class id -> label: a dict, or a sequence indexed by id (None: COCO order, 0 = person)
ClassNames = Mapping[int, str] | Sequence[str] | None


class CameraAnalytics:
    def __init__(self, camera: CameraConfig, *, stream_id: str | None = None, alert_rules: Sequence[AlertRule] = (),
                 metrics_interval_s: float = 60.0, heatmap_interval_s: float = 900.0,
                 detections_every_s: float = 0.0, next_journey_id: Callable[[], str] | None = None,
                 next_alert_id: Callable[[], str] | None = None, tracklets: bool = False,
                 tracklet_head_s: float | None = None) -> None:
        self.camera = camera
        self.emit_tracklets = bool(tracklets)
        self._tracklet_head_s = tracklet_head_s  # None: the journeys' min_duration_s
        self.stream_id = stream_id or camera.camera_id
        self.zones = ZoneSet(camera.zones, camera.image_size)
        self.metrics_interval_s = float(metrics_interval_s)
        self.heatmap_interval_s = float(heatmap_interval_s)
        self.detections_every_s = float(detections_every_s)
        self._next_journey_id = next_journey_id or counter_ids()
        self._next_alert_id = next_alert_id or counter_ids("alert-")
        self._alert_rules = list(alert_rules)
        self._frame_no = 0
        self._lut_key: Any = object()
        self._lut_names: Any = None
        self._lut = np.zeros((0, 2), bool)
        self._kind_cache: dict = {}
        self._build()

    def _build(self) -> None:
        cam, zi = self.camera, self.zones.index
        self.table = TrackTable(64)
        converting = [z.converts or any(l.service_zone == z.name for l in cam.lanes.values())
                      for z in self.zones.zones]
        self.journeys = JourneyTracker(self.stream_id, self.table, self.zones.names, cam.journeys, converting,
                                       self._next_journey_id)
        self.queues = CheckoutQueues(self.stream_id, [(l.lane_id, zi[l.queue_zone], zi[l.service_zone])
                                                      for l in cam.lanes.values()], self.table)
        self.lanes = self.queues.lanes
        self.carts = CartOwners(cam.journeys.cart_max_distance)
        self.lines = [LineCounter(self.stream_id, ln, self.table) for ln in cam.lines.values()]
        self.heatmap = Heatmap(self.stream_id, cam.image_size, cam.heatmap)
        self.alerts = AlertEngine(self.stream_id, self._alert_rules, self._next_alert_id)
        head_s = max(cam.journeys.min_duration_s, self._tracklet_head_s or 0.0)
        self.tracklets = (TrackletBuilder(self.stream_id, self.table, cam.floor, head_s, cam.image_size[1])
                          if self.emit_tracklets else None)
        self.lost_after_s = cam.journeys.lost_after_s
        self._next_metrics: float | None = None
        self._next_heatmap: float | None = None
        self._next_detections = -math.inf
        self._next_expiry = -math.inf
        self._next_alert_eval = -math.inf
        self._window_start: float | None = None
        self.last_timestamp: float | None = None

    # ------------------------------------------------------------------ classes
    def _kind_of(self, class_ids: np.ndarray, class_names: Any) -> tuple[np.ndarray, np.ndarray, bool]:
        """(is_person bool[M], is_cart bool[M], all persons) from class ids and the model's labels.

        Frames repeat the same few class-id sequences, so results are cached by the ids' bytes
        (the arrays returned are shared: callers must not write to them)."""
        if len(class_ids) == 0:
            return np.zeros(0, bool), np.zeros(0, bool), True
        key = (id(class_names), _size(class_names))
        bkey = (class_ids.dtype.char, class_ids.tobytes())
        if key == self._lut_key:
            hit = self._kind_cache.get(bkey)
            if hit is not None:
                return hit
        ids = class_ids.astype(np.int64)
        hi = int(ids.max())
        if key != self._lut_key or hi >= len(self._lut) or int(ids.min()) < 0:
            self._kind_cache.clear()
            if int(ids.min()) < 0:
                raise ValueError(f"{self.stream_id}: negative class id {int(ids.min())}")
            n = max(hi + 1, _size(class_names) if not isinstance(class_names, Mapping) else
                    (max(class_names, default=-1) + 1 if class_names else 0))
            lut = np.zeros((n, 2), bool)
            for c in range(n):
                name = _label(class_names, c)
                if name is None:  # no label: COCO order (0 = person)
                    lut[c] = (c == 0 and not class_names, False)
                else:
                    nm = name.strip().lower()
                    lut[c] = (nm in PERSON_LABELS, nm in CART_LABELS)
            # the labels object is kept: while it lives no other object can take its id()
            self._lut, self._lut_key, self._lut_names = lut, key, class_names
        k = self._lut[ids]
        res = (k[:, 0], k[:, 1], bool(k[:, 0].all()))
        if len(self._kind_cache) >= 4096:
            self._kind_cache.clear()
        self._kind_cache[bkey] = res
        return res

    # ------------------------------------------------------------------ frames
    def update(self, frame: Frame | float, tracks: Tracks | None, class_names: ClassNames = None,
               embeddings: np.ndarray | None = None) -> list[Any]:
        """One frame's tracks -> the records due. ``embeddings`` float32[N, D]: the frame's
        detections' re-id vectors (``Detections.embeddings``, rows by ``tracks.det_index``),
        used only for tracklets (``tracklets=True``)."""
        if isinstance(frame, (int, float, np.floating, np.integer)):
            t, frame_no = float(frame), self._frame_no
        else:
            t, frame_no = float(frame.timestamp), int(getattr(frame, "frame_number", self._frame_no))
        self._frame_no = frame_no + 1
        if self.last_timestamp is not None and t < self.last_timestamp:
            raise ValueError(f"{self.stream_id}: timestamps must not go back ({t} < {self.last_timestamp})")
        out: list[Any] = []
        if self._next_metrics is None:
            self._next_metrics = (math.floor(t / self.metrics_interval_s) + 1) * self.metrics_interval_s
            self._next_heatmap = (math.floor(t / self.heatmap_interval_s) + 1) * self.heatmap_interval_s
            self._window_start = t
        # reports due before this frame describe the state up to the previous frame
        while t >= self._next_metrics:
            out += self._report_metrics(self._next_metrics)
            self._next_metrics += self.metrics_interval_s
        while t >= self._next_heatmap:
            out += self._report_heatmap(self._next_heatmap)
            self._next_heatmap += self.heatmap_interval_s
        gap = self.last_timestamp is not None and t - self.last_timestamp > self.lost_after_s
        tls: list[Any] = []  # with tracklets: this frame's, first in the records (the module docstring)
        if t >= self._next_expiry or gap:  # before this frame's ids: a track back after a long gap starts anew
            self._next_expiry = t + min(0.5, self.lost_after_s / 4)
            if self.tracklets is None:
                out += self._expire(t)
            else:
                tls = self._expire(t)  # final tracklets only
        self.last_timestamp = t

        tr = tracks if tracks is not None else Tracks.empty()
        ids = np.asarray(tr.track_ids, np.int64).reshape(-1)
        if len(ids) == 0:
            if self.lanes:
                self.queues.update(t, ids, ids.astype(bool), np.zeros((0, 2)), np.zeros((0, len(self.zones)), bool))
            self.heatmap.update(t, np.zeros((0, 2)))
            return tls + out + self._maybe_alerts(t)
        xyxy = np.asarray(tr.xyxy, np.float32).reshape(-1, 4)
        class_ids = np.asarray(tr.class_ids).reshape(-1)
        is_person, is_cart, all_person = self._kind_of(class_ids, class_names)

        if t >= self._next_detections:
            if self.detections_every_s > 0:
                self._next_detections = (math.floor(t / self.detections_every_s) + 1) * self.detections_every_s
            out += self._detections(t, frame_no, ids, xyxy, tr.scores, class_ids, class_names,
                                    tr.coasting)

        if all_person:
            p_ids, p_box = ids, xyxy.astype(np.float64)
        else:
            p_ids, p_box = ids[is_person], xyxy[is_person].astype(np.float64)
        p_feet = np.empty((len(p_ids), 2))
        p_feet[:, 0] = (p_box[:, 0] + p_box[:, 2]) * 0.5
        p_feet[:, 1] = p_box[:, 3]
        inside = self.zones.contains(p_feet)
        cart_near = None
        if not all_person and np.count_nonzero(is_cart):  # each cart counts for at most one person
            cart_near = self.carts.update(t, p_ids, p_box, p_feet, ids[is_cart], xyxy[is_cart].astype(np.float64))
        rows, new, dt = self.table.observe(t, p_ids)
        self.journeys.update(t, rows, new, dt, inside, cart_near)
        if self.tracklets is not None:
            tls += self._tracklet_heads(t, tr, p_ids, rows, new, p_feet, p_box, is_person, all_person, embeddings)
        if self.lanes:
            self.queues.update(t, rows, new, p_feet, inside)
        for ln in self.lines:
            ln.update(rows, new, p_feet)
        self.heatmap.update(t, p_feet)
        return (tls + out if tls else out) + self._maybe_alerts(t)

    def _tracklet_heads(self, t, tr, p_ids, rows, new, p_feet, p_box, is_person, all_person, embeddings) -> list[Any]:
        scores = di = None
        if embeddings is not None and len(embeddings) and self.tracklets.embeds_at(t):  # once a second
            scores = np.asarray(tr.scores, np.float32).reshape(-1)
            di = np.asarray(tr.det_index, np.int64).reshape(-1)
            if not all_person:
                scores, di = scores[is_person], di[is_person]
        return self.tracklets.update(t, p_ids, rows, new, p_feet, p_box, scores,
                                     None if di is None else np.asarray(embeddings), di)

    def _finish(self, ids: np.ndarray, rows: np.ndarray) -> list[Any]:
        """Journeys (or, linking visits, final tracklets carrying them) of the tracks that ended."""
        if self.tracklets is None:
            return list(self.journeys.finish(ids, rows))
        return self.tracklets.finals(self.journeys.finish_detailed(ids, rows))

    def _detections(self, t, frame_no, ids, xyxy, scores, class_ids, class_names,
                    coasting=None) -> list[DetectionRecord]:
        """Detection records of the tracks detected this frame (a tracker's coasting tracks, which
        are motion predictions of someone missed for a moment, are no detections)."""
        scores = np.asarray(scores, np.float32).reshape(-1)
        if coasting is not None:
            c = np.asarray(coasting, bool).reshape(-1)
            if len(c) == len(ids) and np.count_nonzero(c):
                keep = ~c
                ids, xyxy, scores, class_ids = ids[keep], xyxy[keep], scores[keep], class_ids[keep]
        names = [_label(class_names, c) or str(c) for c in class_ids.tolist()]
        wh = xyxy[:, 2:4] - xyxy[:, 0:2]
        return [DetectionRecord(self.stream_id, frame_no, t, n, s, x, y, w, h, i)
                for n, s, x, y, w, h, i in zip(names, scores.tolist(), xyxy[:, 0].tolist(), xyxy[:, 1].tolist(),
                                               wh[:, 0].tolist(), wh[:, 1].tolist(), ids.tolist())]

    def _expire(self, t: float) -> list[Any]:
        self.carts.expire(t, self.lost_after_s)
        ids, rows = self.table.expired(t, self.lost_after_s)
        if len(ids) == 0:
            return []
        out = self._finish(ids, rows)
        if self.lanes:
            self.queues.release(rows, t)
        self.table.release(ids)
        return out

    def _maybe_alerts(self, t: float) -> list[Any]:
        if not self.alerts.rules or t < self._next_alert_eval:
            return []
        self._next_alert_eval = t + 1.0  # rules see the metrics once a second
        a, out = self.alerts, []
        for q in self.lanes:
            out += a.observe(t, "queue_length", q.lane_id, q.length_now)
            if a.wants("wait_time"):
                out += a.observe(t, "wait_time", q.lane_id, q.longest_wait(t))
        if a.wants("occupancy"):
            occ = self.journeys.occupancy(t)
            for i, n in enumerate(self.zones.names):
                out += a.observe(t, "occupancy", n, int(occ[i]))
        if a.wants("dwell"):
            stays = self.journeys.current_stays(t)
            for i, n in enumerate(self.zones.names):
                out += a.observe(t, "dwell", n, float(stays[i]))
        return out

    # ------------------------------------------------------------------ reports
    def _report_metrics(self, t: float) -> list[Any]:
        entries, exits = self.journeys.take_counts()
        occ = self.journeys.occupancy(t)
        out: list[Any] = [ZoneOccupancyRecord(self.stream_id, t, n, int(occ[i]), int(entries[i]), int(exits[i]))
                          for i, n in enumerate(self.zones.names)]
        start = self._window_start if self._window_start is not None else t - self.metrics_interval_s
        window = max(t - max(start, t - self.metrics_interval_s), 1e-3)
        if self.lanes:
            out += self.queues.report(t, window)
        out += [ln.report(t) for ln in self.lines]
        self._window_start = t
        return out

    def _report_heatmap(self, t: float) -> list[Any]:
        return [self.heatmap.report(t)] if self.heatmap._t_ref is not None else []

    def flush(self, timestamp: float | None = None) -> list[Any]:
        """End of stream: close open journeys, report the last (partial) window."""
        t = self.last_timestamp if timestamp is None else float(timestamp)
        ids, rows = self.table.all()
        out: list[Any] = self._finish(ids, rows)
        self.table.release(ids)
        self.carts.reset()  # a stream resumed later may reuse person ids: no stale pairings
        if t is not None:
            out += self._report_metrics(t)
            out += self._report_heatmap(t)
        self._next_metrics = self._next_heatmap = None
        return out

    def reset(self) -> None:
        """Forget all per-track state (a new stream, or a reconfigured camera)."""
        self._build()


def _size(names: Any) -> int:
    try:
        return len(names)
    except TypeError:
        return 0


def _label(names: Any, c: int) -> str | None:
    if names is None:
        return None
    if isinstance(names, Mapping):
        v = names.get(c)
    else:
        v = names[c] if 0 <= c < len(names) else None
    return None if v is None else str(v)


class StoreAnalytics:
    """All cameras of a store config; hands out one ``CameraAnalytics`` per stream with
    shared journey and alert id counters (ids stay unique across cameras in one file)."""

    def __init__(self, store: StoreConfig, detections_every_s: float | None = None) -> None:
        self.store = store
        self.next_journey_id = counter_ids("journey-")
        self.next_alert_id = counter_ids("alert-")
        self._detections_every_s = detections_every_s  # the caller's, over the file's
        self.detections_every_s = store.detections_every_s if detections_every_s is None else detections_every_s
        self.cameras: dict[str, CameraAnalytics] = {}

    def reconfigure(self, store: StoreConfig) -> None:
        """A reloaded store config: ``for_stream``/``fresh`` build from it from now on. The journey
        and alert id counters continue (ids stay unique in one run); analytics already handed
        out are not touched (their owner swaps them, e.g. ``clients.camera.TrackedCamera.stage``)."""
        self.store = store
        if self._detections_every_s is None:
            self.detections_every_s = store.detections_every_s

    def fresh(self, stream_id: str) -> CameraAnalytics | None:
        """New analytics for a camera of the current config, replacing the one ``for_stream``
        keeps (None, and the kept one dropped, when the config has no such camera)."""
        self.cameras.pop(stream_id, None)
        return self.for_stream(stream_id) if stream_id in self.store.cameras else None

    def for_stream(self, stream_id: str) -> CameraAnalytics:
        """The analytics of a configured camera (ConfigError naming the camera otherwise)."""
        if stream_id not in self.cameras:
            cam = self.store.camera(stream_id)
            self.cameras[stream_id] = CameraAnalytics(
                cam, alert_rules=self.store.alerts, metrics_interval_s=self.store.metrics_interval_s,
                heatmap_interval_s=self.store.heatmap_interval_s, detections_every_s=self.detections_every_s,
                next_journey_id=self.next_journey_id, next_alert_id=self.next_alert_id,
                tracklets=self.store.visits is not None,
                tracklet_head_s=None if self.store.visits is None else self.store.visits.head_after_s)
        return self.cameras[stream_id]

    def flush(self, timestamp: float | None = None) -> list[Any]:
        out: list[Any] = []
        for cam in self.cameras.values():
            out += cam.flush(timestamp)
        return out
