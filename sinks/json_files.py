"""The seed's five JSON files, streamed to disk with bounded memory; per day, with expiry.

    sink = JsonFilesSink("outputs")      # rotate="none": detections.json, journeys.json, queue_metrics.json,
    sink.write(records)                  #   heatmap.json, alerts.json in outputs/ (each a JSON array)
    sink.flush(); sink.close()

    sink = JsonFilesSink("outputs", rotate="daily", detections=1.0,          # what live runs use
                         retention_days={"detections": 7, "journeys": 90, ...}, clock=time.time)
                                         # -> outputs/2026-12-06/journeys.json, ... (one directory per UTC day)

Store level (``visits/``: a store that follows customers across cameras) adds three files
of the project's own, opened when their first record arrives (a store that does not link
visits keeps exactly the seed's five): ``camera_journeys.json`` (``CameraJourneyRecord``:
the per-camera journeys the visits were stitched from), ``floor_heatmap.json``
(``FloorHeatmapRecord``) and ``store_kpis.json`` (``StoreKpiRecord``). ``journeys.json``
then holds the store's visits (``VisitRecord``: the seed's journey schema plus ``cameras``
and ``tracklets``) in place of the per-camera journeys.

Each file is one JSON array of ``record.to_dict()`` objects in the seed's schema. After
every flush (every ``flush_every`` records, on ``flush()`` and on ``close()``) the records
so far and the closing bracket are on disk, so a crash mid-run leaves valid JSON holding
everything up to the last flush; memory holds at most ``flush_every`` records. Records
with no seed file (footfall, occupancy, stream health) are counted in
``stats()["skipped"]`` and go to InfluxDB only.

``rotate="none"`` (the default here; the sample generator and the demo): the five files in
``output_dir``, truncated at start, never expired: exactly the seed's layout (a store file
left by an earlier run is truncated at start too, so no stale store data sits beside them).

``rotate="daily"`` (live runs, ``sinks.json.rotate`` in configs/app_config.yaml): a record
goes to the files of its own UTC day (its ``timestamp``; journeys, visits and camera
journeys: ``end_time``; heatmaps, which carry no time in the seed's schema: the day of the
newest record seen), in ``output_dir/YYYY-MM-DD/`` (``sinks.json_expiry``). The day's five
seed files are created together when its first record arrives (a store file with its first
record of that day); a restart on the same day appends to them (a file torn by a crash is
repaired: its complete records kept, the torn tail logged and dropped).
When a record of a newer day arrives, every older day's files are closed (valid JSON,
fsynced) and the new day's opened: no record is dropped at a rollover. A late record of an
older day reopens that day's file, goes to it, and the file is closed at the next flush.

Expiry (daily only): at start, at each rollover and whenever the clock's UTC day has
changed since the last one, ``retention_days`` (the ``retention:`` section: detections,
journeys, queue_metrics, heatmaps, alerts; 0 = forever; camera_journeys.json and
store_kpis.json expire with journeys, floor_heatmap.json with heatmaps: ``RETENTION_KEYS``)
is applied to the dated files of ``output_dir``. "Now" is ``clock()``, the wall clock (UTC) unless a test injects one. The
days this sink has written in this run are never expired by it, so a replay stamped with
old dates keeps its files for the run; the next start judges them by the wall clock.

``detections``: ``"all"`` (every detection record), ``"off"`` (none; the file stays an empty
array), or a number of seconds N: at most one record per track (stream, track id) per N
seconds of record time, the first of each track always kept. Detection records dropped by
the sampling are counted in ``stats()["sampled_out"]``.
"""
from __future__ import annotations

import datetime as dt
import json
import logging
import os
import threading
import time
from pathlib import Path
from typing import Any, BinaryIO, Callable, Iterable, Mapping

from analytics.records import (
    AlertRecord,
    CameraJourneyRecord,
    DetectionRecord,
    FloorHeatmapRecord,
    HeatmapRecord,
    JourneyRecord,
    QueueMetricsRecord,
    StoreKpiRecord,
    VisitRecord,
)
from core.files import atomic_write_bytes
from sinks.json_expiry import day_dir, expire, utc_day

log = logging.getLogger("sinks.json_files")

