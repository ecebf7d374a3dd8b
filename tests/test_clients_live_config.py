"""The live store config on a running pipeline: real local Triton (fixture), simulated store
cameras, the real tracker, analytics and watch (clients.store_watch).

In-process (the ``Runner`` with the application's ``CameraFactory``): a valid edit of one
camera's zone replaces that camera's analytics between two of its frames, closing its open
journeys, while the other camera keeps its analytics object and its counts; an invalid edit
is refused with the file/field error and nothing changes. Then the CLI process: SIGHUP after
an edit applies it and the process keeps running; SIGTERM still exits 0.
"""
from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import yaml

from analytics.records import CameraJourneyRecord, DetectionRecord
from clients.app import build_processor_factory
from clients.config import load_app_config
from clients.runner import Runner
from tests.test_clients_integration import ListSink, write_config

REPO = Path(__file__).resolve().parents[1]
CHECKOUT, ENTRANCE = "cam-checkout-1", "cam-entrance-1"  # cameras of configs/store.yaml
NEW_QUEUE_1 = [[170, 40], [280, 40], [262, 230], [130, 230]]  # queue-1, a little larger


def sim_stream(cam: str) -> dict:
    """The evening rush at 18:30 (people queue at both tills), as fast as Triton answers."""
    return {"id": cam, "type": "simulator", "start_time": "2024-01-15T18:30:00Z", "seconds": 120, "fps": 5,
            "seed": 7}


def store_copy(tmp: Path) -> Path:
    path = tmp / "store.yaml"
    shutil.copy(REPO / "configs" / "store.yaml", path)
    return path


def edit_store(path: Path, change) -> None:
    """Rewrite the file with ``change(raw)`` applied (a new mtime even on a coarse clock)."""
    raw = yaml.safe_load(path.read_text())
    change(raw)
    before = path.stat().st_mtime_ns
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    if path.stat().st_mtime_ns <= before:
        os.utime(path, ns=(before + 1_000_000, before + 1_000_000))


def set_queue_1(raw: dict) -> None:
    raw["cameras"][CHECKOUT]["zones"]["queue-1"]["polygon"] = NEW_QUEUE_1


