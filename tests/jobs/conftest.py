"""Fixtures for the Spark job tests: one local SparkSession and small lakes to write into."""

from __future__ import annotations

import os

import pytest

from spark_jobs.lake import Lake


@pytest.fixture(scope="session")
def spark():
    os.environ.setdefault("FRAUDOPS_SHUFFLE_PARTITIONS", "2")
    os.environ.setdefault("FRAUDOPS_SPARK_MASTER", "local[2]")
    from spark_jobs.spark import get_spark

    session = get_spark("tests")
    session.conf.set("spark.sql.shuffle.partitions", "2")
    yield session


@pytest.fixture
def lake(tmp_path) -> Lake:
    return Lake(str(tmp_path / "lake"))
