"""clients.triton's outage gate against a scripted fake gRPC client (no server needed).

The messages are the ones a real Triton answers (see test_clients_integration's graceful
restart test for the real thing): a graceful shutdown first says ``UNAVAILABLE ... Server
is stopping``, then ``NOT_FOUND ... has no available versions`` while it unloads the models.
"""
from __future__ import annotations

import asyncio

import numpy as np
import pytest
from tritonclient.utils import InferenceServerException

from clients.triton import EnsembleClient, InferenceFailed, RetryPolicy, TritonSettings, is_retryable

STOPPING = ("StatusCode.UNAVAILABLE", "in ensemble 'retail_pipeline', [request id: <id_unknown>] Server is stopping, "
            "scheduler for model has stopped accepting new inference requests")
UNLOADED = ("StatusCode.NOT_FOUND", "Request for unknown model: 'retail_pipeline' has no available versions")
TIMEOUT = ("StatusCode.DEADLINE_EXCEEDED", "Deadline Exceeded")
BAD_INPUT = ("StatusCode.INVALID_ARGUMENT", "unexpected shape for input 'image'")


class Result:
    def as_numpy(self, name):
        return {"boxes": np.array([[1, 2, 3, 4]], np.float32), "scores": np.array([0.9], np.float32),
                "class_ids": np.array([0], np.int32), "class_names": np.array([b"person"]),
                "embeddings": np.zeros((1, 4), np.float32)}[name]


class FakeTriton:
    """infer() raises the scripted errors in turn, then answers; readiness is scripted too."""

    def __init__(self, errors, model_ready=True):
        self.errors = list(errors)
        self.calls = 0
        self.server_ready = True
        self.model_ready = model_ready

    async def infer(self, *a, **kw):
        self.calls += 1
        if self.errors:
            status, msg = self.errors.pop(0)
            raise InferenceServerException(msg, status=status)
        return Result()

    async def is_server_ready(self, **kw):
        return self.server_ready

    async def is_model_ready(self, *a, **kw):
        return self.model_ready

    async def close(self):
        pass


def client_with(fake) -> EnsembleClient:
    c = EnsembleClient(TritonSettings(health_poll_s=0.05,
                                      retry=RetryPolicy(max_attempts=5, initial_backoff_s=0.01, max_backoff_s=0.02)))
    c._client = fake
    return c


@pytest.mark.parametrize("err", [STOPPING, UNLOADED, TIMEOUT])
def test_outage_errors_go_through_the_gate_and_are_retried(err):
    fake = FakeTriton([err, err])

    async def go():
        c = client_with(fake)
        try:
            dets, retries = await c.infer_encoded(b"jpeg")
        finally:
            await c.close()
        return c, dets, retries

    c, dets, retries = asyncio.run(go())
    assert retries == 2 and fake.calls == 3 and len(dets) == 1
    assert c.outages == 1 and c.available  # counted as an outage, not as an inference error


def test_other_errors_fail_at_once():
    fake = FakeTriton([BAD_INPUT])

    async def go():
        c = client_with(fake)
        try:
            with pytest.raises(InferenceFailed, match="INVALID_ARGUMENT"):
                await c.infer_encoded(b"jpeg")
        finally:
            await c.close()
        return c

    c = asyncio.run(go())
    assert fake.calls == 1 and c.outages == 0


def test_classification():
    for err in (STOPPING, UNLOADED, TIMEOUT, ("StatusCode.UNAVAILABLE", "failed to connect to all addresses")):
        assert is_retryable(*err), err
    for err in (BAD_INPUT, ("StatusCode.INTERNAL", "postprocess: division by zero"), ("", "")):
        assert not is_retryable(*err), err


def test_gate_stays_closed_until_the_model_is_ready_again():
    """After a restart the server can be ready before the model is loaded: keep waiting."""
    fake = FakeTriton([UNLOADED], model_ready=False)

    async def go():
        c = client_with(fake)
        try:
            c._mark_down("model unloaded")
            await asyncio.sleep(0.3)
            still_down = not c.available
            fake.model_ready = True
            await asyncio.wait_for(c.wait_ready(), 5)
            return still_down, c.available
        finally:
            await c.close()

    assert asyncio.run(go()) == (True, True)
