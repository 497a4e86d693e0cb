"""MLflow set-up and the logging every job shares: experiment, inputs, plots, requirements."""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata
import json
import logging
import os
from collections.abc import Iterator

import mlflow
import requests
from mlflow.exceptions import MlflowException

from fraudops.core import config
from fraudops.core.platform import platform

log = logging.getLogger(__name__)

EXPERIMENT = platform()["project"]
MODEL_NAME = platform()["mlflow"]["model_name"]
TAG_PIPELINE_RUN = "fraudops.pipeline_run"
TAG_STEP = "fraudops.step"
TAG_AS_OF = "fraudops.as_of"

# What the logged model needs to be loaded elsewhere, pinned to what trained it.
_RUNTIME_PACKAGES = ("pyspark", "mlflow", "numpy", "pandas", "pyarrow", "xgboost-cpu")


# The one error code that means "this model, version, alias or run is not there". MLflow
# raises everything else (connection refused, timeouts, 5xx, a proxy's HTML page) with other
# codes, and none of those may be read as absence.
ABSENT = "RESOURCE_DOES_NOT_EXIST"


class TrackingUnavailable(RuntimeError):
    """MLflow did not answer a request: the step stops instead of guessing what it would say."""


def is_absent(exc: BaseException) -> bool:
    return isinstance(exc, MlflowException) and exc.error_code == ABSENT


def unavailable(exc: BaseException, doing: str, uri: str | None = None) -> TrackingUnavailable:
    """The error a step fails with when MLflow did not answer, naming the tracking server."""
    uri = uri or mlflow.get_tracking_uri()
    detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return TrackingUnavailable(
        f"MLflow tracking server {uri} failed while {doing}: {detail}. Stopping rather than "
        "reading that as 'nothing there'; run the step again once the server answers")


@contextlib.contextmanager
def fail_closed(doing: str, uri: str | None = None) -> Iterator[None]:
    """Turn any MLflow failure in the block into TrackingUnavailable, naming the server.

    "Does not exist" (``ABSENT``) passes through unchanged: the callers that may read it as
    absence catch it themselves, close to the request.
    """
    try:
        yield
    except MlflowException as exc:
        if is_absent(exc):
            raise
        raise unavailable(exc, doing, uri) from exc
    except requests.exceptions.RequestException as exc:
        raise unavailable(exc, doing, uri) from exc


def setup(tracking_uri: str | None = None) -> str:
    """Point MLflow at the configured store and select the project's experiment."""
    uri = tracking_uri or config.tracking_uri()
    mlflow.set_tracking_uri(uri)
    with fail_closed(f"selecting the experiment {EXPERIMENT!r}", uri):
        if mlflow.get_experiment_by_name(EXPERIMENT) is None:
            artifact_location = config.local_artifact_root() if uri.startswith("sqlite") else None
            mlflow.create_experiment(EXPERIMENT, artifact_location=artifact_location)
        mlflow.set_experiment(EXPERIMENT)
    return uri


def runs_of_pipeline_run(step: str, run_id: str) -> list:
    """The MLflow runs a step made for one pipeline run id, oldest first (any status)."""
    experiment = mlflow.get_experiment_by_name(EXPERIMENT)
    if experiment is None:
        return []
    return mlflow.MlflowClient().search_runs(
        [experiment.experiment_id],
        filter_string=f"tags.`{TAG_STEP}` = '{step}' and tags.`{TAG_PIPELINE_RUN}` = '{run_id}'",
        order_by=["attributes.start_time ASC"])


def start_step_run(step: str, run_id: str, run_name: str, tags: dict[str, str] | None = None):
    """Start the step's MLflow run for a pipeline run id, or resume the one an earlier attempt
    with that id left (it died before its summary), so that a retry adds no second run."""
    earlier = runs_of_pipeline_run(step, run_id)
    all_tags = {TAG_STEP: step, TAG_PIPELINE_RUN: run_id, **(tags or {})}
    if earlier:
        log.info("resuming MLflow run %s of an earlier %s attempt of %s",
                 earlier[-1].info.run_id, step, run_id)
        active = mlflow.start_run(run_id=earlier[-1].info.run_id)
        mlflow.set_tags(all_tags)
        return active
    return mlflow.start_run(run_name=run_name, tags=all_tags)


def end_abandoned_runs(step: str, run_id: str) -> None:
    """Mark the runs that killed attempts of a pipeline run left RUNNING as KILLED."""
    for run in runs_of_pipeline_run(step, run_id):
        if run.info.status == "RUNNING":
            mlflow.MlflowClient().set_terminated(run.info.run_id, "KILLED")


def finish(run) -> None:
    """Mark a run that a killed attempt left RUNNING (or FAILED) as the FINISHED one it is."""
    if run.info.status != "FINISHED":
        mlflow.MlflowClient().set_terminated(run.info.run_id, "FINISHED")


def pinned_requirements() -> list[str]:
    return [f"{name}=={importlib.metadata.version(name)}" for name in _RUNTIME_PACKAGES]


def dfs_tmpdir() -> str | None:
    """Where Spark models are staged for save/load: a shared s3a:// prefix on Kubernetes,
    where executors cannot read the driver's /tmp; the local default otherwise."""
    return os.environ.get("FRAUDOPS_DFS_TMPDIR") or None


def log_dataset(name: str, source: str, start: str, end: str, rows: int, frauds: int,
                context: str, fingerprint: str) -> None:
    """Record an input window: its source, day range, size and a digest of what it was."""
    from mlflow.data.meta_dataset import MetaDataset
    from mlflow.data.spark_dataset_source import SparkDatasetSource

    digest = hashlib.sha256(f"{fingerprint}|{start}|{end}|{rows}".encode()).hexdigest()[:16]
    dataset_source = SparkDatasetSource(path=source)
    dataset = MetaDataset(source=dataset_source, name=name, digest=digest)
    mlflow.log_input(dataset, context=context, tags={
        "start": start, "end": end, "rows": str(rows), "frauds": str(frauds)})


def log_figure(fig, path: str) -> None:
    mlflow.log_figure(fig, path)
    import matplotlib.pyplot as plt

    plt.close(fig)


def log_json(value, path: str) -> None:
    mlflow.log_dict(json.loads(json.dumps(value, default=str)), path)
