"""The least work any Spark version of clean + features has to do on a lake: the floor that
`make bench` sets the jobs' time against.

- Clean: read the raw files' lines, split and cast the fields, write Parquet by day. No rules,
  no duplicate ids, no quarantine, no accounting, nothing cached.
- Each mart: read the clean columns the mart reads, shuffle by key and sort by key and time
  (any event-time window in Spark needs that order), then write rows of the mart's width by
  day. The feature columns are arithmetic on the summed value, not window sums. Both marts
  are built at once, as the features job builds them, and timed together.

The floor runs after the jobs, in the same JVM (already compiled): its time is a lower bound.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from pyspark.sql import Column, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from benchmarks.timing import timed
from fraudops.core import rawfiles
from fraudops.core.lake import PARTITION_COLUMN, Lake
from spark_jobs.features import each_mart
from spark_jobs.schema import RAW_FIELDS, RAW_HEADER
from spark_jobs.windows import Mart, key_time_order


def clean_floor(spark: SparkSession, raw_paths: list[str], out: str) -> None:
    parts = F.split("value", ",", -1)
    spark.read.text(raw_paths).where(F.col("value") != RAW_HEADER).select(
        *[F.trim(F.get(parts, i)).try_cast(dtype).alias(name)
          for i, (name, dtype) in enumerate(RAW_FIELDS)]
    ).withColumn(PARTITION_COLUMN, F.to_date("tx_datetime")).write.partitionBy(
        PARTITION_COLUMN).parquet(out)


def _placeholder(i: int, dtype: T.DataType) -> Column:
    """A value per row of the feature's type, different from its neighbours' as features are."""
    value = F.col("_v") + i
    return (value / 3.0) if isinstance(dtype, T.DoubleType) else value.cast(dtype)


def mart_floor(spark: SparkSession, clean_dir: str, mart: Mart, out: str) -> None:
    rows = spark.read.parquet(clean_dir).select(
        "transaction_id", mart.key, PARTITION_COLUMN,
        F.unix_seconds("tx_datetime").alias("_t"), mart.value().alias("_v"))
    ordered = rows.repartition(mart.key).sortWithinPartitions(key_time_order(mart.key))
    features = [_placeholder(i, field.dataType).alias(field.name)
                for i, field in enumerate(mart.feature_fields)]
    ordered.select("transaction_id", mart.key, F.timestamp_seconds("_t").alias("tx_datetime"),
                   PARTITION_COLUMN, *features).hint("rebalance", PARTITION_COLUMN).write \
        .partitionBy(PARTITION_COLUMN).parquet(out)


def run(spark: SparkSession, lake: Lake, workdir: Path) -> dict[str, float]:
    """Seconds of each part of the floor on the lake's raw files."""
    shutil.rmtree(workdir, ignore_errors=True)
    clean_dir = str(workdir / "clean")
    # By name, as the cleaning job reads them (given a glob, Spark would also probe it for a
    # streaming-metadata folder and log a stack trace when there is none).
    raw_paths = [entry.path for entry in rawfiles.arrived_files(lake, None)[0]]
    seconds = {"clean": timed(clean_floor, spark, raw_paths, clean_dir)[0]}
    seconds["marts"] = timed(each_mart, lambda mart: mart_floor(
        spark, clean_dir, mart, str(workdir / mart.name)))[0]
    return seconds
