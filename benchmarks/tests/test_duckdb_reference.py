"""The benchmark's DuckDB reference does the same work as the Spark jobs: same rows, same marts.

`make bench` divides the Spark time by the DuckDB time; that ratio means something only if both
engines clean the same lines into the same rows and compute the same windows.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter

import pandas as pd
import pytest

from benchmarks import duckdb_reference
from fraudops.core.lake import Lake
from fraudops.core.rawformat import DAY_SECONDS
from fraudops.simulator.generate import generate_lake
from spark_jobs import clean, features, windows
from spark_jobs.datasets import clean_days
from spark_jobs.schema import customer_nb_tx

START = dt.datetime(2018, 4, 1)
CUSTOMER, TERMINAL = 7, 11
TIED_AT = START + dt.timedelta(days=20, hours=13, minutes=14, seconds=15)


def append_rows(lake: Lake, rows: list[tuple[int, dt.datetime, str, int]]) -> None:
    """Append (id, time, amount, fraud) rows of CUSTOMER at TERMINAL to their days' files."""
    for tx_id, when, amount, fraud in rows:
        seconds = int((when - START).total_seconds())
        line = (f"{tx_id},{when:%Y-%m-%d %H:%M:%S},{CUSTOMER},{TERMINAL},{amount},{seconds},"
                f"{seconds // DAY_SECONDS},{fraud},{2 if fraud else 0}\n")
        with open(lake.raw_file(f"{when:%Y-%m-%d}"), "a", encoding="utf-8") as handle:
            handle.write(line)


@pytest.fixture(scope="module")
def engines(spark, tmp_path_factory):
    """A damaged lake cleaned and featurised by Spark, and by DuckDB from the same raw files.

    Beyond what the generator makes, the lake has zero amounts (one a fraud) and transactions
    of one customer at one terminal in the same second, their ids out of order in the file,
    and again at that second 1, 7 and 8 days later: the windows' edges."""
    root = tmp_path_factory.mktemp("reference")
    lake = Lake(str(root / "lake"))
    n = generate_lake(lake, days=45, customers=60, terminals=100, seed=11,
                      defect_rate=0.05)["transactions"]
    later = [TIED_AT + dt.timedelta(days=d) for d in (1, 1, 7, 7, 8, 8)]
    append_rows(lake, [(n + 3, TIED_AT, "40.00", 0), (n + 1, TIED_AT, "0.00", 1),
                       (n + 4, TIED_AT, "7.50", 1), (n + 2, TIED_AT, "120.00", 0),
                       *[(n + 10 + i, when, f"{i}.25", i % 2)
                         for i, when in zip((1, 0, 3, 2, 5, 4), later)]])
    summary = clean.run(lake, None, "spark", spark)
    features.run(spark, lake, clean_days(lake))
    duck_dir = root / "duckdb"
    duck_dir.mkdir()
    counts = duckdb_reference.run(lake.raw_glob, str(duck_dir))
    return lake, summary, duck_dir, counts, [n + 1, n + 2, n + 3, n + 4]


def test_both_engines_clean_and_quarantine_the_same_rows(engines):
    _, summary, duck_dir, counts, _ = engines
    spark_counts = Counter(summary["quarantined_by_reason"], clean=summary["rows_clean"])
    assert summary["rows_quarantined"] > 0  # the lake is damaged: the rules are exercised
    assert Counter(counts) == spark_counts
    duck_clean = pd.read_parquet(duck_dir / "clean")
    assert len(duck_clean) == summary["rows_clean"]


@pytest.mark.parametrize("mart", windows.MARTS, ids=lambda mart: mart.name)
def test_both_engines_compute_the_same_marts(engines, mart):
    lake, _, duck_dir, _, _ = engines

    def load(path):
        frame = pd.read_parquet(path, columns=["transaction_id", *mart.feature_names])
        return frame.sort_values("transaction_id").reset_index(drop=True)

    spark_mart = load(mart.path(lake))
    duck_mart = load(duck_dir / mart.name)
    pd.testing.assert_frame_equal(spark_mart, duck_mart, check_dtype=False, rtol=1e-9)


def test_tied_transactions_count_only_the_lower_ids_and_zero_amounts_are_clean(engines):
    """The lake really has the edges: in both engines the four same-second transactions of one
    customer see one another in id order, the zero-amount fraud among them."""
    lake, _, duck_dir, _, tied = engines
    for root in (lake.clean, duck_dir / "clean"):
        rows = pd.read_parquet(root).set_index("transaction_id").loc[tied]
        assert rows["tx_amount"].tolist() == [0.0, 120.0, 40.0, 7.5]
    for path in (windows.CUSTOMER.path(lake), duck_dir / "customer"):
        mart = pd.read_parquet(path).set_index("transaction_id").loc[tied]
        counts = mart[customer_nb_tx(1)]
        assert counts.diff().iloc[1:].tolist() == [1, 1, 1], (path, counts)
