"""Load and validate configs/app_config.yaml: the ``triton`` and ``streams`` sections here,
``analytics`` (-> ``StoreConfig``) and ``sinks`` + ``retention`` (-> ``SinksConfig``) by their
own modules, so one call validates the whole file before any camera is opened.

Every mistake raises ``ConfigError`` (``core.config``, re-exported here) naming the file,
the field (dotted path) and the value, worded ``<file>: <field>: <problem> (got <value>)``.

    cfg = load_app_config("configs/app_config.yaml")              # AppConfig
    cfg = load_app_config("configs/app_config.yaml", overrides={"sinks.json.output_dir": "out",
                                                                "streams": [{"id": "a", "source": 0}]})
    cfg = parse_app_config({"triton": {...}, "streams": [...]}, "<benchmark>")  # built in code
    cfg = dataclasses.replace(cfg, analytics=load_store_config(..., overrides={...}))

The ``streams`` section:

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

The ``tracker`` section (optional) sets ``tracking.TrackerConfig`` fields for every stream's
tracker (``frame_rate`` comes from the stream). The defaults were tuned on the synthetic
tracking suites (docs/tracking-tuning.md); the re-id thresholds depend on how far apart the
served re-id model puts one person's crops, so a deployment sets them for its model:

    tracker:
      reid_thresh: 0.1        # largest cosine distance that re-identifies a lost track (default 0.45)

The streams may come from a file of their own (``load_app_config(..., streams_file=)``,
``python -m clients.run --streams-file``): a YAML mapping with one key, ``streams``,
which then replaces the app config's list (docker compose mounts the cameras file so).
"""
from __future__ import annotations

import datetime
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from analytics.config import StoreConfig, load_analytics_section
from analytics.records import parse_iso_utc
from clients.sources import (
    SIMULATOR_START,
    Backoff,
    FrameSource,
    ImageFolderSource,
    LiveSource,
    SimulatedCamera,
    SourceError,
    VideoFileSource,
    simulator_cameras,
)
from clients.triton import LB_POLICIES, TARGET_SCHEMES, RetryPolicy, TritonSettings
from core.config import ConfigError, Fields, apply_overrides, field_path, read_mapping  # ConfigError: re-exported
from sinks.config import SinksConfig, load_sinks_section

STREAM_TYPES = ("auto", "file", "url", "usb", "images", "simulator")
SIMULATOR_KEYS = {"camera", "seconds", "seed", "clock"}  # only for type: simulator
SIMULATOR_DEFAULTS = {"seconds": 300.0, "fps": 5.0, "seed": 7}
URL_SCHEMES = ("rtsp://", "rtsps://", "rtmp://", "http://", "https://", "udp://", "tcp://")
_STREAM_KEYS = {"id", "source", "type", "realtime", "fps", "start_time", "loop", "reconnect"} | SIMULATOR_KEYS
_STYLE = "value-last"  # "<file>: <field>: <problem> (got <value>)", all unknown keys at once


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
    """The validated app config; adjust it with ``dataclasses.replace`` (values already valid)."""
    path: Path
    triton: TritonSettings
    streams: list[StreamSpec]
    raw: dict[str, Any]  # the mapping that was validated (the file's, after overrides)
    streams_path: Path | None = None  # the file the streams came from, when not ``path``
    analytics: StoreConfig | None = None  # None: no ``analytics:`` section (or with_sections=False)
    tracker: dict[str, Any] = field(default_factory=dict)  # TrackerConfig fields for every stream (validated)
    sinks: SinksConfig = field(default_factory=SinksConfig)  # sinks + retention (defaults when absent)

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


def parse_tracker(section: Any, fields: Fields) -> dict[str, Any]:
    """``tracker:`` -> the ``TrackerConfig`` fields it sets, checked by ``TrackerConfig`` itself
    (each stream's frame rate is the stream's own)."""
    from dataclasses import fields as dc_fields

    from tracking.config import TrackerConfig

    names = {f.name for f in dc_fields(TrackerConfig)} - {"frame_rate"}
    section = fields.section(section, "tracker", names)
    for k, v in section.items():
        try:
            TrackerConfig(**{k: v})
        except (TypeError, ValueError) as e:
            raise fields.error(f"tracker.{k}", v, str(e).split(": ", 1)[-1].split(", got ")[0]) from None
    try:
        TrackerConfig(**section)  # the checks between fields (reid_window_s >= max_lost_s, ...)
    except ValueError as e:
        raise fields.error("tracker", section, str(e)) from None
    return dict(section)


