"""Per-camera analytics: tracks in, seed-schema records out.

    store = load_store_config("configs/store.yaml")
    cams = StoreAnalytics(store)                       # shares journey/alert id counters
    cam = cams.for_stream("cam-checkout-1")
    records = cam.update(frame_or_timestamp, tracks, class_names)   # every frame, in time order
    records += cam.flush(last_timestamp)               # end of stream: open journeys close

``tracks`` is the tracker's output (``track_ids`` int64[M], ``xyxy`` float32[M, 4],
``scores`` float32[M], ``class_ids`` int[M]); ``class_names`` maps class id -> label
(a dict or a sequence). Persons are labels like ``person``; carts ``cart``/``basket``/
``shopping cart``. ``frame_or_timestamp`` is an ``analytics.types.Frame`` (its
``timestamp`` and ``frame_number`` are used) or float seconds since the epoch.

Records: ``DetectionRecord`` per track (every frame, or every ``detections_every_s``),
``JourneyRecord`` when a journey ends, ``QueueMetricsRecord`` / ``FootfallRecord`` /
``ZoneOccupancyRecord`` every ``metrics_interval_s``, ``HeatmapRecord`` every
``heatmap_interval_s`` (and at flush), ``AlertRecord`` when a rule raises or clears.
Report instants are aligned to multiples of the interval in stream time.
"""
from __future__ import annotations

import math
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from analytics.alerts import AlertEngine
from analytics.config import AlertRule, CameraConfig, StoreConfig
from analytics.footfall import LineCounter
from analytics.geometry import feet
from analytics.heatmap import Heatmap
from analytics.journeys import JourneyTracker, counter_ids
from analytics.queues import LaneQueue
from analytics.records import DetectionRecord, ZoneOccupancyRecord
from analytics.zones import ZoneOccupancy, ZoneSet

PERSON_LABELS = frozenset({"person", "people", "customer", "pedestrian", "normal"})
CART_LABELS = frozenset({"cart", "shopping cart", "shopping_cart", "shopping-cart", "trolley", "basket",
                         "shopping basket", "shopping_basket"})


class _Empty:
    track_ids = np.zeros(0, np.int64)
    xyxy = np.zeros((0, 4), np.float32)
    scores = np.zeros(0, np.float32)
    class_ids = np.zeros(0, np.int32)


