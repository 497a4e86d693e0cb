"""DAG test fixtures: a clean launch environment, the DAG per backend, a local Airflow.

Reusable elsewhere (e.g. the end-to-end test):
    from fraudops.orchestration.local_airflow import LocalAirflow
    airflow = LocalAirflow.create(tmp / "airflow", fraudops_home=tmp, lake_root=str(lake_root))
    result = airflow.dags_test("2018-04-02"); airflow.task_states("2018-04-02")
or, under tests/orchestration/, the ``local_airflow`` fixture below (its database migrated once per session).
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import pytest
import yaml

from fraudops.orchestration.local_airflow import (
    DAG_ID,
    REPO,
    LocalAirflow,
    local_airflow_env,
    migrate_airflow_db,
)

# Airflow reads its home when first imported: give the in-process tests a throwaway one.
if "airflow" not in sys.modules:
    os.environ["AIRFLOW_HOME"] = tempfile.mkdtemp(prefix="fraudops-airflow-home-")
    os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
    os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(REPO / "dags")

DAG_FILE = REPO / "dags" / "fraud_retraining.py"
CRD_FILE = REPO.parent / "shared" / "schemas" / "sparkoperator.k8s.io_sparkapplications.yaml"


@pytest.fixture(autouse=True)
def clean_launch_env(monkeypatch, tmp_path):
    """No FRAUDOPS_* or MLflow setting leaks in from the developer's shell."""
    for name in list(os.environ):
        if name.startswith("FRAUDOPS_") or name.startswith("MLFLOW_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("FRAUDOPS_HOME", str(tmp_path))


def load_dag(monkeypatch, **env: str):
    """Parse dags/ with a DagBag under ``env``: (the DAG, the DagBag)."""
    from airflow.models.dagbag import DagBag

    for name, value in env.items():
        monkeypatch.setenv(name, value)
    bag = DagBag(dag_folder=str(DAG_FILE), include_examples=False)
    assert not bag.import_errors, bag.import_errors
    return bag.dags[DAG_ID], bag


@pytest.fixture
def kubernetes_dag(monkeypatch):
    return load_dag(monkeypatch, FRAUDOPS_BACKEND="kubernetes")[0]


@pytest.fixture
def local_dag(monkeypatch):
    return load_dag(monkeypatch, FRAUDOPS_BACKEND="local")[0]


@pytest.fixture(scope="session")
def sparkapplication_schema() -> dict:
    """The v1beta2 openAPIV3Schema of the real SparkApplication CRD."""
    if not CRD_FILE.is_file():
        pytest.skip(f"SparkApplication CRD not found at {CRD_FILE}")
    crd = yaml.safe_load(CRD_FILE.read_text())
    (version,) = [v for v in crd["spec"]["versions"] if v["name"] == "v1beta2"]
    return version["schema"]["openAPIV3Schema"]


@pytest.fixture(scope="session")
def migrated_airflow_db(tmp_path_factory) -> Path:
    """An Airflow SQLite database migrated once per session; tests get copies."""
    home = tmp_path_factory.mktemp("airflow-template")
    migrate_airflow_db(local_airflow_env(home, home))
    return home / "airflow.db"


@pytest.fixture
def local_airflow(tmp_path, migrated_airflow_db) -> LocalAirflow:
    """A local Airflow in tmp_path/airflow with its lake at tmp_path/lake."""
    return LocalAirflow.create(
        tmp_path / "airflow",
        fraudops_home=tmp_path,
        lake_root=str(tmp_path / "lake"),
        migrated_db=migrated_airflow_db,
    )
