"""Store visits in ``make demo``: the simulator's truth for the rendered window and how the
linked visits score against it (``clients.demo`` runs the demo and calls these).

    truth = store_truth(store, cameras, seconds, fps, seed, start)  # simulator.truth.Truth JSON
    tt = tracklet_truth(clips, tally)          # {"<camera>:<track>": [[t0, t1, customer id, detections]]}
    v = score_visits(clips, tally, store, args, finals, link)       # demo_summary.json ``visits``
    print_visits(v)

Inputs: the rendered clips (``[{stream_id, path, truth}]``, ``clients.demo.render_clips``), the
demo's tally (``SummarySink``: its person ``boxes`` per camera and the ``VisitRecord``s in
``visits``), the store config the demo ran (``with_visits``), the command line's ``seconds``,
``fps``, ``seed`` and ``start``, the final tracklets and the ``clients.store_link.StoreLink``.
Outputs: plain dicts (JSON-ready but for ``goals``) and ``Goal`` checks: visit IDF1 >= 0.9,
store conversion within 5 points (``visit_goals``); where IDF1 is lost (``link_errors``: merged
visits, split customers) and how far apart the served re-id model puts the same and different
customers across cameras (``reid_cosines``). ``Goal`` is also the type of the demo's
per-camera checks (``clients.demo.accuracy_goals``).
May import: simulator, analytics.config, analytics.records, numpy, scipy, the standard library
(never clients.demo: it imports this module).
"""
from __future__ import annotations

import argparse
import math
from collections import defaultdict
from dataclasses import dataclass, replace
from typing import Protocol

import numpy as np

from analytics.config import StoreConfig
from analytics.records import parse_iso_utc
from simulator import world as W


class Tally(Protocol):
    """What these read of the demo's ``clients.demo.SummarySink``."""

    boxes: dict[str, list]  # stream -> (timestamp, track id, x1, y1, x2, y2) of persons
    visits: list  # VisitRecord


@dataclass(frozen=True)
class Goal:
    """One accuracy check of the demo against the simulator's ground truth."""

    stream_id: str  # a camera, or "store" (store visits)
    metric: str  # "footfall_error_pct" | "queue_length_mae:<lane>" | "visit_idf1" | "store_conversion_error_points"
    value: float
    goal: float  # met when value <= goal (``at_least``: value >= goal)
    text: str  # the printed line
    at_least: bool = False

    @property
    def met(self) -> bool:
        if not math.isfinite(self.value):
            return False
        return self.value >= self.goal if self.at_least else self.value <= self.goal

    def to_dict(self) -> dict:
        d = {"stream_id": self.stream_id, "metric": self.metric,
             "value": round(self.value, 4) if math.isfinite(self.value) else None, "goal": self.goal, "met": self.met}
        if self.at_least:
            d["at_least"] = True
        return d


def store_truth(store_cfg: StoreConfig, cameras: list[str], seconds: float, fps: float, seed: int,
                start: str) -> dict:
    """The simulator's truth for the rendered window over the demo's cameras (``simulator.truth.Truth``
    as simulator/day.py measures it: each customer's store visit is the first to last sighting on
    any of these cameras). A window's visit is converted when the customer was served and their
    service began inside the window (the simulator's ``served`` also counts service after it)."""
    from simulator.agents import positions, simulate
    from simulator.camera import objects_in_view
    from simulator.truth import Truth

    t0 = parse_iso_utc(start)
    sim = simulate(seed, t0, t0 + seconds)  # as render_camera does: the same customers
    truth = Truth(sim, store_cfg, cameras, fps)
    n, per = int(round(seconds * fps)), max(1, int(10 * fps))
    for cid in cameras:
        cam = W.CAMERAS[cid]
        for f0 in range(0, n, per):
            times = t0 + (f0 + np.arange(min(per, n - f0))) / fps
            truth.add(cid, objects_in_view(sim, cam, positions(sim, times)), times, f0)
    js = truth.to_json()
    for c in js["customers"]:
        v = c.get("visit")
        if v is not None:
            s = c.get("service_start")
            v["converted"] = bool(c["served"] and s is not None and js["t0"] <= s < js["t1"])
    return js


def _iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    iw = np.clip(np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0]), 0, None)
    ih = np.clip(np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1]), 0, None)
    inter = iw * ih
    area = lambda x: (x[:, 2] - x[:, 0]) * (x[:, 3] - x[:, 1])  # noqa: E731
    return inter / np.maximum(area(a)[:, None] + area(b)[None, :] - inter, 1e-9)


