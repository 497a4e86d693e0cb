"""The demo's reading of a run: the path column from the task states of a DAG run."""

from __future__ import annotations

from fraudops.orchestration.demo import run_path
from tests.orchestration.test_dag_run import MISSING_PATH, SKIP_PATH

# The task states test_dag_run.py checks on real `airflow dags test` runs, and those of a run
# through the model steps.
TRAINED = {**SKIP_PATH, "no_new_data": "skipped", **{t: "success" for t in (
    "clean", "has_new_rows", "features", "train", "promote", "score", "report",
    "retention")}}


def test_the_path_of_each_kind_of_run():
    assert run_path(SKIP_PATH) == "skipped: no new file"
    assert run_path(MISSING_PATH) == "day missing, skipped: no new file"
    assert run_path(TRAINED) == "trained"
    assert run_path({**TRAINED, "day_missing": "success"}) == "day missing, trained"
    no_rows = {**TRAINED, "no_new_rows": "success", "features": "skipped", "train": "skipped"}
    assert run_path(no_rows) == "skipped: no new rows"
    assert run_path({**TRAINED, "train": "failed"}) == "incomplete"
