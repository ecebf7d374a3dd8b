"""The configuration toolkit: one error type, one YAML reader, one field validator.

Every config loader of the project (``analytics.config`` for the store, ``sinks.config``
for sinks + retention, ``clients.config`` for triton + streams and the whole app config)
reads its file with ``read_mapping`` and checks its fields with a ``Fields`` bound to that
file, so a mistake always raises ``ConfigError`` naming the file, the field (a dotted path
such as ``cameras.cam-1.zones.queue-1.polygon[2]`` or ``streams[0].fps``) and the value:

    fields = Fields(path)                           # "<file>: <field>: <value>: <problem>"
    raw = read_mapping(path, "store config")        # file -> dict (ConfigError naming the file)
    sec = fields.section(raw.get("sinks"), "sinks", {"json", "influxdb"})
    n = fields.number(sec, "flush_every", "sinks.json", 500, lo=1, integer=True)

``Fields(path, style="value-last")`` words the same errors ``"<file>: <field>: <problem>
(got <value>)"`` and reports all unknown keys of a mapping at once (the app config's
triton/streams sections); the default style names the first unknown key and its value.

Settings are adjusted in code, without writing YAML, by ``apply_overrides(raw, {"a.b": v})``
on the parsed mapping *before* validation: the loaders take ``overrides=`` and validate the
result like a file's content (the errors still name the file and the dotted field).

Imports nothing of the project (``core`` sits below every other package).
"""
from __future__ import annotations

import copy
import math
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import yaml

Style = Literal["value-first", "value-last"]
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]*$")
_MAX_SHOWN = 120  # characters of a value quoted in a message


class ConfigError(ValueError):
    """Invalid configuration: file, field and value are in the message and the attributes."""

    def __init__(self, message: str, *, file: str = "", field: str = "", value: Any = None) -> None:
        super().__init__(message)
        self.file, self.field, self.value = file, field, value


def field_path(*parts: str | int) -> str:
    """``field_path("cameras", 2, "zones", 0, "polygon")`` -> ``"cameras[2].zones[0].polygon"``."""
    out = ""
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out


def show(value: Any) -> str:
    """``repr(value)``, cut to 120 characters (a whole camera's mapping stays readable)."""
    s = repr(value)
    return s if len(s) <= _MAX_SHOWN else s[:_MAX_SHOWN - 3] + "..."


