"""Column types of the raw files, the clean table and the feature marts (their names are in
fraudops.core.columns and fraudops.core.rawformat, re-exported here for the Spark jobs)."""

from __future__ import annotations

from pyspark.sql import types as T

from fraudops.core.columns import (
    CUSTOMER_FEATURES,
    KEYS,
    LABEL_DELAY_DAYS,
    MODEL_FEATURES,
    NIGHT_END_HOUR,
    NIGHT_FLAG,
    TERMINAL_FEATURES,
    WEEKEND_FLAG,
    WINDOWS_DAYS,
    customer_avg_amount,
    customer_nb_tx,
    terminal_nb_tx,
    terminal_risk,
)
from fraudops.core.lake import PARTITION_COLUMN
from fraudops.core.rawformat import RAW_COLUMNS, RAW_HEADER

# Re-exported: the Spark side reads the names from here, with their types.
__all__ = [
    "CUSTOMER_FEATURES", "KEYS", "LABEL_DELAY_DAYS", "MODEL_FEATURES", "NIGHT_END_HOUR",
    "NIGHT_FLAG", "RAW_COLUMNS", "RAW_HEADER", "TERMINAL_FEATURES", "WEEKEND_FLAG",
    "WINDOWS_DAYS", "customer_avg_amount", "customer_nb_tx", "terminal_nb_tx", "terminal_risk",
]

# Raw field order and the type each is parsed into. Parsing is explicit: never inferred.
_RAW_TYPES = (
    T.LongType(), T.TimestampType(), T.LongType(), T.LongType(), T.DoubleType(), T.LongType(),
    T.IntegerType(), T.IntegerType(), T.IntegerType(),
)
RAW_FIELDS: list[tuple[str, T.DataType]] = list(zip(RAW_COLUMNS, _RAW_TYPES, strict=True))

CLEAN_SCHEMA = T.StructType(
    [T.StructField(name, dtype, nullable=False) for name, dtype in RAW_FIELDS]
    + [T.StructField(PARTITION_COLUMN, T.DateType(), nullable=False)]
)

QUARANTINE_SCHEMA = T.StructType(
    [
        T.StructField("source_file", T.StringType()),
        T.StructField("line", T.StringType()),
        T.StructField("reason", T.StringType()),
        T.StructField("run_id", T.StringType()),
        T.StructField(PARTITION_COLUMN, T.DateType()),
    ]
)

# The marts' feature columns with their types, in the order they are written (the names'
# order is fraudops.core.columns'; tests/spark_jobs/test_schema.py checks they agree): the
# marts' Parquet schemas (spark_jobs.windows.Mart) are built from these.
CUSTOMER_FEATURE_FIELDS = (
    [T.StructField(f, T.IntegerType()) for f in (WEEKEND_FLAG, NIGHT_FLAG)]
    + [T.StructField(customer_nb_tx(w), T.LongType()) for w in WINDOWS_DAYS]
    + [T.StructField(customer_avg_amount(w), T.DoubleType()) for w in WINDOWS_DAYS]
)
TERMINAL_FEATURE_FIELDS = (
    [T.StructField(terminal_nb_tx(w), T.LongType()) for w in WINDOWS_DAYS]
    + [T.StructField(terminal_risk(w), T.DoubleType()) for w in WINDOWS_DAYS]
)


def mart_schema(key: str, feature_fields: list[T.StructField]) -> T.StructType:
    """A mart's rows: the join keys, its entity key and event time (typed as in the clean
    table), then its features."""
    return T.StructType(
        [T.StructField(name, CLEAN_SCHEMA[name].dataType) for name in (*KEYS, key, "tx_datetime")]
        + feature_fields
    )

