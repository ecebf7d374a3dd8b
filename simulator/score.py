"""Compare the analytics output of a simulated run with the simulator's ground truth.

    python -m scripts.score_sample --input data/sample/ [--json score.json] [--check]

Reads the five seed files (validated against the seed schema first), ``footfall.json`` and
``ground_truth.json`` written by ``scripts/generate_sample_data.py``, and prints:
- footfall: door-line crossings in/out vs the true crossings (target: <= 2 % error);
- queue length: mean absolute error of each queue record against the true number of people
  in the lane's queue zone one second before the record (target: <= 0.5 person);
- wait time: the records' mean wait (weighted by the customers each record counted served in
  its own window: service_rate x window length) vs the true mean wait
  (queue-zone entry to service-zone entry) (target: <= 10 %);
- conversion rate: converted journeys / footfall in, vs served customers / true entries
  (target: <= 2 points);
- zone dwell: per zone, mean dwell per visiting journey vs the true mean per visit (a
  customer on a camera) (target: mean over zones <= 10 %);
- abandonment (no target): the records' abandonment counts vs the truth's abandoned customers;
- cart rate (no target): per camera, the share of journeys with ``cart_detected`` vs the share
  of true visits by customers with a cart (``cart`` in the truth), in points.
When the store links visits across cameras (``camera_journeys.json`` beside ``journeys.json``),
the per-camera scores above read the camera journeys, and ``visit_scores`` compares the
visits in ``journeys.json`` with the true customers: visit IDF1 (target >= 0.95), visit count
(<= 3 %), store conversion (<= 2 points), mean visit duration (<= 10 %), exact zone-path rate.
``--check`` exits 1 when a target is missed.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

from analytics.records import parse_iso_utc

TARGETS = {"footfall_error_pct": 2.0, "queue_length_mae": 0.5, "wait_error_pct": 10.0,
           "conversion_error_points": 2.0, "dwell_error_pct": 10.0}
# store visits (when journeys.json holds visits linked across cameras): upper bounds, and IDF1 a lower one
VISIT_TARGETS = {"visit_count_error_pct": 3.0, "store_conversion_error_points": 2.0, "visit_duration_error_pct": 10.0}
VISIT_IDF1_MIN = 0.95

# the seed's schemas (data/README.md): field -> accepted JSON types
SCHEMAS = {
    "detections.json": {"stream_id": str, "frame_number": int, "timestamp": str, "class_name": str,
                        "confidence": (int, float), "bbox": dict, "track_id": (int, type(None))},
    "journeys.json": {"journey_id": str, "track_id": int, "stream_id": str, "start_time": str, "end_time": str,
                      "duration_seconds": (int, float), "zones_visited": list, "zone_dwell_times": dict,
                      "converted": bool, "cart_detected": bool},
    "queue_metrics.json": {"lane_id": str, "stream_id": str, "timestamp": str, "queue_length": int,
                           "avg_wait_time_seconds": (int, float), "max_wait_time_seconds": (int, float),
                           "service_rate": (int, float), "abandonment_count": int},
    "heatmap.json": {"stream_id": str, "resolution": list, "cell_size": int, "data": list, "hotspots": list},
    "alerts.json": {"alert_id": str, "stream_id": str, "timestamp": str, "alert_type": str, "severity": str,
                    "message": str, "value": (int, float), "threshold": (int, float), "zone": (str, type(None)),
                    "state": str},
}


# fields a file may add after the seed's (store visits name their cameras and camera tracks)
ADDITIVE = {"journeys.json": ("cameras", "tracklets", "tracklet_spans")}


def _num(v) -> bool:
    """A JSON number (int or float, not bool), finite."""
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _nonneg(rec: dict, keys) -> str | None:
    for k in keys:
        if rec[k] < 0:
            return f"{k}: {rec[k]!r} < 0"
    return None


def _check_detection(rec: dict) -> str | None:
    b = rec["bbox"]
    if sorted(b) != ["height", "width", "x", "y"]:
        return f"bbox: {b}"
    bad = [k for k, v in b.items() if not _num(v)]
    if bad:
        return f"bbox.{bad[0]}: {b[bad[0]]!r} is not a number"
    if b["width"] < 0 or b["height"] < 0:
        return f"bbox: negative size {b}"
    if not 0.0 <= rec["confidence"] <= 1.0:
        return f"confidence: {rec['confidence']!r} outside [0, 1]"
    return _nonneg(rec, ("frame_number",))


def _check_journey(rec: dict) -> str | None:
    zv, zd = rec["zones_visited"], rec["zone_dwell_times"]
    bad = [z for z in zv if not isinstance(z, str)]
    if bad:
        return f"zones_visited: {bad[0]!r} is not a string"
    for z, v in zd.items():
        if not _num(v) or v < 0:
            return f"zone_dwell_times[{z!r}]: {v!r} is not a number >= 0"
    if set(zd) - set(zv):
        return "zone_dwell_times names a zone not in zones_visited"
    if not _num(rec["duration_seconds"]) or rec["duration_seconds"] < 0:
        return f"duration_seconds: {rec['duration_seconds']!r} < 0"
    if parse_iso_utc(rec["end_time"]) < parse_iso_utc(rec["start_time"]):
        return "end_time before start_time"
    return None


def _check_queue(rec: dict) -> str | None:
    for k in ("avg_wait_time_seconds", "max_wait_time_seconds", "service_rate"):
        if not _num(rec[k]):
            return f"{k}: {rec[k]!r} is not finite"
    return _nonneg(rec, ("queue_length", "avg_wait_time_seconds", "max_wait_time_seconds", "service_rate",
                         "abandonment_count"))


def _check_heatmap(rec: dict) -> str | None:
    res = rec["resolution"]
    if len(res) != 2 or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in res):
        return f"resolution: {res!r} is not [columns, rows] of positive integers"
    if isinstance(rec["cell_size"], bool) or rec["cell_size"] <= 0:
        return f"cell_size: {rec['cell_size']!r} is not a positive integer"
    c, r = res
    data = rec["data"]
    if len(data) != r or any(not isinstance(row, list) or len(row) != c for row in data):
        return f"data is not {r} rows x {c} columns"
    for i, row in enumerate(data):
        for j, v in enumerate(row):
            if not _num(v) or not 0.0 <= v <= 1.0:
                return f"data[{i}][{j}]: {v!r} is not a number in [0, 1]"
    for i, h in enumerate(rec["hotspots"]):
        if not isinstance(h, dict) or sorted(h) != ["intensity", "x", "y"]:
            return "hotspots need x, y, intensity"
        for k in ("x", "y", "intensity"):
            if not _num(h[k]) or not 0.0 <= h[k] <= 1.0:
                return f"hotspots[{i}].{k}: {h[k]!r} is not a number in [0, 1]"
    return None


def _check_alert(rec: dict) -> str | None:
    for k in ("value", "threshold"):
        if not _num(rec[k]):
            return f"{k}: {rec[k]!r} is not finite"
    return None


_CHECKS = {"detections.json": _check_detection, "journeys.json": _check_journey, "queue_metrics.json": _check_queue,
           "heatmap.json": _check_heatmap, "alerts.json": _check_alert}


def validate_record(name: str, rec: dict) -> str | None:
    """None if ``rec`` matches the seed schema of file ``name``, else what is wrong: the fields in
    order, their JSON types, and nested values (bbox numbers, zone names, dwell seconds, heatmap
    grid and hotspots in [0, 1]) with their ranges."""
    schema = SCHEMAS[name]
    if not isinstance(rec, dict):
        return f"not an object: {type(rec).__name__}"
    extra = ADDITIVE.get(name, ())
    if list(rec)[:len(schema)] != list(schema) or any(k not in extra for k in list(rec)[len(schema):]):
        return f"fields {list(rec)} != {list(schema)}" + (f" (+ optional {list(extra)})" if extra else "")
    for k, typ in schema.items():
        v = rec[k]
        if isinstance(v, bool) and typ in (int, (int, float)):
            return f"{k}: bool where a number belongs"
        if not isinstance(v, typ):
            return f"{k}: {type(v).__name__} {v!r}"
    for k in ("timestamp", "start_time", "end_time"):
        if k in rec:
            try:
                parse_iso_utc(rec[k])
            except ValueError:
                return f"{k}: {rec[k]!r} is not ISO-8601"
    return _CHECKS[name](rec)


def validate_dir(d: Path) -> dict[str, int]:
    """Record counts per seed file; raises ValueError naming file, index and problem."""
    counts = {}
    for name in SCHEMAS:
        data = json.loads((d / name).read_text())
        if not isinstance(data, list):
            raise ValueError(f"{d / name}: not a JSON array")
        for i, rec in enumerate(data):
            err = validate_record(name, rec)
            if err:
                raise ValueError(f"{d / name}[{i}]: {err}")
        counts[name] = len(data)
    return counts


def score(d: Path) -> dict:
    truth = json.loads((d / "ground_truth.json").read_text())
    t0, t1 = truth["t0"], truth["t1"]
    out: dict = {"records": validate_dir(d)}

    ff = json.loads((d / "footfall.json").read_text()) if (d / "footfall.json").exists() else []
    a_in, a_out = sum(r["count_in"] for r in ff), sum(r["count_out"] for r in ff)
    g_in, g_out = truth["footfall"]["in"], truth["footfall"]["out"]
    out["footfall"] = {"in": a_in, "out": a_out, "true_in": g_in, "true_out": g_out}
    # a run without the door camera (--cameras subset) has no footfall: footfall and conversion are n/a
    door_seen = bool(ff)
    nan = float("nan")
    out["footfall_error_pct"] = 100.0 * abs(a_in - g_in) / max(g_in, 1) if door_seen else nan
    out["footfall_out_error_pct"] = 100.0 * abs(a_out - g_out) / max(g_out, 1) if door_seen else nan

    queues = json.loads((d / "queue_metrics.json").read_text())
    series = truth["queue_length_per_second"]
    errs, per_lane = [], defaultdict(list)
    wsum = wn = 0.0
    prev_ts: dict[str, float] = {}  # a lane's previous record: its window starts there (the first at t0)
    a_abandoned = 0
    for r in sorted(queues, key=lambda r: parse_iso_utc(r["timestamp"])):
        ts = parse_iso_utc(r["timestamp"])
        k = int(round(ts - t0)) - 1
        s = series.get(r["lane_id"])
        if s is not None and 0 <= k < len(s):
            e = abs(r["queue_length"] - s[k])
            errs.append(e)
            per_lane[r["lane_id"]].append(e)
        # customers served in the record's own window (service_rate is per minute over that window,
        # whatever its length: a partial first or last window, or another metrics interval)
        window = max(ts - prev_ts.get(r["lane_id"], t0), 0.0)
        prev_ts[r["lane_id"]] = ts
        n = served_in_window(r["service_rate"], window)
        wsum += r["avg_wait_time_seconds"] * n
        wn += n
        a_abandoned += r["abandonment_count"]
    out["queue_length_mae"] = sum(errs) / len(errs) if errs else float("nan")
    out["queue_length_mae_per_lane"] = {k: sum(v) / len(v) for k, v in per_lane.items()}
    waits = [c["wait_s"] for c in truth["customers"] if "wait_s" in c and t0 <= c["service_start"] < t1]
    buyers = sum(1 for c in truth["customers"] if "service_start" in c and t0 <= c["service_start"] < t1)
    true_wait = sum(waits) / len(waits) if waits else float("nan")
    meas_wait = wsum / wn if wn else float("nan")
    out["wait"] = {"mean_s": meas_wait, "true_mean_s": true_wait, "served": int(wn), "true_served": len(waits)}
    out["wait_error_pct"] = 100.0 * abs(meas_wait - true_wait) / true_wait if waits and wn else float("nan")
    # abandonment: truth's abandoned customers (left the queue unserved) of the lanes these records
    # cover, last seen on the lane's camera inside the run
    lane_cam = {r["lane_id"]: r["stream_id"] for r in queues}
    g_ab = sum(1 for c in truth["customers"] if c.get("abandoned") and c.get("lane") in lane_cam
               and lane_cam[c["lane"]] in c["cameras"] and t0 <= c["cameras"][lane_cam[c["lane"]]]["last_seen"] < t1)
    out["abandonment"] = {"count": a_abandoned, "true_count": g_ab}

    journeys = json.loads((d / "journeys.json").read_text())
    # a store that links visits keeps its per-camera journeys in camera_journeys.json
    linked = (d / "camera_journeys.json").exists()
    if linked:
        visits, journeys = journeys, json.loads((d / "camera_journeys.json").read_text())
    conv = sum(1 for j in journeys if j["converted"])
    out["conversion"] = {"rate": conv / max(a_in, 1) if door_seen else nan, "true_rate": buyers / max(g_in, 1),
                         "converted_journeys": conv, "true_buyers": buyers}
    out["conversion_error_points"] = 100.0 * abs(out["conversion"]["rate"] - out["conversion"]["true_rate"])

    out["cart"] = cart_rates(journeys, truth) if any("cart" in c for c in truth["customers"]) else {}
    out["cart_error_points"] = out["cart"].get("error_points", nan)

    a_dw, g_dw = defaultdict(list), defaultdict(list)
    for j in journeys:
        for z, v in j["zone_dwell_times"].items():
            a_dw[(j["stream_id"], z)].append(v)
    for c in truth["customers"]:
        for cam, info in c["cameras"].items():
            for visit in info["visits"]:  # a visit: seen on the camera without a gap (one journey)
                if visit["end"] - visit["start"] < 2.0:
                    continue
                for z, v in visit["zone_dwell"].items():
                    if v >= 1.0:
                        g_dw[(cam, z)].append(v)
    per_zone = {}
    for key in sorted(set(a_dw) | set(g_dw)):
        a, g = a_dw.get(key, []), g_dw.get(key, [])
        if len(g) < 5:
            continue
        am, gm = (sum(a) / len(a) if a else 0.0), sum(g) / len(g)
        per_zone[f"{key[0]}/{key[1]}"] = {"mean_s": am, "true_mean_s": gm, "visits": len(a), "true_visits": len(g),
                                          "error_pct": 100.0 * abs(am - gm) / gm}
    out["dwell_per_zone"] = per_zone
    out["dwell_error_pct"] = (sum(v["error_pct"] for v in per_zone.values()) / len(per_zone)) if per_zone else float("nan")
    out["passed"] = {k: bool(out[k] <= v) for k, v in TARGETS.items() if not math.isnan(out[k])}
    if linked:
        tt = d / "tracklet_truth.json"
        out["visits"] = visit_scores(visits, truth, json.loads(tt.read_text()) if tt.exists() else {})
        for k, v in VISIT_TARGETS.items():
            out[k] = out["visits"][k]
            if not math.isnan(out[k]):
                out["passed"][k] = bool(out[k] <= v)
        out["visit_idf1"] = out["visits"]["idf1"]
        if not math.isnan(out["visit_idf1"]):
            out["passed"]["visit_idf1"] = bool(out["visit_idf1"] >= VISIT_IDF1_MIN)
    return out


def visit_scores(visits: list[dict], truth: dict, tracklet_truth: dict) -> dict:
    """Store visits vs the true customers (``visit`` in the truth: first to last sighting on any
    camera).

    - IDF1 as in multi-camera tracking benchmarks, over the detections of the camera tracks the
      visits were stitched from: ``tracklet_truth`` says which true customer (-1: false
      positives) each track's detections were, as runs in time (``track_counts``), so each
      tracklet (a visit's ``tracklet_spans``) counts its own detections, once; visits and
      customers are matched one to one to maximise shared detections (IDTP); IDF1 = 2 IDTP /
      (visit detections + true customers' detections).
    - visit count error (%), store conversion (converted visits / visits vs served customers /
      customers seen) in points, mean visit duration error (%), and the exact zone-path rate:
      of the true visits, the share whose matched visit entered the same zones in the same order
      (first entries).
    - where the rest of IDF1 is lost: ``track_purity`` (the share of the camera tracks'
      detections that belong to each track's main customer) and ``oracle_idf1``, the IDF1 of
      the same camera tracks put in the visit of their main customer: the most any linker can
      reach on them. IDF1 well under the oracle is the linker's; the oracle under 1, the tracks'."""
    t0, t1 = truth["t0"], truth["t1"]
    true = {c["id"]: c["visit"] for c in truth["customers"] if c.get("visit") and t0 <= c["visit"]["start"] < t1}
    nan = float("nan")
    cids = sorted(true)
    col = {c: i for i, c in enumerate(cids)}
    # each detection counts once: a camera track the analytics split (unseen past lost_after_s, then
    # back) is two tracklets, each with its own detections (by their time spans)
    groups = [visit_tracks(v, tracklet_truth) for v in visits]
    m = _id_matches(groups, col)
    idf1, idtp, pred_w, gt_w = m["idf1"], m["idtp"], m["pred_w"], m["gt_w"]
    pairs = [(i, cids[j]) for i, j in m["pairs"]]
    purity, oracle = _linking_ceiling(groups, col)
    n_t, n_p = len(true), len(visits)
    conv_p = sum(bool(v["converted"]) for v in visits) / n_p if n_p else nan
    conv_t = sum(bool(t["converted"]) for t in true.values()) / n_t if n_t else nan
    dur_p = sum(v["duration_seconds"] for v in visits) / n_p if n_p else nan
    dur_t = sum(t["end"] - t["start"] for t in true.values()) / n_t if n_t else nan
    exact = sum(list(dict.fromkeys(visits[i]["zones_visited"])) == true[c]["zones"] for i, c in pairs)
    return {"idf1": idf1, "idtp": idtp, "visit_detections": pred_w, "true_detections": gt_w,
            "visits": n_p, "true_visits": n_t, "visit_count_error_pct": 100.0 * abs(n_p - n_t) / n_t if n_t else nan,
            "conversion": conv_p, "true_conversion": conv_t,
            "store_conversion_error_points": 100.0 * abs(conv_p - conv_t) if n_p and n_t else nan,
            "mean_duration_s": dur_p, "true_mean_duration_s": dur_t,
            "visit_duration_error_pct": 100.0 * abs(dur_p - dur_t) / dur_t if n_p and n_t and dur_t else nan,
            "exact_path_rate": exact / n_t if n_t else nan, "track_purity": purity, "oracle_idf1": oracle}


_SPAN_EPS = 0.01  # spans and runs are written to the millisecond


def track_counts(entry, span: tuple[float, float] | None = None) -> dict[str, int]:
    """{customer id: detections} of one camera track in ``tracklet_truth.json``: an entry of runs
    (``[[t_first, t_last, customer, n], ...]``, ``simulator.truth.add_track_runs``) counted
    within ``span`` (a tracklet's start and end; None: all), or an older whole-track entry
    (``{customer: n}``) as it is."""
    if not entry or isinstance(entry, dict):
        return dict(entry or {})
    out: dict[str, int] = {}
    for t0, t1, c, n in entry:
        if span is None or (t0 >= span[0] - _SPAN_EPS and t1 <= span[1] + _SPAN_EPS):
            out[str(c)] = out.get(str(c), 0) + int(n)
    return out


def visit_tracks(visit: dict, tracklet_truth: dict) -> list[dict[str, int]]:
    """{customer: detections} of each camera track segment a visit was stitched from: per
    tracklet (its ``tracklet_spans``) where the file has them, else per track label (a label
    twice in one visit, one track split at a gap, counted once)."""
    labels, spans = visit.get("tracklets", []), visit.get("tracklet_spans")
    if spans and len(spans) == len(labels):
        return [track_counts(tracklet_truth.get(lab), (float(a), float(b))) for lab, (a, b) in zip(labels, spans)]
    return [track_counts(tracklet_truth.get(lab)) for lab in dict.fromkeys(labels)]


def _id_matches(groups: list[list[dict]], col: dict) -> dict:
    """IDF1 of predicted identities vs true customers: {idf1, idtp, pred_w, gt_w (detections on
    either side), pairs (matched group, column)}.
    ``groups``: per predicted identity, the ``tracklet_truth`` entries ({customer: detections},
    -1: false positives) of its camera tracks; ``col``: customer id -> column. Identities and
    customers are matched one to one to maximise shared detections (IDTP);
    IDF1 = 2 IDTP / (predicted detections + true customers' detections)."""
    from scipy.optimize import linear_sum_assignment

    ov = np.zeros((len(groups), len(col)))
    pred_w = gt_w = 0
    for i, ds in enumerate(groups):
        for d in ds:
            for c, n in d.items():
                pred_w += n
                c = int(c)
                if c >= 0:
                    gt_w += n
                    if c in col:
                        ov[i, col[c]] += n
    idtp, pairs = 0.0, []
    if ov.size:
        r, c = linear_sum_assignment(-ov)
        idtp = float(ov[r, c].sum())
        pairs = [(i, j) for i, j in zip(r.tolist(), c.tolist()) if ov[i, j] > 0]
    return {"idf1": 2.0 * idtp / (pred_w + gt_w) if pred_w + gt_w else float("nan"), "idtp": idtp,
            "pred_w": pred_w, "gt_w": gt_w, "pairs": pairs}


def _linking_ceiling(groups: list[list[dict]], col: dict) -> tuple[float, float]:
    """(track purity, oracle IDF1) over the camera tracks of the visits (``groups``: per visit,
    ``visit_tracks``; see ``visit_scores``): every track put in the identity of its main customer
    (a track mostly false positives alone)."""
    by_main: dict = {}
    total = main = 0
    for k, d in enumerate(d for ds in groups for d in ds):
        if not d:
            continue
        c, n = max(d.items(), key=lambda kv: kv[1])
        total += sum(d.values())
        main += n
        by_main.setdefault(c if int(c) >= 0 else ("fp", k), []).append(d)
    if not total:
        return float("nan"), float("nan")
    return main / total, _id_matches(list(by_main.values()), col)["idf1"]


def served_in_window(service_rate: float, window_s: float) -> int:
    """Customers a queue record counted as served: its rate (per minute) times its window."""
    return int(round(service_rate * window_s / 60.0))


def cart_rates(journeys: list[dict], truth: dict) -> dict:
    """Share of journeys with ``cart_detected`` per camera vs the share of true visits (a customer
    on a camera, the same visits as the dwell score, ending inside the run) by customers with a
    cart. Journeys are not matched to customers, so this is a rate: one cart marking two people
    shows as too high a rate. ``error_points``: mean over cameras of the absolute difference."""
    t0, t1 = truth["t0"], truth["t1"]
    a, g = defaultdict(lambda: [0, 0]), defaultdict(lambda: [0, 0])
    for j in journeys:
        a[j["stream_id"]][0] += bool(j["cart_detected"])
        a[j["stream_id"]][1] += 1
    for c in truth["customers"]:
        for cam, info in c["cameras"].items():
            for v in info["visits"]:
                if v["end"] - v["start"] >= 2.0 and t0 <= v["end"] < t1:
                    g[cam][0] += bool(c.get("cart"))
                    g[cam][1] += 1
    per_cam = {}
    for cam in sorted(set(a) & set(g)):
        if a[cam][1] and g[cam][1]:
            ra, rg = a[cam][0] / a[cam][1], g[cam][0] / g[cam][1]
            per_cam[cam] = {"rate": ra, "true_rate": rg, "journeys": a[cam][1], "true_visits": g[cam][1],
                            "error_points": 100.0 * abs(ra - rg)}
    err = sum(v["error_points"] for v in per_cam.values()) / len(per_cam) if per_cam else float("nan")
    return {"per_camera": per_cam, "error_points": err}


def report(s: dict) -> str:
    f, w, c = s["footfall"], s["wait"], s["conversion"]
    lines = [
        f"records: {s['records']}",
        f"{'metric':<26}{'analytics':>12}{'truth':>12}{'error':>12}{'target':>10}",
        f"{'footfall in':<26}{f['in']:>12}{f['true_in']:>12}{s['footfall_error_pct']:>11.2f}%{'<= 2 %':>10}",
        f"{'footfall out':<26}{f['out']:>12}{f['true_out']:>12}{s['footfall_out_error_pct']:>11.2f}%",
        f"{'queue length (MAE)':<26}{'':>12}{'':>12}{s['queue_length_mae']:>12.3f}{'<= 0.5':>10}",
        f"{'mean wait (s)':<26}{w['mean_s']:>12.1f}{w['true_mean_s']:>12.1f}{s['wait_error_pct']:>11.2f}%{'<= 10 %':>10}",
        f"{'served':<26}{w['served']:>12}{w['true_served']:>12}",
        f"{'conversion rate':<26}{c['rate']:>12.3f}{c['true_rate']:>12.3f}{s['conversion_error_points']:>10.2f}pt"
        f"{'<= 2 pt':>10}",
        f"{'abandoned':<26}{s['abandonment']['count']:>12}{s['abandonment']['true_count']:>12}",
        f"{'cart rate (mean error)':<26}{'':>12}{'':>12}{s['cart_error_points']:>10.2f}pt",
        *[f"  {k:<32}{v['rate']:>8.3f}{v['true_rate']:>10.3f}{v['error_points']:>8.2f}pt"
          f"   journeys {v['journeys']} / true visits {v['true_visits']}"
          for k, v in s["cart"].get("per_camera", {}).items()],
        f"{'zone dwell (mean error)':<26}{'':>12}{'':>12}{s['dwell_error_pct']:>11.2f}%{'<= 10 %':>10}",
    ]
    for k, v in s["dwell_per_zone"].items():
        lines.append(f"  {k:<32}{v['mean_s']:>8.1f}{v['true_mean_s']:>10.1f}{v['error_pct']:>9.2f}%"
                     f"   visits {v['visits']} / true {v['true_visits']}")
    if "visits" in s:
        v = s["visits"]
        lines += [
            f"{'store visits':<26}{v['visits']:>12}{v['true_visits']:>12}{v['visit_count_error_pct']:>11.2f}%"
            f"{'<= 3 %':>10}",
            f"{'visit IDF1':<26}{'':>12}{'':>12}{v['idf1']:>12.3f}{'>= 0.95':>10}",
            f"{'store conversion':<26}{v['conversion']:>12.3f}{v['true_conversion']:>12.3f}"
            f"{v['store_conversion_error_points']:>10.2f}pt{'<= 2 pt':>10}",
            f"{'mean visit duration (s)':<26}{v['mean_duration_s']:>12.1f}{v['true_mean_duration_s']:>12.1f}"
            f"{v['visit_duration_error_pct']:>11.2f}%{'<= 10 %':>10}",
            f"{'exact zone path':<26}{'':>12}{'':>12}{v['exact_path_rate']:>12.3f}",
            f"  camera tracks {v['track_purity']:.3f} pure; linking them by their main customer would "
            f"score visit IDF1 {v['oracle_idf1']:.3f}"]
    if any(math.isnan(s[k]) for k in TARGETS):
        lines.append("n/a (nan): " + ", ".join(k for k in TARGETS if math.isnan(s[k]))
                     + " (no door camera or no served customer in this run)")
    lines.append("targets: " + ", ".join(f"{k} {'ok' if ok else 'MISSED'}" for k, ok in s["passed"].items()))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--input", type=Path, default=Path("data/sample"))
    ap.add_argument("--json", type=Path, default=None, help="also write the scores here")
    ap.add_argument("--check", action="store_true", help="exit 1 if a target is missed")
    a = ap.parse_args(argv)
    if not (a.input / "ground_truth.json").exists():
        print(f"{a.input}: no ground_truth.json (run scripts/generate_sample_data.py --output {a.input} first)",
              file=sys.stderr)
        return 2
    try:
        s = score(a.input)
    except ValueError as e:
        print(f"invalid output: {e}", file=sys.stderr)
        return 2
    print(report(s))
    if a.json:
        a.json.write_text(json.dumps(s, indent=1))
    return 1 if a.check and not all(s["passed"].values()) else 0


if __name__ == "__main__":
    sys.exit(main())
