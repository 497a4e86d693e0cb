"""Durable pending work: days whose clean data or feature marts are not settled yet.

Features: clean adds the days it changes before it writes them; features drops a day only
after both marts of every day its windows reach are written. A features run that fails for
good therefore leaves its days here, and the next features run of any date rebuilds them (and
drops the stored window sums that cover them) before anything else.

Clean: the days a cleaning run is about to rewrite, recorded before its first write and
dropped once its state (clean_days.json, the manifest) is saved. A run that dies in between
leaves days whose data may be neither the old nor the new file's; the next run cleans them
again from their raw files as they are then, whatever the manifest says of those files.

Callers hold the lake's lease.
"""

from __future__ import annotations

from fraudops.core import lease
from fraudops.core.lake import Lake


def _days(lake: Lake, path: str) -> list[str]:
    return sorted((lease.read_state(lake, path, default={}) or {}).get("days", []))


def _save(lake: Lake, path: str, days: set[str]) -> None:
    lease.write_state(lake, path, {"days": sorted(days)})


def _add(lake: Lake, path: str, days: list[str]) -> list[str]:
    current = set(_days(lake, path))
    if not set(days) <= current:
        _save(lake, path, current | set(days))
    return sorted(current | set(days))


def _remove(lake: Lake, path: str, days: list[str]) -> None:
    current = set(_days(lake, path))
    if current & set(days):
        _save(lake, path, current - set(days))


def features_days(lake: Lake) -> list[str]:
    return _days(lake, lake.features_pending)


def add_features_days(lake: Lake, days: list[str]) -> list[str]:
    """Record ``days`` as pending; returns every pending day."""
    return _add(lake, lake.features_pending, days)


def remove_features_days(lake: Lake, days: list[str]) -> None:
    _remove(lake, lake.features_pending, days)


def clean_days(lake: Lake) -> list[str]:
    """Days a cleaning run began to rewrite and did not record: to clean again."""
    return _days(lake, lake.clean_pending)


def add_clean_days(lake: Lake, days: list[str]) -> list[str]:
    return _add(lake, lake.clean_pending, days)


def remove_clean_days(lake: Lake, days: list[str]) -> None:
    _remove(lake, lake.clean_pending, days)
