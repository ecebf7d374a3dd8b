"""Pre/post-processing units (no server): letterbox, decode, NMS, rescale, crops."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from serving import preprocess
from serving.postprocess import NmsConfig, decode_yolov8, l2_normalise, nms, reid_crops, to_original
from serving.preprocess import (
    MAX_ASPECT,
    MIN_SIDE,
    ImageDecodeError,
    ImageSizeError,
    Letterbox,
    check_image_size,
    decode_image,
    header_size,
    letterbox,
)


def test_letterbox_round_trip_maps_boxes_back_to_original_pixels():
    img = np.zeros((360, 640, 3), np.uint8)
    img[100:200, 300:340] = 255  # a white box
    x, lb = letterbox(img)
    assert x.shape == (3, 640, 640) and x.dtype == np.float32
    assert lb == Letterbox(1.0, 0.0, 140.0, 640, 360)
    assert x[:, 140 + 150, 320].min() == pytest.approx(1.0) and x[:, 10, 10].max() == pytest.approx(114 / 255)
    box = np.array([[300, 240, 340, 340]], np.float32)  # letterboxed coordinates of the white box
    np.testing.assert_allclose(to_original(box, lb), [[300, 100, 340, 200]])
    assert Letterbox.from_array(lb.as_array()) == lb


def test_letterbox_scales_large_images_and_clips_boxes():
    _, lb = letterbox(np.zeros((1080, 1920, 3), np.uint8))
    assert lb.scale == pytest.approx(1 / 3) and lb.pad_y == 140
    out = to_original(np.array([[-10, 100, 700, 700]], np.float32), lb)
    assert out[0, 0] == 0 and out[0, 2] == 1920 and out[0, 3] == 1080


def test_decode_image_errors_name_the_problem():
    with pytest.raises(ImageDecodeError, match="empty"):
        decode_image(b"")
    with pytest.raises(ImageDecodeError, match="cannot decode"):
        decode_image(b"GIF89a-not-really")
    with pytest.raises(ValueError, match="HxWx3"):
        letterbox(np.zeros((10, 10), np.uint8))


def _encode(shape, ext, params=()):
    rng = np.random.default_rng(sum(shape))
    ok, buf = cv2.imencode(ext, rng.integers(0, 256, (*shape, 3), dtype=np.uint8), list(params))
    assert ok
    return buf.reshape(-1)


@pytest.mark.parametrize("shape", [(1, 3000), (3000, 1), (15, 640), (20, 700), (700, 20)])
@pytest.mark.parametrize("ext", [".png", ".jpg", ".bmp"])
def test_degenerate_images_are_refused_with_shape_and_limit(shape, ext):
    with pytest.raises(ImageSizeError, match=rf"image of {shape[1]}x{shape[0]} px \(width x height.*\): degenerate, "
                                             rf"(each side must be >= {MIN_SIDE} px|aspect ratio \d+:1 exceeds 32:1)"):
        decode_image(_encode(shape, ext))
    assert issubclass(ImageSizeError, ImageDecodeError)  # callers that catch decode errors catch these too


def test_huge_images_are_refused_from_the_header_before_decoding(monkeypatch):
    data = _encode((17000, 600), ".jpg")
    monkeypatch.setattr(preprocess.cv2, "imdecode", lambda *a: pytest.fail("decoded a huge image"))
    with pytest.raises(ImageSizeError, match=r"image of 600x17000 px \(width x height, from its header\): too large, "
                                             r"limits are 16384 px a side and 50 megapixels \(10.2 MP sent\)"):
        decode_image(data)
    with pytest.raises(ImageSizeError, match=r"7000x8000 px .*too large.*56.0 MP sent"):
        check_image_size(8000, 7000)
    check_image_size(4320, 7680)  # 8K UHD is served


@pytest.mark.parametrize("shape, ext, params", [
    ((37, 1001), ".png", ()), ((480, 640), ".jpg", ()), ((333, 222), ".jpg", (cv2.IMWRITE_JPEG_PROGRESSIVE, 1)),
    ((17, 19), ".jpg", (cv2.IMWRITE_JPEG_QUALITY, 30)),
])
def test_header_size_matches_the_decoded_size(shape, ext, params):
    data = _encode(shape, ext, params)
    assert header_size(data) == shape == decode_image(data).shape[:2]
    assert header_size(np.frombuffer(b"GIF89a" + bytes(40), np.uint8)) is None
    assert header_size(data[:3]) is None


def test_the_most_extreme_accepted_sizes_letterbox():
    for h, w in [(MIN_SIDE, int(MIN_SIDE * MAX_ASPECT)), (int(MIN_SIDE * MAX_ASPECT), MIN_SIDE), (MIN_SIDE, MIN_SIDE)]:
        img = decode_image(_encode((h, w), ".png"))
        x, lb = letterbox(img)
        assert x.shape == (3, 640, 640) and (lb.orig_w, lb.orig_h) == (w, h)


def _pred(boxes_cxcywh, class_scores, anchors=8400):
    """Build a raw YOLOv8 output [4+C, A] with the given candidates in the first columns."""
    c = len(class_scores[0])
    pred = np.zeros((4 + c, anchors), np.float32)
    for j, (b, s) in enumerate(zip(boxes_cxcywh, class_scores)):
        pred[:4, j] = b
        pred[4:, j] = s
    return pred


def test_decode_keeps_best_of_overlapping_same_class_boxes_only():
    pred = _pred([(100, 100, 50, 100), (102, 101, 50, 100), (102, 101, 50, 100), (400, 300, 60, 60)],
                 [(0.9, 0.0), (0.8, 0.0), (0.0, 0.7), (0.3, 0.1)])
    xyxy, scores, cls = decode_yolov8(pred, NmsConfig(conf_threshold=0.25, iou_threshold=0.45))
    # the 0.8 person box is suppressed by the 0.9 one; the class-1 box at the same place survives
    np.testing.assert_allclose(scores, [0.9, 0.7, 0.3])
    np.testing.assert_array_equal(cls, [0, 1, 0])
    np.testing.assert_allclose(xyxy[0], [75, 50, 125, 150])


def test_decode_empty_and_threshold():
    xyxy, scores, cls = decode_yolov8(np.zeros((84, 8400), np.float32))
    assert xyxy.shape == (0, 4) and scores.shape == (0,) and cls.shape == (0,)
    with pytest.raises(ValueError, match="4\\+classes"):
        decode_yolov8(np.zeros((3, 10), np.float32))


def test_nms_matches_bruteforce_on_random_boxes():
    rng = np.random.default_rng(1)
    xy = rng.uniform(0, 500, (300, 2)).astype(np.float32)
    wh = rng.uniform(10, 120, (300, 2)).astype(np.float32)
    boxes = np.concatenate([xy, xy + wh], 1)
    scores = rng.uniform(0, 1, 300).astype(np.float32)
    cls = rng.integers(0, 3, 300)
    keep = nms(boxes, scores, 0.5, cls)

    def iou(a, b):
        w = max(0, min(a[2], b[2]) - max(a[0], b[0]))
        h = max(0, min(a[3], b[3]) - max(a[1], b[1]))
        return w * h / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - w * h)

    expected = []
    for i in np.argsort(-scores, kind="stable"):
        if all(cls[k] != cls[i] or iou(boxes[k], boxes[i]) <= 0.5 for k in expected):
            expected.append(i)
    np.testing.assert_array_equal(keep, expected)


def test_reid_crops_shape_normalisation_and_degenerate_boxes():
    img = np.zeros((100, 80, 3), np.uint8)
    img[:, :40] = (0, 0, 255)  # red (BGR) left half
    crops = reid_crops(img, np.array([[0, 0, 40, 100], [70, 90, 70, 90], [-5, -5, 500, 500]], np.float32))
    assert crops.shape == (3, 3, 256, 128) and crops.dtype == np.float32
    red = (255 - 0.485 * 255) / (0.229 * 255)
    assert crops[0, 0].mean() == pytest.approx(red, rel=1e-3)  # channel 0 is R after BGR->RGB
    assert np.isfinite(crops).all()
    assert reid_crops(img, np.zeros((0, 4), np.float32)).shape == (0, 3, 256, 128)


def test_l2_normalise_handles_zero_rows():
    v = l2_normalise(np.array([[3, 4], [0, 0]], np.float32))
    np.testing.assert_allclose(v, [[0.6, 0.8], [0, 0]])


def test_reid_crops_are_the_resized_rgb_crops_imagenet_normalised():
    """The vectorised crop normalisation equals the textbook one, crop by crop."""
    from serving.postprocess import REID_SIZE

    img = np.random.default_rng(3).integers(0, 256, (360, 640, 3), dtype=np.uint8)
    boxes = np.array([[10.2, 20.7, 90.4, 300.1], [600, 100, 700, 400], [5, 5, 5, 5]], np.float32)  # inside, clipped, empty
    got = reid_crops(img, boxes)
    assert got.shape == (3, 3, REID_SIZE[1], REID_SIZE[0]) and got.dtype == np.float32
    mean, std = np.array([0.485, 0.456, 0.406]) * 255, np.array([0.229, 0.224, 0.225]) * 255
    for k, (x1, y1, x2, y2) in enumerate(np.clip(np.round(boxes).astype(int), 0, [639, 359, 639, 359])):
        crop = cv2.resize(img[y1:max(y2, y1 + 1), x1:max(x2, x1 + 1)], REID_SIZE, interpolation=cv2.INTER_LINEAR)
        want = ((crop[:, :, ::-1] - mean) / std).transpose(2, 0, 1)
        np.testing.assert_allclose(got[k], want, atol=1e-5)
