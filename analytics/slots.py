"""Track id -> dense row index, so per-track state lives in NumPy arrays, not dicts.

Every analytic keeps per-track state (first seen, dwell per zone, line side, queue join
time...). With a ``SlotMap`` a frame's M track ids become M row indices in one
``searchsorted``; new ids get free rows; rows of finished tracks are released and reused.
"""
from __future__ import annotations

import numpy as np


class SlotMap:
    def __init__(self, capacity: int = 64) -> None:
        self.capacity = int(capacity)
        self._map: dict[int, int] = {}
        self._free: list[int] = list(range(self.capacity - 1, -1, -1))
        self._grow_listeners: list = []
        self._arrays: tuple[np.ndarray, np.ndarray] | None = None

    def on_grow(self, fn) -> None:
        """``fn(new_capacity)`` is called when the row count grows (state arrays must follow)."""
        self._grow_listeners.append(fn)

    def __len__(self) -> int:
        return len(self._map)

    def _sorted(self) -> tuple[np.ndarray, np.ndarray]:
        if self._arrays is None:
            keys = np.fromiter(self._map.keys(), np.int64, len(self._map))
            vals = np.fromiter(self._map.values(), np.int64, len(self._map))
            o = np.argsort(keys)
            self._arrays = (keys[o], vals[o])
        return self._arrays

    @property
    def _keys(self) -> np.ndarray:
        return self._sorted()[0]

    @property
    def _vals(self) -> np.ndarray:
        return self._sorted()[1]

    def ids(self) -> np.ndarray:
        return self._keys.copy()

    def rows(self) -> np.ndarray:
        return self._vals.copy()

    def lookup(self, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(rows int64[M], is_new bool[M]) for track ids int64[M]; unseen ids get fresh rows.

        A dict, not a vectorised search: a frame holds a handful of tracks, where a dict
        lookup per id is cheaper than any NumPy call's overhead."""
        keys = np.asarray(ids, np.int64).reshape(-1).tolist()
        m = self._map
        rows = [m.get(k, -1) for k in keys]
        if -1 not in rows:
            return np.array(rows, np.int64), np.zeros(len(rows), bool)
        new = [r < 0 for r in rows]
        for i, k in enumerate(keys):
            if rows[i] < 0:
                r = m.get(k, -1)  # the same new id twice in one frame gets one row
                if r < 0:
                    if not self._free:
                        old = self.capacity
                        self.capacity = old * 2
                        self._free = list(range(self.capacity - 1, old - 1, -1))
                        for fn in self._grow_listeners:
                            fn(self.capacity)
                    r = m[k] = self._free.pop()
                rows[i] = r
        self._arrays = None
        return np.array(rows, np.int64), np.array(new, bool)

    def release(self, ids: np.ndarray) -> None:
        changed = False
        for k in np.asarray(ids, np.int64).reshape(-1).tolist():
            r = self._map.pop(k, None)
            if r is not None:
                self._free.append(r)
                changed = True
        if changed:
            self._arrays = None


def grow(arr: np.ndarray, capacity: int, fill) -> np.ndarray:
    """``arr`` with its first axis extended to ``capacity`` rows of ``fill``."""
    out = np.full((capacity,) + arr.shape[1:], fill, dtype=arr.dtype)
    out[: len(arr)] = arr
    return out


class TrackTable:
    """The person tracks of one camera: rows (``SlotMap``), first and last sighting.

    The pipeline owns one; journeys, queues and lines keep their per-track arrays by the
    same rows and follow its growth (``on_grow``), so a frame needs one id lookup in all."""

    def __init__(self, capacity: int = 64) -> None:
        self.slots = SlotMap(capacity)
        self.first_t = np.zeros(self.slots.capacity)
        self.last_t = np.zeros(self.slots.capacity)
        self.slots.on_grow(self._grow)

    def _grow(self, cap: int) -> None:
        self.first_t, self.last_t = grow(self.first_t, cap, 0.0), grow(self.last_t, cap, 0.0)

    @property
    def capacity(self) -> int:
        return self.slots.capacity

    def on_grow(self, fn) -> None:
        self.slots.on_grow(fn)

    def observe(self, t: float, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(rows, is_new, dt) for this frame's ids; dt = time since the track's previous sighting (0 if new)."""
        rows, new = self.slots.lookup(ids)
        if len(rows) == 0:
            return rows, new, np.zeros(0)
        self.first_t[rows[new]] = t
        self.last_t[rows[new]] = t
        dt = t - self.last_t[rows]
        self.last_t[rows] = t
        return rows, new, dt

    def expired(self, t: float, after_s: float) -> tuple[np.ndarray, np.ndarray]:
        """(ids, rows) of tracks unseen for more than ``after_s``."""
        rows = self.slots._vals
        if len(rows) == 0:
            return np.zeros(0, np.int64), rows
        old = self.last_t[rows] < t - after_s
        return self.slots._keys[old], rows[old]

    def all(self) -> tuple[np.ndarray, np.ndarray]:
        return self.slots.ids(), self.slots.rows()

    def release(self, ids: np.ndarray) -> None:
        self.slots.release(ids)
