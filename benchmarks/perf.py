"""``make perf``: real perf_analyzer (tritonclient 2.50.0 wheel) against the ensemble and each model.

Feeds real encoded frames (``--input-data`` JSON, base64) rather than random tensors,
sweeps concurrency over gRPC, and writes ``docs/perf/<model>.csv`` plus a markdown table
(``docs/perf.md``): throughput, p50/p95/p99 latency, server queue vs compute time.

For the ensemble, perf_analyzer's own "Server Queue" is the ensemble scheduler's (~0): the
time is in its composing models. perf_analyzer writes their stats to ``<model>_v<N>.<csv>``
beside the ``-f`` file (relative to its working directory); with
``--bls-composing-models=osnet_x0_25`` the model that ``postprocess`` calls by BLS is among
them. Those columns are merged into ``retail_pipeline.csv`` (``<model> Server Queue`` ...)
and ``docs/perf.md`` gets a second table: queue / compute per step, plus what is left of the
client's average latency (client, gRPC, ensemble hand-offs: "unaccounted").

    python -m benchmarks.perf [--url localhost:8001] [--concurrency 1,2,4,8] [--models ...] [--frames store|photos]

Frames: ``store`` (default) = the simulator's checkout camera at the evening peak, where the
demo detector finds 3-4 people per frame, so the ensemble's OSNet branch runs as in a store;
``photos`` = real photos resized to 960x540 (use them with real weights: few people in them).

Against the GPU deployment (docker compose) the same command runs with ``--url``
pointing at that server; nothing else changes.
"""
from __future__ import annotations

import argparse
import base64
import csv
import datetime as dt
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np

from launchers.triton import REPO_ROOT, TritonPorts, start_triton
from modelops import perf_analyzer as _pa
from modelops.perf_analyzer import STORE_CAMERA, STORE_START  # noqa: F401  (benchmarks.clients imports them here)
from serving.postprocess import reid_crops
from serving.preprocess import letterbox

DOCS = REPO_ROOT / "docs"
DEFAULT_MODELS = ("retail_pipeline", "preprocess", "yolov8n", "osnet_x0_25")
# Models called by BLS from inside a step (postprocess -> reid_model), which perf_analyzer
# cannot find in the ensemble config: their stats come only with --bls-composing-models.
BLS_COMPOSING = {"retail_pipeline": {"osnet_x0_25": "postprocess"}}  # {BLS model: the step calling it}
COMPOSING_FIELDS = ("Inferences/Second", "Server Queue", "Server Compute Input", "Server Compute Infer",
                    "Server Compute Output")
_COMPOSING_CSV = re.compile(r"^(?P<model>.+)_v(?P<version>\d+)\.(?P<part>c\d+\.csv)$")


def perf_analyzer_cmd() -> tuple[list[str], dict[str, str]]:
    """The binary from the tritonclient wheel and the libraries it needs (modelops/perf_analyzer.py)."""
    try:
        return _pa.perf_analyzer_cmd()
    except _pa.PerfAnalyzerMissing as e:
        raise SystemExit(str(e)) from e


def sample_frames(n: int = 4, size: tuple[int, int] = (960, 540)) -> list[np.ndarray]:
    """Real photos (scikit-image) resized to a camera-like frame size, BGR."""
    import skimage.data as d

    photos = [d.astronaut(), d.coffee(), d.chelsea(), d.rocket(), np.dstack([d.camera()] * 3)]
    return [cv2.resize(np.ascontiguousarray(p[:, :, ::-1]), size) for p in photos[:n]]


store_frames = _pa.store_frames  # n rendered checkout-camera frames with >= 2 people (640x360 BGR)


def _b64(a: np.ndarray) -> str:
    return base64.b64encode(np.ascontiguousarray(a).tobytes()).decode()


def input_data(model: str, frames: list[np.ndarray], quality: int = 90, stride: int = 0) -> dict:
    """perf_analyzer --input-data JSON for ``model`` from real frames (``stride``: the detector's
    letterbox, 0 = 640x640 square, 32 = the camera's aspect as the CPU variant serves it)."""
    rows = []
    for f in frames:
        if model in ("retail_pipeline", "preprocess"):
            jpg = cv2.imencode(".jpg", f, [cv2.IMWRITE_JPEG_QUALITY, quality])[1].reshape(-1)
            rows.append({"image": {"b64": _b64(jpg), "shape": [int(jpg.size)]}})
        elif model == "yolov8n":
            x = letterbox(f, stride=stride)[0]
            rows.append({"images": {"b64": _b64(x), "shape": list(x.shape)}})
        elif model == "osnet_x0_25":
            h, w = f.shape[:2]
            crop = reid_crops(f, np.array([[w * 0.3, h * 0.1, w * 0.5, h * 0.9]], np.float32))[0]
            rows.append({"images": {"b64": _b64(crop), "shape": [3, 256, 128]}})
        else:
            raise ValueError(f"no input data recipe for model {model!r}")
    return {"data": rows}


