"""launchers.triton: a server left running (``TritonServer.keep``, as ``clients.demo
--keep-triton`` and ``launchers.triton up`` do) is found and stopped by ``down`` through its pid
file. The server here is a plain long-running process: what is under test is the pid file and
the signal, not Triton (the integration tests start the real one)."""
from __future__ import annotations

import subprocess
import sys

import launchers.triton as lt


def test_a_kept_server_is_stopped_by_down(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(lt, "RUN_DIR", tmp_path / ".run")
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        ports = lt.TritonPorts(18990, 18991, 18992)
        path = lt.TritonServer(proc, ports, tmp_path / "log").keep()
        assert path == tmp_path / ".run" / "triton-18991.pid"
        assert path.read_text() == str(proc.pid)
        assert lt.main(["down", "--grpc-port", "18991"]) == 0
        assert proc.wait(timeout=10) is not None  # stopped
        assert not path.exists()
        assert f"stopping pid {proc.pid}" in capsys.readouterr().out
    finally:
        if proc.poll() is None:
            proc.kill()


def test_down_without_a_pid_file_says_so(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(lt, "RUN_DIR", tmp_path / ".run")
    assert lt.main(["down", "--grpc-port", "18995"]) == 0
    assert "not running (no pid file)" in capsys.readouterr().out
