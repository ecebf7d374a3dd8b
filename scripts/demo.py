"""``make demo``: the main job end to end on a newcomer's machine (clients/demo.py).

    python -m scripts.demo --help      (or: python scripts/demo.py)
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a file as well as with -m

from clients.demo import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
