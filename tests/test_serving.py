"""The serving foundation against a real Triton server (fixtures start it).

- the ensemble's outputs (names, dtypes, shapes, person rows embedded, others zero) on a
  rendered store frame where the installed demo detector finds people;
- decode/NMS parity: a real trained YOLOv8 finds the person in ``camera()`` through
  Triton exactly as an independent NumPy reference on direct ONNX Runtime output does;
- dynamic batching seen in Triton's statistics;
- bad input (corrupt, empty, degenerate or huge images) gets a clear per-request error and
  the server stays healthy.
"""
from __future__ import annotations

import concurrent.futures as cf

import cv2
import numpy as np
import onnxruntime as ort
import pytest
import skimage.data
import tritonclient.grpc as grpcclient
from tritonclient.utils import InferenceServerException

from serving.preprocess import decode_image, letterbox

OUTPUTS = ("boxes", "scores", "class_ids", "class_names", "embeddings")


def jpeg(image_bgr: np.ndarray, quality: int = 90) -> np.ndarray:
    ok, buf = cv2.imencode(".jpg", image_bgr, [cv2.IMWRITE_JPEG_QUALITY, quality])
    assert ok
    return buf.reshape(-1)


def infer(url: str, data: np.ndarray, dtype: str = "UINT8"):
    client = grpcclient.InferenceServerClient(url)
    inp = grpcclient.InferInput("image", list(data.shape), dtype)
    inp.set_data_from_numpy(data)
    r = client.infer("retail_pipeline", [inp], outputs=[grpcclient.InferRequestedOutput(n) for n in OUTPUTS])
    return {n: r.as_numpy(n) for n in OUTPUTS}


@pytest.fixture(scope="module")
def camera_bgr():
    return cv2.cvtColor(skimage.data.camera(), cv2.COLOR_GRAY2BGR)


def reference_detections(onnx_path, image_bgr, conf=0.25, iou=0.45):
    """Independent reference: ONNX Runtime + a plain per-class, per-pair NMS written from the paper's definition."""
    x, lb = letterbox(image_bgr)
    pred = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"]).run(None, {"images": x[None]})[0][0]
    dets = []
    for a in range(pred.shape[1]):
        c = int(np.argmax(pred[4:, a]))
        s = float(pred[4 + c, a])
        if s > conf:
            cx, cy, w, h = (float(v) for v in pred[:4, a])
            dets.append([s, c, cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2])
    dets.sort(key=lambda d: -d[0])

    def iou_fn(p, q):
        ix = max(0.0, min(p[4], q[4]) - max(p[2], q[2]))
        iy = max(0.0, min(p[5], q[5]) - max(p[3], q[3]))
        inter = ix * iy
        return inter / ((p[4] - p[2]) * (p[5] - p[3]) + (q[4] - q[2]) * (q[5] - q[3]) - inter)

    kept = []
    for d in dets:
        if all(k[1] != d[1] or iou_fn(k, d) <= iou for k in kept):
            kept.append(d)
    out = []
    for s, c, x1, y1, x2, y2 in kept:
        bx = [(x1 - lb.pad_x) / lb.scale, (y1 - lb.pad_y) / lb.scale, (x2 - lb.pad_x) / lb.scale, (y2 - lb.pad_y) / lb.scale]
        bx = [min(max(bx[0], 0), lb.orig_w), min(max(bx[1], 0), lb.orig_h), min(max(bx[2], 0), lb.orig_w), min(max(bx[3], 0), lb.orig_h)]
        out.append((s, c, bx))
    return out


def _require_demo_detector() -> None:
    from clients.demo import detector_source

    source, _ = detector_source()
    if "demo detector" not in source:
        pytest.skip(f"newest yolov8n is not the trained demo detector ({source!r}): rendered frames need it")


def test_ensemble_outputs_on_a_store_frame(triton_server):
    """Rendered checkout-camera frames at the evening rush (as benchmarks/perf.py's store frames):
    the installed demo detector finds the people, each person row has a unit-norm 512-d
    embedding, every other row (the cart) an all-zero one."""
    from benchmarks.perf import STORE_CAMERA, STORE_START
    from simulator.render import render_camera

    _require_demo_detector()
    others = 0
    frames = list(render_camera(STORE_CAMERA, seconds=12.0, fps=0.25, start=STORE_START))  # t = 0, 4, 8 s
    assert len(frames) == 3
    for k, (img, _t, _boxes, cls, _ids) in enumerate(frames):
        assert int((cls == 0).sum()) >= 2, f"frame {k}: the clip should show people"
        out = infer(triton_server.grpc_url, jpeg(img))
        n = len(out["scores"])
        assert out["boxes"].shape == (n, 4) and out["boxes"].dtype == np.float32
        assert out["scores"].dtype == np.float32 and out["class_ids"].shape == (n,) and out["class_ids"].dtype == np.int32
        assert out["class_names"].shape == (n,)
        assert out["embeddings"].shape == (n, 512) and out["embeddings"].dtype == np.float32
        person = np.array([c == b"person" for c in out["class_names"]], bool)
        assert person.sum() >= 1, f"frame {k}: no person found ({out['class_names']})"
        np.testing.assert_allclose(np.linalg.norm(out["embeddings"][person], axis=1), 1.0, atol=1e-4)
        assert not out["embeddings"][~person].any(), f"frame {k}: non-person rows must not be embedded"
        boxes = out["boxes"]
        assert (boxes[:, 2] > boxes[:, 0]).all() and (boxes[:, 3] > boxes[:, 1]).all()
        h, w = img.shape[:2]
        assert (boxes >= 0).all() and (boxes[:, [0, 2]] <= w).all() and (boxes[:, [1, 3]] <= h).all()
        others += int((~person).sum())
    assert others >= 1, "the cart at the till should be detected in one of the frames (non-person rows checked)"
    meta = grpcclient.InferenceServerClient(triton_server.grpc_url).get_model_metadata("retail_pipeline")
    assert [i.name for i in meta.inputs] == ["image"]
    assert {o.name for o in meta.outputs} == set(OUTPUTS)


