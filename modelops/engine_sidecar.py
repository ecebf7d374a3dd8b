"""Is a built TensorRT plan still the one that was asked for? (its ``<plan>.json`` sidecar vs the request)

    python -m modelops.engine_sidecar check --plan R/M/V/model.plan --onnx R/M/V/model.onnx \\
        --precision fp16 [--model M --repo R]

Contract: exit 0 and ``up to date`` when the plan and its sidecar exist and the sidecar records
the same ONNX (sha256, not mtime), precision, TensorRT version, GPU (name and compute
capability) and optimisation profile as this request on this machine; exit 1 and ``stale: ...``
naming every difference otherwise (a missing plan or sidecar, or a current TensorRT/GPU that
cannot be determined, counts as stale: the converter then says what is missing); exit 2 for
bad arguments. ``docker/build_engines.sh`` rebuilds exactly when this says stale, so changing
``TRT_PRECISION``, the image's TensorRT or the GPU rebuilds, and an unchanged request does not.

The sidecar is what ``modelops.tensorrt_engine.build_engine`` writes beside the engine
(``precision``, ``input_sha256``, ``tensorrt``, ``profile``, and ``gpu`` /
``compute_capability`` from ``gpu_identity`` below). TensorRT and cuda-python are imported
only to read the current versions; nothing here builds.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

from modelops.engine_spec import BuildSpec, TensorRTUnavailable, cuda_runtime, plan_profile, validate_spec

COMPARED = ("input_sha256", "precision", "tensorrt", "gpu", "compute_capability", "profile")


def gpu_identity(cudart, device: int = 0) -> dict:
    """{"gpu": name, "compute_capability": "major.minor"} of a CUDA device (cuda-python runtime module)."""
    err, props = cudart.cudaGetDeviceProperties(device)
    if int(err) != 0:
        raise RuntimeError(f"cudaGetDeviceProperties({device}): {err}")
    name = props.name.decode(errors="replace") if isinstance(props.name, bytes) else str(props.name)
    return {"gpu": name.strip("\x00 "), "compute_capability": f"{props.major}.{props.minor}"}


def current_build_env() -> dict:
    """TensorRT version and GPU of this machine (what a build now would record). Raises RuntimeError."""
    try:
        import tensorrt as trt
    except ImportError as e:
        raise RuntimeError("TensorRT is not installed") from e
    try:
        cudart = cuda_runtime()
    except TensorRTUnavailable as e:
        raise RuntimeError(str(e)) from e
    return {"tensorrt": trt.__version__, **gpu_identity(cudart)}


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while b := f.read(1 << 20):
            h.update(b)
    return h.hexdigest()


def requested_profile(onnx: Path, model: str | None, repo: Path | None) -> dict:
    """The profile the converter would build now (the config's max_batch_size and dims), as the sidecar stores it."""
    spec = validate_spec(BuildSpec(input=Path(onnx), output=Path(onnx).with_suffix(".plan"), model=model, repo=repo),
                         for_build=False)
    _, shapes = plan_profile(spec)
    return {k: {"min": list(v[0]), "opt": list(v[1]), "max": list(v[2])} for k, v in shapes.items()}


def request(onnx: Path, precision: str, model: str | None = None, repo: Path | None = None,
            env: dict | None = None) -> dict:
    """What a plan built now would record; ``env`` (TensorRT, GPU) defaults to ``current_build_env()``."""
    return {"input_sha256": sha256(onnx), "precision": precision, "profile": requested_profile(onnx, model, repo),
            **(env if env is not None else current_build_env())}


def stale_reasons(plan: Path, wanted: dict) -> list[str]:
    """[] when ``plan`` and its sidecar match ``wanted``; else one line per difference."""
    plan = Path(plan)
    side = plan.with_suffix(plan.suffix + ".json")
    if not plan.is_file():
        return [f"no {plan.name}"]
    if not side.is_file():
        return [f"no {side.name} (the plan's build record): cannot tell what it was built from"]
    try:
        built = json.loads(side.read_text())
    except (OSError, ValueError) as e:
        return [f"{side.name} unreadable ({e})"]
    out = []
    for key in COMPARED:
        if key in wanted and built.get(key) != wanted[key]:
            was, now = built.get(key, "not recorded"), wanted[key]
            if key == "input_sha256":
                out.append("the ONNX changed (sha256)")
            else:
                out.append(f"{key} {json.dumps(was)} -> {json.dumps(now)}")
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m modelops.engine_sidecar", description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("check", help="exit 0 if the plan matches the request, 1 (naming why) if it must be rebuilt")
    c.add_argument("--plan", type=Path, required=True)
    c.add_argument("--onnx", type=Path, required=True)
    c.add_argument("--precision", required=True, choices=("fp32", "fp16", "int8"))
    c.add_argument("--model", default=None)
    c.add_argument("--repo", type=Path, default=None)
    a = ap.parse_args(argv)
    if not a.onnx.is_file():
        print(f"error: --onnx {a.onnx}: file not found", file=sys.stderr)
        return 2
    try:
        env = current_build_env()
    except RuntimeError as e:
        print(f"stale: cannot determine this machine's TensorRT/GPU ({e})")
        return 1
    try:
        wanted = request(a.onnx, a.precision, a.model, a.repo, env)
    except ValueError as e:  # EngineError: the converter would refuse too; let it say so
        print(f"stale: {e}")
        return 1
    reasons = stale_reasons(a.plan, wanted)
    print("stale: " + "; ".join(reasons) if reasons else "up to date")
    return 1 if reasons else 0


if __name__ == "__main__":
    sys.exit(main())
