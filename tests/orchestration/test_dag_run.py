"""The DAG run by the real Airflow CLI, and what the Airflow side needs installed."""

from __future__ import annotations

import itertools
import os
import shlex
import subprocess
import sys
import textwrap

import pytest

from fraudops.core import storage
from fraudops.core.lake import Lake
from fraudops.core.steps import STEPS, RunContext, unique_id
from fraudops.orchestration.arrivals import clean_summary, new_raw_files
from fraudops.orchestration.local_airflow import airflow_settings, local_airflow_env
from fraudops.orchestration.timing import ARRIVED, MISSING
from tests.paths import REPO

SKIP_PATH = {
    "wait_for_raw_file": "success",
    "detect_new_files": "success",
    "no_new_data": "success",
    "day_missing": "skipped",
    "clean": "skipped",
    "has_new_rows": "skipped",
    "no_new_rows": "skipped",
    "features": "skipped",
    "train": "skipped",
    "promote": "skipped",
    "score": "skipped",
    "report": "skipped",
    "retention": "success",  # every day, whichever path
}


MISSING_PATH = {**SKIP_PATH, "day_missing": "success"}


@pytest.mark.slow
def test_a_day_without_its_raw_file_ends_on_the_missing_path(local_airflow, tmp_path):
    # Only a file from a later day: it has not "arrived" by the run's logical day, whose
    # deadline passed long ago, so the run does not wait.
    storage.write_bytes(Lake(str(tmp_path / "lake")).raw_file("2018-04-05"), b"future\n")
    result = local_airflow.dags_test("2018-04-01")
    assert result.returncode == 0, result.stdout[-5000:]
    assert "raw file of 2018-04-01: missing (deadline 2018-04-02T06:00:00+00:00)" in result.stdout
    assert "0 new raw file(s) by 2018-04-01" in result.stdout
    assert local_airflow.dag_run("2018-04-01").state == "success"
    assert local_airflow.task_states("2018-04-01") == MISSING_PATH


@pytest.mark.slow
def test_a_day_whose_file_is_processed_already_ends_on_the_skip_path(local_airflow, tmp_path):
    lake = Lake(str(tmp_path / "lake"))
    storage.write_bytes(lake.raw_file("2018-04-01"), b"a day\n")
    (entry,) = storage.list_files(lake.raw)
    storage.write_json(
        lake.manifest, {"2018-04-01.txt": {"size": entry.size, "mtime_ns": entry.mtime_ns}}
    )
    result = local_airflow.dags_test("2018-04-01")
    assert result.returncode == 0, result.stdout[-5000:]
    assert "raw file of 2018-04-01: arrived" in result.stdout
    assert local_airflow.task_states("2018-04-01") == SKIP_PATH


def test_clean_summary_is_read_for_the_run(tmp_path):
    lake = Lake(str(tmp_path / "lake"))
    with pytest.raises(RuntimeError, match="run summary"):
        clean_summary(lake, "run-1")
    storage.write_json(lake.run_summary("clean", "run-1"), {"has_new_rows": False, "new_files": 1})
    assert clean_summary(lake, "run-1")["has_new_rows"] is False


def test_make_runs_airflow_with_the_settings_of_the_tests(tmp_path):
    """make/airflow.mk (`make ui`, `make airflow-db`) takes the local Airflow's settings from
    local_airflow.airflow_settings, as local_airflow_env does for these tests and the demo."""
    home = tmp_path / "ui"
    result = subprocess.run(["make", "--no-print-directory", "-n", "airflow-db",
                             f"UI_HOME={home}"], cwd=REPO, capture_output=True, text=True,
                            timeout=120, check=True)
    (migrate,) = [line for line in result.stdout.splitlines() if " db migrate" in line]
    words = shlex.split(migrate)
    made = dict(w.split("=", 1) for w in itertools.takewhile(lambda w: "=" in w, words))
    assert made == airflow_settings(home / ".airflow", home)
    test_env = local_airflow_env(tmp_path / "airflow", tmp_path)
    assert airflow_settings(tmp_path / "airflow", tmp_path).items() <= test_env.items()
    # The file make's target names is the database Airflow is given.
    assert f"touch {home / '.airflow' / 'airflow.db'}" in result.stdout.splitlines()


_WITHOUT_PYSPARK = textwrap.dedent(
    """
    import sys
    sys.modules["pyspark"] = None  # any import of pyspark now fails
    {body}
    """
)


