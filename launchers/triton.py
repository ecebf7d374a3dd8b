"""Run a real Triton Inference Server locally, on the CPU, from the nvidia-pytriton wheel.

The wheel carries a genuine ``tritonserver`` binary with the python backend only (see
docs/platform.md), so the CPU variants of the models (``configs/cpu.pbtxt``: ONNX Runtime inside
the python backend) are served with ``--model-config-name=cpu``.

    python -m launchers.triton up      # background, waits until ready, prints URLs
    python -m launchers.triton status
    python -m launchers.triton down

From Python (tests, benchmarks)::

    server = start_triton(TritonPorts.free())
    ...
    server.stop()
"""
from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
MODEL_REPOSITORY = REPO_ROOT / "model_repository"
RUN_DIR = REPO_ROOT / ".run"
# Models loaded at start in explicit mode. The ensemble brings its steps; osnet is
# called by BLS from postprocess, so Triton cannot know it is needed: list it.
DEFAULT_MODELS = ("retail_pipeline", "osnet_x0_25")


class TritonStartError(RuntimeError):
    """The server binary is missing, exited, or did not become ready in time."""


@dataclass(frozen=True, slots=True)
class TritonPorts:
    http: int = 8000
    grpc: int = 8001
    metrics: int = 8002

    @staticmethod
    def free() -> "TritonPorts":
        socks = [socket.socket() for _ in range(3)]
        try:
            for s in socks:
                s.bind(("127.0.0.1", 0))
            return TritonPorts(*(s.getsockname()[1] for s in socks))
        finally:
            for s in socks:
                s.close()


def _pytriton_dirs() -> tuple[Path, Path]:
    """(tritonserver root inside the wheel, its bundled shared libraries)."""
    try:
        import pytriton  # noqa: F401  (only to locate the wheel)
    except ImportError as e:
        raise TritonStartError("nvidia-pytriton is not installed: run `make setup`") from e
    root = Path(pytriton.__file__).resolve().parent / "tritonserver"
    libs = root.parents[1] / "nvidia_pytriton.libs"
    if not (root / "bin" / "tritonserver").exists():
        raise TritonStartError(f"no tritonserver binary under {root}")
    return root, libs


def _backend_dir(root: Path) -> Path:
    """A backends dir whose python backend has the stub for this interpreter beside it."""
    ver = f"{sys.version_info.major}.{sys.version_info.minor}"
    stub = root / "python_backend_stubs" / ver / "triton_python_backend_stub"
    if not stub.exists():
        raise TritonStartError(f"no python backend stub for Python {ver} in {stub.parent.parent}")
    dst = RUN_DIR / "backends" / "python"
    dst.mkdir(parents=True, exist_ok=True)
    for src in list((root / "backends" / "python").iterdir()) + [stub]:
        target = dst / src.name
        if src.is_file() and (not target.exists() or target.stat().st_size != src.stat().st_size):
            shutil.copy2(src, target)
    return dst.parent


def server_env(libs: Path) -> dict[str, str]:
    """Environment for the server: its libraries, and our venv + repo for model.py imports.

    The stub embeds libpython and finds its prefix through ``python3`` on PATH, so this
    interpreter's bin dir goes first; the repo root (for ``serving``) and site-packages
    are also given through PYTHONPATH.
    """
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    if sys.prefix != sys.base_prefix:
        env["VIRTUAL_ENV"] = sys.prefix
    env["LD_LIBRARY_PATH"] = os.pathsep.join(filter(None, [str(libs), env.get("LD_LIBRARY_PATH", "")]))
    paths = [str(REPO_ROOT), sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]]
    env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(filter(None, paths + [env.get("PYTHONPATH", "")])))
    # ONNX Runtime and OpenCV inside model instances: leave thread choice to each model config.
    env.setdefault("OMP_NUM_THREADS", "1")
    return env


@dataclass
class TritonServer:
    process: subprocess.Popen
    ports: TritonPorts
    log_path: Path

    @property
    def grpc_url(self) -> str:
        return f"localhost:{self.ports.grpc}"

    @property
    def http_url(self) -> str:
        return f"http://localhost:{self.ports.http}"

    @property
    def metrics_url(self) -> str:
        return f"http://localhost:{self.ports.metrics}/metrics"

    def is_alive(self) -> bool:
        return self.process.poll() is None

    def stop(self, timeout: float = 30.0) -> None:
        stop_pid(self.process.pid, timeout)
        with contextlib.suppress(Exception):
            self.process.wait(timeout=1)

    def keep(self) -> Path:
        """Leave the server running past this process: its pid file, which ``python -m
        launchers.triton down`` and ``make triton-down`` stop it by."""
        path = _pid_file(self.ports)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(str(self.process.pid))
        return path