def parse_triton(section: Any, fields: Fields) -> TritonSettings:
    section = fields.section(section, "triton", {"url", "model", "model_version", "max_in_flight_per_stream",
                                                 "max_pending_per_stream", "jpeg_quality", "request_timeout_s",
                                                 "health_poll_s", "retry", "load_balancing", "refresh_s"})
    url, urls = _parse_triton_url(section.get("url", "localhost:8001"), fields)
    retry_d = fields.section(section.get("retry") or {}, "triton.retry",
                             {"max_attempts", "initial_backoff_s", "max_backoff_s"})
    d = RetryPolicy()
    retry = RetryPolicy(
        max_attempts=fields.number(retry_d, "max_attempts", "triton.retry", d.max_attempts, lo=1, integer=True),
        initial_backoff_s=fields.number(retry_d, "initial_backoff_s", "triton.retry", d.initial_backoff_s, lo=0),
        max_backoff_s=fields.number(retry_d, "max_backoff_s", "triton.retry", d.max_backoff_s, lo=0),
    )
    t = TritonSettings()
    version = section.get("model_version", "")
    return TritonSettings(
        url=url, urls=urls,
        load_balancing=fields.choice(section.get("load_balancing", "auto"), "triton.load_balancing", LB_POLICIES),
        refresh_s=fields.number(section, "refresh_s", "triton", t.refresh_s, lo=0),
        model=fields.string(section, "model", "triton", t.model),
        model_version="" if version in (None, "") else str(version),
        max_in_flight_per_stream=fields.number(section, "max_in_flight_per_stream", "triton",
                                               t.max_in_flight_per_stream, lo=1, hi=256, integer=True),
        max_pending_per_stream=fields.number(section, "max_pending_per_stream", "triton",
                                             t.max_pending_per_stream, lo=1, hi=1024, integer=True),
        jpeg_quality=fields.number(section, "jpeg_quality", "triton", t.jpeg_quality, lo=1, hi=100, integer=True),
        request_timeout_s=fields.number(section, "request_timeout_s", "triton", t.request_timeout_s, lo=0.1),
        health_poll_s=fields.number(section, "health_poll_s", "triton", t.health_poll_s, lo=0.05),
        retry=retry,
    )


def _parse_triton_url(value: Any, fields: Fields) -> tuple[str, tuple[str, ...]]:
    """``triton.url``: ``host:port``, a gRPC target (``dns:///name:port``, ``ipv4:a:p,b:p``), or a
    list of ``host:port`` replicas -> (url label, replica tuple; empty for one target)."""
    items = value if isinstance(value, list) else [value]
    if not items:
        raise fields.error("triton.url", value, "must name at least one Triton (host:port)")
    for i, u in enumerate(items):
        where = "triton.url" if not isinstance(value, list) else field_path("triton.url", i)
        if not isinstance(u, str) or not u.strip():
            raise fields.error(where, u, "must be host:port for gRPC")
        if u.startswith(TARGET_SCHEMES):
            if isinstance(value, list) and len(items) > 1:
                raise fields.error(where, u, "a list holds host:port replicas; a gRPC target "
                                             "(dns:///name:port, ipv4:...) is given alone")
            if u.startswith("dns:") and not u.startswith("dns:///"):
                raise fields.error(where, u, "use dns:///name:port (gRPC's DNS resolver, no authority)")
            continue
        if "://" in u:
            raise fields.error(where, u, "must be host:port for gRPC (no scheme; for several replicas a list, "
                                         "or dns:///name:port)")
        host, _, port = u.rpartition(":")
        if not host or not port.isdigit():
            raise fields.error(where, u, "must be host:port for gRPC")
    if len(items) == 1:
        return items[0], ()
    if len(set(items)) != len(items):
        raise fields.error("triton.url", value, "lists a replica twice")
    return ",".join(items), tuple(items)


