"""The marts' window features: what each mart sums, and the event-time windows over it.

Customer mart (per transaction): count and mean amount of the customer's transactions in the
last 1, 7 and 30 days, the transaction itself included, plus weekend and night flags.
Terminal mart (per transaction): count and fraud ratio of the terminal's transactions in 1, 7
and 30-day windows that end 7 days before the transaction: labels of the last 7 days are not
known yet when a transaction is scored. Both are event-time range windows over epoch seconds.
Transactions in the same second are in transaction id order, as in the handbook's rolling
windows: a window holds what came before its transaction (earlier, or in the same second with
a lower id) and the transaction itself, never a later id of the same second.

window_features computes them over weighted rows: every row counts once in full_mart; the
daily step (spark_jobs.window_sums) adds stored full-day sums as rows of their own.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T
from pyspark.sql.window import Window

from fraudops.core.lake import PARTITION_COLUMN, shift
from fraudops.core.rawformat import DAY_SECONDS
from spark_jobs import marts, schema
from spark_jobs.marts import MartLayout
from spark_jobs.schema import (
    LABEL_DELAY_DAYS,
    WINDOWS_DAYS,
)

FULL_WINDOWS = [w for w in WINDOWS_DAYS if w > 1]  # windows that cover whole days
FULL_DAYS = max(WINDOWS_DAYS) - 1  # the most whole days one set of sums covers


@dataclass(frozen=True)
class Mart(MartLayout):
    """Per transaction: count and one summed value of its key's rows over each window (where
    the mart is and its columns: the MartLayout of spark_jobs.marts it is built from)."""

    delay_days: int  # the windows end this many days before the transaction
    value: Callable[[], Column]  # an exact integer, so running sums never drift
    features: Callable[[int, Column, Column], list[Column]]  # (days, count, sum) -> columns
    flags: Callable[[], list[Column]]

    def sums_day(self, day: str) -> str:
        """The last full day in the windows of ``day``'s transactions."""
        return shift(day, -self.delay_days - 1)

    def edges(self, day: str) -> tuple[str, dict[int, str]]:
        """The upper edge day and the lower edge day of each window."""
        upper = shift(day, -self.delay_days)
        return upper, {w: shift(upper, -w) for w in WINDOWS_DAYS}

    @property
    def sums_schema(self) -> T.StructType:
        return T.StructType([T.StructField(self.key, T.LongType())] + [
            T.StructField(f"{kind}{w}", T.LongType()) for w in FULL_WINDOWS for kind in "nv"
        ])


def _customer_features(w: int, n_tx: Column, cents: Column) -> list[Column]:
    return [n_tx.alias(schema.customer_nb_tx(w)),
            (cents / n_tx / 100).alias(schema.customer_avg_amount(w))]


def _terminal_features(w: int, n_tx: Column, n_fraud: Column) -> list[Column]:
    return [n_tx.alias(schema.terminal_nb_tx(w)),
            F.when(n_tx > 0, n_fraud / n_tx).otherwise(F.lit(0.0)).alias(schema.terminal_risk(w))]


def _customer_flags() -> list[Column]:
    # From the day and the event time in seconds: hour() and a time stamp's date go through a
    # time-zone conversion per row (the session's zone is UTC, so seconds of the day are the
    # clock time).
    return [F.dayofweek(PARTITION_COLUMN).isin(1, 7).cast("int").alias(schema.WEEKEND_FLAG),
            (F.pmod("_t", F.lit(DAY_SECONDS)) < schema.NIGHT_END_HOUR * 3600).cast("int")
            .alias(schema.NIGHT_FLAG)]


def _layout(mart: MartLayout) -> dict:
    return {field.name: getattr(mart, field.name) for field in fields(MartLayout)}


CUSTOMER = Mart(**_layout(marts.CUSTOMER), delay_days=0,
                value=lambda: F.round(F.col("tx_amount") * 100).cast("long"),  # cents
                features=_customer_features, flags=_customer_flags)
TERMINAL = Mart(**_layout(marts.TERMINAL), delay_days=LABEL_DELAY_DAYS,
                value=lambda: F.col("tx_fraud").cast("long"), features=_terminal_features,
                flags=lambda: [])
MARTS = (CUSTOMER, TERMINAL)

Weights = Callable[[int], tuple[Column, Column]]