def _run_without_pyspark(body: str, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", _WITHOUT_PYSPARK.format(body=textwrap.dedent(body))],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_detect_new_files_runs_without_pyspark(tmp_path):
    env = local_airflow_env(tmp_path / "airflow", tmp_path)
    (tmp_path / "lake" / "raw").mkdir(parents=True)  # an empty raw/: a day without data
    result = _run_without_pyspark(
        f"""
        from fraudops.core.lake import Lake
        from fraudops.orchestration.arrivals import new_raw_files
        print(new_raw_files(Lake({str(tmp_path / "lake")!r}), "2018-04-01"))
        """,
        env,
    )
    assert result.returncode == 0, result.stderr[-3000:]


def _branch(dag, task_id, monkeypatch, ds, run_id="manual__x", *args):
    """Call a branch task's function as Airflow would, for the run (ds, run_id), with the
    upstream values ``args``."""
    function = dag.get_task(task_id).python_callable
    context = {"ds": ds, "run_id": run_id}
    monkeypatch.setitem(function.__globals__, "get_current_context", lambda: context)
    return function(*args)


def test_detect_new_files_branches_on_arrived_unprocessed_files(local_dag, monkeypatch):
    lake = Lake(local_dag.get_task("clean").settings.lake_root)

    def detect(ds, day_file=ARRIVED):
        return _branch(local_dag, "detect_new_files", monkeypatch, ds, "manual__x", day_file)

    with pytest.raises(storage.FolderNotFound, match=lake.raw):  # a wrong root is an error
        detect("2018-04-01")
    os.makedirs(lake.raw)
    assert detect("2018-04-01", MISSING) == ["no_new_data", "day_missing"]
    storage.write_bytes(lake.raw_file("2018-04-02"), b"a day\n")
    assert detect("2018-04-01", MISSING) == ["no_new_data", "day_missing"]
    assert detect("2018-04-02") == ["clean"]
    (entry,) = storage.list_files(lake.raw)
    storage.write_json(
        lake.manifest, {"2018-04-02.txt": {"size": entry.size, "mtime_ns": entry.mtime_ns}}
    )
    assert detect("2018-04-02") == ["no_new_data"]


def test_a_file_after_its_deadline_is_cleaned_by_the_next_run(local_dag, monkeypatch):
    """The run of 04-02 went on without its file; the file comes, late, with the next day's:
    the run of 04-03 cleans both. Its own day missing, it still cleans an earlier late file."""
    lake = Lake(local_dag.get_task("clean").settings.lake_root)
    os.makedirs(lake.raw)
    assert _branch(local_dag, "detect_new_files", monkeypatch, "2018-04-02", "manual__x",
                   MISSING) == ["no_new_data", "day_missing"]
    storage.write_bytes(lake.raw_file("2018-04-02"), b"late\n")
    assert _branch(local_dag, "detect_new_files", monkeypatch, "2018-04-03", "manual__x",
                   MISSING) == ["clean", "day_missing"]
    storage.write_bytes(lake.raw_file("2018-04-03"), b"on time\n")
    assert _branch(local_dag, "detect_new_files", monkeypatch, "2018-04-03", "manual__x",
                   ARRIVED) == ["clean"]
    # What clean then takes (clean --until ds): both files, the late one too.
    args = STEPS["clean"].args(RunContext("2018-04-03", "r", lake.root))
    assert args[args.index("--until") + 1] == "2018-04-03"
    assert new_raw_files(lake, "2018-04-03") == ["2018-04-02.txt", "2018-04-03.txt"]


def test_has_new_rows_follows_the_clean_summary_of_the_run(local_dag, monkeypatch):
    lake = Lake(local_dag.get_task("clean").settings.lake_root)
    run_id = "scheduled__2018-04-02T00:00:00+00:00"
    summary = lake.run_summary("clean", unique_id(run_id))
    day = {"until": "2018-04-02"}
    storage.write_json(summary, {"has_new_rows": True, "new_files": 1, **day})
    assert _branch(local_dag, "has_new_rows", monkeypatch, "2018-04-02", run_id) == "features"
    storage.write_json(summary, {"has_new_rows": False, "new_files": 1, **day})
    assert _branch(local_dag, "has_new_rows", monkeypatch, "2018-04-02", run_id) == "no_new_rows"
    # Days a failed features run left to rebuild: features runs without new rows too.
    storage.write_json(summary, {"has_new_rows": False, "new_files": 0,
                                 "features_pending": ["2018-03-30"], **day})
    assert _branch(local_dag, "has_new_rows", monkeypatch, "2018-04-02", run_id) == "features"


def test_has_new_rows_refuses_a_summary_of_another_request(local_dag, monkeypatch):
    """Two Airflow run ids that the old safe_id mapped alike now name two summaries; and a
    summary written for another day under this run's id does not answer this run."""
    lake = Lake(local_dag.get_task("clean").settings.lake_root)
    run_id = "manual__2018-04-02"
    assert unique_id(run_id) != unique_id("manual--2018-04-02")
    storage.write_json(lake.run_summary("clean", unique_id(run_id)),
                       {"has_new_rows": True, "new_files": 1, "until": "2018-04-01"})
    with pytest.raises(Exception, match="another request"):
        _branch(local_dag, "has_new_rows", monkeypatch, "2018-04-02", run_id)


def test_dags_test_kills_a_run_that_hangs_without_output(tmp_path, monkeypatch):
    from fraudops.orchestration import local_airflow

    silent = tmp_path / "airflow"
    silent.write_text("#!/bin/sh\nsleep 60\n")
    silent.chmod(0o755)
    monkeypatch.setattr(local_airflow, "AIRFLOW_BIN", silent)
    airflow = local_airflow.LocalAirflow(local_airflow_env(tmp_path / "home", tmp_path))
    with pytest.raises(subprocess.TimeoutExpired):
        airflow.dags_test("2018-04-01", timeout=1)
