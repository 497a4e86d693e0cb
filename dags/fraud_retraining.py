"""Daily retraining of the card-fraud detector.

detect_new_files ─┬─ no_new_data
                  └─ clean ── has_new_rows ─┬─ no_new_rows
                                            └─ features ── train ── promote ── score ── report

A run processes the raw files that arrived by its logical day. Without a new file, or when the
new files hold no new valid row, the run ends on a visible skip path. Each Spark step runs as a
SparkApplication on Kubernetes (FRAUDOPS_BACKEND=kubernetes) or as ``python -m`` on local[*]
(the default); the graph is the same either way. Configuration: docs/dag.md.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.sdk import chain, dag, get_current_context, task

from fraudops.core.lake import Lake
from fraudops.core.platform import platform
from fraudops.core.steps import STEPS
from fraudops.orchestration.assets import step_outlets
from fraudops.orchestration.operators import spark_step
from fraudops.orchestration.settings import load_settings, run_context

SETTINGS = load_settings()
NAMES = platform()
OUTLETS = step_outlets(Lake(SETTINGS.lake_root), NAMES["mlflow"]["model_name"])
CHECK_TIMEOUT = timedelta(minutes=10)
log = logging.getLogger(__name__)

DEFAULT_ARGS = {
    "owner": NAMES["project"],
    "retries": SETTINGS.retries,
    "retry_delay": timedelta(minutes=2),
    "retry_exponential_backoff": True,
    "max_retry_delay": timedelta(minutes=30),
    "execution_timeout": SETTINGS.step_timeout,
}


@dag(
    dag_id=NAMES["airflow"]["dag_id"],
    description="Clean new raw files, rebuild features, retrain, promote, score, report",
    schedule=SETTINGS.schedule,
    start_date=SETTINGS.start_date,
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    doc_md=__doc__,
    tags=[NAMES["project"], "spark", "mlflow", SETTINGS.backend],
)
def fraud_retraining():
    @task.branch(execution_timeout=CHECK_TIMEOUT)
    def detect_new_files() -> str:
        """Branch to clean when a raw file arrived by the logical day and is not processed yet."""
        from fraudops.orchestration.arrivals import new_raw_files

        ctx = run_context(get_current_context(), SETTINGS)
        new_files = new_raw_files(Lake(ctx.lake_root), ctx.ds)
        log.info("%d new raw file(s) by %s: %s", len(new_files), ctx.ds, new_files)
        return "clean" if new_files else "no_new_data"

    @task.branch(execution_timeout=CHECK_TIMEOUT)
    def has_new_rows() -> str:
        """Branch to the model steps when clean added valid rows, or when an earlier features
        run left changed days whose marts are not rebuilt yet."""
        from fraudops.orchestration.arrivals import clean_summary

        ctx = run_context(get_current_context(), SETTINGS)
        summary = clean_summary(Lake(ctx.lake_root), ctx.safe_run_id)
        log.info("clean summary: %s", summary)
        go_on = summary["has_new_rows"] or summary.get("features_pending")
        return "features" if go_on else "no_new_rows"

    pool = {"pool": NAMES["airflow"]["lake_writer_pool"]}
    steps = {
        name: spark_step(step, SETTINGS, outlets=OUTLETS.get(name, []),
                         **(pool if step.writes_lake_state else {}))
        for name, step in STEPS.items()
    }
    no_new_data = EmptyOperator(task_id="no_new_data", execution_timeout=CHECK_TIMEOUT)
    no_new_rows = EmptyOperator(task_id="no_new_rows", execution_timeout=CHECK_TIMEOUT)

    detect_new_files() >> [steps["clean"], no_new_data]
    steps["clean"] >> has_new_rows() >> [steps["features"], no_new_rows]
    chain(*(steps[name] for name in ("features", "train", "promote", "score", "report")))


fraud_retraining()
