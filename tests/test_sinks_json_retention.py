"""The JSON sink's daily files, their expiry per data type, and detection sampling.

Dates are faked: the sink takes an injected clock (the wall clock of a live run), records
carry their own timestamps (which pick the day's directory).
"""
from __future__ import annotations

import datetime as dt
import json
import logging
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

from analytics.records import AlertRecord, DetectionRecord, HeatmapRecord, JourneyRecord, QueueMetricsRecord
from clients.app import sinks_from_config
from sinks.config import ConfigError, load_sinks_config, load_sinks_section
from sinks.json_files import RETENTION_KEYS, SEED_FILES, STORE_FILES, JsonFilesSink
from tests import store_helpers

ROOT = Path(__file__).resolve().parents[1]
SEED_DAYS = {"detections": 7, "journeys": 90, "queue_metrics": 90, "heatmaps": 30, "alerts": 365}
TODAY = dt.date(2026, 12, 6)


def ts(day: dt.date, hour: float = 12.0) -> float:
    return dt.datetime(day.year, day.month, day.day, tzinfo=dt.timezone.utc).timestamp() + hour * 3600


class Clock:
    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def one_of_each(t: float, i: int = 0) -> list:
    return [DetectionRecord("cam", i, t, "person", 0.9, 1, 2, 3, 4, i),
            JourneyRecord(f"j{i}", i, "cam", t - 30, t, ["entrance"], {"entrance": 30.0}, False, False),
            QueueMetricsRecord("lane", "cam", t, 1, 10.0, 20.0, 1.0, 0),
            HeatmapRecord("cam", (2, 1), 20, [[0.0, 1.0]], [], timestamp=t),
            AlertRecord(f"a{i}", "cam", t, "queue_length", "warning", "m", 6, 5, "lane", "raised")]


def daily(out: Path, clock: Clock, **kw) -> JsonFilesSink:
    return JsonFilesSink(out, rotate="daily", retention_days=SEED_DAYS, clock=clock, **kw)


def read_day(out: Path, day: dt.date) -> dict[str, list]:
    return {n: json.loads((out / day.isoformat() / n).read_text()) for n in SEED_FILES.values()}


def make_day(out: Path, day: dt.date, extra: tuple[str, ...] = ()) -> Path:
    d = out / day.isoformat()
    d.mkdir(parents=True)
    for n in (*SEED_FILES.values(), *extra):
        (d / n).write_text("[]\n")
    return d


# --------------------------------------------------------------------------- rotation

def test_records_go_to_the_directory_of_their_utc_day(tmp_path):
    sink = daily(tmp_path, Clock(ts(TODAY)))
    assert list(tmp_path.iterdir()) == []  # nothing opened before the first record
    sink.write(one_of_each(ts(TODAY, 23.99), 1))
    sink.close()
    files = read_day(tmp_path, TODAY)
    assert all(len(v) == 1 for v in files.values()), files
    assert files["journeys.json"][0]["end_time"].startswith("2026-12-06T23:59")
    assert sink.stats()["files"] == dict.fromkeys(SEED_FILES.values(), 1)


def test_rollover_mid_run_closes_yesterday_as_valid_json_and_opens_today(tmp_path):
    yesterday = TODAY - dt.timedelta(days=1)
    clock = Clock(ts(yesterday, 23.5))
    sink = daily(tmp_path, clock, flush_every=10**6)
    for i in range(3):
        sink.write(one_of_each(ts(yesterday, 23.9) + i, i))
    clock.t = ts(TODAY, 0.001)
    sink.write(one_of_each(ts(TODAY, 0.0001), 99))  # the first record of the new day: rollover
    # yesterday's files: closed, complete, valid, while the sink is still open (nothing waits in memory)
    old = read_day(tmp_path, yesterday)
    assert all([r.get("frame_number", r.get("journey_id")) for r in v] for v in old.values())
    assert {n: len(v) for n, v in old.items()} == dict.fromkeys(SEED_FILES.values(), 3)
    sink.write(one_of_each(ts(TODAY, 1), 100))
    sink.flush()
    new = read_day(tmp_path, TODAY)
    assert {n: len(v) for n, v in new.items()} == dict.fromkeys(SEED_FILES.values(), 2)
    sink.close()
    assert sink.stats()["files"] == dict.fromkeys(SEED_FILES.values(), 5)  # no record lost
    assert sink.stats()["day"] == TODAY.isoformat()