def key_time_order(key: str) -> Column:
    """One long that sorts rows by ``key``, then by the event seconds ``_t``.

    A window sorts by key, then time: a sort on two keys, which Spark does by comparisons.
    Sorting first on one long that orders the same way takes Spark's radix sort, and the
    window's own sort then finds its input in order. Bit
    operations, not arithmetic: they cannot overflow, and a key or time beyond 32 bits only
    leaves the window's sort more to do.
    """
    return F.shiftleft(key, 32).bitwiseOR(F.col("_t").bitwiseAND(F.lit(0xFFFFFFFF)))


def window_features(rows: DataFrame, mart: Mart, weights: Weights) -> DataFrame:
    """The mart for the rows flagged ``_target``, with one shuffle and one sort.

    ``weights(w)`` is what a row adds to the count and to the value sum of a w-day window:
    1 and its value for a plain transaction. Every frame shares the (key, time) ordering.

    The sum over (t - delay - w days, t - delay] is the running sum up to t - delay minus the
    running sum up to t - delay - w days. Spark adds each row to a running sum once, while a
    sliding range frame adds up its whole content again for every row (a terminal's 30-day
    window holds hundreds of rows); the weights are whole numbers, so the difference is exact.

    A range frame ends with every row of its last second. That is right where it ends before
    the transaction's own second: all those rows came before the transaction. The running sum
    up to the transaction itself (delay 0, the customer mart) is a rows frame over (time, id)
    instead, so it stops at the transaction. That frame's window runs first: its sort by
    (key, time, id) also orders the rows for the range frames' window, which sorts nothing.
    """
    by_key = Window.partitionBy(mart.key).orderBy("_t")
    up_to_row = Window.partitionBy(mart.key).orderBy("_t", "transaction_id").rowsBetween(
        Window.unboundedPreceding, Window.currentRow)
    sums: dict[tuple[str, int], tuple[str, Column]] = {}

    def running(weight: Column, days_back: int) -> Column:
        """Sum of ``weight`` over the key's rows up to ``days_back`` days before this one.

        Each distinct sum is one named window column, and the features refer to it by name:
        Spark gives every occurrence of a window expression its own aggregate, so using the
        same expression in a count and in a mean would build it twice (the customer mart's plan
        had 18 window aggregates instead of 8).
        """
        key = (str(weight), days_back)
        if key not in sums:
            frame = up_to_row if days_back == 0 else by_key.rangeBetween(
                Window.unboundedPreceding, -days_back * DAY_SECONDS)
            sums[key] = (f"_sum{len(sums)}", F.sum(weight).over(frame))
        return F.coalesce(F.col(sums[key][0]), F.lit(0))

    features = []
    for w in WINDOWS_DAYS:
        count, value = weights(w)
        window_sums = [running(weight, mart.delay_days) - running(weight, mart.delay_days + w)
                       for weight in (count, value)]
        features += mart.features(w, *window_sums)
    rows = rows.repartition(mart.key).sortWithinPartitions(key_time_order(mart.key))
    # Two selects, two windows, the (time, id) one below: one select would leave their order
    # to the analyzer.
    with_sums = rows
    for in_order in (True, False):
        with_sums = with_sums.select("*", *[column.alias(name) for (_, days_back), (name, column)
                                            in sums.items() if (days_back == 0) == in_order])
    with_features = with_sums.select(*rows.columns, *features)
    names = [c for c in with_features.columns if c not in rows.columns]
    # Rows leave the window grouped by key; gathering each day before the write gives one file
    # per day, not one per day and task.
    # The time stamp is rebuilt from the seconds, not carried through the shuffle and sorts:
    # clean time stamps are whole seconds (fraudops.core.rawformat.TIMESTAMP_SHAPE).
    return with_features.where("_target").select(
        "transaction_id", mart.key, F.timestamp_seconds("_t").alias("tx_datetime"),
        PARTITION_COLUMN, *mart.flags(), *names
    ).hint("rebalance", PARTITION_COLUMN)


def prepared(clean: DataFrame, mart: Mart, target: Column) -> DataFrame:
    """Event time, the summed value (computed once here, not once per frame) and the flag of
    the rows whose features are wanted."""
    return clean.select("*", F.unix_seconds("tx_datetime").alias("_t"),
                        mart.value().alias("_v"), target.alias("_target"))


def is_day(day: str) -> Column:
    return F.col(PARTITION_COLUMN) == F.lit(day).cast("date")


def full_mart(clean: DataFrame, mart: Mart) -> DataFrame:
    """The mart of every row, from the rows themselves (their look-back included)."""
    return window_features(prepared(clean, mart, F.lit(True)), mart,
                           lambda w: (F.lit(1), F.col("_v")))
