"""perf_analyzer (the tritonclient 2.50.0 wheel's binary) and real store frames, as a library.

Contract:
- ``perf_analyzer_cmd()`` -> (argv prefix, environment): the binary beside this interpreter
  and ``LD_LIBRARY_PATH`` with the wheel-provided libcudart (loaded, no GPU needed). Raises
  ``PerfAnalyzerMissing`` naming what to install.
- ``store_frames(n)`` -> ``n`` rendered checkout-camera frames (BGR) with >= 2 people in view.
- ``jpeg_input_data(frames)`` -> the ``--input-data`` JSON of the ensemble (``image``: JPEG bytes).
- ``run_level(...)`` -> one concurrency level of one model: the CSV row perf_analyzer wrote
  (throughput, client latencies in µs, server queue/compute), retried once with a doubled
  window when it reports no stable measurement; ``PerfAnalyzerFailed`` with its output tail
  otherwise.

``benchmarks/perf.py`` (``make perf``) and ``modelops/gpu_check.py`` (``make gpu-check``) use it.
"""
from __future__ import annotations

import base64
import csv
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np

STORE_CAMERA = "cam-checkout-1"  # the simulator's busiest camera view...
STORE_START = "2024-01-15T18:30:00Z"  # ...at the evening rush (7-9 people in view)


class PerfAnalyzerMissing(RuntimeError):
    """The perf_analyzer binary or the library it loads is not installed."""


class PerfAnalyzerFailed(RuntimeError):
    """perf_analyzer exited non-zero or wrote no CSV; the message carries its output tail."""


def perf_analyzer_cmd() -> tuple[list[str], dict[str, str]]:
    """The binary from the tritonclient wheel and the libraries it needs (docs/platform.md)."""
    exe = Path(sys.executable).parent / "perf_analyzer"
    if not exe.exists():
        raise PerfAnalyzerMissing(f"perf_analyzer not found at {exe}: run `make setup` (tritonclient==2.50.0 ships it)")
    try:
        import nvidia.cuda_runtime  # libcudart.so.12, only loaded, no GPU needed
    except ImportError as e:
        raise PerfAnalyzerMissing("nvidia-cuda-runtime-cu12 is not installed (perf_analyzer loads its libcudart): "
                                  "run `make setup`") from e
    cudart = Path(list(nvidia.cuda_runtime.__path__)[0]) / "lib"
    env = dict(os.environ, LD_LIBRARY_PATH=os.pathsep.join([str(cudart), os.environ.get("LD_LIBRARY_PATH", "")]))
    return [str(exe)], env


def store_frames(n: int = 8) -> list[np.ndarray]:
    """``n`` rendered checkout-camera frames with at least two people in view (640x360 BGR)."""
    from simulator.render import render_camera

    frames = []
    for img, _t, _boxes, cls, _ids in render_camera(STORE_CAMERA, seconds=60.0, fps=1.0, start=STORE_START):
        if int((cls == 0).sum()) >= 2:
            frames.append(img)
        if len(frames) == n:
            break
    if not frames:
        raise RuntimeError(f"no frame of {STORE_CAMERA} from {STORE_START} shows people")
    return frames


def jpeg(frame: np.ndarray, quality: int = 90) -> np.ndarray:
    """uint8[N] JPEG bytes, the ensemble's ``image`` input."""
    ok, buf = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ValueError("JPEG encoding failed")
    return buf.reshape(-1)


def jpeg_input_data(frames: list[np.ndarray], quality: int = 90) -> dict:
    """perf_analyzer ``--input-data`` JSON for the ensemble (input ``image``) from real frames."""
    rows = []
    for f in frames:
        buf = jpeg(f, quality)
        rows.append({"image": {"b64": base64.b64encode(buf.tobytes()).decode(), "shape": [int(buf.size)]}})
    return {"data": rows}


def run_level(model: str, url: str, concurrency: int, data_path: Path, window_ms: int, workdir: Path,
              stability_pct: int = 25, max_trials: int = 6) -> dict:
    """One perf_analyzer process at one concurrency over gRPC; its CSV row (``--verbose-csv``)."""
    cmd, env = perf_analyzer_cmd()
    part = f"c{concurrency}.csv"
    args = cmd + ["-m", model, "-u", url, "-i", "grpc", "--input-data", str(data_path), "--verbose-csv",
                  "--concurrency-range", str(concurrency), "-p", str(window_ms), "-s", str(stability_pct),
                  "-r", str(max_trials), "-f", part]
    p = subprocess.run(args, env=env, capture_output=True, text=True, cwd=workdir)
    if p.returncode != 0 and "Failed to obtain stable measurement" in p.stdout + p.stderr:
        args[args.index("-p") + 1] = str(2 * window_ms)  # noisy machine: one retry with longer windows
        p = subprocess.run(args, env=env, capture_output=True, text=True, cwd=workdir)
    if p.returncode != 0 or not (workdir / part).exists():
        tail = (p.stdout[-1200:] + "\n" + p.stderr[-1200:]).strip()
        raise PerfAnalyzerFailed(f"perf_analyzer {model} at concurrency {concurrency} failed (exit {p.returncode}): "
                                 f"{tail}")
    with open(workdir / part) as fh:
        rows = list(csv.DictReader(fh))
    if not rows:
        raise PerfAnalyzerFailed(f"perf_analyzer {model} at concurrency {concurrency} wrote an empty CSV")
    return rows[0]