def tracklet_truth(clips: list[dict], tally: Tally, min_iou: float = 0.5) -> dict:
    """{"<camera>:<track>": [[t_first, t_last, customer id, detections], ...]} (runs in time order,
    ``simulator.truth.add_track_runs``; customer -1: no true person at IoU >= ``min_iou``): each
    camera track's person boxes matched one to one, frame by frame, to the true boxes of that
    frame (the clip's truth file), as simulator/day.py writes ``tracklet_truth.json``."""
    from scipy.optimize import linear_sum_assignment

    from simulator.truth import add_track_runs

    out: dict[str, list] = {}
    for c in clips:
        truth, sid = c["truth"], c["stream_id"]
        if not truth or not truth.get("frames") or sid not in tally.boxes:
            continue
        t0, fps = parse_iso_utc(truth["start"]), float(truth["fps"])
        frames = {f["frame"]: f for f in truth["frames"]}
        by_frame: dict[int, list] = defaultdict(list)
        for ts, tid, *box in tally.boxes[sid]:
            by_frame[int(round((ts - t0) * fps))].append((tid, box, ts))
        tids, times, whos = [], [], []
        for k, dets in by_frame.items():
            f = frames.get(k)
            keep = [i for i, cl in enumerate(f["class_ids"]) if cl == 0] if f else []
            cust = [f["ids"][i] for i in keep]
            who = [-1] * len(dets)
            if keep:
                iou = _iou(np.array([b for _, b, _ in dets], np.float64),
                           np.array([f["boxes"][i] for i in keep], np.float64).reshape(-1, 4))
                r, cc = linear_sum_assignment(-iou)
                for i, j in zip(r.tolist(), cc.tolist()):
                    if iou[i, j] >= min_iou:
                        who[i] = int(cust[j])
            tids += [tid for tid, _, _ in dets]
            times += [ts for _, _, ts in dets]
            whos += who
        runs: dict = {}
        add_track_runs(runs, np.array(tids, np.int64), np.array(times, np.float64), np.array(whos, np.int64))
        out.update({f"{sid}:{tid}": [[round(a, 3), round(b, 3), w, n] for a, b, w, n in r]
                    for tid, r in runs.items()})
    return out


def reid_cosines(finals: list, ttruth: dict) -> dict:
    """How the served re-id model scores final tracklets of the same and of different true
    customers on different cameras: cosine of their mean embeddings (mean, sd, pairs). A
    tracklet's customer is the one with most of its detections (at least half; else skipped)."""
    from simulator.score import track_counts

    embs, who, cams = [], [], []
    for tl in finals:
        d = track_counts(ttruth.get(tl.label), (tl.start, tl.end))
        if tl.embedding is None or not d:
            continue
        c, n = max(d.items(), key=lambda kv: kv[1])
        if int(c) < 0 or n < 0.5 * sum(d.values()):
            continue
        embs.append(np.asarray(tl.embedding, np.float64))
        who.append(int(c))
        cams.append(tl.camera_id)
    res = {"tracklets": len(embs)}
    if len(embs) < 2:
        return res
    e = np.stack(embs)
    cos = e @ e.T
    w, cm = np.array(who), np.array(cams)
    iu = np.triu_indices(len(e), 1)
    other_cam = cm[iu[0]] != cm[iu[1]]
    same = w[iu[0]] == w[iu[1]]
    for name, m in (("same", other_cam & same), ("different", other_cam & ~same),
                    ("same_camera_same", ~other_cam & same)):
        v = cos[iu][m]
        res[name] = {"pairs": int(len(v)), "mean": float(v.mean()) if len(v) else None,
                     "sd": float(v.std()) if len(v) else None}
    return res


def link_errors(visits: list[dict], ttruth: dict, share: float = 0.2) -> dict:
    """Where visit IDF1 is lost: ``merged`` visits (a second true customer has at least ``share``
    of the visit's detections) and ``split`` customers (at least ``share`` of their detections
    in a second visit); false positive detections (-1) are left out."""
    from simulator.score import visit_tracks

    per_visit, per_cust = [], defaultdict(lambda: defaultdict(int))
    for i, v in enumerate(visits):
        c = defaultdict(int)
        for d in visit_tracks(v, ttruth):
            for k, n in d.items():
                if int(k) >= 0:
                    c[int(k)] += n
                    per_cust[int(k)][i] += n
        per_visit.append(c)
    merged = sum(1 for c in per_visit if sum(n >= share * sum(c.values()) for n in c.values()) > 1)
    split = sum(1 for c in per_cust.values() if sum(n >= share * sum(c.values()) for n in c.values()) > 1)
    return {"merged_visits": merged, "split_customers": split, "customers_seen": len(per_cust)}


