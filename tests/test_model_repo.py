"""Model versioning (modelops/model_repo.py) against the repository's real configs.

Small ONNX files are built here with ``onnx.helper`` in the real signatures of
``yolov8n`` (images [N,3,640,640] -> output0 [N,4+C,8400]) and ``osnet_x0_25``
(images [N,3,256,128] -> features [N,512]), or deliberately broken variants of them.
The configs and labels are copied from ``model_repository/`` into a temp repository.
"""
from __future__ import annotations

import errno
import hashlib
import json
import shutil
import threading
from datetime import datetime
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from modelops import model_repo, versions
from modelops.model_repo import ModelRepoError, ValidationError, add_version, list_versions, main, validate_onnx

REAL_REPO = Path(__file__).resolve().parents[1] / "model_repository"
# The repository's labels.txt follows whichever detector is installed (the trained demo detector:
# person, cart); these tests pin the COCO-80 detector's names.
COCO_NAMES = REAL_REPO.parent / "modelops" / "coco80.names"
COCO = model_repo.read_labels(COCO_NAMES)


# ----------------------------------------------------------------------------- ONNX builders


def _save(path: Path, graph, meta: dict[str, str] | None = None, opset: int = 17) -> Path:
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], producer_name="test")
    m.ir_version = 8
    for k, v in (meta or {}).items():
        m.metadata_props.add(key=k, value=v)
    onnx.checker.check_model(m)
    onnx.save(m, str(path))
    return path


def make_detector(path: Path, names: list[str] | None = None, *, input_name: str = "images", size: int = 640,
                  batch: str | int = "batch", reshape_batch: int = 0, seed: int = 0,
                  elem=TensorProto.FLOAT, with_names: bool = True) -> Path:
    """YOLOv8-shaped head: three strided convs (8, 16, 32) -> concat -> [N, 4 + C, 8400] at 640."""
    names = COCO if names is None else names
    ch = 4 + len(names)
    rng = np.random.default_rng(seed)
    nodes, inits, parts = [], [], []
    x = input_name
    if elem != TensorProto.FLOAT:
        nodes.append(helper.make_node("Cast", [input_name], ["x32"], to=TensorProto.FLOAT))
        x = "x32"
    for s in (8, 16, 32):
        w = numpy_helper.from_array(rng.normal(0, 0.01, (ch, 3, s, s)).astype(np.float32), f"w{s}")
        shape = numpy_helper.from_array(np.array([reshape_batch, ch, -1], np.int64), f"shape{s}")
        inits += [w, shape]
        nodes += [helper.make_node("Conv", [x, f"w{s}"], [f"c{s}"], kernel_shape=[s, s], strides=[s, s]),
                  helper.make_node("Reshape", [f"c{s}", f"shape{s}"], [f"r{s}"])]
        parts.append(f"r{s}")
    nodes.append(helper.make_node("Concat", parts, ["output0"], axis=2))
    graph = helper.make_graph(
        nodes, "det", [helper.make_tensor_value_info(input_name, elem, [batch, 3, size, size])],
        [helper.make_tensor_value_info("output0", TensorProto.FLOAT, [batch, ch, None])], inits)
    meta = {"names": str(dict(enumerate(names))), "task": "detect"} if with_names else {}
    return _save(path, graph, meta)


def make_reid(path: Path, dim: int = 512, seed: int = 0) -> Path:
    """OSNet-shaped: images [N,3,256,128] -> global average pool -> linear -> features [N, dim]."""
    w = numpy_helper.from_array(np.random.default_rng(seed).normal(0, 1, (3, dim)).astype(np.float32), "w")
    nodes = [helper.make_node("GlobalAveragePool", ["images"], ["p"]),
             helper.make_node("Flatten", ["p"], ["f"]),
             helper.make_node("MatMul", ["f", "w"], ["features"])]
    graph = helper.make_graph(nodes, "reid", [helper.make_tensor_value_info("images", TensorProto.FLOAT,
                                                                            ["batch", 3, 256, 128])],
                              [helper.make_tensor_value_info("features", TensorProto.FLOAT, ["batch", dim])], [w])
    return _save(path, graph)


