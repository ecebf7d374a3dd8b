"""Frame sources: video files, RTSP/HTTP URLs, USB cameras, image folders, simulated cameras.

Every source is an async iterator of ``core.types.Frame`` (BGR image + timestamp):

- file-like sources (video file, image folder, simulator) are *offline*: the timestamp is
  ``start_time + index / fps`` (so analytics see the clip's own time), and frames come
  either paced at ``fps`` (``realtime=True``) or as fast as the consumer takes them;
- live sources (URL, USB) stamp frames with the wall clock, are paced by the camera, and
  reconnect with exponential backoff (capped at ``max_s``) and jitter, forever by default
  (a camera rebooting or a network cut of any length is waited out); with ``max_retries``
  set, that many failed attempts in a row raise ``SourceError``.

Blocking OpenCV calls run in worker threads so one slow camera never stalls the others.
``frame.meta["t_read"]`` is the monotonic time the frame was read (for end-to-end latency).
"""
from __future__ import annotations

import asyncio
import logging
import random
import re
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import AsyncIterator, Callable, Iterator

import cv2
import numpy as np

from core.types import Frame

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")


class SourceError(RuntimeError):
    """A source cannot deliver (more) frames: message names the file/URL and frame."""


@dataclass(frozen=True, slots=True)
class Backoff:
    """Exponential backoff with jitter: delay_k = min(max, initial * factor**k) * (1 +- jitter)."""

    initial_s: float = 0.5
    max_s: float = 10.0
    factor: float = 2.0
    jitter: float = 0.2
    max_retries: int | None = None  # consecutive failed attempts before giving up; None = forever

    def delay(self, attempt: int, rng: random.Random | None = None) -> float:
        base = min(self.max_s, self.initial_s * self.factor ** max(attempt - 1, 0))
        r = (rng or random).uniform(-self.jitter, self.jitter)
        return max(0.0, base * (1.0 + r))


def redact_url(url: str) -> str:
    """rtsp://user:secret@host/x -> rtsp://user:***@host/x (logs must not leak passwords)."""
    return re.sub(r"(//[^:/@]+):[^@/]*@", r"\1:***@", url)


class FrameSource(ABC):
    """An async iterator of frames for one stream."""

    live: bool = False

    def __init__(self, stream_id: str) -> None:
        self.stream_id = stream_id
        self.reconnects = 0
        self.decode_errors = 0
        self.frames_total: int | None = None  # known length (offline sources), for progress
        self._closing: asyncio.Event | None = None
        self.closed = False

    def close(self) -> None:
        """Ask ``frames()`` to end after the read in progress (it never blocks longer than one
        read or its timeout); a reconnect backoff in progress is cut short."""
        self.closed = True
        if self._closing is not None:
            self._closing.set()

    async def _sleep(self, seconds: float) -> None:
        """Sleep that ``close()`` interrupts."""
        if self._closing is None:
            self._closing = asyncio.Event()
            if self.closed:
                self._closing.set()
        try:
            await asyncio.wait_for(self._closing.wait(), seconds)
        except asyncio.TimeoutError:
            pass

    @abstractmethod
    def describe(self) -> str: ...

    @abstractmethod
    def frames(self) -> AsyncIterator[Frame]: ...

    def _frame(self, index: int, ts: float, image: np.ndarray) -> Frame:
        h, w = image.shape[:2]
        return Frame(self.stream_id, index, ts, image=image, width=w, height=h,
                     meta={"t_read": time.monotonic()})


class _Pacer:
    """Sleeps so that frame i is released at t0 + i / fps (offline sources in real time)."""

    def __init__(self, fps: float, enabled: bool) -> None:
        self.period = 1.0 / fps
        self.enabled = enabled
        self.t0: float | None = None

    async def wait(self, index: int) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if self.t0 is None:
            self.t0 = now - index * self.period
        delay = self.t0 + index * self.period - now
        if delay > 0:
            await asyncio.sleep(delay)


