"""Session fixtures every test folder may use: real servers (see tests/servers.py), one local
SparkSession and small lakes to write into (benchmarks/tests/conftest.py imports them too)."""

from __future__ import annotations

import logging
import os

import pytest

from fraudops.core import cli
from fraudops.core.lake import Lake
from tests import servers


@pytest.fixture(autouse=True)
def our_logs_reach_caplog():
    """A job's main() (cli.setup_logging) stops our loggers from propagating, so that libraries
    that reset the root logger cannot hide them; in tests they propagate again, to caplog."""
    for name in cli.OUR_LOGGERS:
        logging.getLogger(name).propagate = True


@pytest.fixture(scope="session")
def postgres_server():
    """SQLAlchemy URI of the ``mlflow`` database on a throwaway PostgreSQL cluster."""
    yield from servers.postgres_server()


@pytest.fixture(scope="session")
def s3_server():
    """Endpoint URL of a moto S3 server holding the MLflow artifacts bucket."""
    yield from servers.s3_server()


@pytest.fixture(scope="session")
def mlflow_server(postgres_server, s3_server):
    """Tracking URI of an MLflow server on PostgreSQL with artifacts proxied to S3 (moto)."""
    yield from servers.mlflow_server(postgres_server, s3_server)


@pytest.fixture(scope="session")
def spark():
    """One local SparkSession for the session (PySpark is imported only by tests that use it)."""
    os.environ.setdefault("FRAUDOPS_SHUFFLE_PARTITIONS", "2")
    os.environ.setdefault("FRAUDOPS_SPARK_MASTER", "local[2]")
    from spark_jobs.session import get_spark

    session = get_spark("tests")
    session.conf.set("spark.sql.shuffle.partitions", "2")
    yield session


@pytest.fixture
def lake(tmp_path) -> Lake:
    return Lake(str(tmp_path / "lake"))
