"""The on-disk spill store of InfluxSink: points that memory cannot hold wait here, oldest first.

    store = SpillStore(Path(".run/influx-spill"), max_points=5_000_000)  # picks up an earlier run's files
    path = store.next_path()                   # lock held (the caller's lock)
    SpillStore.write_file(path, entries)       # no lock: the chunk appears whole or not at all
    store.commit(path, len(entries))           # lock held
    path, n = store.head()                     # the oldest chunk
    entries = SpillStore.read(path)            # no lock
    store.forget(path); unlink(path)           # after the chunk was sent

An entry is ``(data type, line protocol)``. A chunk is one file
``<dir>/spill-<12-digit sequence>.lp`` with one entry per line:
``<data type>\\t<JSON-quoted line protocol>`` (JSON-quoted because a string field may hold
a newline). Files are written through ``core.files.atomic_write_bytes`` with the temp
name ``<file>.tmp``, which a new store removes at start (a crash mid-write: those points
were counted as buffered, never as spilled). ``points`` counts the entries on disk;
``max_points`` bounds them (0 or no directory: spill disabled). One process per directory.

Locking: the bookkeeping (``points``, the file list, the sequence) is changed only with
the owner's lock held; the file I/O (``write_file``, ``read``, ``unlink``) is done outside
it, so a slow disk never holds up the sink's ``write()``.

Imports: the standard library and ``core.files``.
"""
from __future__ import annotations

import contextlib
import json
from collections import deque
from pathlib import Path

from core.files import atomic_write_bytes

__all__ = ["Entry", "SpillStore", "unlink", "count_lines"]

Entry = tuple[str, str]  # (data type, line protocol)


class SpillStore:
    """Append-only chunks of entries on disk, oldest first; bounded by ``max_points``.

    The bookkeeping (``points``, the file list) is changed under the sink's lock; the file
    I/O (``write_file``, ``read``, unlink) happens outside it, in the spill and sender
    threads, so a slow disk never holds up ``InfluxSink.write()``.
    """

    def __init__(self, directory: Path | None, max_points: int) -> None:
        self.dir = directory
        self.max_points = max_points if directory is not None else 0
        self.points = 0
        self._files: deque[tuple[Path, int]] = deque()
        self._seq = 0
        if directory is not None:
            directory.mkdir(parents=True, exist_ok=True)
            for tmp in directory.glob("spill-*.lp.tmp"):
                tmp.unlink()  # a chunk half-written by a crash: its points were counted as buffered, not spilled
            for p in sorted(directory.glob("spill-*.lp")):
                n = count_lines(p)
                self._files.append((p, n))
                self.points += n
                self._seq = max(self._seq, int(p.stem.split("-")[1]) + 1)

    @property
    def enabled(self) -> bool:
        return self.dir is not None and self.max_points > 0

    @property
    def free(self) -> int:
        return max(self.max_points - self.points, 0)

    def __len__(self) -> int:
        return len(self._files)

    def next_path(self) -> Path:  # lock held
        assert self.dir is not None
        path = self.dir / f"spill-{self._seq:012d}.lp"
        self._seq += 1
        return path

    @staticmethod
    def write_file(path: Path, entries: list[Entry]) -> None:
        """Write a chunk whole or not at all (``<file>.tmp``, fsync, rename). No shared state: call it unlocked."""
        # JSON-quoted: a string field may hold a newline, and a spill file is one point per line
        data = "".join(f"{dt}\t{json.dumps(line, ensure_ascii=False)}\n" for dt, line in entries).encode("utf-8")
        atomic_write_bytes(path, data, tmp=path.with_name(path.name + ".tmp"))

    def commit(self, path: Path, n: int) -> None:  # lock held; the file is on disk whole
        self._files.append((path, n))
        self.points += n

    def head(self) -> tuple[Path, int] | None:  # lock held
        return self._files[0] if self._files else None

    @staticmethod
    def read(path: Path) -> list[Entry]:
        with open(path, encoding="utf-8") as f:
            entries = []
            for ln in f:
                if ln.strip():
                    dt, quoted = ln.rstrip("\n").split("\t", 1)
                    entries.append((dt, json.loads(quoted)))
        return entries

    def forget(self, path: Path) -> bool:  # lock held; the caller unlinks the file (outside the lock)
        if self._files and self._files[0][0] == path:
            _, n = self._files.popleft()
            self.points -= n
            return True
        return False


def unlink(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


def count_lines(p: Path) -> int:
    with open(p, "rb") as f:
        return sum(1 for ln in f if ln.strip())