# ----------------------------------------------------------------------------- fixtures


@pytest.fixture
def repo(tmp_path) -> Path:
    """A repository with the real configs of yolov8n and osnet_x0_25, COCO labels, no versions."""
    r = tmp_path / "model_repository"
    for m in ("yolov8n", "osnet_x0_25"):
        shutil.copytree(REAL_REPO / m, r / m, ignore=shutil.ignore_patterns("[0-9]*", "__pycache__"))
    shutil.copyfile(COCO_NAMES, r / "yolov8n" / "labels.txt")
    return r


def snapshot(root: Path) -> dict[str, bytes | None]:
    """Every dir (None) and file (bytes) under root: compare to prove 'unchanged byte for byte'."""
    return {str(p.relative_to(root)): (None if p.is_dir() else p.read_bytes()) for p in sorted(root.rglob("*"))}


@pytest.fixture
def det(tmp_path) -> Path:
    return make_detector(tmp_path / "det.onnx")


# ----------------------------------------------------------------------------- add: the good path


def test_dynamic_spatial_axes_are_run_at_the_configured_size(repo, tmp_path):
    """Ultralytics' ``dynamic=True`` export frees H and W too: the smoke run must feed 640x640
    (what Triton sends), not 1x1, or a good model is rejected."""
    det = make_detector(tmp_path / "dyn.onnx", size="height")
    v = add_version(repo, "yolov8n", det, source="ultralytics dynamic export", extra_files={"model.py": b"#\n"})
    assert json.loads((v / "manifest.json").read_text())["inputs"][0]["shape"] == ["batch", 3, "height", "height"]


def test_real_configs_are_what_these_tests_assume(repo):
    cfgs = model_repo.read_configs(repo, "yolov8n")
    assert {p.name for p in cfgs} == {"config.pbtxt", "cpu.pbtxt"}
    assert all(c.max_batch_size > 0 for c in cfgs.values())
    assert len(COCO) == 80


def test_add_writes_next_version_with_manifest(repo, det):
    v1 = add_version(repo, "yolov8n", det, source="unit test", precision="fp32",
                     extra_files={"model.py": b"# adapter\n"})
    assert v1 == repo / "yolov8n" / "1"
    v2 = add_version(repo, "yolov8n", det, source="retrain 42", precision="fp16")
    assert v2.name == "2"
    assert sorted(p.name for p in v2.iterdir()) == ["manifest.json", "model.onnx", "model.py"]
    assert (v2 / "model.py").read_bytes() == b"# adapter\n"  # copied from the previous version
    assert (v2 / "model.onnx").read_bytes() == det.read_bytes()
    m = json.loads((v2 / "manifest.json").read_text())
    assert m["sha256"] == hashlib.sha256(det.read_bytes()).hexdigest()
    assert m["files"]["model.onnx"]["sha256"] == m["sha256"]
    assert m["files"]["model.py"]["sha256"] == hashlib.sha256(b"# adapter\n").hexdigest()
    assert (m["model"], m["version"], m["source"], m["precision"]) == ("yolov8n", 2, "retrain 42", "fp16")
    assert datetime.fromisoformat(m["created"].replace("Z", "+00:00")).tzinfo is not None
    assert m["onnx"]["opset"] == 17
    assert m["inputs"] == [{"name": "images", "dtype": "FP32", "shape": ["batch", 3, 640, 640]}]
    assert m["outputs"][0]["name"] == "output0"
    assert m["class_names"] == COCO
    assert m["tool"]["name"] == "modelops.model_repo"
    assert not list((repo / "yolov8n").glob(".tmp-*"))
    assert v2.stat().st_mode & 0o777 == 0o755  # readable by a server running as another user


def test_add_reid_model_has_no_class_names(repo, tmp_path):
    v = add_version(repo, "osnet_x0_25", make_reid(tmp_path / "r.onnx"), source="t")
    m = json.loads((v / "manifest.json").read_text())
    assert m["class_names"] is None and m["outputs"][0]["shape"] == ["batch", 512]
    assert not (repo / "osnet_x0_25" / "labels.txt").exists()


