"""``make gpu-check``: is a running Triton serving the retail pipeline as the GPU deployment should?

    python -m modelops.gpu_check [--url localhost:8001] [--repo model_repository] [--out outputs/gpu-check]
        [--expect auto|tensorrt|cpu] [--frames 8] [--skip-perf] [--concurrency 1,4,16] [--window-ms 5000]

Run it on the GPU host after ``docker compose up`` (or against any Triton URL). Four steps, in
order; the first that fails stops the run, is named on stderr (``gpu-check FAILED at step N
(<name>): <why>``) and makes the exit status 1. Every check that could not run says so and why.

1. ``models``: server live and ready; ``retail_pipeline``, ``preprocess``, ``yolov8n``,
   ``postprocess``, ``osnet_x0_25`` ready; the platform each runs, from the model config API.
   ``yolov8n`` and ``osnet_x0_25`` must both be ``tensorrt_plan`` (GPU deployment) or both the
   python backend (the CPU variants, ``configs/cpu.pbtxt``): with ``--expect auto`` the TensorRT
   check is *skipped* on a CPU server, with the reason; ``--expect tensorrt`` fails there.
   The build record of each served plan (``<repo>/<model>/<version>/model.plan.json``:
   precision, TensorRT, GPU) is reported when ``--repo`` has it.
2. ``ensemble``: ``--frames`` store frames rendered by the simulator (checkout camera at the
   evening rush, >= 2 people each) through ``retail_pipeline`` as JPEG: outputs agree in rows,
   boxes lie in the frame, detections are not empty overall, ``person`` rows have unit-norm
   embeddings and other rows zero ones.
3. ``cpu-parity``: the same JPEG bytes through the CPU path in this process (the ``serving``
   functions + ONNX Runtime on the served versions' ONNX from ``--repo``, configured as the
   server's configs say: ``onnx_file``, preprocess ``stride``, NMS in the graph or in NumPy): boxes matched per class by IoU; mean IoU, share
   matched and embedding cosine of matched person rows against ``--min-iou`` / ``--min-match`` /
   ``--min-cosine``. Skipped (with the reason) when ``--repo`` lacks those ONNX files.
4. ``perf``: perf_analyzer over gRPC on ``retail_pipeline`` with the same frames as
   ``--input-data``, at ``--concurrency`` (1, 4, 16): throughput and p50/p95/p99 latency.
   Skipped with ``--skip-perf``.

Writes ``<out>/report.json`` and ``<out>/report.md`` (whatever happened). docs/gpu.md says how
to read them. Library code: imports no scripts/, benchmarks/ or tests/.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import platform
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from modelops import perf_analyzer as pa
from serving.nms_graph import OUTPUTS as NMS_OUTPUTS
from serving.nms_graph import NmsSpec, append_nms, detections
from serving.postprocess import NmsConfig, decode_yolov8, l2_normalise, reid_crops, to_original
from serving.preprocess import decode_image, letterbox
from serving.runtimes import load_runner

REPO_ROOT = Path(__file__).resolve().parents[1]
ENSEMBLE = "retail_pipeline"
MODELS = (ENSEMBLE, "preprocess", "yolov8n", "postprocess", "osnet_x0_25")
TRT_MODELS = ("yolov8n", "osnet_x0_25")
OUTPUTS = ("boxes", "scores", "class_ids", "class_names", "embeddings")


class StepFailed(Exception):
    """A check failed; the message says which and why."""


@dataclass
class Step:
    number: int
    name: str
    status: str = "not run"  # passed | failed | skipped | not run
    summary: str = ""
    checks: list[dict] = field(default_factory=list)  # {"check", "status", "detail"}
    details: dict = field(default_factory=dict)
    seconds: float = 0.0

    def check(self, name: str, ok: bool | None, detail: str = "", why: str | None = None) -> None:
        """Record one check (None: skipped, with the reason in ``detail``); raise StepFailed if not ok.

        ``why``: the message when it fails (default ``detail``)."""
        failed = ok is not None and not ok
        detail = (why or detail) if failed else detail
        self.checks.append({"check": name, "status": "skipped" if ok is None else "failed" if failed else "passed",
                            "detail": detail})
        if failed:
            raise StepFailed(f"{name}: {detail}")


# ----------------------------------------------------------------------------- step 1: models


def _platform(cfg: dict) -> str:
    plat, backend = cfg.get("platform", ""), cfg.get("backend", "")
    if plat == "tensorrt_plan" or backend == "tensorrt":
        return "tensorrt_plan"
    return plat or backend or "unknown"


def served_version(client, model: str) -> str | None:
    """The newest READY version of ``model`` in the server's repository index."""
    ready = [int(m["version"]) for m in client.get_model_repository_index(as_json=True).get("models", [])
             if m.get("name") == model and m.get("state") == "READY" and str(m.get("version", "")).isdigit()]
    return str(max(ready)) if ready else None


