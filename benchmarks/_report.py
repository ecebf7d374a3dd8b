"""Append a benchmark section to docs/benchmarks.md with the machine and date noted.

Every benchmark ends with ``append_section(title, table_markdown, notes)`` so results are
comparable run to run: the numbers only mean something next to the machine they came from.
"""
from __future__ import annotations

import os
import platform
import sys
import time
from pathlib import Path

REPORT = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"


def machine() -> str:
    """One line: OS/arch, CPU model when known, core count, Python version."""
    cpu = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    parts = [f"{platform.system()} {platform.machine()}"]
    if cpu:
        parts.append(cpu)
    parts.append(f"{os.cpu_count()} CPU cores")
    parts.append(f"Python {platform.python_version()}")
    return ", ".join(parts)


def append_section(title: str, table_markdown: str, notes: str = "", path: Path | None = None) -> None:
    """Append ``## title``, date + machine line, the table, then the notes."""
    path = Path(path) if path is not None else REPORT
    path.parent.mkdir(parents=True, exist_ok=True)
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    stamp = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    block = [f"## {title}", "", f"{stamp} · {machine()}", "", table_markdown.strip("\n")]
    if notes:
        block += ["", notes.strip("\n")]
    path.write_text(text.rstrip("\n") + "\n\n" + "\n".join(block) + "\n")
    print(f"appended '{title}' to {path}", file=sys.stderr)
