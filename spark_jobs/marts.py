"""The feature marts as the model steps read them: their layout, the lookback, and the one reader.

train, promote and score (and the benchmarks) read the marts through ``labeled_features``; the
features job (spark_jobs.features) writes them, with its window computations on top of the
layout defined here (windows.Mart extends MartLayout).
"""

from __future__ import annotations

from dataclasses import dataclass

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import types as T

from fraudops.core import cli, storage
from fraudops.core import pending as pending_work
from fraudops.core.lake import PARTITION_COLUMN, Lake, shift
from spark_jobs import schema
from spark_jobs.datasets import day_range, read_clean, read_days
from spark_jobs.schema import (
    CUSTOMER_FEATURE_FIELDS,
    KEYS,
    LABEL_DELAY_DAYS,
    TERMINAL_FEATURE_FIELDS,
    WINDOWS_DAYS,
)

LOOKBACK_DAYS = max(WINDOWS_DAYS) + LABEL_DELAY_DAYS  # the furthest back any feature looks


@dataclass(frozen=True)
class MartLayout:
    """Where a mart is and what it holds: per transaction, its entity key and features."""

    name: str
    key: str
    feature_fields: list[T.StructField]  # the columns the model reads, in their order

    @property
    def feature_names(self) -> list[str]:
        return [f.name for f in self.feature_fields]

    @property
    def schema(self) -> T.StructType:
        """The mart's Parquet columns: keys and event time, then the features."""
        return schema.mart_schema(self.key, self.feature_fields)

    def path(self, lake: Lake) -> str:
        return getattr(lake, f"{self.name}_features")


CUSTOMER = MartLayout("customer", "customer_id", CUSTOMER_FEATURE_FIELDS)
TERMINAL = MartLayout("terminal", "terminal_id", TERMINAL_FEATURE_FIELDS)
LAYOUTS = (CUSTOMER, TERMINAL)


class IncompleteFeatures(RuntimeError):
    """The marts do not hold every clean row of a day (a missing or half-written file, or a
    day whose marts a failed features run left to rebuild)."""


def days_to_recompute(changed: list[str], available: list[str]) -> list[str]:
    """The changed days and every available day whose windows reach back into one of them."""
    if not changed:
        return []
    reach = {d for c in changed for d in day_range(c, shift(c, LOOKBACK_DAYS))}
    return sorted(d for d in available if d in reach)


def labeled_features(spark: SparkSession, lake: Lake, start: str, end: str) -> DataFrame:
    """Clean transactions of [start, end] joined with both marts on (transaction_id, tx_date).

    Refuses, naming the day, unless the join holds every row clean_days.json promises for each
    day: an inner join would otherwise drop the rows a mart lacks without a word.
    """
    joined = read_clean(spark, lake, start, end)
    for mart in LAYOUTS:
        joined = joined.join(read_days(spark, lake, mart.path(lake), start, end, mart.schema)
                             .select(*KEYS, *mart.feature_names), KEYS)
    check_complete(lake, joined, start, end)
    return joined


def check_complete(lake: Lake, joined: DataFrame, start: str, end: str) -> None:
    """Rows per day of ``joined`` (keys only: one small aggregation, no feature columns read)
    against the rows clean wrote; and no pending day whose windows reach into [start, end]."""
    stats = storage.read_json(lake.clean_days, default={}) or {}
    owed = pending_work.features_days(lake)
    stale = [d for d in days_to_recompute(owed, sorted(stats)) if start <= d <= end]
    if stale:
        raise IncompleteFeatures(
            f"the marts of {cli.span(stale)} are not rebuilt yet after clean changed "
            f"{cli.span(owed)} (pending in {lake.features_pending}): run spark_jobs.features")
    promised = {d: s["rows"] for d, s in stats.items() if start <= d <= end}
    counts = joined.select(PARTITION_COLUMN).groupBy(PARTITION_COLUMN).count().collect()
    got = {row[0].isoformat(): row[1] for row in counts}
    short = {d: (got.get(d, 0), n) for d, n in sorted(promised.items()) if got.get(d, 0) != n}
    if short:
        detail = ", ".join(f"{d}: {have} of {want} rows" for d, (have, want) in short.items())
        raise IncompleteFeatures(
            f"clean and the feature marts disagree on {len(short)} day(s) ({detail}): a mart "
            f"file is missing or half-written; rebuild with spark_jobs.features --dates "
            f"{','.join(short)}")
