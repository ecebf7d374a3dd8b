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
        self._keys = np.zeros(0, np.int64)  # sorted track ids
        self._vals = np.zeros(0, np.int64)  # their rows
        self._free: list[int] = list(range(self.capacity - 1, -1, -1))
        self._grow_listeners: list = []

    def on_grow(self, fn) -> None:
        """``fn(new_capacity)`` is called when the row count grows (state arrays must follow)."""
        self._grow_listeners.append(fn)

    def __len__(self) -> int:
        return len(self._keys)

    def ids(self) -> np.ndarray:
        return self._keys.copy()

    def rows(self) -> np.ndarray:
        return self._vals.copy()

    def lookup(self, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(rows int64[M], is_new bool[M]) for track ids int64[M]; unseen ids get fresh rows."""
        ids = np.asarray(ids, np.int64).reshape(-1)
        if len(ids) == 0:
            return np.zeros(0, np.int64), np.zeros(0, bool)
        pos = np.searchsorted(self._keys, ids)
        pos_c = np.minimum(pos, max(len(self._keys) - 1, 0))
        known = (len(self._keys) > 0) & (self._keys[pos_c] == ids) if len(self._keys) else np.zeros(len(ids), bool)
        rows = np.where(known, self._vals[pos_c] if len(self._vals) else 0, -1).astype(np.int64)
        if not known.all():
            new_ids = np.unique(ids[~known])
            need = len(new_ids) - len(self._free)
            if need > 0:
                old = self.capacity
                self.capacity = max(old * 2, old + need)
                self._free = list(range(self.capacity - 1, old - 1, -1)) + self._free
                for fn in self._grow_listeners:
                    fn(self.capacity)
            new_rows = np.array([self._free.pop() for _ in new_ids], np.int64)
            keys = np.concatenate([self._keys, new_ids])
            vals = np.concatenate([self._vals, new_rows])
            order = np.argsort(keys, kind="stable")
            self._keys, self._vals = keys[order], vals[order]
            rows[~known] = new_rows[np.searchsorted(new_ids, ids[~known])]
        return rows, ~known

    def release(self, ids: np.ndarray) -> None:
        ids = np.asarray(ids, np.int64).reshape(-1)
        if len(ids) == 0:
            return
        keep = ~np.isin(self._keys, ids)
        self._free.extend(int(v) for v in self._vals[~keep])
        self._keys, self._vals = self._keys[keep], self._vals[keep]


def grow(arr: np.ndarray, capacity: int, fill) -> np.ndarray:
    """``arr`` with its first axis extended to ``capacity`` rows of ``fill``."""
    out = np.full((capacity,) + arr.shape[1:], fill, dtype=arr.dtype)
    out[: len(arr)] = arr
    return out
