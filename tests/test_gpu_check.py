"""``make gpu-check`` (modelops/gpu_check.py) against the real local CPU Triton.

On the CPU server every step that needs no GPU runs; the TensorRT check is skipped with
the reason. Failures stop the run and name the step. perf_analyzer runs at one level with a
short window to keep this quick (the GPU host runs 1, 4, 16).
"""
from __future__ import annotations

import json
import socket

import numpy as np
import pytest

from modelops import gpu_check as gc


def _report(out):
    return json.loads((out / "report.json").read_text())


def test_every_step_runs_on_the_cpu_server_and_the_tensorrt_check_says_why_it_skipped(triton_server, tmp_path,
                                                                                      capsys):
    out = tmp_path / "gpu-check"
    rc = gc.main(["--url", triton_server.grpc_url, "--out", str(out), "--frames", "4", "--concurrency", "1",
                  "--window-ms", "800", "--stability", "100"])
    text = capsys.readouterr().out
    assert rc == 0, text
    rep = _report(out)
    assert [s["status"] for s in rep["steps"]] == ["passed"] * 4 and rep["result"] == "passed"
    models = rep["steps"][0]
    assert models["details"]["models"]["yolov8n"]["platform"] == "python"
    [trt] = [c for c in models["checks"] if "TensorRT" in c["check"]]
    assert trt["status"] == "skipped" and "CPU variants" in trt["detail"]
    assert "skipped: yolov8n and osnet_x0_25 run TensorRT plans" in text
    ens = rep["steps"][1]["details"]
    assert sum(ens["persons_per_frame"]) > 0 and ens["frames"] == 4
    parity = rep["steps"][2]["details"]  # the same ONNX on the same CPU: identical
    assert parity["matched_share"] == 1.0 and parity["box_iou"]["min"] > 0.999
    assert parity["embedding_cosine"]["min"] > 0.999
    [level] = rep["steps"][3]["details"]["levels"]
    assert level["concurrency"] == 1 and level["infer_per_s"] > 0
    md = (out / "report.md").read_text()
    assert md.startswith("# gpu-check: passed") and "| 1 models | passed |" in md and "skipped" in md


def test_expecting_tensorrt_on_the_cpu_server_fails_at_step_1(triton_server, tmp_path, capsys):
    out = tmp_path / "o"
    rc = gc.main(["--url", triton_server.grpc_url, "--out", str(out), "--expect", "tensorrt", "--skip-perf"])
    assert rc == 1
    assert "gpu-check FAILED at step 1 (models): yolov8n and osnet_x0_25 run TensorRT plans" in capsys.readouterr().err
    assert [s["status"] for s in _report(out)["steps"]] == ["failed", "not run", "not run", "not run"]


def test_no_server_fails_at_step_1_naming_the_url(tmp_path, capsys):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    rc = gc.main(["--url", f"127.0.0.1:{port}", "--out", str(tmp_path), "--timeout", "1", "--skip-perf"])
    err = capsys.readouterr().err
    assert rc == 1 and f"gpu-check FAILED at step 1 (models): no Triton answering gRPC at 127.0.0.1:{port}" in err


def test_cpu_parity_is_skipped_with_the_reason_without_the_served_onnx(triton_server, tmp_path, capsys):
    rc = gc.main(["--url", triton_server.grpc_url, "--out", str(tmp_path), "--repo", str(tmp_path / "elsewhere"),
                  "--frames", "2", "--skip-perf"])
    assert rc == 0
    steps = _report(tmp_path)["steps"]
    assert [s["status"] for s in steps] == ["passed", "passed", "skipped", "skipped"]
    assert "not found" in steps[2]["checks"][0]["detail"] and "--repo" in steps[2]["checks"][0]["detail"]


class _FakeClient:
    """Answers the ensemble with person rows whose embeddings are not unit-norm."""

    def infer(self, model, inputs, outputs):
        res = {"boxes": np.array([[10, 10, 50, 90]], np.float32), "scores": np.array([0.9], np.float32),
               "class_ids": np.array([0], np.int32), "class_names": np.array([b"person"], object),
               "embeddings": np.full((1, 512), 0.5, np.float32)}
        return type("R", (), {"as_numpy": lambda self, k: res[k]})()


def test_embeddings_that_are_not_unit_norm_fail_step_2(monkeypatch):
    import tritonclient.grpc as grpcclient

    monkeypatch.setattr(grpcclient, "InferInput", lambda *a: type("I", (), {"set_data_from_numpy": lambda s, x: 0})())
    monkeypatch.setattr(grpcclient, "InferRequestedOutput", lambda name: name)
    step = gc.Step(2, "ensemble")
    with pytest.raises(gc.StepFailed, match=r"person embeddings unit-norm: max \|norm - 1\| = 1\.03e\+01"):
        gc.step_ensemble(step, _FakeClient(), [np.zeros((360, 640, 3), np.uint8)], [np.zeros(10, np.uint8)])


def test_match_pairs_boxes_of_the_same_class_best_first():
    s = {"boxes": np.array([[0, 0, 10, 10], [20, 20, 30, 30]], np.float32), "class_ids": np.array([0, 1])}
    c = {"boxes": np.array([[20, 20, 30, 31], [0, 0, 10, 11]], np.float32), "class_ids": np.array([1, 0])}
    assert sorted((i, j) for i, j, _ in gc.match(s, c)) == [(0, 1), (1, 0)]
    c["class_ids"] = np.array([0, 1])  # classes swapped: nothing matches
    assert gc.match(s, c) == []