def test_numbering_continues_after_existing_versions_and_ignores_non_numeric(repo, det):
    (repo / "yolov8n" / "7").mkdir()
    (repo / "yolov8n" / "abc").mkdir()
    (repo / "yolov8n" / "010").mkdir()  # Triton ignores leading zeros: so do we
    assert add_version(repo, "yolov8n", det, source="t").name == "8"


# ----------------------------------------------------------------------------- add: rejections


def _bad_cases(tmp_path: Path) -> dict[str, tuple[Path, str]]:
    corrupt = tmp_path / "corrupt.onnx"
    good = make_detector(tmp_path / "good.onnx").read_bytes()
    corrupt.write_bytes(good[: len(good) // 3])  # truncated download
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"<html>404 not found</html>")
    return {
        "wrong input name": (make_detector(tmp_path / "a.onnx", input_name="input"),
                             "input 'images' is not in the ONNX (ONNX inputs: ['input'])"),
        "wrong dims": (make_detector(tmp_path / "b.onnx", size=320),
                       "dim 2 is fixed at 320 in the ONNX, but preprocess letterboxes frames to 640 on the long side"),
        "fixed batch": (make_detector(tmp_path / "c.onnx", batch=1), "fixed batch dimension 1"),
        "batch 1 hard-coded inside": (make_detector(tmp_path / "d.onnx", reshape_batch=1),
                                      "has batch 1 for an input batch of 2"),
        "wrong dtype": (make_detector(tmp_path / "e.onnx", elem=TensorProto.FLOAT16),
                        "input 'images' dtype FP16 in the ONNX, TYPE_FP32" .replace("TYPE_", "")),
        "truncated file": (corrupt, "not a readable ONNX file"),
        "not onnx at all": (garbage, "garbage.onnx"),
        "missing file": (tmp_path / "nope.onnx", "file not found"),
    }


@pytest.mark.parametrize("case", ["wrong input name", "wrong dims", "fixed batch", "batch 1 hard-coded inside",
                                  "wrong dtype", "truncated file", "not onnx at all", "missing file"])
def test_bad_onnx_is_rejected_and_repository_unchanged(repo, tmp_path, det, case):
    add_version(repo, "yolov8n", det, source="v1", extra_files={"model.py": b"# a\n"})
    before = snapshot(repo)
    path, expected = _bad_cases(tmp_path)[case]
    with pytest.raises(ValidationError) as ei:
        add_version(repo, "yolov8n", path, source="bad")
    msg = str(ei.value)
    assert expected in msg, msg
    assert str(path) in msg  # names the file
    assert snapshot(repo) == before


def test_op_onnx_runtime_cannot_run_is_rejected(repo, tmp_path):
    node = helper.make_node("Frobnicate", ["images"], ["features"], domain="com.example")
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("images", TensorProto.FLOAT,
                                                                          ["batch", 3, 256, 128])],
                              [helper.make_tensor_value_info("features", TensorProto.FLOAT, ["batch", 512])])
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.example", 1)])
    m.ir_version = 8
    onnx.save(m, str(tmp_path / "custom.onnx"))
    with pytest.raises(ValidationError, match="ONNX Runtime cannot run the model on zeros at batch 2"):
        validate_onnx(tmp_path / "custom.onnx", repo, "osnet_x0_25")


@pytest.mark.parametrize("model", ["yolov8n", "osnet_x0_25"])
def test_built_models_fit_the_real_configs(model):
    """The newest installed network (make models) against the committed configs: catches drift."""
    versions = model_repo.numeric_versions(REAL_REPO / model)
    onnx_path = REAL_REPO / model / str(max(versions, default=1)) / "model.onnx"
    if not onnx_path.exists():
        pytest.skip(f"{onnx_path} not built (make models)")
    info = validate_onnx(onnx_path, REAL_REPO, model)
    assert (info.class_names is not None) == (model == "yolov8n")


