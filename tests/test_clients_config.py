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
