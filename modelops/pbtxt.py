"""The one reader of Triton model configs (``config.pbtxt``, ``configs/*.pbtxt``) in modelops.

    cfg = read_model_config(Path("model_repository/yolov8n/config.pbtxt"))
    cfg.name, cfg.max_batch_size            # "yolov8n", 16
    cfg.inputs[0].name, .data_type, .dims   # "images", "TYPE_FP32", (3, 640, 640)
    cfg.inputs[0].reshape                   # the reshape's shape, or None without one
    cfg.preferred_batch_sizes               # (4, 8, 16) from dynamic_batching
    parse(text, where)                      # any protobuf text: {field: [values]}, messages as dicts

Enough of the protobuf text format for Triton model configs (comments, ``field: value``,
``field { ... }`` / ``field: < ... >``, repeated ``[a, b]`` lists of scalars or messages,
quoted strings), without tritonclient or protobuf: the engines image has neither. Values
stay strings until ``read_model_config`` converts the fields it knows; unknown fields are
kept in ``raw`` and not checked (Triton checks them when it loads the model).

Errors: ``PbtxtError`` (a ValueError) whose message starts with the file, e.g.
``<path>: cannot parse model config: missing '}'`` or ``<path>: max_batch_size must be
integers, got [...]``. Reading the file may raise OSError. Callers wrap both in their
own error types.

Imports: the standard library only.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["PbtxtError", "TensorConfig", "ModelConfig", "parse", "read_model_config"]

_TOKEN = re.compile(r'\s+|#[^\n]*|"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|[{}\[\]<>:,;]|[^\s{}\[\]<>:,;#"\']+')


class PbtxtError(ValueError):
    """The config is not readable as a Triton model config; the message names the file."""


@dataclass(frozen=True, slots=True)
class TensorConfig:
    """One ``input`` / ``output`` entry of a model config."""

    name: str
    data_type: str  # as written, e.g. "TYPE_FP32"; "TYPE_INVALID" when absent (protobuf's default)
    dims: tuple[int, ...]
    reshape: tuple[int, ...] | None = None  # ``reshape { shape: [...] }``; None without a reshape


@dataclass(frozen=True, slots=True)
class ModelConfig:
    path: Path
    name: str | None  # None when the config has no name
    max_batch_size: int
    inputs: tuple[TensorConfig, ...]
    outputs: tuple[TensorConfig, ...]
    preferred_batch_sizes: tuple[int, ...] = ()
    raw: dict = field(default_factory=dict)  # every field as parsed: {field: [values]}

    @property
    def parameters(self) -> dict[str, str]:
        """``parameters { key: K value { string_value: V } }`` entries as {K: V}."""
        return {p["key"][0]: p["value"][0]["string_value"][0] for p in self.raw.get("parameters", [])
                if isinstance(p, dict) and p.get("key") and p.get("value") and "string_value" in p["value"][0]}


class _Parser:
    """Recursive descent over the tokens; ``fail`` raises PbtxtError naming ``where``."""

    def __init__(self, text: str, where: Path | str) -> None:
        self.toks = [t for t in _TOKEN.findall(text) if t.strip() and not t.startswith("#")]
        self.pos = 0
        self.where = where

    def fail(self, msg: str):
        raise PbtxtError(f"{self.where}: cannot parse model config: {msg}")

    @staticmethod
    def scalar(t: str) -> str:
        return t[1:-1] if t[:1] in "\"'" else t

    def value(self):
        if self.pos >= len(self.toks):
            self.fail("unexpected end")
        t = self.toks[self.pos]
        self.pos += 1
        if t in "{<":
            return self.message("}" if t == "{" else ">")
        if t in "}>]:,;[":
            self.fail(f"unexpected {t!r}")
        return self.scalar(t)

    def repeated(self, key: str, out: dict) -> None:  # after '[': values up to ']'
        toks = self.toks
        while self.pos < len(toks) and toks[self.pos] != "]":
            if toks[self.pos] == ",":
                self.pos += 1
                continue
            out.setdefault(key, []).append(self.value())
        if self.pos >= len(toks):
            self.fail(f"missing ']' after {key}")
        self.pos += 1
        out.setdefault(key, [])

    def message(self, end: str | None) -> dict:
        toks = self.toks
        out: dict[str, list] = {}
        while True:
            if self.pos >= len(toks):
                if end is None:
                    return out
                self.fail(f"missing {end!r}")
            t = toks[self.pos]
            if t == end:
                self.pos += 1
                return out
            if t in ",;":
                self.pos += 1
                continue
            if t in "{}[]<>:":
                self.fail(f"unexpected {t!r}")
            key = t
            self.pos += 1
            if self.pos < len(toks) and toks[self.pos] == ":":
                self.pos += 1
            if self.pos < len(toks) and toks[self.pos] == "[":
                self.pos += 1
                self.repeated(key, out)
            else:
                out.setdefault(key, []).append(self.value())


def parse(text: str, where: Path | str = "<text>") -> dict:
    """Protobuf text format -> {field: [values]} (messages are dicts, scalars strings)."""
    return _Parser(text, where).message(None)


def _ints(path: Path, values, what: str) -> tuple[int, ...]:
    try:
        return tuple(int(v) for v in values)
    except (TypeError, ValueError):
        raise PbtxtError(f"{path}: {what} must be integers, got {values}") from None


def _tensors(path: Path, cfg: dict, kind: str) -> tuple[TensorConfig, ...]:
    out = []
    for io in cfg.get(kind, []):
        if not isinstance(io, dict) or not io.get("name"):
            raise PbtxtError(f"{path}: an {kind} without a name")
        name = io["name"][0]
        dims = _ints(path, io.get("dims", []), f"{kind} '{name}' dims")
        reshape = io.get("reshape")
        shape = None
        if reshape and isinstance(reshape[0], dict):
            shape = _ints(path, reshape[0].get("shape", []), f"{kind} '{name}' reshape")
        data_type = io.get("data_type", ["TYPE_INVALID"])[0]
        out.append(TensorConfig(name, str(data_type), dims, shape))
    return tuple(out)


def read_model_config(path: Path) -> ModelConfig:
    """Parse a Triton model config file: name, max_batch_size, inputs, outputs, preferred batch sizes."""
    path = Path(path)
    cfg = parse(path.read_text(), path)
    mbs = _ints(path, cfg.get("max_batch_size", ["0"])[:1], "max_batch_size")[0]
    dyn = cfg.get("dynamic_batching", [])
    preferred: tuple[int, ...] = ()
    if dyn and isinstance(dyn[0], dict):
        preferred = _ints(path, dyn[0].get("preferred_batch_size", []), "preferred_batch_size")
    name = cfg.get("name", [None])[0]
    return ModelConfig(path, name, mbs, _tensors(path, cfg, "input"), _tensors(path, cfg, "output"), preferred, cfg)
