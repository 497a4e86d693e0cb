"""Feature job: the customer and terminal marts for the days that changed, and no others.

    python -m spark_jobs.features --lake-root data/lake --run-id <clean run>   # after clean
    python -m spark_jobs.features --dates 2018-05-01,2018-05-02                 # by hand

Customer mart (per transaction): count and mean amount of the customer's transactions in the
last 1, 7 and 30 days, the transaction itself included, plus weekend and night flags.
Terminal mart (per transaction): count and fraud ratio of the terminal's transactions in 1, 7
and 30-day windows that end 7 days before the transaction: labels of the last 7 days are not
known yet when a transaction is scored. Both are event-time range windows over epoch seconds.

A changed day moves the features of the 37 days after it, so those are recomputed too. Only
the 37 days before the first recomputed day are read, never the whole history.
"""

from __future__ import annotations

import json
import logging

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.window import Window

from spark_jobs import cli, storage
from spark_jobs.datasets import clean_days, day_range, read_clean, shift, write_days
from spark_jobs.lake import PARTITION_COLUMN, Lake
from spark_jobs.schema import LABEL_DELAY_DAYS, WINDOWS_DAYS

log = logging.getLogger("fraudops.features")

DAY = 86_400
LOOKBACK_DAYS = max(WINDOWS_DAYS) + LABEL_DELAY_DAYS  # the furthest back any feature looks


def _seconds() -> Column:
    return F.unix_seconds("tx_datetime")


def customer_mart(clean: DataFrame) -> DataFrame:
    """One shuffle and one sort: every frame shares the (customer, time) ordering."""
    by_customer = Window.partitionBy("customer_id").orderBy(_seconds())
    features = []
    for w in WINDOWS_DAYS:
        frame = by_customer.rangeBetween(-(w * DAY - 1), 0)  # (t - w days, t]
        features += [
            F.count("*").over(frame).alias(f"customer_id_nb_tx_{w}day_window"),
            F.avg("tx_amount").over(frame).alias(f"customer_id_avg_amount_{w}day_window"),
        ]
    return clean.select(
        "transaction_id",
        "customer_id",
        "tx_datetime",
        PARTITION_COLUMN,
        F.dayofweek("tx_datetime").isin(1, 7).cast("int").alias("tx_during_weekend"),
        (F.hour("tx_datetime") <= 6).cast("int").alias("tx_during_night"),
        *features,
    )


def terminal_mart(clean: DataFrame) -> DataFrame:
    by_terminal = Window.partitionBy("terminal_id").orderBy(_seconds())
    delay = LABEL_DELAY_DAYS * DAY
    features = []
    for w in WINDOWS_DAYS:
        frame = by_terminal.rangeBetween(-(delay + w * DAY - 1), -delay)  # (t-7-w d, t-7 d]
        n_tx = F.count("*").over(frame)
        n_fraud = F.sum("tx_fraud").over(frame)
        features += [
            n_tx.alias(f"terminal_id_nb_tx_{w}day_window"),
            F.when(n_tx > 0, n_fraud / n_tx).otherwise(F.lit(0.0))
            .alias(f"terminal_id_risk_{w}day_window"),
        ]
    return clean.select(
        "transaction_id", "terminal_id", "tx_datetime", PARTITION_COLUMN, *features
    )


def days_to_recompute(changed: list[str], available: list[str]) -> list[str]:
    """The changed days and every available day whose windows reach back into one of them."""
    if not changed:
        return []
    reach = {d for c in changed for d in day_range(c, shift(c, LOOKBACK_DAYS))}
    return sorted(d for d in available if d in reach)


def run(spark: SparkSession, lake: Lake, changed: list[str]) -> dict:
    available = clean_days(lake)
    days = days_to_recompute(changed, available)
    deleted = sorted(set(changed) - set(available))  # days whose rows were all quarantined
    summary = {"days": days, "deleted_days": deleted}
    if deleted:
        log.info("removing features of days without clean rows: %s", cli.span(deleted))
        for path in (lake.customer_features, lake.terminal_features):
            write_days(None, path, deleted, set())
    if not days:
        log.info("no day to (re)compute")
        return summary
    start, end = days[0], days[-1]
    log.info("computing features for %d day(s) %s..%s, reading clean from %s", len(days),
             start, end, shift(start, -LOOKBACK_DAYS))
    clean = read_clean(spark, lake, shift(start, -LOOKBACK_DAYS), end).select(
        "transaction_id", "customer_id", "terminal_id", "tx_datetime", "tx_amount", "tx_fraud",
        PARTITION_COLUMN,
    )
    write_days(customer_mart(clean), lake.customer_features, days, set(days))
    write_days(terminal_mart(clean), lake.terminal_features, days, set(days))
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
    from spark_jobs.spark import get_spark

    summary = run(get_spark("features"), lake, changed)
    run_id = cli.run_id(args.run_id)
    storage.write_json(lake.run_summary("features", run_id), summary)
    print(json.dumps(summary))
    return summary


if __name__ == "__main__":
    main()
