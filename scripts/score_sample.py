"""Score a sample-data directory against the simulator's ground truth (simulator/score.py).

    python scripts/score_sample.py --help      (or: python -m scripts.score_sample)
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a file as well as with -m

from simulator.score import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
