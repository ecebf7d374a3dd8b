"""What SIGINT/SIGTERM/SIGHUP mean to the clients process, and the fast exit.

Contract (the process owns signal handling; sinks never install handlers):

- the first stop request (SIGINT, SIGTERM, ``--max-seconds``, a caller's
  ``Runner.request_stop``) stops the run cleanly: no new frames, in-flight frames finish,
  analytics and sinks are flushed, exit 0;
- a repeated SIGTERM is the same request, never an abort (``timeout`` and container
  runtimes signal the process and its group, so two SIGTERMs can arrive within a
  millisecond); logged at info;
- a second SIGINT within ``FAST_EXIT_GAP_S`` (1 s) of the first is the same request too
  (one Ctrl-C delivered twice, e.g. to a process group);
- only a second SIGINT at least ``FAST_EXIT_GAP_S`` after the first SIGINT (a person
  pressing Ctrl-C twice) forces a fast exit: in-flight frames and the analytics flush are
  skipped, but every sink still puts what it holds in memory to its outputs/spill, each
  within a short bound (``close_sinks_within``), then the process exits with
  ``FAST_EXIT_CODE`` (130).

SIGHUP never stops the process: while a run goes on it asks for the store config
(``configs/store.yaml``) to be read again now (``clients.store_watch``; ``loop_signal_handlers``
routes it); outside a run (start-up, closing the sinks) the CLI ignores it
(``ignore_reload_signal``).

Inputs: signal names (``"SIGINT"``, ``"SIGTERM"``) or other stop reasons; a monotonic clock
(injectable for tests). Outputs: a ``StopAction`` per request; the fast exit itself.
May import: the standard library and ``sinks.base`` (the ``Sink`` protocol) only.
"""
from __future__ import annotations

import asyncio
import contextlib
import enum
import inspect
import logging
import os
import signal
import sys
import threading
import time
from typing import Callable, Iterator, NoReturn, Sequence

from sinks.base import Sink

log = logging.getLogger("clients.signals")

FAST_EXIT_GAP_S = 1.0  # a second SIGINT at least this long after the first one forces the fast exit
FAST_EXIT_CODE = 130  # 128 + SIGINT, what a shell reports for a Ctrl-C'd process
FAST_EXIT_FLUSH_S = 1.0  # a sink that can send (InfluxDB) tries this long before it spills to disk
FAST_EXIT_SINK_BOUND_S = 8.0  # the most one sink's close may take during the fast exit
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
RELOAD_SIGNAL: signal.Signals | None = getattr(signal, "SIGHUP", None)  # None where the platform has none


class StopAction(enum.Enum):
    STOP = "stop"  # the first request: stop cleanly
    REPEAT = "repeat"  # the same request again: nothing more to do
    FAST_EXIT = "fast exit"  # Ctrl-C pressed twice: exit now, sinks spilled within a short bound


class StopSignals:
    """The policy above, as a pure decision on each request (no signals are touched here)."""

    def __init__(self, gap_s: float = FAST_EXIT_GAP_S, clock: Callable[[], float] = time.monotonic) -> None:
        self.gap_s = gap_s
        self.clock = clock
        self.stopped_by: str | None = None  # the first request's reason
        self.first_sigint_at: float | None = None

    def classify(self, why: str) -> StopAction:
        now = self.clock()
        first = self.stopped_by is None
        if first:
            self.stopped_by = why
        if why == "SIGINT":
            if self.first_sigint_at is None:
                self.first_sigint_at = now
            elif now - self.first_sigint_at >= self.gap_s:
                return StopAction.FAST_EXIT
        return StopAction.STOP if first else StopAction.REPEAT

    def since_first_sigint(self) -> float:
        return 0.0 if self.first_sigint_at is None else self.clock() - self.first_sigint_at


def close_sink(sink: Sink, flush_s: float | None = None) -> None:
    """``sink.close()``; with ``flush_s``, a sink whose close takes a ``timeout`` (InfluxDB:
    flush this long, then spill the rest to disk) gets that bound. Errors are logged."""
    try:
        close = sink.close
        if flush_s is not None and "timeout" in inspect.signature(close).parameters:
            close(timeout=flush_s)  # type: ignore[call-arg]
        else:
            close()
    except Exception:  # noqa: BLE001 (the next sink must still get its turn)
        log.exception("sink %s failed to close", type(sink).__name__)


