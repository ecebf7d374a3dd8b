"""clients.config: the triton + streams sections, errors naming file, field and value."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from clients.config import ConfigError, load_app_config, open_source
from clients.sources import ImageFolderSource, LiveSource, SourceError

REPO = Path(__file__).resolve().parents[1]


def write(tmp: Path, data) -> Path:
    p = tmp / "app.yaml"
    p.write_text(data if isinstance(data, str) else yaml.safe_dump(data))
    return p


def test_repo_config_loads():
    cfg = load_app_config(REPO / "configs" / "app_config.yaml", with_sections=False)
    assert cfg.triton.model == "retail_pipeline" and cfg.triton.max_in_flight_per_stream >= 1


def test_stream_types_resolved(tmp_path):
    video = tmp_path / "v.mp4"
    video.write_bytes(b"")  # existence is checked at load; decoding when the stream opens
    (tmp_path / "imgs").mkdir()
    cfg = load_app_config(write(tmp_path, {
        "triton": {"url": "triton:8001", "jpeg_quality": 80, "retry": {"max_attempts": 3}},
        "streams": [
            {"id": "a", "source": str(video), "start_time": "2024-01-15T10:00:00Z", "realtime": True},
            {"id": "b", "source": "rtsp://u:p@cam/1", "reconnect": {"max_retries": None, "max_s": 3}},
            {"id": "c", "source": 0},
            {"id": "d", "source": str(tmp_path / "imgs"), "fps": 5},
            {"id": "e", "source": "http://cam/mjpg"},
        ]}), with_sections=False)
    kinds = {s.id: s.type for s in cfg.streams}
    assert kinds == {"a": "file", "b": "url", "c": "usb", "d": "images", "e": "url"}
    a = cfg.streams[0]
    assert a.start_time == 1705312800.0 and a.realtime and not a.live
    assert cfg.streams[1].reconnect.max_retries is None and cfg.streams[1].reconnect.max_s == 3
    assert cfg.streams[1].live and cfg.streams[2].source == 0
    assert cfg.triton.url == "triton:8001" and cfg.triton.jpeg_quality == 80 and cfg.triton.retry.max_attempts == 3
    assert isinstance(open_source(cfg.streams[1]), LiveSource)
    with pytest.raises(SourceError, match="has no images"):
        open_source(cfg.streams[3])
    assert [s.id for s in cfg.select(["b", "d"]).streams] == ["b", "d"]
    with pytest.raises(ConfigError, match="unknown stream id"):
        cfg.select(["zz"])


@pytest.mark.parametrize("streams,field,value", [
    ([{"id": "a"}], "streams[0].source", "None"),
    ([{"id": "a", "source": "rtsp://x"}, {"id": "a", "source": "rtsp://y"}], "streams[1].id", "'a'"),
    ([{"id": "bad id", "source": "rtsp://x"}], "streams[0].id", "'bad id'"),
    ([{"id": "a", "source": "/no/such/file.mp4"}], "streams[0].source", "'/no/such/file.mp4'"),
    ([{"id": "a", "source": "rtsp://x", "type": "ftp"}], "streams[0].type", "'ftp'"),
    ([{"id": "a", "source": "rtsp://x", "fps": -1}], "streams[0].fps", "-1"),
    ([{"id": "a", "source": "rtsp://x", "start_time": "yesterday"}], "streams[0].start_time", "'yesterday'"),
    ([{"id": "a", "source": "rtsp://x", "reconnect": {"max_retries": 1.5}}], "streams[0].reconnect.max_retries", "1.5"),
    ([{"id": "a", "source": "rtsp://x", "colour": "red"}], "streams[0]", "['colour']"),
    ([{"id": "a", "source": "cam", "type": "usb"}], "streams[0].source", "'cam'"),
    ({"id": "a"}, "streams", "{'id': 'a'}"),
])
def test_stream_errors_name_file_field_value(tmp_path, streams, field, value):
    p = write(tmp_path, {"streams": streams})
    with pytest.raises(ConfigError) as e:
        load_app_config(p, with_sections=False)
    msg = str(e.value)
    assert str(p) in msg and f"{field}:" in msg and value in msg


@pytest.mark.parametrize("triton,field,value", [
    ({"url": "grpc://h:8001"}, "triton.url", "'grpc://h:8001'"),
    ({"max_in_flight_per_stream": 0}, "triton.max_in_flight_per_stream", "0"),
    ({"jpeg_quality": 101}, "triton.jpeg_quality", "101"),
    ({"jpeg_quality": "high"}, "triton.jpeg_quality", "'high'"),
    ({"retry": {"max_attempts": 0}}, "triton.retry.max_attempts", "0"),
    ({"timeout": 3}, "triton", "['timeout']"),
])
def test_triton_errors(tmp_path, triton, field, value):
    p = write(tmp_path, {"triton": triton})
    with pytest.raises(ConfigError) as e:
        load_app_config(p, with_sections=False)
    assert str(p) in str(e.value) and f"{field}:" in str(e.value) and value in str(e.value)


@pytest.mark.parametrize("tracker,field,value", [
    ({"reid_thresh": 3}, "tracker.reid_thresh", "3"),
    ({"reid_thresh": "tight"}, "tracker.reid_thresh", "'tight'"),
    ({"fuse_score": "yes"}, "tracker.fuse_score", "'yes'"),
    ({"frame_rate": 5}, "tracker", "['frame_rate']"),  # the stream's own
    ({"reid_window_s": 0.1}, "tracker.reid_window_s", "0.1"),  # below max_lost_s
    ([0.25], "tracker", "[0.25]"),
])
def test_tracker_errors(tmp_path, tracker, field, value):
    p = write(tmp_path, {"tracker": tracker})
    with pytest.raises(ConfigError) as e:
        load_app_config(p, with_sections=False)
    assert str(p) in str(e.value) and f"{field}:" in str(e.value) and value in str(e.value)


def test_tracker_settings_reach_every_streams_tracker(tmp_path):
    from clients.app import build_processor_factory
    from clients.config import StreamSpec

    cfg = load_app_config(write(tmp_path, {"tracker": {"reid_thresh": 0.25, "reid_margin": 0.1}}), with_sections=False)
    assert cfg.tracker == {"reid_thresh": 0.25, "reid_margin": 0.1}

    class Source:
        fps = 4.0

    camera = build_processor_factory(cfg)(StreamSpec(id="cam-x", source="rtsp://x", type="url"), Source())
    tc = camera.tracker.config
    assert (tc.reid_thresh, tc.reid_margin, tc.frame_rate) == (0.25, 0.1, 4.0)
    default = build_processor_factory(load_app_config(write(tmp_path, {}), with_sections=False))
    assert default(StreamSpec(id="cam-x", source="rtsp://x", type="url"), Source()).tracker.config.reid_thresh == 0.45


def test_unreadable_and_invalid_yaml(tmp_path):
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_app_config(tmp_path / "missing.yaml")
    with pytest.raises(ConfigError, match="invalid YAML"):
        load_app_config(write(tmp_path, "triton: [unclosed"))


def test_image_folder_stream_opens(tmp_path):
    import cv2
    import numpy as np
    (tmp_path / "imgs").mkdir()
    cv2.imwrite(str(tmp_path / "imgs" / "0.png"), np.zeros((8, 8, 3), np.uint8))
    cfg = load_app_config(write(tmp_path, {"streams": [{"id": "d", "source": str(tmp_path / "imgs"), "fps": 5}]}),
                          with_sections=False)
    src = open_source(cfg.streams[0])
    assert isinstance(src, ImageFolderSource) and src.fps == 5 and src.frames_total == 1


def test_cli_reports_config_errors(tmp_path, capsys):
    from clients.run import main

    p = write(tmp_path, {"triton": {"jpeg_quality": 0}})
    assert main(["--config", str(p)]) == 2
    err = capsys.readouterr().err
    assert "config error" in err and "triton.jpeg_quality" in err and str(p) in err
    p = write(tmp_path, {"streams": []})
    assert main(["--config", str(p)]) == 2
    assert "no streams configured" in capsys.readouterr().err


def test_cli_unknown_stream_selection(tmp_path, capsys):
    from clients.run import main

    p = write(tmp_path, {"streams": [{"id": "a", "source": "rtsp://x"}]})
    assert main(["--config", str(p), "--streams", "b"]) == 2
    assert "unknown stream id" in capsys.readouterr().err


def test_live_streams_reconnect_forever_by_default(tmp_path):
    cfg = load_app_config(write(tmp_path, {"streams": [
        {"id": "a", "source": "rtsp://cam/1"},
        {"id": "b", "source": "rtsp://cam/2", "reconnect": {"max_retries": 3, "max_s": 5}}]}), with_sections=False)
    a, b = cfg.streams
    assert a.reconnect.max_retries is None and 0 < a.reconnect.max_s <= 30  # forever, capped delays
    assert b.reconnect.max_retries == 3 and b.reconnect.max_s == 5
    assert open_source(a).backoff.max_retries is None


def test_simulator_stream_selectable_and_validated(tmp_path):
    from clients.sources import SimulatedCamera

    cfg = load_app_config(write(tmp_path, {"streams": [
        {"id": "cam-checkout-1", "type": "simulator"},  # defaults; the stream id names the camera
        {"id": "sim-door", "type": "simulator", "camera": "cam-entrance-1", "start_time": "2024-01-15T12:00:00Z",
         "seconds": 2, "fps": 4, "seed": 11, "realtime": True, "loop": True, "clock": "wall"}]}),
        with_sections=False)
    a, b = cfg.streams
    assert (a.type, a.source, a.seconds, a.fps, a.seed, a.clock) == ("simulator", "cam-checkout-1", 300, 5, 7, "simulated")
    assert a.start_time == 1705343400.0 and not a.live  # 18:30, the evening rush
    assert (b.source, b.start_time, b.seconds, b.fps, b.seed, b.realtime, b.loop, b.clock) == (
        "cam-entrance-1", 1705320000.0, 2, 4, 11, True, True, "wall")
    sa, sb = open_source(a), open_source(b)
    assert isinstance(sa, SimulatedCamera) and sa.camera == "cam-checkout-1" and sa.frames_total == 1500
    assert sa.start_time == a.start_time and sa.fps == 5 and sa.seed == 7
    assert isinstance(sb, SimulatedCamera) and sb.frames_total is None and sb.realtime and sb.sim_start == 1705320000.0
    assert "cam-entrance-1" in sb.describe() and "seed 11" in sb.describe()


@pytest.mark.parametrize("stream,field,value", [
    ({"id": "x", "type": "simulator"}, "streams[0].camera", "'x'"),
    ({"id": "x", "type": "simulator", "camera": "cam-roof"}, "streams[0].camera", "'cam-roof'"),
    ({"id": "x", "type": "simulator", "camera": "cam-entrance-1", "seconds": 0}, "streams[0].seconds", "0"),
    ({"id": "x", "type": "simulator", "camera": "cam-entrance-1", "seed": -1}, "streams[0].seed", "-1"),
    ({"id": "x", "type": "simulator", "camera": "cam-entrance-1", "seed": 1.5}, "streams[0].seed", "1.5"),
    ({"id": "x", "type": "simulator", "camera": "cam-entrance-1", "fps": 0}, "streams[0].fps", "0"),
    ({"id": "x", "type": "simulator", "camera": "cam-entrance-1", "clock": "mars"}, "streams[0].clock", "'mars'"),
    ({"id": "x", "type": "simulator", "camera": "cam-entrance-1", "start_time": "soon"}, "streams[0].start_time", "'soon'"),
    ({"id": "x", "type": "simulator", "camera": "cam-entrance-1", "reconnect": {}}, "streams[0].reconnect", "{}"),
    ({"id": "x", "source": "rtsp://cam", "seconds": 5}, "streams[0]", "['seconds']"),
])
def test_simulator_stream_errors(tmp_path, stream, field, value):
    p = write(tmp_path, {"streams": [stream]})
    with pytest.raises(ConfigError) as e:
        load_app_config(p, with_sections=False)
    msg = str(e.value)
    assert str(p) in msg and f"{field}:" in msg and value in msg


def test_streams_file_replaces_the_config_streams(tmp_path):
    app = write(tmp_path, {"streams": [{"id": "old", "source": "rtsp://cam/old"}]})
    cams = tmp_path / "cams.yaml"
    cams.write_text(yaml.safe_dump({"streams": [{"id": "new", "source": "rtsp://cam/new"}]}))
    cfg = load_app_config(app, with_sections=False, streams_file=cams)
    assert [s.id for s in cfg.streams] == ["new"] and cfg.streams_file == cams and cfg.path == app
    with pytest.raises(ConfigError, match=rf"{cams}: streams: unknown stream id"):
        cfg.select(["old"])
    cams.write_text(yaml.safe_dump({"streams": [{"id": "bad id", "source": "rtsp://x"}]}))
    with pytest.raises(ConfigError, match=rf"{cams}: streams\[0\]\.id: "):
        load_app_config(app, with_sections=False, streams_file=cams)
    cams.write_text(yaml.safe_dump({"triton": {}, "streams": []}))
    with pytest.raises(ConfigError, match=rf"{cams}: \(top level\): unknown key"):
        load_app_config(app, with_sections=False, streams_file=cams)
    with pytest.raises(ConfigError, match="cannot read streams file"):
        load_app_config(app, with_sections=False, streams_file=tmp_path / "missing.yaml")


def test_compose_cameras_example_loads_with_the_app_config():
    """What the compose clients service runs as shipped: streams that exist and open."""
    cfg = load_app_config(REPO / "configs" / "app_config.yaml", streams_file=REPO / "configs" / "cameras.example.yaml")
    assert cfg.streams and all(s.type == "simulator" and s.realtime and s.loop and s.clock == "wall"
                               for s in cfg.streams)
    if cfg.analytics is not None:  # the simulated cameras are cameras of the store config (zones)
        assert {s.id for s in cfg.streams} <= set(cfg.analytics.cameras)
    assert all(open_source(s).describe().startswith("simulated camera") for s in cfg.streams)


def test_cli_no_streams_names_the_streams_file(tmp_path, capsys):
    from clients.run import main

    app = write(tmp_path, {"streams": []})
    cams = tmp_path / "cams.yaml"
    cams.write_text("streams: []\n")
    assert main(["--config", str(app), "--streams-file", str(cams)]) == 2
    err = capsys.readouterr().err
    assert f"{cams}: streams: no streams configured" in err and "Traceback" not in err


def test_cli_sink_that_cannot_start_is_a_clear_error(tmp_path, capsys):
    """An output directory that cannot be created/written: one line naming the path, exit 2."""
    from clients.run import main

    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    out = blocker / "outputs"
    app = write(tmp_path, {"streams": [{"id": "a", "source": "rtsp://cam/1"}],
                           "sinks": {"json": {"output_dir": str(out)}, "influxdb": {"enabled": False}}})
    assert main(["--config", str(app)]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and "sinks: cannot start the output sinks" in err
    assert str(app) in err and str(out) in err and "sinks.json.output_dir" in err


def test_cli_waits_instead_of_crash_looping(tmp_path):
    """--wait-on-error (compose): no streams -> the process stays up, reports it in the health
    file, retries when the streams file changes, and exits 0 on SIGTERM."""
    import json
    import signal
    import subprocess
    import sys
    import time

    from clients.health import check_health_file

    app = write(tmp_path, {"streams": [], "sinks": {"json": {"output_dir": str(tmp_path / "out")},
                                                    "influxdb": {"enabled": False}}})
    cams = tmp_path / "cams.yaml"
    cams.write_text("streams: []\n")
    health = tmp_path / "health.json"
    proc = subprocess.Popen([sys.executable, "-m", "clients.run", "--config", str(app), "--streams-file", str(cams),
                             "--health-file", str(health), "--wait-on-error", "--retry-interval", "300"],
                            cwd=REPO, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while not health.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        doc = json.loads(health.read_text())
        assert doc["status"] == "waiting" and "no streams configured" in doc["detail"] and str(cams) in doc["detail"]
        ok, why = check_health_file(health, 60)
        assert not ok and "waiting" in why
        time.sleep(1.5)
        assert proc.poll() is None  # still up, not exited (compose would restart-loop it)
        first = doc["time"]
        cams.write_text("streams:\n  - {id: bad id, source: rtsp://x}\n")  # edited (still wrong): retried at once
        while json.loads(health.read_text())["time"] == first and time.monotonic() < deadline:
            time.sleep(0.1)
        doc = json.loads(health.read_text())
        assert doc["status"] == "waiting" and "streams[0].id" in doc["detail"]
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    err = proc.stderr.read()
    assert err.count("no streams configured") == 1 and "config error" in err and "Traceback" not in err


def test_health_file_check(tmp_path):
    from clients.health import HealthFile, check_health_file
    from clients.health import main as health_main

    path = tmp_path / "h.json"
    assert check_health_file(path)[0] is False and health_main([str(path)]) == 1
    HealthFile(path).write("running", streams={"a": {"frames_processed": 3}})
    ok, why = check_health_file(path, 60)
    assert ok and "1 stream(s)" in why and health_main([str(path)]) == 0
    import time
    ok, why = check_health_file(path, 60, now=time.time() + 120)
    assert not ok and "stale" in why
    HealthFile(path).write("waiting", "configs/x.yaml: streams: no streams configured")
    ok, why = check_health_file(path, 60)
    assert not ok and "no streams configured" in why
