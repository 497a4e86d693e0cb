"""The DAG parses cleanly and has the agreed shape on both backends."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import pytest
import yaml

from fraudops.core.platform import platform
from fraudops.core.steps import STEPS
from fraudops.orchestration.local_airflow import local_airflow_env
from tests.orchestration.conftest import DAG_FILE, load_dag
from tests.paths import REPO

EXPECTED_EDGES = {
    ("wait_for_raw_file", "detect_new_files"),
    ("detect_new_files", "clean"),
    ("detect_new_files", "no_new_data"),
    ("detect_new_files", "day_missing"),
    ("clean", "has_new_rows"),
    ("has_new_rows", "features"),
    ("has_new_rows", "no_new_rows"),
    ("features", "train"),
    ("train", "promote"),
    ("promote", "score"),
    ("score", "report"),
    ("report", "retention"),
    ("no_new_rows", "retention"),
    ("no_new_data", "retention"),
}
EXPECTED_TASKS = {task for edge in EXPECTED_EDGES for task in edge}
BACKENDS = ("local", "kubernetes")

# Parse the DAG in a fresh interpreter, where nothing was imported (or warned about) before,
# and without pyspark, like the Airflow image (which has no Spark).
_PARSE_SCRIPT = """
import importlib, json, logging, pkgutil, sys, warnings
sys.modules["pyspark"] = None  # any import of pyspark now fails
records = []
handler = logging.Handler(level=logging.WARNING)
handler.emit = lambda record: records.append(f"{record.name}: {record.getMessage()}")
logging.getLogger().addHandler(handler)
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    from airflow.models.dagbag import DagBag
    already = len(caught)  # Airflow's own import-time deprecations, before our file is read
    bag = DagBag(dag_folder=sys.argv[1], include_examples=False)
import fraudops.core as core, fraudops.orchestration as orchestration
for package in (core, orchestration):
    for module in pkgutil.iter_modules(package.__path__):
        importlib.import_module(f"{package.__name__}.{module.name}")
