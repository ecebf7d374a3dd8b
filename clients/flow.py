"""Flow control between a stream's stages: the pending-frame queue and the reorder buffer.

``PendingFrames`` sits between a source and the inference dispatcher. When it is full:
- ``Backpressure.DROP_OLDEST`` (live cameras): the oldest pending frame is dropped and
  counted, so what reaches the model is always the freshest picture;
- ``Backpressure.WAIT`` (files, image folders): the producer waits; nothing is lost.

``ReorderBuffer`` restores send order: Triton may answer concurrent requests of one stream
out of order (dynamic batching, retries), but the tracker needs frames in time order.
"""
from __future__ import annotations

import asyncio
import enum
from collections import deque
from typing import Generic, TypeVar

T = TypeVar("T")


class Backpressure(str, enum.Enum):
    DROP_OLDEST = "drop_oldest"
    WAIT = "wait"


class QueueClosed(Exception):
    """``get()`` on a closed queue with nothing left in it."""


class PendingFrames(Generic[T]):
    """Bounded FIFO for one stream with a backpressure policy (single event loop)."""

    def __init__(self, maxsize: int, policy: Backpressure) -> None:
        if maxsize < 1:
            raise ValueError(f"maxsize must be >= 1, got {maxsize}")
        self.maxsize = maxsize
        self.policy = Backpressure(policy)
        self._items: deque[T] = deque()
        self._cond = asyncio.Condition()
        self._closed = False
        self.dropped = 0  # frames evicted under DROP_OLDEST
        self.dropped_items: deque[T] = deque(maxlen=0)  # set maxlen>0 to keep evicted items (tests)

    def __len__(self) -> int:
        return len(self._items)

    @property
    def closed(self) -> bool:
        return self._closed

    async def put(self, item: T) -> None:
        async with self._cond:
            if self._closed:
                raise QueueClosed("put() on a closed queue")
            if self.policy is Backpressure.WAIT:
                await self._cond.wait_for(lambda: len(self._items) < self.maxsize or self._closed)
                if self._closed:
                    raise QueueClosed("queue closed while waiting for space")
            elif len(self._items) >= self.maxsize:
                self.dropped_items.append(self._items.popleft())
                self.dropped += 1
            self._items.append(item)
            self._cond.notify_all()

    async def get(self) -> T:
        """Next item; raises QueueClosed once the queue is closed and empty."""
        async with self._cond:
            await self._cond.wait_for(lambda: bool(self._items) or self._closed)
            if not self._items:
                raise QueueClosed("queue closed")
            item = self._items.popleft()
            self._cond.notify_all()
            return item

    async def close(self, discard: bool = False) -> int:
        """No more puts; pending items are still handed out unless ``discard``. Returns discarded."""
        async with self._cond:
            self._closed = True
            n = 0
            if discard:
                n = len(self._items)
                self._items.clear()
            self._cond.notify_all()
            return n


class ReorderBuffer(Generic[T]):
    """Releases items strictly in sequence order 0, 1, 2, ... as gaps fill in.

    Every sequence number must eventually be pushed (a lost frame is pushed as a marker),
    otherwise later items wait forever; ``pending`` shows how many are held back.
    """

    def __init__(self, start: int = 0) -> None:
        self.next_seq = start
        self._held: dict[int, T] = {}

    @property
    def pending(self) -> int:
        return len(self._held)

    def push(self, seq: int, item: T) -> list[tuple[int, T]]:
        if seq < self.next_seq or seq in self._held:
            raise ValueError(f"sequence {seq} already released or pushed (next is {self.next_seq})")
        self._held[seq] = item
        out: list[tuple[int, T]] = []
        while self.next_seq in self._held:
            out.append((self.next_seq, self._held.pop(self.next_seq)))
            self.next_seq += 1
        return out
