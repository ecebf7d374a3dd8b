"""The NVIDIA software stack of the GPU deployment, in one place (no imports, no I/O).

Contract: ``NGC[release]`` gives what the NGC images of that release ship and what the
project pins to match them; ``DEFAULT_RELEASE`` is the compose default (``TRITON_VERSION``).
A TensorRT plan is only loadable by the TensorRT version that built it, so:

- the ``engines`` image (``nvcr.io/nvidia/tensorrt:<release>-py3``) and the Triton image
  (``nvcr.io/nvidia/tritonserver:<release>-py3``) must be the same release;
- a plan built by hand (``pip install '.[gpu]'``) must use ``tensorrt==NGC[release].tensorrt``;
- ``cuda-python`` stays on the CUDA major of the image (13.x needs a CUDA 13 driver).

Sources: the NGC support matrix / Triton 24.10 release notes (TensorRT 10.5.0.18, CUDA 12.6.2,
Ubuntu 22.04, Python 3.10). tests/test_gpu_deploy.py holds pyproject.toml and the Dockerfiles
to this table.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class NgcRelease:
    tensorrt: str  # the pip version of the same TensorRT (pyproject.toml [gpu])
    tensorrt_full: str  # as the release notes print it
    cuda: str
    cuda_python: str  # pinned in docker/engines.Dockerfile and pyproject.toml [gpu]
    python: str


NGC: dict[str, NgcRelease] = {
    "24.10": NgcRelease(tensorrt="10.5.0", tensorrt_full="10.5.0.18", cuda="12.6.2", cuda_python="12.6.2.post1",
                        python="3.10"),
}
DEFAULT_RELEASE = "24.10"
