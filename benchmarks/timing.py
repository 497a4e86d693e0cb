"""Wall-clock timing of one call, the same way in every benchmark."""

from __future__ import annotations

import time


def timed(fn, *args, **kwargs):
    """(seconds, result) of ``fn(*args, **kwargs)``."""
    started = time.perf_counter()
    result = fn(*args, **kwargs)
    return time.perf_counter() - started, result