def test_mismatch_names_the_config_file_and_tensor(repo, tmp_path):
    with pytest.raises(ValidationError) as ei:
        validate_onnx(make_detector(tmp_path / "b.onnx", size=320), repo, "yolov8n")
    msg = str(ei.value)
    assert "yolov8n/config.pbtxt" in msg and "yolov8n/configs/cpu.pbtxt" in msg and "'images'" in msg


def test_onnx_of_the_other_model_is_rejected(repo, tmp_path):
    with pytest.raises(ValidationError) as ei:
        validate_onnx(make_reid(tmp_path / "r.onnx"), repo, "yolov8n")
    # the configs ask for detections: decode + NMS cannot be appended to a re-id model's output
    assert "output 'features' has rank 2: a raw YOLOv8 output is [batch, 4 + classes, anchors]" in str(ei.value)


def test_wrong_reid_width_caught_at_runtime_shape(repo, tmp_path):
    before = snapshot(repo)
    with pytest.raises(ValidationError) as ei:
        add_version(repo, "osnet_x0_25", make_reid(tmp_path / "r.onnx", dim=256), source="t")
    assert "output 'features' dim 1 is 256 in the ONNX, 512 in the config" in str(ei.value)
    assert snapshot(repo) == before


def test_unknown_model_is_a_clear_error(repo, det):
    with pytest.raises(ModelRepoError, match=r"no model 'yolov9' .*models there: \['osnet_x0_25', 'yolov8n'\]"):
        add_version(repo, "yolov9", det, source="t")


def test_bad_precision_and_empty_source(repo, det):
    with pytest.raises(ModelRepoError, match="precision"):
        add_version(repo, "yolov8n", det, source="t", precision="int4")
    with pytest.raises(ModelRepoError, match="source"):
        add_version(repo, "yolov8n", det, source=" ")


# ----------------------------------------------------------------------------- labels


def test_labels_mismatch_rejected_then_updated(repo, tmp_path):
    retail = ["person", "shopping_cart", "basket"]
    onnx_path = make_detector(tmp_path / "retail.onnx", names=retail)
    labels = repo / "yolov8n" / "labels.txt"
    before = snapshot(repo)
    with pytest.raises(ValidationError) as ei:
        add_version(repo, "yolov8n", onnx_path, source="fine-tune")
    msg = str(ei.value)
    assert "labels.txt: 80 class names, the ONNX metadata 'names' has 3" in msg
    assert "first difference at class 1: ONNX 'shopping_cart' vs labels.txt 'bicycle'" in msg
    assert "--update-labels" in msg
    assert snapshot(repo) == before
    v = add_version(repo, "yolov8n", onnx_path, source="fine-tune", update_labels=True)
    assert labels.read_text() == "person\nshopping_cart\nbasket\n"
    assert json.loads((v / "manifest.json").read_text())["class_names"] == retail
    assert not list((repo / "yolov8n").glob(".tmp-*"))


def test_class_count_checked_against_labels_when_onnx_has_no_names(repo, tmp_path):
    onnx_path = make_detector(tmp_path / "n.onnx", names=["a", "b"], with_names=False)  # 6 channels
    with pytest.raises(ValidationError, match=r"output 'output0' has 6 channels = 4 box \+ 2 classes, .*labels.txt "
                                              r"lists 80 classes"):
        validate_onnx(onnx_path, repo, "yolov8n")


def test_bad_names_metadata(repo, tmp_path):
    p = make_detector(tmp_path / "x.onnx")
    m = onnx.load(str(p))
    for prop in m.metadata_props:
        if prop.key == "names":
            prop.value = "{0: 'a', 2: 'b'}"
    onnx.save(m, str(p))
    with pytest.raises(ValidationError, match=r"keys must be 0..1"):
        validate_onnx(p, repo, "yolov8n")


def test_parse_class_names():
    assert model_repo.parse_class_names("{0: 'person', 1: 'cart'}") == ["person", "cart"]
    assert model_repo.parse_class_names("['a', 'b']") == ["a", "b"]
    with pytest.raises(ValueError, match="python dict literal"):
        model_repo.parse_class_names("{0: person}")


