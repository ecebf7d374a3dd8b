"""The runner (clients.runner.Runner) and the application (clients.app.run_app) against a
real Triton (fixture-started CPU ensemble).

Clips are a few dozen small frames: the CPU YOLOv8n costs ~0.2 s per frame here.
"""
from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import threading
from pathlib import Path

import cv2
import numpy as np
import yaml

from clients.app import build_processor_factory, run_app
from clients.camera import detection_records
from clients.config import load_app_config
from clients.runner import Runner
from core.types import Detections, Frame
from launchers.ports import free_port as closed_port  # nothing listens there
from launchers.triton import start_triton

REPO = Path(__file__).resolve().parents[1]
W, H = 160, 120


def make_video(path: Path, n: int, fourcc: str = "mp4v", seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 255, (H, W, 3), np.uint8)
    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), 10.0, (W, H))
    for i in range(n):
        img = base.copy()
        cv2.rectangle(img, (5 + 3 * i, 20), (35 + 3 * i, 100), (40, 40, 200), -1)
        w.write(img)
    w.release()
    return path


def write_config(tmp: Path, url: str, streams: list[dict], store_config: Path | None = None, **triton) -> Path:
    cfg = {"triton": {"url": url, "max_in_flight_per_stream": 2, **triton}, "streams": streams,
           "sinks": {"json": {"output_dir": str(tmp / "out"), "rotate": "none", "detections": "all"},
                     "influxdb": {"enabled": False}}}
    if store_config is not None:
        cfg["analytics"] = {"store_config": str(store_config)}
    p = tmp / "app.yaml"
    p.write_text(yaml.safe_dump(cfg))
    return p


class DetectionsOnly:
    """Tracker-free processor: one DetectionRecord per box."""

    def __init__(self, stream_id: str) -> None:
        self.stream_id = stream_id

    def process(self, frame: Frame, dets: Detections):
        return detection_records(self.stream_id, frame, dets.xyxy, dets.scores,
                                 list(dets.class_names) or ["object"] * len(dets), None)

    def flush(self, timestamp: float):
        return []


