"""The GPU deployment's files, parsed (issue 23, fixes 2, 3, 5, 7, 8; no Docker engine here).

Dockerfiles are read instruction by instruction, the compose file as YAML, pins from
pyproject.toml; versions are held to modelops/gpu_stack.py (what the NGC release ships).
"""
from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
from pathlib import Path

import yaml

from modelops.gpu_stack import DEFAULT_RELEASE, NGC

ROOT = Path(__file__).resolve().parents[1]
SERVICES = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
# the [gpu] extra's list (tomllib is 3.11+, the project supports 3.10)
GPU_EXTRA = re.findall(r'"([^"]+)"', re.search(r"^gpu = \[(.*?)\]", (ROOT / "pyproject.toml").read_text(), re.M)[1])


def dockerfile(name: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    text = re.sub(r"\\\n", " ", (ROOT / "docker" / name).read_text())
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            instr, _, rest = line.partition(" ")
            out.append((instr.upper(), rest.strip()))
    return out


def pip_pins(instructions: list[tuple[str, str]]) -> dict[str, str]:
    pins = {}
    for instr, rest in instructions:
        if instr == "RUN" and "pip install" in rest:
            for tok in shlex.split(rest):
                if m := re.fullmatch(r"([A-Za-z0-9_.-]+)==([^\s;&]+)", tok):
                    pins[m[1].lower()] = m[2]
    return pins


def extra_pins() -> dict[str, str]:
    return {m[1].lower(): m[2] for r in GPU_EXTRA if (m := re.fullmatch(r"([A-Za-z0-9_.-]+)\s*==\s*(\S+)", r))}


def test_compose_defaults_to_the_release_of_the_stack_table():
    assert f"${{TRITON_VERSION:-{DEFAULT_RELEASE}}}" in SERVICES["triton"]["build"]["args"]["TRITON_VERSION"]
    assert SERVICES["engines"]["build"]["args"]["TRT_VERSION"] == SERVICES["triton"]["build"]["args"]["TRITON_VERSION"]


def test_fix2_engines_image_installs_the_cuda_python_the_converter_imports():
    pins = pip_pins(dockerfile("engines.Dockerfile"))
    assert pins.get("cuda-python") == NGC[DEFAULT_RELEASE].cuda_python, pins
    assert int(pins["cuda-python"].split(".")[0]) < 13
    assert "onnxruntime" in pins  # the detector that cuts OSNet's calibration crops
    runs = " ".join(r for i, r in dockerfile("engines.Dockerfile") if i == "RUN")
    assert "from cuda.bindings import runtime" in runs  # the build fails there, not at `docker compose up`
    # the converter's import is the one installed
    assert "from cuda.bindings import runtime as cudart" in (ROOT / "modelops" / "engine_spec.py").read_text()


def test_fix3_gpu_extra_pins_the_tensorrt_of_the_triton_image_and_cuda_python_below_13():
    pins = extra_pins()
    assert pins.get("tensorrt") == NGC[DEFAULT_RELEASE].tensorrt, GPU_EXTRA
    assert pins.get("cuda-python") == NGC[DEFAULT_RELEASE].cuda_python, GPU_EXTRA
    assert NGC[DEFAULT_RELEASE].tensorrt_full.startswith(pins["tensorrt"])
    assert pins["cuda-python"] == pip_pins(dockerfile("engines.Dockerfile"))["cuda-python"]


def test_fix5_int8_is_one_setting_with_the_container_path():
    eng = SERVICES["engines"]
    calib = eng["environment"]["TRT_CALIBRATION_DIR"]
    assert calib == "/calibration"
    mounts = {v.split(":")[1]: v.split(":")[0] for v in eng["volumes"]}
    assert mounts.get(calib) == "./data/calibration"
    assert "${TRT_PRECISION:-fp16}" == eng["environment"]["TRT_PRECISION"]
    script = (ROOT / "docker" / "build_engines.sh").read_text()
    assert "CALIB=${TRT_CALIBRATION_DIR:-/calibration}" in script
    env_example = (ROOT / ".env.example").read_text()
    assert not re.search(r"^TRT_CALIBRATION_DIR=", env_example, re.M)


def test_fix7_images_keep_the_nvidia_entrypoint_and_run_the_server_as_cmd():
    for name, first in (("triton.Dockerfile", "tritonserver"), ("engines.Dockerfile", "bash")):
        instr = dockerfile(name)
        assert not [r for i, r in instr if i == "ENTRYPOINT"], f"{name} replaces /opt/nvidia/nvidia_entrypoint.sh"
        [cmd] = [json.loads(r) for i, r in instr if i == "CMD"]
        assert cmd[0] == first, (name, cmd)
    [cmd] = [json.loads(r) for i, r in dockerfile("triton.Dockerfile") if i == "CMD"]
    assert "--model-repository=/models" in cmd and not any("model-config-name" in c for c in cmd)
    for name in ("triton", "engines"):
        assert "entrypoint" not in SERVICES[name], name
        command = SERVICES[name].get("command")
        if command is not None:  # a compose command replaces CMD: it must be the whole command
            assert (command if isinstance(command, list) else shlex.split(command))[0] in ("tritonserver", "bash")


def test_fix8_readme_gpu_path_starts_with_make_download_models():
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("## GPU path"):]
    first = re.search(r"```bash\n(.*?)\n", section, re.S)[1]
    assert first.startswith("make download-models"), first
    assert "bash scripts/download_models.sh" not in readme
    assert "docs/gpu.md" in section
    make = (ROOT / "Makefile").read_text()
    assert re.search(r"^download-models: setup\b", make, re.M)


def test_fix8_download_script_without_venv_names_the_make_target(tmp_path):
    env = {**os.environ, "PY": str(tmp_path / "no-venv" / "python")}
    r = subprocess.run(["bash", str(ROOT / "scripts" / "download_models.sh")], env=env, capture_output=True,
                       text=True, timeout=30)
    assert r.returncode == 2 and "make download-models" in r.stderr, r.stderr
