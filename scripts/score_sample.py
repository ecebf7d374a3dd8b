"""Compare the analytics output of a simulated run with the simulator's ground truth.

    python -m scripts.score_sample --input data/sample/ [--json score.json] [--check]

Reads the five seed files (validated against the seed schema first), ``footfall.json`` and
``ground_truth.json`` written by ``scripts/generate_sample_data.py``, and prints:
- footfall: door-line crossings in/out vs the true crossings (target: <= 2 % error);
- queue length: mean absolute error of each queue record against the true number of people
  in the lane's queue zone one second before the record (target: <= 0.5 person);
- wait time: the records' mean wait (weighted by customers served) vs the true mean wait
  (queue-zone entry to service-zone entry) (target: <= 10 %);
- conversion rate: converted journeys / footfall in, vs served customers / true entries
  (target: <= 2 points);
- zone dwell: per zone, mean dwell per visiting journey vs the true mean per visit (a
  customer on a camera) (target: mean over zones <= 10 %).
``--check`` exits 1 when a target is missed.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from collections import defaultdict
from pathlib import Path

from analytics.records import parse_iso_utc

TARGETS = {"footfall_error_pct": 2.0, "queue_length_mae": 0.5, "wait_error_pct": 10.0,
           "conversion_error_points": 2.0, "dwell_error_pct": 10.0}

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


def validate_record(name: str, rec: dict) -> str | None:
    """None if ``rec`` matches the seed schema of file ``name``, else what is wrong."""
    schema = SCHEMAS[name]
    if list(rec) != list(schema):
        return f"fields {list(rec)} != {list(schema)}"
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
    if name == "detections.json" and sorted(rec["bbox"]) != ["height", "width", "x", "y"]:
        return f"bbox: {rec['bbox']}"
    if name == "heatmap.json":
        c, r = rec["resolution"]
        if len(rec["data"]) != r or any(len(row) != c for row in rec["data"]):
            return f"data is not {r} rows x {c} columns"
        if any(sorted(h) != ["intensity", "x", "y"] for h in rec["hotspots"]):
            return "hotspots need x, y, intensity"
    if name == "journeys.json" and set(rec["zone_dwell_times"]) - set(rec["zones_visited"]):
        return "zone_dwell_times names a zone not in zones_visited"
    return None


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
    for r in queues:
        ts = parse_iso_utc(r["timestamp"])
        k = int(round(ts - t0)) - 1
        s = series.get(r["lane_id"])
        if s is not None and 0 <= k < len(s):
            e = abs(r["queue_length"] - s[k])
            errs.append(e)
            per_lane[r["lane_id"]].append(e)
        n = round(r["service_rate"])  # 60 s windows: served per minute = served in the window
        wsum += r["avg_wait_time_seconds"] * n
        wn += n
    out["queue_length_mae"] = sum(errs) / len(errs) if errs else float("nan")
    out["queue_length_mae_per_lane"] = {k: sum(v) / len(v) for k, v in per_lane.items()}
    waits = [c["wait_s"] for c in truth["customers"] if "wait_s" in c and t0 <= c["service_start"] < t1]
    buyers = sum(1 for c in truth["customers"] if "service_start" in c and t0 <= c["service_start"] < t1)
    true_wait = sum(waits) / len(waits) if waits else float("nan")
    meas_wait = wsum / wn if wn else float("nan")
    out["wait"] = {"mean_s": meas_wait, "true_mean_s": true_wait, "served": int(wn), "true_served": len(waits)}
    out["wait_error_pct"] = 100.0 * abs(meas_wait - true_wait) / true_wait if waits and wn else float("nan")

    journeys = json.loads((d / "journeys.json").read_text())
    conv = sum(1 for j in journeys if j["converted"])
    out["conversion"] = {"rate": conv / max(a_in, 1) if door_seen else nan, "true_rate": buyers / max(g_in, 1),
                         "converted_journeys": conv, "true_buyers": buyers}
    out["conversion_error_points"] = 100.0 * abs(out["conversion"]["rate"] - out["conversion"]["true_rate"])

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
    return out


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
        f"{'zone dwell (mean error)':<26}{'':>12}{'':>12}{s['dwell_error_pct']:>11.2f}%{'<= 10 %':>10}",
    ]
    for k, v in s["dwell_per_zone"].items():
        lines.append(f"  {k:<32}{v['mean_s']:>8.1f}{v['true_mean_s']:>10.1f}{v['error_pct']:>9.2f}%"
                     f"   visits {v['visits']} / true {v['true_visits']}")
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
