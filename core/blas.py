"""NumPy's and SciPy's BLAS on one thread, for the processes that run per-frame work.

    from core.blas import one_blas_thread
    one_blas_thread()          # first thing in a stream-client or generator process

Why: OpenBLAS runs a matrix product above a size threshold on a second thread, which then
spins, busy, until it times out. The stream clients are one event loop per process: that is
the tracker's appearance cost matrix (tracks x detections x 512, ``tracking/matching.py``)
every frame, and at 200 people it doubled the tracker's CPU time (3.5 -> 1.6 ms a frame on a
2-core VM, wall time the same): a core taken from Triton on the same machine, for nothing.
``threadpoolctl`` sets every BLAS already loaded (NumPy's and SciPy's OpenBLAS each have
their own); ``OPENBLAS_NUM_THREADS`` covers one loaded later. An explicit
``OPENBLAS_NUM_THREADS`` in the environment wins: this never overrides an operator's choice.
"""
from __future__ import annotations

import logging
import os

log = logging.getLogger("core.blas")


def one_blas_thread() -> bool:
    """Limit BLAS to one thread in this process unless the environment says otherwise; True when
    it set the limit. Safe to call more than once (a forked worker calls it again)."""
    if os.environ.get("OPENBLAS_NUM_THREADS") not in (None, "", "1"):
        return False
    os.environ["OPENBLAS_NUM_THREADS"] = "1"
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # only libraries loaded from now on are covered
        log.warning("threadpoolctl is not installed: BLAS already loaded keeps its threads")
        return True
    threadpool_limits(limits=1, user_api="blas")
    return True
