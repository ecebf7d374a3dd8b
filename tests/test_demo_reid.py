"""The demo re-id model (data/models/demo/osnet_x0_25_demo.onnx, modelops/train_demo_reid.py):
served signature, it tells rendered people apart, and ``make models`` installs it once."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from modelops import build
from modelops.train_demo_reid import tracklet_scores

REAL_REPO = Path(__file__).resolve().parents[1] / "model_repository"
needs_model = pytest.mark.skipif(not build.DEMO_REID.is_file(), reason="the shipped demo re-id model is missing")


@pytest.fixture
def repo(tmp_path) -> Path:
    """A repository with the real osnet_x0_25 configs and no versions (as tests/test_model_repo.py)."""
    r = tmp_path / "model_repository"
    shutil.copytree(REAL_REPO / "osnet_x0_25", r / "osnet_x0_25", ignore=shutil.ignore_patterns("[0-9]*", "__pycache__"))
    return r


def snapshot(root: Path) -> dict[str, bytes | None]:
    return {str(p.relative_to(root)): (None if p.is_dir() else p.read_bytes()) for p in sorted(root.rglob("*"))}


def _session():
    import onnxruntime as ort

    return ort.InferenceSession(str(build.DEMO_REID), providers=["CPUExecutionProvider"])


@needs_model
def test_served_signature():
    sess = _session()
    (i,), (o,) = sess.get_inputs(), sess.get_outputs()
    assert (i.name, i.type, i.shape[1:]) == ("images", "tensor(float)", [3, 256, 128])
    assert (o.name, o.type, o.shape[1:]) == ("features", "tensor(float)", [512])
    y = sess.run(None, {"images": np.zeros((2, 3, 256, 128), np.float32)})[0]
    assert y.shape == (2, 512) and y.dtype == np.float32 and np.isfinite(y).all()
    assert build.DEMO_REID.stat().st_size < 2_000_000  # fp16 weights: about 0.5 MB


@needs_model
def test_fits_the_served_config():
    from modelops.model_repo import validate_onnx

    info = validate_onnx(build.DEMO_REID, REAL_REPO, "osnet_x0_25")
    assert info.class_names is None


@needs_model
def test_same_rendered_person_is_closer_than_different_people():
    """A few seconds of a held-out seed's checkout camera: the same person a second or more apart
    is more similar than two different people in the same frame."""
    from modelops.train_demo_reid import sightings
    from serving.postprocess import l2_normalise

    crops, ids, times = [], [], []
    for c, who, t in sightings("cam-checkout-1", 8.0, 1001, "2024-01-15T18:30:00Z"):
        crops.append(c)
        ids.append(who)
        times.append(np.full(len(who), t))
    crops, ids, times = np.concatenate(crops), np.concatenate(ids), np.concatenate(times)
    assert len(np.unique(ids)) >= 3
    emb = l2_normalise(_session().run(None, {"images": crops})[0])
    sim = emb @ emb.T
    same = ids[:, None] == ids[None, :]
    dt = np.abs(times[:, None] - times[None, :])
    same_pairs, diff_pairs = sim[same & (dt >= 1.0)], sim[~same & (dt < 1e-6)]
    assert len(same_pairs) and len(diff_pairs)
    assert same_pairs.mean() > diff_pairs.mean() + 0.2
    # nearest other-moment neighbour is the same person for most crops
    gallery = dt >= 1.0
    best = np.where(gallery, sim, -np.inf).argmax(1)
    has = (gallery & same).any(1)
    assert (ids[best] == ids)[has].mean() > 0.8


def test_tracklet_scores_on_ideal_and_random_embeddings():
    rng = np.random.default_rng(0)
    ids = np.repeat(np.arange(6), 8)
    cams = np.tile(np.repeat([0, 1], 4), 6)
    times = np.tile(np.arange(8.0), 6)
    people = rng.normal(size=(6, 16))
    emb = people[ids] + 0.01 * rng.normal(size=(len(ids), 16))
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    r = tracklet_scores(emb, ids, cams, times)
    assert (r["tracklets"], r["queries"], r["rank1"]) == (12, 12, 1.0)
    assert r["chance"] == pytest.approx(1 / 6)
    assert r["same_person_cross_camera"]["pairs"] == 6 and r["different_people_cross_camera"]["pairs"] == 30
    assert r["d_prime"] > 3


@needs_model
def test_build_installs_the_demo_reid_once(repo):
    assert build.demo_reid_missing(repo)
    v1 = build.install_demo_reid(repo)
    assert v1 == repo / "osnet_x0_25" / "1"
    assert (v1 / "model.py").read_bytes() == build.ADAPTER.encode()
    manifest = json.loads((v1 / "manifest.json").read_text())
    assert manifest["source"] == build.DEMO_REID_SOURCE and manifest["precision"] == "fp16"
    assert manifest["outputs"] == [{"name": "features", "dtype": "FP32", "shape": ["batch", 512]}]
    assert not build.demo_reid_missing(repo)
    before = snapshot(repo)
    assert build.install_demo_reid(repo) is None  # matched by sha256: a no-op
    assert snapshot(repo) == before
    assert build.install_demo_reid(repo, force=True) == repo / "osnet_x0_25" / "2"


@needs_model
def test_demo_reid_goes_on_top_of_the_placeholder(repo, tmp_path):
    from tests.test_model_repo import make_reid

    build.install("osnet_x0_25", make_reid(tmp_path / "placeholder.onnx"), build.PLACEHOLDER_SOURCE, repo=repo)
    v2 = build.install_demo_reid(repo)
    assert v2 == repo / "osnet_x0_25" / "2" and build.installed_versions("osnet_x0_25", repo)[-1] == v2
    assert build.install_demo_reid(repo) is None
    assert (v2 / "model.py").read_bytes() == build.ADAPTER.encode()  # the predecessor's adapter
