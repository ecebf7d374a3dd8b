"""Run this process's shard: one or several stores, each store all of its cameras.

    python -m clients.shard_run --config configs/app_config.yaml --stores-file configs/stores.yaml \
        [--shard-index I --shard-count N | --stores store-0001 store-0002] [--lock-dir D] [--max-seconds S]

Which stores: ``--stores`` (explicit ids), else ``--shard-index/--shard-count``, else env
``RVA_SHARD_INDEX``/``RVA_SHARD_COUNT`` or the StatefulSet ordinal of the hostname
(``clients-3``; see clients.shards), else every store of the stores file. Before any camera
opens, each chosen store is locked (``clients.shards.StoreLocks`` under ``--lock-dir``, env
``RVA_LOCK_DIR``): a store another process already runs is refused, exit 2, with a message
naming the store, the holder and the lock file.

Each store gets its own ``clients.runner.Runner`` (its own analytics from its store config,
its own gRPC channel) in one event loop; the sinks are shared; ``--health-dir`` gives each
store a health file (``<dir>/<store id>.json``, checked by ``python -m clients.health``). A
stop (SIGINT/SIGTERM, or
``--max-seconds``) of one store's runner stops every store of the process; the sinks close
once, after the last. The single-store CLI (``python -m clients.run``, ``make run``, compose)
is unchanged and takes no lock.

Exit codes: 0 done, 1 every stream failed, 2 start-up problem (config, shard, lock), 3 Triton
not ready.

May import: clients.app, clients.config, clients.health, clients.runner, clients.shards, clients.triton,
clients.signals, analytics.config, the standard library.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
from dataclasses import replace
from pathlib import Path

from clients.app import build_processor_factory, build_sinks, close_sinks
from clients.config import AppConfig, ConfigError, load_app_config, load_streams_file
from clients.health import HealthFile
from clients.runner import Runner, RunSummary
from clients.shards import (
    DEFAULT_LOCK_DIR,
    ShardError,
    StoreEntry,
    StoreLocks,
    load_entry_store,
    load_store_group,
    shard_from_env,
)
from clients.signals import StopSignals
from clients.triton import InferenceLost
from core.blas import one_blas_thread
from core.collector import frame_paced_collector

log = logging.getLogger("clients.shard_run")


def store_app_config(base: AppConfig, entry: StoreEntry) -> AppConfig:
    """The app config for one store: its store config, and its streams (its own streams file,
    or the base config's streams that are cameras of this store)."""
    store = load_entry_store(entry)
    if entry.streams_file is not None:
        streams = load_streams_file(entry.streams_file)
    else:
        streams = [s for s in base.streams if s.id in store.cameras]
    if not streams:
        where = entry.streams_file or base.streams_file
        raise ShardError(f"store {entry.id!r} ({entry.config}) has no streams: none of the streams in {where} "
                         f"is one of its cameras {sorted(store.cameras)}")
    return replace(base, analytics=store, streams=streams, streams_path=entry.streams_file or base.streams_path)


def plan(base: AppConfig, entries: list[StoreEntry]) -> list[AppConfig]:
    """One app config per store; stream ids must be unique across the stores of one process
    (they name the outputs)."""
    configs = [store_app_config(base, e) for e in entries]
    seen: dict[str, str] = {}
    for entry, cfg in zip(entries, configs):
        for s in cfg.streams:
            if s.id in seen:
                raise ShardError(f"stream id {s.id!r} is in store {seen[s.id]!r} and store {entry.id!r}: stream ids "
                                 f"must be unique within one process (run the stores in different shards)")
            seen[s.id] = entry.id
    return configs


async def run_stores(runners: list[Runner]) -> list[RunSummary]:
    """Run the stores' runners together; the first stop request stops them all."""
    async def propagate() -> None:
        waits = [asyncio.ensure_future(r.stop.wait()) for r in runners]
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waits:
                w.cancel()
        first = next(r for r in runners if r.stop.is_set())
        for r in runners:
            if not r.stop.is_set():
                r.request_stop(f"{first.stopped_by} (every store of this process stops)")

    watcher = asyncio.ensure_future(propagate())
    try:
        return await asyncio.gather(*(r.run() for r in runners))
    finally:
        watcher.cancel()
        await asyncio.gather(watcher, return_exceptions=True)


def run_shard(configs: list[AppConfig], *, max_seconds: float | None = None, health_interval_s: float = 10.0,
              triton_wait_s: float = 60.0, health_files: list[HealthFile | None] | None = None) -> list[RunSummary]:
    """Every store's streams to their end (or a stop); one summary per store, in order.
    ``health_files``: one per store (``--health-dir``: ``<dir>/<store id>.json``), or None."""
    health_files = health_files or [None] * len(configs)
    sinks = build_sinks(configs[0])
    signals = StopSignals()
    try:
        factories = [build_processor_factory(c) for c in configs]
        runners = [Runner(c, f, sinks, health_interval_s=health_interval_s, max_seconds=max_seconds,
                          triton_wait_s=triton_wait_s, signals=StopSignals(), health_file=h,
                          store_watch=f.watch)  # each store's config is live, as in clients.run
                   for c, f, h in zip(configs, factories, health_files)]
        return asyncio.run(run_stores(runners))
    finally:
        close_sinks(sinks, signals)


def select(a: argparse.Namespace) -> list[StoreEntry]:
    group = load_store_group(a.stores_file)
    if a.stores:
        return group.select(names=a.stores)
    index, count = a.shard_index, a.shard_count
    if index is None and count is None:
        index, count = shard_from_env(os.environ)
    return group.select(index=index, count=count)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m clients.shard_run", description=__doc__.split("\n")[0])
    ap.add_argument("--config", type=Path, default=Path("configs/app_config.yaml"))
    ap.add_argument("--stores-file", type=Path, default=Path(os.environ.get("RVA_STORES_FILE") or
                                                             "configs/stores.yaml"))
    ap.add_argument("--shard-index", type=int, default=None)
    ap.add_argument("--shard-count", type=int, default=None)
    ap.add_argument("--stores", nargs="+", default=None, help="explicit store ids (instead of a shard index)")
    ap.add_argument("--lock-dir", type=Path, default=Path(os.environ.get("RVA_LOCK_DIR") or DEFAULT_LOCK_DIR))
    ap.add_argument("--health-dir", type=Path, default=os.environ.get("RVA_HEALTH_DIR") or None,
                    help="one health file per store, <dir>/<store id>.json (env RVA_HEALTH_DIR); check each with "
                         "`python -m clients.health FILE`")
    ap.add_argument("--max-seconds", type=float, default=None)
    ap.add_argument("--health-interval", type=float, default=10.0)
    ap.add_argument("--triton-wait", type=float, default=60.0)
    ap.add_argument("--summary-json", type=Path, default=None)
    ap.add_argument("--log-level", default="INFO")
    a = ap.parse_args(argv)
    one_blas_thread()  # core/blas.py: a second BLAS thread only spins in a per-frame process
    frame_paced_collector()  # core/collector.py: the young generation's passes at a per-frame pace
    logging.basicConfig(level=a.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        entries = select(a)
        locks = StoreLocks(a.lock_dir, [e.id for e in entries]).acquire()
        configs = plan(load_app_config(a.config, with_sections=False), entries)
    except (ShardError, ConfigError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    log.info("running store(s) %s (locks in %s)", ", ".join(e.id for e in entries), a.lock_dir)
    try:
        health = [HealthFile(a.health_dir / f"{e.id}.json") if a.health_dir else None for e in entries]
        summaries = run_shard(configs, max_seconds=a.max_seconds, health_interval_s=a.health_interval,
                              triton_wait_s=a.triton_wait, health_files=health)
    except InferenceLost as e:
        print(f"error: {e}", file=sys.stderr)
        return 3
    finally:
        locks.release()
    out = {e.id: s.to_dict() for e, s in zip(entries, summaries)}
    text = json.dumps(out, indent=2, default=str)
    if a.summary_json:
        a.summary_json.parent.mkdir(parents=True, exist_ok=True)
        a.summary_json.write_text(text)
    print(text)
    ok = [st for s in summaries for st in s.streams.values() if not st.get("error")]
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
