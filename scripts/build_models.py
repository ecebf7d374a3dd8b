"""Build the ONNX models offline and install them into model_repository/ (modelops/build.py).

    python scripts/build_models.py --help      (or: python -m scripts.build_models)
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a file as well as with -m

from modelops.build import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