# ----------------------------------------------------------------------------- atomicity


@pytest.mark.parametrize("fail_at", [1, 2, 3, 4, 5])
def test_failure_mid_write_leaves_no_version(repo, tmp_path, det, monkeypatch, fail_at):
    """Disk full at the n-th fsync before the rename (model.onnx, model.py, manifest, temp dir, labels)."""
    add_version(repo, "yolov8n", det, source="v1", extra_files={"model.py": b"# a\n"})
    before = snapshot(repo)
    real = versions.os.fsync
    calls = {"n": 0}

    def failing_fsync(fd):
        calls["n"] += 1
        if calls["n"] == fail_at:
            raise OSError(errno.ENOSPC, "No space left on device")
        real(fd)

    monkeypatch.setattr(versions.os, "fsync", failing_fsync)
    new = make_detector(tmp_path / "retail.onnx", names=["person", "cart"])
    with pytest.raises(OSError, match="No space left"):
        add_version(repo, "yolov8n", new, source="v2", update_labels=True)
    assert snapshot(repo) == before


def test_failure_at_rename_leaves_no_version(repo, det, monkeypatch):
    before = snapshot(repo)

    def boom(src, dst):
        raise OSError(errno.EIO, "I/O error")

    monkeypatch.setattr(versions.os, "rename", boom)
    with pytest.raises(OSError, match="I/O error"):
        add_version(repo, "yolov8n", det, source="t")
    assert snapshot(repo) == before


def test_interrupt_mid_write_cleans_up(repo, det, monkeypatch):
    before = snapshot(repo)

    def interrupted(dst, data):
        raise KeyboardInterrupt

    monkeypatch.setattr(versions, "_write_synced", interrupted)  # the writer behind model_repo.add_version
    with pytest.raises(KeyboardInterrupt):
        add_version(repo, "yolov8n", det, source="t")
    assert snapshot(repo) == before


def test_temp_dir_of_a_crashed_add_is_ignored_then_purged(repo, det):
    crashed = repo / "yolov8n" / ".tmp-1-crashed"
    crashed.mkdir()
    (crashed / "model.onnx").write_bytes(b"half")
    assert list_versions(repo, "yolov8n") == []
    assert add_version(repo, "yolov8n", det, source="t").name == "1"
    assert not crashed.exists()


def test_concurrent_adds_get_distinct_versions(repo, det):
    results, errors = [], []

    def run(i):
        try:
            results.append(add_version(repo, "osnet_x0_25", make_reid(det.parent / f"r{i}.onnx", seed=i),
                                       source=f"t{i}", run_check=False).name)
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert sorted(results) == ["1", "2", "3", "4"]
    for v in range(1, 5):
        m = json.loads((repo / "osnet_x0_25" / str(v) / "manifest.json").read_text())
        assert m["sha256"] == hashlib.sha256((repo / "osnet_x0_25" / str(v) / "model.onnx").read_bytes()).hexdigest()


# ----------------------------------------------------------------------------- list + CLI


def test_retire_hides_a_version_and_its_number_is_not_reused(repo, tmp_path, capsys):
    for seed in (1, 2):
        add_version(repo, "osnet_x0_25", make_reid(tmp_path / f"r{seed}.onnx", seed=seed), source=f"s{seed}")
    assert main(["retire", "--repo", str(repo), "--model", "osnet_x0_25", "--version", "2"]) == 0
    assert "versions left: [1]" in capsys.readouterr().out
    assert [r.version for r in list_versions(repo, "osnet_x0_25")] == [1]
    (retired,) = (repo / "osnet_x0_25").glob(".retired-2-*")
    assert json.loads((retired / "manifest.json").read_text())["source"] == "s2"  # kept for audit
    assert add_version(repo, "osnet_x0_25", make_reid(tmp_path / "r3.onnx", seed=3), source="s3").name == "3"
    assert main(["retire", "--repo", str(repo), "--model", "osnet_x0_25", "--version", "7"]) == 2
    assert "has no version 7" in capsys.readouterr().err


