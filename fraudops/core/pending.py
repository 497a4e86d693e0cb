"""Durable pending work: changed days whose feature marts are not rebuilt yet.

Clean adds the days it changes before it writes them; features drops a day only after both
marts of every day its windows reach are written. A features run that fails for good therefore
leaves its days here, and the next features run of any date rebuilds them (and drops the
stored window sums that cover them) before anything else. Callers hold the lake's lease.
"""

from __future__ import annotations

from fraudops.core import storage
from fraudops.core.lake import Lake


def features_days(lake: Lake) -> list[str]:
    return sorted((storage.read_json(lake.features_pending, default={}) or {}).get("days", []))


def _save(lake: Lake, days: set[str]) -> None:
    storage.write_json(lake.features_pending, {"days": sorted(days)})


def add_features_days(lake: Lake, days: list[str]) -> list[str]:
    """Record ``days`` as pending; returns every pending day."""
    current = set(features_days(lake))
    if not set(days) <= current:
        _save(lake, current | set(days))
    return sorted(current | set(days))


def remove_features_days(lake: Lake, days: list[str]) -> None:
    current = set(features_days(lake))
    if current & set(days):
        _save(lake, current - set(days))
