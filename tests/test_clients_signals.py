"""What SIGINT/SIGTERM do to the clients process (clients/signals.py).

The policy on its own (a fake clock), then real signals to a real ``python -m clients.run``
against a real local Triton (fixtures): a repeated SIGTERM is one request (exit 0, nothing
lost), two SIGINTs a few ms apart are one request, and only a second SIGINT >= 1 s after
the first forces the fast exit, which still puts what the sinks hold in memory to the
JSON files and the InfluxDB spill directory.
"""
from __future__ import annotations

import ast
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import yaml

from clients.signals import FAST_EXIT_CODE, StopAction, StopSignals, close_sinks_within, process_signal_handlers
from launchers.ports import free_port as closed_port  # nothing listens there

REPO = Path(__file__).resolve().parents[1]
CAM = "cam-checkout-1"  # a camera of configs/store.yaml: queue + service zones, people in view at 18:30
SEED_FILES = ("detections.json", "journeys.json", "queue_metrics.json", "heatmap.json", "alerts.json")


# --------------------------------------------------------------------------- the policy

class FakeClock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def test_repeated_sigterm_is_the_same_request():
    s = StopSignals(clock=FakeClock())
    assert [s.classify("SIGTERM") for _ in range(3)] == [StopAction.STOP, StopAction.REPEAT, StopAction.REPEAT]
    assert s.stopped_by == "SIGTERM"


def test_only_a_second_sigint_a_second_later_is_a_fast_exit():
    clock = FakeClock()
    s = StopSignals(clock=clock)
    assert s.classify("SIGINT") is StopAction.STOP
    clock.t += 0.004  # one Ctrl-C delivered twice (process and group)
    assert s.classify("SIGINT") is StopAction.REPEAT
    clock.t += 0.5
    assert s.classify("SIGTERM") is StopAction.REPEAT
    assert s.classify("SIGINT") is StopAction.REPEAT  # 0.504 s after the first SIGINT
    clock.t += 0.496
    assert s.classify("SIGINT") is StopAction.FAST_EXIT  # 1.0 s after the first


def test_sigterm_then_sigints_counts_from_the_first_sigint():
    clock = FakeClock()
    s = StopSignals(clock=clock)
    assert s.classify("--max-seconds 5") is StopAction.STOP
    clock.t += 5
    assert s.classify("SIGTERM") is StopAction.REPEAT
    assert s.classify("SIGINT") is StopAction.REPEAT  # the first SIGINT: no fast exit yet
    clock.t += 1.2
    assert s.classify("SIGINT") is StopAction.FAST_EXIT
    assert s.stopped_by == "--max-seconds 5"


def test_runner_repeated_stop_requests_do_not_abort(caplog):
    from clients.runner import Runner

    runner = Runner(config=None, processor_factory=None, sinks=[])  # type: ignore[arg-type]
    with caplog.at_level("INFO"):
        for _ in range(3):
            runner.request_stop("SIGTERM")
        runner.request_stop("SIGINT")
    assert runner.stop.is_set() and runner.stopped_by == "SIGTERM"
    assert "aborting" not in caplog.text and caplog.text.count("already stopping") == 3


class SlowSink:
    def __init__(self, hang_s: float = 0.0) -> None:
        self.hang_s = hang_s
        self.closed_with: list = []

    def write(self, records) -> None: ...
    def flush(self) -> None: ...

    def close(self, timeout: float | None = None) -> None:
        self.closed_with.append(timeout)
        time.sleep(self.hang_s)

    def stats(self) -> dict:
        return {"closes": len(self.closed_with)}


class PlainSink(SlowSink):
    def close(self) -> None:  # type: ignore[override]
        self.closed_with.append("plain")


def test_close_sinks_within_bounds_each_sink():
    hung, fine, plain = SlowSink(hang_s=30), SlowSink(), PlainSink()
    t = time.monotonic()
    stats = close_sinks_within([hung, fine, plain], flush_s=0.5, bound_s=0.3)
    assert time.monotonic() - t < 5
    assert hung.closed_with == [0.5] and fine.closed_with == [0.5] and plain.closed_with == ["plain"]
    assert stats == {"SlowSink": {"closes": 1}, "PlainSink": {"closes": 1}}


