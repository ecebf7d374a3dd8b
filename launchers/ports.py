"""Loopback TCP ports for the local servers and the tests that need one nobody listens on."""
from __future__ import annotations

import socket


def free_port() -> int:
    """A TCP port free on loopback right now (nothing listens on it: connecting is refused)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
