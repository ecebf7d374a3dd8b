"""The pixel-free appearance model (simulator/appearance.py) against the measured OSNet statistics
(simulator/appearance_calibration.json, from ``python -m benchmarks.reid --cross-camera``), and that
benchmark's cross-camera protocol on a short render."""
from __future__ import annotations

import json

import numpy as np
import pytest

from benchmarks.reid import cross_camera_scores
from simulator.appearance import CALIBRATION, AppearanceModel, fitted_params

CAL = json.loads(CALIBRATION.read_text())


def _synthetic_window(model: AppearanceModel, people: int = 80, seed: int = 1):
    """Customers each seen on 2-3 of 4 cameras, one tracklet per camera with (crops, seconds) drawn from
    the calibration's tracklets, sampled every 0.5 s like the benchmark; embedded camera by camera."""
    rng = np.random.default_rng(seed)
    sizes = np.array(CAL["tracklet"]["sizes"], np.float64)
    t0 = 1_705_339_800.0
    ids, cams, times = [], [], []
    for p in range(people):
        for cam in rng.choice(4, size=int(rng.integers(2, 4)), replace=False):
            m, span = sizes[rng.integers(len(sizes))]
            start = t0 + 0.5 * rng.integers(0, 600)
            t = start + 0.5 * np.arange(int(m)) * (span / max(m - 1, 1) / 0.5 if m > 1 else 1.0)
            ids.append(np.full(len(t), p))
            cams.append(np.full(len(t), cam))
            times.append(np.round(t * 2) / 2)
    ids, cams, times = np.concatenate(ids), np.concatenate(cams), np.concatenate(times)
    emb = np.zeros((len(ids), model.dim), np.float32)
    for cam in range(4):
        m = cams == cam
        emb[m] = model.embed(ids[m], cam, t=times[m])
    return emb, ids, cams, times


@pytest.fixture(scope="module")
def sampled():
    model = AppearanceModel.from_calibration(seed=3)
    emb, ids, cams, times = _synthetic_window(model)
    return cross_camera_scores(emb, ids, cams, times)


# Tolerances: crop-level means are what the fit matches first (+-0.05: the trained OSNet's two-camera
# crop cosines spread widely, 0.70 +- 0.34, which one viewpoint weight per (customer, camera) fits to
# ~0.04); tracklet-level different-people mean and sds +-0.05. The tracklet-level same-person mean is the
# model's known shortfall (it averages i.i.d. noise and drift only, so a tracklet gains less over single
# crops than OSNet's does, 0.77 against 0.88 for the trained model): +-0.12. It errs on the hard side.
def test_crop_level_statistics_match_the_calibration(sampled):
    c, m = sampled["crop"], CAL["crop"]
    assert abs(c["same_camera_1_3s"]["mean"] - m["same_camera_1_3s"]["mean"]) < 0.05
    assert abs(c["cross_camera"]["mean"] - m["cross_camera"]["mean"]) < 0.05
    assert abs(c["different_cross_camera"]["mean"] - m["different_cross_camera"]["mean"]) < 0.05
    assert abs(c["different_same_frame"]["mean"] - m["different_same_frame"]["mean"]) < 0.05
    assert abs(c["different_cross_camera"]["sd"] - m["different_cross_camera"]["sd"]) < 0.05


def test_tracklet_level_statistics_match_the_calibration(sampled):
    t, m = sampled["tracklet"], CAL["tracklet"]
    assert abs(t["different_people_cross_camera"]["mean"] - m["different_people_cross_camera"]["mean"]) < 0.05
    assert abs(t["different_people_cross_camera"]["sd"] - m["different_people_cross_camera"]["sd"]) < 0.05
    assert abs(t["same_person_cross_camera"]["mean"] - m["same_person_cross_camera"]["mean"]) < 0.12
    assert t["same_person_cross_camera"]["mean"] > t["different_people_cross_camera"]["mean"] + 0.1


def test_the_fit_reproduces_the_measured_drift_curve():
    _, report = fitted_params()
    fitted, measured = np.array(report["curve"]["fitted"]), np.array(report["curve"]["measured"])
    assert np.abs(fitted - measured).max() < 0.015


def test_same_seed_same_identities_across_instances_and_call_orders():
    a, b = AppearanceModel.from_calibration(seed=11), AppearanceModel.from_calibration(seed=11)
    ids = np.array([5, 9, 5, 1234, 9], np.int64)
    t = np.full(len(ids), 1_705_339_800.0)
    b.embed(np.array([77, 78]), 2, t=t[:2])  # another camera's worker touched other customers first
    ea, eb = a.embed(ids, 1, t=t), b.embed(ids, 1, t=t)
    np.testing.assert_allclose(ea @ eb.T, ea @ ea.T, atol=0.06)  # same identities; only the noise differs
    assert float((ea[0] * eb[0]).sum()) > 0.95
    other = AppearanceModel.from_calibration(seed=12).embed(ids, 1, t=t)
    assert float((ea[0] * other[0]).sum()) < float((ea[0] * eb[0]).sum())
    # the static part is exactly shared: the same rng seeds the same rows
    ra, rb = np.random.default_rng(0), np.random.default_rng(0)
    np.testing.assert_array_equal(a.embed(ids, 3, t=t, rng=ra), b.embed(ids, 3, t=t, rng=rb))


def test_false_positives_are_strangers_to_each_other_and_to_customers():
    m = AppearanceModel.from_calibration(seed=0)
    e = m.embed(np.array([-1] * 200 + [4, 4], np.int64), 0, t=np.full(202, 1e9))
    sim = e @ e.T
    fp = sim[:200, :200][np.triu_indices(200, 1)]
    assert fp.max() < 0.999 and fp.mean() < 0.85
    assert sim[200, 201] > 0.95 > sim[200, :200].mean()


def test_shapes_dtype_norms_and_dim():
    m = AppearanceModel.from_calibration(seed=0)
    e = m.embed(np.array([3, -1, 7], np.int64), 2)
    assert e.shape == (3, 512) and e.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(e, axis=1), 1.0, atol=1e-5)
    assert m.embed(np.zeros(0, np.int64), 0, t=0.0).shape == (0, 512)
    small = AppearanceModel.from_calibration(seed=0, dim=128).embed(np.array([1, 2]), 0, t=5.0)
    assert small.shape == (2, 128)


def test_cross_camera_benchmark_on_a_short_render():
    from benchmarks.reid import REPO_ROOT, cross_camera

    if not any((REPO_ROOT / "model_repository" / "osnet_x0_25").glob("[0-9]*/model.onnx")):
        pytest.skip("no osnet_x0_25 ONNX in model_repository/ (built by `make models`, not committed)")
    r = cross_camera(seconds=30.0, fps=2.0)  # all four cameras: one customer crosses in these 30 s
    assert r["crops"] > 100 and r["people"] >= 5 and r["dim"] == 512
    c, t = r["crop"], r["tracklet"]
    assert c["same_camera_1_3s"]["mean"] > c["different_same_frame"]["mean"]
    assert -1.0 <= c["different_cross_camera"]["mean"] <= 1.0 and c["cross_camera"]["pairs"] > 0
    assert t["tracklets"] == len(t["sizes"]) and sum(s[0] for s in t["sizes"]) == r["crops"]
    assert 0.0 <= t["chance"] <= t["rank1"] <= 1.0
