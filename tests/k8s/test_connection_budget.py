"""PostgreSQL connections that add up: every process of Airflow and MLflow that opens the
database, times the most its SQLAlchemy pool may hold, stays under its user's conn_limit
(terraform/postgres.tf), rollouts included; and in dev, both under the in-cluster server's
max_connections. Like test_capacity.py for CPU and memory: a pod that cannot connect does not
show in Pod Security or a schema, only as "too many connections" on a busy day."""

from __future__ import annotations

import math

import pytest
import yaml

from fraudops.core.platform import platform
from tests.k8s.manifests import MLFLOW_CHART, REPO, deep_merge, objects, one, render_chart
from tests.terraform import hcl

NAMES = platform()
# Stated, not measured:
# - A rolling update starts one new pod beside the old ones (Kubernetes' default maxSurge of
#   25% rounds up to one pod); its process connects before the old one stops.
ROLLOUT_SURGE = 1
# - Airflow 3 processes that open the metadata database: the API server's workers, the
#   scheduler, the DAG processor and the triggerer (their subprocesses, and the task pods, reach
#   it through the API server); the migration Job; one `airflow` command run by hand
#   (kubectl exec, make e2e).
AIRFLOW_ONE_OFF = {"migrateDatabaseJob": 1, "airflow CLI by hand": 1}
# - SQLAlchemy's pool defaults, which Airflow and MLflow keep unless told otherwise.
SQLALCHEMY_DEFAULT = (5, 10)
# - MLflow's init container holds an advisory-lock connection and migrates on one more
#   (charts/mlflow/templates/deployment.yaml), one starting pod at a time (the lock).
MLFLOW_INIT = 2
# - The dev overlay's PostgreSQL 16 keeps its default max_connections (100), 3 of them for
#   superusers.
DEV_MAX_CONNECTIONS = 100 - 3


def values(*names: str) -> dict:
    merged: dict = {}
    for name in names:
        merged = deep_merge(merged, yaml.safe_load((REPO / "charts" / name).read_text()) or {})
    return merged


def per_pool(size, overflow) -> float:
    size, overflow = int(size), int(overflow)
    return math.inf if size == 0 else size + overflow  # Airflow: 0 means no limit


def airflow_connections(chart_values: dict) -> dict[str, float]:
    """Component -> the most connections its processes may hold at once."""
    config = chart_values.get("config", {})
    database = config.get("database", {})
    pool = per_pool(database.get("sql_alchemy_pool_size", SQLALCHEMY_DEFAULT[0]),
                    database.get("sql_alchemy_max_overflow", SQLALCHEMY_DEFAULT[1]))
    workers = int(config.get("api", {}).get("workers", 1))
    found = {}
    for component, processes in (("apiServer", workers), ("scheduler", 1),
                                 ("dagProcessor", 1), ("triggerer", 1)):
        pods = int(chart_values.get(component, {}).get("replicas", 1)) + ROLLOUT_SURGE
        found[component] = pods * processes * pool
    found.update({name: count * pool for name, count in AIRFLOW_ONE_OFF.items()})
    return found


def mlflow_connections(chart_values: dict) -> dict[str, float]:
    """The rendered Deployment's pods (replicas + maxSurge) x server workers x one engine per
    store (tracking, registry, and the auth user store when auth is on) x its pool."""
    rendered = objects(render_chart(MLFLOW_CHART, chart_values, release=NAMES["mlflow"]["service"],
                                    namespace=NAMES["namespaces"]["platform"]))
    deployment = one(rendered, "Deployment")
    spec = deployment["spec"]
    (server,) = spec["template"]["spec"]["containers"]
    env = {e["name"]: e.get("value") for e in server.get("env", [])}
    pool = per_pool(env.get("MLFLOW_SQLALCHEMYSTORE_POOL_SIZE", SQLALCHEMY_DEFAULT[0]),
                    env.get("MLFLOW_SQLALCHEMYSTORE_MAX_OVERFLOW", SQLALCHEMY_DEFAULT[1]))
    args = server.get("args", []) + server.get("command", [])
    (workers,) = [int(a.split("=", 1)[1]) for a in args if a.startswith("--workers=")]
    engines = 3 if "MLFLOW_AUTH_CONFIG_PATH" in env else 2
    pods = int(spec.get("replicas", 1)) + int(
        spec.get("strategy", {}).get("rollingUpdate", {}).get("maxSurge", ROLLOUT_SURGE))
    return {"server": pods * workers * engines * pool, "init container": MLFLOW_INIT}


def conn_limit() -> int:
    return int(hcl.resource("yandex_mdb_postgresql_user.this").body["conn_limit"])


def test_airflow_stays_under_its_users_conn_limit():
    used = airflow_connections(values("airflow-values.yaml"))
    assert sum(used.values()) <= conn_limit(), (
        f"Airflow may hold {sum(used.values())} connections ({used}); its user may open "
        f"{conn_limit()} (terraform/postgres.tf)")


def test_mlflow_stays_under_its_users_conn_limit():
    used = mlflow_connections({})
    assert sum(used.values()) <= conn_limit(), (
        f"MLflow may hold {sum(used.values())} connections ({used}); its user may open "
        f"{conn_limit()} (terraform/postgres.tf)")


def test_dev_fits_one_postgres_server():
    used = (sum(airflow_connections(values("airflow-values.yaml", "airflow-values.dev.yaml"))
                .values())
            + sum(mlflow_connections(values("mlflow-values.dev.yaml")).values()))
    assert used <= DEV_MAX_CONNECTIONS, used


@pytest.mark.parametrize("unset", ["airflow", "mlflow"])
def test_the_pool_defaults_would_not_fit(unset):
    """The check can fail: SQLAlchemy's default pools (5 + 10) exceed the limit."""
    if unset == "airflow":
        chart_values = values("airflow-values.yaml")
        chart_values["config"].pop("database")
        assert sum(airflow_connections(chart_values).values()) > conn_limit()
    else:
        chart_values = yaml.safe_load((MLFLOW_CHART / "values.yaml").read_text())
        assert "poolSize" in chart_values["backendStore"]
        defaults = {"backendStore": {"poolSize": SQLALCHEMY_DEFAULT[0],
                                     "maxOverflow": SQLALCHEMY_DEFAULT[1]}}
        assert sum(mlflow_connections(defaults).values()) > conn_limit()