def close_sinks_within(sinks: Sequence[Sink], flush_s: float = FAST_EXIT_FLUSH_S,
                       bound_s: float = FAST_EXIT_SINK_BOUND_S) -> dict[str, dict]:
    """Close every sink in order (a Triton metrics collector before the InfluxDB sink it
    writes to), each in a daemon thread given at most ``bound_s``; returns their stats()."""
    for sink in sinks:
        t = threading.Thread(target=close_sink, args=(sink, flush_s), name="fast-exit-close", daemon=True)
        t.start()
        t.join(bound_s)
        if t.is_alive():
            log.error("sink %s did not close within %.0f s: exiting without it", type(sink).__name__, bound_s)
    stats: dict[str, dict] = {}
    for sink in sinks:
        with contextlib.suppress(Exception):
            stats[type(sink).__name__] = sink.stats()
    return stats


def fast_exit(sinks: Sequence[Sink], why: str, before_exit: Callable[[], None] | None = None) -> NoReturn:
    """Put what the sinks hold to their outputs/spill (bounded), then end the process now.

    ``os._exit``: the event loop, its tasks and reader threads (a camera read may block
    for seconds) are left behind on purpose; that is what the person asked for.
    """
    log.error("%s: fast exit: in-flight frames and the analytics flush are skipped; the sinks put what they "
              "hold in memory to their outputs/spill (at most %.0f s each)", why, FAST_EXIT_SINK_BOUND_S)
    stats = close_sinks_within(sinks)
    log.warning("fast exit: sinks closed: %s", stats)
    if before_exit is not None:
        with contextlib.suppress(Exception):
            before_exit()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(FAST_EXIT_CODE)


@contextlib.contextmanager
def process_signal_handlers(on_request: Callable[[str], None]) -> Iterator[None]:
    """SIGINT/SIGTERM -> ``on_request(name)`` while the block runs (outside an event loop,
    e.g. while the sinks close); the previous handlers come back afterwards. Only the main
    thread may set handlers: elsewhere this does nothing."""
    old: dict[int, object] = {}
    for sig in STOP_SIGNALS:
        with contextlib.suppress(ValueError, OSError):
            old[sig] = signal.signal(sig, lambda signum, _frame: on_request(signal.Signals(signum).name))
    try:
        yield
    finally:
        for sig, handler in old.items():
            with contextlib.suppress(ValueError, OSError, TypeError):
                signal.signal(sig, signal.SIG_DFL if handler is None else handler)  # type: ignore[arg-type]


def ignore_reload_signal() -> None:
    """SIGHUP must not end the process (its default action): ignored until a run routes it
    (``loop_signal_handlers``). Main thread only; elsewhere this does nothing."""
    if RELOAD_SIGNAL is not None:
        with contextlib.suppress(ValueError, OSError):
            signal.signal(RELOAD_SIGNAL, signal.SIG_IGN)


@contextlib.contextmanager
def loop_signal_handlers(loop: asyncio.AbstractEventLoop, on_stop: Callable[[str], None],
                         on_reload: Callable[[str], None]) -> Iterator[None]:
    """While the block runs (an event loop's run): SIGINT/SIGTERM -> ``on_stop(name)``, SIGHUP ->
    ``on_reload("SIGHUP")``, both called in the loop. Afterwards SIGHUP gets back the handler it
    had before (asyncio would leave the default one, which ends the process). Where the loop
    cannot take handlers (not the main thread), nothing is installed."""
    installed: list[int] = []
    hup_before = None
    if RELOAD_SIGNAL is not None:
        with contextlib.suppress(ValueError, OSError):
            hup_before = signal.getsignal(RELOAD_SIGNAL)
    for sig, handler in [(s, on_stop) for s in STOP_SIGNALS] + \
            ([(RELOAD_SIGNAL, on_reload)] if RELOAD_SIGNAL is not None else []):
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(sig, handler, signal.Signals(sig).name)
            installed.append(sig)
    try:
        yield
    finally:
        for sig in installed:
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.remove_signal_handler(sig)
        if RELOAD_SIGNAL in installed and hup_before is not None:
            with contextlib.suppress(ValueError, OSError, TypeError):
                signal.signal(RELOAD_SIGNAL, hup_before)
