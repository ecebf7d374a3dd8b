"""Ground truth, measured on the true (noise-free) positions with the same image zones the
analytics use: dwell per customer/camera/zone, queue entry and service entry per lane
(waits), queue length per lane every second, door crossings, purchases, and each customer's
store visit (first to last sighting on any camera, served or not, zones in the order first
entered across cameras, those with at least 1 s of dwell)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from analytics.config import StoreConfig
from analytics.zones import ZoneSet
from simulator import world as W
from simulator.agents import Store
from simulator.camera import PERSON, Objects


class Truth:
    def __init__(self, store: Store, cfg: StoreConfig, camera_ids: list[str], fps: float,
                 visit_gap_s: float = 4.0) -> None:
        """``visit_gap_s``: unseen longer than this on a camera, a customer's next sighting is a new
        visit (a new journey for the analytics, whose ``lost_after_s`` is the same)."""
        self.visit_gap_s = visit_gap_s
        self.store, self.fps = store, fps
        self.t0, self.t1 = store.t0, store.t1
        n = max(len(store.customers), 1)
        self.n_sec = int(np.ceil(self.t1 - self.t0))
        self.cams = {}
        for cid in camera_ids:
            cam = cfg.camera(cid)
            zs = ZoneSet(cam.zones, cam.image_size)
            lanes = {l.lane_id: (zs.index[l.queue_zone], zs.index[l.service_zone]) for l in cam.lanes.values()}
            self.cams[cid] = {
                "zones": zs, "lanes": lanes,
                "dwell": np.zeros((n, len(zs))), "first_in": np.full((n, len(zs)), np.inf),
                "seen_first": np.full(n, np.inf), "seen_last": np.full(n, -np.inf),
                "queue": {lid: np.zeros(self.n_sec, np.int16) for lid in lanes},
                "cur_visit": np.full(n, -1, np.int64), "visit_rows": {},
                "v_dwell": np.zeros((64, len(zs))), "v_first": np.full(64, np.inf), "v_last": np.full(64, -np.inf),
            }

    def add(self, camera_id: str, obj: Objects, times: np.ndarray, frame0: int) -> None:
        """One chunk of a camera's true objects; ``frame0``: global index of ``times[0]``."""
        c = self.cams[camera_id]
        p = obj.cls == PERSON
        frame, cid, feet = obj.frame[p], obj.truth_id[p], obj.feet[p]
        if len(frame) == 0:
            return
        t = times[frame]
        inside = c["zones"].contains(feet)
        self._visits(c, cid, t, inside)  # before seen_last moves on
        np.minimum.at(c["seen_first"], cid, t)
        np.maximum.at(c["seen_last"], cid, t)
        r, z = np.nonzero(inside)
        np.add.at(c["dwell"], (cid[r], z), 1.0 / self.fps)
        np.minimum.at(c["first_in"], (cid[r], z), t[r])
        # queue length at each whole second (the first frame of the second)
        g = frame0 + frame
        on_sec = (g % int(round(self.fps))) == 0
        sec = np.floor(t - self.t0 + 1e-6).astype(np.int64)
        for lid, (qz, _) in c["lanes"].items():
            m = on_sec & inside[:, qz] & (sec >= 0) & (sec < self.n_sec)
            np.add.at(c["queue"][lid], sec[m], 1)

    def _visits(self, c: dict, cid: np.ndarray, t: np.ndarray, inside: np.ndarray) -> None:
        """Split each customer's sightings on this camera into visits (gaps > visit_gap_s)."""
        o = np.lexsort((t, cid))
        cs, ts = cid[o], t[o]
        first = np.ones(len(cs), bool)
        first[1:] = cs[1:] != cs[:-1]
        prev = np.where(first, c["seen_last"][cs], np.concatenate([[0.0], ts[:-1]]))
        new = (ts - prev) > self.visit_gap_s
        run = np.cumsum(new)
        base = np.maximum.accumulate(np.where(first, run - new, 0))
        visit = c["cur_visit"][cs] + (run - base)
        keys = cs * 100_000 + visit
        uk, inv = np.unique(keys, return_inverse=True)
        vr = c["visit_rows"]
        rows = np.array([vr.setdefault(int(k), len(vr)) for k in uk.tolist()], np.int64)[inv]
        if len(vr) > len(c["v_first"]):
            cap = max(len(vr), 2 * len(c["v_first"]))
            c["v_dwell"] = np.concatenate([c["v_dwell"], np.zeros((cap - len(c["v_dwell"]), c["v_dwell"].shape[1]))])
            c["v_first"] = np.concatenate([c["v_first"], np.full(cap - len(c["v_first"]), np.inf)])
            c["v_last"] = np.concatenate([c["v_last"], np.full(cap - len(c["v_last"]), -np.inf)])
        np.minimum.at(c["v_first"], rows, ts)
        np.maximum.at(c["v_last"], rows, ts)
        r, z = np.nonzero(inside[o])
        np.add.at(c["v_dwell"], (rows[r], z), 1.0 / self.fps)
        last = np.ones(len(cs), bool)
        last[:-1] = cs[1:] != cs[:-1]
        c["cur_visit"][cs[last]] = visit[last]

    def door_crossings(self) -> tuple[np.ndarray, np.ndarray]:
        """Times of true inward and outward crossings of the door line in [t0, t1)."""
        s = self.store
        (x0, _), (x1, _) = W.CAMERAS["cam-entrance-1"].line
        y = W.LINE_Y
        a, b = s.seg_p0, s.seg_p1
        cross = (a[:, 1] - y) * (b[:, 1] - y) < 0
        u = np.where(cross, (y - a[:, 1]) / np.where(cross, b[:, 1] - a[:, 1], 1.0), 0.0)
        xc = a[:, 0] + u * (b[:, 0] - a[:, 0])
        tc = s.seg_t0 + u * (s.seg_t1 - s.seg_t0)
        ok = cross & (xc >= x0) & (xc <= x1) & (tc >= self.t0) & (tc < self.t1)
        inward = b[:, 1] < a[:, 1]
        return tc[ok & inward], tc[ok & ~inward]

    def to_json(self) -> dict:
        t_in, t_out = self.door_crossings()
        customers = []
        for cu in self.store.customers:
            rec = {"id": cu.cid, "arrival": round(cu.arrival, 3), "buyer": cu.buyer, "cart": cu.cart,
                   "lane": cu.lane, "served": cu.served, "abandoned": cu.abandoned, "cameras": {}}
            for cam_id, c in self.cams.items():
                if not np.isfinite(c["seen_first"][cu.cid]):
                    continue
                zn = c["zones"].names
                d = {zn[z]: round(float(c["dwell"][cu.cid, z]), 3) for z in range(len(zn)) if c["dwell"][cu.cid, z] > 0}
                fi = {zn[z]: round(float(c["first_in"][cu.cid, z]), 3) for z in range(len(zn))
                      if np.isfinite(c["first_in"][cu.cid, z])}
                visits = []
                for v in range(int(c["cur_visit"][cu.cid]) + 1):
                    row = c["visit_rows"].get(cu.cid * 100_000 + v)
                    if row is None:
                        continue
                    visits.append({"start": round(float(c["v_first"][row]), 3), "end": round(float(c["v_last"][row]), 3),
                                   "zone_dwell": {zn[z]: round(float(c["v_dwell"][row, z]), 3) for z in range(len(zn))
                                                  if c["v_dwell"][row, z] > 0}})
                rec["cameras"][cam_id] = {"first_seen": round(float(c["seen_first"][cu.cid]), 3),
                                          "last_seen": round(float(c["seen_last"][cu.cid]), 3),
                                          "zone_dwell": d, "zone_first_in": fi, "visits": visits}
                if cu.lane in c["lanes"]:
                    qz, sz = c["lanes"][cu.lane]
                    q_in, s_in = c["first_in"][cu.cid, qz], c["first_in"][cu.cid, sz]
                    if np.isfinite(s_in) and cu.served:
                        rec["service_start"] = round(float(s_in), 3)
                    if np.isfinite(q_in) and np.isfinite(s_in) and cu.served and q_in > self.t0:
                        rec["queue_join"] = round(float(q_in), 3)
                        rec["wait_s"] = round(float(s_in - q_in), 3)
            cams = rec["cameras"]
            if cams:  # the true store visit: first to last sighting on any camera
                first_in = sorted((t, z) for c in cams.values() for z, t in c["zone_first_in"].items()
                                  if c["zone_dwell"].get(z, 0.0) >= 1.0)
                rec["visit"] = {"start": min(c["first_seen"] for c in cams.values()),
                                "end": max(c["last_seen"] for c in cams.values()),
                                "converted": bool(cu.served), "zones": [z for _, z in first_in]}
            customers.append(rec)
        lanes = {lid: q.tolist() for c in self.cams.values() for lid, q in c["queue"].items()}
        return {"t0": self.t0, "t1": self.t1, "fps": self.fps,
                "footfall": {"in": int(len(t_in)), "out": int(len(t_out))},
                "queue_length_per_second": lanes, "customers": customers}

    def write(self, path: Path) -> None:
        path.write_text(json.dumps(self.to_json(), separators=(",", ":")))


