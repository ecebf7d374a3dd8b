"""Simulate a store day and write the seed's five files (simulator/day.py).

    python scripts/generate_sample_data.py --help      (or: python -m scripts.generate_sample_data)
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a file as well as with -m

from simulator.day import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