def step_models(step: Step, client, expect: str, repo: Path) -> dict:
    """Step 1; returns {model: config} for the later steps."""
    step.check("server live and ready", client.is_server_live() and client.is_server_ready(),
               why="the server does not report live + ready (GET /v2/health/ready; see its log)")
    meta = client.get_server_metadata(as_json=True)
    step.details["server"] = {"version": meta.get("version"), "extensions": len(meta.get("extensions", []))}
    configs, rows = {}, {}
    for m in MODELS:
        ok = client.is_model_ready(m)
        step.check(f"{m} ready", ok, why="not ready: it failed to load or was not loaded (compose loads retail_pipeline "
                                     "and osnet_x0_25; the server log names the error)")
        cfg = configs[m] = client.get_model_config(m, as_json=True)["config"]
        kinds = sorted({g.get("kind", "KIND_AUTO") for g in cfg.get("instance_group", [])})
        rows[m] = {"platform": _platform(cfg), "version": served_version(client, m), "instance_kinds": kinds,
                   "max_batch_size": int(cfg.get("max_batch_size", 0))}
    step.details["models"] = rows
    plats = {m: rows[m]["platform"] for m in TRT_MODELS}
    if set(plats.values()) == {"tensorrt_plan"}:
        step.check("yolov8n and osnet_x0_25 run TensorRT plans", expect != "cpu",
                   "they are tensorrt_plan but --expect cpu" if expect == "cpu" else "tensorrt_plan, " +
                   ", ".join(f"{m}: {'/'.join(rows[m]['instance_kinds'])}" for m in TRT_MODELS))
        step.details["plans"] = {m: _plan_record(repo, m, rows[m]["version"]) for m in TRT_MODELS}
    elif set(plats.values()) == {"python"}:
        if expect == "tensorrt":
            step.check("yolov8n and osnet_x0_25 run TensorRT plans", False,
                       f"the server runs the CPU variants (python backend): {plats}")
        step.check("yolov8n and osnet_x0_25 run TensorRT plans", None,
                   "this server runs the CPU variants (configs/cpu.pbtxt: ONNX Runtime in the python "
                   "backend), as the local CPU Triton does; on the GPU deployment both must be tensorrt_plan "
                   "(use --expect tensorrt there to make this a failure)")
    else:
        step.check("yolov8n and osnet_x0_25 run one kind of backend", False,
                   f"{plats}: expected both tensorrt_plan (GPU) or both python (CPU variants)")
    step.summary = ", ".join(f"{m} {rows[m]['platform']} v{rows[m]['version']}" for m in TRT_MODELS)
    return configs


def _plan_record(repo: Path, model: str, version: str | None) -> dict:
    side = Path(repo) / model / str(version) / "model.plan.json"
    if not side.is_file():
        return {"note": f"no {side} here (the plan's build record; run gpu-check on the GPU host with --repo)"}
    rec = json.loads(side.read_text())
    return {k: rec.get(k) for k in ("precision", "tensorrt", "gpu", "compute_capability", "built", "profile")}


