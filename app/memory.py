"""Keeping the app process's resident memory bounded (glibc on Linux; elsewhere these are no-ops).

A mask edit or a "make transferable" step allocates hundreds of MB of activations for a few seconds and frees
them. glibc keeps freed memory in per-thread arenas (up to 8 per core) and rarely hands it back, so a process
whose requests run on many worker threads grows after every heavy request without holding more data. Two
remedies, measured by benchmarks/bench_soak.py (figures in docs/results.md):

* :func:`limit_arenas` caps the arenas (glibc's ``M_ARENA_MAX``), so memory freed by one thread is reused by
  the next instead of sitting in an arena of its own; call it once at start, before worker threads exist;
* :func:`trim` (``malloc_trim(0)``) returns the free pages to the system after each heavy request.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
from functools import lru_cache
from typing import Optional

log = logging.getLogger(__name__)
M_ARENA_MAX = -8  # glibc's mallopt parameter number


@lru_cache(maxsize=1)
def _glibc() -> Optional[ctypes.CDLL]:
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
        return libc if libc is not None and hasattr(libc, "malloc_trim") and hasattr(libc, "mallopt") else None
    except OSError:
        return None


def limit_arenas(n: int = 2) -> bool:
    """At most ``n`` malloc arenas for threads created from now on; True when glibc took it."""
    libc = _glibc()
    ok = bool(libc is not None and libc.mallopt(M_ARENA_MAX, int(n)) == 1)
    log.info("malloc arenas limited to %d: %s", n, ok)
    return ok


def trim() -> bool:
    """Give free heap pages back to the system; True when glibc released any."""
    libc = _glibc()
    return bool(libc is not None and libc.malloc_trim(0))
