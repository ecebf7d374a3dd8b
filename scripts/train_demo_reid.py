"""Train the offline demo re-id model, OSNet x0_25 on the store simulator's person crops (modelops/train_demo_reid.py).

    python scripts/train_demo_reid.py all [--minutes 25]   (or: python -m scripts.train_demo_reid)
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a file as well as with -m

from modelops.train_demo_reid import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
