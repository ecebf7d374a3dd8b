"""Load and validate the ``triton`` and ``streams`` sections of configs/app_config.yaml.

Every mistake raises ``ConfigError`` naming the file, the field (dotted path) and the value.
``load_app_config`` also runs the analytics and sinks loaders (their own modules) so one
call validates the whole file before any camera is opened.

    streams:
      - id: cam-entrance-1
        source: data/demo/cam-entrance-1.mp4   # file | rtsp://... | http://... | 0 (USB) | folder
        type: auto            # auto | file | url | usb | images | simulator
        realtime: false       # offline sources: pace at fps (true) or as fast as possible
        fps: 25               # image folders (default 10); overrides a file's header fps
        start_time: 2024-01-15T10:00:00Z   # offline sources: timestamp of frame 0 (default: now)
        loop: false
        reconnect: {initial_s: 0.5, max_s: 10, max_retries: null}   # live sources (null = forever, the default)

      - id: cam-checkout-1    # the store simulator's camera, rendered on the fly (no file)
        type: simulator
        camera: cam-checkout-1   # simulator camera (default: the stream id)
        start_time: 2024-01-15T18:30:00Z   # simulated clock at frame 0 (default: 18:30, the evening rush)
        seconds: 300          # clip length (loop: true replays it)
        fps: 5                # default 5
        seed: 7               # the simulated customers (default 7)
        clock: simulated      # frame timestamps: simulated (from start_time) | wall (from when it opens)

The streams may come from a file of their own (``load_app_config(..., streams_file=)``,
``python -m clients.run --streams-file``): a YAML mapping with one key, ``streams``,
which then replaces the app config's list (docker compose mounts the cameras file so).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from analytics.records import parse_iso_utc
from clients.sources import (SIMULATOR_START, Backoff, FrameSource, ImageFolderSource, LiveSource,
                             SimulatedCamera, SourceError, VideoFileSource, simulator_cameras)
from clients.triton import RetryPolicy, TritonSettings

try:  # one exception type for the whole file when the analytics loader defines it
    from analytics.config import ConfigError  # type: ignore
except Exception:  # noqa: BLE001 (module absent or broken: ours is equivalent)
    class ConfigError(ValueError):
        """Invalid configuration: file, field and value are in the message."""

STREAM_TYPES = ("auto", "file", "url", "usb", "images", "simulator")
SIMULATOR_KEYS = {"camera", "seconds", "seed", "clock"}  # only for type: simulator
SIMULATOR_DEFAULTS = {"seconds": 300.0, "fps": 5.0, "seed": 7}
URL_SCHEMES = ("rtsp://", "rtsps://", "rtmp://", "http://", "https://", "udp://", "tcp://")
_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]*$")


@dataclass(frozen=True, slots=True)
class StreamSpec:
    id: str
    source: str | int  # simulator: the simulated camera id
    type: str  # resolved: file | url | usb | images | simulator
    realtime: bool = False
    fps: float | None = None
    start_time: float | None = None  # simulator: the simulated clock at frame 0
    loop: bool = False
    reconnect: Backoff = field(default_factory=Backoff)
    seconds: float | None = None  # simulator only
    seed: int | None = None  # simulator only
    clock: str = "simulated"  # simulator only: frame timestamps simulated | wall

    @property
    def live(self) -> bool:
        return self.type in ("url", "usb")


@dataclass
class AppConfig:
    path: Path
    triton: TritonSettings
    streams: list[StreamSpec]
    raw: dict[str, Any]
    streams_path: Path | None = None  # the file the streams came from, when not ``path``
    analytics: Any = None  # whatever analytics.config returns (None when absent)
    sinks: Any = None  # whatever sinks.config returns (None when absent)

    @property
    def streams_file(self) -> Path:
        """Where the ``streams`` list lives (for messages): the streams file or the config."""
        return self.streams_path or self.path

    def select(self, ids: list[str] | None) -> "AppConfig":
        if not ids:
            return self
        known = {s.id for s in self.streams}
        unknown = [i for i in ids if i not in known]
        if unknown:
            raise ConfigError(f"{self.streams_file}: streams: unknown stream id(s) {unknown}; "
                              f"configured: {sorted(known)}")
        return replace(self, streams=[s for s in self.streams if s.id in ids])


class _Ctx:
    def __init__(self, path: Path) -> None:
        self.path = path

    def err(self, fld: str, value: Any, why: str) -> ConfigError:
        return ConfigError(f"{self.path}: {fld}: {why} (got {value!r})")

    def number(self, d: dict, key: str, prefix: str, default: Any, *, lo: float | None = None,
               hi: float | None = None, integer: bool = False, allow_none: bool = False) -> Any:
        v = d.get(key, default)
        fld = f"{prefix}.{key}"
        if v is None and allow_none:
            return None
        if isinstance(v, bool) or not isinstance(v, (int, float)) or (integer and not isinstance(v, int)):
            raise self.err(fld, v, "must be an integer" if integer else "must be a number")
        if lo is not None and v < lo:
            raise self.err(fld, v, f"must be >= {lo}")
        if hi is not None and v > hi:
            raise self.err(fld, v, f"must be <= {hi}")
        return v

    def boolean(self, d: dict, key: str, prefix: str, default: bool) -> bool:
        v = d.get(key, default)
        if not isinstance(v, bool):
            raise self.err(f"{prefix}.{key}", v, "must be true or false")
        return v

    def string(self, d: dict, key: str, prefix: str, default: str | None = None) -> str:
        v = d.get(key, default)
        if not isinstance(v, str) or not v.strip():
            raise self.err(f"{prefix}.{key}", v, "must be a non-empty string")
        return v

    def unknown_keys(self, d: dict, allowed: set[str], prefix: str) -> None:
        extra = sorted(set(d) - allowed)
        if extra:
            raise self.err(prefix, extra, f"unknown key(s); allowed: {sorted(allowed)}")


def parse_triton(section: Any, ctx: _Ctx) -> TritonSettings:
    if section is None:
        section = {}
    if not isinstance(section, dict):
        raise ctx.err("triton", section, "must be a mapping")
    ctx.unknown_keys(section, {"url", "model", "model_version", "max_in_flight_per_stream",
                               "max_pending_per_stream", "jpeg_quality", "request_timeout_s",
                               "health_poll_s", "retry"}, "triton")
    url = ctx.string(section, "url", "triton", "localhost:8001")
    if "://" in url:
        raise ctx.err("triton.url", url, "must be host:port for gRPC (no scheme)")
    retry_d = section.get("retry") or {}
    if not isinstance(retry_d, dict):
        raise ctx.err("triton.retry", retry_d, "must be a mapping")
    ctx.unknown_keys(retry_d, {"max_attempts", "initial_backoff_s", "max_backoff_s"}, "triton.retry")
    d = RetryPolicy()
    retry = RetryPolicy(
        max_attempts=ctx.number(retry_d, "max_attempts", "triton.retry", d.max_attempts, lo=1, integer=True),
        initial_backoff_s=ctx.number(retry_d, "initial_backoff_s", "triton.retry", d.initial_backoff_s, lo=0),
        max_backoff_s=ctx.number(retry_d, "max_backoff_s", "triton.retry", d.max_backoff_s, lo=0),
    )
    t = TritonSettings()
    version = section.get("model_version", "")
    return TritonSettings(
        url=url,
        model=ctx.string(section, "model", "triton", t.model),
        model_version="" if version in (None, "") else str(version),
        max_in_flight_per_stream=ctx.number(section, "max_in_flight_per_stream", "triton",
                                            t.max_in_flight_per_stream, lo=1, hi=256, integer=True),
        max_pending_per_stream=ctx.number(section, "max_pending_per_stream", "triton",
                                          t.max_pending_per_stream, lo=1, hi=1024, integer=True),
        jpeg_quality=ctx.number(section, "jpeg_quality", "triton", t.jpeg_quality, lo=1, hi=100, integer=True),
        request_timeout_s=ctx.number(section, "request_timeout_s", "triton", t.request_timeout_s, lo=0.1),
        health_poll_s=ctx.number(section, "health_poll_s", "triton", t.health_poll_s, lo=0.05),
        retry=retry,
    )


def _resolve_type(source: Any, declared: str, fld: str, ctx: _Ctx) -> str:
    if declared != "auto":
        return declared
    if isinstance(source, int):
        return "usb"
    if source.lower().startswith(URL_SCHEMES):
        return "url"
    if source.isdigit():
        return "usb"
    return "images" if Path(source).is_dir() else "file"


def parse_streams(section: Any, ctx: _Ctx) -> list[StreamSpec]:
    if section is None:
        return []
    if not isinstance(section, list):
        raise ctx.err("streams", section, "must be a list of streams")
    specs: list[StreamSpec] = []
    seen: set[str] = set()
    allowed = {"id", "source", "type", "realtime", "fps", "start_time", "loop", "reconnect"} | SIMULATOR_KEYS
    for i, s in enumerate(section):
        p = f"streams[{i}]"
        if not isinstance(s, dict):
            raise ctx.err(p, s, "must be a mapping with at least id and source")
        ctx.unknown_keys(s, allowed, p)
        sid = s.get("id")
        if not isinstance(sid, str) or not _ID_RE.match(sid):
            raise ctx.err(f"{p}.id", sid, "must be a string of letters, digits, '_', '-', '.', ':'")
        if sid in seen:
            raise ctx.err(f"{p}.id", sid, "duplicate stream id")
        seen.add(sid)
        declared = s.get("type", "auto")
        if declared not in STREAM_TYPES:
            raise ctx.err(f"{p}.type", declared, f"must be one of {list(STREAM_TYPES)}")
        if declared == "simulator":
            specs.append(_parse_simulator(s, sid, p, ctx))
            continue
        extra = sorted(SIMULATOR_KEYS & set(s))
        if extra:
            raise ctx.err(p, extra, "only for `type: simulator` streams")
        src = s.get("source")
        if isinstance(src, bool) or not isinstance(src, (str, int)) or (isinstance(src, str) and not src.strip()):
            raise ctx.err(f"{p}.source", src, "must be a path, a URL or a camera index")
        kind = _resolve_type(src, declared, f"{p}.type", ctx)
        if kind == "usb":
            try:
                src = int(src)
            except ValueError:
                raise ctx.err(f"{p}.source", src, "a USB camera is an integer index") from None
        elif kind in ("file", "images"):
            path = Path(str(src))
            if kind == "file" and not path.is_file():
                raise ctx.err(f"{p}.source", src, "video file does not exist")
            if kind == "images" and not path.is_dir():
                raise ctx.err(f"{p}.source", src, "image folder does not exist")
        start = _start_time(s.get("start_time"), f"{p}.start_time", ctx)
        rc = s.get("reconnect") or {}
        if not isinstance(rc, dict):
            raise ctx.err(f"{p}.reconnect", rc, "must be a mapping")
        ctx.unknown_keys(rc, {"initial_s", "max_s", "max_retries", "jitter"}, f"{p}.reconnect")
        b = Backoff()
        backoff = Backoff(
            initial_s=ctx.number(rc, "initial_s", f"{p}.reconnect", b.initial_s, lo=0),
            max_s=ctx.number(rc, "max_s", f"{p}.reconnect", b.max_s, lo=0),
            jitter=ctx.number(rc, "jitter", f"{p}.reconnect", b.jitter, lo=0, hi=1),
            max_retries=ctx.number(rc, "max_retries", f"{p}.reconnect", b.max_retries, lo=0, integer=True,
                                   allow_none=True),
        )
        specs.append(StreamSpec(
            id=sid, source=src, type=kind,
            realtime=ctx.boolean(s, "realtime", p, False),
            fps=ctx.number(s, "fps", p, None, lo=0.01, hi=1000, allow_none=True),
            start_time=start,
            loop=ctx.boolean(s, "loop", p, False),
            reconnect=backoff,
        ))
    return specs


def _start_time(start: Any, fld: str, ctx: _Ctx) -> float | None:
    if start is None:
        return None
    if hasattr(start, "timestamp"):  # YAML parses unquoted ISO dates into datetime
        import datetime as _dt
        if start.tzinfo is None:
            start = start.replace(tzinfo=_dt.timezone.utc)
        return start.timestamp()
    if isinstance(start, str):
        try:
            return parse_iso_utc(start)
        except ValueError:
            raise ctx.err(fld, start, "must be ISO-8601 like 2024-01-15T10:00:00Z") from None
    if isinstance(start, (int, float)) and not isinstance(start, bool):
        return float(start)
    raise ctx.err(fld, start, "must be ISO-8601 or seconds since the epoch")


def _parse_simulator(s: dict, sid: str, p: str, ctx: _Ctx) -> StreamSpec:
    """``type: simulator``: a camera of the store simulator (simulator), rendered live."""
    if "reconnect" in s:
        raise ctx.err(f"{p}.reconnect", s["reconnect"], "only for live sources (url, usb), not a simulator")
    camera = s.get("camera", s.get("source", sid))
    if "camera" in s and "source" in s and s["source"] != s["camera"]:
        raise ctx.err(f"{p}.source", s["source"], f"a simulator stream names its camera once (camera: {s['camera']!r})")
    try:
        cameras = simulator_cameras()
    except SourceError as e:
        raise ctx.err(f"{p}.type", "simulator", str(e)) from None
    if camera not in cameras:
        fld = f"{p}.camera" if "camera" in s or "source" not in s else f"{p}.source"
        why = f"not a simulator camera; cameras: {cameras}"
        if "camera" not in s and "source" not in s:
            why = f"the stream id is not a simulator camera: set `camera:` to one of {cameras}"
        raise ctx.err(fld, camera, why)
    start = _start_time(s.get("start_time", SIMULATOR_START), f"{p}.start_time", ctx)
    clock = s.get("clock", "simulated")
    if clock not in ("simulated", "wall"):
        raise ctx.err(f"{p}.clock", clock, "must be 'simulated' (timestamps from start_time) or 'wall'")
    d = SIMULATOR_DEFAULTS
    return StreamSpec(
        id=sid, source=camera, type="simulator",
        realtime=ctx.boolean(s, "realtime", p, False),
        fps=ctx.number(s, "fps", p, d["fps"], lo=0.1, hi=60),
        start_time=start,
        loop=ctx.boolean(s, "loop", p, False),
        seconds=ctx.number(s, "seconds", p, d["seconds"], lo=0.2, hi=86400),
        seed=ctx.number(s, "seed", p, d["seed"], lo=0, integer=True),
        clock=clock,
    )


def _read_mapping(path: Path, ctx: "_Ctx", what: str, shape: str) -> dict:
    """A YAML file whose top level is a mapping (empty file: {}); errors name the file."""
    try:
        text = path.read_text()
    except OSError as e:
        raise ConfigError(f"{path}: cannot read {what}: {e.strerror}") from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: invalid YAML: {e}") from None
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ctx.err("(top level)", type(raw).__name__, shape)
    return raw


def load_streams_file(path: str | Path) -> list[StreamSpec]:
    """A cameras file: a mapping whose one key is ``streams`` (the list, as in the app config)."""
    path = Path(path)
    ctx = _Ctx(path)
    raw = _read_mapping(path, ctx, "streams file", "must be a mapping with a `streams:` list")
    ctx.unknown_keys(raw, {"streams"}, "(top level)")
    return parse_streams(raw.get("streams"), ctx)


def _load_optional(module: str, names: tuple[str, ...], path: Path, raw: dict) -> Any:
    """Run another part's section loader if it exists (analytics, sinks)."""
    try:
        mod = __import__(module, fromlist=["_"])
    except ModuleNotFoundError as e:
        if e.name and module.startswith(e.name):
            return None
        raise
    for n in names:
        fn = getattr(mod, n, None)
        if callable(fn):
            return fn(raw, path)
    return None


