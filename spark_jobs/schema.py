"""Column names and types of the raw files, the clean table and the feature marts."""

from __future__ import annotations

from pyspark.sql import types as T

from fraudops.core.lake import PARTITION_COLUMN
from fraudops.core.rawformat import RAW_COLUMNS, RAW_HEADER

__all__ = ["RAW_COLUMNS", "RAW_HEADER"]  # re-exported: the Spark side reads the format from here

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

WINDOWS_DAYS = (1, 7, 30)
LABEL_DELAY_DAYS = 7
WEEKEND_FLAG = "tx_during_weekend"
NIGHT_FLAG = "tx_during_night"
NIGHT_END_HOUR = 7  # the night is 00:00:00 to 06:59:59


def customer_nb_tx(w: int) -> str:
    return f"customer_id_nb_tx_{w}day_window"


def customer_avg_amount(w: int) -> str:
    return f"customer_id_avg_amount_{w}day_window"


def terminal_nb_tx(w: int) -> str:
    return f"terminal_id_nb_tx_{w}day_window"


def terminal_risk(w: int) -> str:
    return f"terminal_id_risk_{w}day_window"


# The marts' feature columns, in the order they are written; the model's columns and the marts'
# Parquet schemas (spark_jobs.features.Mart) are both built from these.
CUSTOMER_FEATURE_FIELDS = (
    [T.StructField(f, T.IntegerType()) for f in (WEEKEND_FLAG, NIGHT_FLAG)]
    + [T.StructField(customer_nb_tx(w), T.LongType()) for w in WINDOWS_DAYS]
    + [T.StructField(customer_avg_amount(w), T.DoubleType()) for w in WINDOWS_DAYS]
)
TERMINAL_FEATURE_FIELDS = (
    [T.StructField(terminal_nb_tx(w), T.LongType()) for w in WINDOWS_DAYS]
    + [T.StructField(terminal_risk(w), T.DoubleType()) for w in WINDOWS_DAYS]
)
CUSTOMER_FEATURES = [f.name for f in CUSTOMER_FEATURE_FIELDS]
TERMINAL_FEATURES = [f.name for f in TERMINAL_FEATURE_FIELDS]
# What the model sees: the handbook's 15 features.
MODEL_FEATURES = ["tx_amount", *CUSTOMER_FEATURES, *TERMINAL_FEATURES]
KEYS = ["transaction_id", PARTITION_COLUMN]


def mart_schema(key: str, feature_fields: list[T.StructField]) -> T.StructType:
    """A mart's rows: the join keys, its entity key and event time (typed as in the clean
    table), then its features."""
    return T.StructType(
        [T.StructField(name, CLEAN_SCHEMA[name].dataType) for name in (*KEYS, key, "tx_datetime")]
        + feature_fields
    )