def test_list_versions_and_verify(repo, det, tmp_path):
    add_version(repo, "yolov8n", det, source="a")
    add_version(repo, "osnet_x0_25", make_reid(tmp_path / "r.onnx"), source="b")
    rows = list_versions(repo, verify=True)
    assert [(r.model, r.version, r.sha256_ok) for r in rows] == [("osnet_x0_25", 1, True), ("yolov8n", 1, True)]
    assert rows[1].size_bytes > det.stat().st_size
    with open(repo / "yolov8n" / "1" / "model.onnx", "r+b") as f:  # bit rot / tampering
        f.seek(100)
        f.write(b"\x00\x01")
    assert [r.sha256_ok for r in list_versions(repo, "yolov8n", verify=True)] == [False]


def test_cli_add_list_and_reject(repo, det, tmp_path, capsys):
    assert main(["add", "--repo", str(repo), "--model", "yolov8n", "--onnx", str(det), "--source", "cli"]) == 0
    out = capsys.readouterr().out
    assert "added yolov8n version 1" in out and "80 classes" in out
    bad = make_detector(tmp_path / "bad.onnx", batch=1)
    assert main(["add", "--repo", str(repo), "--model", "yolov8n", "--onnx", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "rejected, repository unchanged" in err and "fixed batch dimension 1" in err
    assert main(["list", "--repo", str(repo), "--model", "yolov8n", "--verify"]) == 0
    out = capsys.readouterr().out
    sha = hashlib.sha256(det.read_bytes()).hexdigest()[:12]
    assert sha in out and "cli" in out and "ok" in out
    assert main(["list", "--repo", str(repo), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert rows[0]["manifest"]["sha256"].startswith(sha)


def test_cli_plan_goes_into_the_same_version(repo, det, tmp_path):
    plan = tmp_path / "y.engine"
    plan.write_bytes(b"engine bytes")
    assert main(["add", "--repo", str(repo), "--model", "yolov8n", "--onnx", str(det), "--plan", str(plan),
                 "--precision", "fp16", "--source", "t"]) == 0
    m = json.loads((repo / "yolov8n" / "1" / "manifest.json").read_text())
    assert m["files"]["model.plan"]["sha256"] == hashlib.sha256(b"engine bytes").hexdigest()
    assert (repo / "yolov8n" / "1" / "model.plan").read_bytes() == b"engine bytes"


def test_cli_unreachable_server(capsys):
    from launchers.triton import TritonPorts

    url = f"localhost:{TritonPorts.free().grpc}"
    assert main(["load", "--model", "yolov8n", "--url", url]) == 2
    assert f"Triton at {url} is unreachable" in capsys.readouterr().err
    assert main(["unload", "--model", "yolov8n", "--url", url]) == 2


# ----------------------------------------------------------------------------- live Triton (explicit mode)

ADAPTER = b"from serving.onnx_model import TritonPythonModel  # noqa: F401\n"


@pytest.fixture
def reid_triton(tmp_path):
    """A private CPU Triton serving osnet_x0_25 v1 (a tiny stand-in ONNX) from a temp repository."""
    from launchers.triton import TritonPorts, start_triton

    r = tmp_path / "model_repository"
    shutil.copytree(REAL_REPO / "osnet_x0_25", r / "osnet_x0_25", ignore=shutil.ignore_patterns("[0-9]*", "__pycache__"))
    add_version(r, "osnet_x0_25", make_reid(tmp_path / "v1.onnx", seed=1), source="v1", extra_files={"model.py": ADAPTER})
    server = start_triton(TritonPorts.free(), model_repository=r, models=("osnet_x0_25",),
                          log_path=tmp_path / "triton.log")
    yield r, server
    server.stop()


def _expected(seed: int) -> np.ndarray:
    # all-ones input -> pooled [1, 1, 1] -> column sums of W
    return np.random.default_rng(seed).normal(0, 1, (3, 512)).astype(np.float32).sum(0)


def _ready(url: str) -> list[int]:
    return sorted(v for (m, v), s in model_repo.server_states(url).items() if m == "osnet_x0_25" and s == "READY")


def _infer(client) -> np.ndarray:
    import tritonclient.grpc as grpcclient

    x = grpcclient.InferInput("images", [1, 3, 256, 128], "FP32")
    x.set_data_from_numpy(np.ones((1, 3, 256, 128), np.float32))
    return client.infer("osnet_x0_25", [x]).as_numpy("features")[0]


def test_add_load_rollback_unload_on_live_triton(reid_triton, tmp_path, capsys):
    import tritonclient.grpc as grpcclient

    repo, server = reid_triton
    url = server.grpc_url
    client = grpcclient.InferenceServerClient(url)
    v1, v2 = _expected(1), _expected(2)
    np.testing.assert_allclose(_infer(client), v1, rtol=1e-5)

    # add: written to disk, not served until loaded
    assert main(["add", "--repo", str(repo), "--model", "osnet_x0_25", "--onnx",
                 str(make_reid(tmp_path / "v2.onnx", seed=2)), "--source", "v2"]) == 0
    assert (repo / "osnet_x0_25" / "2" / "model.py").read_bytes() == ADAPTER
    assert model_repo.server_states(url) == {("osnet_x0_25", 1): "READY"}
    assert main(["list", "--repo", str(repo), "--model", "osnet_x0_25", "--url", url]) == 0
    out = capsys.readouterr().out
    assert "READY" in out and "not loaded" in out
    np.testing.assert_allclose(_infer(client), v1, rtol=1e-5)

    # load while requests keep coming: every request is answered, by v1 then v2
    seen, failures, stop = [], [], threading.Event()

    def hammer():
        c = grpcclient.InferenceServerClient(url)
        while not stop.is_set():
            try:
                y = _infer(c)
                seen.append(1 if np.allclose(y, v1, rtol=1e-5) else 2 if np.allclose(y, v2, rtol=1e-5) else -1)
            except Exception as e:
                failures.append(repr(e))

    t = threading.Thread(target=hammer)
    t.start()
    try:
        while len(seen) < 3 and not failures:
            threading.Event().wait(0.05)
        assert main(["load", "--model", "osnet_x0_25", "--url", url]) == 0
        n = len(seen)
        while len(seen) < n + 3 and not failures:
            threading.Event().wait(0.05)
    finally:
        stop.set()
        t.join()
    assert "READY versions on" in capsys.readouterr().out
    assert failures == []
    assert -1 not in seen
    assert seen[0] == 1 and seen[-1] == 2
    assert seen == sorted(seen)  # never back to v1 once v2 answered
    assert _ready(url) == [2]  # v1 is UNLOADING or gone

    # roll back by pinning version 1, then unload
    assert main(["load", "--model", "osnet_x0_25", "--version", "1", "--url", url]) == 0
    assert "pinned to version 1" in capsys.readouterr().out
    assert _ready(url) == [1]
    np.testing.assert_allclose(_infer(client), v1, rtol=1e-5)
    # persistent roll back: retire v2, then a plain load (config.pbtxt's policy: latest) serves v1
    assert main(["retire", "--repo", str(repo), "--model", "osnet_x0_25", "--version", "2"]) == 0
    assert main(["load", "--model", "osnet_x0_25", "--url", url]) == 0
    assert _ready(url) == [1]
    np.testing.assert_allclose(_infer(client), v1, rtol=1e-5)
    assert main(["unload", "--model", "osnet_x0_25", "--url", url]) == 0
    assert not client.is_model_ready("osnet_x0_25")


def test_load_on_a_server_not_in_explicit_mode_says_so(tmp_path, capsys):
    from launchers.triton import TritonPorts, start_triton

    (tmp_path / "repo").mkdir()
    server = start_triton(TritonPorts.free(), model_repository=tmp_path / "repo", models=(), config_name=None,
                          log_path=tmp_path / "triton.log", extra_args=("--model-control-mode=none",))
    try:
        assert main(["load", "--model", "yolov8n", "--url", server.grpc_url]) == 2
    finally:
        server.stop()
    err = capsys.readouterr().err
    assert "refused to load 'yolov8n'" in err and "--model-control-mode=explicit" in err
