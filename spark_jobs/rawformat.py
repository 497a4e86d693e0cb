"""The raw daily files' text format: the facts that need no Spark (the DAG's Airflow image has none)."""

from __future__ import annotations

# The header line, misspelling included: files are checked against it.
RAW_HEADER = (
    "# tranaction_id | tx_datetime | customer_id | terminal_id | tx_amount | "
    "tx_time_seconds | tx_time_days | tx_fraud | tx_fraud_scenario"
)
