"""The sample store's floor plan (metres) and its four cameras (floor -> image homographies).

Floor: x to the right (0..40 m), y from the back wall (0) to the front wall (25); the door
is in the front wall at x 2..6. Each camera sees a floor rectangle; its far edge maps to
the top of the 640x360 image (narrower: perspective), its near edge to the bottom.
``configs/store.yaml`` holds the same zones projected into each image (``store_yaml()``
printed them); the simulator's ground truth uses those image polygons too, so truth and
analytics measure the same regions. Each camera's ``floor_points`` (its image-to-floor
calibration) come from its own homography (``floor_points(cam)``) and the ``floor:``
section from the constants here (``floor_yaml()``).
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

IMAGE_SIZE = (640, 360)
PERSON_HEIGHT_M = 1.7
PERSON_WIDTH_M = 0.5
CART_SIZE_M = (0.6, 0.9)  # width, height as seen

FLOOR_SIZE = (40.0, 25.0)  # metres: x 0..40, y 0 (back wall)..25 (front wall)
DOOR_X = (2.0, 6.0)
DOOR_Y = 25.0
OUTSIDE_Y = 27.0  # people appear/disappear here, beyond the door
ENTRANCE_ZONE = (0.5, 16.5, 10.0, 23.5)  # x0, y0, x1, y1
AISLES = {"aisle-1": (11.5, 3.0, 16.5, 11.5), "aisle-2": (18.5, 3.0, 23.5, 11.5),
          "aisle-3": (25.5, 3.0, 30.5, 11.5)}
CROSS_AISLE_Y = 12.3
LANE_X = {"checkout-1": 16.5, "checkout-2": 21.5, "checkout-3": 27.5, "checkout-4": 32.5}
LANE_HALF_W = 1.2
QUEUE_Y = (13.0, 21.0)  # queue zone, back (tail side) to front
SERVICE_Y = (21.0, 23.0)
SLOT_HEAD_Y = 20.4
SLOT_SPACING = 0.8
COUNTER_Y = 22.0
CORRIDOR_Y = 24.2  # paid customers walk to the door along the front
LINE_Y = 24.6  # counting line across the door, just inside


@dataclass(frozen=True)
class Camera:
    camera_id: str
    floor_rect: tuple[float, float, float, float]  # x0, y0 (far), x1, y1 (near)
    H: np.ndarray  # 3x3 floor -> image
    zones: dict  # name -> (kind, floor rect)
    lanes: tuple[str, ...] = ()
    line: tuple | None = None  # ((x0, y), (x1, y)) on the floor

    def project(self, xy: np.ndarray) -> np.ndarray:
        """float[N, 2] floor metres -> float[N, 2] image pixels."""
        p = np.asarray(xy, np.float64).reshape(-1, 2)
        q = p @ self.H[:, :2].T + self.H[:, 2]
        return q[:, :2] / q[:, 2:3]

    def px_per_m(self, xy: np.ndarray) -> np.ndarray:
        """float[N]: image pixels per floor metre (horizontally) at each floor point."""
        p = np.asarray(xy, np.float64).reshape(-1, 2)
        a = self.project(p)
        b = self.project(p + np.array([0.5, 0.0]))
        return np.hypot(*(b - a).T) * 2.0

    def sees(self, xy: np.ndarray) -> np.ndarray:
        p = np.asarray(xy, np.float64).reshape(-1, 2)
        x0, y0, x1, y1 = self.floor_rect
        return (p[:, 0] >= x0) & (p[:, 0] <= x1) & (p[:, 1] >= y0) & (p[:, 1] <= y1)


def _camera(cid, rect, zones, lanes=(), line=None, top=(110, 540), top_y=38, bottom=(0, 640), bottom_y=356):
    x0, y0, x1, y1 = rect
    src = np.float32([[x0, y0], [x1, y0], [x1, y1], [x0, y1]])
    dst = np.float32([[top[0], top_y], [top[1], top_y], [bottom[1], bottom_y], [bottom[0], bottom_y]])
    return Camera(cid, rect, cv2.getPerspectiveTransform(src, dst).astype(np.float64), zones, tuple(lanes), line)


def _lane_zones(lanes):
    z = {}
    for lid in lanes:
        c = LANE_X[lid]
        n = lid.split("-")[1]
        z[f"queue-{n}"] = ("queue", (c - LANE_HALF_W, QUEUE_Y[0], c + LANE_HALF_W, QUEUE_Y[1]))
        z[f"service-{n}"] = ("service", (c - LANE_HALF_W, SERVICE_Y[0], c + LANE_HALF_W, SERVICE_Y[1]))
    return z


CAMERAS: dict[str, Camera] = {c.camera_id: c for c in [
    _camera("cam-entrance-1", (0.0, 15.5, 11.0, 27.5), {"entrance": ("entrance", ENTRANCE_ZONE)},
            line=((1.0, LINE_Y), (7.0, LINE_Y))),
    _camera("cam-aisles-1", (10.5, 1.5, 31.5, 12.5), {k: ("aisle", v) for k, v in AISLES.items()}),
    _camera("cam-checkout-1", (13.5, 12.5, 24.5, 25.0), _lane_zones(["checkout-1", "checkout-2"]),
            lanes=["checkout-1", "checkout-2"]),
    _camera("cam-checkout-2", (24.5, 12.5, 35.5, 25.0), _lane_zones(["checkout-3", "checkout-4"]),
            lanes=["checkout-3", "checkout-4"]),
]}
CAMERA_IDS = list(CAMERAS)


def rect_polygon(rect) -> np.ndarray:
    x0, y0, x1, y1 = rect
    return np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], np.float64)


def image_polygon(cam: Camera, rect) -> np.ndarray:
    """A floor rectangle as an image polygon, clipped to the camera's floor view."""
    x0, y0, x1, y1 = rect
    fx0, fy0, fx1, fy1 = cam.floor_rect
    r = (max(x0, fx0), max(y0, fy0), min(x1, fx1), min(y1, fy1))
    return np.round(cam.project(rect_polygon(r)), 0)


