"""Train the offline demo detector on the store simulator's frames (modelops/train_demo_detector.py).

    python scripts/train_demo_detector.py all [--epochs 15] [--tiles 1800]   (or: python -m scripts.train_demo_detector)
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a file as well as with -m

from modelops.train_demo_detector import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
