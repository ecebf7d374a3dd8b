"""A fake TensorRT 10 + cuda-python runtime for ``modelops.tensorrt_engine.build_engine`` on a CPU.

Only the calls the converter makes, with the TensorRT 10 names (``create_network(0)``,
``set_memory_pool_limit``, ``build_serialized_network``, ``num_io_tensors`` /
``get_tensor_name``, ``IInt8EntropyCalibrator2``). ``build_serialized_network`` drives the INT8
calibrator as TensorRT does: ``get_batch(names)`` until it returns None, reading each batch
from the "device" buffer the calibrator filled with ``cudaMemcpy``; the batches are kept in
``FakeTRT.calibration_batches`` for the test to inspect.
"""
from __future__ import annotations

import ctypes
import types

import numpy as np


class Logger:
    WARNING = 2

    def __init__(self, level=2):
        self.level = level


class Network:
    def __init__(self):
        self.inputs = []

    @property
    def num_inputs(self):
        return len(self.inputs)

    def get_input(self, i):
        return types.SimpleNamespace(name=self.inputs[i])


class OnnxParser:
    def __init__(self, network, logger):
        self.network = network
        self.num_errors = 0

    def parse_from_file(self, path):
        import onnx

        return self._network_of(onnx.load(path))

    def parse(self, model: bytes, path=None):
        """TensorRT parses serialised ONNX too; the fake records the op types it was given."""
        import onnx

        return self._network_of(onnx.load_from_string(model))

    def _network_of(self, m):
        inits = {t.name for t in m.graph.initializer}
        self.network.inputs = [i.name for i in m.graph.input if i.name not in inits]
        self.network.op_types = [n.op_type for n in m.graph.node]
        return True


class Profile:
    def __init__(self):
        self.shapes = {}

    def set_shape(self, name, mn, opt, mx):
        self.shapes[name] = (tuple(mn), tuple(opt), tuple(mx))


class TimingCache:
    def serialize(self):
        return b"timing"


class Config:
    def __init__(self):
        self.flags, self.profiles, self.int8_calibrator, self.calibration_profile = set(), [], None, None

    def set_memory_pool_limit(self, pool, size):
        assert pool == "WORKSPACE" and size > 0

    def add_optimization_profile(self, p):
        self.profiles.append(p)

    def create_timing_cache(self, data):
        return TimingCache()

    def set_timing_cache(self, cache, ignore_mismatch):
        return True

    def get_timing_cache(self):
        return TimingCache()

    def set_flag(self, flag):
        self.flags.add(flag)

    def set_calibration_profile(self, p):
        self.calibration_profile = p


class Builder:
    state = None  # set per fake by make()
    memory = None

    def __init__(self, logger):
        pass

    def create_network(self, flags):
        assert flags == 0, "TensorRT 10: explicit batch is the only mode, flags 0"
        return Network()

    def create_builder_config(self):
        return Config()

    def create_optimization_profile(self):
        return Profile()

    def build_serialized_network(self, network, config):
        cal = config.int8_calibrator
        if cal is not None:
            name = network.inputs[0]
            shape = config.profiles[0].shapes[name][1]  # calibration runs at the opt shape
            assert shape[0] == cal.get_batch_size()
            while (ptrs := cal.get_batch([name])) is not None:
                raw = self.memory[ptrs[0]][: int(np.prod(shape)) * 4]
                self.state.calibration_batches.append(np.frombuffer(raw, np.float32).reshape(shape).copy())
            cal.write_calibration_cache(b"calibration-table")
        return b"fake-plan"


class Engine:
    num_io_tensors = 2

    def get_tensor_name(self, i):
        return ["images", "output"][i]


class Runtime:
    def __init__(self, logger):
        pass

    def deserialize_cuda_engine(self, data):
        return Engine()


class IInt8EntropyCalibrator2:
    def __init__(self):
        pass


def make(gpu_name: str = "Fake GPU", cc: tuple[int, int] = (8, 9)):
    """(trt module, cudart module) fakes; ``trt.state.calibration_batches`` collects what was fed."""
    memory: dict[int, bytes] = {}
    state = types.SimpleNamespace(calibration_batches=[])
    builder = type("Builder", (Builder,), {"state": state, "memory": memory})
    trt = types.SimpleNamespace(
        __version__="10.5.0", Logger=Logger, Builder=builder, OnnxParser=OnnxParser, Runtime=Runtime,
        MemoryPoolType=types.SimpleNamespace(WORKSPACE="WORKSPACE"),
        BuilderFlag=types.SimpleNamespace(FP16="FP16", INT8="INT8"),
        IInt8EntropyCalibrator2=IInt8EntropyCalibrator2, state=state,
        init_libnvinfer_plugins=lambda logger, namespace: state.__dict__.update(plugins_registered=True))

    def cudaMalloc(n):
        ptr = 0x1000 + len(memory) * 0x100000
        memory[ptr] = bytes(n)
        return 0, ptr

    def cudaMemcpy(dst, src, n, kind):
        assert kind == "H2D"
        memory[dst] = ctypes.string_at(src, n)
        return (0,)

    def cudaFree(ptr):
        memory.pop(ptr, None)
        return (0,)

    props = types.SimpleNamespace(name=gpu_name.encode(), major=cc[0], minor=cc[1])
    cudart = types.SimpleNamespace(
        cudaMalloc=cudaMalloc, cudaMemcpy=cudaMemcpy, cudaFree=cudaFree,
        cudaMemcpyKind=types.SimpleNamespace(cudaMemcpyHostToDevice="H2D"),
        cudaGetDeviceCount=lambda: (0, 1), cudaGetDeviceProperties=lambda d: (0, props))
    return trt, cudart
