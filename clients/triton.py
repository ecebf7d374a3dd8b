"""Async gRPC client for the ``retail_pipeline`` ensemble (tritonclient.grpc.aio).

One request per frame: JPEG bytes in, ``core.types.Detections`` out. JPEG is what
travels (the ensemble decodes it): a 640x360 frame is ~1 MB of raw pixels and ~30-60 KB
as quality-90 JPEG; the client counts bytes sent per frame so that choice stays measured.

Triton going away is expected (restarts, deploys). The client keeps a ready gate:
- a request failing because the server is not there (``is_retryable``: UNAVAILABLE,
  DEADLINE_EXCEEDED, or the model not ready / unloaded, which is what a graceful restart
  answers while it drains: ``UNAVAILABLE ... Server is stopping`` then ``NOT_FOUND: Request
  for unknown model: 'retail_pipeline' has no available versions``) closes the gate and
  starts a health monitor that polls server *and* model readiness until both are back;
- new frames wait at the gate (``wait_ready``) instead of hammering a dead server;
- the failed request is retried with exponential backoff up to ``retry.max_attempts``;
  after that the frame is *lost* (``InferenceLost``), which the caller counts and reports.
Other failures (bad input, model error) raise ``InferenceFailed`` at once: retrying would
not help. Nothing here ever lets an exception escape that the runner has not named.

Many replicas, one channel (docs/scale.md). ``TritonSettings.url`` is a gRPC target:
``host:port`` (one server, gRPC's default pick_first), ``dns:///triton-headless:8001`` (a
name resolving to many addresses, e.g. a Kubernetes headless Service) or ``ipv4:a:p,b:p``;
``urls`` (several ``host:port``) is turned into one ``ipv4:``/``ipv6:`` target by
``grpc_target`` (each host resolved once, at connect). Balanced targets get gRPC's own
``round_robin`` policy through the channel's service config (``channel_args``): every
request goes to the next READY backend; a dead backend leaves the rotation when its
connection fails and rejoins when gRPC reconnects to it. A request that fails because its
replica died is re-sent at once (counted in ``failovers``; round robin picks another
replica) before the ready gate is closed: the gate is for "no replica answers at all".
"""
from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
import random
import socket
import time
from dataclasses import dataclass, field

import cv2
import numpy as np
import tritonclient.grpc.aio as grpcclient
from tritonclient.utils import InferenceServerException

from core.types import Detections

log = logging.getLogger(__name__)

INPUT_NAME = "image"
OUTPUT_NAMES = ("boxes", "scores", "class_ids", "class_names", "embeddings")
# Statuses that mean "server not there (yet)": worth waiting for.
RETRYABLE = ("StatusCode.UNAVAILABLE", "StatusCode.DEADLINE_EXCEEDED")
# Other statuses are retryable when the message says the model is (momentarily) not loaded:
# Triton unloads every model while it shuts down gracefully (SIGTERM), and a model being
# reloaded through the repository API is briefly unknown. The start-up check has seen the
# model ready, so a missing model mid-run is an outage, not a wrong name.
NOT_READY_STATUSES = ("StatusCode.NOT_FOUND", "StatusCode.INTERNAL", "StatusCode.FAILED_PRECONDITION",
                      "StatusCode.UNKNOWN")
NOT_READY_MESSAGES = ("has no available versions", "unknown model", "is not ready", "not ready",
                      "server is stopping", "is not found", "stopped accepting")
MAX_MESSAGE = 2**31 - 1
LB_POLICIES = ("auto", "round_robin", "pick_first")
TARGET_SCHEMES = ("dns:", "ipv4:", "ipv6:", "unix:")  # gRPC name-resolver schemes a url may use


class InferenceFailed(RuntimeError):
    """The server answered with an error that retrying will not fix."""


class BadFrame(InferenceFailed):
    """The server refused the frame itself (INVALID_ARGUMENT: undecodable, degenerate or huge)."""


class InferenceLost(RuntimeError):
    """The server stayed unavailable through every retry: the frame is lost."""


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    max_attempts: int = 6  # attempts per request, the first included
    initial_backoff_s: float = 0.25
    max_backoff_s: float = 4.0
    jitter: float = 0.2

    def delay(self, attempt: int) -> float:
        base = min(self.max_backoff_s, self.initial_backoff_s * 2 ** max(attempt - 1, 0))
        return base * (1 + random.uniform(-self.jitter, self.jitter))


