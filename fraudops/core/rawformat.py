"""The raw daily files' text format and the rules a row must meet: facts that need no Spark."""

from __future__ import annotations

# The header line, misspelling included: files are checked against it.
RAW_HEADER = (
    "# tranaction_id | tx_datetime | customer_id | terminal_id | tx_amount | "
    "tx_time_seconds | tx_time_days | tx_fraud | tx_fraud_scenario"
)

DAY_SECONDS = 86_400  # tx_time_seconds and windows count whole days of these

# Field names in file order (the Spark types are in spark_jobs.schema.RAW_FIELDS).
RAW_COLUMNS = [
    "transaction_id", "tx_datetime", "customer_id", "terminal_id", "tx_amount",
    "tx_time_seconds", "tx_time_days", "tx_fraud", "tx_fraud_scenario",
]

# Row rules in the order they are checked; a row is quarantined with the first it breaks.
TOO_FEW_FIELDS = "too_few_fields"
TOO_MANY_FIELDS = "too_many_fields"
EMPTY_FIELD = "empty_field"
NON_NUMERIC = "non_numeric"
BAD_TIMESTAMP = "bad_timestamp"
WRONG_DAY = "wrong_day"
NEGATIVE_ID = "negative_id"
NEGATIVE_AMOUNT = "negative_amount"  # below zero: a zero amount is a valid transaction
AMOUNT_TOO_LARGE = "amount_too_large"
INVALID_LABEL = "invalid_label"
DUPLICATE_ID = "duplicate_id"
ROW_REASONS = (
    TOO_FEW_FIELDS, TOO_MANY_FIELDS, EMPTY_FIELD, NON_NUMERIC, BAD_TIMESTAMP, WRONG_DAY,
    NEGATIVE_ID, NEGATIVE_AMOUNT, AMOUNT_TOO_LARGE, INVALID_LABEL, DUPLICATE_ID,
)
# The feature job sums amounts as whole cents in 64-bit integers; below a billion, a sum
# overflows only past 90 million transactions of one customer.
MAX_AMOUNT = 1_000_000_000
# A time stamp's shape, yyyy-MM-dd HH:mm:ss; one of that shape that is no real time (24:00:00,
# 02-30) is a bad time stamp too.
TIMESTAMP_SHAPE = r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$"