def grpc_ready(url: str) -> bool:
    import tritonclient.grpc as grpcclient

    try:
        return grpcclient.InferenceServerClient(url).is_server_ready(client_timeout=2.0)
    except Exception:  # refused, timeout, not Triton: all mean "start one"
        return False


def model_config(url: str, model: str) -> dict:
    """The server's config of ``model`` (JSON form of model_config.proto)."""
    import tritonclient.grpc as grpcclient

    return grpcclient.InferenceServerClient(url).get_model_config(model, as_json=True)["config"]


def ensemble_steps(config: dict) -> list[str]:
    """Composing models of an ensemble config, in step order ([] for other models)."""
    return [st["model_name"] for st in config.get("ensemble_scheduling", {}).get("step", [])]


def server_label(yolo_config: dict | None) -> str:
    """What the server runs, from its yolov8n config (not from the host name)."""
    if not yolo_config:
        return "yolov8n config unavailable"
    plat, backend = yolo_config.get("platform", ""), yolo_config.get("backend", "")
    kinds = ",".join(sorted({g.get("kind", "KIND_AUTO") for g in yolo_config.get("instance_group", [])})) or "KIND_AUTO"
    if plat == "tensorrt_plan" or backend == "tensorrt":
        return f"GPU configs: yolov8n tensorrt_plan, {kinds}"
    if backend == "python":
        return f"CPU configs: yolov8n python backend, {kinds}"
    return f"yolov8n {plat or backend or 'unknown backend'}, {kinds}"


def _composing_stats(workdir: Path, part: str) -> dict[str, dict]:
    """perf_analyzer's per-composing-model CSVs for one run: {model: its one row}."""
    stats = {}
    for f in sorted(workdir.glob(f"*_v*.{part}")):
        m = _COMPOSING_CSV.match(f.name)
        if m and m["part"] == part:
            with open(f) as fh:
                rows = list(csv.DictReader(fh))
            if rows:
                stats[m["model"]] = rows[0]
        f.unlink()
    return stats


def run_model(model: str, url: str, concurrency: list[int], frames, window_ms: int,
              steps: list[str] = (), bls: dict[str, str] | None = None, stride: int = 0) -> list[dict]:
    """One perf_analyzer process per concurrency level; rows of its CSV (+ composing columns)."""
    cmd, env = perf_analyzer_cmd()
    bls = bls or {}
    rows: list[dict] = []
    with tempfile.TemporaryDirectory(prefix=f"perf-{model}-") as tmp:
        work = Path(tmp)
        data_path = work / "input.json"
        data_path.write_text(json.dumps(input_data(model, frames, stride=stride)))
        for c in concurrency:  # one process per level: an unstable level does not lose the others
            part = f"c{c}.csv"  # relative: composing CSVs land beside it, in cwd
            args = cmd + ["-m", model, "-u", url, "-i", "grpc", "--input-data", str(data_path), "--verbose-csv",
                          "--concurrency-range", str(c), "-p", str(window_ms), "-s", "25", "-r", "6", "-f", part]
            if bls:
                args.append("--bls-composing-models=" + ",".join(bls))
            p = subprocess.run(args, env=env, capture_output=True, text=True, cwd=work)
            if p.returncode != 0 and "Failed to obtain stable measurement" in p.stdout + p.stderr:
                # shared, noisy CPUs: one retry with windows twice as long before giving up on a level
                print(f"perf_analyzer {model} c={c}: not stable, retrying with -p {2 * window_ms}", file=sys.stderr)
                args[args.index("-p") + 1] = str(2 * window_ms)
                p = subprocess.run(args, env=env, capture_output=True, text=True, cwd=work)
            if p.returncode != 0 or not (work / part).exists():
                print(f"perf_analyzer {model} c={c} failed ({p.returncode}):\n{p.stdout[-1500:]}\n{p.stderr[-1500:]}",
                      file=sys.stderr)
                continue
            with open(work / part) as fh:
                level = list(csv.DictReader(fh))
            composing = _composing_stats(work, part)
            if composing:
                # ensemble steps in step order, then anything else perf_analyzer reported (BLS)
                order = [m for m in steps if m in composing] + sorted(set(composing) - set(steps))
                for r in level:
                    r["Ensemble Steps"] = " ".join(m for m in order if m not in bls)
                    r["BLS Models"] = " ".join(f"{m}:{bls[m]}" for m in order if m in bls)
                    for m in order:
                        for k in COMPOSING_FIELDS:
                            r[f"{m} {k}"] = composing[m].get(k, "")
            rows.extend(level)
    return rows