def visit_goals(scores: dict, cameras: tuple[int, int] | None = None) -> list[Goal]:
    """Store-level goals: visit IDF1 >= 0.9, store conversion within 5 points. ``cameras`` (run,
    in the store): a run on some of the store's cameras says that its customers pass unseen
    between them, and that the IDF1 goal is the whole store's (``make demo``)."""
    def fmt(x, f="{:.3f}"):
        return f.format(x) if x is not None and math.isfinite(x) else "n/a"

    idf1, conv = scores["idf1"], scores["store_conversion_error_points"]
    g1 = Goal("store", "visit_idf1", idf1, 0.9, "", at_least=True)
    g2 = Goal("store", "store_conversion_error_points", conv, 5.0, "")
    verdict = f"goal >= 0.9: {'met' if g1.met else 'NOT met'}"
    if cameras is not None and cameras[0] < cameras[1]:
        verdict = (f"{cameras[0]} of the store's {cameras[1]} cameras: customers pass unseen between them; "
                   f"the goal >= 0.9 is for all {cameras[1]}, make demo")
    return [replace(g1, text=f"  visit IDF1 {fmt(idf1)} ({verdict})"),
            replace(g2, text=f"  store conversion {fmt(100 * scores['conversion'], '{:.1f}')} % vs truth "
                             f"{fmt(100 * scores['true_conversion'], '{:.1f}')} %: error {fmt(conv, '{:.1f}')} points "
                             f"(goal <= 5: {'met' if g2.met else 'NOT met'})")]


def score_visits(clips: list[dict], tally: Tally, store_cfg: StoreConfig, a: argparse.Namespace,
                 finals: list, link) -> dict:
    """Everything the demo reports about store visits (demo_summary.json ``visits``)."""
    from simulator.score import visit_scores

    cams = [c["stream_id"] for c in clips]
    truth = store_truth(store_cfg, cams, a.seconds, a.fps, a.seed, a.start)
    ttruth = tracklet_truth(clips, tally)
    records = [v.to_dict() for v in tally.visits]
    scores = visit_scores(records, truth, ttruth)
    goals = visit_goals(scores, (len(cams), len(store_cfg.cameras)))
    return {"cameras": cams, "scores": _finite(scores), "goals": goals, "errors": link_errors(records, ttruth),
            "records": records,
            "reid_cosine": reid_cosines(finals, ttruth), "linker": link.stats() if link is not None else None,
            "linker_stats": dict(getattr(link.linker, "stats", {})) if link is not None else None,
            "appearance_model": vars(store_cfg.visits.appearance) if store_cfg.visits else None,
            "tracklet_truth": ttruth}


def _finite(d: dict) -> dict:
    return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in d.items()}


def print_visits(v: dict) -> None:
    s = v["scores"]

    def num(k, f="{:.1f}"):
        return f.format(s[k]) if s.get(k) is not None else "n/a"

    print(f"\nstore visits ({len(v['cameras'])} camera(s) linked: {', '.join(v['cameras'])}; "
          f"linker: {(v['linker'] or {}).get('mode', 'not running')}):")
    print("\n".join(g.text for g in v["goals"]))
    print(f"  visits {s['visits']} (truth {s['true_visits']}): count error {num('visit_count_error_pct')} %; "
          f"mean visit duration {num('mean_duration_s')} s (truth {num('true_mean_duration_s')} s): error "
          f"{num('visit_duration_error_pct')} %; exact zone path rate {num('exact_path_rate', '{:.2f}')}")
    e = v.get("errors") or {}
    if e:
        print(f"  link errors: {e['merged_visits']} visit(s) mixing customers, {e['split_customers']} of "
              f"{e['customers_seen']} customers split over visits")
    if s.get("oracle_idf1") is not None:
        print(f"  camera tracks {num('track_purity', '{:.3f}')} pure; linking them by their main customer "
              f"would score visit IDF1 {num('oracle_idf1', '{:.3f}')} (the most a linker can reach on them)")
    r = v["reid_cosine"]
    if r.get("same") or r.get("different"):
        def cs(k):
            x = r.get(k) or {}
            return f"{x['mean']:.3f} +- {x['sd']:.3f} ({x['pairs']} pairs)" if x.get("pairs") else "no pairs"
        am = v.get("appearance_model") or {}
        print(f"  re-id cosine of final tracklets on different cameras: same customer {cs('same')}, different "
              f"customers {cs('different')} (the linker assumes same {am.get('same_mean')} +- {am.get('same_sd')}, "
              f"different {am.get('diff_mean')} +- {am.get('diff_sd')})")
    if v.get("linker_stats"):
        print(f"  linker: {v['linker_stats']}")