@dataclass(frozen=True, slots=True)
class TritonSettings:
    url: str = "localhost:8001"  # a gRPC target (see the module docstring)
    urls: tuple[str, ...] = ()  # several host:port replicas (then ``url`` is only their label)
    load_balancing: str = "auto"  # auto: round_robin for several replicas or a dns:/ipv4:/ipv6: target
    refresh_s: float = 60.0  # balanced channels: a fresh channel (names resolved again) this often; 0 = never
    model: str = "retail_pipeline"
    model_version: str = ""
    max_in_flight_per_stream: int = 4
    max_pending_per_stream: int = 2
    jpeg_quality: int = 90
    request_timeout_s: float = 30.0
    health_poll_s: float = 0.5
    retry: RetryPolicy = field(default_factory=RetryPolicy)


def is_retryable(status: str | None, message: str | None) -> bool:
    """True when the error means "server or model not there right now" (wait and retry)."""
    status = status or ""
    if status in RETRYABLE:
        return True
    text = (message or "").lower()
    return status in NOT_READY_STATUSES and any(m in text for m in NOT_READY_MESSAGES)


def encode_jpeg(image: np.ndarray, quality: int) -> bytes:
    ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise InferenceFailed(f"cv2.imencode failed for an image of shape {image.shape}")
    return buf.tobytes()


def parse_outputs(result) -> Detections:
    """InferResult of the ensemble -> Detections (shapes per docs/architecture.md)."""
    boxes = result.as_numpy("boxes")
    if boxes is None:
        raise InferenceFailed("ensemble response has no 'boxes' output")
    boxes = boxes.astype(np.float32, copy=False).reshape(-1, 4)
    n = boxes.shape[0]
    scores = result.as_numpy("scores")
    class_ids = result.as_numpy("class_ids")
    names = result.as_numpy("class_names")
    emb = result.as_numpy("embeddings")
    scores = np.zeros(n, np.float32) if scores is None else scores.astype(np.float32, copy=False).reshape(-1)
    class_ids = np.zeros(n, np.int32) if class_ids is None else class_ids.astype(np.int32, copy=False).reshape(-1)
    if scores.shape[0] != n or class_ids.shape[0] != n:
        raise InferenceFailed(f"ensemble outputs disagree: {n} boxes, {scores.shape[0]} scores, "
                              f"{class_ids.shape[0]} class ids")
    class_names: tuple[str, ...] = ()
    if names is not None:
        class_names = tuple(v.decode() if isinstance(v, bytes) else str(v) for v in names.reshape(-1))
    if emb is not None:
        emb = emb.astype(np.float32, copy=False).reshape(n, -1) if n else emb.astype(np.float32).reshape(0, emb.shape[-1] if emb.ndim > 1 else 0)
    return Detections(boxes, scores, class_ids, class_names, emb)


class TargetError(InferenceLost):
    """A replica address that cannot become a gRPC target (unresolvable, or v4 mixed with v6):
    like a Triton that is not there (the CLI's exit 3), with the address named."""


def _split_host_port(addr: str) -> tuple[str, str]:
    host, sep, port = addr.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise TargetError(f"triton.url: {addr!r} is not host:port")
    return host.strip("[]"), port


def grpc_target(settings: TritonSettings) -> str:
    """The channel's target: ``url`` as given, or ``urls`` resolved into one ``ipv4:``/``ipv6:``
    list (gRPC's static resolvers take IP literals; each name is looked up once, here)."""
    if len(settings.urls) <= 1:
        return settings.urls[0] if settings.urls else settings.url
    v4: list[str] = []
    v6: list[str] = []
    for addr in settings.urls:
        host, port = _split_host_port(addr)
        try:
            ip = ipaddress.ip_address(host)
        except ValueError:
            try:
                infos = socket.getaddrinfo(host, int(port), type=socket.SOCK_STREAM)
            except socket.gaierror as e:
                raise TargetError(f"triton.url: cannot resolve replica {addr!r}: {e}") from None
            ips = [ipaddress.ip_address(i[4][0]) for i in infos]
            ip = next((i for i in ips if i.version == 4), ips[0])
        (v4 if ip.version == 4 else v6).append(f"{ip}:{port}" if ip.version == 4 else f"[{ip}]:{port}")
    if v4 and v6:
        raise TargetError(f"triton.url: replicas {list(settings.urls)} mix IPv4 and IPv6 addresses; "
                          "gRPC's static target takes one family (use a DNS name: dns:///name:port)")
    return f"ipv4:{','.join(v4)}" if v4 else f"ipv6:{','.join(v6)}"