def test_process_signal_handlers_route_and_restore():
    seen: list[str] = []
    before = signal.getsignal(signal.SIGTERM)
    with process_signal_handlers(seen.append):
        os.kill(os.getpid(), signal.SIGTERM)
        deadline = time.monotonic() + 10
        while not seen and time.monotonic() < deadline:
            time.sleep(0.01)
    assert seen == ["SIGTERM"]
    assert signal.getsignal(signal.SIGTERM) == before


# --------------------------------------------------------------------------- real signals, real process

def write_app_config(tmp: Path, grpc_url: str, flush_every: int = 500, influx_spill: Path | None = None,
                     **triton) -> Path:
    sinks: dict = {"json": {"output_dir": str(tmp / "out"), "flush_every": flush_every, "rotate": "none",
                            "detections": "all"},
                   "influxdb": {"enabled": False}}
    if influx_spill is not None:  # a server that is away: points stay in memory, then spill
        sinks["influxdb"] = {"enabled": True, "version": 1, "url": f"http://127.0.0.1:{closed_port()}",
                             "database": "sig", "spill_dir": str(influx_spill),
                             "flush_interval_s": 0.2, "close_timeout_s": 30, "health_interval_s": 0,
                             "retry": {"initial_s": 0.2, "max_s": 0.5}, "triton_metrics": {"enabled": False}}
    cfg = {"triton": {"url": grpc_url, "max_in_flight_per_stream": 2, **triton},
           "streams": [{"id": CAM, "type": "simulator", "start_time": "2024-01-15T18:30:00Z", "seconds": 120,
                        "fps": 5, "seed": 7}],
           "analytics": {"store_config": str(REPO / "configs" / "store.yaml")},
           "sinks": sinks}
    p = tmp / "app.yaml"
    p.write_text(yaml.safe_dump(cfg))
    return p


class Clients:
    """``python -m clients.run`` in its own process group, its output collected line by line."""

    def __init__(self, tmp: Path, cfg: Path) -> None:
        self.health = tmp / "health.json"
        self.summary = tmp / "summary.json"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "clients.run", "--config", str(cfg), "--health-interval", "0.3",
             "--health-file", str(self.health), "--summary-json", str(self.summary)],
            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
        self.lines: list[str] = []
        self._pump = threading.Thread(target=self._read, daemon=True)
        self._pump.start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.lines.append(line)

    @property
    def out(self) -> str:
        return "".join(self.lines)

    def wait_for(self, what: str, cond, timeout: float = 180.0) -> None:
        deadline = time.monotonic() + timeout
        while not cond():
            assert self.proc.poll() is None, f"exited ({self.proc.returncode}) before {what}:\n{self.out[-3000:]}"
            assert time.monotonic() < deadline, f"no {what} within {timeout:.0f} s:\n{self.out[-3000:]}"
            time.sleep(0.05)

    def frames_processed(self) -> int:
        try:
            doc = json.loads(self.health.read_text())
        except (OSError, ValueError):
            return 0
        return int((doc.get("streams") or {}).get(CAM, {}).get("frames_processed") or 0)

    def wait_exit(self, timeout: float = 120.0) -> int:
        rc = self.proc.wait(timeout)
        self._pump.join(10)
        return rc

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(30)


def seed_files(out: Path) -> dict[str, list]:
    files = {f.name: json.loads(f.read_text()) for f in out.glob("*.json")}  # complete, valid JSON
    # the seed's five, and the store-level files of the sample store's visits
    assert set(SEED_FILES) <= set(files) <= set(SEED_FILES) | {"camera_journeys.json", "store_kpis.json",
                                                                 "floor_heatmap.json"}
    return files


def check_summary_in_files(tmp: Path, summary: dict) -> None:
    """Every record the run summary counts for the JSON sink is in the files."""
    counted = summary["sinks"]["JsonFilesSink"]["files"]
    files = seed_files(tmp / "out")
    assert {k: len(v) for k, v in files.items()} == counted
    assert counted["detections.json"] > 0 and counted["heatmap.json"] > 0
    assert counted["journeys.json"] > 0  # open journeys closed by the end-of-run flush


