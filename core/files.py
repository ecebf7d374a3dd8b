"""Whole-or-nothing file writes: the one place that writes a temp file and renames it over.

    atomic_write_bytes(path, data)                 # readers see the old file or the new one, never half
    atomic_write_text(path, text)                  # the same for text (utf-8 unless told)
    atomic_write_bytes(path, data, fsync=False)    # atomic for readers, not durable across a power cut
    atomic_write_bytes(path, data, tmp=path.with_name(path.name + ".tmp"))   # a temp name the caller knows

How: the data goes to a temp file in the same directory (so the rename cannot cross file
systems), is flushed and fsynced (unless ``fsync=False``), then ``os.replace`` puts it in
place in one step. Any failure, ``KeyboardInterrupt`` included, removes the temp file and
re-raises; the target is then untouched. The default temp name is
``.<name>.<random>.tmp`` (hidden, unique per call); pass ``tmp`` when a reader of the
directory must recognise leftovers of a crash by name. New files get the usual
permissions (``0o666`` minus the umask).

``fsync_path(path)`` fsyncs a file or a directory by path (a directory: makes a rename in
it durable).

Imports: the standard library only (any package may use it).
"""
from __future__ import annotations

import os
import secrets
from pathlib import Path

__all__ = ["atomic_write_bytes", "atomic_write_text", "fsync_path"]


def atomic_write_bytes(path: str | os.PathLike, data: bytes, *, fsync: bool = True,
                       tmp: str | os.PathLike | None = None) -> None:
    """Replace ``path`` by ``data`` in one step (temp file in the same directory, fsync, ``os.replace``)."""
    path = Path(path)
    tmp_path = Path(tmp) if tmp is not None else path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    try:
        with open(tmp_path, "wb") as f:
            f.write(data)
            f.flush()
            if fsync:
                os.fsync(f.fileno())
        os.replace(tmp_path, path)
    except BaseException:
        try:
            tmp_path.unlink()
        except OSError:
            pass
        raise


def atomic_write_text(path: str | os.PathLike, text: str, *, encoding: str = "utf-8", fsync: bool = True,
                      tmp: str | os.PathLike | None = None) -> None:
    """``atomic_write_bytes`` of ``text`` encoded with ``encoding``."""
    atomic_write_bytes(path, text.encode(encoding), fsync=fsync, tmp=tmp)


def fsync_path(path: str | os.PathLike) -> None:
    """fsync a file or directory by path."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