def floor_points(cam: Camera) -> tuple[np.ndarray, np.ndarray]:
    """Calibration pairs for ``cam``: the corners and the centre of its floor view (metres) and
    their image projections (pixels, rounded to 0.1 px as if measured): (image[5, 2], floor[5, 2])."""
    x0, y0, x1, y1 = cam.floor_rect
    floor = np.vstack([rect_polygon(cam.floor_rect), [[(x0 + x1) / 2, (y0 + y1) / 2]]])
    return np.round(cam.project(floor), 1) + 0.0, floor  # + 0.0: no -0.0


def _pts(a: np.ndarray) -> str:
    return "[" + ", ".join(f"[{float(x)!r}, {float(y)!r}]" for x, y in a.tolist()) + "]"


def floor_yaml() -> str:
    """The ``floor:`` section of configs/store.yaml (the plan in metres, its door)."""
    w, h = FLOOR_SIZE
    outline = np.array([[0.0, 0.0], [w, 0.0], [w, h], [0.0, h]])
    door = np.array([[DOOR_X[0], DOOR_Y], [DOOR_X[1], DOOR_Y]])
    return "\n".join([
        "floor:",
        f"  outline: {_pts(outline)}",
        "  doors:",
        f"    main: {{points: {_pts(door)}, in: up}}",
        "  cell_m: 0.5",
    ]) + "\n"


def store_yaml() -> str:
    """The cameras/zones/lines/lanes part of configs/store.yaml (the file adds the rest)."""
    lines = ["cameras:"]
    for cam in CAMERAS.values():
        lines.append(f"  {cam.camera_id}:")
        lines.append(f"    image_size: [{IMAGE_SIZE[0]}, {IMAGE_SIZE[1]}]")
        lines.append("    zones:")
        for name, (kind, rect) in cam.zones.items():
            poly = image_polygon(cam, rect).astype(int).tolist()
            lines.append(f"      {name}: {{kind: {kind}, polygon: {poly}}}")
        if cam.line is not None:
            (a, b) = np.round(cam.project(np.array(cam.line)), 0).astype(int).tolist()
            lines.append("    lines:")
            lines.append(f"      door: {{points: [{a}, {b}], in: up}}")
        if cam.lanes:
            lines.append("    lanes:")
            for lid in cam.lanes:
                n = lid.split("-")[1]
                lines.append(f"      {lid}: {{queue_zone: queue-{n}, service_zone: service-{n}}}")
        image, floor = floor_points(cam)
        lines.append("    floor_points:")
        lines.append(f"      image: {_pts(image)}")
        lines.append(f"      floor: {_pts(floor)}")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(floor_yaml())
    print(store_yaml())
