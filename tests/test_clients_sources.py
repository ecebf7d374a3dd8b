"""Frame sources on real files: mp4 (cv2.VideoWriter), a truncated copy, an image folder,
an MJPG AVI cut mid-stream, and an RTSP URL to a closed local port."""
from __future__ import annotations

import asyncio
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from clients.sources import (
    Backoff,
    ImageFolderSource,
    LiveSource,
    RenderedSource,
    SimulatedCamera,
    SourceError,
    VideoFileSource,
    redact_url,
)
from launchers.ports import free_port as closed_port  # nothing listens there

W, H, N, FPS = 96, 64, 12, 10.0


def frame_image(i: int) -> np.ndarray:
    img = np.full((H, W, 3), 40, np.uint8)
    cv2.rectangle(img, (4 + 6 * i, 10), (20 + 6 * i, 50), (0, 200, 255), -1)
    return img


def write_video(path: Path, fourcc: str = "mp4v", n: int = N) -> Path:
    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), FPS, (W, H))
    assert w.isOpened()
    for i in range(n):
        w.write(frame_image(i))
    w.release()
    return path


def collect(source, limit: int | None = None):
    async def go():
        out = []
        async for f in source.frames():
            out.append(f)
            if limit and len(out) >= limit:
                break
        return out
    return asyncio.run(go())


@pytest.fixture
def video(tmp_path) -> Path:
    return write_video(tmp_path / "clip.mp4")


def test_video_file_frames_and_timestamps(video):
    src = VideoFileSource("cam-a", video, start_time=1_700_000_000.0)
    assert src.frames_total == N and src.fps == pytest.approx(FPS)
    frames = collect(src)
    assert [f.frame_number for f in frames] == list(range(N))
    ts = np.array([f.timestamp for f in frames])
    np.testing.assert_allclose(ts, 1_700_000_000.0 + np.arange(N) / FPS)
    assert frames[0].image.shape == (H, W, 3) and frames[0].width == W and frames[0].height == H
    assert all(f.stream_id == "cam-a" for f in frames)
    # content follows the written frames (the box moves right by 6 px per frame)
    cols = [np.nonzero(f.image[30, :, 2] > 150)[0].min() for f in frames]
    assert np.all(np.diff(cols) > 0)


def test_video_file_paced_in_real_time(video):
    paced = time.monotonic()
    frames = collect(VideoFileSource("cam", video, realtime=True, fps=40.0))  # 12 frames at 40 fps: >= 0.275 s
    paced = time.monotonic() - paced
    # a lower bound only: a loaded machine makes a run slower, never a paced one faster
    assert len(frames) == N and paced >= (N - 1) / 40.0 - 0.01


def test_video_loop(video):
    frames = collect(VideoFileSource("cam", video, loop=True), limit=N + 5)
    assert [f.frame_number for f in frames] == list(range(N + 5))


