"""Fixtures of the Spark job tests (tests/conftest.py has the session's Spark and servers)."""

from __future__ import annotations

import pytest

from fraudops.core.lake import Lake
from tests.spark_jobs.lakes import warmed_up_lake


@pytest.fixture(scope="session")
def warmed_lake(spark, tmp_path_factory) -> Lake:
    """The warmed-up lake, built once per session (per pytest-xdist worker). Read only: copy it
    (tests.spark_jobs.lakes.copy_of) before writing to it."""
    return warmed_up_lake(spark, tmp_path_factory.mktemp("warmed"))
