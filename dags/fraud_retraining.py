"""Daily retraining of the card-fraud detector.

wait_for_raw_file ── detect_new_files ─┬─ day_missing (beside one of the two below)
                                       ├─ no_new_data
                                       └─ clean ── has_new_rows ─┬─ no_new_rows
                                                                 └─ features ── train ─┐
    ┌──────────────────────────────────────────────────────────────────────────────────┘
    └─ promote ── score ── report ── retention (also after no_new_data or no_new_rows)

The run for a day starts once the day has ended and waits for the day's raw file until its
arrival deadline, giving its worker slot back between looks. It then cleans every raw file that
arrived by its day and is not processed yet, late ones too; a day whose file did not come in
time shows day_missing, and its file is cleaned by the first run after it arrives. Without a
new file, or when the new files hold no new valid row, the run ends on a visible skip path.
Every path ends with retention (docs/data.md, "Retention").
Each Spark step runs as a SparkApplication on Kubernetes (FRAUDOPS_BACKEND=kubernetes) or as
``python -m`` on local[*] (the default); the graph is the same either way. Timing and
configuration: docs/dag.md.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.sdk import PokeReturnValue, chain, dag, get_current_context, task

from fraudops.core.lake import Lake
from fraudops.core.platform import platform
from fraudops.core.steps import STEPS
from fraudops.orchestration.assets import step_outlets
from fraudops.orchestration.operators import spark_step
from fraudops.orchestration.settings import SCHEDULE_ENV, load_settings, run_context
from fraudops.orchestration.timing import (
    MISSING,
    WAITING,
    arrival_deadline,
    arrival_state,
    longest_wait,
    timetable,
)

SETTINGS = load_settings()
NAMES = platform()
OUTLETS = step_outlets(Lake(SETTINGS.lake_root), NAMES["mlflow"]["model_name"])
CHECK_TIMEOUT = timedelta(minutes=10)
# Steps that follow several branches: they run when one of them ran and none failed.
AFTER_ANY_PATH = {"retention": {"trigger_rule": "none_failed_min_one_success"}}
ARRIVAL_POKE_INTERVAL = timedelta(minutes=10)  # between two looks for the day's raw file
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
    schedule=timetable(SETTINGS.schedule, SCHEDULE_ENV),
    start_date=SETTINGS.start_date,
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    doc_md=__doc__,
    tags=[NAMES["project"], "spark", "mlflow", SETTINGS.backend],
)
def fraud_retraining():
    @task.sensor(
        mode="reschedule",  # no worker slot held between looks
        poke_interval=ARRIVAL_POKE_INTERVAL,
        timeout=longest_wait(SETTINGS.arrival_deadline) + ARRIVAL_POKE_INTERVAL,
        execution_timeout=CHECK_TIMEOUT,
    )
    def wait_for_raw_file() -> PokeReturnValue:
        """Done as soon as the logical day's raw file is in the lake or its arrival deadline
        has passed; passes on what it found (arrived or missing)."""
        from fraudops.orchestration.arrivals import day_file_arrived

        ctx = run_context(get_current_context(), SETTINGS)
        deadline = arrival_deadline(ctx.ds, SETTINGS.arrival_deadline)
        state = arrival_state(day_file_arrived(Lake(ctx.lake_root), ctx.ds), utcnow(), deadline)
        log.info("raw file of %s: %s (deadline %s)", ctx.ds, state, deadline.isoformat())
        return PokeReturnValue(is_done=state != WAITING, xcom_value=state)

    @task.branch(execution_timeout=CHECK_TIMEOUT)
    def detect_new_files(day_file: str) -> list[str]:
        """Branch to clean when raw files arrived by the logical day that are not processed yet
        (the day's own or late ones of earlier days), else to no_new_data; and to day_missing
        too when the day's own file was not there by its deadline."""
        from fraudops.orchestration.arrivals import new_raw_files

        ctx = run_context(get_current_context(), SETTINGS)
        new_files = new_raw_files(Lake(ctx.lake_root), ctx.ds)
        log.info("%d new raw file(s) by %s: %s", len(new_files), ctx.ds, new_files)
        follow = ["clean" if new_files else "no_new_data"]
        if day_file == MISSING:
            log.warning("the raw file of %s did not arrive by its deadline", ctx.ds)
            follow.append("day_missing")
        return follow

    @task.branch(execution_timeout=CHECK_TIMEOUT)
    def has_new_rows() -> str:
        """Branch to the model steps when clean added valid rows, or when an earlier features
        run left changed days whose marts are not rebuilt yet."""
        from fraudops.orchestration.arrivals import clean_summary

        ctx = run_context(get_current_context(), SETTINGS)
        summary = clean_summary(Lake(ctx.lake_root), ctx.safe_run_id, until=ctx.ds)
        log.info("clean summary: %s", summary)
        go_on = summary["has_new_rows"] or summary.get("features_pending")
        return "features" if go_on else "no_new_rows"

    steps = {
        name: spark_step(step, SETTINGS, outlets=OUTLETS.get(name, []),
                         **({"pool": NAMES["airflow"][step.pool]} if step.pool else {}),
                         **AFTER_ANY_PATH.get(name, {}))
        for name, step in STEPS.items()
    }
    no_new_data = EmptyOperator(task_id="no_new_data", execution_timeout=CHECK_TIMEOUT)
    no_new_rows = EmptyOperator(task_id="no_new_rows", execution_timeout=CHECK_TIMEOUT)
    day_missing = EmptyOperator(
        task_id="day_missing", execution_timeout=CHECK_TIMEOUT,
        doc_md="The logical day's raw file was not in the lake by its arrival deadline. The "
        "first run after it arrives cleans it (clean takes every unseen file up to its day).",
    )

    detect_new_files(wait_for_raw_file()) >> [steps["clean"], no_new_data, day_missing]
    steps["clean"] >> has_new_rows() >> [steps["features"], no_new_rows]
    chain(*(steps[name] for name in ("features", "train", "promote", "score", "report")))
    # Retention runs every day, whichever path the run took, once nothing before it failed.
    [steps["report"], no_new_rows, no_new_data] >> steps["retention"]


def utcnow() -> datetime:
    """The clock the arrival check reads (a test replaces it)."""
    return datetime.now(UTC)


fraud_retraining()