def test_a_late_record_of_yesterday_goes_to_yesterdays_file(tmp_path):
    yesterday = TODAY - dt.timedelta(days=1)
    sink = daily(tmp_path, Clock(ts(TODAY)))
    sink.write(one_of_each(ts(yesterday, 23.99), 1))
    sink.write(one_of_each(ts(TODAY, 0.01), 2))
    sink.write(one_of_each(ts(yesterday, 23.999), 3))  # another camera, a little behind
    sink.flush()
    assert {n: len(v) for n, v in read_day(tmp_path, yesterday).items()} == dict.fromkeys(SEED_FILES.values(), 2)
    sink.close()
    assert {n: len(v) for n, v in read_day(tmp_path, TODAY).items()} == dict.fromkeys(SEED_FILES.values(), 1)
    assert sink.stats()["late"] == 1


def test_a_restart_on_the_same_day_appends(tmp_path):
    for run in range(2):
        sink = daily(tmp_path, Clock(ts(TODAY)))
        sink.write(one_of_each(ts(TODAY, 8 + run), run))
        sink.close()
    files = read_day(tmp_path, TODAY)
    assert [d["frame_number"] for d in files["detections.json"]] == [0, 1]
    assert [j["journey_id"] for j in files["journeys.json"]] == ["j0", "j1"]


def test_a_file_cut_mid_write_is_repaired_keeping_its_complete_records(tmp_path, caplog):
    sink = daily(tmp_path, Clock(ts(TODAY)))
    for i in range(3):
        sink.write(one_of_each(ts(TODAY, 8) + i, i))
    sink.close()
    p = tmp_path / TODAY.isoformat() / "detections.json"
    whole = p.read_bytes()
    p.write_bytes(whole[:-3] + b',\n  {"stream_id": "cam", "frame_nu')  # a seal cut by a crash
    with caplog.at_level(logging.WARNING, "sinks.json_files"):
        sink = daily(tmp_path, Clock(ts(TODAY)))
        sink.write(one_of_each(ts(TODAY, 9), 7))
        sink.close()
    assert [d["frame_number"] for d in json.loads(p.read_text())] == [0, 1, 2, 7]
    assert "cut mid-write" in caplog.text and "kept its 3 complete record(s)" in caplog.text


def test_a_crash_mid_day_leaves_valid_files_and_the_restart_appends(tmp_path):
    t0 = ts(TODAY, 10)
    script = textwrap.dedent(f"""
        import os, sys
        sys.path.insert(0, {str(ROOT)!r})
        from analytics.records import DetectionRecord
        from sinks.json_files import JsonFilesSink
        sink = JsonFilesSink({str(tmp_path)!r}, flush_every=50, rotate="daily", detections="all",
                             clock=lambda: {t0!r})
        for i in range(1020):
            sink.write([DetectionRecord("cam", i, {t0!r} + i, "person", 0.9, 1, 2, 3, 4, i)])
        os._exit(9)  # no close(), no atexit: a crash
    """)
    assert subprocess.run([sys.executable, "-c", script], cwd=ROOT).returncode == 9
    p = tmp_path / TODAY.isoformat() / "detections.json"
    assert [d["frame_number"] for d in json.loads(p.read_text())] == list(range(1000))  # up to the last flush
    sink = daily(tmp_path, Clock(t0), detections="all")
    sink.write([DetectionRecord("cam", 5000, t0 + 5000, "person", 0.9, 1, 2, 3, 4, 1)])
    sink.close()
    assert [d["frame_number"] for d in json.loads(p.read_text())] == [*range(1000), 5000]


# --------------------------------------------------------------------------- expiry

def test_expiry_at_start_deletes_old_files_per_type_and_nothing_else(tmp_path, caplog):
    ages = [0, 1, 7, 8, 30, 31, 90, 91, 365, 366, 400]
    for age in ages:
        make_day(tmp_path, TODAY - dt.timedelta(days=age), extra=("notes.txt",) if age == 366 else ())
    (tmp_path / "2026-13-01").mkdir()
    (tmp_path / "2026-13-01" / "detections.json").write_text("[]\n")  # not a date: not ours
    (tmp_path / "detections.json").write_text("[]\n")  # a rotate: none file beside: not dated, kept
    (tmp_path / "keep-me").mkdir()
    outside = make_day(tmp_path / "elsewhere", TODAY - dt.timedelta(days=401))
    os.symlink(outside, tmp_path / (TODAY - dt.timedelta(days=401)).isoformat())  # a link: never followed
    with caplog.at_level(logging.INFO, "sinks.json_files"):
        sink = daily(tmp_path, Clock(ts(TODAY, 0.5)))
    sink.close()
    for age in ages:
        d = tmp_path / (TODAY - dt.timedelta(days=age)).isoformat()
        for name in SEED_FILES.values():
            assert (d / name).exists() == (age <= SEED_DAYS[RETENTION_KEYS[name]]), (age, name)
    assert (tmp_path / (TODAY - dt.timedelta(days=366)).isoformat() / "notes.txt").exists()
    assert not (tmp_path / (TODAY - dt.timedelta(days=400)).isoformat()).exists()  # emptied: removed
    assert (tmp_path / "2026-13-01" / "detections.json").exists() and (tmp_path / "detections.json").exists()
    assert (tmp_path / "keep-me").is_dir() and all((outside / n).exists() for n in SEED_FILES.values())
    deleted = sum(age > SEED_DAYS[k] for age in ages for k in SEED_DAYS)
    assert sink.stats()["expired"] == deleted
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("retention: deleted")]
    assert len(lines) == deleted  # one clear line per deleted file
    assert any("2026-11-28/detections.json" in m and "7 day(s)" in m for m in lines), lines


