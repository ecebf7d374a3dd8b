"""A fake ``python3`` for docker/build_engines.sh: the real converter and sidecar check with
only the TensorRT build and the machine's TensorRT/GPU replaced.

``write_stub(path)`` writes it. At run time it reads ``FAKE_TRT_ENV`` (a JSON file:
{"tensorrt": ..., "gpu": ..., "compute_capability": ...}: what this "machine" has) and
appends every build as one JSON line to ``FAKE_TRT_LOG``. The fake build writes the plan
(the validated spec and profile as JSON) and the sidecar fields the real build records.
"""
from __future__ import annotations

import sys
from pathlib import Path

STUB = """#!{python}
import json, os, sys
from pathlib import Path
from modelops import engine_sidecar as es
from modelops import tensorrt_engine as te
es.current_build_env = lambda: json.loads(Path(os.environ["FAKE_TRT_ENV"]).read_text())

def fake_build(spec, log=print):
    spec = te.validate_spec(spec)
    _, shapes = te.plan_profile(spec)
    profile = {{k: {{"min": list(v[0]), "opt": list(v[1]), "max": list(v[2])}} for k, v in shapes.items()}}
    rec = {{"output": str(spec.output), "precision": spec.precision, "profile": profile,
           "timing_cache": str(spec.timing_cache), "config": str(spec.model_config),
           "calibration_dir": str(spec.calibration_dir) if spec.calibration_dir else None,
           "calibration_cache": str(spec.calibration_cache) if spec.calibration_cache else None}}
    spec.output.write_text(json.dumps(rec))
    side = {{"input_sha256": es.sha256(spec.input), "precision": spec.precision, "profile": profile,
            **es.current_build_env()}}
    spec.output.with_suffix(spec.output.suffix + ".json").write_text(json.dumps(side))
    with open(os.environ["FAKE_TRT_LOG"], "a") as f:
        f.write(json.dumps(rec) + "\\n")

te.build_engine = fake_build
module, args = sys.argv[2], sys.argv[3:]
assert sys.argv[1] == "-m", sys.argv
sys.exit({{"modelops.tensorrt_engine": te.main, "modelops.engine_sidecar": es.main}}[module](args))
"""


def write_stub(path: Path) -> Path:
    path.write_text(STUB.format(python=sys.executable))
    path.chmod(0o755)
    return path
