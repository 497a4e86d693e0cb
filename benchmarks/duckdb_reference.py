"""The cleaning and the two marts in DuckDB: the single-machine reference for the benchmark.

Same input files, same rules, same windows as spark_jobs.clean and spark_jobs.features, so the
time ratio compares engines on equal work. Tests check it gives the same rows as Spark.
"""

from __future__ import annotations

import duckdb

from fraudops.core import rawfiles
from fraudops.core import rawformat as rules  # reason codes, limits, shapes: the logic is ours
from fraudops.core.rawformat import DAY_SECONDS as DAY
from spark_jobs.schema import (
    LABEL_DELAY_DAYS,
    NIGHT_END_HOUR,
    NIGHT_FLAG,
    RAW_FIELDS,
    RAW_HEADER,
    WEEKEND_FLAG,
    WINDOWS_DAYS,
    customer_avg_amount,
    customer_nb_tx,
    terminal_nb_tx,
    terminal_risk,
)

DELAY = LABEL_DELAY_DAYS * DAY
N_FIELDS = len(RAW_FIELDS)

CLEAN_SQL = f"""
CREATE OR REPLACE TEMP TABLE parsed AS
WITH lines AS (
  SELECT regexp_replace(line, '\\r$', '') AS line,
         regexp_extract(filename, '{rawfiles.DAY_FILE_NAME}$', 1) AS file_day
  FROM read_csv(?, columns={{'line': 'VARCHAR'}}, delim='\\x1f', header=false, quote='',
                escape='', filename=true, auto_detect=false, strict_mode=false)
), split AS (
  SELECT line, file_day, string_split(line, ',') AS p FROM lines
  WHERE line IS DISTINCT FROM '{RAW_HEADER}'
), typed AS (
  SELECT line, file_day, p, len(p) AS n,
    TRY_CAST(trim(p[1]) AS BIGINT) AS transaction_id,
    TRY_STRPTIME(trim(p[2]), '%Y-%m-%d %H:%M:%S') AS tx_datetime,
    TRY_CAST(trim(p[3]) AS BIGINT) AS customer_id,
    TRY_CAST(trim(p[4]) AS BIGINT) AS terminal_id,
    TRY_CAST(trim(p[5]) AS DOUBLE) AS tx_amount,
    TRY_CAST(trim(p[6]) AS BIGINT) AS tx_time_seconds,
    TRY_CAST(trim(p[7]) AS INTEGER) AS tx_time_days,
    TRY_CAST(trim(p[8]) AS INTEGER) AS tx_fraud,
    TRY_CAST(trim(p[9]) AS INTEGER) AS tx_fraud_scenario
  FROM split
)
SELECT * EXCLUDE (p, n), CAST(file_day AS DATE) AS tx_date,
  CASE
    WHEN n < {N_FIELDS} THEN '{rules.TOO_FEW_FIELDS}'
    WHEN n > {N_FIELDS} THEN '{rules.TOO_MANY_FIELDS}'
    WHEN list_contains(list_transform(p, x -> trim(x)), '') THEN '{rules.EMPTY_FIELD}'
    WHEN transaction_id IS NULL OR customer_id IS NULL OR terminal_id IS NULL
      OR tx_amount IS NULL OR isnan(tx_amount) OR isinf(tx_amount) OR tx_time_seconds IS NULL
      OR tx_time_days IS NULL OR tx_fraud IS NULL OR tx_fraud_scenario IS NULL
      THEN '{rules.NON_NUMERIC}'
    WHEN tx_datetime IS NULL OR NOT regexp_matches(trim(p[2]), '{rules.TIMESTAMP_SHAPE}')
      THEN '{rules.BAD_TIMESTAMP}'
    WHEN CAST(tx_datetime AS DATE) <> CAST(file_day AS DATE) THEN '{rules.WRONG_DAY}'
    WHEN transaction_id < 0 OR customer_id < 0 OR terminal_id < 0 THEN '{rules.NEGATIVE_ID}'
    WHEN tx_amount < 0 THEN '{rules.NEGATIVE_AMOUNT}'
    WHEN tx_amount >= {rules.MAX_AMOUNT} THEN '{rules.AMOUNT_TOO_LARGE}'
    WHEN tx_fraud NOT IN (0, 1) OR tx_fraud_scenario NOT BETWEEN 0 AND 3 THEN '{rules.INVALID_LABEL}'
  END AS reason
FROM typed;

CREATE OR REPLACE TEMP TABLE classified AS
SELECT * EXCLUDE (reason),
  CASE WHEN reason IS NULL AND row_number() OVER (
         PARTITION BY transaction_id ORDER BY reason IS NOT NULL, tx_date, tx_datetime, line) > 1
       THEN '{rules.DUPLICATE_ID}' ELSE reason END AS reason
FROM parsed;
"""