class Recorder:
    """Wraps a processor and records what reached it, in the order it arrived."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.seen: list[tuple[int, float, int]] = []  # frame_number, timestamp, n boxes
        self.flushed = False

    def process(self, frame: Frame, dets: Detections):
        assert isinstance(dets, Detections)
        self.seen.append((frame.frame_number, frame.timestamp, len(dets)))
        return self.inner.process(frame, dets)

    def flush(self, ts):
        self.flushed = True
        return self.inner.flush(ts)


class ListSink:
    def __init__(self) -> None:
        self.records: list = []
        self.flushed = 0

    def write(self, records):
        self.records.extend(records)

    def flush(self):
        self.flushed += 1

    def close(self):
        pass


def crash(proc: subprocess.Popen) -> None:
    """SIGKILL the server and its python-backend stubs (a container dying takes them all;
    a stub orphaned by a killed server would linger)."""
    kids = Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()
    proc.send_signal(signal.SIGKILL)
    for k in kids:
        try:
            os.kill(int(k), signal.SIGKILL)
        except ProcessLookupError:
            pass


def run_runner(cfg_path: Path, max_seconds: float | None = None, during=None):
    config = load_app_config(cfg_path, with_sections=False)
    recorders: dict[str, Recorder] = {}

    def factory(spec, source):
        recorders[spec.id] = Recorder(DetectionsOnly(spec.id))
        return recorders[spec.id]

    sink = ListSink()
    runner = Runner(config, factory, [sink], health_interval_s=1.0, max_seconds=max_seconds)

    async def go():
        side = asyncio.create_task(during(runner)) if during else None
        summary = await runner.run()
        if side:
            await side
        return summary

    return asyncio.run(go()), recorders, sink


def test_four_streams_concurrently(triton_server, tmp_path):
    n = 8
    streams = [{"id": f"cam-{k}", "source": str(make_video(tmp_path / f"v{k}.mp4", n, seed=k)),
                "start_time": 1_700_000_000 + k} for k in range(3)]
    folder = tmp_path / "imgs"
    folder.mkdir()
    for i in range(n):
        cv2.imwrite(str(folder / f"{i:04d}.jpg"), np.full((H, W, 3), 20 * i, np.uint8))
    streams.append({"id": "cam-img", "source": str(folder), "fps": 5, "start_time": 1_700_000_100})
    summary, rec, sink = run_runner(write_config(tmp_path, triton_server.grpc_url, streams))
    assert set(summary.streams) == {"cam-0", "cam-1", "cam-2", "cam-img"}
    for sid, st in summary.streams.items():
        assert st["error"] is None, st
        assert st["frames_processed"] == n and st["frames_lost"] == 0 and st["frames_dropped"] == 0
        assert st["bytes_per_frame"] > 0 and st["latency_p95_ms"] >= st["latency_p50_ms"] > 0
        # frame order per stream is kept whatever order Triton answered in
        assert [s[0] for s in rec[sid].seen] == list(range(n))
        assert rec[sid].flushed
    ts = [s[1] for s in rec["cam-img"].seen]
    np.testing.assert_allclose(np.diff(ts), 0.2, atol=1e-5)
    health = [r for r in sink.records if type(r).__name__ == "StreamHealthRecord"]
    assert {h.stream_id for h in health} == set(summary.streams)
    final = {h.stream_id: h for h in health}
    assert all(h.frames_processed == n for h in final.values())


def test_triton_killed_and_restarted_mid_run(own_triton, tmp_path):
    n = 30
    video = make_video(tmp_path / "long.mp4", n)
    cfg = write_config(tmp_path, own_triton.grpc_url, [{"id": "cam-r", "source": str(video)}],
                       retry={"max_attempts": 2, "initial_backoff_s": 0.2, "max_backoff_s": 0.5},
                       health_poll_s=0.2)
    marks = {}

    async def chaos(runner: Runner):
        while not runner.pipelines or runner.pipelines[0].stats.frames_processed < 4:
            await asyncio.sleep(0.05)
        st = runner.pipelines[0].stats
        crash(own_triton.process)
        await asyncio.to_thread(own_triton.process.wait)
        marks["processed_at_kill"] = st.frames_processed
        while st.frames_lost == 0:  # in-flight requests run out of retries
            await asyncio.sleep(0.05)
        await asyncio.sleep(1.0)  # down for a while: the file stream must wait, not lose frames
        marks["lost_while_down"] = st.frames_lost
        new = await asyncio.to_thread(start_triton, own_triton.ports, log_path=own_triton.log_path)
        own_triton.process = new.process  # the fixture stops whatever runs at the end

    summary, rec, sink = run_runner(cfg, during=chaos)
    st = summary.streams["cam-r"]
    assert summary.triton_outages >= 1
    assert st["frames_lost"] >= 1  # reported, not hidden
    assert st["frames_lost"] == marks["lost_while_down"]  # nothing more lost while it was down
    assert st["frames_processed"] + st["frames_lost"] == st["frames_read"] == n
    assert st["frames_processed"] > marks["processed_at_kill"]  # resumed after the restart
    seen = [s[0] for s in rec["cam-r"].seen]
    assert seen == sorted(seen) and seen[-1] == n - 1
    assert st["error"] is None



def test_triton_graceful_restart_mid_run(own_triton, tmp_path):
    """SIGTERM to Triton (a deploy, `docker compose restart triton`): while it drains it
    answers UNAVAILABLE "Server is stopping", then NOT_FOUND "has no available versions"
    (models unloaded). Both are an outage: frames wait and are retried, none is counted
    as an inference error, and the run resumes on the restarted server."""
    n = 30
    video = make_video(tmp_path / "long.mp4", n)
    cfg = write_config(tmp_path, own_triton.grpc_url, [{"id": "cam-g", "source": str(video)}],
                       retry={"max_attempts": 200, "initial_backoff_s": 0.1, "max_backoff_s": 0.3},
                       health_poll_s=0.2)
    marks = {}

    async def graceful_restart(runner: Runner):
        while not runner.pipelines or runner.pipelines[0].stats.frames_processed < 4:
            await asyncio.sleep(0.05)
        st = runner.pipelines[0].stats
        own_triton.process.send_signal(signal.SIGTERM)
        await asyncio.to_thread(own_triton.process.wait, 60)
        marks["processed_at_stop"] = st.frames_processed
        marks["errors_while_down"] = st.inference_errors
        new = await asyncio.to_thread(start_triton, own_triton.ports, log_path=own_triton.log_path)
        own_triton.process = new.process

    summary, rec, _ = run_runner(cfg, during=graceful_restart)
    st = summary.streams["cam-g"]
    assert summary.triton_outages >= 1
    assert marks["errors_while_down"] == 0 and st["inference_errors"] == 0, st
    assert st["frames_lost"] == 0 and st["frames_processed"] == st["frames_read"] == n, st
    assert st["inference_retries"] >= 1  # requests did meet the draining server and were retried
    assert marks["processed_at_stop"] < n
    assert [s[0] for s in rec["cam-g"].seen] == list(range(n))


def test_corrupt_files_and_unreachable_rtsp_beside_good_streams(triton_server, tmp_path):
    n = 6
    good = make_video(tmp_path / "good.mp4", n)
    junk = tmp_path / "corrupt.mp4"
    junk.write_bytes(good.read_bytes()[: good.stat().st_size // 2])  # moov atom gone
    avi = make_video(tmp_path / "cut-src.avi", 20, "MJPG")
    cut = tmp_path / "cut.avi"
    cut.write_bytes(avi.read_bytes()[: int(avi.stat().st_size * 0.6)])
    url = f"rtsp://127.0.0.1:{closed_port()}/live"
    streams = [
        {"id": "good", "source": str(good)},
        {"id": "corrupt", "source": str(junk)},
        {"id": "cut", "source": str(cut)},
        {"id": "rtsp", "source": url, "reconnect": {"initial_s": 0.05, "max_s": 0.1, "max_retries": 2}},
    ]
    summary, rec, _ = run_runner(write_config(tmp_path, triton_server.grpc_url, streams))
    s = summary.streams
    assert s["good"]["error"] is None and s["good"]["frames_processed"] == n
    assert "corrupt.mp4" in s["corrupt"]["error"] and "cannot open" in s["corrupt"]["error"]
    assert "cut.avi" in s["cut"]["error"] and "decoding failed at frame" in s["cut"]["error"]
    # frames before the cut were still analysed
    assert 0 < s["cut"]["frames_processed"] == s["cut"]["frames_read"] < 20
    assert url.split("//")[1] in s["rtsp"]["error"] and "unreachable after 3 attempt" in s["rtsp"]["error"]
    assert s["rtsp"]["reconnects"] == 2 and s["rtsp"]["frames_processed"] == 0


def test_sigterm_flushes_outputs(triton_server, tmp_path):
    """SIGTERM mid-run with people in view: the store camera's still-open journeys are
    closed by the flush and written, with every seed file complete and valid."""
    cam = "cam-checkout-1"  # a camera of configs/store.yaml: queue + service zones
    cfg = write_config(tmp_path, triton_server.grpc_url,
                       [{"id": cam, "type": "simulator", "start_time": "2024-01-15T18:30:00Z", "seconds": 120,
                         "fps": 5, "seed": 7}],  # the evening rush: people queue at both tills
                       store_config=REPO / "configs" / "store.yaml")  # a file: the CLI runs in a subprocess
    summary_path = tmp_path / "summary.json"
    proc = subprocess.Popen(
        [sys.executable, "-m", "clients.run", "--config", str(cfg), "--health-interval", "0.5",
         "--summary-json", str(summary_path)],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: list[str] = []
    started = threading.Event()

    def pump():
        for line in proc.stdout:
            lines.append(line)
            m = re.search(rf"{cam}: frames (\d+)/", line)
            if m and int(m.group(1)) >= 20:  # 4 s of the clip: tracks confirmed, journeys open
                started.set()
    t = threading.Thread(target=pump, daemon=True)
    t.start()
    assert started.wait(180), "".join(lines[-30:])
    proc.send_signal(signal.SIGTERM)
    rc = proc.wait(120)
    t.join(5)
    out = "".join(lines)
    assert rc == 0, out[-3000:]
    assert "stopping (SIGTERM)" in out
    summary = json.loads(summary_path.read_text())
    assert summary["stopped_by"] == "SIGTERM"
    st = summary["streams"][cam]
    assert 20 <= st["frames_processed"] < 600  # stopped mid-clip
    assert st["frames_processed"] + st["frames_lost"] == st["frames_sent"]
    files = {f.name: json.loads(f.read_text()) for f in (tmp_path / "out").glob("*.json")}  # complete, valid
    # the seed's five files, and (the sample store links visits) the store-level ones
    assert set(files) == {"detections.json", "journeys.json", "queue_metrics.json", "heatmap.json", "alerts.json",
                          "camera_journeys.json", "store_kpis.json", "floor_heatmap.json"}
    assert all(isinstance(v, list) for v in files.values())
    assert summary["sinks"]["JsonFilesSink"]["skipped"] >= 1  # health records reached the sinks too
    # Journeys still open at the SIGTERM end at the last frame processed (a journey closed
    # during the run ends >= lost_after_s earlier): the flush wrote them.
    from analytics.records import parse_iso_utc

    last = max(parse_iso_utc(d["timestamp"]) for d in files["detections.json"] if d["stream_id"] == cam)
    journeys = [j for j in files["journeys.json"] if j["stream_id"] == cam]
    still_open = [j for j in journeys if parse_iso_utc(j["end_time"]) == last]
    assert still_open, (last, journeys)
    assert all(j["duration_seconds"] >= 2 and parse_iso_utc(j["start_time"]) >= 1705343400.0 for j in still_open)
    assert any("queue-1" in j["zones_visited"] or "queue-2" in j["zones_visited"] for j in still_open), still_open


def test_live_camera_faster_than_inference_drops_oldest(triton_server, tmp_path):
    """A 250 fps camera against the CPU ensemble (~60-80 frames/s for these tiny frames since the
    int8 detector at the camera's aspect): the queue drops the oldest frames (counted) instead
    of falling behind; every frame read is accounted for."""
    from tests.clients_mjpeg import MjpegCamera

    cam = MjpegCamera(fps=250).start()
    try:
        cfg = write_config(tmp_path, triton_server.grpc_url, [{"id": "cam-live", "source": cam.url}],
                           max_pending_per_stream=2)

        async def stop_after_results(runner: Runner):
            while not runner.pipelines or runner.pipelines[0].stats.frames_processed < 6:
                await asyncio.sleep(0.05)
            runner.request_stop("test")

        summary, rec, _ = run_runner(cfg, during=stop_after_results)
    finally:
        cam.stop()
    st = summary.streams["cam-live"]
    assert st["error"] is None
    assert st["frames_dropped"] > 0
    assert st["frames_read"] == st["frames_processed"] + st["frames_lost"] + st["frames_dropped"]
    seen = [s[0] for s in rec["cam-live"].seen]
    assert seen == sorted(seen) and max(np.diff(seen)) > 1  # gaps where frames were dropped


def test_stop_while_triton_is_down_does_not_hang(own_triton, tmp_path):
    """SIGTERM during an outage: in-flight frames run out of retries, pending ones are
    discarded (counted as dropped), analytics and sinks are still flushed."""
    video = make_video(tmp_path / "v.mp4", 30)
    cfg = write_config(tmp_path, own_triton.grpc_url, [{"id": "cam-d", "source": str(video)}],
                       retry={"max_attempts": 3, "initial_backoff_s": 0.2, "max_backoff_s": 0.5},
                       health_poll_s=0.2)

    async def outage_then_stop(runner: Runner):
        while not runner.pipelines or runner.pipelines[0].stats.frames_processed < 2:
            await asyncio.sleep(0.05)
        crash(own_triton.process)
        while runner.pipelines[0].client.available:
            await asyncio.sleep(0.05)
        runner.request_stop("SIGTERM")

    summary, rec, sink = run_runner(cfg, during=outage_then_stop)
    st = summary.streams["cam-d"]
    assert summary.stopped_by == "SIGTERM"
    assert st["frames_lost"] >= 1 and st["frames_dropped"] >= 1
    assert st["frames_read"] == st["frames_processed"] + st["frames_lost"] + st["frames_dropped"] < 30
    assert rec["cam-d"].flushed and sink.flushed >= 1


def test_real_wiring_tracker_analytics_and_seed_files(triton_server, tmp_path):
    """The runner with the real tracker, store analytics (configs/store.yaml) and sinks:
    analytics are flushed at the end and every seed file is valid JSON."""
    n = 6
    w = cv2.VideoWriter(str(tmp_path / "cam.mp4"), cv2.VideoWriter_fourcc(*"mp4v"), 5.0, (640, 360))
    for i in range(n):
        w.write(np.full((360, 640, 3), 90 + i, np.uint8))
    w.release()
    cfg = write_config(tmp_path, triton_server.grpc_url,
                       [{"id": "cam-entrance-1", "source": str(tmp_path / "cam.mp4"),
                         "start_time": "2024-01-15T10:00:00Z"}])
    config = load_app_config(cfg, overrides={"analytics.store_config": str(REPO / "configs" / "store.yaml")})
    build = build_processor_factory(config)
    procs = []

    def factory(spec, source):
        procs.append(build(spec, source))
        return procs[-1]

    summary = run_app(config, processor_factory=factory, health_interval_s=60)
    proc, = procs
    assert type(proc).__name__ == "TrackedCamera" and proc.analytics is not None
    assert summary.streams["cam-entrance-1"]["frames_processed"] == n
    files = {f.name: json.loads(f.read_text()) for f in (tmp_path / "out").glob("*.json")}
    # the seed's five files, and the store's KPIs and floor heatmap from the linker's flush (a blank
    # clip has no person, so no camera journey)
    assert set(files) == {"detections.json", "journeys.json", "queue_metrics.json", "heatmap.json", "alerts.json",
                          "store_kpis.json", "floor_heatmap.json"}
    assert files["store_kpis.json"][-1]["visits"] == 0 and files["journeys.json"] == []
    # the end-of-stream flush reported this camera's heatmap in the seed's schema
    hm = [h for h in files["heatmap.json"] if h["stream_id"] == "cam-entrance-1"]
    assert hm and hm[-1]["resolution"] == [96, 54] and len(hm[-1]["data"]) == 54


def test_a_frame_the_server_refuses_is_a_bad_frame_not_retried(triton_server, tmp_path):
    """A camera sending a frame Triton cannot take (50:1, refused by preprocess with INVALID_ARGUMENT):
    counted as a bad frame, never retried, and the stream carries on with the next frames."""
    folder = tmp_path / "frames"
    folder.mkdir()
    for i in range(5):
        shape = (20, 1000, 3) if i == 2 else (H, W, 3)
        cv2.imwrite(str(folder / f"{i:03d}.png"), np.full(shape, 60 + 20 * i, np.uint8))
    cfg = write_config(tmp_path, triton_server.grpc_url, [{"id": "cam-bad", "source": str(folder)}])
    summary, rec, _ = run_runner(cfg)
    st = summary.streams["cam-bad"]
    assert st["bad_frames"] == 1 and st["inference_errors"] == 0 and st["inference_retries"] == 0, st
    assert st["frames_processed"] == 4 and st["frames_lost"] == 1 and st["error"] is None, st
    assert [s[0] for s in rec["cam-bad"].seen] == [0, 1, 3, 4]
