"""Store configuration: the sample loads; each kind of mistake names file, camera, zone, value."""
from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from analytics.config import ConfigError, load_analytics_section, load_store_config, parse_store_config

REPO = Path(__file__).resolve().parents[1]
STORE = REPO / "configs" / "store.yaml"


@pytest.fixture()
def raw():
    return yaml.safe_load(STORE.read_text())


def test_sample_store_loads():
    s = load_store_config(STORE)
    assert set(s.cameras) == {"cam-entrance-1", "cam-aisles-1", "cam-checkout-1", "cam-checkout-2"}
    cam = s.camera("cam-checkout-1")
    assert cam.image_size == (640, 360)
    assert cam.lanes["checkout-1"].queue_zone == "queue-1"
    assert cam.zones["queue-1"].polygon.shape == (4, 2)
    line = s.camera("cam-entrance-1").lines["door"]
    assert line.in_direction.tolist() == [0.0, -1.0]
    assert s.camera("cam-aisles-1").heatmap.resolution == (96, 54)


def _err(raw, path="store.yaml") -> str:
    with pytest.raises(ConfigError) as e:
        parse_store_config(raw, path)
    return str(e.value)


def test_self_intersecting_polygon(raw):
    raw["cameras"]["cam-aisles-1"]["zones"]["aisle-2"]["polygon"] = [[10, 10], [100, 100], [100, 10], [10, 100]]
    msg = _err(raw)
    assert "store.yaml" in msg and "cam-aisles-1" in msg and "aisle-2" in msg and "crosses itself" in msg
    assert "[10, 10]" in msg


def test_zone_outside_the_frame(raw):
    raw["cameras"]["cam-entrance-1"]["zones"]["entrance"]["polygon"][1] = [700, 56]
    msg = _err(raw)
    assert "cameras.cam-entrance-1.zones.entrance.polygon[1]" in msg and "700" in msg and "640x360" in msg


def test_unknown_camera_in_alert_rule_and_lookup(raw):
    raw["alerts"][0]["cameras"] = ["cam-roof-9"]
    msg = _err(raw)
    assert "alerts.long-queue.cameras" in msg and "cam-roof-9" in msg and "unknown camera" in msg
    s = load_store_config(STORE)
    with pytest.raises(ConfigError, match="cam-nowhere.*unknown camera"):
        s.camera("cam-nowhere")


def test_lane_without_service_zone(raw):
    del raw["cameras"]["cam-checkout-2"]["lanes"]["checkout-3"]["service_zone"]
    msg = _err(raw)
    assert "cameras.cam-checkout-2.lanes.checkout-3.service_zone" in msg and "service zone" in msg


def test_lane_naming_a_missing_zone(raw):
    raw["cameras"]["cam-checkout-1"]["lanes"]["checkout-1"]["queue_zone"] = "queue-9"
    assert "queue-9" in _err(raw) and "no such zone on camera cam-checkout-1" in _err(raw)


@pytest.mark.parametrize("mutate, needle", [
    (lambda r: r["cameras"]["cam-entrance-1"]["lines"]["door"].update({"in": "left"}), "parallel"),
    (lambda r: r["cameras"]["cam-entrance-1"]["lines"]["door"].update({"in": "inward"}), "'inward'"),
    (lambda r: r["cameras"]["cam-aisles-1"]["zones"]["aisle-1"].update({"kind": "roof"}), "'roof'"),
    (lambda r: r["cameras"]["cam-aisles-1"]["zones"]["aisle-1"].update({"polygon": [[1, 1], [2, 2]]}),
     "at least 3 points"),
    (lambda r: r["alerts"][0].update({"clear_below": 99}), "hysteresis"),
    (lambda r: r["alerts"][0].update({"type": "smoke"}), "'smoke'"),
    (lambda r: r["alerts"][0].update({"target": "checkout-99"}), "no such lane"),
    (lambda r: r["alerts"].append(copy.deepcopy(r["alerts"][0])), "duplicate"),
    (lambda r: r["cameras"]["cam-aisles-1"].update({"zonez": {}}), "unknown field"),
    (lambda r: r["cameras"]["cam-aisles-1"].update({"heatmap": {"resolution": [0, 5]}}), "resolution"),
])
def test_other_mistakes(raw, mutate, needle):
    mutate(raw)
    assert needle in _err(raw)


def test_app_config_section(tmp_path):
    app = {"analytics": {"store_config": str(STORE)}}
    assert load_analytics_section(app, tmp_path / "app.yaml").cameras
    assert load_analytics_section({}, tmp_path / "app.yaml") is None
    with pytest.raises(ConfigError, match="analytics.store_config.*not found"):
        load_analytics_section({"analytics": {"store_config": "nope.yaml"}}, tmp_path / "app.yaml")


def test_yaml_errors(tmp_path):
    p = tmp_path / "s.yaml"
    p.write_text("cameras: [unclosed")
    with pytest.raises(ConfigError, match="invalid YAML"):
        load_store_config(p)
    with pytest.raises(ConfigError, match="cannot read"):
        load_store_config(tmp_path / "missing.yaml")
