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


def xyxy_to_cxcywh(b: np.ndarray) -> np.ndarray:
    out = np.empty(b.shape, np.float64)
    np.add(b[:, :2], b[:, 2:], out=out[:, :2])
    out[:, :2] *= 0.5
    np.subtract(b[:, 2:], b[:, :2], out=out[:, 2:])
    return out


def cxcywh_to_xyxy(p: np.ndarray) -> np.ndarray:
    half = np.maximum(p[:, 2:4], MIN_SIDE)
    half *= 0.5
    out = np.empty(p.shape, np.float64)
    np.subtract(p[:, 0:2], half, out=out[:, :2])
    np.add(p[:, 0:2], half, out=out[:, 2:])
    return out


def _scale(p: np.ndarray) -> np.ndarray:
    """Per-coordinate noise scale [T, 4]: width for x and w, height for y and h."""
    s = np.maximum(p[:, 2:4], MIN_SIDE)
    return np.concatenate([s, s], axis=1)


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
    s = np.maximum(p[:, 2:4], MIN_SIDE)     # the noise scale of _scale, per half
    q_pos = STD_POS * s
    q_pos *= q_pos
    q_pos *= frames
    q_vel = (STD_VEL * frame_rate) * s
    q_vel *= q_vel
    q_vel *= frames
    p += v * dt
    np.maximum(p[:, 2:4], MIN_SIDE, out=p[:, 2:4])
    t = dt * p11
    a = 2.0 * p01
    a += t
    a *= dt
    p01 += t
    a.reshape(-1, 2, 2)[:] += q_pos[:, None, :]
    p00 += a
    p11.reshape(-1, 2, 2)[:] += q_vel[:, None, :]


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