def write_csv(rows: list[dict], out_csv: Path) -> None:
    fields = list(dict.fromkeys(k for r in rows for k in r))
    with open(out_csv, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=fields, restval="")
        w.writeheader()
        w.writerows(rows)


def _ms(r: dict, k: str) -> float:
    return float(r.get(k) or 0) / 1000  # µs -> ms


def _compute(r: dict, prefix: str = "") -> float:
    return sum(_ms(r, f"{prefix}Server Compute {k}") for k in ("Input", "Infer", "Output"))


def _avg_latency(r: dict) -> float:
    """Client-side mean (``--verbose-csv``), else the sum of perf_analyzer's components."""
    if r.get("Avg latency"):
        return _ms(r, "Avg latency")
    return (_ms(r, "Client Send") + _ms(r, "Network+Server Send/Recv") + _ms(r, "Server Queue") + _compute(r)
            + _ms(r, "Client Recv"))


def _steps(r: dict) -> list[str]:
    return (r.get("Ensemble Steps") or "").split()


def summarise(model: str, rows: list[dict]) -> list[str]:
    """Main-table lines. For an ensemble, queue / compute are the sums over its steps
    (BLS-called models run inside a step's compute, so they are not added again)."""
    lines = []
    for r in rows:
        steps = _steps(r)
        if steps:
            queue = sum(_ms(r, f"{m} Server Queue") for m in steps)
            compute = sum(_compute(r, f"{m} ") for m in steps)
        else:
            queue, compute = _ms(r, "Server Queue"), _compute(r)
        lines.append(f"| {model} | {r['Concurrency']} | {float(r['Inferences/Second']):.2f} | {_ms(r, 'p50 latency'):.1f} | "
                     f"{_ms(r, 'p95 latency'):.1f} | {_ms(r, 'p99 latency'):.1f} | {queue:.1f} | {compute:.1f} |")
    return lines