def test_trained_detector_finds_the_person_like_the_reference(trained_triton, trained_yolo_onnx, camera_bgr):
    data = jpeg(camera_bgr, quality=95)
    decoded = decode_image(data.tobytes())  # the server sees exactly these pixels
    ref = reference_detections(trained_yolo_onnx, decoded)
    out = infer(trained_triton.grpc_url, data)
    assert len(ref) >= 1, "reference found nobody in camera(): fixture model changed?"
    assert len(out["scores"]) == len(ref)
    order = np.argsort(-out["scores"])
    for (s, c, box), i in zip(ref, order):
        assert out["scores"][i] == pytest.approx(s, abs=1e-4)
        assert int(out["class_ids"][i]) == c
        np.testing.assert_allclose(out["boxes"][i], box, atol=0.5)
    best = order[0]
    assert out["scores"][best] > 0.5
    x1, y1, x2, y2 = out["boxes"][best]
    assert x2 - x1 > 100 and y2 - y1 > 200, "the cameraman is a large box"
    assert out["class_names"][best] in (b"Normal", b"Fall")
    # one unit-norm 512-d re-id vector per person box
    norms = np.linalg.norm(out["embeddings"], axis=1)
    np.testing.assert_allclose(norms, 1.0, atol=1e-4)


def test_reid_embeddings_are_stable_and_discriminative(trained_triton, camera_bgr):
    a = infer(trained_triton.grpc_url, jpeg(camera_bgr))["embeddings"]
    b = infer(trained_triton.grpc_url, jpeg(cv2.flip(camera_bgr, 1)))["embeddings"]
    same = infer(trained_triton.grpc_url, jpeg(camera_bgr))["embeddings"]
    assert len(a) and len(b)
    np.testing.assert_allclose(a[0], same[0], atol=1e-5)  # deterministic
    assert float(a[0] @ b[0]) < 0.9999  # a mirrored person is a different crop


def _osnet_stats(url: str):
    s = grpcclient.InferenceServerClient(url).get_inference_statistics("osnet_x0_25").model_stats[0]
    return s.inference_stats.success.count, s.execution_count  # requests (one per frame, BLS), executions


def test_dynamic_batching_is_observed(triton_server):
    """Crop requests that meet in OSNet's queue share one execution (in the ensemble they come
    from the postprocess instances by BLS; the CPU yolov8n config runs without batching, see
    its cpu.pbtxt)."""
    crops = np.random.default_rng(0).random((1, 3, 256, 128), dtype=np.float32)

    def embed(_):
        inp = grpcclient.InferInput("images", list(crops.shape), "FP32")
        inp.set_data_from_numpy(crops)
        return grpcclient.InferenceServerClient(triton_server.grpc_url).infer("osnet_x0_25", [inp])

    req0, exe0 = _osnet_stats(triton_server.grpc_url)
    with cf.ThreadPoolExecutor(8) as pool:
        outs = list(pool.map(embed, range(48)))
    req1, exe1 = _osnet_stats(triton_server.grpc_url)
    assert all(o.as_numpy("features").shape == (1, 512) for o in outs)
    assert req1 - req0 == 48
    assert exe1 - exe0 < req1 - req0, f"no batching: {exe1 - exe0} executions for {req1 - req0} requests"


def encoded(shape: tuple[int, int], ext: str) -> np.ndarray:
    ok, buf = cv2.imencode(ext, np.full((*shape, 3), 90, np.uint8))
    assert ok
    return buf.reshape(-1)


