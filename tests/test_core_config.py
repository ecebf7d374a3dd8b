"""core.config: the one error type, YAML reader, field validator and dotted overrides."""
from __future__ import annotations

import pytest

from core.config import ConfigError, Fields, apply_overrides, field_path, read_mapping


def test_field_path_and_overrides():
    assert field_path("cameras", 2, "zones", 0, "polygon") == "cameras[2].zones[0].polygon"
    raw = {"sinks": {"json": {"output_dir": "outputs", "flush_every": 500}}, "streams": []}
    out = apply_overrides(raw, {"sinks.json.output_dir": "x", "sinks.influxdb.enabled": True, "streams": [{"id": "a"}]})
    assert out == {"sinks": {"json": {"output_dir": "x", "flush_every": 500}, "influxdb": {"enabled": True}},
                   "streams": [{"id": "a"}]}
    assert raw["sinks"]["json"]["output_dir"] == "outputs" and raw["streams"] == []  # the input is untouched


def test_messages_name_file_field_and_value():
    f = Fields("a.yaml")
    with pytest.raises(ConfigError) as e:
        f.number({"n": 0}, "n", "sec", 1, lo=1, hi=10, integer=True)
    assert str(e.value) == "a.yaml: sec.n: 0: must be between 1 and 10"
    assert (e.value.file, e.value.field, e.value.value) == ("a.yaml", "sec.n", 0)
    with pytest.raises(ConfigError, match=r"^a.yaml: sec.n: 1.5: must be a whole number$"):
        f.number({"n": 1.5}, "n", "sec", 1, integer=True)
    with pytest.raises(ConfigError, match=r"^a.yaml: sec.n: -1: must be >= 0$"):
        f.number({"n": -1}, "n", "sec", 1, lo=0)
    assert f.number({}, "n", "sec", None, optional=True) is None and f.number({"n": 2.0}, "n", "s", 1, integer=True) == 2
    with pytest.raises(ConfigError, match=r"^a.yaml: sec.x: 3: unknown field \(allowed: a, b\)$"):
        f.section({"x": 3}, "sec", {"a", "b"})
    last = Fields("b.yaml", style="value-last")
    with pytest.raises(ConfigError, match=r"^b.yaml: sec: unknown key\(s\); allowed: \['a'\] \(got \['x', 'y'\]\)$"):
        last.section({"x": 1, "y": 2}, "sec", {"a"})
    with pytest.raises(ConfigError, match=r"^b.yaml: k: must be one of p, q \(got 'r'\)$"):
        last.choice("r", "k", ("p", "q"))
    with pytest.raises(ConfigError, match="must be a name"):
        f.name("bad id", "id")
    assert f.string({"s": " x "}, "s", "sec", None) == "x" and f.boolean({}, "b", "sec", True) is True


def test_read_mapping(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("")
    assert read_mapping(p) == {}
    p.write_text("[1, 2]")
    with pytest.raises(ConfigError, match=rf"^{p}: \(top level\): 'list': must be a mapping of sections$"):
        read_mapping(p)
    p.write_text("a: [unclosed")
    with pytest.raises(ConfigError, match=rf"^{p}: invalid YAML"):
        read_mapping(p)
    with pytest.raises(ConfigError, match=r"cannot read store config: No such file"):
        read_mapping(tmp_path / "missing.yaml", "store config")
