"""The main job: N camera streams in one asyncio process, through Triton, tracking and analytics.

This module is only the command line of the clients process; the run itself is
``clients.app.run_app`` (wiring in clients/app.py, the event loop in clients/runner.py,
one stream in clients/pipeline.py, signal policy in clients/signals.py).

    python -m clients.run --config configs/app_config.yaml [--max-seconds S] [--streams a b]
        [--streams-file configs/cameras.example.yaml] [--health-file F] [--wait-on-error]
        [--store-reload-interval 2]

Requests of all streams share one gRPC channel, so Triton batches frames of different
cameras together (dynamic batching inside the ensemble). Every ``--health-interval``
seconds each stream's health (fps, latency p50/p95, dropped, lost, reconnects, errors,
progress of offline runs) is logged and written to the sinks as ``StreamHealthRecord``.

Signals (the process owns them; clients/signals.py): SIGINT or SIGTERM stops cleanly: stop
reading, finish the frames already read and in flight, flush the analytics (open journeys
are closed) and the sinks, exit 0. A repeated SIGTERM is the same request, never an abort
(``timeout`` and container runtimes may signal the process and its group: two SIGTERMs
within a millisecond); so is a second SIGINT within 1 s of the first. Only a second SIGINT
at least 1 s after the first (Ctrl-C pressed twice) forces a fast exit: in-flight frames
and the analytics flush are skipped, each sink still puts what it holds in memory to its
outputs/spill within a short bound, exit 130.

Live store config: the store config (``analytics.store_config``, ``configs/store.yaml``) is
polled every ``--store-reload-interval`` seconds (default 2; 0: only on SIGHUP) and read at
once on SIGHUP, which never stops the process. A valid edit replaces the analytics of the
changed cameras between two of their frames (their open journeys closed and written); an
invalid one is logged (file, field, value) and the running configuration keeps working
(clients/store_watch.py). Reloads applied/refused are in the health file and the summary.

Exit codes: 0 done (at least one stream ran without error; also a stop while waiting with
``--wait-on-error``), 1 every stream failed, 2 start-up problem, 3 Triton not ready, 130
fast exit. Start-up problems (config error, no streams configured, a sink that cannot
start, e.g. an output directory this user cannot write) are one clear line naming the
file and field, exit 2. ``--wait-on-error`` (docker compose) instead keeps the process up:
it reports the problem in the health file (status ``waiting``), waits until the config or
streams file changes (or ``--retry-interval`` passes) and tries again, so a container
whose cameras are not configured yet does not crash-loop. ``--health-file`` is rewritten
at every health report; ``python -m clients.health FILE`` checks it (the compose health
check).

May import: clients.app, clients.health, clients.signals, clients.store_watch (a default),
clients.triton (the exception), the standard library.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import signal
import sys
import time
from pathlib import Path

from clients.app import StartupError, prepare, run_app
from clients.health import HealthFile
from clients.signals import ignore_reload_signal
from clients.store_watch import DEFAULT_POLL_S
from clients.triton import InferenceLost
from core.blas import one_blas_thread
from core.collector import frame_paced_collector

log = logging.getLogger("clients.run")


def _mtime(path: Path | None) -> tuple:
    if path is None:
        return ()
    try:
        st = os.stat(path)
        return (st.st_mtime_ns, st.st_size, st.st_ino)
    except OSError:
        return (None,)


def wait_for_change(paths: list[Path | None], timeout_s: float, poll_s: float = 0.5) -> bool:
    """Sleep until one of the files changes or ``timeout_s`` passes: True (try again), or
    False when SIGINT/SIGTERM arrived meanwhile (stop)."""
    stopped: list[int] = []
    old = {}
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(ValueError, OSError):  # not the main thread: no handlers
            old[sig] = signal.signal(sig, lambda signum, _frame: stopped.append(signum))
    try:
        first = [_mtime(p) for p in paths]
        deadline = time.monotonic() + timeout_s
        while not stopped and time.monotonic() < deadline:
            time.sleep(poll_s)
            if [_mtime(p) for p in paths] != first:
                time.sleep(poll_s)  # let an editor finish writing
                break
        return not stopped
    finally:
        for sig, h in old.items():
            signal.signal(sig, h)


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m clients.run", description=__doc__.split("\n")[0])
    ap.add_argument("--config", type=Path, default=Path("configs/app_config.yaml"))
    ap.add_argument("--streams-file", type=Path, default=os.environ.get("RVA_STREAMS_FILE") or None,
                    help="take the streams from this YAML file (`streams:` list) instead of the config "
                         "(env RVA_STREAMS_FILE)")
    ap.add_argument("--max-seconds", type=float, default=None, help="stop (cleanly) after this many seconds")
    ap.add_argument("--streams", nargs="+", default=None, help="only these stream ids")
    ap.add_argument("--health-interval", type=float, default=10.0, help="seconds between health reports")
    ap.add_argument("--health-file", type=Path, default=os.environ.get("RVA_HEALTH_FILE") or None,
                    help="rewrite this JSON file at every health report (env RVA_HEALTH_FILE); "
                         "check it with `python -m clients.health FILE`")
    ap.add_argument("--wait-on-error", action="store_true", default=_env_flag("RVA_WAIT_ON_ERROR"),
                    help="on a start-up problem (config, no streams, sinks) report it and wait for the files "
                         "to change instead of exiting (env RVA_WAIT_ON_ERROR=true)")
    ap.add_argument("--retry-interval", type=float, default=60.0,
                    help="--wait-on-error: also retry after this many seconds without a change")
    ap.add_argument("--triton-wait", type=float, default=60.0, help="seconds to wait for Triton at start")
    ap.add_argument("--store-reload-interval", type=float,
                    default=float(os.environ.get("RVA_STORE_RELOAD_S") or DEFAULT_POLL_S),
                    help="seconds between checks of the store config for edits (0: only on SIGHUP; "
                         "env RVA_STORE_RELOAD_S)")
    ap.add_argument("--summary-json", type=Path, default=None, help="write the run summary here")
    ap.add_argument("--log-level", default="INFO")
    a = ap.parse_args(argv)
    one_blas_thread()  # core/blas.py: a second BLAS thread only spins in a per-frame process
    frame_paced_collector()  # core/collector.py: the young generation's passes at a per-frame pace
    ignore_reload_signal()  # SIGHUP never ends the process; during the run it reloads the store config
    logging.basicConfig(level=a.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    health = HealthFile(a.health_file) if a.health_file else None
    while True:
        try:
            config, sinks = prepare(a.config, a.streams_file, a.streams)
            break
        except StartupError as e:
            print(str(e) if str(e).startswith("config error") else f"error: {e}", file=sys.stderr, flush=True)
            if health is not None:
                health.write("waiting" if a.wait_on_error else "stopped", str(e))
            if not a.wait_on_error:
                return e.code
            watched = [a.config] + ([a.streams_file] if a.streams_file else [])
            print(f"waiting for a change of {', '.join(map(str, watched))} (retrying every "
                  f"{a.retry_interval:g}s; SIGTERM stops)", file=sys.stderr, flush=True)
            if not wait_for_change(watched, a.retry_interval):
                print("stopped while waiting for a usable configuration", file=sys.stderr)
                return 0
    try:
        summary = run_app(config, sinks=sinks, health_interval_s=a.health_interval, max_seconds=a.max_seconds,
                          triton_wait_s=a.triton_wait, health_file=health, store_reload_s=a.store_reload_interval)
    except InferenceLost as e:
        print(f"error: {e}", file=sys.stderr)
        if health is not None:
            health.write("stopped", str(e))
        return 3
    text = json.dumps(summary.to_dict(), indent=2, default=str)
    if a.summary_json:
        a.summary_json.parent.mkdir(parents=True, exist_ok=True)
        a.summary_json.write_text(text)
    print(text)
    ok = [s for s in summary.streams.values() if not s.get("error")]
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
