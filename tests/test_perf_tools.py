"""`make perf`'s engine (benchmarks.perf) runs the real perf_analyzer against a real Triton."""
from __future__ import annotations

import csv

from benchmarks import perf


def test_perf_sweep_writes_csv_and_table(triton_server, tmp_path):
    report = tmp_path / "perf.md"
    rc = perf.main(["--url", triton_server.grpc_url, "--models", "retail_pipeline,osnet_x0_25",
                    "--concurrency", "1,2", "--window-ms", "1000", "--out", str(tmp_path), "--report", str(report)])
    assert rc == 0
    with open(tmp_path / "retail_pipeline.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert [int(r["Concurrency"]) for r in rows] == [1, 2]
    assert all(float(r["Inferences/Second"]) > 0 for r in rows)
    # composing models are swept at 1 and 4 only; with "1,2" that leaves 1
    with open(tmp_path / "osnet_x0_25.csv") as fh:
        assert [int(r["Concurrency"]) for r in csv.DictReader(fh)] == [1]
    table = [line for line in report.read_text().splitlines() if line.startswith("| retail_pipeline |")]
    assert len(table) == 2
    assert "JPEG q90" in report.read_text()


def test_grpc_ready_is_false_without_a_server():
    assert not perf.grpc_ready("127.0.0.1:1")
