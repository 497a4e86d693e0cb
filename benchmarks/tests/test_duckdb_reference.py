"""The benchmark's DuckDB reference does the same work as the Spark jobs: same rows, same marts.

`make bench` divides the Spark time by the DuckDB time; that ratio means something only if both
engines clean the same lines into the same rows and compute the same windows.
"""

from __future__ import annotations

from collections import Counter

import pandas as pd
import pytest

from benchmarks import duckdb_reference
from fraudops.core.lake import Lake
from fraudops.simulator.generate import generate_lake
from spark_jobs import clean, features
from spark_jobs.datasets import clean_days


@pytest.fixture(scope="module")
def engines(spark, tmp_path_factory):
    """A damaged lake cleaned and featurised by Spark, and by DuckDB from the same raw files."""
    root = tmp_path_factory.mktemp("reference")
    lake = Lake(str(root / "lake"))
    generate_lake(lake, days=45, customers=60, terminals=100, seed=11, defect_rate=0.05)
    summary = clean.run(lake, None, "spark", spark)
    features.run(spark, lake, clean_days(lake))
    duck_dir = root / "duckdb"
    duck_dir.mkdir()
    counts = duckdb_reference.run(lake.raw_glob, str(duck_dir))
    return lake, summary, duck_dir, counts


def test_both_engines_clean_and_quarantine_the_same_rows(engines):
    _, summary, duck_dir, counts = engines
    spark_counts = Counter(summary["quarantined_by_reason"], clean=summary["rows_clean"])
    assert summary["rows_quarantined"] > 0  # the lake is damaged: the rules are exercised
    assert Counter(counts) == spark_counts
    duck_clean = pd.read_parquet(duck_dir / "clean")
    assert len(duck_clean) == summary["rows_clean"]


@pytest.mark.parametrize("mart", features.MARTS, ids=lambda mart: mart.name)
def test_both_engines_compute_the_same_marts(engines, mart):
    lake, _, duck_dir, _ = engines

    def load(path):
        frame = pd.read_parquet(path, columns=["transaction_id", *mart.feature_names])
        return frame.sort_values("transaction_id").reset_index(drop=True)

    spark_mart = load(mart.path(lake))
    duck_mart = load(duck_dir / mart.name)
    pd.testing.assert_frame_equal(spark_mart, duck_mart, check_dtype=False, rtol=1e-9)
