"""What an edit of the store config changes, camera by camera (the live reload's diff).

    changes = store_changes(old_store, new_store)    # {"cam-checkout-1": ["zones"], "cam-x": ["added"]}
    camera_changes(old_store, new_store, "cam-1")     # [] when that camera's analytics would be the same

Contract: a camera's analytics are built from its ``CameraConfig`` (``image_size``, ``zones``,
``lines``, ``lanes``, ``heatmap``, ``journeys``, ``floor``: its floor calibration; defaults
are already folded in), from the alert rules that apply to it (a rule without ``cameras``
applies to every camera), from the store-wide report intervals (``metrics_interval_s``,
``heatmap_interval_s``, ``detections_every_s``) and from whether the store links visits
(``visits``: on or off, and ``head_after_s``; the store's linker keeps the settings it started
with). ``camera_changes`` names which of these parts differ (in that order, ``"alert rules"``,
``"report intervals"`` and ``"visits"`` last), ``["added"]`` / ``["removed"]``
for a camera on one side only, and ``[]`` when nothing that shapes the analytics differs
(e.g. only a comment, the store's name or another camera changed). Order counts: zones
listed in another order are a change (zone indices and record order follow the file).

Pure functions on validated ``StoreConfig`` objects; numpy arrays compare by value.
May import: analytics.config, numpy, the standard library.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import fields, is_dataclass
from typing import Any

import numpy as np

from analytics.config import StoreConfig

CAMERA_PARTS = ("image_size", "zones", "lines", "lanes", "heatmap", "journeys", "floor")


def _plain(v: Any) -> Any:
    """A comparable, hashable form of a config value (dataclasses, mappings, arrays, sequences)."""
    if is_dataclass(v) and not isinstance(v, type):
        return (type(v).__name__,) + tuple((f.name, _plain(getattr(v, f.name))) for f in fields(v))
    if isinstance(v, np.ndarray):
        return ("array", v.shape, tuple(v.ravel().tolist()))
    if isinstance(v, Mapping):
        return tuple((k, _plain(x)) for k, x in v.items())
    if isinstance(v, (list, tuple)):
        return tuple(_plain(x) for x in v)
    return v


def camera_parts(store: StoreConfig, camera_id: str) -> dict[str, Any] | None:
    """Everything in ``store`` that shapes ``camera_id``'s analytics, part by part (None: no such camera)."""
    cam = store.cameras.get(camera_id)
    if cam is None:
        return None
    parts = {p: _plain(getattr(cam, p)) for p in CAMERA_PARTS}
    parts["alert rules"] = _plain(tuple(r for r in store.alerts if not r.cameras or camera_id in r.cameras))
    parts["report intervals"] = (store.metrics_interval_s, store.heatmap_interval_s, store.detections_every_s)
    parts["visits"] = None if store.visits is None else store.visits.head_after_s
    return parts


def camera_changes(old: StoreConfig, new: StoreConfig, camera_id: str) -> list[str]:
    """The parts of ``camera_id``'s analytics that differ from ``old`` to ``new`` (see the module)."""
    a, b = camera_parts(old, camera_id), camera_parts(new, camera_id)
    if a is None and b is None:
        return []
    if a is None:
        return ["added"]
    if b is None:
        return ["removed"]
    return [p for p in a if a[p] != b[p]]


def store_changes(old: StoreConfig, new: StoreConfig) -> dict[str, list[str]]:
    """camera id -> ``camera_changes`` for every camera of either config that changed (old order, then new)."""
    ids = list(old.cameras) + [c for c in new.cameras if c not in old.cameras]
    out = {cid: camera_changes(old, new, cid) for cid in ids}
    return {cid: parts for cid, parts in out.items() if parts}
