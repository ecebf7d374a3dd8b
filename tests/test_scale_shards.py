"""Sharding by store (clients.shards, clients.shard_run): selection by index/ordinal or list,
the per-store lock refusing a second process, and two stores run by one process through a
real Triton."""
from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

from clients.shard_run import main as shard_main
from clients.shards import ShardError, StoreLocks, load_store_group, shard_from_env, store_id_of

REPO = Path(__file__).resolve().parents[1]


def make_group(tmp: Path, n: int, streams: dict[str, list[dict]] | None = None) -> Path:
    base = yaml.safe_load((REPO / "configs" / "store.yaml").read_text())
    items = []
    for i in range(n):
        sid = f"store-{i:04d}"
        (tmp / f"{sid}.yaml").write_text(yaml.safe_dump({**base, "store": {"id": sid, "name": f"Store {i}"}}))
        item = {"config": f"{sid}.yaml"}
        if streams and sid in streams:
            (tmp / f"{sid}-cameras.yaml").write_text(yaml.safe_dump({"streams": streams[sid]}))
            item["streams_file"] = f"{sid}-cameras.yaml"
        items.append(item)
    p = tmp / "stores.yaml"
    p.write_text(yaml.safe_dump({"stores": items}))
    return p


def test_repo_store_has_an_id_and_the_repo_group_loads():
    assert store_id_of(REPO / "configs" / "store.yaml") == "sample-store"
    assert [s.id for s in load_store_group(REPO / "configs" / "stores.yaml").stores] == ["sample-store"]


def test_every_store_in_exactly_one_shard(tmp_path):
    group = load_store_group(make_group(tmp_path, 7))
    shards = [[s.id for s in group.select(index=i, count=3)] for i in range(3)]
    assert shards[1] == ["store-0001", "store-0004"]
    flat = sorted(x for s in shards for x in s)
    assert flat == [s.id for s in group.stores]  # a partition: no store twice, none left out
    assert [s.id for s in group.select(names=["store-0005", "store-0002"])] == ["store-0005", "store-0002"]
    with pytest.raises(ShardError, match=r"unknown store id\(s\) \['nope'\]"):
        group.select(names=["nope"])
    with pytest.raises(ShardError, match="shard index 3 is not in 0..2"):
        group.select(index=3, count=3)
    with pytest.raises(ShardError, match="shard 7 of 8 has no store"):
        group.select(index=7, count=8)


def test_group_errors_name_file_and_field(tmp_path):
    (tmp_path / "s.yaml").write_text(yaml.safe_dump({"store": {"name": "no id"}, "cameras": {}}))
    (tmp_path / "g.yaml").write_text(yaml.safe_dump({"stores": [{"config": "s.yaml"}]}))
    with pytest.raises(Exception, match=r"s.yaml.*store.id"):
        load_store_group(tmp_path / "g.yaml")
    p = make_group(tmp_path, 1)
    raw = yaml.safe_load(p.read_text())
    raw["stores"].append(dict(raw["stores"][0]))
    p.write_text(yaml.safe_dump(raw))
    with pytest.raises(Exception, match="listed twice"):
        load_store_group(p)


def test_shard_index_from_the_statefulset_ordinal():
    assert shard_from_env({}, "laptop") == (None, None)
    assert shard_from_env({"RVA_SHARD_COUNT": "4"}, "clients-3") == (3, 4)
    assert shard_from_env({"RVA_SHARD_COUNT": "4"}, "clients-12.clients.retail.svc") == (12, 4)
    assert shard_from_env({"RVA_SHARD_COUNT": "4", "RVA_SHARD_INDEX": "1"}, "clients-3") == (1, 4)
    with pytest.raises(ShardError, match="hostname 'laptop'"):
        shard_from_env({"RVA_SHARD_COUNT": "4"}, "laptop")
    with pytest.raises(ShardError, match="RVA_SHARD_INDEX='x'"):
        shard_from_env({"RVA_SHARD_INDEX": "x"}, "h")


HOLD = ("import sys, time; from clients.shards import StoreLocks; StoreLocks(sys.argv[1], [sys.argv[2]]).acquire(); "
        "print('held', flush=True); time.sleep(60)")


def test_a_store_held_by_another_process_is_refused(tmp_path):
    locks = tmp_path / "locks"
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(locks), "store-0001"], cwd=REPO,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(ShardError) as e:
            StoreLocks(locks, ["store-0000", "store-0001"]).acquire()
        msg = str(e.value)
        assert "store 'store-0001' is already run by" in msg and f"pid {holder.pid}" in msg
        assert str(locks / "store-0001.lock") in msg
        # the CLI refuses before opening any camera: exit 2, one line naming the store
        group = make_group(tmp_path, 2)
        r = subprocess.run([sys.executable, "-m", "clients.shard_run", "--stores-file", str(group),
                            "--stores", "store-0001", "--lock-dir", str(locks)],
                           cwd=REPO, capture_output=True, text=True, timeout=120)
        assert r.returncode == 2 and "store 'store-0001' is already run by" in r.stderr, r.stderr
        with StoreLocks(locks, ["store-0000"]):  # the other store is free
            with pytest.raises(ShardError):  # and now taken, also within one process
                StoreLocks(locks, ["store-0000"]).acquire()
    finally:
        holder.kill()
        holder.wait()
    deadline = time.monotonic() + 10
    while True:  # the kernel drops a dead holder's flock (also after SIGKILL)
        try:
            StoreLocks(locks, ["store-0001"]).acquire().release()
            break
        except ShardError:
            assert time.monotonic() < deadline
            time.sleep(0.1)


def _images(folder: Path, n: int) -> str:
    folder.mkdir()
    for i in range(n):
        cv2.imwrite(str(folder / f"{i:04d}.jpg"), np.full((120, 160, 3), 20 * i, np.uint8))
    return str(folder)


def test_one_process_runs_two_stores_through_triton(triton_server, tmp_path):
    n = 6
    streams = {
        "store-0000": [{"id": "cam-entrance-1", "source": _images(tmp_path / "a", n), "fps": 5}],
        "store-0002": [{"id": "cam-checkout-1", "source": _images(tmp_path / "b", n), "fps": 5}],
    }
    group = make_group(tmp_path, 4, streams)
    app = tmp_path / "app.yaml"
    app.write_text(yaml.safe_dump({"triton": {"url": triton_server.grpc_url},
                                   "sinks": {"json": {"output_dir": str(tmp_path / "out")},
                                             "influxdb": {"enabled": False}}}))
    out = tmp_path / "summary.json"
    rc = shard_main(["--config", str(app), "--stores-file", str(group), "--shard-index", "0", "--shard-count", "2",
                     "--lock-dir", str(tmp_path / "locks"), "--summary-json", str(out), "--health-interval", "1",
                     "--health-dir", str(tmp_path / "health")])
    assert rc == 0
    summary = json.loads(out.read_text())
    assert set(summary) == {"store-0000", "store-0002"}  # shard 0 of 2: stores 0 and 2
    assert summary["store-0000"]["streams"]["cam-entrance-1"]["frames_processed"] == n
    assert summary["store-0002"]["streams"]["cam-checkout-1"]["frames_processed"] == n
    StoreLocks(tmp_path / "locks", ["store-0000", "store-0002"]).acquire().release()  # released at exit
    health = {p.name: json.loads(p.read_text()) for p in (tmp_path / "health").glob("*.json")}
    assert set(health) == {"store-0000.json", "store-0002.json"}  # one health file per store
    assert list(health["store-0002.json"]["streams"]) == ["cam-checkout-1"]
