"""``python -m benchmarks.scale``: the InfluxDB side of the capacity model (docs/scale.md).

Inputs: a sample directory written by ``scripts/generate_sample_data.py --hours 24`` (the
seed's five files for one store of 4 cameras), the retention table of the app config (the
seed's storage table), and a local influxd (Debian's 1.6.7, launchers.influx).
Outputs (printed as markdown, JSON with ``--json``):
- points per day per store by measurement, as the InfluxDB sink maps records to points
  (journeys: one point + one ``zone_dwell`` point per zone; detections: one point per frame
  and class, at the pipeline's ``--fps``, from the classes per frame seen in the sample);
- bytes per point on disk, per data type: the pipeline mix of simulator/record_mix.py
  written through ``InfluxSink`` into influxd, the WAL snapshotted into TSM files (cold
  durations shortened), TSM + field index bytes of each retention policy / its points;
- storage per store: the first 30 days and the steady state under the retention table.

    python -m benchmarks.scale --sample /tmp/sample24 [--fps 15] [--points 300000]
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path

from benchmarks.sinks import make_points
from core.config import read_mapping
from launchers.influx import InfluxServer
from launchers.triton import REPO_ROOT
from sinks.config import InfluxConfig, RetentionConfig
from sinks.influx import InfluxSink
from sinks.line_protocol import MEASUREMENT_DATA_TYPE
from sinks.setup import setup_v1

# seed file -> data type of the retention table (one point per record; journeys: + zone_dwell)
FILES = {"journeys.json": "journeys", "queue_metrics.json": "queue_metrics", "heatmap.json": "heatmaps",
         "alerts.json": "alerts", "footfall.json": "footfall"}
HEALTH_EVERY_S = 10.0  # stream_health per stream, sink_health per process (sinks.influxdb.health_interval_s)


def _load(path: Path) -> list[dict]:
    return json.loads(path.read_text()) if path.exists() else []


def sample_points_per_day(sample: Path, fps: float) -> tuple[dict[str, float], dict]:
    """Points per day for the sample's store, by retention data type; and what was counted.

    Detections: the sink writes one point per frame and class present. The sample keeps one
    detection row per track per second, so the frames with anything in them come from the
    generator's summary (``tracker_calls``) and the classes per such frame from the rows
    grouped by camera and second; scaled from the sample's fps to ``fps``."""
    summary = json.loads((sample / "generation_summary.json").read_text())
    days = float(summary["hours"]) / 24
    seconds: dict[tuple, set] = defaultdict(set)
    for d in _load(sample / "detections.json"):
        seconds[(d["stream_id"], int(d["frame_number"] // summary["fps"]))].add(d["class_name"])
    classes = sum(len(c) for c in seconds.values()) / max(len(seconds), 1)
    active = summary["tracker_calls"] / days  # frames/day with something detected or tracked
    out: dict[str, float] = {"detections": active * classes * fps / summary["fps"]}
    counted = {"cameras": len(summary["cameras"]), "hours": summary["hours"], "sample_fps": summary["fps"],
               "frames": summary["frames"], "active_frames": summary["tracker_calls"],
               "classes_per_active_frame": round(classes, 3)}
    for name, dtype in FILES.items():
        rows = _load(sample / name)
        n = len(rows)
        if name == "journeys.json":  # + one zone_dwell point per zone visited
            n += sum(len(r.get("zone_dwell_times") or {}) for r in rows)
        out[dtype] = out.get(dtype, 0.0) + n / days
        counted[name] = len(rows)
    # zone occupancy (not a seed file): one point per zone per metrics interval (store.yaml)
    store = read_mapping(REPO_ROOT / "configs" / "store.yaml", "store config")
    zones = sum(len(c.get("zones") or {}) for c in store.get("cameras", {}).values())
    out["occupancy"] = zones * 86400 / float(store.get("metrics_interval_s", 60))
    out["health"] = (len(summary["cameras"]) + 1) * 86400 / HEALTH_EVERY_S  # streams + the sink
    return out, counted


def bytes_per_point(n_points: int) -> dict[str, dict]:
    """The pipeline mix into influxd, compacted; -> per data type (retention policy): points,
    TSM bytes on disk, bytes per point. The series file (preallocated per database, ~32 MB,
    not proportional to points) is left out; ``"all"`` sums the data types."""
    with tempfile.TemporaryDirectory() as tmp:
        server = InfluxServer(Path(tmp) / "influxd")
        server.conf.write_text(server.conf.read_text().replace(
            "[data]\n", '[data]\n  cache-snapshot-write-cold-duration = "1s"\n'
                        '  compact-full-write-cold-duration = "2s"\n'))
        server.start()
        try:
            batches = make_points(n_points, time.time() - 6 * 86400)
            db = "scale"
            cfg = InfluxConfig(enabled=True, url=server.url, database=db, batch_size=5000, flush_interval_s=0.5,
                               max_buffer_points=2_000_000, spill_dir=Path(tmp) / "spill", timeout_s=60,
                               health_interval_s=0)
            setup_v1(cfg, RetentionConfig())
            sink = InfluxSink(cfg)
            for b in batches:
                sink.write(b)
            sink.flush(timeout=600)
            sink.close()
            data, wal = Path(tmp) / "influxd" / "data" / db, Path(tmp) / "influxd" / "wal" / db
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:  # until the WAL is snapshotted into TSM files
                time.sleep(3)
                if list(data.rglob("*.tsm")) and sum(p.stat().st_size for p in wal.rglob("*.wal")) == 0:
                    break
            out: dict[str, dict] = {}
            for meas, rp in MEASUREMENT_DATA_TYPE.items():
                n = server.count_points(db, {meas: rp})
                row = out.setdefault(rp, {"points": 0, "bytes": sum(
                    f.stat().st_size for f in (data / rp).rglob("*") if f.is_file() and f.suffix in (".tsm", ".idx"))})
                row["points"] += n
        finally:
            server.stop()
    out = {k: v for k, v in out.items() if v["points"]}
    out["all"] = {"points": sum(v["points"] for v in out.values()), "bytes": sum(v["bytes"] for v in out.values())}
    for v in out.values():
        v["bytes_per_point"] = v["bytes"] / max(v["points"], 1)
    return out


def storage(points_day: dict[str, float], disk: dict[str, dict], retention: dict[str, int]) -> dict[str, dict]:
    """Per data type: points/day, bytes/point, the first 30 days and the steady state (retention)."""
    rows = {}
    for dtype, per_day in points_day.items():
        days = retention.get(dtype, 0) or 3650  # 0 = forever: ten years
        bpp = disk.get(dtype, disk["all"])["bytes_per_point"]
        rows[dtype] = {"points_per_day": per_day, "retention_days": retention.get(dtype, 0), "bytes_per_point": bpp,
                       "month_bytes": per_day * min(days, 30) * bpp, "steady_bytes": per_day * days * bpp}
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.scale", description=__doc__.split("\n")[0])
    ap.add_argument("--sample", type=Path, required=True, help="output of generate_sample_data.py --hours 24")
    ap.add_argument("--fps", type=float, default=15.0, help="frames/s per camera in the live pipeline")
    ap.add_argument("--points", type=int, default=300_000, help="points of the mix written to measure bytes/point")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args(argv)
    points_day, counted = sample_points_per_day(a.sample, a.fps)
    disk = bytes_per_point(a.points)
    app = read_mapping(REPO_ROOT / "configs" / "app_config.yaml", "config file")
    retention = {k: int(v) for k, v in (app.get("retention") or {}).items()}
    rows = storage(points_day, disk, retention)
    if a.json:
        print(json.dumps({"counted": counted, "disk": disk, "rows": rows}, indent=2))
        return 0
    total = Counter()
    print(f"sample: {counted}; on disk: {disk}")
    print("| data type | points/day | points/s | bytes/point on disk | retention days | first 30 days | steady state |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for dtype, r in rows.items():
        total.update({k: r[k] for k in ("points_per_day", "month_bytes", "steady_bytes")})
        print(f"| {dtype} | {r['points_per_day']:,.0f} | {r['points_per_day'] / 86400:.2f} | "
              f"{r['bytes_per_point']:.1f} | {r['retention_days']} | "
              f"{r['month_bytes'] / 1e6:,.1f} MB | {r['steady_bytes'] / 1e6:,.1f} MB |")
    print(f"| total | {total['points_per_day']:,.0f} | {total['points_per_day'] / 86400:.2f} | | | "
          f"{total['month_bytes'] / 1e6:,.1f} MB | {total['steady_bytes'] / 1e6:,.1f} MB |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