class OfflineSource(FrameSource):
    """Common part of sources with their own clock: start_time + index / fps."""

    def __init__(self, stream_id: str, fps: float, realtime: bool = False,
                 start_time: float | None = None) -> None:
        super().__init__(stream_id)
        if not fps or fps <= 0 or not np.isfinite(fps):
            raise SourceError(f"{stream_id}: fps must be > 0, got {fps!r}")
        self.fps = float(fps)
        self.realtime = realtime
        self.start_time = time.time() if start_time is None else float(start_time)

    def timestamp(self, index: int) -> float:
        return self.start_time + index / self.fps


class VideoFileSource(OfflineSource):
    """A video file read with cv2.VideoCapture.

    A file OpenCV cannot open, or one whose decoding stops before the frame count in its
    header (truncated or corrupt), raises SourceError naming the file and the frame.
    """

    def __init__(self, stream_id: str, path: str | Path, realtime: bool = False,
                 start_time: float | None = None, fps: float | None = None, loop: bool = False) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise SourceError(f"{stream_id}: video file {self.path} does not exist")
        cap = cv2.VideoCapture(str(self.path))
        try:
            if not cap.isOpened():
                raise SourceError(f"{stream_id}: video file {self.path}: cannot open "
                                  f"(corrupt, truncated or unsupported container; no frame could be read)")
            file_fps = cap.get(cv2.CAP_PROP_FPS)
            count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
        finally:
            cap.release()
        if fps is None:
            if not (0 < file_fps < 1000):
                log.warning("%s: %s has no valid fps in its header (%r): assuming 25", stream_id, self.path, file_fps)
                file_fps = 25.0
            fps = file_fps
        super().__init__(stream_id, fps, realtime, start_time)
        self.loop = loop
        self.frames_total = count if count > 0 and not loop else None
        self._header_count = count

    def describe(self) -> str:
        return f"video file {self.path}"

    async def frames(self) -> AsyncIterator[Frame]:
        pacer = _Pacer(self.fps, self.realtime)
        index = 0
        while True:
            cap = await asyncio.to_thread(cv2.VideoCapture, str(self.path))
            if not cap.isOpened():
                raise SourceError(f"{self.stream_id}: video file {self.path}: cannot open at frame {index}")
            local = 0
            try:
                while True:
                    if self.closed:
                        return
                    ok, image = await asyncio.to_thread(cap.read)
                    if not ok or image is None:
                        break
                    await pacer.wait(index)
                    yield self._frame(index, self.timestamp(index), image)
                    index += 1
                    local += 1
            finally:
                await asyncio.to_thread(cap.release)
            if 0 < self._header_count and local < self._header_count:
                raise SourceError(
                    f"{self.stream_id}: video file {self.path}: decoding failed at frame {local} "
                    f"of {self._header_count} (truncated or corrupt file)")
            if local == 0:
                raise SourceError(f"{self.stream_id}: video file {self.path}: no frame could be decoded")
            if not self.loop:
                return


