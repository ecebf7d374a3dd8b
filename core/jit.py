"""Functions compiled with numba, for the few per-frame passes that NumPy can only do as dozens of
calls on small arrays (the store linker's: ``visits.link_costs``, ``visits.gallery``,
``visits.floor_heatmap``).

    from core.jit import jit
    f = jit(py_func)           # numba.njit, its machine code cached on disk

The cache sits next to the module (``__pycache__``) or in numba's user cache directory; where
neither can be written (a read-only image, no home) the function compiles at each start instead
(seconds, once per process) rather than failing.
"""
from __future__ import annotations

from typing import Callable

import numba


def jit(f: Callable) -> Callable:
    try:
        return numba.njit(cache=True)(f)
    except RuntimeError:  # "cannot cache function ...: no locator available"
        return numba.njit(f)
