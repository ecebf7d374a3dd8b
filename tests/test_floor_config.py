"""Floor plan, per-camera image-to-floor calibration and visit settings in the store config
(analytics.floor_config, through analytics.config): the sample store's calibration matches the
simulator's cameras; each mistake names its field."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import yaml

from analytics.config import ConfigError, load_store_config, parse_store_config
from analytics.floor_config import AppearanceModel, VisitSettings
from simulator import world as W
from tests.analytics_helpers import square, store

REPO = Path(__file__).resolve().parents[1]
STORE = REPO / "configs" / "store.yaml"


@pytest.fixture()
def raw():
    return yaml.safe_load(STORE.read_text())


def _err(raw, path="store.yaml") -> str:
    with pytest.raises(ConfigError) as e:
        parse_store_config(raw, path)
    return str(e.value)


# --------------------------------------------------------------------------- the sample store

def test_sample_calibration_maps_the_simulator_floor_back_within_2_cm():
    s = load_store_config(STORE)
    assert set(s.cameras) == set(W.CAMERAS)
    for cid, cam in W.CAMERAS.items():
        cal = s.camera(cid).floor
        assert cal is not None and cal.rms_error_m < 0.01, cid
        x0, y0, x1, y1 = cam.floor_rect
        gx, gy = np.meshgrid(np.linspace(x0, x1, 9), np.linspace(y0, y1, 9))
        floor = np.c_[gx.ravel(), gy.ravel()]
        back = cal.to_floor(cam.project(floor))
        assert np.abs(back - floor).max() < 0.02, cid


def test_sample_store_floor_plan_and_visits():
    s = load_store_config(STORE)
    assert s.store_id == "sample-store"
    assert s.floor is not None and s.floor.bounds == (0.0, 0.0, 40.0, 25.0)
    assert s.floor.cell_m == 0.5 and s.floor.plan_image is None and s.floor.plan_px_per_m == 20.0
    # the file writes the defaults out, with the served model's measured appearance statistics
    assert dataclasses.replace(s.visits, appearance=AppearanceModel()) == VisitSettings()
    assert s.visits.appearance.same_mean > s.visits.appearance.diff_mean


def test_world_prints_what_the_store_file_holds(raw):
    assert yaml.safe_load(W.floor_yaml())["floor"] == raw["floor"]
    printed = yaml.safe_load(W.store_yaml())["cameras"]
    for cid in W.CAMERAS:
        assert printed[cid]["floor_points"] == raw["cameras"][cid]["floor_points"]


def test_door_side_and_distance():
    door = load_store_config(STORE).floor.doors["main"]  # front wall y = 25, x 2..6, in: up
    assert door.in_direction.tolist() == [0.0, -1.0]
    np.testing.assert_allclose(door.side(np.array([[4.0, 24.0], [4.0, 26.5], [20.0, 25.0]])), [1.0, -1.5, 0.0])
    np.testing.assert_allclose(door.distance(np.array([[4.0, 25.0], [0.0, 25.0], [4.0, 27.0], [9.0, 21.0]])),
                               [0.0, 2.0, 2.0, 5.0])


def test_down_door_flips_the_side(raw):
    raw["floor"]["doors"]["back"] = {"points": [[10, 0], [14, 0]], "in": "down"}
    door = parse_store_config(raw, "store.yaml").floor.doors["back"]
    np.testing.assert_allclose(door.side(np.array([[12.0, 1.0], [12.0, -1.0]])), [1.0, -1.0])


def test_without_floor_and_visits_everything_is_none(raw):
    for key in ("floor", "visits"):
        raw.pop(key)
    for cam in raw["cameras"].values():
        cam.pop("floor_points")
    s = parse_store_config(raw, "store.yaml")
    assert s.floor is None and s.visits is None
    assert all(c.floor is None for c in s.cameras.values())
    bare = store(zones={"z": square(0, 0, 100, 100)})
    assert bare.floor is None and bare.visits is None and bare.store_id == "store"
    assert bare.camera("cam").floor is None


def test_calibration_without_a_floor_plan(raw):
    raw.pop("floor")
    s = parse_store_config(raw, "store.yaml")
    assert s.floor is None and s.camera("cam-entrance-1").floor.rms_error_m < 0.01


def test_visits_empty_mapping_is_the_defaults(raw):
    raw["visits"] = {}
    assert parse_store_config(raw, "store.yaml").visits == VisitSettings()


def test_plan_image_is_relative_to_the_store_file(raw, tmp_path):
    (tmp_path / "plan.png").write_bytes(b"png")
    raw["floor"]["plan_image"] = "plan.png"
    raw["floor"]["plan_px_per_m"] = 10
    s = parse_store_config(raw, tmp_path / "store.yaml")
    assert s.floor.plan_image == tmp_path / "plan.png" and s.floor.plan_px_per_m == 10.0
    raw["floor"]["plan_image"] = "missing.png"
    assert "floor.plan_image" in _err(raw, tmp_path / "store.yaml")


# --------------------------------------------------------------------------- calibration mistakes

FP = "cameras.cam-aisles-1.floor_points"


def _fp(raw, cam="cam-aisles-1"):
    return raw["cameras"][cam]["floor_points"]


def test_fewer_than_four_pairs(raw):
    fp = _fp(raw)
    fp["image"], fp["floor"] = fp["image"][:3], fp["floor"][:3]
    msg = _err(raw)
    assert f"{FP}.image" in msg and "at least 4" in msg


def test_count_mismatch(raw):
    _fp(raw)["floor"].pop()
    msg = _err(raw)
    assert f"{FP}.floor" in msg and "has 4 points but image has 5" in msg


def test_image_point_outside_the_image(raw):
    _fp(raw)["image"][2] = [700, 356]
    msg = _err(raw)
    assert f"{FP}.image[2]" in msg and "700" in msg and "640x360" in msg


def test_not_a_finite_number(raw):
    _fp(raw)["floor"][1] = [float("nan"), 3]
    assert f"{FP}.floor[1]" in _err(raw)


def test_three_collinear_of_four(raw):
    _fp(raw)["image"] = [[100, 100], [200, 100], [300, 101], [200, 300]]
    _fp(raw)["floor"] = [[11, 2], [20, 2], [30, 2.1], [20, 12]]
    msg = _err(raw)
    assert f"{FP}.image" in msg and "points 0, 1 and 2" in msg and "one line" in msg


def test_all_points_on_one_line(raw):
    _fp(raw)["floor"] = [[11, 2], [14, 3], [17, 4], [20, 5], [23, 6.01]]
    msg = _err(raw)
    assert f"{FP}.floor" in msg and "one line" in msg


def test_four_of_five_collinear_fix_no_homography(raw):
    cam = W.CAMERAS["cam-aisles-1"]
    floor = np.array([[12.0, 3.0], [15.0, 3.0], [18.0, 3.0], [21.0, 3.0], [15.0, 9.0]])
    _fp(raw)["floor"] = floor.tolist()
    _fp(raw)["image"] = np.round(cam.project(floor), 1).tolist()
    msg = _err(raw)
    assert FP in msg and "do not fix a homography" in msg


def test_huge_residual_names_the_rms(raw):
    _fp(raw)["floor"][4] = [21.0, 10.0]  # the centre, 3 m off
    msg = _err(raw)
    assert FP in msg and "m RMS over 5 pairs" in msg and "max_rms_m 0.25" in msg and "largest miss is pair" in msg
    _fp(raw)["max_rms_m"] = 5.0  # a looser bound accepts it, and records the residual
    assert parse_store_config(raw, "store.yaml").camera("cam-aisles-1").floor.rms_error_m > 0.25


def test_zone_vertex_off_the_floor_outline(raw):
    raw["cameras"]["cam-entrance-1"]["zones"]["entrance"]["polygon"][2] = [547, 356]  # y 27.5: outside
    msg = _err(raw)
    assert "cameras.cam-entrance-1.zones.entrance.polygon[2]" in msg and "outside floor.outline" in msg
    assert "cam-entrance-1" in msg and "27.50) m" in msg


def _pinhole(horizon_v: float, fh: float):
    """A camera looking up the plan from y = 30 with its horizon at image row ``horizon_v``:
    floor points -> image points."""
    floor = np.array([[17.0, 26.0], [23.0, 26.0], [23.0, 10.0], [17.0, 10.0], [20.0, 22.0]])
    z = 30.0 - floor[:, 1]
    image = np.c_[320.0 + 300.0 * (floor[:, 0] - 20.0) / z, horizon_v + fh / z]
    return {"image": np.round(image, 1).tolist(), "floor": floor.tolist()}


def test_zone_beyond_the_horizon(raw):
    raw.pop("floor")
    raw["cameras"]["cam-tilted"] = {"zones": {"far": square(200, 40, 440, 300)}, "floor_points": _pinhole(80, 450)}
    msg = _err(raw)
    assert "cameras.cam-tilted.zones.far.polygon[0]" in msg and "beyond the horizon" in msg
    raw["cameras"]["cam-tilted"]["zones"]["far"] = square(200, 100, 440, 300)  # below it: fine
    cal = parse_store_config(raw, "store.yaml").camera("cam-tilted").floor
    np.testing.assert_allclose(cal.to_floor(cal.image_points), cal.floor_points, atol=0.05)


def test_horizon_across_the_lower_half(raw):
    raw.pop("floor")
    raw["cameras"]["cam-tilted"] = {"floor_points": _pinhole(250, 200)}
    msg = _err(raw)
    assert "cameras.cam-tilted.floor_points" in msg and "lower half" in msg


# --------------------------------------------------------------------------- floor and visits mistakes

def test_bad_door_direction(raw):
    raw["floor"]["doors"]["main"]["in"] = "inward"
    msg = _err(raw)
    assert "floor.doors.main.in" in msg and "inward" in msg and "up, down, left, right" in msg
    raw["floor"]["doors"]["main"]["in"] = "left"
    assert "parallel" in _err(raw)


def test_door_far_off_the_plan_or_a_single_point(raw):
    raw["floor"]["doors"]["main"]["points"] = [[2, 25], [6, 30]]
    assert "floor.doors.main.points[1]" in _err(raw)
    raw["floor"]["doors"]["main"]["points"] = [[2, 25], [2, 25]]
    assert "at least 0.1 m apart" in _err(raw)


def test_self_intersecting_outline(raw):
    raw["floor"]["outline"] = [[0, 0], [40, 25], [40, 0], [0, 25]]
    msg = _err(raw)
    assert "floor.outline" in msg and "crosses itself" in msg


def test_outline_needs_area_and_cells_positive(raw):
    raw["floor"]["outline"] = [[0, 0], [40, 0], [20, 0]]
    assert "no area" in _err(raw)
    raw = yaml.safe_load(STORE.read_text())
    raw["floor"]["cell_m"] = 0
    assert "floor.cell_m" in _err(raw)


def test_bad_appearance_model(raw):
    raw["visits"]["appearance"].update(same_mean=0.6, diff_mean=0.7)  # "same" looking less alike than "different"
    msg = _err(raw)
    assert "visits.appearance.same_mean" in msg and "diff_mean 0.7" in msg
    raw["visits"]["appearance"]["same_mean"] = 1.5
    assert "visits.appearance.same_mean" in _err(raw)
    raw["visits"]["appearance"] = {"diff_sd": 0}
    assert "visits.appearance.diff_sd" in _err(raw)


def test_bad_visits_fields(raw):
    raw["visits"]["max_speed_mps"] = 0
    assert "visits.max_speed_mps" in _err(raw)
    raw = yaml.safe_load(STORE.read_text())
    raw["visits"]["timeout"] = 3
    assert "visits.timeout" in _err(raw)
    raw = yaml.safe_load(STORE.read_text())
    raw["visits"]["decide_every_s"] = 0  # decisions must come round
    assert "visits.decide_every_s" in _err(raw)


def test_bad_store_id(raw):
    raw["store"]["id"] = "sample store"
    assert "store.id" in _err(raw)
    raw["store"] = {"name": "no id"}
    assert parse_store_config(raw, "store.yaml").store_id == "store"