class ImageFolderSource(OfflineSource):
    """Images in a folder, in name order, as frames at ``fps``. Unreadable images are skipped
    (counted in ``decode_errors`` and logged with their file name)."""

    def __init__(self, stream_id: str, folder: str | Path, fps: float = 10.0, realtime: bool = False,
                 start_time: float | None = None, loop: bool = False) -> None:
        super().__init__(stream_id, fps, realtime, start_time)
        self.folder = Path(folder)
        if not self.folder.is_dir():
            raise SourceError(f"{stream_id}: image folder {self.folder} does not exist")
        self.files = sorted(p for p in self.folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not self.files:
            raise SourceError(f"{stream_id}: image folder {self.folder} has no images ({', '.join(IMAGE_SUFFIXES)})")
        self.loop = loop
        self.frames_total = None if loop else len(self.files)

    def describe(self) -> str:
        return f"image folder {self.folder} ({len(self.files)} images)"

    async def frames(self) -> AsyncIterator[Frame]:
        pacer = _Pacer(self.fps, self.realtime)
        index = 0
        while True:
            for path in self.files:
                if self.closed:
                    return
                image = await asyncio.to_thread(cv2.imread, str(path), cv2.IMREAD_COLOR)
                if image is None:
                    self.decode_errors += 1
                    log.error("%s: image folder %s: cannot decode %s (frame %d): skipped",
                              self.stream_id, self.folder, path.name, index)
                    index += 1
                    continue
                await pacer.wait(index)
                yield self._frame(index, self.timestamp(index), image)
                index += 1
            if not self.loop:
                if self.decode_errors == len(self.files):
                    raise SourceError(f"{self.stream_id}: image folder {self.folder}: none of its images could be decoded")
                return


class RenderedSource(OfflineSource):
    """Frames produced by a function ``render(index) -> BGR image or None`` (end of clip):
    the store simulator's cameras (simulator.day) plug in here."""

    def __init__(self, stream_id: str, render: Callable[[int], np.ndarray | None], fps: float,
                 n_frames: int | None = None, realtime: bool = False, start_time: float | None = None,
                 name: str = "rendered camera") -> None:
        super().__init__(stream_id, fps, realtime, start_time)
        self.render = render
        self.frames_total = n_frames
        self.name = name

    def describe(self) -> str:
        return self.name

    async def frames(self) -> AsyncIterator[Frame]:
        pacer = _Pacer(self.fps, self.realtime)
        index = 0
        while (self.frames_total is None or index < self.frames_total) and not self.closed:
            image = await asyncio.to_thread(self.render, index)
            if image is None:
                return
            await pacer.wait(index)
            yield self._frame(index, self.timestamp(index), image)
            index += 1


SIMULATOR_START = "2024-01-15T18:30:00Z"  # the simulator's evening rush (people queue at every till)


def simulator_cameras() -> list[str]:
    """Camera ids of the store simulator (simulator/world.py); SourceError if it is absent."""
    try:
        from simulator.world import CAMERA_IDS
    except ImportError as e:
        raise SourceError(f"the store simulator (simulator) is not available: {e}") from None
    return list(CAMERA_IDS)


class SimulatedCamera(RenderedSource):
    """One camera of the store simulator, rendered frame by frame (no video file).

    ``sim_start`` is the simulated clock at frame 0 (the time of day decides how busy the
    store is); frame timestamps are ``start + index / fps`` where ``start`` is ``sim_start``
    (``clock="simulated"``) or the wall clock when the stream opens (``clock="wall"``, for a
    live-like run). ``loop`` replays the clip (timestamps keep counting, like a looped file).
    """

    def __init__(self, stream_id: str, camera: str, seconds: float, fps: float = 5.0, seed: int = 7,
                 sim_start: float | None = None, clock: str = "simulated", realtime: bool = False,
                 loop: bool = False) -> None:
        cameras = simulator_cameras()  # checked here too: the class is usable without a config file
        if camera not in cameras:
            raise SourceError(f"{stream_id}: simulator camera {camera!r} does not exist; cameras: {cameras}")
        if not seconds or seconds <= 0:
            raise SourceError(f"{stream_id}: simulator seconds must be > 0, got {seconds!r}")
        if clock not in ("simulated", "wall"):
            raise SourceError(f"{stream_id}: simulator clock must be 'simulated' or 'wall', got {clock!r}")
        from analytics.records import parse_iso_utc

        self.camera = camera
        self.seconds = float(seconds)
        self.seed = int(seed)
        self.sim_start = parse_iso_utc(SIMULATOR_START) if sim_start is None else float(sim_start)
        self.loop = loop
        self.clock = clock
        self.clip_frames = max(1, int(round(self.seconds * fps)))
        self._gen: Iterator | None = None
        self._next = 0  # index the generator yields next
        super().__init__(stream_id, self._render, fps, n_frames=None if loop else self.clip_frames,
                         realtime=realtime, start_time=self.sim_start if clock == "simulated" else None,
                         name=f"simulated camera {camera} (seed {self.seed}, {self.seconds:g} s from "
                              f"{_iso(self.sim_start)} at {fps:g} fps{', looped' if loop else ''})")

    def _clip(self) -> Iterator:
        from simulator.render import render_camera

        return render_camera(self.camera, seconds=self.seconds, fps=self.fps, seed=self.seed,
                             start=_iso(self.sim_start))

    def _render(self, index: int) -> np.ndarray | None:
        """Frames are asked for in order (one at a time, from a worker thread)."""
        if not self.loop and index >= self.clip_frames:
            return None
        local = index % self.clip_frames
        if self._gen is None:
            self._gen, self._next = self._clip(), 0
        if local != self._next:
            raise SourceError(f"{self.stream_id}: simulated frames must be read in order "
                              f"(asked for {index}, next is {self._next})")
        try:
            image = next(self._gen)[0]
        except StopIteration:
            self._gen = None
            return None
        self._next = (self._next + 1) % self.clip_frames
        if self._next == 0:
            self._gen = None  # clip done: the next frame (looped) starts a new one
        return image


def _iso(ts: float) -> str:
    from analytics.records import iso_utc

    return iso_utc(ts)


class LiveSource(FrameSource):
    """RTSP/HTTP URL or USB camera index: wall-clock timestamps, reconnect with backoff.

    The camera paces the frames. A read that fails (camera gone, network cut) closes the
    capture and reopens it after a backoff delay; ``reconnects`` counts reopen attempts
    after a failure. By default it retries forever (delays capped at ``backoff.max_s``);
    with ``backoff.max_retries`` set, that many consecutive failures raise SourceError.
    """

    live = True

    def __init__(self, stream_id: str, target: str | int, backoff: Backoff = Backoff(),
                 open_timeout_s: float = 5.0, read_timeout_s: float = 5.0) -> None:
        super().__init__(stream_id)
        self.target = target
        self.backoff = backoff
        self.open_timeout_s = open_timeout_s
        self.read_timeout_s = read_timeout_s

    def describe(self) -> str:
        if isinstance(self.target, int):
            return f"USB camera {self.target}"
        return f"stream {redact_url(self.target)}"

    def _open(self) -> cv2.VideoCapture:
        if isinstance(self.target, int):
            return cv2.VideoCapture(self.target)
        params = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, int(self.open_timeout_s * 1000),
                  cv2.CAP_PROP_READ_TIMEOUT_MSEC, int(self.read_timeout_s * 1000)]
        return cv2.VideoCapture(self.target, cv2.CAP_FFMPEG, params)

    async def frames(self) -> AsyncIterator[Frame]:
        index = 0
        failures = 0
        last_error = ""
        while not self.closed:
            cap = await asyncio.to_thread(self._open)
            if cap.isOpened():
                if failures:
                    log.info("%s: %s reconnected after %d attempt(s)", self.stream_id, self.describe(), failures)
                try:
                    while not self.closed:
                        ok, image = await asyncio.to_thread(cap.read)
                        if not ok or image is None:
                            last_error = f"read failed after frame {index}"
                            break
                        failures = 0
                        yield self._frame(index, time.time(), image)
                        index += 1
                finally:
                    await asyncio.to_thread(cap.release)
                if self.closed:
                    return
            else:
                cap.release()
                last_error = "cannot open"
            if self.closed:
                return
            failures += 1
            if self.backoff.max_retries is not None and failures > self.backoff.max_retries:
                raise SourceError(f"{self.stream_id}: {self.describe()}: unreachable after "
                                  f"{failures} attempt(s) ({last_error})")
            self.reconnects += 1
            delay = self.backoff.delay(failures)
            if failures <= 5 or failures % 30 == 0:  # a long outage: one line every ~30 attempts
                log.warning("%s: %s: %s; reconnect attempt %d in %.2fs", self.stream_id, self.describe(),
                            last_error, failures, delay)
            await self._sleep(delay)