def test_expiry_runs_at_each_rollover(tmp_path):
    yesterday = TODAY - dt.timedelta(days=1)
    make_day(tmp_path, TODAY - dt.timedelta(days=8))  # detections still kept yesterday
    clock = Clock(ts(yesterday, 23.9))
    sink = daily(tmp_path, clock)
    sink.write(one_of_each(ts(yesterday, 23.95)))
    assert (tmp_path / "2026-11-28" / "detections.json").exists()
    clock.t = ts(TODAY, 0.01)
    sink.write(one_of_each(ts(TODAY, 0.001)))
    assert not (tmp_path / "2026-11-28" / "detections.json").exists()
    assert (tmp_path / "2026-11-28" / "journeys.json").exists()
    sink.close()


def test_expiry_when_the_wall_clock_day_passes_without_records(tmp_path):
    make_day(tmp_path, TODAY - dt.timedelta(days=8))
    clock = Clock(ts(TODAY - dt.timedelta(days=1), 23.9))
    sink = daily(tmp_path, clock)
    sink.flush()
    assert (tmp_path / "2026-11-28" / "detections.json").exists()
    clock.t = ts(TODAY, 0.01)
    sink.flush()  # the runner flushes periodically even when the cameras show no one
    assert not (tmp_path / "2026-11-28" / "detections.json").exists()
    sink.close()


def test_a_replay_of_old_dates_keeps_its_files_for_the_run(tmp_path):
    """"Now" is the wall clock; the days written in this run are never expired by it."""
    old = dt.date(2024, 1, 15)
    sink = daily(tmp_path, Clock(ts(TODAY)))
    sink.write(one_of_each(ts(old, 23.9), 1))
    sink.write(one_of_each(ts(old + dt.timedelta(days=1), 0.1), 2))  # rollover: expiry runs
    sink.close()
    assert all(len(v) == 1 for v in read_day(tmp_path, old).values())
    daily(tmp_path, Clock(ts(TODAY))).close()  # the next start judges them by the wall clock
    assert not (tmp_path / old.isoformat()).exists()


def test_zero_days_keeps_a_type_forever(tmp_path):
    make_day(tmp_path, TODAY - dt.timedelta(days=4000))
    JsonFilesSink(tmp_path, rotate="daily", retention_days={**SEED_DAYS, "alerts": 0},
                  clock=Clock(ts(TODAY))).close()
    left = sorted(p.name for p in (tmp_path / (TODAY - dt.timedelta(days=4000)).isoformat()).iterdir())
    assert left == ["alerts.json"]


def test_single_files_are_never_expired(tmp_path):
    make_day(tmp_path, TODAY - dt.timedelta(days=400))
    JsonFilesSink(tmp_path, retention_days=SEED_DAYS, clock=Clock(ts(TODAY))).close()
    assert len(list((tmp_path / (TODAY - dt.timedelta(days=400)).isoformat()).iterdir())) == 5


# --------------------------------------------------------------------------- detections

def detections(n_frames: int, fps: float, tracks: int, t0: float) -> list[DetectionRecord]:
    return [DetectionRecord("cam", f, t0 + f / fps, "person", 0.9, 1, 2, 3, 4, k)
            for f in range(n_frames) for k in range(tracks)]


@pytest.mark.parametrize("mode, expected", [(1.0, 6), ("all", 150), ("off", 0), (0.5, 12)])
def test_detection_sampling(tmp_path, mode, expected):
    sink = JsonFilesSink(tmp_path, detections=mode)
    sink.write(detections(75, 25.0, 2, ts(TODAY)))  # 3 s of 25 fps, 2 tracks
    sink.close()
    data = json.loads((tmp_path / "detections.json").read_text())
    assert len(data) == expected
    if mode == 1.0:
        assert [(d["track_id"], d["frame_number"]) for d in data] == [(0, 0), (1, 0), (0, 25), (1, 25),
                                                                       (0, 50), (1, 50)]
    assert sink.stats().get("sampled_out", 0) == 150 - expected