async def until(what: str, cond, timeout: float = 240.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, f"no {what} within {timeout:.0f} s"
        await asyncio.sleep(0.05)


def start_runner(tmp_path: Path, grpc_url: str, during):
    """Two simulated cameras through the application's processors, the store watched every 0.2 s."""
    store_path = store_copy(tmp_path)
    cfg = write_config(tmp_path, grpc_url, [sim_stream(ENTRANCE), sim_stream(CHECKOUT)], store_config=store_path)
    config = load_app_config(cfg)
    factory = build_processor_factory(config, store_reload_s=0.2)
    sink = ListSink()
    runner = Runner(config, factory, [sink], health_interval_s=1.0, store_watch=factory.watch)

    async def go():
        side = asyncio.create_task(during(runner, factory.watch, store_path))
        summary = await runner.run()
        await side
        return summary

    return asyncio.run(go()), factory.watch, sink, store_path


def processed(runner: Runner, cam: str) -> int:
    return next((p.stats.frames_processed for p in runner.pipelines if p.spec.id == cam), 0)


def test_valid_edit_replaces_only_the_changed_camera_at_a_frame_boundary(triton_server, tmp_path, caplog):
    marks: dict = {}

    async def edit_mid_run(runner: Runner, watch, store_path: Path):
        await until("25 frames on each camera", lambda: min(processed(runner, c) for c in (ENTRANCE, CHECKOUT)) >= 25)
        cams = watch.cameras
        marks["old"] = {c: cams[c].analytics for c in (ENTRANCE, CHECKOUT)}
        marks["entrance_t"] = cams[ENTRANCE].analytics.last_timestamp
        edit_store(store_path, set_queue_1)
        await until("the checkout camera's swap", lambda: cams[CHECKOUT].swaps, 60)
        n = {c: processed(runner, c) for c in (ENTRANCE, CHECKOUT)}
        await until("10 more frames on each camera", lambda: all(processed(runner, c) >= n[c] + 10 for c in n))
        runner.request_stop("test")

    with caplog.at_level("INFO"):
        summary, watch, sink, store_path = start_runner(tmp_path, triton_server.grpc_url, edit_mid_run)
    cams = watch.cameras
    old = marks["old"]
    # the other camera lost nothing: same object, never flushed or swapped, and it kept counting
    assert cams[ENTRANCE].analytics is old[ENTRANCE] and cams[ENTRANCE].swaps == []
    assert old[ENTRANCE].last_timestamp > marks["entrance_t"]
    # the changed camera: fresh analytics with the new zone, taken over between two of its frames
    swap, = cams[CHECKOUT].swaps
    new = cams[CHECKOUT].analytics
    assert new is not old[CHECKOUT] and new.camera.zones["queue-1"].polygon.tolist() == NEW_QUEUE_1
    assert old[CHECKOUT].camera.zones["queue-1"].polygon.tolist() != NEW_QUEUE_1
    assert swap.old_last_timestamp == old[CHECKOUT].last_timestamp < swap.timestamp
    assert swap.frame_number == old[CHECKOUT]._frame_no  # the frame right after the old analytics' last one
    assert swap.why == "zones" and swap.journeys_closed >= 1  # people were queueing: journeys closed
    # journeys before the change end at or before the reload; none spans it
    recs = sink.records
    first_new = next(i for i, r in enumerate(recs) if isinstance(r, DetectionRecord) and r.stream_id == CHECKOUT
                     and r.timestamp >= swap.timestamp)
    # the sample store links visits: camera journeys come as CameraJourneyRecord
    journeys = [(i, r.journey) for i, r in enumerate(recs)
                if isinstance(r, CameraJourneyRecord) and r.stream_id == CHECKOUT]
    before = [(i, j) for i, j in journeys if j.start_time < swap.timestamp]
    assert len(before) >= swap.journeys_closed
    # (the old analytics' final tracklets wait in the store link until every camera has passed their
    # time, so their camera journeys may reach the sinks after the new analytics' first frame)
    assert all(j.end_time <= swap.old_last_timestamp for i, j in before), before
    assert first_new > 0
    assert sum(j.end_time == swap.old_last_timestamp for _, j in before) >= 1
    after = [j for _, j in journeys if j.start_time >= swap.timestamp]
    assert after, "the end-of-run flush closes the journeys the new analytics opened"
    assert {j.journey_id for _, j in before}.isdisjoint(j.journey_id for j in after)
    # counted and logged
    assert summary.config_reloads is not None
    assert {k: summary.config_reloads[k] for k in ("applied", "refused", "cameras_replaced")} == \
        {"applied": 1, "refused": 0, "cameras_replaced": 1}
    assert summary.streams[ENTRANCE]["error"] is None and summary.streams[CHECKOUT]["analytics_errors"] == 0
    assert f"{store_path}: store config reloaded (poll): {CHECKOUT} (zones: fresh analytics)" in caplog.text
    assert f"unchanged: {ENTRANCE}" in caplog.text
    assert f"{CHECKOUT}: store config applied at frame {swap.frame_number}" in caplog.text


def test_invalid_edits_are_refused_and_the_pipeline_keeps_going(triton_server, tmp_path, caplog):
    marks: dict = {}

    async def bad_edits(runner: Runner, watch, store_path: Path):
        await until("15 frames on each camera", lambda: min(processed(runner, c) for c in (ENTRANCE, CHECKOUT)) >= 15)
        marks["old"] = {c: watch.cameras[c].analytics for c in (ENTRANCE, CHECKOUT)}

        def crossed(raw):  # a polygon that crosses itself
            raw["cameras"][CHECKOUT]["zones"]["queue-1"]["polygon"] = [[178, 47], [257, 225], [273, 47], [136, 225]]

        edit_store(store_path, crossed)
        await until("the refusal", lambda: watch.refused == 1, 60)
        good = store_path.read_text()
        store_path.write_text(good.replace("cameras:", "cameras: [", 1))  # YAML syntax error
        await until("the second refusal", lambda: watch.refused == 2, 60)
        n = {c: processed(runner, c) for c in (ENTRANCE, CHECKOUT)}
        await until("10 more frames on each camera", lambda: all(processed(runner, c) >= n[c] + 10 for c in n))
        runner.request_stop("test")

    with caplog.at_level("INFO"):
        summary, watch, sink, store_path = start_runner(tmp_path, triton_server.grpc_url, bad_edits)
    for c in (ENTRANCE, CHECKOUT):
        assert watch.cameras[c].analytics is marks["old"][c] and watch.cameras[c].swaps == []
        assert summary.streams[c]["error"] is None and summary.streams[c]["analytics_errors"] == 0
    errors = [r.getMessage() for r in caplog.records if r.name == "clients.store_watch" and r.levelname == "ERROR"]
    assert len(errors) == 2, errors  # once per bad version, though the file is polled every 0.2 s
    assert str(store_path) in errors[0] and f"cameras.{CHECKOUT}.zones.queue-1.polygon" in errors[0]
    assert "crosses itself" in errors[0] and "the running configuration stays in force" in errors[0]
    assert str(store_path) in errors[1] and "invalid YAML" in errors[1]
    assert {k: summary.config_reloads[k] for k in ("applied", "refused", "cameras_replaced")} == \
        {"applied": 0, "refused": 2, "cameras_replaced": 0}
    assert "invalid YAML" in summary.config_reloads["last_error"]
    # the old zones still count: the checkout camera kept reporting with queue-1 as it was
    assert watch.store.cameras[CHECKOUT].zones["queue-1"].polygon.tolist() == [[178, 47], [273, 47], [257, 225],
                                                                               [136, 225]]


def test_cli_sighup_applies_an_edit_and_the_process_keeps_running(triton_server, tmp_path):
    store_path = store_copy(tmp_path)
    cfg = write_config(tmp_path, triton_server.grpc_url, [sim_stream(CHECKOUT)], store_config=store_path)
    health, summary_path = tmp_path / "health.json", tmp_path / "summary.json"
    proc = subprocess.Popen(
        [sys.executable, "-m", "clients.run", "--config", str(cfg), "--health-interval", "0.3",
         "--health-file", str(health), "--summary-json", str(summary_path),
         "--store-reload-interval", "0"],  # no polling: only SIGHUP can apply the edit
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    lines: list[str] = []
    pump = threading.Thread(target=lambda: lines.extend(iter(proc.stdout.readline, "")), daemon=True)
    pump.start()

    def doc() -> dict:
        try:
            return json.loads(health.read_text())
        except (OSError, ValueError):
            return {}

    def frames() -> int:
        return int(((doc().get("streams") or {}).get(CHECKOUT) or {}).get("frames_processed") or 0)

    def wait_for(what: str, cond, timeout: float = 240.0) -> None:
        deadline = time.monotonic() + timeout
        while not cond():
            assert proc.poll() is None, f"exited ({proc.returncode}) before {what}:\n{''.join(lines)[-3000:]}"
            assert time.monotonic() < deadline, f"no {what} within {timeout:.0f} s:\n{''.join(lines)[-3000:]}"
            time.sleep(0.05)

    try:
        wait_for("15 frames processed", lambda: frames() >= 15)
        edit_store(store_path, set_queue_1)
        time.sleep(0.5)
        assert "store config reloaded" not in "".join(lines)  # not polled: waits for the SIGHUP
        os.kill(proc.pid, signal.SIGHUP)
        wait_for("the reload's log lines", lambda: "store config reloaded (SIGHUP)" in "".join(lines)
                 and f"{CHECKOUT}: store config applied at frame" in "".join(lines), 60)
        wait_for("the reload in the health file",
                 lambda: (doc().get("config_reloads") or {}).get("cameras_replaced") == 1, 60)
        n = frames()
        wait_for("frames after the reload", lambda: frames() >= n + 5)
        assert doc()["status"] == "running" and doc()["config_reloads"]["applied"] == 1
        os.kill(proc.pid, signal.SIGTERM)
        rc = proc.wait(120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(30)
    pump.join(10)
    out = "".join(lines)
    assert rc == 0, out[-3000:]
    assert "stopping (SIGTERM)" in out and "Traceback" not in out
    summary = json.loads(summary_path.read_text())
    assert summary["stopped_by"] == "SIGTERM"
    assert {k: summary["config_reloads"][k] for k in ("applied", "refused", "cameras_replaced")} == \
        {"applied": 1, "refused": 0, "cameras_replaced": 1}
    journeys = json.loads((tmp_path / "out" / "journeys.json").read_text())
    assert any(j["stream_id"] == CHECKOUT for j in journeys)  # the reload's flush and the final one