# ----------------------------------------------------------------------------- step 2: ensemble


def infer_ensemble(client, jpeg: np.ndarray) -> dict[str, np.ndarray]:
    import tritonclient.grpc as grpcclient

    inp = grpcclient.InferInput("image", [int(jpeg.size)], "UINT8")
    inp.set_data_from_numpy(jpeg)
    res = client.infer(ENSEMBLE, [inp], outputs=[grpcclient.InferRequestedOutput(o) for o in OUTPUTS])
    out = {o: res.as_numpy(o) for o in OUTPUTS}
    out["class_names"] = np.array([n.decode() if isinstance(n, bytes) else str(n) for n in out["class_names"]])
    return out


def step_ensemble(step: Step, client, frames: list[np.ndarray], jpegs: list[np.ndarray]) -> list[dict]:
    outs, lat = [], []
    for f, buf in zip(frames, jpegs):
        t0 = time.perf_counter()
        outs.append(infer_ensemble(client, buf))
        lat.append((time.perf_counter() - t0) * 1000)
        o, (h, w) = outs[-1], f.shape[:2]
        n = len(o["boxes"])
        if not all(len(o[k]) == n for k in OUTPUTS):
            step.check("outputs agree in rows", False, str({k: o[k].shape for k in OUTPUTS}))
        if n and not (np.isfinite(o["boxes"]).all() and (o["boxes"][:, 0::2] >= -1).all()
                      and (o["boxes"][:, 0::2] <= w + 1).all() and (o["boxes"][:, 1::2] <= h + 1).all()):
            step.check("boxes inside the frame", False, f"boxes outside {w}x{h}: {o['boxes'][:3].tolist()}")
    counts = [len(o["boxes"]) for o in outs]
    persons = [int((o["class_names"] == "person").sum()) for o in outs]
    step.details.update({"frames": len(frames), "frame_size": list(frames[0].shape[1::-1]),
                         "detections_per_frame": counts, "persons_per_frame": persons,
                         "latency_ms_sequential": {"mean": round(float(np.mean(lat)), 1),
                                                   "max": round(float(np.max(lat)), 1)}})
    step.check("outputs agree in rows", True, "boxes, scores, class_ids, class_names, embeddings")
    step.check("detections not empty", sum(counts) > 0,
               f"{sum(counts)} detections in {len(frames)} frames (frames with none: "
               f"{[i for i, c in enumerate(counts) if c == 0]})")
    step.check("person rows present", sum(persons) > 0, f"{sum(persons)} person rows")
    norms = np.concatenate([np.linalg.norm(o["embeddings"][o["class_names"] == "person"], axis=1) for o in outs])
    other = np.concatenate([np.linalg.norm(o["embeddings"][o["class_names"] != "person"], axis=1) for o in outs])
    dev = float(np.max(np.abs(norms - 1))) if norms.size else 0.0
    step.check("person embeddings unit-norm", dev <= 1e-3, f"max |norm - 1| = {dev:.2e} over {norms.size} rows")
    step.check("other rows zero", not other.size or float(other.max()) == 0.0, f"{other.size} non-person rows")
    step.summary = (f"{sum(counts)} detections ({sum(persons)} persons) in {len(frames)} frames; "
                    f"embedding |norm-1| <= {dev:.1e}")
    return outs


# ----------------------------------------------------------------------------- step 3: CPU parity


