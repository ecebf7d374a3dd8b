"""Sharding by store: which stores this process runs, and a lock so no store runs twice.

A shard is one store: all of its cameras run in one process, so the store's analytics (and
any cross-camera state) see every camera. A process runs one or several stores.

The group is a stores file (``configs/stores.yaml``), its list order fixed::

    stores:
      - config: configs/store.yaml                 # the store config; its `store.id` names the shard
        streams_file: configs/cameras.example.yaml # optional: this store's cameras (default: the app
                                                   # config's streams that are cameras of this store)

Inputs -> outputs:

    group = load_store_group("configs/stores.yaml")           # StoreGroup, or ConfigError
    mine = group.select(index=3, count=8)                     # stores i with i % 8 == 3
    mine = group.select(names=["store-0001"])                 # an explicit list
    index, count = shard_from_env(os.environ, socket.gethostname())   # (None, None) when not set
    with StoreLocks(lock_dir, [s.id for s in mine]):          # ShardError if another process has one
        ...

Which shard: ``--shard-index/--shard-count``; else env ``RVA_SHARD_INDEX``/``RVA_SHARD_COUNT``;
else, with ``RVA_SHARD_COUNT`` set, the ordinal of a StatefulSet pod's hostname (``clients-3``
-> 3). Every store belongs to exactly one index, so distinct indexes never share a store.

Two processes given the same store: the second refuses it (``ShardError`` naming the store,
the holder's pid/host and the lock file). The lock is an exclusive ``flock`` on
``<lock_dir>/<store id>.lock``, held for the life of the process (the kernel drops it when the
process dies, also on SIGKILL); it covers processes sharing that directory (one host, or a
shared volume with working flock). On Kubernetes the StatefulSet's ordinals are unique per pod
name, which makes index -> stores unique across the cluster (docs/scale.md).

May import: clients.config, analytics.config, core.config, the standard library.
"""
from __future__ import annotations

import errno
import fcntl
import os
import re
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from analytics.config import StoreConfig, load_store_config
from core.config import ConfigError, Fields, field_path, read_mapping, read_yaml

ORDINAL_RE = re.compile(r"-(\d+)$")  # a StatefulSet pod's hostname: <statefulset name>-<ordinal>
STORE_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")
DEFAULT_LOCK_DIR = Path(os.environ.get("XDG_RUNTIME_DIR") or "/tmp") / "retail-vision-stores"


class ShardError(RuntimeError):
    """A shard selection that cannot run: a store locked by another process, a bad index."""


@dataclass(frozen=True, slots=True)
class StoreEntry:
    id: str  # the store config's ``store.id``
    config: Path  # the store config file
    streams_file: Path | None = None  # this store's cameras, when not the app config's streams


def store_id_of(path: str | Path) -> str:
    """The ``store.id`` of a store config file (ConfigError naming the file when absent or bad)."""
    raw = read_yaml(path, "store config")
    fields = Fields(path)
    store = raw.get("store") if isinstance(raw, Mapping) else None
    sid = store.get("id") if isinstance(store, Mapping) else None
    if not isinstance(sid, str) or not STORE_ID_RE.match(sid):
        raise fields.error("store.id", sid, "a store needs an id to be sharded: letters, digits, . _ - "
                                            "(e.g. `store: {id: store-0001, name: ...}`)")
    return sid


@dataclass(frozen=True)
class StoreGroup:
    path: Path
    stores: tuple[StoreEntry, ...]

    def select(self, index: int | None = None, count: int | None = None,
               names: list[str] | None = None) -> list[StoreEntry]:
        """The stores of shard ``index`` of ``count`` (store i goes to i % count), or ``names``."""
        if names:
            known = {s.id: s for s in self.stores}
            unknown = [n for n in names if n not in known]
            if unknown:
                raise ShardError(f"{self.path}: unknown store id(s) {unknown}; the group has {sorted(known)}")
            return [known[n] for n in dict.fromkeys(names)]
        if index is None and count is None:
            return list(self.stores)
        if index is None or count is None:
            raise ShardError("a shard needs both an index and a count (--shard-index I --shard-count N)")
        if count < 1 or not 0 <= index < count:
            raise ShardError(f"shard index {index} is not in 0..{count - 1} (shard count {count})")
        mine = [s for i, s in enumerate(self.stores) if i % count == index]
        if not mine:
            raise ShardError(f"shard {index} of {count} has no store: {self.path} lists {len(self.stores)} "
                             f"store(s); use at most {len(self.stores)} shards")
        return mine


