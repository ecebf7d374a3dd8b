"""`make perf`'s engine (benchmarks.perf) runs the real perf_analyzer against a real Triton."""
from __future__ import annotations

import csv
import io
import os

import numpy as np
import pytest
from google.protobuf import json_format, text_format
from tritonclient.grpc import model_config_pb2

from benchmarks import perf
from launchers.triton import MODEL_REPOSITORY

# retail_pipeline.csv as benchmarks.perf wrote it (perf_analyzer 2.50.0 --verbose-csv
# --bls-composing-models=osnet_x0_25, CPU server, 2 cores): the ensemble's own "Server Queue"
# is 1-2 us while yolov8n's queue at c=4 is 291 ms (perf_analyzer puts it in
# "Network+Server Send/Recv" of the ensemble row).
CAPTURED_ENSEMBLE_CSV = """\
Concurrency,Inferences/Second,Client Send,Network+Server Send/Recv,Server Queue,Server Compute Input,Server Compute Infer,Server Compute Output,Client Recv,p50 latency,p90 latency,p95 latency,p99 latency,Avg latency,request/response,response wait,Ensemble Steps,BLS Models,preprocess Inferences/Second,preprocess Server Queue,preprocess Server Compute Input,preprocess Server Compute Infer,preprocess Server Compute Output,yolov8n Inferences/Second,yolov8n Server Queue,yolov8n Server Compute Input,yolov8n Server Compute Infer,yolov8n Server Compute Output,postprocess Inferences/Second,postprocess Server Queue,postprocess Server Compute Input,postprocess Server Compute Infer,postprocess Server Compute Output,osnet_x0_25 Inferences/Second,osnet_x0_25 Server Queue,osnet_x0_25 Server Compute Input,osnet_x0_25 Server Compute Infer,osnet_x0_25 Server Compute Output
1,4.99845,11,0,2,639,195790,3505,5,200453,224377,229558,234699,198167,16,198115,preprocess yolov8n postprocess,osnet_x0_25:postprocess,5.13729,37,35,3092,2088,4.99845,57,468,145665,808,4.99845,128,135,47027,582,4.99845,2153,281,24479,299
4,4.29535,9,284900,1,886,629591,2915,4,909079,1123307,1170534,1354870,918308,13,918260,preprocess yolov8n postprocess,osnet_x0_25:postprocess,4.29535,389,30,7934,568,4.15679,291182,645,467522,1817,4.29535,2083,209,162174,573,4.29535,6537,277,86294,324
"""


def _captured_rows() -> list[dict]:
    return list(csv.DictReader(io.StringIO(CAPTURED_ENSEMBLE_CSV)))


def _cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip("|").split("|")]


def test_summarise_ensemble_sums_queue_and_compute_over_its_steps():
    c1, c4 = (_cells(line) for line in perf.summarise("retail_pipeline", _captured_rows()))
    assert c4[:2] == ["retail_pipeline", "4"]
    # queue: preprocess 0.389 + yolov8n 291.182 + postprocess 2.083 ms; osnet (BLS, inside postprocess) not added
    assert float(c4[6]) == pytest.approx(293.7, abs=0.05)
    # compute: (30+7934+568) + (645+467522+1817) + (209+162174+573) us
    assert float(c4[7]) == pytest.approx(641.5, abs=0.05)
    assert float(c1[6]) < 1.0  # no queueing at concurrency 1


def test_breakdown_shows_each_steps_queue_and_compute_and_the_rest():
    lines = perf.breakdown("retail_pipeline", _captured_rows())
    head = _cells(lines[0])
    assert head[1:] == ["mean latency ms", "preprocess queue / compute ms", "yolov8n queue / compute ms",
                        "postprocess queue / compute ms", "osnet_x0_25 queue / compute ms (BLS, inside postprocess)",
                        "unaccounted ms"]
    assert set(lines[1]) <= set("|-")
    row4 = dict(zip(head, _cells(lines[3])))
    assert row4["retail_pipeline concurrency"] == "4"
    assert row4["yolov8n queue / compute ms"] == "291.2 / 470.0"
    assert row4["osnet_x0_25 queue / compute ms (BLS, inside postprocess)"] == "6.5 / 86.9"
    steps = sum(float(x) for m in ("preprocess", "yolov8n", "postprocess")
                for x in row4[f"{m} queue / compute ms"].split(" / "))
    assert float(row4["mean latency ms"]) == pytest.approx(918.3, abs=0.05)  # --verbose-csv "Avg latency"
    assert float(row4["unaccounted ms"]) == pytest.approx(918.3 - steps, abs=0.15)


