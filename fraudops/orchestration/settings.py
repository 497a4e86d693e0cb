"""Launch configuration of the DAG, read from the environment with documented defaults.

The DAG reads these at parse time (schedule, start date, backend), so they come from the
environment only: reading Airflow Variables there would hit the metadata database on every
parse. In the cluster the Airflow Helm values set them; locally `make/airflow.mk` does.
Every default that names something shared comes from fraudops/core/platform.yaml.
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from fraudops.core import config
from fraudops.core.platform import platform
from fraudops.core.steps import STEPS, RunContext
from fraudops.orchestration.timing import run_day

BACKEND_ENV = "FRAUDOPS_BACKEND"
SCHEDULE_ENV = "FRAUDOPS_SCHEDULE"
ARRIVAL_DEADLINE_ENV = "FRAUDOPS_ARRIVAL_DEADLINE_HOURS"
START_DATE_ENV = "FRAUDOPS_START_DATE"
SPARK_IMAGE_ENV = "FRAUDOPS_SPARK_IMAGE"
JOBS_NAMESPACE_ENV = "FRAUDOPS_JOBS_NAMESPACE"
KUBERNETES_CONN_ID_ENV = "FRAUDOPS_KUBERNETES_CONN_ID"
STEP_TIMEOUT_ENV = "FRAUDOPS_STEP_TIMEOUT_MINUTES"
RETRIES_ENV = "FRAUDOPS_TASK_RETRIES"
SPARK_TEMPLATE_ENV = "FRAUDOPS_SPARK_TEMPLATE"
# Extra options of one step's CLI, e.g. FRAUDOPS_PROMOTE_ARGS="--policy better --min-days 3".
STEP_ARGS_ENV = "FRAUDOPS_{step}_ARGS"

LOCAL = "local"
KUBERNETES = "kubernetes"
BACKENDS = (LOCAL, KUBERNETES)

DEFAULT_SCHEDULE = "@daily"
DEFAULT_START_DATE = "2018-04-01"  # the first day of the synthetic lake
# How long after its day has ended a run waits for the day's raw file (docs/dag.md).
DEFAULT_ARRIVAL_DEADLINE_HOURS = 6
DEFAULT_STEP_TIMEOUT_MINUTES = 120
DEFAULT_RETRIES = 2
# The repository layout (editable install, or an image that copies the repository as is).
DEFAULT_SPARK_TEMPLATE = (
    Path(__file__).resolve().parents[2] / "k8s" / "spark" / "sparkapplication.template.yaml"
)


@dataclass(frozen=True)
class Settings:
    backend: str
    lake_root: str
    tracking_uri: str | None  # None: the local job picks its own SQLite store
    schedule: str | None  # None: manual runs only
    start_date: datetime
    arrival_deadline: timedelta  # after the end of the day, the longest wait for its raw file
    step_timeout: timedelta
    retries: int  # per task, with exponential back-off
    spark_image: str
    jobs_namespace: str
    spark_service_account: str
    kubernetes_conn_id: str
    s3_endpoint: str
    spark_template: Path
    step_args: dict[str, tuple[str, ...]]  # step name -> extra CLI options

    @property
    def on_kubernetes(self) -> bool:
        return self.backend == KUBERNETES


def load_settings() -> Settings:
    env = os.environ
    names = platform()
    backend = env.get(BACKEND_ENV, LOCAL).strip().lower() or LOCAL
    if backend not in BACKENDS:
        raise ValueError(f"{BACKEND_ENV}={backend!r}: expected one of {', '.join(BACKENDS)}")
    on_kubernetes = backend == KUBERNETES
    return Settings(
        backend=backend,
        lake_root=_lake_root(on_kubernetes),
        tracking_uri=env.get(config.TRACKING_URI_ENV)
        or (_in_cluster_tracking_uri() if on_kubernetes else None),
        schedule=_schedule(env.get(SCHEDULE_ENV, DEFAULT_SCHEDULE)),
        start_date=_start_date(env.get(START_DATE_ENV) or DEFAULT_START_DATE),
        arrival_deadline=_arrival_deadline(
            env.get(ARRIVAL_DEADLINE_ENV) or str(DEFAULT_ARRIVAL_DEADLINE_HOURS)),
        step_timeout=timedelta(
            minutes=int(env.get(STEP_TIMEOUT_ENV) or DEFAULT_STEP_TIMEOUT_MINUTES)
        ),
        retries=int(env.get(RETRIES_ENV) or DEFAULT_RETRIES),
        spark_image=env.get(SPARK_IMAGE_ENV)
        or f"{names['images']['spark']}:{names['images']['default_tag']}",
        jobs_namespace=env.get(JOBS_NAMESPACE_ENV) or names["namespaces"]["jobs"],
        spark_service_account=names["service_accounts"]["spark_driver"],
        kubernetes_conn_id=env.get(KUBERNETES_CONN_ID_ENV) or "kubernetes_default",
        s3_endpoint=env.get(config.S3_ENDPOINT_ENV) or names["s3"]["endpoint"],
        spark_template=Path(env.get(SPARK_TEMPLATE_ENV) or DEFAULT_SPARK_TEMPLATE),
        step_args=_step_args(),
    )


def step_args_env(step: str) -> str:
    return STEP_ARGS_ENV.format(step=step.upper())


def parse_step_args(value: str) -> tuple[str, ...]:
    """A step's extra options as written in FRAUDOPS_<STEP>_ARGS (shell quoting)."""
    return tuple(shlex.split(value))


def _step_args() -> dict[str, tuple[str, ...]]:
    found = {}
    for step in STEPS:
        if value := os.environ.get(step_args_env(step), "").strip():
            found[step] = parse_step_args(value)
    return found


def kubernetes_lake_root() -> str:
    """The lake root on Kubernetes unless FRAUDOPS_LAKE_ROOT says otherwise."""
    return f"s3a://{platform()['buckets']['lake']}/lake"


def _lake_root(on_kubernetes: bool) -> str:
    if root := os.environ.get(config.LAKE_ROOT_ENV):
        return root.rstrip("/")
    if on_kubernetes:
        return kubernetes_lake_root()
    return config.default_lake_root()


def _in_cluster_tracking_uri() -> str:
    names = platform()
    host = f"{names['mlflow']['service']}.{names['namespaces']['platform']}.svc.cluster.local"
    return f"http://{host}:{names['mlflow']['port']}"


def _schedule(value: str) -> str | None:
    value = value.strip()
    return None if value.lower() in ("", "none") else value


def _start_date(value: str) -> datetime:
    try:
        day = datetime.strptime(value.strip(), "%Y-%m-%d")
    except ValueError as error:
        raise ValueError(f"{START_DATE_ENV}={value!r}: expected YYYY-MM-DD") from error
    return day.replace(tzinfo=UTC)


def _arrival_deadline(value: str) -> timedelta:
    try:
        hours = float(value)
    except ValueError:
        hours = -1.0
    if not 0 <= hours < 24:  # a run must not still wait when the next day's run is due
        raise ValueError(f"{ARRIVAL_DEADLINE_ENV}={value!r}: expected hours, at least 0, under 24")
    return timedelta(hours=hours)


def run_context(context: Mapping[str, Any], settings: Settings) -> RunContext:
    """The steps' view of an Airflow run: its logical day, its id, the lake root."""
    ds = context.get("ds")
    if not ds:  # Airflow 3 allows runs without a logical date: the last day ended by then
        ds = run_day(context["dag_run"].run_after)
    return RunContext(
        ds=ds, run_id=context["run_id"], lake_root=settings.lake_root,
        extra_args=settings.step_args,
    )