def test_truncated_mp4_names_the_file(video, tmp_path):
    bad = tmp_path / "truncated.mp4"
    bad.write_bytes(video.read_bytes()[: video.stat().st_size // 2])
    with pytest.raises(SourceError, match="truncated.mp4") as e:
        VideoFileSource("cam-bad", bad)
    assert "cam-bad" in str(e.value)


def test_garbage_file_and_missing_file(tmp_path):
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"\x00not a video" * 100)
    with pytest.raises(SourceError, match="junk.mp4.*cannot open"):
        VideoFileSource("cam", junk)
    with pytest.raises(SourceError, match="does not exist"):
        VideoFileSource("cam", tmp_path / "nope.mp4")


def test_avi_cut_mid_stream_fails_at_a_named_frame(tmp_path):
    """An MJPG AVI with its tail cut: frames before the cut are delivered, then a clear error."""
    good = write_video(tmp_path / "clip.avi", "MJPG", n=30)
    data = good.read_bytes()
    cut = tmp_path / "cut.avi"
    cut.write_bytes(data[: int(len(data) * 0.6)])
    src = VideoFileSource("cam-cut", cut)
    assert src.frames_total == 30  # the AVI header still says 30
    got = []

    async def go():
        async for f in src.frames():
            got.append(f.frame_number)

    with pytest.raises(SourceError, match=r"cam-cut: video file .*cut\.avi: decoding failed at frame \d+ of 30"):
        asyncio.run(go())
    assert 0 < len(got) < 30 and got == list(range(len(got)))


def test_image_folder(tmp_path):
    for i in range(5):
        cv2.imwrite(str(tmp_path / f"f{i:03d}.jpg"), frame_image(i))
    (tmp_path / "f002.jpg").write_bytes(b"broken jpeg")  # skipped, counted
    (tmp_path / "notes.txt").write_text("ignored")
    src = ImageFolderSource("cam-img", tmp_path, fps=5.0, start_time=100.0)
    assert src.frames_total == 5
    frames = collect(src)
    assert [f.frame_number for f in frames] == [0, 1, 3, 4]
    assert [f.timestamp for f in frames] == [100.0, 100.2, 100.6, 100.8]
    assert src.decode_errors == 1


def test_image_folder_errors(tmp_path):
    with pytest.raises(SourceError, match="has no images"):
        ImageFolderSource("cam", tmp_path)
    (tmp_path / "a.jpg").write_bytes(b"x")
    with pytest.raises(SourceError, match="none of its images"):
        collect(ImageFolderSource("cam", tmp_path))


def test_rendered_source_ends_on_none():
    src = RenderedSource("sim", lambda i: frame_image(i) if i < 4 else None, fps=8.0, start_time=0.0)
    frames = collect(src)
    assert [f.timestamp for f in frames] == [0.0, 0.125, 0.25, 0.375]


def test_simulated_camera_renders_the_store_and_loops():
    ids = __import__("simulator.world", fromlist=["_"]).CAMERA_IDS
    assert "cam-checkout-1" in ids
    src = SimulatedCamera("cam-checkout-1", "cam-checkout-1", seconds=1.0, fps=4.0, seed=3, sim_start=1_705_343_400.0)
    frames = collect(src)
    assert src.frames_total == 4 and [f.frame_number for f in frames] == [0, 1, 2, 3]
    assert [f.timestamp for f in frames] == [1_705_343_400.0 + i / 4 for i in range(4)]
    assert frames[0].image.shape == (360, 640, 3) and frames[0].image.std() > 5  # a rendered scene
    looped = collect(SimulatedCamera("c", "cam-checkout-1", seconds=1.0, fps=4.0, seed=3, sim_start=1_705_343_400.0,
                                     loop=True), limit=9)
    assert [f.frame_number for f in looped] == list(range(9))
    assert looped[8].timestamp == 1_705_343_400.0 + 2.0  # timestamps keep counting
    for i in range(4):  # the clip replays frame for frame
        np.testing.assert_array_equal(looped[i + 4].image, frames[i].image)
    before = time.time()
    wall = SimulatedCamera("c", "cam-entrance-1", seconds=1.0, fps=4.0, clock="wall")
    assert before - 1 <= wall.start_time <= time.time() + 1  # the wall clock at construction
    with pytest.raises(SourceError, match="simulator camera 'cam-nowhere' does not exist"):
        SimulatedCamera("c", "cam-nowhere", seconds=1.0)


def test_unreachable_rtsp_fails_after_bounded_retries():
    url = f"rtsp://user:secret@127.0.0.1:{closed_port()}/stream"
    src = LiveSource("cam-rtsp", url, backoff=Backoff(initial_s=0.05, max_s=0.2, max_retries=3),
                     open_timeout_s=1.0)
    t = time.monotonic()
    with pytest.raises(SourceError, match=r"unreachable after 4 attempt") as e:
        collect(src)
    assert time.monotonic() - t < 120  # bounded (4 attempts, 1 s open timeout each), not forever
    assert "secret" not in str(e.value) and "cam-rtsp" in str(e.value)
    assert src.reconnects == 3


def test_live_source_retries_forever_by_default():
    """A camera rebooting for longer than a few backoff steps is waited out: by default a
    live source never gives up (max_retries None); only close() ends it."""
    assert Backoff().max_retries is None and Backoff().max_s <= 30
    url = f"rtsp://127.0.0.1:{closed_port()}/stream"
    src = LiveSource("cam-reboot", url, backoff=Backoff(initial_s=0.01, max_s=0.02), open_timeout_s=1.0)
    assert src.backoff.max_retries is None

    async def go():
        async def consume():
            async for _ in src.frames():
                pass
        task = asyncio.create_task(consume())
        while src.reconnects < 12 and not task.done():  # > the old limit of 5, twice over
            await asyncio.sleep(0.02)
        src.close()
        await asyncio.wait_for(task, 10)  # raises if the source gave up with SourceError

    asyncio.run(asyncio.wait_for(go(), 60))
    assert src.reconnects >= 12


def test_backoff_grows_and_is_capped():
    b = Backoff(initial_s=0.5, max_s=4.0, factor=2.0, jitter=0.0)
    assert [b.delay(k) for k in range(1, 7)] == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    j = Backoff(initial_s=1.0, max_s=1.0, jitter=0.2)
    ds = [j.delay(3) for _ in range(200)]
    assert 0.8 <= min(ds) < max(ds) <= 1.2


def test_redact_url():
    assert redact_url("rtsp://admin:pw@10.0.0.2:554/x") == "rtsp://admin:***@10.0.0.2:554/x"
    assert redact_url("rtsp://10.0.0.2/x") == "rtsp://10.0.0.2/x"


def test_live_http_camera_reconnects_after_a_cut():
    from tests.clients_mjpeg import MjpegCamera

    cam = MjpegCamera(fps=50).start()
    src = LiveSource("cam-http", cam.url, backoff=Backoff(initial_s=0.1, max_s=0.3, max_retries=20),
                     open_timeout_s=2, read_timeout_s=2)
    got = []

    async def go():
        t0 = time.time()
        async for f in src.frames():
            got.append(f)
            if len(got) == 5:
                cam.stop()  # camera gone mid-stream
                await asyncio.sleep(0.3)
                cam.start()  # back on the same port
            if len(got) >= 15:
                break
        return t0

    try:
        t0 = asyncio.run(asyncio.wait_for(go(), 120))
        t1 = time.time()
    finally:
        cam.stop()
    assert src.reconnects >= 1
    assert [f.frame_number for f in got] == list(range(15))  # numbering continues across the cut
    ts = np.array([f.timestamp for f in got])
    assert np.all(np.diff(ts) >= 0) and t0 <= ts[0] and ts[-1] <= t1  # wall clock
    assert got[0].image.shape == (48, 64, 3)
