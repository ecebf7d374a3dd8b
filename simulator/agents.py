"""Customers: arrivals by time of day, routes through the store, checkout queues.

Every customer's whole path is planned up front as keyframes (time, x, y) on the floor
(metres), linear in between; frames are then cut from these paths for any time window
(``positions``), so memory holds paths, never frames. Checkout lanes are simulated as
FIFO single-server queues in decision order: a buyer picks the lane with the fewest
people committed to it among the lanes staffed at that hour, steps up a slot each time someone ahead leaves, walks to the
counter when the cashier is free, and abandons when the wait would exceed their
patience.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from simulator import world as W

# customers per minute by hour of day (store open 08:00-22:00)
# (the 17-19 h rush loads four lanes to ~90 %: queues of 5+ and long waits, so the alerts fire)
ARRIVALS_PER_MIN = {8: 0.6, 9: 1.0, 10: 1.4, 11: 1.8, 12: 2.6, 13: 2.4, 14: 1.6, 15: 1.5, 16: 1.9, 17: 3.2,
                    18: 3.6, 19: 2.2, 20: 1.4, 21: 0.8}
# Staffing: one lane per checkout camera all day, all four at the lunch and evening peaks. A lane
# closes to newcomers at the end of its shift; customers already in it are still served.
ALL_LANES_HOURS = frozenset({11, 12, 13, 16, 17, 18, 19})
OFF_PEAK_LANES = ("checkout-1", "checkout-3")
P_BUY = 0.72
P_CART = 0.35
QUEUE_SPEED = 0.8  # m/s when stepping up in the queue


class Path:
    """Keyframes of one customer; the builder keeps the time of the last keyframe."""

    def __init__(self, t: float, x: float, y: float) -> None:
        self.t, self.x, self.y = [t], [x], [y]

    @property
    def end(self) -> float:
        return self.t[-1]

    def walk(self, x: float, y: float, v: float) -> "Path":
        d = math.hypot(x - self.x[-1], y - self.y[-1])
        if d > 1e-6:
            self.t.append(self.t[-1] + d / v)
            self.x.append(x)
            self.y.append(y)
        return self

    def stay(self, dt: float) -> "Path":
        if dt > 1e-6:
            self.t.append(self.t[-1] + dt)
            self.x.append(self.x[-1])
            self.y.append(self.y[-1])
        return self

    def at(self, t: float) -> "Path":
        """Continue from time ``t``: wait there if the path ends earlier, cut it if it goes on."""
        if t >= self.t[-1]:
            return self.stay(t - self.t[-1])
        k = int(np.searchsorted(self.t, t, side="right"))
        x, y = float(np.interp(t, self.t, self.x)), float(np.interp(t, self.t, self.y))
        del self.t[k:], self.x[k:], self.y[k:]
        if t - self.t[-1] > 1e-9:
            self.t.append(t)
            self.x.append(x)
            self.y.append(y)
        return self


@dataclass
class Customer:
    cid: int
    arrival: float
    speed: float
    height_m: float
    cart: bool
    buyer: bool
    colour: int  # clothing palette index (renderer)
    path: Path
    lane: str | None = None
    served: bool = False
    abandoned: bool = False


@dataclass
class Store:
    t0: float
    t1: float
    customers: list[Customer]
    # all path segments, for slicing by time: [S] arrays
    seg_cid: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    seg_t0: np.ndarray = field(default_factory=lambda: np.zeros(0))
    seg_t1: np.ndarray = field(default_factory=lambda: np.zeros(0))
    seg_p0: np.ndarray = field(default_factory=lambda: np.zeros((0, 2)))
    seg_p1: np.ndarray = field(default_factory=lambda: np.zeros((0, 2)))
    seg_head: np.ndarray = field(default_factory=lambda: np.zeros((0, 2)))  # facing direction (unit)


def _arrivals(rng: np.random.Generator, t0: float, t1: float) -> np.ndarray:
    """Non-homogeneous Poisson arrivals (thinning) from the hourly profile, in epoch seconds."""
    lam_max = max(ARRIVALS_PER_MIN.values()) / 60.0
    n = rng.poisson(lam_max * (t1 - t0))
    ts = np.sort(rng.uniform(t0, t1, n))
    hours = ((ts % 86400) // 3600).astype(int)
    lam = np.array([ARRIVALS_PER_MIN.get(int(h), 0.0) / 60.0 for h in hours])
    return ts[rng.uniform(0, 1, n) < lam / lam_max]


def _shop(rng: np.random.Generator, c: Customer) -> None:
    """From the door through the entrance and 1-3 aisles, to the cross aisle."""
    p, v = c.path, c.speed
    p.walk(p.x[-1], W.DOOR_Y - 1.0, v)
    if rng.random() < 0.6:  # promotions at the entrance
        p.walk(rng.uniform(2.0, 9.0), rng.uniform(18.0, 22.5), v).stay(rng.uniform(3.0, 25.0))
    p.walk(9.5, 16.0, v).walk(9.5, W.CROSS_AISLE_Y, v)
    aisles = list(W.AISLES.values())
    k = int(rng.choice([1, 2, 3], p=[0.35, 0.4, 0.25])) if c.buyer else int(rng.choice([1, 2], p=[0.7, 0.3]))
    for i in sorted(rng.choice(len(aisles), size=k, replace=False)):
        x0, y0, x1, y1 = aisles[i]
        cx = (x0 + x1) / 2
        p.walk(cx, W.CROSS_AISLE_Y, v)
        for _ in range(1 + int(rng.random() < 0.5)):
            p.walk(rng.uniform(x0 + 0.6, x1 - 0.6), rng.uniform(y0 + 0.5, y1 - 0.5), v)
            p.stay(float(np.clip(rng.lognormal(math.log(35.0), 0.6), 5.0, 400.0)))
        p.walk(cx, W.CROSS_AISLE_Y, v)


def _leave_via_side(c: Customer) -> None:
    p, v = c.path, c.speed
    p.walk(9.5, W.CROSS_AISLE_Y, v).walk(8.5, 20.0, v)
    x = float(np.clip(p.x[0], W.DOOR_X[0] + 0.5, W.DOOR_X[1] - 0.5))
    p.walk(x, W.DOOR_Y, v).walk(x, W.OUTSIDE_Y, v)


def lanes_open(t: float) -> list[str]:
    """Lanes taking new customers at epoch second ``t``."""
    return list(W.LANE_X) if int(t % 86400 // 3600) in ALL_LANES_HOURS else list(OFF_PEAK_LANES)


def _checkout(rng: np.random.Generator, buyers: list[Customer]) -> None:
    lanes = list(W.LANE_X)
    committed: dict[str, list[tuple[float, Customer]]] = {l: [] for l in lanes}  # (leave time, customer)
    server_free = {l: -math.inf for l in lanes}
    for c in sorted(buyers, key=lambda c: c.path.end):
        t_dec, x_now = c.path.end, c.path.x[-1]
        lane = min(lanes_open(t_dec),
                   key=lambda l: (sum(1 for leave, _ in committed[l] if leave > t_dec), abs(W.LANE_X[l] - x_now)))
        cx = W.LANE_X[lane]
        p, v = c.path, c.speed
        p.walk(cx, W.CROSS_AISLE_Y, v).walk(cx, W.QUEUE_Y[0] - 0.2, v)
        t_tail = p.end
        ahead = sorted(leave for leave, _ in committed[lane] if leave > t_tail)
        k = len(ahead)
        ts = max(server_free[lane], t_tail + (W.SLOT_HEAD_Y - W.QUEUE_Y[0]) / v, ahead[-1] if ahead else -math.inf)
        patience = rng.uniform(30.0, 150.0) if rng.random() < 0.04 else rng.lognormal(math.log(420.0), 0.4)
        c.lane = lane
        leave = t_tail + patience if ts - t_tail > patience else ts
        c.abandoned = leave < ts
        p.walk(cx, W.SLOT_HEAD_Y - W.SLOT_SPACING * k, v)
        for d in ahead:
            if d >= leave:
                break
            k -= 1
            p.at(d).walk(cx, W.SLOT_HEAD_Y - W.SLOT_SPACING * k, QUEUE_SPEED)
        p.at(leave)
        committed[lane].append((leave, c))
        if c.abandoned:
            side = 1.0 if lane in ("checkout-2", "checkout-4") else -1.0
            p.walk(cx + 2.5 * side, p.y[-1], v).walk(cx + 2.5 * side, W.CROSS_AISLE_Y, v)
            _leave_via_side(c)
            continue
        c.served = True
        p.walk(cx, W.COUNTER_Y, QUEUE_SPEED)
        service = float(np.clip(rng.lognormal(math.log(70.0), 0.45), 20.0, 400.0)) + (15.0 if c.cart else 0.0)
        p.stay(service)
        server_free[lane] = p.end
        p.walk(cx, W.CORRIDOR_Y, v).walk(7.0, W.CORRIDOR_Y, v)
        x = float(np.clip(p.x[0], W.DOOR_X[0] + 0.5, W.DOOR_X[1] - 0.5))
        p.walk(x, W.DOOR_Y, v).walk(x, W.OUTSIDE_Y, v)


def simulate(seed: int, t0: float, t1: float, warmup_s: float = 1800.0) -> Store:
    """Plan every customer arriving in [t0 - warmup, t1) (the warm-up fills the store for a
    run that starts mid-day).

    Random draws run over whole clock hours (from the hour of ``t0`` minus the warm-up to the
    end of ``t1``'s hour) and customers arriving at or after ``t1`` are dropped afterwards, so
    windows that share their hours show the same people: a 16 s clip is the first 16 s of the
    60 s clip from the same start. The dropped customers are not in the store before ``t1``, so
    nothing inside the window changes."""
    rng = np.random.default_rng(seed)
    customers = []
    a0 = math.floor(t0 / 3600.0) * 3600.0 - warmup_s
    a1 = math.ceil(t1 / 3600.0) * 3600.0
    for i, ta in enumerate(_arrivals(rng, a0, a1)):
        x = rng.uniform(W.DOOR_X[0] + 0.6, W.DOOR_X[1] - 0.6)
        c = Customer(i, float(ta), float(rng.uniform(0.9, 1.4)), float(rng.uniform(1.55, 1.9)),
                     bool(rng.random() < P_CART), bool(rng.random() < P_BUY), int(rng.integers(0, 1 << 30)),
                     Path(float(ta), x, W.OUTSIDE_Y))
        _shop(rng, c)
        customers.append(c)
    _checkout(rng, [c for c in customers if c.buyer])
    for c in customers:
        if not c.buyer:
            _leave_via_side(c)
    return _index(Store(t0, t1, [c for c in customers if c.arrival < t1]))


def _index(store: Store) -> Store:
    cid, a0, a1, p0, p1 = [], [], [], [], []
    for c in store.customers:
        t, x, y = np.array(c.path.t), np.array(c.path.x), np.array(c.path.y)
        n = len(t) - 1
        cid.append(np.full(n, c.cid))
        a0.append(t[:-1])
        a1.append(t[1:])
        p0.append(np.stack([x[:-1], y[:-1]], 1))
        p1.append(np.stack([x[1:], y[1:]], 1))
    if not cid:
        return store
    store.seg_cid, store.seg_t0, store.seg_t1 = np.concatenate(cid), np.concatenate(a0), np.concatenate(a1)
    store.seg_p0, store.seg_p1 = np.concatenate(p0), np.concatenate(p1)
    d = store.seg_p1 - store.seg_p0
    n = np.hypot(d[:, 0], d[:, 1])
    head = np.where(n[:, None] > 1e-6, d / np.maximum(n, 1e-9)[:, None], np.nan)
    # standing still: keep facing the way the customer last walked
    for cid_ in np.unique(store.seg_cid):
        idx = np.nonzero(store.seg_cid == cid_)[0]
        h = head[idx]
        last = np.array([0.0, -1.0])
        for j in range(len(idx)):
            if np.isnan(h[j, 0]):
                h[j] = last
            else:
                last = h[j]
        head[idx] = h
    store.seg_head = head
    return store


@dataclass
class Positions:
    """Everyone on the floor at a run of frame times: K points."""

    frame: np.ndarray  # int64[K], index into the frame times
    cid: np.ndarray  # int64[K]
    xy: np.ndarray  # float64[K, 2], metres
    head: np.ndarray  # float64[K, 2]
    moving: np.ndarray | None = None  # bool[K]: walking (not standing) at that frame


def positions(store: Store, times: np.ndarray) -> Positions:
    """Positions of every customer at each of the sorted frame ``times`` (vectorised)."""
    t_lo, t_hi = times[0], times[-1]
    m = (store.seg_t1 > t_lo) & (store.seg_t0 <= t_hi)
    s0, s1 = store.seg_t0[m], store.seg_t1[m]
    f0 = np.searchsorted(times, s0, side="left")
    f1 = np.searchsorted(times, s1, side="left")  # segment covers [t0, t1)
    n = f1 - f0
    keep = n > 0
    idx = np.nonzero(m)[0][keep]
    f0, n = f0[keep], n[keep]
    if len(idx) == 0:
        return Positions(np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros((0, 2)), np.zeros((0, 2)),
                         np.zeros(0, bool))
    seg = np.repeat(idx, n)
    start = np.repeat(f0, n)
    frame = start + (np.arange(n.sum()) - np.repeat(np.cumsum(n) - n, n))
    t = times[frame]
    a0, a1 = store.seg_t0[seg], store.seg_t1[seg]
    u = ((t - a0) / np.maximum(a1 - a0, 1e-9))[:, None]
    xy = store.seg_p0[seg] * (1 - u) + store.seg_p1[seg] * u
    order = np.argsort(frame, kind="stable")
    moving = np.any(store.seg_p0[seg] != store.seg_p1[seg], axis=1)
    return Positions(frame[order], store.seg_cid[seg][order], xy[order], store.seg_head[seg][order], moving[order])