def load_store_group(path: str | Path) -> StoreGroup:
    """A stores file -> StoreGroup (each store config read for its id; ids must be unique)."""
    path = Path(path)
    fields = Fields(path)
    raw = read_mapping(path, "stores file", shape="must be a mapping with a `stores:` list")
    fields.unknown(raw, {"stores"}, "(top level)")
    items = raw.get("stores")
    if not isinstance(items, list) or not items:
        raise fields.error("stores", items, "must be a non-empty list of stores")
    out: list[StoreEntry] = []
    for i, item in enumerate(items):
        p = field_path("stores", i)
        if not isinstance(item, Mapping):
            raise fields.error(p, item, "must be a mapping with `config:` (a store config file)")
        fields.unknown(item, {"config", "streams_file"}, p)
        cfg = _relative(path, item.get("config"), f"{p}.config", fields)
        streams = item.get("streams_file")
        streams_path = None if streams is None else _relative(path, streams, f"{p}.streams_file", fields)
        sid = store_id_of(cfg)
        if any(s.id == sid for s in out):
            raise fields.error(f"{p}.config", str(cfg), f"store id {sid!r} is listed twice")
        out.append(StoreEntry(sid, cfg, streams_path))
    return StoreGroup(path, tuple(out))


def _relative(base: Path, value: Any, fld: str, fields: Fields) -> Path:
    if not isinstance(value, str) or not value.strip():
        raise fields.error(fld, value, "must be a file path")
    p = Path(value)
    if not p.is_absolute() and not p.exists() and (base.parent / p).exists():
        p = base.parent / p  # relative to the stores file when not relative to the working dir
    if not p.is_file():
        raise fields.error(fld, value, "file does not exist")
    return p


def load_entry_store(entry: StoreEntry) -> StoreConfig:
    return load_store_config(entry.config)


def shard_from_env(env: Mapping[str, str], hostname: str | None = None) -> tuple[int | None, int | None]:
    """(index, count) from ``RVA_SHARD_INDEX``/``RVA_SHARD_COUNT``, the index defaulting to the
    StatefulSet ordinal at the end of ``hostname`` when only the count is set."""
    def num(name: str, value: str) -> int:
        if not value.strip().isdigit():
            raise ShardError(f"environment {name}={value!r} is not a non-negative integer")
        return int(value)

    count = num("RVA_SHARD_COUNT", env["RVA_SHARD_COUNT"]) if env.get("RVA_SHARD_COUNT") else None
    if env.get("RVA_SHARD_INDEX"):
        return num("RVA_SHARD_INDEX", env["RVA_SHARD_INDEX"]), count
    if count is None:
        return None, None
    hostname = hostname if hostname is not None else socket.gethostname()
    m = ORDINAL_RE.search(hostname.split(".")[0])
    if not m:
        raise ShardError(f"RVA_SHARD_COUNT={count} is set but the shard index is not: set RVA_SHARD_INDEX, or "
                         f"run as a StatefulSet pod whose hostname ends in its ordinal (got hostname {hostname!r})")
    return int(m.group(1)), count


class StoreLocks:
    """Exclusive flock per store under ``lock_dir``, held until ``release`` (or process exit)."""

    def __init__(self, lock_dir: str | Path, store_ids: list[str]) -> None:
        self.lock_dir = Path(lock_dir)
        self.store_ids = list(store_ids)
        self._fds: list[int] = []

    def acquire(self) -> "StoreLocks":
        try:
            self.lock_dir.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise ShardError(f"cannot create the store lock directory {self.lock_dir}: {e}") from None
        try:
            for sid in self.store_ids:
                self._fds.append(self._lock(sid))
        except BaseException:
            self.release()
            raise
        return self

    def _lock(self, sid: str) -> int:
        path = self.lock_dir / f"{sid}.lock"
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            holder = os.pread(fd, 256, 0).decode(errors="replace").strip() or "another process"
            os.close(fd)
            if e.errno in (errno.EWOULDBLOCK, errno.EACCES):
                raise ShardError(f"store {sid!r} is already run by {holder} (lock {path}); a store runs in "
                                 f"exactly one process: give this process other stores (--stores, "
                                 f"--shard-index) or stop the other one") from None
            raise ShardError(f"cannot lock store {sid!r} ({path}): {e}") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()}\n".encode(), 0)
        return fd

    def release(self) -> None:
        while self._fds:
            os.close(self._fds.pop())  # closing the descriptor drops the flock

    def __enter__(self) -> "StoreLocks":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


__all__ = ["ConfigError", "DEFAULT_LOCK_DIR", "ShardError", "StoreEntry", "StoreGroup", "StoreLocks",
           "load_entry_store", "load_store_group", "shard_from_env", "store_id_of"]