# ---------------------------------------------------------------------------- camera tracks' truth
RUN_GAP_S = 1.0  # detections of one customer on one track further apart than this start a new run


def add_track_runs(runs: dict, track_ids: np.ndarray, times: np.ndarray, customers: np.ndarray) -> None:
    """Who each camera track's detections were, as runs: ``runs[track]`` is a list of
    ``[t_first, t_last, customer, detections]`` (customer -1: a false positive), in time order,
    one run per stretch of one customer with no gap over ``RUN_GAP_S``. A track the analytics
    split into tracklets (unseen past ``lost_after_s``, longer than a run's gap) never has a run
    across the split, so each tracklet's detections can be counted by its own time span
    (``simulator.score.track_counts``). Call with detections in time order per track (chunks in
    time order); a run continues across calls."""
    if not len(track_ids):
        return
    order = np.lexsort((times, track_ids))
    tid, t, c = track_ids[order], times[order], customers[order]
    cut = np.ones(len(tid), bool)
    cut[1:] = (tid[1:] != tid[:-1]) | (c[1:] != c[:-1]) | (t[1:] - t[:-1] > RUN_GAP_S)
    starts = np.nonzero(cut)[0]
    ends = np.append(starts[1:], len(tid)) - 1
    for k, s, e in zip(tid[starts].tolist(), starts.tolist(), ends.tolist()):
        t0, t1, cust, n = float(t[s]), float(t[e]), int(c[s]), e - s + 1
        lst = runs.setdefault(k, [])
        if lst and lst[-1][2] == cust and t0 - lst[-1][1] <= RUN_GAP_S:
            lst[-1][1] = t1
            lst[-1][3] += n
        else:
            lst.append([t0, t1, cust, n])