def balanced(settings: TritonSettings) -> bool:
    """True when the channel spreads requests over several replicas (round_robin)."""
    if settings.load_balancing != "auto":
        return settings.load_balancing == "round_robin"
    url = settings.url
    return len(settings.urls) > 1 or url.startswith("dns:") or (url.startswith(("ipv4:", "ipv6:")) and "," in url)


def _channel_args(settings: TritonSettings) -> list[tuple[str, int | str]]:
    # Passing channel_args replaces tritonclient's defaults, so they are restated here. The
    # reconnect backoff is capped low: gRPC's default (up to 120 s) would keep a restarted
    # server unused long after it is back.
    lb: list[tuple[str, int | str]] = []
    if balanced(settings):
        # gRPC's own client-side balancing: the service config selects round_robin (one
        # subchannel per resolved address, each request to the next READY one).
        lb = [("grpc.service_config", json.dumps({"loadBalancingConfig": [{"round_robin": {}}]})),
              ("grpc.dns_min_time_between_resolutions_ms", 2000)]
    return lb + [
        ("grpc.max_send_message_length", MAX_MESSAGE),
        ("grpc.max_receive_message_length", MAX_MESSAGE),
        ("grpc.keepalive_time_ms", 2**31 - 1),
        ("grpc.keepalive_timeout_ms", 20000),
        ("grpc.keepalive_permit_without_calls", 0),
        ("grpc.http2.max_pings_without_data", 2),
        ("grpc.initial_reconnect_backoff_ms", 200),
        ("grpc.min_reconnect_backoff_ms", 200),
        ("grpc.max_reconnect_backoff_ms", 2000),
    ]