def test_two_sigterms_back_to_back_stop_once(triton_server, tmp_path):
    """`timeout` signals the process and its group: two SIGTERMs within a millisecond are
    one stop request: clean exit 0, every record counted is in the outputs."""
    c = Clients(tmp_path, write_app_config(tmp_path, triton_server.grpc_url))
    try:
        c.wait_for("20 frames processed", lambda: c.frames_processed() >= 20)
        os.killpg(c.proc.pid, signal.SIGTERM)
        os.killpg(c.proc.pid, signal.SIGTERM)
        rc = c.wait_exit()
    finally:
        c.kill()
    out = c.out
    assert rc == 0, out[-3000:]
    assert "aborting" not in out and "fast exit" not in out
    assert "stopping (SIGTERM)" in out  # the second may be merged into the first by the kernel, or logged as a repeat
    summary = json.loads(c.summary.read_text())
    assert summary["stopped_by"] == "SIGTERM"
    st = summary["streams"][CAM]
    assert 20 <= st["frames_processed"] < 600 and st["frames_processed"] + st["frames_lost"] == st["frames_sent"]
    check_summary_in_files(tmp_path, summary)
    assert json.loads(c.health.read_text())["status"] == "stopped"


def test_two_sigints_within_milliseconds_stop_once(triton_server, tmp_path):
    """One Ctrl-C delivered twice (a few ms apart) is one request, not a fast exit."""
    c = Clients(tmp_path, write_app_config(tmp_path, triton_server.grpc_url))
    try:
        c.wait_for("20 frames processed", lambda: c.frames_processed() >= 20)
        os.kill(c.proc.pid, signal.SIGINT)
        time.sleep(0.003)
        os.kill(c.proc.pid, signal.SIGINT)
        rc = c.wait_exit()
    finally:
        c.kill()
    out = c.out
    assert rc == 0, out[-3000:]
    assert "fast exit" not in out and "aborting" not in out and "Traceback" not in out
    summary = json.loads(c.summary.read_text())
    assert summary["stopped_by"] == "SIGINT"
    check_summary_in_files(tmp_path, summary)


def spilled_points(spill: Path) -> int:
    return sum(len(p.read_text().splitlines()) for p in spill.glob("spill-*.lp"))


def test_second_sigint_a_second_later_is_a_fast_exit_that_keeps_the_sinks_memory(own_triton, tmp_path):
    """Ctrl-C, then Ctrl-C again >= 1 s later while the run waits on Triton (stopped with
    SIGSTOP: in-flight frames would wait for the request timeout): exit 130 at once, and
    what the sinks held only in memory (JSON records between seals, InfluxDB points with
    the server away) is in the files and the spill directory, as the exit log counts it."""
    spill = tmp_path / "spill"
    cfg = write_app_config(tmp_path, own_triton.grpc_url, flush_every=1_000_000, influx_spill=spill,
                           request_timeout_s=120)
    c = Clients(tmp_path, cfg)
    server = own_triton.process
    stopped = False
    try:
        c.wait_for("15 frames processed", lambda: c.frames_processed() >= 15)
        assert [len(v) for v in seed_files(tmp_path / "out").values()] == [0] * 5  # all still in memory
        server.send_signal(signal.SIGSTOP)
        stopped = True
        first = time.monotonic()
        os.kill(c.proc.pid, signal.SIGINT)
        c.wait_for("the stop to start", lambda: "stopping (SIGINT)" in c.out, 60)
        time.sleep(max(0.0, first + 1.2 - time.monotonic()))  # the gap that makes it a second Ctrl-C
        assert c.proc.poll() is None  # still draining: the frames in flight wait for Triton
        os.kill(c.proc.pid, signal.SIGINT)
        rc = c.wait_exit(60)
    finally:
        c.kill()
        if stopped:
            server.send_signal(signal.SIGCONT)
    out = c.out
    assert rc == FAST_EXIT_CODE, out[-3000:]
    assert "fast exit" in out and "Traceback" not in out
    m = re.search(r"fast exit: sinks closed: (\{.*\})$", out, re.M)
    assert m, out[-3000:]
    stats = ast.literal_eval(m.group(1))
    files = seed_files(tmp_path / "out")
    assert {k: len(v) for k, v in files.items()} == stats["JsonFilesSink"]["files"]
    assert len(files["detections.json"]) > 0
    influx = stats["InfluxSink"]
    assert influx["dropped"] == influx["written"] == influx["rejected"] == influx["buffered"] == 0, influx
    assert influx["on_disk"] == influx["queued"] == spilled_points(spill) > 0, influx  # every point, on disk
    health = json.loads(c.health.read_text())
    assert health["status"] == "stopped" and "fast exit" in health["detail"]