def read_yaml(path: str | Path, what: str = "config file") -> Any:
    """The parsed content of a YAML file (None when empty); ConfigError naming the file when
    it cannot be read (``"<file>: cannot read <what>: <reason>"``) or is not YAML."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as e:
        raise ConfigError(f"{path}: cannot read {what}: {e.strerror}", file=str(path)) from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: invalid YAML: {e}", file=str(path)) from None


def read_mapping(path: str | Path, what: str = "config file", *, shape: str = "must be a mapping of sections",
                 style: Style = "value-first") -> dict[str, Any]:
    """A YAML file whose top level is a mapping -> that dict (an empty file: {}); anything
    else raises ConfigError for field ``(top level)`` with ``shape`` as the problem."""
    raw = read_yaml(path, what)
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise Fields(path, style=style).error("(top level)", type(raw).__name__, shape)
    return raw


def apply_overrides(raw: Mapping[str, Any], overrides: Mapping[str, Any] | None) -> dict[str, Any]:
    """A deep copy of ``raw`` with each dotted key of ``overrides`` set (``{"sinks.json.output_dir":
    "out", "streams": [...]}``); missing intermediate mappings are created, ``raw`` is untouched."""
    out = copy.deepcopy(dict(raw))
    for dotted, value in (overrides or {}).items():
        *outer, last = dotted.split(".")
        node = out
        for key in outer:
            if not isinstance(node.get(key), dict):
                node[key] = {}
            node = node[key]
        node[last] = copy.deepcopy(value)
    return out


class Fields:
    """Typed reading of the fields of one config file; every failure is a ConfigError.

    ``d`` is a mapping, ``key`` a key in it and ``field`` the dotted path of ``d`` in the
    file: errors name ``<field>.<key>``. A missing key takes ``default``."""

    def __init__(self, path: str | Path, *, style: Style = "value-first") -> None:
        self.path = Path(path)
        self.style = style

    def error(self, field: str, value: Any, problem: str) -> ConfigError:
        if self.style == "value-last":
            msg = f"{self.path}: {field}: {problem} (got {show(value)})"
        else:
            msg = f"{self.path}: {field}: {show(value)}: {problem}"
        return ConfigError(msg, file=str(self.path), field=field, value=value)

    def mapping(self, value: Any, field: str, *, optional: bool = True) -> dict:
        """A mapping; None is {} when ``optional``."""
        if value is None and optional:
            return {}
        if not isinstance(value, dict):
            raise self.error(field, value, "must be a mapping")
        return value

    def unknown(self, d: Mapping, allowed: set[str], field: str) -> None:
        """Refuse keys outside ``allowed`` (typos must not be silently ignored)."""
        extra = sorted(set(d) - allowed, key=str)
        if not extra:
            return
        if self.style == "value-last":
            raise self.error(field, extra, f"unknown key(s); allowed: {sorted(allowed)}")
        raise self.error(f"{field}.{extra[0]}", d[extra[0]], f"unknown field (allowed: {', '.join(sorted(allowed))})")

    def section(self, value: Any, field: str, allowed: set[str]) -> dict:
        """An optional mapping (None: {}) with only the ``allowed`` keys."""
        d = self.mapping(value, field)
        self.unknown(d, allowed, field)
        return d

    def number(self, d: Mapping, key: str, field: str, default: Any, *, lo: float | None = None,
               hi: float | None = None, integer: bool = False, optional: bool = False) -> Any:
        """A finite number within [lo, hi] -> float (int when ``integer``: whole numbers only);
        None passes when ``optional``."""
        v = d.get(key, default)
        fld = f"{field}.{key}"
        if v is None and optional:
            return None
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise self.error(fld, v, "must be a number")
        if integer and isinstance(v, float) and not v.is_integer():
            raise self.error(fld, v, "must be a whole number")
        if (lo is not None and v < lo) or (hi is not None and v > hi):
            raise self.error(fld, v, _bounds(lo, hi))
        return int(v) if integer else float(v)

    def boolean(self, d: Mapping, key: str, field: str, default: bool) -> bool:
        v = d.get(key, default)
        if not isinstance(v, bool):
            raise self.error(f"{field}.{key}", v, "must be true or false")
        return v

    def string(self, d: Mapping, key: str, field: str, default: str | None, *,
               optional: bool = False) -> str | None:
        """A non-empty string, stripped; None passes when ``optional``."""
        v = d.get(key, default)
        if v is None and optional:
            return None
        if not isinstance(v, str) or not v.strip():
            raise self.error(f"{field}.{key}", v, "must be a non-empty string")
        return v.strip()

    def choice(self, value: Any, field: str, options: tuple | list | Mapping, problem: str | None = None) -> Any:
        """One of ``options`` (an enum); ``problem`` replaces the default wording."""
        if value not in list(options):  # a list: unhashable values are simply not in a dict's keys
            raise self.error(field, value, problem or f"must be one of {', '.join(map(str, options))}")
        return value

    def name(self, value: Any, field: str) -> str:
        """An identifier: camera, zone, lane, stream and rule ids."""
        if not isinstance(value, str) or not NAME_RE.match(value):
            raise self.error(field, value, "must be a name of letters, digits, '_', '-', '.', ':'")
        return value


def _bounds(lo: float | None, hi: float | None) -> str:
    if lo is not None and hi is not None:
        return f"must be between {lo:g} and {hi:g}"
    return f"must be >= {lo:g}" if lo is not None else f"must be <= {hi:g}"
