"""Backpressure policy of the pending-frame queue and the per-stream reorder buffer."""
from __future__ import annotations

import asyncio
import random

import pytest

from clients.flow import Backpressure, PendingFrames, QueueClosed, ReorderBuffer
from clients.health import LatencyWindow, RateMeter


async def produce_consume(policy: Backpressure, n: int, maxsize: int, consumer_delay: float):
    """A fast producer and a slow consumer; returns (consumed items, queue)."""
    q: PendingFrames[int] = PendingFrames(maxsize, policy)
    got: list[int] = []

    async def producer():
        for i in range(n):
            await q.put(i)
            await asyncio.sleep(0)  # a camera delivering frames back to back
        await q.close()

    async def consumer():
        while True:
            try:
                item = await q.get()
            except QueueClosed:
                return
            got.append(item)
            await asyncio.sleep(consumer_delay)  # slow inference

    await asyncio.gather(producer(), consumer())
    return got, q


def test_live_policy_drops_oldest_and_counts():
    got, q = asyncio.run(produce_consume(Backpressure.DROP_OLDEST, 50, 2, 0.01))
    assert q.dropped > 0
    assert len(got) + q.dropped == 50
    assert got == sorted(got)  # order kept among the survivors
    assert got[-1] == 49  # the freshest frame always survives


def test_drop_oldest_evicts_the_oldest_exactly():
    async def go():
        q: PendingFrames[int] = PendingFrames(3, Backpressure.DROP_OLDEST)
        q.dropped_items = __import__("collections").deque(maxlen=100)
        for i in range(7):
            await q.put(i)
        out = [await q.get() for _ in range(3)]
        return out, list(q.dropped_items), q.dropped
    out, evicted, dropped = asyncio.run(go())
    assert out == [4, 5, 6] and evicted == [0, 1, 2, 3] and dropped == 4


def test_file_policy_waits_and_loses_nothing():
    got, q = asyncio.run(produce_consume(Backpressure.WAIT, 30, 2, 0.002))
    assert got == list(range(30)) and q.dropped == 0


def test_wait_policy_blocks_producer_when_full():
    async def go():
        q: PendingFrames[int] = PendingFrames(2, Backpressure.WAIT)
        await q.put(0)
        await q.put(1)
        blocked = asyncio.create_task(q.put(2))
        await asyncio.sleep(0.05)
        was_blocked = not blocked.done()
        assert await q.get() == 0
        await asyncio.wait_for(blocked, 1)
        return was_blocked, len(q)
    was_blocked, n = asyncio.run(go())
    assert was_blocked and n == 2


def test_close_drains_then_raises_and_rejects_puts():
    async def go():
        q: PendingFrames[int] = PendingFrames(4, Backpressure.WAIT)
        await q.put(1)
        await q.put(2)
        await q.close()
        items = [await q.get(), await q.get()]
        with pytest.raises(QueueClosed):
            await q.get()
        with pytest.raises(QueueClosed):
            await q.put(3)
        return items
    assert asyncio.run(go()) == [1, 2]


def test_close_wakes_a_waiting_consumer():
    async def go():
        q: PendingFrames[int] = PendingFrames(1, Backpressure.WAIT)
        waiter = asyncio.create_task(q.get())
        await asyncio.sleep(0.01)
        await q.close()
        with pytest.raises(QueueClosed):
            await asyncio.wait_for(waiter, 1)
    asyncio.run(go())


def test_maxsize_must_be_positive():
    with pytest.raises(ValueError, match="maxsize"):
        PendingFrames(0, Backpressure.WAIT)


def test_reorder_buffer_releases_in_order_under_any_arrival_order():
    rng = random.Random(7)
    for _ in range(50):
        n = rng.randint(1, 40)
        order = list(range(n))
        rng.shuffle(order)
        buf: ReorderBuffer[str] = ReorderBuffer()
        released = []
        for seq in order:
            for s, item in buf.push(seq, f"r{seq}"):
                assert item == f"r{s}"
                released.append(s)
        assert released == list(range(n)) and buf.pending == 0


def test_reorder_buffer_holds_back_until_gap_fills():
    buf: ReorderBuffer[int] = ReorderBuffer()
    assert buf.push(1, 1) == [] and buf.push(2, 2) == [] and buf.pending == 2
    assert [s for s, _ in buf.push(0, 0)] == [0, 1, 2]
    with pytest.raises(ValueError, match="already released"):
        buf.push(1, 1)


def test_latency_percentiles_and_rate():
    w = LatencyWindow(capacity=100)
    for v in range(1, 201):  # only the last 100 (101..200 ms) are kept
        w.add(v / 1000)
    p50, p95 = w.percentiles_ms()
    assert p50 == pytest.approx(150.5) and p95 == pytest.approx(195.05)
    r = RateMeter(window_s=10)
    for k in range(11):
        r.tick(now=100 + k * 0.5)  # 2 per second
    assert r.rate(now=105.0) == pytest.approx(2.0)
    assert r.rate(now=110.0) == pytest.approx(1.0)  # stalled for 5 s: the rate decays
    assert r.rate(now=200.0) == 0.0
