"""Frames of the simulated store: people and carts drawn so a detector could learn them.

    for frame, ts, boxes, class_ids, ids in render_camera("cam-checkout-1", seconds=10, fps=15, seed=7):
        ...                                    # BGR uint8 [360, 640, 3], ground truth per frame
    render_camera_video("cam-checkout-1", "data/demo/cam-checkout-1.mp4", seconds=20)   # + .truth.json
    for frame, boxes, class_ids in training_samples(1000, seed=0):   # varied light/background/occlusion
        ...

People: legs, torso, arms, head with hair, clothing colours per customer, size by
perspective (feet on the floor point, height from the camera's pixels per metre), a
walking stride while moving. Carts: a wire basket on wheels with a handle. Background:
floor tiles, back wall, shelving with products, checkout counters, the door. Ground-truth
boxes are the simulator's (clipped to the frame), class 0 person, 1 cart.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import cv2
import numpy as np

from analytics.records import iso_utc, parse_iso_utc
from simulator import world as W
from simulator.agents import Store, positions, simulate
from simulator.camera import PERSON, objects_in_view

CLOTHES = np.array([[40, 40, 200], [200, 80, 40], [60, 160, 60], [30, 30, 30], [220, 220, 220], [40, 140, 220],
                    [140, 60, 140], [90, 90, 160], [20, 100, 160], [160, 160, 40], [110, 70, 40], [200, 150, 120]],
                   np.uint8)
TROUSERS = np.array([[60, 40, 30], [40, 40, 40], [120, 90, 60], [80, 70, 110], [30, 30, 70], [150, 150, 150]], np.uint8)
SKIN = np.array([[140, 180, 225], [110, 150, 200], [80, 120, 170], [60, 90, 130], [170, 200, 235]], np.uint8)
HAIR = np.array([[20, 20, 20], [30, 50, 90], [60, 110, 170], [150, 150, 150], [20, 30, 60]], np.uint8)
DEFAULT_RENDER_START = "2024-01-15T18:30:00Z"  # evening rush: queues at every till


@dataclass(frozen=True)
class Look:
    """Scene appearance (varied for training data)."""

    floor: tuple[int, int, int] = (175, 185, 190)
    wall: tuple[int, int, int] = (200, 210, 215)
    shelf: tuple[int, int, int] = (90, 100, 110)
    brightness: float = 1.0
    tint: tuple[float, float, float] = (1.0, 1.0, 1.0)
    noise: float = 2.0


def _poly(cam: W.Camera, rect, lift_m: float = 0.0) -> np.ndarray:
    """Image polygon of a floor rectangle, optionally lifted ``lift_m`` metres (approximate:
    shifted up by the local pixels-per-metre)."""
    p = W.rect_polygon(rect)
    q = cam.project(p)
    if lift_m:
        q[:, 1] -= lift_m * cam.px_per_m(p)
    return np.round(q).astype(np.int32)


def _box3d(img, cam, rect, height_m, top, side):
    """A block standing on the floor: side face then top face."""
    base, lid = _poly(cam, rect), _poly(cam, rect, height_m)
    near = [2, 3]  # vertices on the near (bottom of image) edge of the floor rectangle
    face = np.array([base[near[0]], base[near[1]], lid[near[1]], lid[near[0]]], np.int32)
    cv2.fillPoly(img, [face], side, cv2.LINE_AA)
    cv2.fillPoly(img, [lid], top, cv2.LINE_AA)
    return face, lid


def background(cam: W.Camera, look: Look = Look(), seed: int = 0) -> np.ndarray:
    w, h = W.IMAGE_SIZE
    rng = np.random.default_rng(seed)
    img = np.empty((h, w, 3), np.uint8)
    img[:] = look.wall
    x0, y0, x1, y1 = cam.floor_rect
    cv2.fillPoly(img, [_poly(cam, (x0 - 20, y0, x1 + 20, y1 + 5))], look.floor, cv2.LINE_AA)
    line = tuple(int(c * 0.85) for c in look.floor)
    for gx in np.arange(math.floor(x0), x1 + 1, 1.0):  # floor tiles
        a, b = cam.project(np.array([[gx, y0], [gx, y1 + 5]])).astype(int)
        cv2.line(img, tuple(a), tuple(b), line, 1, cv2.LINE_AA)
    for gy in np.arange(math.floor(y0), y1 + 5, 1.0):
        a, b = cam.project(np.array([[x0 - 20, gy], [x1 + 20, gy]])).astype(int)
        cv2.line(img, tuple(a), tuple(b), line, 1, cv2.LINE_AA)
    # shelving between and beside the aisles, with product rows
    for sx0, sx1 in ((10.0, 11.2), (16.8, 18.2), (23.8, 25.2), (30.8, 32.0)):
        face, _ = _box3d(img, cam, (sx0, 2.0, sx1, 11.8), 1.7, look.shelf, tuple(int(c * 0.7) for c in look.shelf))
        for k in range(1, 5):
            y = int(face[3][1] + (face[0][1] - face[3][1]) * k / 5)
            cv2.line(img, (int(face[0][0]), y), (int(face[1][0]), y), (60, 60, 60), 1)
        for _ in range(40):
            u = rng.uniform(0, 1)
            px = int(face[0][0] + (face[1][0] - face[0][0]) * u)
            py = int(face[3][1] + (face[0][1] - face[3][1]) * rng.uniform(0.05, 0.95))
            cv2.rectangle(img, (px, py), (px + 3, py + 4), tuple(int(c) for c in rng.integers(40, 255, 3)), -1)
    for _lid, c in W.LANE_X.items():  # checkout counters with a conveyor
        _box3d(img, cam, (c + LANE_COUNTER[0], W.SERVICE_Y[0] - 0.5, c + LANE_COUNTER[1], W.SERVICE_Y[1]), 0.9,
               (70, 70, 70), (120, 110, 100))
    # the door: a mat and a frame in the front wall
    cv2.fillPoly(img, [_poly(cam, (W.DOOR_X[0], W.DOOR_Y - 1.2, W.DOOR_X[1], W.DOOR_Y))], (60, 70, 80), cv2.LINE_AA)
    cv2.polylines(img, [_poly(cam, (W.DOOR_X[0], W.DOOR_Y, W.DOOR_X[1], W.DOOR_Y + 0.05), 2.2)], True,
                  (50, 50, 50), 2, cv2.LINE_AA)
    return _light(img, look, rng)


LANE_COUNTER = (1.3, 2.1)  # counter beside the lane, metres from the lane's centre line


def _light(img: np.ndarray, look: Look, rng: np.random.Generator) -> np.ndarray:
    f = np.float32(look.brightness) * np.array(look.tint, np.float32)
    out = img.astype(np.float32) * f
    if look.noise:
        out += rng.normal(0, look.noise, img.shape).astype(np.float32)
    return np.clip(out, 0, 255).astype(np.uint8)


def draw_person(img, x1, y1, x2, y2, colour_seed: int, phase: float, moving: bool) -> None:
    """A figure standing in the (unclipped) box: legs, torso, arms, head with hair."""
    h = y2 - y1
    cx = (x1 + x2) / 2
    r = np.random.default_rng(colour_seed)
    shirt = tuple(int(c) for c in CLOTHES[r.integers(len(CLOTHES))])
    trousers = tuple(int(c) for c in TROUSERS[r.integers(len(TROUSERS))])
    skin = tuple(int(c) for c in SKIN[r.integers(len(SKIN))])
    hair = tuple(int(c) for c in HAIR[r.integers(len(HAIR))])
    build = r.uniform(0.85, 1.15)
    lw = max(int(0.09 * h * build), 1)
    stride = 0.09 * h * math.sin(phase) if moving else 0.0
    hip = (cx, y1 + 0.52 * h)
    for sgn in (-1, 1):  # legs
        foot = (cx + sgn * 0.06 * h + sgn * stride, y2)
        cv2.line(img, (int(hip[0] + sgn * 0.04 * h), int(hip[1])), (int(foot[0]), int(foot[1]) - lw // 2),
                 trousers, lw, cv2.LINE_AA)
    tw = 0.3 * h * build
    torso = np.array([[cx - tw / 2, y1 + 0.2 * h], [cx + tw / 2, y1 + 0.2 * h], [cx + tw * 0.42, y1 + 0.55 * h],
                      [cx - tw * 0.42, y1 + 0.55 * h]], np.int32)
    cv2.fillPoly(img, [torso], shirt, cv2.LINE_AA)
    aw = max(int(0.06 * h), 1)
    for sgn in (-1, 1):  # arms swing against the legs
        sh = (int(cx + sgn * tw / 2), int(y1 + 0.23 * h))
        hand = (int(cx + sgn * (tw / 2 + 0.03 * h) - sgn * stride * 0.6), int(y1 + 0.52 * h))
        cv2.line(img, sh, hand, shirt, aw, cv2.LINE_AA)
        cv2.circle(img, hand, max(aw // 2, 1), skin, -1, cv2.LINE_AA)
    hr = max(int(0.085 * h), 2)
    head = (int(cx), int(y1 + 0.1 * h))
    cv2.circle(img, head, hr, skin, -1, cv2.LINE_AA)
    cv2.ellipse(img, head, (hr, hr), 0, 180, 360, hair, -1, cv2.LINE_AA)


def draw_cart(img, x1, y1, x2, y2) -> None:
    """A wire basket on wheels with a handle, in the (unclipped) box."""
    w, h = x2 - x1, y2 - y1
    top, bot = y1 + 0.2 * h, y1 + 0.75 * h
    basket = np.array([[x1, top], [x2, top], [x2 - 0.12 * w, bot], [x1 + 0.12 * w, bot]], np.int32)
    cv2.fillPoly(img, [basket], (150, 150, 155), cv2.LINE_AA)
    for k in range(1, 5):  # wires
        x = int(x1 + w * k / 5)
        cv2.line(img, (x, int(top)), (int(x1 + 0.12 * w + (w * 0.76) * k / 5), int(bot)), (90, 90, 95), 1)
    cv2.line(img, (int(x1), int(top + 0.35 * (bot - top))), (int(x2), int(top + 0.35 * (bot - top))), (90, 90, 95), 1)
    cv2.polylines(img, [basket], True, (60, 60, 65), max(1, int(w / 25)), cv2.LINE_AA)
    cv2.line(img, (int(x1), int(top)), (int(x1 - 0.1 * w), int(y1)), (40, 40, 200), max(1, int(w / 15)), cv2.LINE_AA)
    r = max(int(0.09 * h), 2)
    for x in (x1 + 0.18 * w, x2 - 0.18 * w):
        cv2.circle(img, (int(x), int(y2 - r)), r, (30, 30, 30), -1, cv2.LINE_AA)
    cv2.line(img, (int(x1 + 0.15 * w), int(bot)), (int(x1 + 0.18 * w), int(y2 - r)), (60, 60, 65), 1)
    cv2.line(img, (int(x2 - 0.15 * w), int(bot)), (int(x2 - 0.18 * w), int(y2 - r)), (60, 60, 65), 1)


def frames_at(store: Store, cam: W.Camera, times: np.ndarray, bg: np.ndarray, look: Look | None = None,
              rng: np.random.Generator | None = None) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
    """(frame, boxes float32[K, 4] clipped, class_ids int32[K], identity ids int64[K]) per time."""
    pos = positions(store, times)
    obj = objects_in_view(store, cam, pos)
    full = obj.full
    moving = pos.moving[obj.src] if len(obj.frame) else np.zeros(0, bool)
    bounds = np.searchsorted(obj.frame, np.arange(len(times) + 1))
    colour = {c.cid: c.colour for c in store.customers}
    for f in range(len(times)):
        a, b = bounds[f], bounds[f + 1]
        img = bg.copy()
        order = a + np.argsort(obj.feet[a:b, 1], kind="stable")  # far (top) first
        for i in order:
            x1, y1, x2, y2 = full[i]
            if obj.cls[i] == PERSON:
                cid = int(obj.truth_id[i])
                draw_person(img, x1, y1, x2, y2, colour[cid], times[f] * 7.0 + cid, bool(moving[i]))
            else:
                draw_cart(img, x1, y1, x2, y2)
        keep = obj.visible[a:b] >= 0.3
        if look is not None and rng is not None:  # light the whole scene, people included
            img = _light(img, look, rng)
        yield img, obj.xyxy[a:b][keep], obj.cls[a:b][keep], obj.truth_id[a:b][keep]


def render_camera(camera_id: str, seconds: float = 10.0, fps: float = 15.0, seed: int = 7,
                  start: str = DEFAULT_RENDER_START, chunk_s: float = 10.0, truth=None):
    """Yield (frame BGR uint8 [360, 640, 3], timestamp, boxes_xyxy float32[K, 4], class_ids int32[K],
    identity ids int64[K]) for ``seconds`` of one camera. ``truth``: a callable
    ``(store) -> Truth`` to also measure the ground truth (``render_camera_video`` uses it)."""
    cam = W.CAMERAS[camera_id]
    t0 = parse_iso_utc(start)
    store = simulate(seed, t0, t0 + seconds)
    tr = truth(store) if truth is not None else None
    bg = background(cam, seed=seed)
    n = int(round(seconds * fps))
    per = max(1, int(chunk_s * fps))
    for f0 in range(0, n, per):
        times = t0 + (f0 + np.arange(min(per, n - f0))) / fps
        if tr is not None:
            tr.add(camera_id, objects_in_view(store, cam, positions(store, times)), times, f0)
        for t, (img, boxes, cls, ids) in zip(times, frames_at(store, cam, times, bg)):
            yield img, float(t), boxes, cls, ids


@dataclass
class RenderResult:
    video_path: Path
    truth_path: Path
    frames: int
    camera_id: str


def render_camera_video(camera_id: str, output: str | Path | None = None, seconds: float = 20.0, fps: float = 15.0,
                        seed: int = 7, start: str = DEFAULT_RENDER_START) -> RenderResult:
    """Write ``output`` (mp4) and ``output`` with ``.truth.json`` (per frame: time, boxes, classes, ids)."""
    out = Path(output or Path("data/demo") / f"{camera_id}.mp4")
    out.parent.mkdir(parents=True, exist_ok=True)
    w, h = W.IMAGE_SIZE
    vw = cv2.VideoWriter(str(out), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
    if not vw.isOpened():
        raise OSError(f"cannot open a video writer for {out}")
    frames = []
    t_start = parse_iso_utc(start)
    from analytics.config import load_store_config
    from simulator.truth import Truth

    cfg = load_store_config(Path(__file__).resolve().parents[1] / "configs" / "store.yaml")
    holder = {}

    def make_truth(store):
        holder["t"] = Truth(store, cfg, [camera_id], fps)
        return holder["t"]

    try:
        for k, (img, t, boxes, cls, ids) in enumerate(render_camera(camera_id, seconds, fps, seed, start,
                                                                    truth=make_truth)):
            vw.write(img)
            frames.append({"frame": k, "t": round(t - t_start, 4), "timestamp": iso_utc(t),
                           "boxes": np.round(boxes, 1).tolist(), "class_ids": cls.tolist(), "ids": ids.tolist()})
    finally:
        vw.release()
    truth = out.with_suffix(".truth.json")
    summary = holder["t"].to_json() if "t" in holder else {}
    if camera_id != "cam-entrance-1":
        summary.pop("footfall", None)  # only the entrance camera sees the door
    summary.pop("customers", None)
    truth.write_text(json.dumps({"camera_id": camera_id, "fps": fps, "seed": seed, "start": start,
                                 "class_names": {"0": "person", "1": "cart"}, **summary, "frames": frames}))
    return RenderResult(out, truth, len(frames), camera_id)


def training_samples(n: int, seed: int = 0, cameras: list[str] | None = None, hours: tuple[int, int] = (11, 19)
                     ) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """``n`` varied frames for detector training: (BGR uint8 [360, 640, 3], boxes_xyxy float32[K, 4],
    class_ids int32[K]); deterministic for a seed. Varies camera, time (crowding and
    occlusion), floor/wall/shelf colours, brightness, colour cast and sensor noise."""
    rng = np.random.default_rng(seed)
    cams = cameras or list(W.CAMERAS)
    day = parse_iso_utc("2024-01-15T00:00:00Z")
    store = simulate(seed, day + hours[0] * 3600, day + hours[1] * 3600, warmup_s=1200)
    for _i in range(n):
        cam = W.CAMERAS[cams[int(rng.integers(len(cams)))]]
        look = Look(floor=tuple(int(c) for c in rng.integers(120, 230, 3)),
                    wall=tuple(int(c) for c in rng.integers(120, 240, 3)),
                    shelf=tuple(int(c) for c in rng.integers(50, 160, 3)),
                    brightness=float(rng.uniform(0.55, 1.35)),
                    tint=tuple(float(v) for v in rng.uniform(0.85, 1.15, 3)), noise=float(rng.uniform(0, 6)))
        bg = background(cam, Look(look.floor, look.wall, look.shelf, 1.0, (1.0, 1.0, 1.0), 0.0),
                        seed=int(rng.integers(1 << 30)))
        t = rng.uniform(day + hours[0] * 3600, day + hours[1] * 3600)
        img, boxes, cls, _ = next(frames_at(store, cam, np.array([t]), bg, look, rng))
        yield img, boxes.astype(np.float32), cls.astype(np.int32)


def training_frames(count: int, seed: int = 0, **kw) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """``training_samples`` under the name the detector training script uses."""
    return training_samples(count, seed, **kw)