def _resolve_type(source: str | int, declared: str) -> str:
    if declared != "auto":
        return declared
    if isinstance(source, int):
        return "usb"
    if source.lower().startswith(URL_SCHEMES):
        return "url"
    if source.isdigit():
        return "usb"
    return "images" if Path(source).is_dir() else "file"


def parse_streams(section: Any, fields: Fields) -> list[StreamSpec]:
    if section is None:
        return []
    if not isinstance(section, list):
        raise fields.error("streams", section, "must be a list of streams")
    specs: list[StreamSpec] = []
    seen: set[str] = set()
    for i, s in enumerate(section):
        p = field_path("streams", i)
        if not isinstance(s, dict):
            raise fields.error(p, s, "must be a mapping with at least id and source")
        fields.unknown(s, _STREAM_KEYS, p)
        sid = fields.name(s.get("id"), f"{p}.id")
        if sid in seen:
            raise fields.error(f"{p}.id", sid, "duplicate stream id")
        seen.add(sid)
        declared = fields.choice(s.get("type", "auto"), f"{p}.type", STREAM_TYPES)
        specs.append(_parse_simulator(s, sid, p, fields) if declared == "simulator"
                     else _parse_stream(s, sid, p, declared, fields))
    return specs


def _parse_stream(s: dict, sid: str, p: str, declared: str, fields: Fields) -> StreamSpec:
    """A file, image folder, URL or USB camera stream (everything but ``type: simulator``)."""
    extra = sorted(SIMULATOR_KEYS & set(s))
    if extra:
        raise fields.error(p, extra, "only for `type: simulator` streams")
    src = s.get("source")
    if isinstance(src, bool) or not isinstance(src, (str, int)) or (isinstance(src, str) and not src.strip()):
        raise fields.error(f"{p}.source", src, "must be a path, a URL or a camera index")
    kind = _resolve_type(src, declared)
    if kind == "usb":
        try:
            src = int(src)
        except ValueError:
            raise fields.error(f"{p}.source", src, "a USB camera is an integer index") from None
    elif kind == "file" and not Path(str(src)).is_file():
        raise fields.error(f"{p}.source", src, "video file does not exist")
    elif kind == "images" and not Path(str(src)).is_dir():
        raise fields.error(f"{p}.source", src, "image folder does not exist")
    start = _start_time(s.get("start_time"), f"{p}.start_time", fields)
    rf = f"{p}.reconnect"
    rc = fields.section(s.get("reconnect") or {}, rf, {"initial_s", "max_s", "max_retries", "jitter"})
    b = Backoff()
    backoff = Backoff(
        initial_s=fields.number(rc, "initial_s", rf, b.initial_s, lo=0),
        max_s=fields.number(rc, "max_s", rf, b.max_s, lo=0),
        jitter=fields.number(rc, "jitter", rf, b.jitter, lo=0, hi=1),
        max_retries=fields.number(rc, "max_retries", rf, b.max_retries, lo=0, integer=True, optional=True),
    )
    return StreamSpec(
        id=sid, source=src, type=kind,
        realtime=fields.boolean(s, "realtime", p, False),
        fps=fields.number(s, "fps", p, None, lo=0.01, hi=1000, optional=True),
        start_time=start,
        loop=fields.boolean(s, "loop", p, False),
        reconnect=backoff,
    )


def _start_time(start: Any, fld: str, fields: Fields) -> float | None:
    if start is None:
        return None
    if hasattr(start, "timestamp"):  # YAML parses unquoted ISO dates into datetime
        if start.tzinfo is None:
            start = start.replace(tzinfo=datetime.timezone.utc)
        return start.timestamp()
    if isinstance(start, str):
        try:
            return parse_iso_utc(start)
        except ValueError:
            raise fields.error(fld, start, "must be ISO-8601 like 2024-01-15T10:00:00Z") from None
    if isinstance(start, (int, float)) and not isinstance(start, bool):
        return float(start)
    raise fields.error(fld, start, "must be ISO-8601 or seconds since the epoch")