def load_app_config(path: str | Path, *, with_sections: bool = True,
                    streams_file: str | Path | None = None) -> AppConfig:
    """The whole app config, validated; ``streams_file``: take the streams from that file."""
    path = Path(path)
    ctx = _Ctx(path)
    raw = _read_mapping(path, ctx, "config file", "must be a mapping of sections")
    if streams_file is not None:
        streams_path: Path | None = Path(streams_file)
        streams = load_streams_file(streams_path)
    else:
        streams_path, streams = None, parse_streams(raw.get("streams"), ctx)
    cfg = AppConfig(path, parse_triton(raw.get("triton"), ctx), streams, raw, streams_path)
    if with_sections:
        cfg.analytics = _load_optional("analytics.config", ("load_analytics_section",), path, raw)
        cfg.sinks = _load_optional("sinks.config", ("load_sinks_section",), path, raw)
    return cfg


def open_source(spec: StreamSpec) -> FrameSource:
    """StreamSpec -> FrameSource. Raises SourceError (e.g. a file OpenCV cannot open)."""
    if spec.type == "file":
        return VideoFileSource(spec.id, spec.source, realtime=spec.realtime, start_time=spec.start_time,
                               fps=spec.fps, loop=spec.loop)
    if spec.type == "images":
        return ImageFolderSource(spec.id, spec.source, fps=spec.fps or 10.0, realtime=spec.realtime,
                                 start_time=spec.start_time, loop=spec.loop)
    if spec.type in ("url", "usb"):
        return LiveSource(spec.id, spec.source, backoff=spec.reconnect)
    if spec.type == "simulator":
        # the parser filled seconds/fps/seed (SIMULATOR_DEFAULTS) and checked camera and clock
        return SimulatedCamera(spec.id, str(spec.source), seconds=spec.seconds, fps=spec.fps, seed=spec.seed,
                               sim_start=spec.start_time, clock=spec.clock, realtime=spec.realtime, loop=spec.loop)
    raise SourceError(f"{spec.id}: unknown source type {spec.type!r}")