SEED_FILES: dict[type, str] = {
    DetectionRecord: "detections.json",
    JourneyRecord: "journeys.json",
    QueueMetricsRecord: "queue_metrics.json",
    HeatmapRecord: "heatmap.json",
    AlertRecord: "alerts.json",
}
# store level (visits/): the project's own files, opened with their first record
STORE_FILES: dict[type, str] = {
    CameraJourneyRecord: "camera_journeys.json",
    FloorHeatmapRecord: "floor_heatmap.json",
    StoreKpiRecord: "store_kpis.json",
}
# every record type this sink writes -> its file (a store's visits take the journeys' place in journeys.json)
RECORD_FILES: dict[type, str] = {**SEED_FILES, VisitRecord: "journeys.json", **STORE_FILES}
# the ``retention:`` key (data type) of each file
RETENTION_KEYS: dict[str, str] = {"detections.json": "detections", "journeys.json": "journeys",
                                  "queue_metrics.json": "queue_metrics", "heatmap.json": "heatmaps",
                                  "alerts.json": "alerts", "camera_journeys.json": "journeys",
                                  "floor_heatmap.json": "heatmaps", "store_kpis.json": "journeys"}
_OPENED_TOGETHER = tuple(SEED_FILES.values())  # a day's (or a run's) seed files; store files open lazily
ROTATIONS = ("none", "daily")
_CLOSE = b"\n]\n"
_EMPTY = b"[]\n"


class _ArrayFile:
    """A JSON array on disk, valid after every ``seal()``.

    Records since the last seal wait in memory (at most ``flush_every`` of them) and go
    to disk together with the closing bracket, written over the previous bracket: the
    file on disk is never a half-appended array, only the seal itself could be cut.
    ``resume=True`` appends to an existing file instead of truncating it (``_recover``
    repairs one whose last seal was cut). ``count``: records appended by this object.
    """

    def __init__(self, path: Path, resume: bool = False) -> None:
        self.path = path
        self.count = 0
        self._pending: list[bytes] = []
        if resume and path.is_file() and path.stat().st_size > 0:
            self._f, self._end, self._nonempty = _reopen(path)
            return
        self._nonempty = False
        self._f: BinaryIO = open(path, "wb")
        self._f.write(b"[")
        self._end = self._f.tell()  # where the closing bracket starts
        self.seal()

    def append(self, obj: dict) -> None:
        sep = b",\n  " if self._nonempty else b"\n  "
        self._pending.append(sep + json.dumps(obj, separators=(", ", ": "), ensure_ascii=False).encode("utf-8"))
        self.count += 1
        self._nonempty = True

    def seal(self, durable: bool = False) -> None:
        self._f.seek(self._end)
        self._f.write(b"".join(self._pending))
        self._pending.clear()
        self._end = self._f.tell()
        self._f.write(_CLOSE if self._nonempty else b"]\n")
        self._f.truncate()
        self._f.flush()
        if durable:
            os.fsync(self._f.fileno())

    def close(self) -> None:
        self.seal(durable=True)
        self._f.close()


def _reopen(path: Path) -> tuple[BinaryIO, int, bool]:
    """An existing array file opened for appending -> (file, closing bracket offset, has records)."""
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(1)
        f.seek(max(0, size - 3))
        tail = f.read()
    if head == b"[" and size == 3 and tail == _EMPTY:
        return open(path, "r+b"), 1, False
    if head == b"[" and size > 3 and tail == _CLOSE:
        return open(path, "r+b"), size - 3, True
    _recover(path)
    return _reopen(path)


def _recover(path: Path) -> None:
    """Repair a file whose last seal was cut (a crash or a full disk): keep every complete
    record line, drop the torn tail (logged), write the array back whole. A file that is
    not one of this sink's arrays is moved aside (``<name>.unreadable-<time>``), not lost."""
    data = path.read_bytes()
    lines = data.split(b"\n")
    if lines[0] not in (b"[", b"[]"):
        aside = path.with_name(f"{path.name}.unreadable-{int(time.time())}")
        os.replace(path, aside)
        log.error("%s is not a JSON array written by this sink: moved to %s, starting a new file", path, aside)
        path.write_bytes(_EMPTY)
        return
    kept: list[bytes] = []
    for line in lines[1:]:
        body = line.strip().rstrip(b",")
        if body == b"]":
            break
        try:
            if not isinstance(json.loads(body), dict):
                break
        except ValueError:
            break
        kept.append(b"  " + body)
    out = (b"[\n" + b",\n".join(kept) + _CLOSE) if kept else _EMPTY
    log.warning("%s was cut mid-write: kept its %d complete record(s), dropped %d byte(s) of torn tail",
                path, len(kept), max(0, len(data) - len(out)))
    atomic_write_bytes(path, out)


