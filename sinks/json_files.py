"""The seed's five JSON files, streamed to disk with bounded memory.

    sink = JsonFilesSink("outputs")      # creates detections.json, journeys.json, queue_metrics.json,
    sink.write(records)                  #   heatmap.json, alerts.json (each a JSON array)
    sink.flush(); sink.close()

Each file is one JSON array of ``record.to_dict()`` objects in the seed's schema. After
every flush (every ``flush_every`` records, on ``flush()`` and on ``close()``) the records
so far and the closing bracket are on disk, so a crash mid-run leaves valid JSON holding
everything up to the last flush; memory holds at most ``flush_every`` records. Records
with no seed file (footfall, occupancy, stream health) are counted in
``stats()["skipped"]`` and go to InfluxDB only.
"""
from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import Any, BinaryIO, Iterable

from analytics.records import AlertRecord, DetectionRecord, HeatmapRecord, JourneyRecord, QueueMetricsRecord

SEED_FILES: dict[type, str] = {
    DetectionRecord: "detections.json",
    JourneyRecord: "journeys.json",
    QueueMetricsRecord: "queue_metrics.json",
    HeatmapRecord: "heatmap.json",
    AlertRecord: "alerts.json",
}
_CLOSE = b"\n]\n"


class _ArrayFile:
    """A JSON array on disk, valid after every ``seal()``.

    Records since the last seal wait in memory (at most ``flush_every`` of them) and go
    to disk together with the closing bracket, written over the previous bracket: the
    file on disk is never a half-appended array, only the seal itself could be cut.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.count = 0
        self._pending: list[bytes] = []
        self._f: BinaryIO = open(path, "wb")
        self._f.write(b"[")
        self._end = self._f.tell()  # where the closing bracket starts
        self.seal()

    def append(self, obj: dict) -> None:
        sep = b",\n  " if self.count else b"\n  "
        self._pending.append(sep + json.dumps(obj, separators=(", ", ": "), ensure_ascii=False).encode("utf-8"))
        self.count += 1

    def seal(self, durable: bool = False) -> None:
        self._f.seek(self._end)
        self._f.write(b"".join(self._pending))
        self._pending.clear()
        self._end = self._f.tell()
        self._f.write(_CLOSE if self.count else b"]\n")
        self._f.truncate()
        self._f.flush()
        if durable:
            os.fsync(self._f.fileno())

    def close(self) -> None:
        self.seal(durable=True)
        self._f.close()


class JsonFilesSink:
    def __init__(self, output_dir: str | Path, flush_every: int = 500) -> None:
        self.output_dir = Path(output_dir)
        self.output_dir.mkdir(parents=True, exist_ok=True)
        self.flush_every = max(1, int(flush_every))
        self._files = {cls: _ArrayFile(self.output_dir / name) for cls, name in SEED_FILES.items()}
        self._lock = threading.Lock()
        self._since_flush = 0
        self._skipped = 0
        self._closed = False

    @classmethod
    def from_config(cls, cfg: Any) -> "JsonFilesSink":
        return cls(cfg.output_dir, cfg.flush_every)

    def write(self, records: Iterable[Any]) -> None:
        with self._lock:
            if self._closed:
                raise RuntimeError(f"JsonFilesSink({self.output_dir}): write() after close()")
            for r in records:
                f = self._files.get(type(r))
                if f is None:
                    self._skipped += 1
                    continue
                f.append(r.to_dict())
                self._since_flush += 1
            if self._since_flush >= self.flush_every:
                self._flush_locked()

    def _flush_locked(self) -> None:
        for f in self._files.values():
            f.seal()
        self._since_flush = 0

    def flush(self) -> None:
        with self._lock:
            if not self._closed:
                self._flush_locked()

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            for f in self._files.values():
                f.close()
            self._closed = True

    def stats(self) -> dict:
        with self._lock:
            return {"files": {f.path.name: f.count for f in self._files.values()}, "skipped": self._skipped}
