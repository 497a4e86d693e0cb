"""The benchmarks' tests use the suite's SparkSession and lakes (tests/conftest.py)."""

from tests.conftest import lake, spark  # noqa: F401  (fixtures, registered by import)