class EnsembleClient:
    """Shared by all streams of a process (one gRPC channel; Triton batches across them)."""

    def __init__(self, settings: TritonSettings) -> None:
        self.settings = settings
        self._client: grpcclient.InferenceServerClient | None = None
        self._ready = asyncio.Event()
        self._ready.set()  # optimistic: the first request finds out
        self._monitor: asyncio.Task | None = None
        self.down_since: float | None = None
        self.outages = 0
        self.requests = 0
        self.retries = 0
        self.failovers = 0  # requests re-sent at once after their replica failed (balanced channel)
        self.balanced = balanced(settings)
        self.target = ""
        self.refreshes = 0
        self._refresher: asyncio.Task | None = None
        self._retiring: set[asyncio.Task] = set()
        self._old: list[grpcclient.InferenceServerClient] = []  # replaced channels, closing after a grace

    def _new_client(self) -> grpcclient.InferenceServerClient:
        self.target = grpc_target(self.settings)
        return grpcclient.InferenceServerClient(self.target, channel_args=_channel_args(self.settings))

    async def __aenter__(self) -> "EnsembleClient":
        self._client = self._new_client()
        if self.balanced and self.settings.refresh_s > 0:
            self._refresher = asyncio.get_running_loop().create_task(self._refresh_loop())
        return self

    async def _refresh_loop(self) -> None:
        """gRPC re-resolves a name only when a connection fails, so replicas added by scaling up
        would stay unused: every ``refresh_s`` new requests go to a fresh channel (resolved again,
        connected to every replica there is now); the old one closes once its requests are done."""
        while True:
            await asyncio.sleep(self.settings.refresh_s)
            try:
                new = self._new_client()
            except TargetError as e:  # a listed name no longer resolves: keep the channel we have
                log.warning("Triton channel not refreshed: %s", e)
                continue
            old, self._client = self._client, new
            self.refreshes += 1
            if old is not None:
                self._old.append(old)
            task = asyncio.get_running_loop().create_task(self._retire(old))
            self._retiring.add(task)
            task.add_done_callback(self._retiring.discard)

    async def _retire(self, old: grpcclient.InferenceServerClient | None) -> None:
        await asyncio.sleep(self.settings.request_timeout_s + 1)  # its requests have answered or timed out
        if old in self._old:
            self._old.remove(old)
            await old.close()

    async def __aexit__(self, *exc) -> None:
        await self.close()

    async def close(self) -> None:
        for task in [self._monitor, self._refresher, *self._retiring]:
            if task is not None:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        self._monitor = self._refresher = None
        while self._old:
            await self._old.pop().close()
        if self._client is not None:
            await self._client.close()
            self._client = None

    @property
    def client(self) -> grpcclient.InferenceServerClient:
        if self._client is None:
            raise RuntimeError("EnsembleClient used outside `async with`")
        return self._client

    @property
    def available(self) -> bool:
        return self._ready.is_set()

    async def is_ready(self, timeout: float = 2.0) -> bool:
        """Server ready and the model loaded (after a restart the server may answer first)."""
        try:
            return bool(await self.client.is_server_ready(client_timeout=timeout)) and bool(
                await self.client.is_model_ready(self.settings.model, self.settings.model_version,
                                                 client_timeout=timeout))
        except InferenceServerException:
            return False

    async def wait_ready(self) -> None:
        """Return once the server is believed ready (immediately in normal operation)."""
        if not self._ready.is_set():
            await self._ready.wait()

    async def check(self, timeout: float = 30.0) -> None:
        """Fail fast with a clear message if the server or the model is not ready."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                if await self.client.is_server_ready(client_timeout=2.0) and await self.client.is_model_ready(
                        self.settings.model, self.settings.model_version, client_timeout=2.0):
                    return
                why = f"model {self.settings.model!r} not ready"
            except InferenceServerException as e:
                why = e.message() or str(e)
            if time.monotonic() > deadline:
                raise InferenceLost(f"Triton at {self.settings.url} not ready after {timeout:.0f}s: {why}")
            await asyncio.sleep(0.5)

    def _mark_down(self, why: str) -> None:
        if self._ready.is_set():
            self._ready.clear()
            self.down_since = time.monotonic()
            self.outages += 1
            log.warning("Triton at %s unavailable (%s): pausing sends, polling readiness", self.settings.url, why)
        if self._monitor is None or self._monitor.done():
            self._monitor = asyncio.get_running_loop().create_task(self._watch())

    def _server_back(self) -> None:
        down = time.monotonic() - (self.down_since or time.monotonic())
        log.warning("Triton at %s is back after %.1fs", self.settings.url, down)
        self.down_since = None
        self._ready.set()

    async def _watch(self) -> None:
        last_log = time.monotonic()
        while True:
            await asyncio.sleep(self.settings.health_poll_s)
            if self._ready.is_set():
                return
            if await self.is_ready(timeout=self.settings.health_poll_s * 2 + 1):
                self._server_back()
                return
            if time.monotonic() - last_log > 10:
                last_log = time.monotonic()
                log.warning("Triton at %s still unavailable (%.0fs)", self.settings.url,
                            time.monotonic() - (self.down_since or last_log))

    async def infer_encoded(self, data: bytes) -> tuple[Detections, int]:
        """JPEG bytes -> (Detections, retries used). Raises InferenceLost / InferenceFailed."""
        inp = grpcclient.InferInput(INPUT_NAME, [len(data)], "UINT8")
        inp.set_data_from_numpy(np.frombuffer(data, np.uint8))
        outputs = [grpcclient.InferRequestedOutput(n) for n in OUTPUT_NAMES]
        attempt = 0
        while True:
            attempt += 1
            self.requests += 1
            try:
                result = await self.client.infer(self.settings.model, [inp], model_version=self.settings.model_version,
                                                 outputs=outputs, client_timeout=self.settings.request_timeout_s)
                if not self._ready.is_set():  # answered before the monitor noticed
                    self._server_back()
                return parse_outputs(result), attempt - 1
            except InferenceServerException as e:
                status = e.status() or ""
                if status == "StatusCode.INVALID_ARGUMENT":  # the frame is at fault: never retried
                    raise BadFrame(f"{status}: {e.message()}") from None
                if not is_retryable(status, e.message()):
                    raise InferenceFailed(f"{status or 'error'}: {e.message()}") from None
                if self.balanced and attempt == 1 and self._ready.is_set():
                    # its replica died or is draining: round robin sends the retry elsewhere
                    self.failovers += 1
                    self.retries += 1
                    log.info("request failed on one replica (%s): re-sent to the next", e.message() or status)
                    continue
                self._mark_down(e.message() or status)
                if attempt >= self.settings.retry.max_attempts:
                    raise InferenceLost(f"Triton unavailable through {attempt} attempts: {e.message()}") from None
                self.retries += 1
                # Retry when the monitor sees the server back, or after the backoff delay.
                try:
                    await asyncio.wait_for(self._ready.wait(), self.settings.retry.delay(attempt))
                except asyncio.TimeoutError:
                    pass

    async def infer(self, image: np.ndarray) -> Detections:
        dets, _ = await self.infer_encoded(encode_jpeg(image, self.settings.jpeg_quality))
        return dets
