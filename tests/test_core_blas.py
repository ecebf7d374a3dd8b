"""core.blas: per-frame processes run NumPy's and SciPy's BLAS on one thread (checked in a fresh
interpreter: the setting is process-wide)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PROBE = """
import json, numpy, scipy.linalg
from threadpoolctl import threadpool_info
from core.blas import one_blas_thread
before = sorted(i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas")
changed = one_blas_thread()
after = sorted(i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas")
print(json.dumps({"changed": changed, "before": before, "after": after}))
"""


def probe(**env) -> dict:
    e = {k: v for k, v in os.environ.items() if k != "OPENBLAS_NUM_THREADS"} | env
    out = subprocess.run([sys.executable, "-c", PROBE], cwd=ROOT, env=e, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_every_loaded_blas_gets_one_thread():
    r = probe()
    assert r["changed"] is True
    assert len(r["after"]) >= 2  # NumPy's and SciPy's own OpenBLAS
    assert r["after"] == [1] * len(r["after"])


def test_an_operators_choice_is_kept():
    r = probe(OPENBLAS_NUM_THREADS="2")
    assert r["changed"] is False
    assert r["after"] == r["before"] == [2] * len(r["before"])