def is_ready(http_port: int, timeout: float = 1.0) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{http_port}/v2/health/ready", timeout=timeout) as r:
            return r.status == 200
    except Exception:
        return False


def _tail(path: Path, n: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-n:])
    except OSError:
        return "(no log)"


def start_triton(
    ports: TritonPorts = TritonPorts(),
    model_repository: Path = MODEL_REPOSITORY,
    models: tuple[str, ...] = DEFAULT_MODELS,
    config_name: str | None = "cpu",
    log_path: Path | None = None,
    ready_timeout: float = 180.0,
    detach: bool = False,
    extra_args: tuple[str, ...] = (),
) -> TritonServer:
    """Start tritonserver in explicit model-control mode and wait until it is ready."""
    root, libs = _pytriton_dirs()
    backends = _backend_dir(root)
    RUN_DIR.mkdir(exist_ok=True)
    log_path = log_path or RUN_DIR / f"triton-{ports.grpc}.log"
    args = [
        str(root / "bin" / "tritonserver"),
        f"--model-repository={Path(model_repository).resolve()}",
        f"--backend-directory={backends}",
        f"--http-port={ports.http}", f"--grpc-port={ports.grpc}", f"--metrics-port={ports.metrics}",
        "--model-control-mode=explicit",
        *(f"--load-model={m}" for m in models),
        "--exit-on-error=true",
        "--log-verbose=0",
        *extra_args,
    ]
    if config_name:
        args.append(f"--model-config-name={config_name}")
    log = open(log_path, "ab")
    proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=server_env(libs),
                            start_new_session=detach, cwd=REPO_ROOT)
    log.close()
    server = TritonServer(proc, ports, log_path)
    deadline = time.monotonic() + ready_timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise TritonStartError(f"tritonserver exited with code {proc.returncode}; log {log_path}:\n{_tail(log_path)}")
        if is_ready(ports.http):
            return server
        time.sleep(0.25)
    server.stop()
    raise TritonStartError(f"tritonserver not ready after {ready_timeout:.0f}s; log {log_path}:\n{_tail(log_path)}")


def stop_pid(pid: int, timeout: float = 30.0) -> bool:
    """SIGTERM (Triton finishes in-flight requests), then SIGKILL after ``timeout``."""
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return False
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        with contextlib.suppress(ChildProcessError):
            if os.waitpid(pid, os.WNOHANG)[0] == pid:
                return True
        time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    return True


def _pid_file(ports: TritonPorts) -> Path:
    return RUN_DIR / f"triton-{ports.grpc}.pid"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m launchers.triton", description=__doc__.split("\n")[0])
    ap.add_argument("action", choices=["up", "down", "status"])
    ap.add_argument("--http-port", type=int, default=int(os.environ.get("TRITON_HTTP_PORT", 8000)))
    ap.add_argument("--grpc-port", type=int, default=int(os.environ.get("TRITON_GRPC_PORT", 8001)))
    ap.add_argument("--metrics-port", type=int, default=int(os.environ.get("TRITON_METRICS_PORT", 8002)))
    ap.add_argument("--model-repository", type=Path, default=MODEL_REPOSITORY)
    ap.add_argument("--config-name", default="cpu", help="model config variant ('' for the default config.pbtxt)")
    a = ap.parse_args(argv)
    ports = TritonPorts(a.http_port, a.grpc_port, a.metrics_port)
    pid_file = _pid_file(ports)
    if a.action == "down":
        if not pid_file.exists():
            print("triton: not running (no pid file)")
            return 0
        pid = int(pid_file.read_text())
        print(f"triton: stopping pid {pid}" if stop_pid(pid) else f"triton: pid {pid} was not running")
        pid_file.unlink(missing_ok=True)
        return 0
    if a.action == "status" or is_ready(ports.http):
        up = is_ready(ports.http)
        print(f"triton: {'ready' if up else 'not running'} (http :{ports.http}, grpc :{ports.grpc}, metrics :{ports.metrics})")
        return 0 if up else 1
    if not any(Path(a.model_repository).glob("yolov8n/[0-9]*/model.onnx")):
        print("triton: no built models in the repository: run `make models` first", file=sys.stderr)
        return 2
    log_path = RUN_DIR / "triton.log"
    try:
        server = start_triton(ports, a.model_repository, config_name=a.config_name or None,
                              log_path=log_path, detach=True)
    except TritonStartError as e:
        print(f"triton: {e}", file=sys.stderr)
        return 1
    server.keep()
    print(f"triton: ready (pid {server.process.pid}, log {log_path})\n"
          f"  HTTP    {server.http_url}\n  gRPC    {server.grpc_url}\n  metrics {server.metrics_url}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