def test_live_defaults_daily_files_and_one_detection_per_track_per_second(tmp_path):
    cfg = load_sinks_section({"sinks": {"json": {"output_dir": str(tmp_path)}}}, tmp_path / "a.yaml")
    assert cfg.json.rotate == "daily" and cfg.json.detections == 1.0
    repo = load_sinks_config(ROOT / "configs" / "app_config.yaml")
    assert repo.json.rotate == "daily" and repo.json.detections == 1.0
    sink, = sinks_from_config(cfg)
    assert sink.rotate == "daily"
    assert {RETENTION_KEYS[n]: d for n, d in sink.expiry_days.items()} == SEED_DAYS  # the retention: section
    sink.close()


@pytest.mark.parametrize("text, expected", [("off", "off"), ("'off'", "off"), ("all", "all"),
                                            ("{every_s: 2}", 2.0), ("{every_s: 0.2}", 0.2)])
def test_detections_setting_as_written_in_yaml(tmp_path, text, expected):
    p = tmp_path / "app.yaml"
    p.write_text(f"sinks:\n  json:\n    detections: {text}\n")
    assert load_sinks_config(p).json.detections == expected


@pytest.mark.parametrize("patch, field, value", [
    ({"rotate": "weekly"}, "sinks.json.rotate", "'weekly'"),
    ({"rotate": True}, "sinks.json.rotate", "True"),
    ({"detections": "some"}, "sinks.json.detections", "'some'"),
    ({"detections": 1}, "sinks.json.detections", "1"),
    ({"detections": {"every_s": 0}}, "sinks.json.detections.every_s", "0"),
    ({"detections": {"every_s": "1s"}}, "sinks.json.detections.every_s", "'1s'"),
    ({"detections": {"every": 1}}, "sinks.json.detections.every", "1"),
    ({"detections": {}}, "sinks.json.detections", "{}"),
])
def test_json_settings_errors_name_file_field_and_value(tmp_path, patch, field, value):
    p = tmp_path / "app.yaml"
    p.write_text(yaml.safe_dump({"sinks": {"json": patch}}))
    with pytest.raises(ConfigError) as e:
        load_sinks_config(p)
    msg = str(e.value)
    assert str(p) in msg and field in msg and value in msg, msg
    assert e.value.field.startswith(field.rsplit(".", 1)[0])


# --------------------------------------------------------------------------- store level (issue 17)

def test_store_files_rotate_by_record_time_and_expire_with_their_data_type(tmp_path):
    yesterday = TODAY - dt.timedelta(days=1)
    make_day(tmp_path, TODAY - dt.timedelta(days=40), extra=tuple(STORE_FILES.values()))
    make_day(tmp_path, TODAY - dt.timedelta(days=100), extra=tuple(STORE_FILES.values()))
    clock = Clock(ts(yesterday, 23.99))
    sink = daily(tmp_path, clock)
    old = tmp_path / (TODAY - dt.timedelta(days=40)).isoformat()
    assert not (old / "floor_heatmap.json").exists()  # heatmaps: 30 days
    assert (old / "store_kpis.json").exists() and (old / "camera_journeys.json").exists()  # journeys: 90 days
    older = tmp_path / (TODAY - dt.timedelta(days=100)).isoformat()
    assert not any((older / n).exists() for n in STORE_FILES.values()) and (older / "alerts.json").exists()
    v = store_helpers.visit(1, ts(yesterday, 23.999))  # began yesterday, ended yesterday
    late = store_helpers.visit(2, ts(TODAY, 0.01))  # began yesterday, ended today: today's file
    sink.write([v, store_helpers.kpis(ts(yesterday, 23.99))])
    assert sorted(p.name for p in (tmp_path / yesterday.isoformat()).iterdir()) == sorted(
        [*SEED_FILES.values(), "store_kpis.json"])  # a store file opens with its first record of the day
    clock.t = ts(TODAY, 0.02)
    sink.write([late, store_helpers.camera_journey(2, ts(TODAY, 0.01)), store_helpers.floor_heatmap(ts(TODAY, 0.02))])
    sink.close()
    assert [r["journey_id"] for r in read_day(tmp_path, yesterday)["journeys.json"]] == ["visit-000001"]
    assert [r["journey_id"] for r in read_day(tmp_path, TODAY)["journeys.json"]] == ["visit-000002"]
    today = tmp_path / TODAY.isoformat()
    assert len(json.loads((today / "camera_journeys.json").read_text())) == 1
    assert len(json.loads((today / "floor_heatmap.json").read_text())) == 1
    assert not (today / "store_kpis.json").exists()
    # a restart on the same day appends to the store files
    sink = daily(tmp_path, clock)
    sink.write([store_helpers.floor_heatmap(ts(TODAY, 0.03))])
    sink.close()
    assert len(json.loads((today / "floor_heatmap.json").read_text())) == 2
