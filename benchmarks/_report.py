"""Write a benchmark section to docs/benchmarks.md with the machine and date noted.

Every benchmark ends with ``append_section(title, table_markdown, notes)`` so results are
comparable run to run: the numbers only mean something next to the machine they came from.
A re-run replaces its own section (same title) in place; other sections are kept. Writers
take an exclusive lock, so benchmarks run side by side cannot lose each other's sections.
"""
from __future__ import annotations

import fcntl
import os
import platform
import sys
import time
from pathlib import Path

from core.files import atomic_write_text

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


def replace_section(text: str, title: str, block: str) -> str:
    """``text`` with the section headed ``## title`` replaced by ``block`` (appended if absent)."""
    lines = text.rstrip("\n").split("\n")
    head = f"## {title}"
    try:
        start = lines.index(head)
    except ValueError:
        return "\n".join(lines) + "\n\n" + block + "\n"
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
    rest = lines[end:]
    return "\n".join(lines[:start] + block.split("\n") + ([""] + rest if rest else [])) + "\n"


def append_section(title: str, table_markdown: str, notes: str = "", path: Path | None = None) -> None:
    """Write ``## title``, date + machine line, the table, then the notes (replacing an older run's)."""
    path = Path(path) if path is not None else REPORT
    path.parent.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    block = [f"## {title}", "", f"{stamp} · {machine()}", "", table_markdown.strip("\n")]
    if notes:
        block += ["", notes.strip("\n")]
    with open(path.with_name(path.name + ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # read-modify-write: concurrent benchmarks must not lose sections
        text = path.read_text() if path.exists() else "# Benchmarks\n"
        atomic_write_text(path, replace_section(text, title, "\n".join(block)), fsync=False,
                          tmp=path.with_name(path.name + ".tmp"))
    print(f"wrote '{title}' to {path}", file=sys.stderr)
