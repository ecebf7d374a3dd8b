"""core.collector: the stream clients' garbage-collector pace."""
from __future__ import annotations

import gc
import logging

import pytest

from core.collector import GEN0_THRESHOLD, frame_paced_collector


@pytest.fixture(autouse=True)
def restore_threshold():
    before = gc.get_threshold()
    gc.set_threshold(700, before[1], before[2])  # the interpreter's default young threshold
    yield
    gc.set_threshold(*before)


def test_raises_only_the_young_generations_threshold(monkeypatch):
    monkeypatch.delenv("RVA_GC_GEN0", raising=False)
    _, g1, g2 = gc.get_threshold()
    assert frame_paced_collector() == GEN0_THRESHOLD
    assert gc.get_threshold() == (GEN0_THRESHOLD, g1, g2)
    assert gc.isenabled()
    assert frame_paced_collector() == GEN0_THRESHOLD  # a second call changes nothing


def test_never_lowers_a_threshold_already_higher(monkeypatch):
    monkeypatch.delenv("RVA_GC_GEN0", raising=False)
    gc.set_threshold(50_000, *gc.get_threshold()[1:])
    assert frame_paced_collector() == 50_000
    assert frame_paced_collector(2_000) == 50_000


def test_the_environment_wins_and_zero_leaves_the_default(monkeypatch):
    monkeypatch.setenv("RVA_GC_GEN0", "3000")
    assert frame_paced_collector() == 3000
    gc.set_threshold(700, *gc.get_threshold()[1:])
    monkeypatch.setenv("RVA_GC_GEN0", "0")
    assert frame_paced_collector() == 700


def test_a_bad_environment_value_is_named_and_the_default_used(monkeypatch, caplog):
    monkeypatch.setenv("RVA_GC_GEN0", "lots")
    with caplog.at_level(logging.WARNING, logger="core.collector"):
        assert frame_paced_collector() == GEN0_THRESHOLD
    assert "RVA_GC_GEN0='lots'" in caplog.text


@pytest.mark.parametrize("cli", ["run", "shard_run"])
def test_the_stream_client_commands_set_it_before_anything_else(cli, monkeypatch, tmp_path, capsys):
    # even a run that stops at a missing config has set it: it comes first, with the BLAS limit
    import importlib
    import signal

    monkeypatch.delenv("RVA_GC_GEN0", raising=False)
    hup = signal.getsignal(signal.SIGHUP)
    try:
        assert importlib.import_module(f"clients.{cli}").main(["--config", str(tmp_path / "missing.yaml")]) == 2
    finally:
        signal.signal(signal.SIGHUP, hup)
    assert "missing.yaml" in capsys.readouterr().err
    assert gc.get_threshold()[0] == GEN0_THRESHOLD
