"""One ONNX model on the CPU through ONNX Runtime or OpenVINO, behind one small interface.

The CPU variant of a model (``configs/cpu.pbtxt``, served by ``serving/onnx_model.py``)
picks its runtime with config parameters; the benchmarks (``benchmarks/cpu_runtime.py``)
compare the same choices on the same ONNX::

    runner = load_runner(onnx_bytes, Runtime("openvino", threads=1, precision="bf16"))
    outputs = runner.run({"images": x})          # {output name: np.ndarray}

``precision`` applies to OpenVINO (its ``INFERENCE_PRECISION_HINT``): ``bf16`` runs the
convolutions in bfloat16 on CPUs with AVX-512 BF16 or AMX and falls back to f32 elsewhere;
``f32`` is exact. ONNX Runtime runs the graph's own precision (fp32, or int8 for a
quantised QDQ graph). ``opt_level`` is ONNX Runtime's graph optimisation level.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

RUNTIMES = ("onnxruntime", "openvino")
PRECISIONS = ("f32", "bf16")
OPT_LEVELS = ("disable", "basic", "extended", "all")


@dataclass(frozen=True, slots=True)
class Runtime:
    name: str = "onnxruntime"
    threads: int = 0  # 0 = the runtime's own choice (all cores)
    precision: str = "f32"  # OpenVINO only
    opt_level: str = "all"  # ONNX Runtime only

    def __post_init__(self) -> None:
        if self.name not in RUNTIMES:
            raise ValueError(f"runtime {self.name!r}: expected one of {', '.join(RUNTIMES)}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision {self.precision!r}: expected one of {', '.join(PRECISIONS)}")
        if self.opt_level not in OPT_LEVELS:
            raise ValueError(f"opt_level {self.opt_level!r}: expected one of {', '.join(OPT_LEVELS)}")
        if self.threads < 0:
            raise ValueError(f"threads {self.threads}: expected >= 0")

    @staticmethod
    def from_params(params: dict[str, str], where: str) -> "Runtime":
        """From Triton config parameters ``runtime``, ``intra_op_threads``, ``precision``, ``opt_level``."""
        try:
            return Runtime(name=params.get("runtime", "onnxruntime"),
                           threads=int(params.get("intra_op_threads", 0)),
                           precision=params.get("precision", "f32"),
                           opt_level=params.get("opt_level", "all"))
        except ValueError as e:
            raise ValueError(f"{where}: parameters: {e}") from None

    def label(self) -> str:
        t = self.threads or "auto"
        if self.name == "openvino":
            return f"OpenVINO {self.precision}, {t} thread(s)"
        return f"ONNX Runtime (opt {self.opt_level}), {t} thread(s)"


class Runner:
    """``run(feeds) -> {output name: array}``; ``inputs`` lists (name, shape) with -1/None for dynamic dims."""

    inputs: list[tuple[str, tuple]]
    outputs: list[str]

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        raise NotImplementedError


class _OrtRunner(Runner):
    def __init__(self, model: bytes | str, rt: Runtime):
        import onnxruntime as ort

        so = ort.SessionOptions()
        so.intra_op_num_threads = rt.threads
        so.inter_op_num_threads = 1
        so.graph_optimization_level = {
            "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL, "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
            "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED, "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
        }[rt.opt_level]
        self.session = ort.InferenceSession(model, so, providers=["CPUExecutionProvider"])
        self.inputs = [(i.name, tuple(d if isinstance(d, int) else -1 for d in i.shape)) for i in self.session.get_inputs()]
        self.outputs = [o.name for o in self.session.get_outputs()]

    def run(self, feeds):
        return dict(zip(self.outputs, self.session.run(self.outputs, feeds)))


class _OpenVinoRunner(Runner):
    def __init__(self, model: bytes | str, rt: Runtime):
        import openvino as ov

        core = ov.Core()
        m = core.read_model(model)
        config = {"INFERENCE_PRECISION_HINT": rt.precision, "PERFORMANCE_HINT": "LATENCY"}
        if rt.threads:
            config["INFERENCE_NUM_THREADS"] = rt.threads
        self.compiled = core.compile_model(m, "CPU", config)
        self.request = self.compiled.create_infer_request()
        self.inputs = [(p.get_any_name(), tuple(d.get_length() if d.is_static else -1 for d in p.get_partial_shape()))
                       for p in self.compiled.inputs]
        # OpenVINO may rename an output to the tensor feeding it; the ONNX graph's names and order hold
        self.outputs = _onnx_output_names(model)
        self._ports = list(self.compiled.outputs)
        if len(self._ports) != len(self.outputs):
            raise ValueError(f"OpenVINO compiled {len(self._ports)} outputs for the ONNX graph's {self.outputs}")

    def run(self, feeds):
        res = self.request.infer(feeds)
        # copies: the request's output buffers are reused by the next call
        return {n: np.array(res[p]) for n, p in zip(self.outputs, self._ports)}


def _onnx_output_names(model: bytes | str) -> list[str]:
    import onnx

    proto = onnx.load_from_string(model) if isinstance(model, bytes) else onnx.load(model, load_external_data=False)
    return [o.name for o in proto.graph.output]


def load_runner(model: bytes | str, rt: Runtime = Runtime()) -> Runner:
    """An ONNX model (file path or serialised bytes) ready to run on the CPU."""
    return _OpenVinoRunner(model, rt) if rt.name == "openvino" else _OrtRunner(model, rt)
