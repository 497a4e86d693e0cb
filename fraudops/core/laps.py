"""Where a job's wall time goes: named laps, each logged as it ends, kept for the run summary.

    laps.lap("load model")     # the time since the previous lap (or since the process started)

The first lap of a process counts from the process's start (Python's imports and the JVM's start
included), read from /proc where there is one.
"""

from __future__ import annotations

import logging
import os
import time

log = logging.getLogger(__name__)

_laps: dict[str, float] = {}
_last: list[float] = []


def _process_age() -> float:
    """Seconds since this process started (0 where /proc is missing)."""
    try:
        with open("/proc/self/stat") as stat:
            started_ticks = int(stat.read().rsplit(")", 1)[1].split()[19])
        with open("/proc/uptime") as uptime:
            return max(float(uptime.read().split()[0]) - started_ticks / os.sysconf(
                "SC_CLK_TCK"), 0.0)
    except (OSError, ValueError, IndexError):
        return 0.0


def lap(name: str) -> float:
    """Record the seconds since the previous lap (the process start for the first) as ``name``."""
    now = time.perf_counter()
    seconds = now - _last[-1] if _last else _process_age()
    _last[:] = [now]
    _laps[name] = round(_laps.get(name, 0.0) + seconds, 2)
    log.info("lap %s: %.1f s", name, seconds)
    return seconds


def laps() -> dict[str, float]:
    return dict(_laps)
