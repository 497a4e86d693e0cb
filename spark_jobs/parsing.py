"""Raw lines to typed rows, each with the first rule it breaks (docs/data-rules.md).

The cleaning job's first pass: read_lines gives one row per data line with its reading
position and its file's day; parse types the fields (null where a value does not parse) and
names the first rule broken, or none. Nothing here decides between rows: repeated ids are
spark_jobs.dedup's.
"""

from __future__ import annotations

import calendar
import datetime as dt
import functools
import operator

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from fraudops.core import rawfiles
from fraudops.core.lake import PARTITION_COLUMN
from fraudops.core.rawformat import (
    AMOUNT_TOO_LARGE,
    BAD_TIMESTAMP,
    DAY_SECONDS,
    EMPTY_FIELD,
    INVALID_LABEL,
    MAX_AMOUNT,
    NEGATIVE_AMOUNT,
    NEGATIVE_ID,
    NON_NUMERIC,
    TIMESTAMP_SHAPE,
    TOO_FEW_FIELDS,
    TOO_MANY_FIELDS,
    WRONG_DAY,
)
from spark_jobs.datasets import local_frame
from spark_jobs.schema import (
    RAW_COLUMNS,
    RAW_FIELDS,
    RAW_HEADER,
)

_FILES_SCHEMA = T.StructType([
    T.StructField("source_file", T.StringType()), T.StructField(PARTITION_COLUMN, T.DateType()),
    T.StructField("day_start", T.LongType()), T.StructField("file_reason", T.StringType())])

# Rises by one per line of a file read in one part (see spark_jobs.dedup.id_spans).
POSITION = "_position"
_N_FIELDS = len(RAW_FIELDS)


def read_lines(spark: SparkSession, files: list[rawfiles.RawFile]) -> DataFrame:
    """One row per data line: the line, its reading position, its file's day, and any
    file-level reason.

    A raw file is named after its day, so the day stands for the file from here on.
    """
    files_df = local_frame(
        spark,
        [(f.name, dt.date.fromisoformat(f.day), _epoch_seconds(f.day), f.file_reason)
         for f in files],
        _FILES_SCHEMA,
    )
    lines = (
        spark.read.option("lineSep", "\n")
        .text([f.path for f in files])
        .select(
            # A line ends at LF; the CRs before it (CRLF, CR CR LF) are not part of it, as
            # for the driver's count (rawfiles.inspect).
            F.expr("trim(TRAILING '\\r' FROM value)").alias("line"),
            F.monotonically_increasing_id().alias(POSITION),
            F.col("_metadata.file_name").alias("source_file"),
        )
        .join(F.broadcast(files_df), "source_file")
        .drop("source_file")
    )
    # Header lines are not data; a file whose header is wrong has none (all its lines enter).
    return lines.where(F.col("file_reason").isNotNull() | (F.col("line") != RAW_HEADER))


def _epoch_seconds(day: str) -> int:
    """Midnight UTC of ``day`` (the session time zone, see spark_jobs.session)."""
    return calendar.timegm(dt.date.fromisoformat(day).timetuple())


def any_of(conditions) -> Column:
    """OR of plain column conditions: compiled by Spark, unlike a lambda over an array."""
    return functools.reduce(operator.or_, conditions)


def parse(lines: DataFrame) -> DataFrame:
    """Typed columns (null where a value does not parse) and the first row rule broken.

    Three projections, each over the columns of the one before: the fields as text, then as
    types, then the rule. In a single projection Spark would split, trim and cast the line
    again inside every branch of the rule (it does not share subexpressions with conditional
    branches), a large share of the parse time.
    """
    parts = F.split("line", ",", -1)
    text = lines.select(
        "line", POSITION, PARTITION_COLUMN, "day_start", "file_reason",
        F.size(parts).alias("_n_fields"),
        *[F.trim(F.get(parts, i)).alias(_text(name)) for i, (name, _) in enumerate(RAW_FIELDS)],
    )
    # Once a timestamp has the shape yyyy-MM-dd HH:mm:ss, a cast parses it exactly as that
    # format would (24:00:00 or 02-30 give null), without a date-time formatter per row.
    typed = text.select(
        "*",
        *[F.col(_text(name)).try_cast(dtype).alias(name) for name, dtype in RAW_FIELDS],
        F.col(_text("tx_datetime")).rlike(TIMESTAMP_SHAPE).alias("_ts_shape"),
    )
    col = F.col
    numeric = [name for name, _ in RAW_FIELDS if name != "tx_datetime"]
    not_numeric = any_of(col(name).isNull() for name in numeric) | F.isnan(
        col("tx_amount")) | (F.abs(col("tx_amount")) == float("inf"))
    reason = (
        F.when(col("file_reason").isNotNull(), col("file_reason"))
        .when(col("_n_fields") < _N_FIELDS, TOO_FEW_FIELDS)
        .when(col("_n_fields") > _N_FIELDS, TOO_MANY_FIELDS)
        .when(any_of(col(_text(name)) == "" for name, _ in RAW_FIELDS), EMPTY_FIELD)
        .when(not_numeric, NON_NUMERIC)
        .when(~col("_ts_shape") | col("tx_datetime").isNull(), BAD_TIMESTAMP)
        .when(~(F.unix_seconds(col("tx_datetime")) - col("day_start"))
              .between(0, DAY_SECONDS - 1), WRONG_DAY)
        .when((col("transaction_id") < 0) | (col("customer_id") < 0) | (col("terminal_id") < 0),
              NEGATIVE_ID)
        .when(col("tx_amount") < 0, NEGATIVE_AMOUNT)
        .when(col("tx_amount") >= MAX_AMOUNT, AMOUNT_TOO_LARGE)
        .when(~col("tx_fraud").isin(0, 1) | ~col("tx_fraud_scenario").between(0, 3),
              INVALID_LABEL)
    )
    return typed.select(
        "line", POSITION, PARTITION_COLUMN, *RAW_COLUMNS, reason.alias("reason"),
    )


def _text(name: str) -> str:
    return f"_{name}_text"
