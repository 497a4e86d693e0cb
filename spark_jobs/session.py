"""One way to get a SparkSession, the same on a laptop and in a SparkApplication pod."""

from __future__ import annotations

import contextlib
import importlib
import os
import sys
import threading

from pyspark.sql import SparkSession

from fraudops.core import config

# Settings every job relies on: UTC event time, idempotent partition overwrite, and a small
# shuffle width (the lake's daily batches are small; 200 partitions would mean 200 tiny files).
_DEFAULTS = {
    "spark.sql.session.timeZone": "UTC",
    "spark.sql.sources.partitionOverwriteMode": "dynamic",
    "spark.sql.shuffle.partitions": os.environ.get("FRAUDOPS_SHUFFLE_PARTITIONS", "8"),
    "spark.sql.adaptive.enabled": "true",
    "spark.sql.parquet.compression.codec": "zstd",
    # Parquet's dictionary pages cost more CPU than they save on these mostly distinct
    # values, and zstd alone makes smaller files; INT96 time
    # stamps are deprecated and slower to write than INT64 microseconds.
    "spark.hadoop.parquet.enable.dictionary": "false",
    # zstd's fastest level: faster clean and features than the default level 3 for somewhat
    # larger files (docs/performance.md).
    "spark.hadoop.parquet.compression.codec.zstd.level": "1",
    "spark.sql.parquet.outputTimestampType": "TIMESTAMP_MICROS",
    # The cleaning job caches one parsed batch for a few passes; compressing it cost as much
    # as parsing it.
    "spark.sql.inMemoryColumnarStorage.compressed": "false",
    "spark.ui.showConsoleProgress": "false",
    # These reach the local JVM at launch and a cluster's executors; a SparkApplication's
    # driver is started before this code runs, so the manifest carries the same options.
    "spark.driver.extraJavaOptions": config.SPARK_JVM_OPTIONS,
    "spark.executor.extraJavaOptions": config.SPARK_JVM_OPTIONS,
    "spark.driver.memory": os.environ.get("FRAUDOPS_DRIVER_MEMORY", "4g"),
}

# Settings of a session whose master is local (all of it in one JVM), whoever set the master:
# SQL settings, so they apply to a session already made.
_LOCAL_SQL_SETTINGS = {
    # Spark lists more than 32 paths (a batch's raw files or day folders) with a job of its
    # own, so that executors share the requests. In one local JVM that job runs on the same
    # cores and costs more than the driver's own listing.
    "spark.sql.sources.parallelPartitionDiscovery.threshold": "100000",
}


def launcher_sets_master() -> bool:
    """Whether whoever started Spark chose the master, so that this code must not override it.

    spark-submit (which the spark-operator runs in the driver pod) starts the JVM first and then
    this Python process, handing it the gateway's port. A plain `python -m` starts its own JVM,
    whose master PYSPARK_SUBMIT_ARGS may name.
    """
    if os.environ.get("PYSPARK_GATEWAY_PORT"):
        return True
    submit_args = os.environ.get("PYSPARK_SUBMIT_ARGS", "")
    return bool(os.environ.get("SPARK_MASTER")) or any(
        flag in submit_args for flag in ("--master", "spark.master"))


def session_settings(lake_root: str | None = None) -> dict[str, str]:
    """Every job's settings, and the S3A committers' where the lake is on S3."""
    return {**_DEFAULTS, **config.committer_settings(lake_root or config.default_lake_root())}


def import_in_background(modules: tuple[str, ...]) -> None:
    """Start importing ``modules`` in a thread, so that it overlaps the JVM's start.

    Python's per-module import lock makes a later ``import`` of one of them wait for this one
    and then reuse it; if this one fails, that import fails again in its own thread, with its
    own traceback.
    """
    for module in modules:
        threading.Thread(target=_try_import, args=(module,), name=f"import {module}",
                         daemon=True).start()


def _try_import(module: str) -> None:
    with contextlib.suppress(Exception):  # the job's own import reports it
        importlib.import_module(module)


def get_spark(app_name: str, lake_root: str | None = None,
              preload: tuple[str, ...] = ()) -> SparkSession:
    """The job's session; ``preload``: modules the job will import anyway (a model family's
    library), imported while the JVM starts."""
    import_in_background(preload)
    builder = SparkSession.builder.appName(f"fraudops-{app_name}")
    settings = session_settings(lake_root)
    if not launcher_sets_master():
        builder = builder.master(os.environ.get("FRAUDOPS_SPARK_MASTER", "local[*]"))
        # Python workers (xgboost.spark's training and prediction) run this interpreter, with
        # this environment's packages, not whichever python3 comes first on the PATH.
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
        local_options = os.environ.get(config.LOCAL_JVM_OPTIONS_ENV, "").strip()
        if local_options:  # the JVM this process starts is the whole of Spark
            settings["spark.driver.extraJavaOptions"] += f" {local_options}"
    for key, value in settings.items():
        builder = builder.config(key, value)
    endpoint = config.s3_endpoint()
    if endpoint:
        builder = builder.config("spark.hadoop.fs.s3a.endpoint", endpoint).config(
            "spark.hadoop.fs.s3a.path.style.access", "true"
        )
    spark = builder.getOrCreate()
    if spark.sparkContext.master.startswith("local"):
        for key, value in _LOCAL_SQL_SETTINGS.items():
            spark.conf.set(key, value)
    spark.sparkContext.setLogLevel(os.environ.get("FRAUDOPS_SPARK_LOG_LEVEL", "WARN"))
    return spark