def _customer_sql() -> str:
    """A range frame ends with its whole last second: less the transactions of that second
    with a higher id, which came after this one (ties follow transaction id order)."""
    later = "(PARTITION BY customer_id, tx_datetime ORDER BY transaction_id " \
            "ROWS BETWEEN 1 FOLLOWING AND UNBOUNDED FOLLOWING)"
    sums, features = [f"coalesce(count(*) OVER {later}, 0) AS n_later",
                      f"coalesce(sum(tx_amount) OVER {later}, 0) AS amount_later"], []
    for w in WINDOWS_DAYS:
        frame = f"(PARTITION BY customer_id ORDER BY epoch(tx_datetime) " \
                f"RANGE BETWEEN {w * DAY - 1} PRECEDING AND CURRENT ROW)"
        sums += [f"count(*) OVER {frame} AS n{w}", f"sum(tx_amount) OVER {frame} AS amount{w}"]
        features += [f"n{w} - n_later AS {customer_nb_tx(w)}",
                     f"(amount{w} - amount_later) / (n{w} - n_later) AS {customer_avg_amount(w)}"]
    return f"""
    SELECT transaction_id, customer_id, tx_datetime, tx_date,
      CAST(dayofweek(tx_datetime) IN (0, 6) AS INTEGER) AS {WEEKEND_FLAG},
      CAST(hour(tx_datetime) < {NIGHT_END_HOUR} AS INTEGER) AS {NIGHT_FLAG},
      {", ".join(features)}
    FROM (SELECT *, {", ".join(sums)} FROM clean)"""


def _terminal_sql() -> str:
    """Windows that end 7 days before the transaction hold every row of their last second, as
    the handbook's do: all of them came before it, whatever their ids."""
    frames = []
    for w in WINDOWS_DAYS:
        frame = f"(PARTITION BY terminal_id ORDER BY epoch(tx_datetime) " \
                f"RANGE BETWEEN {DELAY + w * DAY - 1} PRECEDING AND {DELAY} PRECEDING)"
        frames += [f"count(*) OVER {frame} AS {terminal_nb_tx(w)}",
                   f"coalesce(sum(tx_fraud) OVER {frame} / nullif(count(*) OVER {frame}, 0), 0)"
                   f" AS {terminal_risk(w)}"]
    return f"SELECT transaction_id, terminal_id, tx_datetime, tx_date, {', '.join(frames)} " \
           f"FROM clean"


def run(raw_glob: str, out_dir: str, threads: int = 2) -> dict:
    """Clean ``raw_glob`` and build both marts under ``out_dir``; returns row counts."""
    con = duckdb.connect()
    con.execute(f"SET threads = {threads}")
    con.execute("SET preserve_insertion_order = false")
    for statement in CLEAN_SQL.split(";\n\n"):
        if "?" in statement:
            con.execute(statement, [raw_glob])
        else:
            con.execute(statement)
    con.execute("CREATE OR REPLACE TEMP VIEW clean AS SELECT * EXCLUDE (reason, line, file_day) "
                "FROM classified WHERE reason IS NULL")
    for name, query in (
        ("clean", "SELECT * FROM clean"),
        ("quarantine", "SELECT file_day, line, reason, tx_date FROM classified "
                       "WHERE reason IS NOT NULL"),
        ("customer", _customer_sql()),
        ("terminal", _terminal_sql()),
    ):
        con.execute(f"COPY ({query}) TO '{out_dir}/{name}' "
                    f"(FORMAT parquet, PARTITION_BY (tx_date), OVERWRITE_OR_IGNORE)")
    counts = dict(con.execute(
        "SELECT coalesce(reason, 'clean'), count(*) FROM classified GROUP BY ALL").fetchall())
    con.close()
    return counts
