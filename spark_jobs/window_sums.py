"""The daily step's running sums: one new day's marts from its edge days and stored sums.

A window of w days that ends at time t of day d covers part of day d (the upper edge), w - 1
full days, and part of day d - w (the lower edge). Per customer and per terminal the feature
job keeps the count and value sums of those full days (under _state/windows: yesterday's sums,
plus the day that enters, minus the days that leave), so it reads the edge days only: 4 clean
days per mart whatever the length of history. Amounts are summed as whole cents, so the running
sums are exact and the marts equal full_mart's (spark_jobs.windows).
"""

from __future__ import annotations

from collections.abc import Callable

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from fraudops.core import faults, lease, storage
from fraudops.core.lake import PARTITION_COLUMN, Lake, shift
from spark_jobs.datasets import (
    read_partitions,
)
from spark_jobs.schema import (
    CLEAN_SCHEMA,
    WINDOWS_DAYS,
)
from spark_jobs.windows import (
    FULL_DAYS,
    FULL_WINDOWS,
    MARTS,
    Mart,
    is_day,
    prepared,
    window_features,
)


def _sums(parts: list[DataFrame], mart: Mart) -> DataFrame:
    """Add up signed count and value contributions per key; keys whose counts are all 0 drop."""
    columns = [f"{kind}{w}" for w in FULL_WINDOWS for kind in "nv"]
    total = parts[0]
    for part in parts[1:]:
        total = total.unionByName(part)
    total = total.groupBy(mart.key).agg(*[F.sum(c).cast("long").alias(c) for c in columns])
    return total.where(" OR ".join(f"n{w} != 0" for w in FULL_WINDOWS))


def _signed(rows: DataFrame, mart: Mart, sign: Callable[[int], Column]) -> DataFrame:
    return rows.select(mart.key, *[
        c for w in FULL_WINDOWS
        for c in (sign(w).cast("long").alias(f"n{w}"),
                  (sign(w).cast("long") * mart.value()).alias(f"v{w}"))
    ])


def full_day_sums(clean: DataFrame, mart: Mart, last_day: str) -> DataFrame:
    """Per key, the count and value sum of the w - 1 days up to ``last_day``, for each w."""
    def inside(w: int) -> Column:
        return F.col(PARTITION_COLUMN).between(F.lit(shift(last_day, 2 - w)).cast("date"),
                                               F.lit(last_day).cast("date"))
    recent = clean.where(inside(max(FULL_WINDOWS)))  # prunes the older days' files
    return _sums([_signed(recent, mart, inside)], mart)


def next_day_sums(previous: DataFrame, edges: DataFrame, mart: Mart, day: str) -> DataFrame:
    """The sums for ``day``'s windows from the previous day's: the day entering is the lower
    edge of the 1-day window, the day leaving a w-day window is that window's lower edge."""
    _, lower = mart.edges(day)
    def sign(w: int) -> Column:
        return F.when(is_day(lower[1]), 1).when(is_day(lower[w]), -1).otherwise(0)
    return _sums([previous, _signed(edges, mart, sign)], mart)


def daily_mart(spark: SparkSession, lake: Lake, mart: Mart, day: str,
               available: list[str]) -> DataFrame:
    """The mart of ``day`` from its edge days and the stored full-day sums (see the module
    docstring); writes the sums for the next day's step."""
    upper, lower = mart.edges(day)
    edge_days = sorted({day, upper, *lower.values()} & set(available))
    edges = prepared(read_partitions(spark, lake.clean, edge_days, CLEAN_SCHEMA), mart,
                      is_day(day))
    k = mart.sums_day(day)
    previous = spark.read.schema(mart.sums_schema).parquet(
        lake.window_sums(mart.name, shift(k, -1)))
    save_sums(lake, mart, next_day_sums(previous, edges, mart, day), k, keep=[shift(k, -1)])
    # Read back what was just stored, so the window job below does not redo the aggregation.
    sums = spark.read.schema(mart.sums_schema).parquet(lake.window_sums(mart.name, k))

    def weight(w: int) -> Column:  # a row counts in w-day windows as an edge of them
        return F.col(PARTITION_COLUMN).isin(
            *[F.lit(d).cast("date") for d in (day, upper, lower[w])]).cast("long")
    weighted = edges.select("*", *[c for w in WINDOWS_DAYS for c in (
        weight(w).alias(f"_n{w}"), (weight(w) * F.col("_v")).alias(f"_v{w}"))])
    full_days = [  # one row per key and window, at the start of the window's first full day
        sums.select(mart.key,
                    F.unix_seconds(F.lit(shift(upper, 1 - w)).cast("timestamp")).alias("_t"),
                    F.lit(False).alias("_target"),
                    F.col(f"n{w}").alias(f"_n{w}"), F.col(f"v{w}").alias(f"_v{w}"))
        for w in FULL_WINDOWS
    ]
    rows = weighted
    for part in full_days:
        rows = rows.unionByName(part, allowMissingColumns=True)  # missing weights add nothing
    return window_features(rows, mart, lambda w: (F.col(f"_n{w}"), F.col(f"_v{w}")))


def current_sums(lake: Lake, mart: Mart) -> list[str]:
    return (lease.read_state(lake, lake.window_sums_index(mart.name), default={}) or {}).get(
        "days", [])


def save_sums(lake: Lake, mart: Mart, sums: DataFrame | None, day: str | None,
              keep: list[str]) -> None:
    """Store the sums of ``day`` (if any), keep those of ``keep`` and delete the rest.

    The index never lists a day whose sums are being written: a failed write leaves the next
    run to recompute from the look-back instead of trusting half a folder.
    """
    current = current_sums(lake, mart)
    days = sorted(set(keep) & set(current))
    lease.write_state(lake, lake.window_sums_index(mart.name), {"days": days})
    if sums is not None:
        sums.coalesce(1).write.mode("overwrite").parquet(lake.window_sums(mart.name, day))
        faults.point(f"features.after_{mart.name}_sums")
        days = sorted({*days, day})
        lease.write_state(lake, lake.window_sums_index(mart.name), {"days": days})
    for old in set(current) - set(days):
        storage.delete_dir(lake.window_sums(mart.name, old))


def forget_changed_sums(lake: Lake, changed: list[str]) -> None:
    """Drop stored sums that cover a changed day: they no longer add up to the clean table."""
    for mart in MARTS:
        current = current_sums(lake, mart)
        valid = [k for k in current
                 if not any(shift(k, 1 - FULL_DAYS) <= c <= k for c in changed)]
        if valid != current:
            save_sums(lake, mart, None, None, keep=valid)


def can_step_daily(lake: Lake, days: list[str], available: list[str]) -> bool:
    """One day to compute, the newest, and the sums of the day before it are stored."""
    if len(days) != 1 or days[0] != available[-1]:
        return False
    return all(shift(m.sums_day(days[0]), -1) in current_sums(lake, m) for m in MARTS)
