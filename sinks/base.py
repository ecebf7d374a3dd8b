"""The interface every sink implements (the stream runner only relies on this)."""
from __future__ import annotations

from typing import Any, Iterable, Protocol, runtime_checkable


@runtime_checkable
class Sink(Protocol):
    def write(self, records: Iterable[Any]) -> None:
        """Take records from ``analytics.records`` (unknown types are counted, not fatal). Must not block on I/O
        that can stall (network); the frame path calls it."""

    def flush(self) -> Any:
        """Push out what was written so far."""

    def close(self) -> None:
        """Flush and release; idempotent."""

    def stats(self) -> dict:
        """Counters for the run summary and for tests."""