@pytest.mark.parametrize("payload, dtype, message", [
    (np.frombuffer(b"\xff\xd8\xff\xe0 this is not really a jpeg", np.uint8), "UINT8", "cannot decode"),
    (np.zeros(0, np.uint8), "UINT8", "empty image"),
    # decodable but degenerate: would letterbox to a 0-pixel side (a raw cv2.error before)
    (encoded((1, 3000), ".png"), "UINT8", r"image of 3000x1 px \(width x height.*\): degenerate, each side must be >= 16"),
    (encoded((3000, 1), ".bmp"), "UINT8", r"image of 1x3000 px \(width x height\): degenerate"),  # no header parse
    (encoded((20, 1000), ".jpg"), "UINT8", r"image of 1000x20 px .*aspect ratio 50:1 exceeds 32:1"),
    # decodable but huge: refused from the header, before decoding
    (encoded((17000, 600), ".jpg"), "UINT8", r"image of 600x17000 px .*too large, limits are 16384 px a side"),
], ids=["corrupt", "empty", "1x3000-png", "3000x1-bmp", "aspect-50", "huge-jpeg"])
def test_bad_images_get_a_clear_error_and_server_stays_healthy(triton_server, payload, dtype, message):
    with pytest.raises(InferenceServerException, match=message) as e:
        infer(triton_server.grpc_url, payload, dtype)
    # the client's frame is at fault: INVALID_ARGUMENT (not retried), not INTERNAL
    assert e.value.status() == "StatusCode.INVALID_ARGUMENT", (e.value.status(), e.value.message())
    client = grpcclient.InferenceServerClient(triton_server.grpc_url)
    assert client.is_server_live() and client.is_model_ready("retail_pipeline")
    infer(triton_server.grpc_url, jpeg(np.full((64, 64, 3), 127, np.uint8)))


def test_a_bad_image_fails_only_its_own_request(triton_server, camera_bgr):
    """Concurrent good and degenerate frames: each degenerate one errors, every good one is answered."""
    good, bad = jpeg(camera_bgr), encoded((1, 3000), ".png")

    def one(i):
        try:
            return "ok", len(infer(triton_server.grpc_url, good if i % 2 else bad)["scores"])
        except InferenceServerException as e:
            return "error", str(e)

    with cf.ThreadPoolExecutor(6) as pool:
        results = list(pool.map(one, range(12)))
    assert [r[0] for r in results] == ["error", "ok"] * 6, results
    assert all("degenerate" in r[1] for r in results[::2])


def test_truncated_jpeg_is_an_error_not_a_crash(triton_server, camera_bgr):
    data = jpeg(camera_bgr)[:200]
    with pytest.raises(InferenceServerException):
        infer(triton_server.grpc_url, data)
    assert grpcclient.InferenceServerClient(triton_server.grpc_url).is_server_ready()


@pytest.mark.parametrize("shape, dtype", [([4, 4], "UINT8"), ([16], "FP32")])
def test_wrong_shape_or_dtype_is_rejected_by_triton(triton_server, shape, dtype):
    data = np.zeros(shape, np.float32 if dtype == "FP32" else np.uint8)
    with pytest.raises(InferenceServerException, match="(?i)shape|dims|data.?type|datatype|expected"):
        infer(triton_server.grpc_url, data, dtype)
    assert grpcclient.InferenceServerClient(triton_server.grpc_url).is_server_ready()


def test_demo_detector_finds_the_rendered_people_through_triton(triton_server):
    """Issue 8's detector, as `make demo` serves it: rendered store frames through the ensemble,
    person boxes matched to the simulator's ground truth (IoU >= 0.5)."""
    from clients.demo import detector_source
    from simulator.render import render_camera
    def iou_matrix(a, b):
        lt, rb = np.maximum(a[:, None, :2], b[None, :, :2]), np.minimum(a[:, None, 2:], b[None, :, 2:])
        inter = np.prod(np.clip(rb - lt, 0, None), axis=2)
        area = lambda x: np.prod(x[:, 2:] - x[:, :2], axis=1)  # noqa: E731
        return inter / (area(a)[:, None] + area(b)[None, :] - inter)

    source, _ = detector_source()
    if "demo detector" not in source:
        pytest.skip(f"newest yolov8n is not the trained demo detector ({source!r})")
    tp = n_pred = n_true = 0
    for _k, (img, _, boxes, cls, _) in enumerate(render_camera("cam-checkout-1", seconds=40.0, fps=0.5,
                                                               start="2024-01-15T18:30:00Z")):
        out = infer(triton_server.grpc_url, jpeg(img))
        pred = out["boxes"][[n.decode() == "person" for n in out["class_names"]]]
        true = boxes[cls == 0]
        n_pred, n_true = n_pred + len(pred), n_true + len(true)
        if len(pred) and len(true):
            iou = iou_matrix(true.astype(np.float32), pred.astype(np.float32))
            tp += int(((iou >= 0.5).any(axis=1)).sum())
        assert (out["embeddings"][[n.decode() == "person" for n in out["class_names"]]] != 0).any(axis=1).all()
    assert n_true >= 10, "the clip should show people"
    assert tp / n_true >= 0.9 and tp / max(n_pred, 1) >= 0.85, (tp, n_pred, n_true)