def _parse_simulator(s: dict, sid: str, p: str, fields: Fields) -> StreamSpec:
    """``type: simulator``: a camera of the store simulator (simulator), rendered live."""
    if "reconnect" in s:
        raise fields.error(f"{p}.reconnect", s["reconnect"], "only for live sources (url, usb), not a simulator")
    camera = s.get("camera", s.get("source", sid))
    if "camera" in s and "source" in s and s["source"] != s["camera"]:
        raise fields.error(f"{p}.source", s["source"],
                           f"a simulator stream names its camera once (camera: {s['camera']!r})")
    try:
        cameras = simulator_cameras()
    except SourceError as e:
        raise fields.error(f"{p}.type", "simulator", str(e)) from None
    if camera not in cameras:
        fld = f"{p}.camera" if "camera" in s or "source" not in s else f"{p}.source"
        why = f"not a simulator camera; cameras: {cameras}"
        if "camera" not in s and "source" not in s:
            why = f"the stream id is not a simulator camera: set `camera:` to one of {cameras}"
        raise fields.error(fld, camera, why)
    start = _start_time(s.get("start_time", SIMULATOR_START), f"{p}.start_time", fields)
    clock = fields.choice(s.get("clock", "simulated"), f"{p}.clock", ("simulated", "wall"),
                          "must be 'simulated' (timestamps from start_time) or 'wall'")
    d = SIMULATOR_DEFAULTS
    return StreamSpec(
        id=sid, source=camera, type="simulator",
        realtime=fields.boolean(s, "realtime", p, False),
        fps=fields.number(s, "fps", p, d["fps"], lo=0.1, hi=60),
        start_time=start,
        loop=fields.boolean(s, "loop", p, False),
        seconds=fields.number(s, "seconds", p, d["seconds"], lo=0.2, hi=86400),
        seed=fields.number(s, "seed", p, d["seed"], lo=0, integer=True),
        clock=clock,
    )


def load_streams_file(path: str | Path) -> list[StreamSpec]:
    """A cameras file: a mapping whose one key is ``streams`` (the list, as in the app config)."""
    fields = Fields(path, style=_STYLE)
    raw = read_mapping(path, "streams file", shape="must be a mapping with a `streams:` list", style=_STYLE)
    fields.unknown(raw, {"streams"}, "(top level)")
    return parse_streams(raw.get("streams"), fields)


def parse_app_config(raw: Mapping[str, Any], path: str | Path = "<app config>", *, with_sections: bool = True,
                     streams_file: str | Path | None = None) -> AppConfig:
    """An app config mapping built in code (``path`` names it in errors and anchors a relative
    ``analytics.store_config``) -> the validated AppConfig; what ``load_app_config`` runs."""
    path = Path(path)
    fields = Fields(path, style=_STYLE)
    raw = fields.mapping(raw, "(top level)")
    if streams_file is not None:
        streams_path: Path | None = Path(streams_file)
        streams = load_streams_file(streams_path)
    else:
        streams_path, streams = None, parse_streams(raw.get("streams"), fields)
    triton = parse_triton(raw.get("triton"), fields)
    return AppConfig(path=path, triton=triton, streams=streams, raw=dict(raw), streams_path=streams_path,
                     tracker=parse_tracker(raw.get("tracker"), fields),
                     analytics=load_analytics_section(raw, path) if with_sections else None,
                     sinks=load_sinks_section(raw, path))


def load_app_config(path: str | Path, *, with_sections: bool = True, streams_file: str | Path | None = None,
                    overrides: Mapping[str, Any] | None = None) -> AppConfig:
    """The whole app config, validated; ``streams_file``: take the streams from that file;
    ``overrides``: dotted keys set on the file's mapping before validation;
    ``with_sections=False``: skip the ``analytics`` section (its store file); sinks are always read."""
    raw = read_mapping(path, "config file", shape="must be a mapping of sections", style=_STYLE)
    return parse_app_config(apply_overrides(raw, overrides), path, with_sections=with_sections,
                            streams_file=streams_file)


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