def test_plain_perf_analyzer_rows_keep_their_own_columns_and_have_no_breakdown():
    added = ("Ensemble Steps", "BLS Models", "preprocess ", "yolov8n ", "postprocess ", "osnet_x0_25 ")
    rows = [{k: v for k, v in r.items() if not k.startswith(added)} for r in _captured_rows()]
    assert "Server Queue" in rows[1] and not any(k.startswith("yolov8n ") for k in rows[1])
    c4 = _cells(perf.summarise("retail_pipeline", rows)[1])
    assert (c4[6], c4[7]) == ("0.0", "633.4")  # perf_analyzer's own ensemble columns: 1 us; 886+629591+2915 us
    assert perf.breakdown("retail_pipeline", rows) == []
    # without "Avg latency" the mean is rebuilt from perf_analyzer's components
    del rows[1]["Avg latency"]
    assert perf._avg_latency(rows[1]) == pytest.approx(918.306, abs=0.01)


def test_composing_csvs_are_matched_by_model_and_level(tmp_path):
    hdr = "Concurrency,Inferences/Second,Server Queue\n"
    for name, q in [("yolov8n_v2.c4.csv", 7), ("osnet_x0_25_v1.c4.csv", 3), ("yolov8n_v2.c40.csv", 99)]:
        (tmp_path / name).write_text(hdr + f"4,1.0,{q}\n")
    (tmp_path / "c4.csv").write_text(hdr + "4,1.0,1\n")
    stats = perf._composing_stats(tmp_path, "c4.csv")
    assert {m: r["Server Queue"] for m, r in stats.items()} == {"yolov8n": "7", "osnet_x0_25": "3"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c4.csv", "yolov8n_v2.c40.csv"]


def _repo_config(rel: str) -> dict:
    msg = text_format.Parse((MODEL_REPOSITORY / rel).read_text(), model_config_pb2.ModelConfig())
    return json_format.MessageToDict(msg, preserving_proto_field_name=True)


def test_server_label_comes_from_the_yolov8n_config_not_the_host():
    assert perf.server_label(_repo_config("yolov8n/config.pbtxt")) == "GPU configs: yolov8n tensorrt_plan, KIND_GPU"
    assert perf.server_label(_repo_config("yolov8n/configs/cpu.pbtxt")) == "CPU configs: yolov8n python backend, KIND_CPU"
    assert perf.server_label(None) == "yolov8n config unavailable"
    ens = _repo_config("retail_pipeline/config.pbtxt")
    assert perf.ensemble_steps(ens) == ["preprocess", "yolov8n", "postprocess"]


@pytest.fixture
def fake_server(monkeypatch):
    """A 'ready' server whose config cannot be read; frames without rendering."""
    monkeypatch.setattr(perf, "grpc_ready", lambda url: True)
    monkeypatch.setattr(perf, "model_config", lambda url, model: (_ for _ in ()).throw(RuntimeError("no server")))
    monkeypatch.setattr(perf, "store_frames", lambda: [np.zeros((360, 640, 3), np.uint8)] * 2)


def test_main_fails_loudly_when_every_perf_analyzer_run_fails(fake_server, monkeypatch, tmp_path, capsys):
    cmd, env = perf.perf_analyzer_cmd()
    monkeypatch.setattr(perf, "perf_analyzer_cmd", lambda: (["false"], env))  # a real process that exits 1
    report = tmp_path / "perf.md"
    rc = perf.main(["--url", "localhost:1", "--models", "yolov8n,osnet_x0_25", "--concurrency", "1",
                    "--out", str(tmp_path / "csv"), "--report", str(report)])
    assert rc != 0
    err = capsys.readouterr().err
    assert "no perf_analyzer results for yolov8n, osnet_x0_25" in err
    assert not report.exists() and not (tmp_path / "csv").exists()


def test_main_fails_when_one_model_gets_no_rows(fake_server, monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(perf, "run_model",
                        lambda model, *a, **k: _captured_rows() if model == "retail_pipeline" else [])
    report = tmp_path / "perf.md"
    report.write_text("previous results\n")
    rc = perf.main(["--url", "localhost:1", "--models", "retail_pipeline,yolov8n", "--concurrency", "1,4",
                    "--out", str(tmp_path), "--report", str(report)])
    assert rc == 1
    assert "no perf_analyzer results for yolov8n " in capsys.readouterr().err
    assert report.read_text() == "previous results\n"
    assert not (tmp_path / "retail_pipeline.csv").exists()


def test_unstable_level_is_retried_once_with_longer_windows(monkeypatch, tmp_path):
    """perf_analyzer prints 'Failed to obtain stable measurement' on stderr and exits 2."""
    fake = tmp_path / "fake_pa.sh"
    fake.write_text(f"""#!/bin/sh
echo "$@" >> {tmp_path}/calls
if [ ! -e {tmp_path}/failed ]; then touch {tmp_path}/failed; echo "Failed to obtain stable measurement." >&2; exit 2; fi
while [ "$1" != "-f" ]; do shift; done
printf 'Concurrency,Inferences/Second,Server Queue\\n1,5.0,7\\n' > "$2"
""")
    fake.chmod(0o755)
    monkeypatch.setattr(perf, "perf_analyzer_cmd", lambda: ([str(fake)], dict(os.environ)))
    rows = perf.run_model("yolov8n", "localhost:1", [1], [np.zeros((360, 640, 3), np.uint8)], 1000)
    assert [(r["Concurrency"], r["Server Queue"]) for r in rows] == [("1", "7")]
    calls = (tmp_path / "calls").read_text().splitlines()
    assert len(calls) == 2 and "-p 1000 " in calls[0] and "-p 2000 " in calls[1]


def test_report_names_levels_that_got_no_rows(fake_server, monkeypatch, tmp_path):
    monkeypatch.setattr(perf, "run_model", lambda model, *a, **k: _captured_rows())  # c=1 and c=4 only
    report = tmp_path / "perf.md"
    rc = perf.main(["--url", "localhost:1", "--models", "retail_pipeline", "--concurrency", "1,4,8",
                    "--out", str(tmp_path), "--report", str(report)])
    assert rc == 0
    text = report.read_text()
    assert "Not measured: retail_pipeline c=8 (" in text
    assert "(yolov8n config unavailable: no server)" in text  # the label never guesses from the host name
    assert "| 4 | 918.3 | 0.4 / 8.5 | 291.2 / 470.0 |" in text


def test_perf_sweep_writes_csv_and_table(triton_server, tmp_path):
    report = tmp_path / "perf.md"
    rc = perf.main(["--url", triton_server.grpc_url, "--models", "retail_pipeline,osnet_x0_25",
                    "--concurrency", "1,2", "--window-ms", "1000", "--out", str(tmp_path), "--report", str(report)])
    assert rc == 0
    with open(tmp_path / "retail_pipeline.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert [int(r["Concurrency"]) for r in rows] == [1, 2]
    assert all(float(r["Inferences/Second"]) > 0 for r in rows)
    # perf_analyzer's composing-model stats, merged: every step and the BLS-called osnet
    for r in rows:
        assert r["Ensemble Steps"] == "preprocess yolov8n postprocess"
        assert r["BLS Models"] == "osnet_x0_25:postprocess"
        assert float(r["yolov8n Server Compute Infer"]) > 0 and r["yolov8n Server Queue"] != ""
        assert float(r["osnet_x0_25 Server Compute Infer"]) > 0  # store frames show people
    # composing models are swept at 1 and 4 only; with "1,2" that leaves 1
    with open(tmp_path / "osnet_x0_25.csv") as fh:
        assert [int(r["Concurrency"]) for r in csv.DictReader(fh)] == [1]
    text = report.read_text()
    table = [line for line in text.splitlines() if line.startswith("| retail_pipeline |")]
    assert len(table) == 2
    assert "JPEG q90" in text
    assert "(CPU configs: yolov8n python backend, KIND_CPU)" in text
    assert "| yolov8n queue / compute ms |" in text
    assert len([line for line in text.splitlines() if line.startswith("| 1 |") or line.startswith("| 2 |")]) == 2


def test_grpc_ready_is_false_without_a_server():
    assert not perf.grpc_ready("127.0.0.1:1")


def test_visits_benchmark_runs_all_three_configurations(monkeypatch):
    """benchmarks.visits: base analytics, + tracklets, + the linker behind a StoreLink (a tiny
    run: the numbers are not checked, only that each configuration ran and the linker linked)."""
    from benchmarks import visits as bench

    monkeypatch.setattr(bench, "ROUNDS", 1)
    r = bench.run(10, 1200)  # 80 s at 15 fps: tracks end, visits time out
    assert r["visits_closed"] > 0
    parts = r["base_us"] + r["tracklets_us"] + r["linker_us"]
    assert r["visits_us"] == pytest.approx(parts)
    assert r["linker_pct"] == pytest.approx(100.0 * r["linker_us"] / r["base_us"])
    assert 0.0 < r["calls_us"] < r["visits_us"]  # the time inside the StoreLink calls is part of the run
