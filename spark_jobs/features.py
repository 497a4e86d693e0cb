"""Feature job: the customer and terminal marts for the days that changed, and no others.

    python -m spark_jobs.features --lake-root data/lake --run-id <clean run>   # after clean
    python -m spark_jobs.features --dates 2018-05-01,2018-05-02                 # by hand

Customer mart (per transaction): count and mean amount of the customer's transactions in the
last 1, 7 and 30 days, the transaction itself included, plus weekend and night flags.
Terminal mart (per transaction): count and fraud ratio of the terminal's transactions in 1, 7
and 30-day windows that end 7 days before the transaction: labels of the last 7 days are not
known yet when a transaction is scored. Both are event-time range windows over epoch seconds.
Transactions in the same second are in transaction id order, as in the handbook's rolling
windows: a window holds what came before its transaction (earlier, or in the same second with
a lower id) and the transaction itself, never a later id of the same second.

A changed day moves the features of the 37 days after it, so those are recomputed too, from
the 37 days before the first recomputed day, never the whole history.

The daily step (one new day, the newest) reads less still. A window of w days that ends at
time t of day d covers part of day d (the upper edge), w - 1 full days, and part of day d - w
(the lower edge). Per customer and per terminal the job keeps the count and value sums of
those full days (under _state/windows: yesterday's sums, plus the day that enters, minus the
days that leave), so it reads the edge days only: 4 clean days per mart whatever the length of
history. Both ways run the same window sums over weighted rows and give the same marts;
amounts are summed as whole cents, so the running sums are exact.

The marts of a run are written as a version of its own and published together by one fenced
commit of _state/marts.json (fraudops.core.publication): a run that dies before it leaves the
marts readers see as they were.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, fields

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T
from pyspark.sql.window import Window

from fraudops.core import cli, faults, lease, scored, storage
from fraudops.core import pending as pending_work
from fraudops.core.lake import PARTITION_COLUMN, Lake, shift, write_version
from fraudops.core.publication import collect
from fraudops.core.rawformat import DAY_SECONDS
from spark_jobs import marts, schema
from spark_jobs.datasets import (
    clean_days,
    read_clean,
    read_partitions,
    stage_days,
)
from spark_jobs.marts import LOOKBACK_DAYS, MartLayout, days_to_recompute
from spark_jobs.schema import (
    CLEAN_SCHEMA,
    LABEL_DELAY_DAYS,
    WINDOWS_DAYS,
)

log = logging.getLogger(__name__)

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
    # clean time stamps are whole seconds (clean.TIMESTAMP_SHAPE).
    return with_features.where("_target").select(
        "transaction_id", mart.key, F.timestamp_seconds("_t").alias("tx_datetime"),
        PARTITION_COLUMN, *mart.flags(), *names
    ).hint("rebalance", PARTITION_COLUMN)


def _prepared(clean: DataFrame, mart: Mart, target: Column) -> DataFrame:
    """Event time, the summed value (computed once here, not once per frame) and the flag of
    the rows whose features are wanted."""
    return clean.select("*", F.unix_seconds("tx_datetime").alias("_t"),
                        mart.value().alias("_v"), target.alias("_target"))


def _is_day(day: str) -> Column:
    return F.col(PARTITION_COLUMN) == F.lit(day).cast("date")


def full_mart(clean: DataFrame, mart: Mart) -> DataFrame:
    """The mart of every row, from the rows themselves (their look-back included)."""
    return window_features(_prepared(clean, mart, F.lit(True)), mart,
                           lambda w: (F.lit(1), F.col("_v")))


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
        return F.when(_is_day(lower[1]), 1).when(_is_day(lower[w]), -1).otherwise(0)
    return _sums([previous, _signed(edges, mart, sign)], mart)


def daily_mart(spark: SparkSession, lake: Lake, mart: Mart, day: str,
               available: list[str]) -> DataFrame:
    """The mart of ``day`` from its edge days and the stored full-day sums (see the module
    docstring); writes the sums for the next day's step."""
    upper, lower = mart.edges(day)
    edge_days = sorted({day, upper, *lower.values()} & set(available))
    edges = _prepared(read_partitions(spark, lake.clean, edge_days, CLEAN_SCHEMA), mart,
                      _is_day(day))
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


def each_mart(build: Callable[[Mart], None]) -> None:
    """Build both marts at once, each from its own driver thread.

    A mart's stages end with fewer running tasks than cores: the last task of a stage, or a
    stage that adaptive execution coalesced to fewer tasks than cores. Built one after the
    other on 2 cores, the marts left one core idle for 5.7 to 8.6 s of the features job's
    36.7 to 55.1 s (10 M rows, seven runs); built at once, Spark hands that core the other
    mart's tasks (0.4 to 0.9 s left idle) for the same task CPU time. The marts share nothing
    they write: each has its own folders and window sums.
    """
    with ThreadPoolExecutor(len(MARTS), thread_name_prefix="mart") as pool:
        for _ in pool.map(build, MARTS):  # re-raises a failure once both have ended
            pass