def breakdown(model: str, rows: list[dict]) -> list[str]:
    """Where an ensemble request's time goes: queue / compute per composing model (ms, mean per
    call of that model), and the rest of the client's mean latency ("unaccounted": client
    send/recv, gRPC, ensemble hand-offs between steps). [] if no composing stats."""
    rows = [r for r in rows if _steps(r)]
    if not rows:
        return []
    steps = _steps(rows[0])
    bls = dict(b.partition(":")[::2] for b in (rows[0].get("BLS Models") or "").split())
    cols = [f"{m} queue / compute ms" for m in steps] + [f"{m} queue / compute ms (BLS, inside {caller})"
                                                         for m, caller in bls.items()]
    lines = [f"| {model} concurrency | mean latency ms | " + " | ".join(cols) + " | unaccounted ms |",
             "|---" * (len(cols) + 3) + "|"]
    for r in rows:
        cells = [f"{_ms(r, f'{m} Server Queue'):.1f} / {_compute(r, f'{m} '):.1f}" for m in steps + list(bls)]
        accounted = sum(_ms(r, f"{m} Server Queue") + _compute(r, f"{m} ") for m in _steps(r))
        avg = _avg_latency(r)
        lines.append(f"| {r['Concurrency']} | {avg:.1f} | " + " | ".join(cells) + f" | {avg - accounted:.1f} |")
    return lines


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--url", default=os.environ.get("TRITON_GRPC_URL", "localhost:8001"))
    ap.add_argument("--concurrency", default="1,2,4,8")
    ap.add_argument("--models", default=",".join(DEFAULT_MODELS))
    ap.add_argument("--window-ms", type=int, default=4000, help="perf_analyzer measurement window")
    ap.add_argument("--out", type=Path, default=DOCS / "perf", help="folder for <model>.csv")
    ap.add_argument("--report", type=Path, default=DOCS / "perf.md", help="markdown table")
    ap.add_argument("--frames", choices=("store", "photos"), default="store")
    a = ap.parse_args(argv)
    conc = [int(c) for c in a.concurrency.split(",")]
    models = a.models.split(",")
    host, port = a.url.rsplit(":", 1)
    server = None
    if not grpc_ready(a.url):
        if host not in ("localhost", "127.0.0.1"):
            raise SystemExit(f"no Triton ready at {a.url}")
        from modelops.build import ensure_models

        ensure_models()
        print(f"starting local Triton on :{port} (CPU configs)")
        server = start_triton(TritonPorts(int(port) - 1, int(port), int(port) + 1))
    frames = store_frames() if a.frames == "store" else sample_frames()
    h, w = frames[0].shape[:2]
    table = ["| model | concurrency | infer/s | p50 ms | p95 ms | p99 ms | server queue ms | server compute ms |",
             "|---|---|---|---|---|---|---|---|"]
    results: dict[str, list[dict]] = {}
    details: list[str] = []
    missing: list[str] = []  # levels perf_analyzer could not measure (the model has others)
    try:
        try:  # label what the server runs from its config, not from the host name
            label = server_label(model_config(a.url, "yolov8n"))
        except Exception as e:  # noqa: BLE001  (yolov8n not loaded, old server: say so)
            label = f"yolov8n config unavailable: {str(e).splitlines()[0][:120]}"
        try:  # the detector alone gets frames letterboxed as the server's preprocess does
            stride = int(model_config(a.url, "preprocess").get("parameters", {}).get("stride", {})
                         .get("string_value", 0))
        except Exception:  # noqa: BLE001  (preprocess not loaded: the square input)
            stride = 0
        for model in models:
            levels = conc if model == "retail_pipeline" else [c for c in conc if c in (1, 4)] or conc[:1]
            bls = BLS_COMPOSING.get(model, {})
            try:
                steps = ensemble_steps(model_config(a.url, model))
            except Exception:  # noqa: BLE001  (perf_analyzer will report the real error)
                steps = []
            rows = results[model] = run_model(model, a.url, levels, frames, a.window_ms, steps, bls, stride)
            got = {int(r["Concurrency"]) for r in rows}
            missing += [f"{model} c={c}" for c in levels if c not in got]
            table += summarise(model, rows)
            if (b := breakdown(model, rows)):
                details += ["", *b]
            print("\n".join(table[-len(rows):] + (b or [])) if rows else f"{model}: no results", flush=True)
    finally:
        if server:
            server.stop()
    failed = [m for m in models if not results.get(m)]
    if failed:
        print(f"\nperf: FAILED: no perf_analyzer results for {', '.join(failed)} at {a.url} "
              f"(errors above); {a.report} and the CSVs in {a.out} were left unchanged.", file=sys.stderr)
        return 1
    a.out.mkdir(parents=True, exist_ok=True)
    for model, rows in results.items():
        write_csv(rows, a.out / f"{model}.csv")
    jpeg_sizes = [cv2.imencode(".jpg", f, [cv2.IMWRITE_JPEG_QUALITY, 90])[1].size for f in frames]
    header = (f"# perf_analyzer results\n\nGenerated by `make perf` on {dt.date.today()} — {platform.machine()}, "
              f"{os.cpu_count()} CPU cores, {platform.python_version()}, server {a.url} "
              f"({label}{'; started by make perf' if server else ''}).\n"
              f"Command: `python -m benchmarks.perf --frames {a.frames} --concurrency {a.concurrency}`. Input: "
              f"{len(frames)} {'rendered checkout-camera frames' if a.frames == 'store' else 'real photos'} at {w}x{h}, "
              f"JPEG q90 = {int(np.mean(jpeg_sizes))} bytes per frame on the wire (raw BGR would be {w * h * 3} bytes). "
              "Composing models get the same frames letterboxed (yolov8n) or a person-sized crop (osnet_x0_25). "
              "Latencies are client-side; queue/compute are Triton's (for an ensemble: summed over its steps).\n\n")
    notes = ("\n\n## Where ensemble time goes\n\n"
             "Per composing model, mean queue / compute (input + infer + output) per call of that model, in the "
             "same perf_analyzer window as the ensemble row (its `<model>_v<N>` CSVs, merged into "
             "`docs/perf/<ensemble>.csv` as `<model> Server Queue` ...). A BLS-called model runs inside its "
             "caller's compute, so it is not added again. Unaccounted = client mean latency minus the steps' queue + "
             "compute: client send/recv, gRPC, and the ensemble scheduler's hand-offs between steps (a few ms either "
             "side of 0 is window-edge noise: client and server count slightly different requests).\n"
             + "\n".join(details)) if details else ""
    gaps = (f"\n\nNot measured: {', '.join(missing)} (perf_analyzer failed there, see the `make perf` output; "
            f"a level with no stable window is retried once with {2 * a.window_ms} ms windows).") if missing else ""
    a.report.write_text(header + "\n".join(table) + gaps + notes + "\n")
    print(f"\nwrote {a.report} and CSVs in {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