def record_time(r: Any) -> float | None:
    """The time that dates a record's day: a journey's (visit's) end, else its ``timestamp`` (None:
    heatmaps built without one)."""
    ended = isinstance(r, (JourneyRecord, VisitRecord, CameraJourneyRecord))
    t = r.end_time if ended else getattr(r, "timestamp", None)
    return None if t is None else float(t)


class DetectionSampler:
    """At most one detection record per (stream, track) per ``every_s`` seconds of record time;
    the first of each track is kept, so is one whose time went backwards (a restarted clip).
    Detections without a track id count as one track per stream."""

    _PRUNE_AT = 50_000  # tracks remembered before the stale ones (gone a minute) are forgotten

    def __init__(self, every_s: float) -> None:
        self.every_s = float(every_s)
        self._last: dict[tuple, float] = {}
        self._newest = float("-inf")

    def keep(self, r: DetectionRecord) -> bool:
        key = (r.stream_id, r.track_id)
        t = float(r.timestamp)
        self._newest = max(self._newest, t)
        last = self._last.get(key)
        if last is not None and 0 <= t - last < self.every_s - 1e-6:  # 1e-6: frame times in float
            return False
        self._last[key] = t
        if len(self._last) > self._PRUNE_AT:
            horizon = self._newest - max(60.0, self.every_s)
            self._last = {k: v for k, v in self._last.items() if v >= horizon}
        return True


def detection_filter(detections: str | float) -> Callable[[DetectionRecord], bool]:
    """``"all"`` / ``"off"`` / seconds -> the predicate a detection record must pass."""
    if detections == "all":
        return lambda r: True
    if detections == "off":
        return lambda r: False
    if isinstance(detections, bool) or not isinstance(detections, (int, float)) or not detections > 0:
        raise ValueError(f"detections must be 'all', 'off' or a number of seconds > 0, not {detections!r}")
    return DetectionSampler(float(detections)).keep