def run(spark: SparkSession, lake: Lake, changed: list[str], run_id: str | None = None) -> dict:
    """Rebuild the marts of ``changed`` and of every day clean left pending, holding the lake's
    lease; pending days are dropped only once their marts are written."""
    with lease.held(lake, "features", run_id or cli.run_id(None)) as held:
        owed = pending_work.features_days(lake)
        if set(owed) - set(changed):
            log.info("also rebuilding days an earlier run left pending: %s",
                     cli.span(sorted(set(owed) - set(changed))))
        todo = sorted(set(changed) | set(owed))
        summary = _run(spark, lake, todo, write_version(held.run_id, held.token))
        scored.owe(lake, scored.rebuild_reasons(todo, summary["days"], summary["deleted_days"]),
                   run_id or "(by hand)")
        faults.point("features.after_marts")
        held.check()
        pending_work.remove_features_days(lake, todo)
        return summary


def _run(spark: SparkSession, lake: Lake, changed: list[str], version: str) -> dict:
    """Write the marts of the days to recompute as ``version``, then publish them and drop the
    deleted days' in one commit of the marts' index."""
    index = lease.read_state(lake, lake.marts_index, default={}) or {}
    summary = _write(spark, lake, changed, version)
    days, deleted = summary["days"], summary["deleted_days"]
    if days or deleted:
        for mart in MARTS:
            versions = {d: v for d, v in index.get(mart.name, {}).items() if d not in deleted}
            index[mart.name] = dict(sorted({**versions, **dict.fromkeys(days, version)}.items()))
        lease.write_state(lake, lake.marts_index, index)  # the commit
        faults.point("features.after_commit")
        for mart in MARTS:
            collect(mart.path(lake), days, removed=deleted)
    return summary


def _write(spark: SparkSession, lake: Lake, changed: list[str], version: str) -> dict:
    available = clean_days(lake)
    days = days_to_recompute(changed, available)
    deleted = sorted(set(changed) - set(available))  # days whose rows were all quarantined
    forget_changed_sums(lake, changed)
    faults.point("features.before_writes")
    lease.fence(lake)  # a run that stalled past its lease writes no data
    daily = bool(days) and not deleted and can_step_daily(lake, days, available)
    summary = {"days": days, "deleted_days": deleted, "daily_step": daily}
    if deleted:
        log.info("removing features of days without clean rows: %s", cli.span(deleted))
    if not days:
        log.info("no day to (re)compute")
        return summary
    if daily:
        day = days[0]
        log.info("daily step for %s: edge days and stored window sums only", day)
        each_mart(lambda mart: stage_days(daily_mart(spark, lake, mart, day, available),
                                          mart.path(lake), set(days), version))
        return summary
    start, end = days[0], days[-1]
    log.info("computing features for %d day(s) %s..%s, reading clean from %s", len(days),
             start, end, shift(start, -LOOKBACK_DAYS))
    clean = read_clean(spark, lake, shift(start, -LOOKBACK_DAYS), end).select(
        "transaction_id", "customer_id", "terminal_id", "tx_datetime", "tx_amount", "tx_fraud",
        PARTITION_COLUMN,
    )

    def build(mart: Mart) -> None:
        stage_days(full_mart(clean, mart), mart.path(lake), set(days), version)
        if end == available[-1]:  # the next daily step starts from these sums
            save_sums(lake, mart, full_day_sums(clean, mart, mart.sums_day(end)),
                      mart.sums_day(end), keep=[])
    each_mart(build)
    return summary


def changed_days_of(lake: Lake, clean_run_id: str) -> list[str]:
    summary = storage.read_json(lake.run_summary("clean", clean_run_id))
    if summary is None:
        raise SystemExit(
            f"no clean summary for run {clean_run_id!r} at "
            f"{lake.run_summary('clean', clean_run_id)}: run spark_jobs.clean with that "
            f"--run-id first, or pass --dates/--all"
        )
    return summary["changed_dates"]


def main(argv: list[str] | None = None) -> dict:
    parser = cli.parser(__doc__.split("\n\n")[0])
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--dates", help="comma-separated days that changed (instead of the "
                       "clean run's summary)")
    which.add_argument("--all", action="store_true", help="recompute every clean day")
    args = parser.parse_args(argv)
    cli.setup_logging()
    lake = Lake.from_env(args.lake_root)
    if args.all:
        changed = clean_days(lake)
    elif args.dates:
        changed = sorted(cli.date_arg(d.strip()).isoformat() for d in args.dates.split(","))
    elif args.run_id:
        changed = changed_days_of(lake, args.run_id)
    else:
        parser.error("say which days changed: --run-id of a clean run, --dates or --all")
    run_id = cli.run_id(args.run_id)
    done = storage.read_json(lake.run_summary("features", run_id))
    if done is not None:  # a retry after success: the marts it wrote stand
        if done.get("requested", changed) != changed:
            raise SystemExit(
                f"features run {run_id} finished for the days {done['requested']}, not "
                f"{changed}: give this request a run id of its own")
        log.info("run %s built its features already: %s", run_id, done)
        print(json.dumps(done))
        return done
    from spark_jobs.session import get_spark

    summary = {**run(get_spark("features", lake.root), lake, changed, run_id),
               "requested": changed}  # what a retry must ask for to get this summary back
    storage.write_json(lake.run_summary("features", run_id), summary)
    print(json.dumps(summary))
    return summary


if __name__ == "__main__":
    main()