class CameraAnalytics:
    def __init__(self, camera: CameraConfig, *, stream_id: str | None = None, alert_rules: Sequence[AlertRule] = (),
                 metrics_interval_s: float = 60.0, heatmap_interval_s: float = 900.0,
                 detections_every_s: float = 0.0, next_journey_id: Callable[[], str] | None = None,
                 next_alert_id: Callable[[], str] | None = None) -> None:
        self.camera = camera
        self.stream_id = stream_id or camera.camera_id
        self.zones = ZoneSet(camera.zones, camera.image_size)
        converting = [z.converts or any(l.service_zone == z.name for l in camera.lanes.values())
                      for z in self.zones.zones]
        self.journeys = JourneyTracker(self.stream_id, self.zones.names, camera.journeys, converting,
                                       next_journey_id or counter_ids())
        self.occupancy = ZoneOccupancy(len(self.zones))
        self.metrics_interval_s = float(metrics_interval_s)
        self.heatmap_interval_s = float(heatmap_interval_s)
        self.detections_every_s = float(detections_every_s)
        self._next_alert_id = next_alert_id or counter_ids("alert-")
        self._alert_rules = [r for r in alert_rules if not r.cameras or self.stream_id in r.cameras]
        self._kinds: dict[Any, tuple[int, dict]] = {}
        self._frame_no = 0
        self._next_metrics: float | None = None
        self._next_heatmap: float | None = None
        self._next_detections = -math.inf
        self.last_timestamp: float | None = None
        self._extra_init()

    def _extra_init(self) -> None:
        cam, zi = self.camera, self.zones.index
        self.lanes = [LaneQueue(self.stream_id, l.lane_id, zi[l.queue_zone], zi[l.service_zone])
                      for l in cam.lanes.values()]
        self.lines = [LineCounter(self.stream_id, ln) for ln in cam.lines.values()]
        self.heatmap = Heatmap(self.stream_id, cam.image_size, cam.heatmap)
        self.alerts = AlertEngine(self.stream_id, self._alert_rules, self._next_alert_id)
        self._window_start: float | None = None
        self._next_alert_eval = -math.inf

    # ------------------------------------------------------------------ classes
    def _kind_of(self, class_ids: np.ndarray, class_names: Any) -> tuple[np.ndarray, np.ndarray]:
        """(is_person bool[M], is_cart bool[M]) from class ids and the model's labels."""
        if len(class_ids) == 0:
            return np.zeros(0, bool), np.zeros(0, bool)
        key = id(class_names)
        cached = self._kinds.get(key)
        if cached is None or cached[0] != _size(class_names):
            cached = (_size(class_names), {})
            self._kinds = {key: cached}
        table = cached[1]
        ids = class_ids.astype(np.int64)
        for c in np.unique(ids).tolist():
            if c not in table:
                name = _label(class_names, c)
                if name is None:  # no labels at all: COCO order (0 = person)
                    table[c] = (c == 0, False)
                else:
                    n = name.strip().lower()
                    table[c] = (n in PERSON_LABELS, n in CART_LABELS)
        lut_keys = np.array(sorted(table), np.int64)
        lut = np.array([table[k] for k in lut_keys.tolist()], bool)
        k = lut[np.searchsorted(lut_keys, ids)]
        return k[:, 0], k[:, 1]

    # ------------------------------------------------------------------ frames
    def update(self, frame: Any, tracks: Any, class_names: Any = None) -> list[Any]:
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
        # reports due before this frame describe the state up to the previous frame
        while t >= self._next_metrics:
            out += self._report_metrics(self._next_metrics)
            self._next_metrics += self.metrics_interval_s
        while t >= self._next_heatmap:
            out += self._report_heatmap(self._next_heatmap)
            self._next_heatmap += self.heatmap_interval_s
        self.last_timestamp = t

        tr = tracks if tracks is not None else _Empty
        ids = np.asarray(tr.track_ids, np.int64).reshape(-1)
        xyxy = np.asarray(tr.xyxy, np.float32).reshape(-1, 4)
        class_ids = np.asarray(tr.class_ids).reshape(-1)
        is_person, is_cart = self._kind_of(class_ids, class_names)

        if len(ids) and t >= self._next_detections:
            if self.detections_every_s > 0:
                self._next_detections = (math.floor(t / self.detections_every_s) + 1) * self.detections_every_s
            scores = np.asarray(tr.scores, np.float32).reshape(-1)
            names = [_label(class_names, c) or str(c) for c in class_ids.tolist()]
            wh = xyxy[:, 2:4] - xyxy[:, 0:2]
            out += [DetectionRecord(self.stream_id, frame_no, t, n, s, x, y, w, h, i)
                    for n, s, x, y, w, h, i in zip(names, scores.tolist(), xyxy[:, 0].tolist(),
                                                   xyxy[:, 1].tolist(), wh[:, 0].tolist(), wh[:, 1].tolist(),
                                                   ids.tolist())]

        p_ids, p_box = ids[is_person], xyxy[is_person]
        p_feet = feet(p_box)
        inside = self.zones.contains(p_feet)
        cart_near = self._cart_near(p_box, p_feet, xyxy[is_cart])
        ended = self.journeys.update(t, p_ids, inside, cart_near)
        out += ended
        self.occupancy.update(p_ids, inside, np.array([j.track_id for j in ended], np.int64) if ended else None)
        out += self._extra_update(t, p_ids, p_box, p_feet, inside)
        return out

    def _extra_update(self, t, ids, boxes, feet_xy, inside) -> list[Any]:
        if self._window_start is None:
            self._window_start = t
        for q in self.lanes:
            q.update(t, ids, feet_xy, inside)
        for ln in self.lines:
            ln.update(t, ids, feet_xy)
        self.heatmap.update(t, feet_xy)
        if self.alerts.rules and t >= self._next_alert_eval:  # rules see the metrics once a second
            self._next_alert_eval = t + 1.0
            return self._evaluate_alerts(t)
        return []

    def _evaluate_alerts(self, t: float) -> list[Any]:
        a, out = self.alerts, []
        for q in self.lanes:
            out += a.observe(t, "queue_length", q.lane_id, q.length_now)
            if a.wants("wait_time"):
                out += a.observe(t, "wait_time", q.lane_id, q.longest_wait(t))
        if a.wants("occupancy"):
            for i, n in enumerate(self.zones.names):
                out += a.observe(t, "occupancy", n, int(self.occupancy.occupancy[i]))
        if a.wants("dwell"):
            stays = self.journeys.current_stays(t)
            for i, n in enumerate(self.zones.names):
                out += a.observe(t, "dwell", n, float(stays[i]))
        return out

    def _cart_near(self, p_box: np.ndarray, p_feet: np.ndarray, c_box: np.ndarray) -> np.ndarray:
        """bool[P]: a cart's bottom centre within ``cart_max_distance`` person heights of the feet."""
        if len(p_box) == 0 or len(c_box) == 0:
            return np.zeros(len(p_box), bool)
        c_feet = feet(c_box)
        h = np.maximum(p_box[:, 3] - p_box[:, 1], 1.0).astype(np.float64)
        d = np.hypot(p_feet[:, None, 0] - c_feet[None, :, 0], p_feet[:, None, 1] - c_feet[None, :, 1])
        return (d.min(axis=1) / h) <= self.camera.journeys.cart_max_distance

    # ------------------------------------------------------------------ reports
    def _report_metrics(self, t: float) -> list[Any]:
        c = self.occupancy.take_counts()
        out: list[Any] = [ZoneOccupancyRecord(self.stream_id, t, n, int(c.occupancy[i]), int(c.entries[i]),
                                              int(c.exits[i])) for i, n in enumerate(self.zones.names)]
        start = self._window_start if self._window_start is not None else t - self.metrics_interval_s
        window = max(t - max(start, t - self.metrics_interval_s), 1e-3)
        out += [q.report(t, window) for q in self.lanes]
        out += [ln.report(t) for ln in self.lines]
        self._window_start = t
        return out

    def _report_heatmap(self, t: float) -> list[Any]:
        return [self.heatmap.report(t)] if self.heatmap._t_ref is not None else []

    def flush(self, timestamp: float | None = None) -> list[Any]:
        """End of stream: close open journeys, report the last (partial) window."""
        t = self.last_timestamp if timestamp is None else float(timestamp)
        out: list[Any] = list(self.journeys.flush())
        if t is not None:
            out += self._report_metrics(t)
            out += self._report_heatmap(t)
        self._next_metrics = self._next_heatmap = None
        return out

    def reset(self) -> None:
        """Forget all per-track state (a new stream, or a reconfigured camera)."""
        self.journeys.reset()
        self.occupancy = ZoneOccupancy(len(self.zones))
        self._extra_init()
        self._next_metrics = self._next_heatmap = None
        self.last_timestamp = None


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
        self.detections_every_s = store.detections_every_s if detections_every_s is None else detections_every_s
        self.cameras: dict[str, CameraAnalytics] = {}

    def for_stream(self, stream_id: str) -> CameraAnalytics:
        """The analytics of a configured camera (ConfigError naming the camera otherwise)."""
        if stream_id not in self.cameras:
            cam = self.store.camera(stream_id)
            self.cameras[stream_id] = CameraAnalytics(
                cam, alert_rules=self.store.alerts, metrics_interval_s=self.store.metrics_interval_s,
                heatmap_interval_s=self.store.heatmap_interval_s, detections_every_s=self.detections_every_s,
                next_journey_id=self.next_journey_id, next_alert_id=self.next_alert_id)
        return self.cameras[stream_id]

    def flush(self, timestamp: float | None = None) -> list[Any]:
        out: list[Any] = []
        for cam in self.cameras.values():
            out += cam.flush(timestamp)
        return out
