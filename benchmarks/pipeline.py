"""`make bench`: throughput of generate, clean and features, Spark against DuckDB and against the
least work any Spark version must do (benchmarks.spark_floor), and the cost of one daily step
with 10, 40 and 60 days of history, each the median of three consecutive days (the features'
look-back is full from 37 days on). Not a test: it prints and writes figures.

    python -m benchmarks.pipeline --rows 10000000

Writes .bench/results.json; every figure is measured in this run, ratios from the same run.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import statistics
from pathlib import Path

from benchmarks import duckdb_reference, spark_floor
from benchmarks.figures import publish
from benchmarks.timing import timed
from fraudops.core.lake import Lake
from fraudops.simulator import generate
from spark_jobs import clean, features
from spark_jobs.datasets import clean_days

log = logging.getLogger(__name__)

# 50,000 customers with the handbook's profiles make about 95,000 transactions a day.
ROWS_PER_CUSTOMER_DAY = 1.9
HISTORIES = (10, 40, 60)  # days of history; from 37 on, the features' look-back is full
# One daily step takes seconds, and a single one moved by a third between runs: each figure is
# the median of this many consecutive days on the same history.
DAILY_REPEATS = 3


def history_lake(source: Lake, target: Path, days: list[str]) -> Lake:
    """A lake whose raw folder holds ``days`` of ``source`` (hard links: no copy)."""
    shutil.rmtree(target, ignore_errors=True)
    lake = Lake(str(target))
    os.makedirs(lake.raw)
    for day in days:
        os.link(source.raw_file(day), lake.raw_file(day))
    return lake


def daily_step(spark, lake: Lake, new_day: str) -> float:
    """Seconds for clean + features of one new day on top of the lake's history."""
    seconds, summary = timed(clean.run, lake, new_day, f"bench-{new_day}", spark)
    assert summary["changed_dates"] == [new_day], summary["changed_dates"]
    seconds += timed(features.run, spark, lake, [new_day])[0]
    return seconds


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=10_000_000, help="rows in the big lake")
    parser.add_argument("--customers", type=int, default=50_000)
    parser.add_argument("--terminals", type=int, default=10_000)
    parser.add_argument("--workdir", type=Path, default=Path(".bench/work"))
    parser.add_argument("--output", type=Path, default=Path(".bench/results.json"))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    os.environ.setdefault("FRAUDOPS_SHUFFLE_PARTITIONS", "8")
    from spark_jobs.session import get_spark

    shutil.rmtree(args.workdir, ignore_errors=True)
    args.workdir.mkdir(parents=True)
    days = max(max(HISTORIES) + DAILY_REPEATS,
               round(args.rows / (args.customers * ROWS_PER_CUSTOMER_DAY)))
    big = Lake(str(args.workdir / "big"))
    log.info("generating %d days for %d customers", days, args.customers)
    gen_s, gen = timed(generate.generate_lake, big, days=days, customers=args.customers,
                       terminals=args.terminals, seed=1)
    rows = gen["transactions"]

    spark = get_spark("bench")
    spark.range(1).count()  # JVM warm-up is not the jobs' cost
    log.info("spark clean of %d rows", rows)
    clean_s, summary = timed(clean.run, big, None, "bench", spark)
    assert summary["rows_in"] == rows
    log.info("spark features of %d days", len(clean_days(big)))
    features_s, _ = timed(features.run, spark, big, clean_days(big))

    log.info("spark floor: parse and write, then shuffle, sort and write both marts")
    floor = spark_floor.run(spark, big, args.workdir / "floor")
    log.info("spark floor: %s", {k: round(v, 1) for k, v in floor.items()})
    floor_s = sum(floor.values())

    log.info("duckdb clean + features on the same files")
    duck_dir = args.workdir / "duckdb"
    duck_dir.mkdir()
    duck_s, duck_counts = timed(duckdb_reference.run, big.raw_glob, str(duck_dir))
    assert duck_counts.get("clean") == summary["rows_clean"], (duck_counts, summary)

    all_days = clean_days(big)  # every generated day: the big lake has no defects
    step = {}
    for history in HISTORIES:
        lake = history_lake(big, args.workdir / f"daily{history}",
                            all_days[: history + DAILY_REPEATS])
        clean.run(lake, all_days[history - 1], "history", spark)
        features.run(spark, lake, clean_days(lake))
        log.info("daily steps with %d days of history", history)
        step[history] = statistics.median(daily_step(spark, lake, all_days[history + i])
                                          for i in range(DAILY_REPEATS))
    spark.stop()

    results = {
        "rows": rows,
        "days": days,
        "generate_rows_per_s": rows / gen_s,
        "clean_rows_per_s": rows / clean_s,
        "features_rows_per_s": rows / features_s,
        "clean_plus_features_rows_per_s": rows / (clean_s + features_s),
        "spark_clean_plus_features_s": clean_s + features_s,
        "duckdb_clean_plus_features_s": duck_s,
        "spark_vs_duckdb_time_ratio": (clean_s + features_s) / duck_s,
        "spark_floor_s": floor_s,
        "spark_floor_rows_per_s": rows / floor_s,
        "spark_vs_floor_time_ratio": (clean_s + features_s) / floor_s,
        "daily_step_10_days_s": step[10],
        "daily_step_40_days_s": step[40],
        "daily_step_60_days_s": step[60],
        "daily_step_ratio_60_vs_10": step[60] / step[10],
        # Once the look-back is full, more history should cost nothing more.
        "daily_step_ratio_60_vs_40": step[60] / step[40],
    }
    publish(results, args.output)
    return results


if __name__ == "__main__":
    main()