ours = [f"{w.filename}:{w.lineno}: {w.message}" for w in caught[already:]]
print(json.dumps({
    "dags": sorted(bag.dag_ids),
    "import_errors": {k: str(v) for k, v in bag.import_errors.items()},
    "captured_warnings": {k: list(v) for k, v in bag.captured_warnings.items()},
    "warnings": ours,
    "log_warnings": records,
}))
"""


@pytest.mark.parametrize("backend", BACKENDS)
def test_dag_file_parses_without_errors_warnings_or_pyspark(tmp_path, backend):
    env = local_airflow_env(tmp_path / "airflow", tmp_path, FRAUDOPS_BACKEND=backend)
    (tmp_path / "airflow").mkdir()
    result = subprocess.run(
        [sys.executable, "-c", _PARSE_SCRIPT, str(DAG_FILE)],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["dags"] == [platform()["airflow"]["dag_id"]]
    assert report["import_errors"] == {}
    assert report["captured_warnings"] == {}
    assert report["warnings"] == []
    assert report["log_warnings"] == []


@pytest.mark.parametrize("backend", BACKENDS)
def test_graph_is_the_agreed_one(monkeypatch, backend):
    dag, _ = load_dag(monkeypatch, FRAUDOPS_BACKEND=backend)
    edges = {(task.task_id, down) for task in dag.tasks for down in task.downstream_task_ids}
    assert set(dag.task_ids) == EXPECTED_TASKS
    assert edges == EXPECTED_EDGES


def test_the_graph_does_not_depend_on_the_backend(local_dag, kubernetes_dag):
    def shape(dag):
        return {
            t.task_id: (sorted(t.downstream_task_ids), [a.name for a in t.outlets])
            for t in dag.tasks
        }

    assert shape(local_dag) == shape(kubernetes_dag)
    for name in STEPS:
        assert type(local_dag.get_task(name)).__name__ == "LocalSparkStepOperator"
        assert type(kubernetes_dag.get_task(name)).__name__ == "SparkStepKubernetesOperator"


def test_dag_settings(local_dag):
    from airflow.timetables.interval import CronDataIntervalTimetable

    assert local_dag.dag_id == platform()["airflow"]["dag_id"]
    assert local_dag.max_active_runs == 1
    assert local_dag.catchup is False
    assert local_dag.start_date == datetime(2018, 4, 1, tzinfo=UTC)
    # Data intervals: the run for a day starts when the day ends (test_timing.py).
    assert local_dag.timetable == CronDataIntervalTimetable("@daily", "UTC")


def test_schedule_and_start_date_come_from_the_environment(monkeypatch):
    from airflow.timetables.interval import CronDataIntervalTimetable
    from airflow.timetables.simple import NullTimetable

    dag, _ = load_dag(monkeypatch, FRAUDOPS_SCHEDULE="0 3 * * *", FRAUDOPS_START_DATE="2018-05-01")
    assert dag.timetable == CronDataIntervalTimetable("0 3 * * *", "UTC")
    assert dag.start_date == datetime(2018, 5, 1, tzinfo=UTC)
    manual, _ = load_dag(monkeypatch, FRAUDOPS_SCHEDULE="none")
    assert isinstance(manual.timetable, NullTimetable)


@pytest.mark.parametrize("backend", BACKENDS)
def test_every_task_retries_with_backoff_and_has_a_timeout(monkeypatch, backend):
    dag, _ = load_dag(monkeypatch, FRAUDOPS_BACKEND=backend, FRAUDOPS_STEP_TIMEOUT_MINUTES="90")
    for task in dag.tasks:
        assert task.retries == 2, task.task_id
        assert task.retry_exponential_backoff, task.task_id
        assert task.retry_delay > timedelta(0), task.task_id
        assert task.max_retry_delay >= task.retry_delay, task.task_id
        assert task.execution_timeout is not None, task.task_id
    for name in STEPS:
        assert dag.get_task(name).execution_timeout == timedelta(minutes=90)
    no_retries, _ = load_dag(monkeypatch, FRAUDOPS_BACKEND=backend, FRAUDOPS_TASK_RETRIES="0")
    assert {task.retries for task in no_retries.tasks} == {0}


def test_steps_publish_their_assets(local_dag, monkeypatch, tmp_path):
    outlets = {t.task_id: {a.uri for a in t.outlets} for t in local_dag.tasks}
    lake = (tmp_path / "data" / "lake").as_uri()
    assert outlets["clean"] == {f"{lake}/clean"}
    assert outlets["features"] == {f"{lake}/features/customer", f"{lake}/features/terminal"}
    assert outlets["promote"] == {f"x-mlflow://models/{platform()['mlflow']['model_name']}"}
    cloud, _ = load_dag(monkeypatch, FRAUDOPS_BACKEND="kubernetes")
    bucket = platform()["buckets"]["lake"]
    assert {a.uri for a in cloud.get_task("clean").outlets} == {f"s3://{bucket}/lake/clean"}


def test_the_dag_file_holds_no_secret():
    text = DAG_FILE.read_text().lower()
    for word in ("password", "secret", "aws_access_key_id", "token"):
        assert word not in text


def test_the_lake_writing_tasks_share_a_pool_of_one_slot_that_the_chart_creates(local_dag):
    pool = platform()["airflow"]["lake_writer_pool"]
    writers = {name for name, step in STEPS.items() if step.writes_lake_state}
    assert writers == {"clean", "features", "retention"}
    assert {task.task_id for task in local_dag.tasks if task.pool == pool} == writers
    values = yaml.safe_load((REPO / "charts" / "airflow-values.yaml").read_text())
    script = " ".join(values["migrateDatabaseJob"]["args"])
    assert "airflow db migrate" in script and f"airflow pools set {pool} 1 " in script


def test_promote_and_score_share_a_pool_of_one_slot_that_the_chart_creates(local_dag):
    pool = platform()["airflow"]["model_pool"]
    assert {task.task_id for task in local_dag.tasks if task.pool == pool} == {"promote",
                                                                                "score"}
    values = yaml.safe_load((REPO / "charts" / "airflow-values.yaml").read_text())
    assert f"airflow pools set {pool} 1 " in " ".join(values["migrateDatabaseJob"]["args"])
