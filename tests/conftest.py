"""Session fixtures every test folder may use: real servers (see tests/servers.py)."""

from __future__ import annotations

import pytest

from tests import servers


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