class JsonFilesSink:
    def __init__(self, output_dir: str | Path, flush_every: int = 500, *, rotate: str = "none",
                 detections: str | float = "all", retention_days: Mapping[str, int] | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        if rotate not in ROTATIONS:
            raise ValueError(f"rotate must be one of {ROTATIONS}, not {rotate!r}")
        self.output_dir = Path(output_dir)
        self.output_dir.mkdir(parents=True, exist_ok=True)
        self.flush_every = max(1, int(flush_every))
        self.rotate = rotate
        self.clock = clock
        self._keep_detection = detection_filter(detections)
        days = retention_days or {}
        self.expiry_days = {name: int(days.get(key, 0)) for name, key in RETENTION_KEYS.items()}
        self._lock = threading.Lock()
        self._since_flush = 0
        self._skipped = self._sampled_out = self._late = 0
        self._written = dict.fromkeys(SEED_FILES.values(), 0)
        self._deleted: list[str] = []
        self._closed = False
        self._days: dict[dt.date, dict[str, _ArrayFile]] = {}  # open files per day, by file name (daily)
        self._written_days: set[dt.date] = set()  # never expired by this run
        self._newest: dt.date | None = None
        self._expired_for: dt.date | None = None
        if rotate == "none":
            # seed files at start; a store file too if an earlier run left one (truncated), else with its first record
            self._files = {name: _ArrayFile(self.output_dir / name) for name in dict.fromkeys(RECORD_FILES.values())
                           if name in _OPENED_TOGETHER or (self.output_dir / name).is_file()}
        else:
            self._probe_writable()
            self._expire()

    @classmethod
    def from_config(cls, cfg: Any, retention_days: Mapping[str, int] | None = None) -> "JsonFilesSink":
        """From a ``sinks.config.JsonSinkConfig`` and the ``retention:`` days per data type."""
        return cls(cfg.output_dir, cfg.flush_every, rotate=cfg.rotate, detections=cfg.detections,
                   retention_days=retention_days)

    def _probe_writable(self) -> None:
        """Daily files open with their first record: fail now (start-up) if the directory is not writable."""
        probe = self.output_dir / f".write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()

    # ------------------------------------------------------------------ writing

    def write(self, records: Iterable[Any]) -> None:
        with self._lock:
            if self._closed:
                raise RuntimeError(f"JsonFilesSink({self.output_dir}): write() after close()")
            for r in records:
                cls = type(r)
                name = RECORD_FILES.get(cls)
                if name is None:
                    self._skipped += 1
                    continue
                if cls is DetectionRecord and not self._keep_detection(r):
                    self._sampled_out += 1
                    continue
                f = self._single_file(name) if self.rotate == "none" else self._file_for(r, name)
                f.append(r.to_dict())
                self._written[name] = self._written.get(name, 0) + 1
                self._since_flush += 1
            if self._since_flush >= self.flush_every:
                self._flush_locked()

    def _single_file(self, name: str) -> _ArrayFile:
        f = self._files.get(name)
        if f is None:  # a store file's first record of this run
            f = self._files[name] = _ArrayFile(self.output_dir / name)
        return f

    def _file_for(self, r: Any, name: str) -> _ArrayFile:
        """The file of the record's UTC day (opening the day, rolling over to it)."""
        t = record_time(r)
        if t is not None:
            day = utc_day(t)
        else:
            day = self._newest if self._newest is not None else utc_day(self.clock())
        files = self._days.get(day)
        if files is None:
            files = self._open_day(day)
        f = files.get(name)
        if f is None:  # a store file's first record of that day
            f = files[name] = _ArrayFile(day_dir(self.output_dir, day) / name, resume=True)
        return f

    def _open_day(self, day: dt.date) -> dict[str, _ArrayFile]:
        if self._newest is not None and day < self._newest:
            self._late += 1
            log.info("late record(s) of %s: reopening that day's files (closed at the next flush)", day)
        d = day_dir(self.output_dir, day)
        d.mkdir(exist_ok=True)
        files = {name: _ArrayFile(d / name, resume=True) for name in _OPENED_TOGETHER}
        self._days[day] = files
        self._written_days.add(day)
        if self._newest is None or day > self._newest:
            previous, self._newest = self._newest, day
            if previous is not None:
                self._close_days_before(day)
                log.info("JSON files rolled over to %s (%s)", day, d)
                self._expire()
            else:
                log.info("JSON files of %s: %s", day, d)
        return files

    def _close_days_before(self, day: dt.date) -> None:
        for old in [k for k in self._days if k < day]:
            for f in self._days.pop(old).values():
                f.close()

    def _all_open(self) -> list[_ArrayFile]:
        if self.rotate == "none":
            return list(self._files.values())
        return [f for files in self._days.values() for f in files.values()]

    def _expire(self) -> None:
        today = utc_day(self.clock())
        self._expired_for = today
        deleted = expire(self.output_dir, self.expiry_days, today, keep=self._written_days)
        self._deleted.extend(str(p) for p in deleted)

    def _flush_locked(self) -> None:
        for f in self._all_open():
            f.seal()
        self._since_flush = 0
        if self.rotate == "daily":
            if self._newest is not None:
                self._close_days_before(self._newest)  # late days reopened since the last flush
            if utc_day(self.clock()) != self._expired_for:
                self._expire()

    def flush(self) -> None:
        with self._lock:
            if not self._closed:
                self._flush_locked()

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            for f in self._all_open():
                f.close()
            self._days.clear()
            self._closed = True

    def stats(self) -> dict:
        """``files``: records written per file name (this run; all days together; the seed's five always,
        a store file once written);
        ``skipped``: records with no seed file; ``sampled_out``: detections not written;
        daily: ``day`` (the newest), ``late`` (reopened older days), ``expired`` (files deleted)."""
        with self._lock:
            out: dict[str, Any] = {"files": dict(self._written), "skipped": self._skipped}
            if self._sampled_out:
                out["sampled_out"] = self._sampled_out
            if self.rotate == "daily":
                out.update(day=None if self._newest is None else self._newest.isoformat(), late=self._late,
                           expired=len(self._deleted))
            return out