class CpuPipeline:
    """The served pipeline in this process, configured as the server says: the same ``serving``
    functions, the same ONNX file (a CPU variant's ``onnx_file``, e.g. the int8 twin, else
    ``model.onnx``), the preprocess ``stride``, and NMS in the graph when the detector's config
    returns detections (``serving/nms_graph.py``) or in NumPy from ``postprocess``'s parameters."""

    def __init__(self, version_dirs: dict[str, Path], labels: list[str], configs: dict[str, dict]):
        det_p, post_p = _params(configs["yolov8n"]), _params(configs["postprocess"])
        det_file = version_dirs["yolov8n"] / det_p.get("onnx_file", "model.onnx")
        self.det_file = det_file if det_file.is_file() else version_dirs["yolov8n"] / "model.onnx"
        self.stride = int(_params(configs.get("preprocess", {})).get("stride", 0))
        self.in_graph = set(NMS_OUTPUTS) <= {o["name"] for o in configs["yolov8n"].get("output", [])}
        model: str | bytes = str(self.det_file)
        if self.in_graph:
            import onnx

            spec = NmsSpec.from_params(det_p, "yolov8n")
            model = append_nms(onnx.load(str(self.det_file)), spec).SerializeToString()
        self.det = load_runner(model)
        self.reid = load_runner(str(version_dirs["osnet_x0_25"] / "model.onnx"))
        self.nms = NmsConfig(conf_threshold=float(post_p.get("conf_threshold", 0.25)),
                             iou_threshold=float(post_p.get("iou_threshold", 0.45)),
                             max_detections=int(post_p.get("max_detections", 300)))
        wanted = {c.strip() for c in (post_p.get("reid_classes") or "person").split(",")}
        self.labels = labels
        self.reid_ids = np.array([i for i, n in enumerate(labels) if n in wanted], np.int32)

    def _detect(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        out = self.det.run({self.det.inputs[0][0]: x[None]})
        if self.in_graph:
            return detections(out["num_dets"], out["det_boxes"], out["det_scores"], out["det_classes"])
        return decode_yolov8(next(iter(out.values()))[0], self.nms)

    def __call__(self, jpeg: np.ndarray) -> dict[str, np.ndarray]:
        img = decode_image(jpeg)
        x, lb = letterbox(img, stride=self.stride)
        xyxy, scores, cls = self._detect(x)
        xyxy = to_original(xyxy, lb)
        emb = np.zeros((len(xyxy), 512), np.float32)
        rows = np.flatnonzero(np.isin(cls, self.reid_ids))
        if rows.size:
            crops = reid_crops(img, xyxy[rows])
            emb[rows] = l2_normalise(next(iter(self.reid.run({self.reid.inputs[0][0]: crops}).values())))
        return {"boxes": xyxy, "scores": scores, "class_ids": cls, "embeddings": emb}


def _params(cfg: dict) -> dict[str, str]:
    return {k: v.get("string_value") for k, v in cfg.get("parameters", {}).items()}


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    x1, y1 = np.maximum(a[:, None, 0], b[None, :, 0]), np.maximum(a[:, None, 1], b[None, :, 1])
    x2, y2 = np.minimum(a[:, None, 2], b[None, :, 2]), np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    return inter / (area_a[:, None] + area_b[None, :] - inter + 1e-9)


def match(server: dict, cpu: dict, min_iou: float = 0.5) -> list[tuple[int, int, float]]:
    """Greedy one-to-one matches (server row, cpu row, IoU) of the same class, best IoU first."""
    iou = iou_matrix(server["boxes"], cpu["boxes"]) if len(server["boxes"]) and len(cpu["boxes"]) else np.zeros((0, 0))
    if iou.size:
        iou = np.where(server["class_ids"][:, None] == cpu["class_ids"][None, :], iou, 0.0)
    pairs, used_s, used_c = [], set(), set()
    for flat in np.argsort(-iou, axis=None) if iou.size else []:
        i, j = np.unravel_index(flat, iou.shape)
        if iou[i, j] < min_iou:
            break
        if i not in used_s and j not in used_c:
            used_s.add(i)
            used_c.add(j)
            pairs.append((int(i), int(j), float(iou[i, j])))
    return pairs


def step_cpu_parity(step: Step, client, configs: dict, repo: Path, jpegs: list[np.ndarray], outs: list[dict],
                    min_iou: float, min_match: float, min_cosine: float) -> None:
    vers = {m: served_version(client, m) for m in TRT_MODELS}
    onnx = {m: Path(repo) / m / str(vers[m]) / "model.onnx" for m in TRT_MODELS}
    labels_file = Path(repo) / "yolov8n" / "labels.txt"
    missing = [str(p) for p in [*onnx.values(), labels_file] if not p.is_file()]
    if missing:
        step.check("CPU path on the same ONNX", None, f"{missing} not found (the served versions' ONNX; "
                                                      f"pass --repo <the model repository the server loads>)")
        step.status, step.summary = "skipped", "the served ONNX files are not in --repo"
        return
    labels = [ln.strip() for ln in labels_file.read_text().splitlines() if ln.strip()]
    cpu = CpuPipeline({m: p.parent for m, p in onnx.items()}, labels, configs)
    ious, cos, n_server, n_cpu, n_match = [], [], 0, 0, 0
    for buf, srv in zip(jpegs, outs):
        ref = cpu(buf)
        pairs = match(srv, ref)
        n_server, n_cpu, n_match = n_server + len(srv["boxes"]), n_cpu + len(ref["boxes"]), n_match + len(pairs)
        for i, j, iou in pairs:
            ious.append(iou)
            if srv["class_names"][i] == "person":
                cos.append(float(np.dot(srv["embeddings"][i], ref["embeddings"][j])))
    share = n_match / max(n_server, n_cpu, 1)
    step.details.update({"onnx": {m: str(p) for m, p in onnx.items()}, "server_detections": n_server,
                         "cpu_detections": n_cpu, "matched": n_match, "matched_share": round(share, 4),
                         "box_iou": _summary(ious), "embedding_cosine": _summary(cos),
                         "thresholds": {"min_iou": min_iou, "min_match": min_match, "min_cosine": min_cosine}})
    step.check("detections matched (same class, IoU >= 0.5)", share >= min_match,
               f"{n_match} of {max(n_server, n_cpu)} ({share:.3f}; server {n_server}, CPU {n_cpu}); need {min_match}")
    mean_iou = float(np.mean(ious)) if ious else 0.0
    step.check("mean box IoU", mean_iou >= min_iou, f"{mean_iou:.4f} (min {min(ious, default=0):.4f}); need {min_iou}")
    mean_cos = float(np.mean(cos)) if cos else 0.0
    step.check("mean embedding cosine (matched persons)", bool(cos) and mean_cos >= min_cosine,
               f"{mean_cos:.4f} (min {min(cos, default=0):.4f}, {len(cos)} rows); need {min_cosine}")
    step.summary = f"matched {share:.3f}, mean IoU {mean_iou:.4f}, mean cosine {mean_cos:.4f}"


def _summary(v: list[float]) -> dict:
    if not v:
        return {"n": 0}
    a = np.asarray(v)
    return {"n": len(v), "mean": round(float(a.mean()), 5), "min": round(float(a.min()), 5),
            "p5": round(float(np.percentile(a, 5)), 5)}


# ----------------------------------------------------------------------------- step 4: perf


def step_perf(step: Step, url: str, frames: list[np.ndarray], levels: list[int], window_ms: int,
              stability_pct: int) -> None:
    rows = []
    with tempfile.TemporaryDirectory(prefix="gpu-check-perf-") as tmp:
        data = Path(tmp) / "input.json"
        data.write_text(json.dumps(pa.jpeg_input_data(frames)))
        for c in levels:
            try:
                r = pa.run_level(ENSEMBLE, url, c, data, window_ms, Path(tmp), stability_pct)
            except (pa.PerfAnalyzerFailed, pa.PerfAnalyzerMissing) as e:
                step.details["levels"] = rows
                step.check(f"perf_analyzer concurrency {c}", False, str(e))
            rows.append({"concurrency": c, "infer_per_s": round(float(r["Inferences/Second"]), 2),
                         **{f"{k}_ms": _ms(r, f"{k} latency") for k in ("p50", "p95", "p99")},
                         "avg_ms": _ms(r, "Avg latency")})
            step.check(f"perf_analyzer concurrency {c}", rows[-1]["infer_per_s"] > 0,
                       f"{rows[-1]['infer_per_s']} frames/s, p50 {rows[-1]['p50_ms']} ms")
    step.details.update({"levels": rows, "window_ms": window_ms, "stability_pct": stability_pct})
    step.summary = "; ".join(f"c={r['concurrency']}: {r['infer_per_s']}/s p50 {r['p50_ms']} ms" for r in rows)


def _ms(row: dict, key: str) -> float:
    return round(float(row.get(key) or 0) / 1000, 1)  # perf_analyzer CSV: µs


# ----------------------------------------------------------------------------- report


def write_report(out: Path, steps: list[Step], meta: dict) -> tuple[Path, Path]:
    out.mkdir(parents=True, exist_ok=True)
    doc = {**meta, "steps": [asdict(s) for s in steps]}
    (out / "report.json").write_text(json.dumps(doc, indent=2, default=str) + "\n")
    lines = [f"# gpu-check: {meta['result']}", "",
             f"Server `{meta['url']}` (Triton {meta.get('server_version') or '?'}), {meta['started']}, "
             f"{meta['host']}. Command: `{meta['command']}`.", "",
             "| step | status | seconds | summary |", "|---|---|---|---|"]
    lines += [f"| {s.number} {s.name} | {s.status} | {s.seconds} | {s.summary.replace('|', '&#124;')} |"
              for s in steps]
    for s in steps:
        lines += ["", f"## {s.number}. {s.name}: {s.status}", ""]
        lines += [f"- {c['status']}: {c['check']}" + (f": {c['detail']}" if c["detail"] else "") for c in s.checks]
        if s.name == "models" and s.details.get("models"):
            lines += ["", "| model | platform | version | instances | max batch |", "|---|---|---|---|---|"]
            lines += [f"| {m} | {r['platform']} | {r['version']} | {'/'.join(r['instance_kinds'])} | "
                      f"{r['max_batch_size']} |" for m, r in s.details["models"].items()]
        if s.name == "perf" and s.details.get("levels"):
            lines += ["", "| concurrency | frames/s | p50 ms | p95 ms | p99 ms |", "|---|---|---|---|---|"]
            lines += [f"| {r['concurrency']} | {r['infer_per_s']} | {r['p50_ms']} | {r['p95_ms']} | {r['p99_ms']} |"
                      for r in s.details["levels"]]
    (out / "report.md").write_text("\n".join(lines) + "\n")
    return out / "report.json", out / "report.md"


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m modelops.gpu_check", description=__doc__.split("\n")[0])
    ap.add_argument("--url", default="localhost:8001", help="Triton gRPC host:port")
    ap.add_argument("--repo", type=Path, default=REPO_ROOT / "model_repository",
                    help="the model repository the server loads (served ONNX for step 3, plan build records)")
    ap.add_argument("--out", type=Path, default=REPO_ROOT / "outputs" / "gpu-check")
    ap.add_argument("--expect", choices=("auto", "tensorrt", "cpu"), default="auto",
                    help="auto: TensorRT check skipped on a CPU-variant server; tensorrt: fail there")
    ap.add_argument("--frames", type=int, default=8, help="rendered store frames for steps 2-4")
    ap.add_argument("--min-iou", type=float, default=0.9)
    ap.add_argument("--min-match", type=float, default=0.9)
    ap.add_argument("--min-cosine", type=float, default=0.9, help="fp16 gives > 0.99; int8 see docs/gpu.md")
    ap.add_argument("--skip-perf", action="store_true", help="no perf_analyzer step (quick runs)")
    ap.add_argument("--concurrency", default="1,4,16")
    ap.add_argument("--window-ms", type=int, default=5000, help="perf_analyzer measurement window")
    ap.add_argument("--stability", type=int, default=25, help="perf_analyzer stability percentage")
    ap.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for the server to answer")
    return ap


def run(a: argparse.Namespace) -> tuple[list[Step], dict]:
    import tritonclient.grpc as grpcclient

    steps = [Step(1, "models"), Step(2, "ensemble"), Step(3, "cpu-parity"), Step(4, "perf")]
    meta = {"url": a.url, "started": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "host": f"{platform.node()} ({platform.machine()})", "result": "passed", "failed_step": None,
            "command": "python -m modelops.gpu_check " + " ".join(sys.argv[1:])}
    client = grpcclient.InferenceServerClient(a.url)
    ctx: dict = {}
    for step in steps:
        t0 = time.perf_counter()
        try:
            if step.number == 1:
                _wait_for(client, a.url, a.timeout)
                ctx["configs"] = step_models(step, client, a.expect, a.repo)
                meta["server_version"] = step.details["server"]["version"]
            elif step.number == 2:
                ctx["frames"] = pa.store_frames(a.frames)
                ctx["jpegs"] = [pa.jpeg(f) for f in ctx["frames"]]
                ctx["outs"] = step_ensemble(step, client, ctx["frames"], ctx["jpegs"])
            elif step.number == 3:
                step_cpu_parity(step, client, ctx["configs"], a.repo, ctx["jpegs"], ctx["outs"], a.min_iou,
                                a.min_match, a.min_cosine)
            elif a.skip_perf:
                step.check("perf_analyzer at concurrency " + a.concurrency, None, "--skip-perf")
                step.status, step.summary = "skipped", "--skip-perf"
            else:
                step_perf(step, a.url, ctx["frames"], [int(c) for c in a.concurrency.split(",")], a.window_ms,
                          a.stability)
            if step.status == "not run":
                step.status = "passed"
        except Exception as e:  # noqa: BLE001  (any failure is this step's, named in the report)
            step.status = "failed"
            step.summary = e.args[0] if isinstance(e, StepFailed) else f"{type(e).__name__}: {e}"
            meta.update(result=f"FAILED at step {step.number} ({step.name})", failed_step=step.number)
        step.seconds = round(time.perf_counter() - t0, 2)
        if step.status == "failed":
            break
    return steps, meta


def _wait_for(client, url: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if client.is_server_live():
                return
        except Exception as e:  # noqa: BLE001  (refused / unavailable until the deadline)
            err = e
        else:
            err = "not live"
        if time.monotonic() > deadline:
            raise StepFailed(f"no Triton answering gRPC at {url} within {timeout:.0f} s ({str(err).splitlines()[0]}); "
                             f"is the server up (docker compose ps, make triton-up) and is --url its gRPC port?")
        time.sleep(0.5)


def main(argv: list[str] | None = None) -> int:
    a = _parser().parse_args(argv)
    steps, meta = run(a)
    js, md = write_report(a.out, steps, meta)
    for s in steps:
        print(f"step {s.number} {s.name}: {s.status.upper()} ({s.seconds} s) {s.summary}")
        for c in s.checks:
            if c["status"] == "skipped":
                print(f"    skipped: {c['check']}: {c['detail']}")
    print(f"report: {js} and {md}")
    if meta["failed_step"] is not None:
        s = steps[meta["failed_step"] - 1]
        print(f"gpu-check FAILED at step {s.number} ({s.name}): {s.summary}", file=sys.stderr)
        return 1
    print("gpu-check passed" + (" (skipped: " + ", ".join(f"{s.number} {s.name}" for s in steps
                                                          if s.status == "skipped") + ")"
                                if any(s.status == "skipped" for s in steps) else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
