"""The benchmark's Spark floor writes what the jobs write: the same rows, columns and types.

`make bench` divides the jobs' time by the floor's; the floor is a lower bound only if it reads
the same files and writes datasets as long and as wide as the clean table and the two marts.
"""

from __future__ import annotations

import pytest

from benchmarks import spark_floor
from fraudops.core.lake import PARTITION_COLUMN, Lake
from fraudops.simulator.generate import generate_lake
from spark_jobs import clean, features, windows
from spark_jobs.datasets import clean_days


@pytest.fixture(scope="module")
def outputs(spark, tmp_path_factory):
    root = tmp_path_factory.mktemp("floor")
    lake = Lake(str(root / "lake"))
    generate_lake(lake, days=12, customers=40, terminals=80, seed=5)
    clean.run(lake, None, "floor", spark)
    features.run(spark, lake, clean_days(lake))
    seconds = spark_floor.run(spark, lake, root / "floor")
    return lake, root / "floor", seconds


def _shape(spark, path):
    frame = spark.read.parquet(str(path))
    per_day = {row[0].isoformat(): row[1]
               for row in frame.groupBy(PARTITION_COLUMN).count().collect()}
    return sorted((f.name, f.dataType.simpleString()) for f in frame.schema), per_day


def test_floor_times_each_part(outputs):
    _, _, seconds = outputs
    assert set(seconds) == {"clean", "marts"}
    assert all(value > 0 for value in seconds.values())


@pytest.mark.parametrize("dataset", ["clean", *[mart.name for mart in windows.MARTS]])
def test_floor_writes_the_rows_and_columns_the_job_writes(spark, outputs, dataset):
    lake, floor_dir, _ = outputs
    marts = {mart.name: mart for mart in windows.MARTS}
    job_path = lake.clean if dataset == "clean" else marts[dataset].path(lake)
    job_columns, job_days = _shape(spark, job_path)
    floor_columns, floor_days = _shape(spark, floor_dir / dataset)
    assert floor_columns == job_columns
    assert floor_days == job_days
    assert len(job_days) == 12  # every generated day, so the comparison is not vacuous
