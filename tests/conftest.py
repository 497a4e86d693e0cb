"""Session fixtures every test folder may use: real servers (see tests/servers.py), one local
SparkSession and small lakes to write into (benchmarks/tests/conftest.py imports them too).

The tiers: each test gets its markers here, from the fixtures it uses (the ``spark`` fixture:
``spark``; a server fixture: ``server``) and from the table of the tests that start a JVM or a
server in a subprocess, run the model loop or a linter, or are slow; ``loop`` implies ``spark``.
``make test-fast`` deselects ``spark``, ``server``, ``loop`` and ``slow``; pyproject.toml says
what each marker means.
"""

from __future__ import annotations

import logging
import os
import shutil

import pytest

from fraudops.core import cli
from fraudops.core.lake import Lake
from tests import checkov, servers

# The tiers, in one place (pyproject.toml says what each marker means). A test gets a marker
# from the fixtures it uses ...
MARKERS_OF_FIXTURE = {
    "spark": {"spark"},
    "maven": {"spark"},  # tests/k8s/test_spark_jars.py: Maven is a JVM too
    "postgres_server": {"server"},
    "s3_server": {"server"},
    "mlflow_server": {"server"},
    "local_airflow": {"slow"},  # a migrated Airflow database, `airflow dags test`
    "checkov_reports": {"lint", "slow"},  # the one checkov run over everything it checks
}
# ... or from its node id (a module, or a test name's beginning): tests that start a JVM or a
# server in a subprocess, run the model loop, run a linter, or take long for another reason.
MARKERS_OF_TESTS = {
    # The model loop: train, promote, score, report, each in its JVM.
    "tests/spark_jobs/test_model_loop.py": {"loop"},
    "tests/spark_jobs/test_model_failures.py": {"loop"},
    "tests/orchestration/test_end_to_end.py": {"loop"},
    "tests/orchestration/test_spark_submit.py": {"loop"},
    "benchmarks/tests/test_quality.py": {"loop"},
    # A Spark step or a SparkSession in a subprocess.
    "tests/spark_jobs/test_spark_session.py::test_spark_submit_keeps": {"spark"},
    "tests/spark_jobs/test_spark_session.py::test_a_step_the_local_launcher": {"spark"},
    "tests/simulator/test_generate.py::test_the_cleaning_job_quarantines": {"spark"},
    "tests/k8s/test_e2e.py": {"spark", "slow"},
    # Linters and scanners over the tree.
    "tests/test_secrets_scan.py::test_detect_secrets_finds_nothing_new": {"lint", "slow"},
    "tests/k8s/test_images.py::test_hadolint": {"lint"},
    "tests/test_workflows.py::test_actionlint": {"lint"},
    "tests/terraform/test_tf_outputs_to_k8s.py::test_script_passes_shellcheck": {"lint"},
    "tests/test_lint.py": {"lint"},
    # A fresh interpreter that imports Airflow, MLflow or every module, or runs make many times:
    # ten seconds and more each.
    "tests/orchestration/test_dag_structure.py::test_dag_file_parses": {"slow"},
    "tests/test_layout.py::test_core_and_orchestration_import_without_pyspark": {"slow"},
    "tests/core/test_job_logging.py": {"slow"},
    "tests/core/test_lease.py::test_two_processes_never_hold_the_lease_at_once": {"slow"},
    "tests/model/test_registry.py::test_rollback_cli_runs_without_pyspark": {"slow"},
    "tests/model/test_metrics.py::test_the_benchmarks_plain_loop": {"slow"},
    "tests/spark_jobs/test_features.py::test_the_sample_has_ties": {"slow"},
    "tests/k8s/test_deploy_make.py": {"slow"},
    "tests/terraform/test_infra_make.py": {"slow"},
}


def tier_markers(item) -> set[str]:
    """The tier markers ``item`` gets from its fixtures and its node id."""
    needs = set()
    for fixture in item.fixturenames:
        needs |= MARKERS_OF_FIXTURE.get(fixture, set())
    for prefix, markers in MARKERS_OF_TESTS.items():
        if item.nodeid.startswith(prefix):
            needs |= markers
    if "loop" in needs or item.get_closest_marker("loop"):
        needs.add("spark")
    return needs


SERVER_FIXTURES = {"postgres_server", "s3_server", "mlflow_server"}


def module_of(item) -> str:
    return item.nodeid.split("::")[0]


def worker_group(item, server_modules: set[str] = frozenset()) -> str:
    """Which tests ``make test``'s workers (pytest-xdist, ``--dist loadgroup``) keep together:
    a module's tests, so that its module fixtures (a lake, a trained model, a demo run) are built
    once and its tests see each other's state; every test of the one checkov run; and every
    module of ``server_modules`` (those that use the servers, some of which stop and restart
    theirs on its port), so that one worker runs the servers."""
    if "checkov_reports" in item.fixturenames:
        return "checkov"
    if module_of(item) in server_modules:
        return "server"
    return module_of(item)


# tryfirst: pytest-xdist's own hook reads the xdist_group markers to name each test's group.
@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items):
    server_modules = {module_of(item) for item in items
                      if SERVER_FIXTURES & set(item.fixturenames)}
    for item in items:
        have = {m.name for m in item.iter_markers()}
        for name in sorted(tier_markers(item) - have):
            item.add_marker(name)
        item.add_marker(pytest.mark.xdist_group(worker_group(item, server_modules)))
    items[:] = run_order(items, server_modules)


# The checks of the session servers themselves run before any other test uses those servers.
SERVER_CHECKS = "tests/test_servers.py"


def run_order(items: list, server_modules: set[str] = frozenset()) -> list:
    """The model loop's groups first, each group's tests in their collection order (the servers'
    own checks first): the workers take groups in this order, so the longest ones do not start
    last and leave one idle."""
    loop = {worker_group(item, server_modules) for item in items
            if item.get_closest_marker("loop")}
    return sorted(items, key=lambda item: (module_of(item) != SERVER_CHECKS,
                                           worker_group(item, server_modules) not in loop))


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
def checkov_reports(tmp_path_factory):
    """{target: {framework: report}}: one checkov run over every target the collected test
    modules registered (tests/checkov.py)."""
    if not checkov.CHECKOV.exists():
        pytest.skip(checkov.MISSING)
    return checkov.scan(tmp_path_factory.mktemp("checkov"))


@pytest.fixture(scope="session")
def migrated_mlflow_db(tmp_path_factory):
    """An MLflow SQLite store migrated once per session (the migrations take seconds)."""
    import mlflow

    path = tmp_path_factory.mktemp("mlflow-template") / "mlflow.db"
    mlflow.MlflowClient(tracking_uri=f"sqlite:///{path}").search_experiments()
    return path


@pytest.fixture
def mlflow_sqlite(tmp_path, migrated_mlflow_db) -> str:
    """The URI of a fresh MLflow SQLite store in tmp_path: a copy of the migrated one."""
    path = tmp_path / "mlflow.db"
    shutil.copyfile(migrated_mlflow_db, path)
    return f"sqlite:///{path}"


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
