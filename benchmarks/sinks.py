"""InfluxDB sink throughput against a real influxd (Debian's 1.6.7 on loopback, started by launchers.influx).

    python -m benchmarks.sinks [--points 300000] [--batch-sizes 500 5000 20000]

For each batch size: a fresh database with the retention policies of the setup command,
a pipeline-like mix of points (every measurement, realistic tags), written through
``InfluxSink`` as fast as the producer can, until ``flush()`` reports everything in
InfluxDB. Reported: end-to-end points/s, the producer's cost per ``write()`` (the
frame path), and the count read back (must equal the points sent). Appends a table to
docs/benchmarks.md.
"""
from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

from launchers.influx import InfluxServer, start_influx
from simulator.record_mix import pipeline_records
from sinks.config import InfluxConfig, RetentionConfig
from sinks.influx import InfluxSink
from sinks.line_protocol import MEASUREMENT_DATA_TYPE, PointMapper
from sinks.setup import setup_v1


def make_points(n_target: int, t0: float) -> list[list]:
    """Batches of ready points (mapped once, so the benchmark times the writer, not the mapping)."""
    mapper = PointMapper()
    out: list[list] = []
    n, shift = 0, 0.0
    while n < n_target:
        # 8 cameras per round; each round shifted in time so no two rounds share a timestamp
        for b in pipeline_records(t0 + shift, seconds=120, streams=tuple(f"cam-{i}" for i in range(8)), seed=int(shift)):
            pts = mapper.map(b)
            if pts:
                out.append(pts)
                n += len(pts)
        shift += 120.0
    out.append(mapper.drain())
    return out


def run_one(server: InfluxServer, batches: list[list], batch_size: int, spill: Path) -> dict:
    db = f"bench_{batch_size}"
    cfg = InfluxConfig(enabled=True, url=server.url, database=db, batch_size=batch_size, flush_interval_s=0.5,
                       max_buffer_points=max(1_000_000, 2 * batch_size), spill_dir=spill / db,
                       max_spill_points=10_000_000, timeout_s=60,
                       health_interval_s=0)  # read-back counts only the benchmark's own points
    setup_v1(cfg, RetentionConfig())
    n = sum(len(b) for b in batches)
    sink = InfluxSink(cfg)
    t0 = time.perf_counter()
    cpu0 = time.thread_time()
    for b in batches:
        sink.write(b)
    produce_cpu = time.thread_time() - cpu0
    produce_wall = time.perf_counter() - t0
    ok = sink.flush(timeout=600)
    wall = time.perf_counter() - t0
    st = sink.stats()
    sink.close()
    arrived = server.count_points(db, MEASUREMENT_DATA_TYPE)
    return {"batch_size": batch_size, "points": n, "ok": ok, "wall_s": wall, "points_per_s": n / wall,
            "write_us_per_point": 1e6 * produce_cpu / n, "write_calls": len(batches),
            "write_us_per_call": 1e6 * produce_wall / len(batches), "arrived": arrived,
            "written": st["written"], "dropped": st["dropped"], "spilled": st["spilled_total"]}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.sinks", description=__doc__.split("\n")[0])
    ap.add_argument("--points", type=int, default=300_000)
    ap.add_argument("--batch-sizes", type=int, nargs="+", default=[500, 5000, 20000])
    ap.add_argument("--no-report", action="store_true", help="print only; do not append to docs/benchmarks.md")
    a = ap.parse_args(argv)
    batches = make_points(a.points, time.time() - 6 * 86400)  # inside the 7-day detections retention
    with tempfile.TemporaryDirectory() as tmp:
        server = start_influx(Path(tmp) / "influxd")
        try:
            rows = [run_one(server, batches, bs, Path(tmp)) for bs in a.batch_sizes]
        finally:
            server.stop()
    head = ("| batch size | points | points/s (write -> in InfluxDB) | write() CPU per point | write() per call "
            "| read back | dropped |\n|---:|---:|---:|---:|---:|---:|---:|")
    lines = [head]
    for r in rows:
        lines.append(f"| {r['batch_size']} | {r['points']} | {r['points_per_s']:,.0f} | "
                     f"{r['write_us_per_point']:.1f} us | {r['write_us_per_call']:.0f} us | {r['arrived']} | "
                     f"{r['dropped']} |")
        print(r)
    table = "\n".join(lines)
    print(table)
    notes = (f"InfluxSink (line protocol over HTTP /write, one request per retention policy per batch) into "
             f"Debian's influxd 1.6.7 on loopback, same machine ({os.cpu_count()} cores, {platform.machine()}, "
             f"shared with the server). Points: the pipeline mix of simulator/record_mix.py for 8 cameras "
             f"(detections as per-frame class counts, queue, zones, footfall, heatmap summaries, journeys, "
             f"alerts, health, Triton metrics). points/s = all points / time from the first write() to flush() "
             f"returning with everything acknowledged; 'read back' is counted with InfluxQL afterwards. "
             f"write() CPU is what the frame path pays (queueing and line encoding; no network).")
    if not a.no_report:
        from benchmarks._report import append_section

        append_section("InfluxDB sink throughput (python -m benchmarks.sinks)", table, notes)
    return 0 if all(r["ok"] and r["arrived"] == r["points"] for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
