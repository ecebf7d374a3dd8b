"""Constant-velocity Kalman filter over many boxes at once.

State per box: position p = (cx, cy, w, h) and velocity v (pixels per second). With a
diagonal process and measurement noise and a measurement of the position only, the four
coordinates are independent, so the 8x8 covariance is four 2x2 blocks
[[p00, p01], [p01, p11]]. Keeping just those three numbers per coordinate turns predict
and update into element-wise array arithmetic over all tracks: no per-track loop, no
batched matrix inverse.

Noise scales with the box size (ByteTrack's 1/20 and 1/160 of the box side per frame),
and the process noise with the elapsed time in frames, so a dropped frame widens the
uncertainty as much as two frames would.
"""
from __future__ import annotations

import numpy as np

STD_POS = 1.0 / 20.0   # measurement and position process noise, fraction of box side
STD_VEL = 1.0 / 160.0  # velocity process noise per frame, fraction of box side
MIN_SIDE = 1.0         # pixels; predictions never shrink a box below this


# Box conversions as one small matrix product each (NumPy's per-call cost dominates at a few
# tracks; strided column slices are the slowest case). Exact: every output is one rounded sum
# of at most two products by 0.5 or 1, the other terms are exact zeros, so the bits equal the
# element-wise (x1 + x2) * 0.5, x2 - x1, cx -/+ max(w, MIN_SIDE) * 0.5.
_X2C = np.array([[0.5, 0.0, -1.0, 0.0],
                 [0.0, 0.5, 0.0, -1.0],
                 [0.5, 0.0, 1.0, 0.0],
                 [0.0, 0.5, 0.0, 1.0]])
_C2X = np.array([[1.0, 0.0, 1.0, 0.0],
                 [0.0, 1.0, 0.0, 1.0],
                 [-0.5, 0.0, 0.5, 0.0],
                 [0.0, -0.5, 0.0, 0.5]])
_LOW = np.array([-np.inf, -np.inf, MIN_SIDE, MIN_SIDE])   # floor of (cx, cy, w, h)
_WHWH = np.array([2, 3, 2, 3])                            # noise scale column per coordinate


def xyxy_to_cxcywh(b: np.ndarray) -> np.ndarray:
    return np.dot(np.asarray(b, np.float64), _X2C)


def cxcywh_to_xyxy(p: np.ndarray) -> np.ndarray:
    return np.dot(np.maximum(p, _LOW), _C2X)


def _scale(p: np.ndarray) -> np.ndarray:
    """Per-coordinate noise scale [T, 4]: width for x and w, height for y and h."""
    return np.maximum(p.take(_WHWH, axis=1), MIN_SIDE)


def initiate(z: np.ndarray, frame_rate: float):
    """New states from measurements z [K, 4] (cx, cy, w, h): zero velocity, wide velocity prior."""
    s = _scale(z)
    p00 = (2.0 * STD_POS * s) ** 2
    p11 = (10.0 * STD_VEL * frame_rate * s) ** 2
    return z.astype(np.float64, copy=True), np.zeros_like(z, np.float64), p00, np.zeros_like(p00), p11


def predict(p, v, p00, p01, p11, dt: float, frame_rate: float) -> None:
    """In place: advance all states by dt seconds."""
    if p.shape[0] == 0 or dt <= 0:
        return
    frames = dt * frame_rate
    s = _scale(p)
    q_pos = STD_POS * s
    q_pos *= q_pos
    q_pos *= frames
    q_vel = np.multiply(STD_VEL * frame_rate, s, out=s)
    q_vel *= q_vel
    q_vel *= frames
    p += v * dt
    np.maximum(p, _LOW, out=p)
    t = dt * p11
    a = 2.0 * p01
    a += t
    a *= dt
    a += q_pos
    p00 += a
    p01 += t
    p11 += q_vel


def update(p, v, p00, p01, p11, z: np.ndarray) -> None:
    """In place on rows already selected (fancy-indexed copies are written back by the caller)."""
    r = _scale(z)
    r *= STD_POS
    r *= r
    s = p00 + r
    k0 = p00 / s
    k1 = np.divide(p01, s, out=s)
    y = z - p
    p += k0 * y
    y *= k1
    v += y
    p11 -= k1 * p01
    np.subtract(1.0, k0, out=k0)
    p00 *= k0
    p01 *= k0


# -- stacked forms used by the tracker: state st = float64[5, T, 4] (p, v, p00, p01, p11), the
# same arithmetic per element as predict / update above (so the same bits), in fewer NumPy calls

_Q_FACTORS: dict[float, np.ndarray] = {}


def predict_stacked(st: np.ndarray, dt: float, frame_rate: float) -> None:
    """In place: ``predict(*st, dt, frame_rate)``."""
    if st.shape[1] == 0 or dt <= 0:
        return
    p, v, p00, p01, p11 = st[0], st[1], st[2], st[3], st[4]
    frames = dt * frame_rate
    k = _Q_FACTORS.get(frame_rate)
    if k is None:
        k = _Q_FACTORS[frame_rate] = np.array([[[STD_POS]], [[STD_VEL * frame_rate]]])
    q = _scale(p)[None] * k        # q_pos, q_vel
    q *= q
    q *= frames
    p += v * dt
    np.maximum(p, _LOW, out=p)
    t = dt * p11
    a = 2.0 * p01
    a += t
    a *= dt
    a += q[0]
    p00 += a
    p01 += t
    p11 += q[1]


def update_stacked(st: np.ndarray, z: np.ndarray) -> None:
    """In place: ``update(*st, z)`` on a gathered copy (the caller writes it back)."""
    r = _scale(z)
    r *= STD_POS
    r *= r
    r += st[2]                     # s = p00 + r
    k = st[2:4] / r                # k0, k1
    y = z - st[0]
    y = k * y
    st[0:2] += y                   # p += k0 * y, v += k1 * y
    st[4] -= k[1] * st[3]          # p11 -= k1 * p01
    np.subtract(1.0, k[0], out=k[0])
    st[2:4] *= k[0]                # p00, p01 *= 1 - k0
