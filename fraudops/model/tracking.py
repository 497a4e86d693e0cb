"""MLflow set-up and the logging every job shares: experiment, inputs, plots, requirements."""

from __future__ import annotations

import hashlib
import importlib.metadata
import io
import json
import logging
import os

import mlflow

from fraudops.core import config
from fraudops.core.platform import platform

log = logging.getLogger(__name__)

EXPERIMENT = platform()["project"]
MODEL_NAME = platform()["mlflow"]["model_name"]
TAG_PIPELINE_RUN = "fraudops.pipeline_run"
TAG_STEP = "fraudops.step"
TAG_AS_OF = "fraudops.as_of"

# What the logged model needs to be loaded elsewhere, pinned to what trained it.
_RUNTIME_PACKAGES = ("pyspark", "mlflow", "numpy", "pandas", "pyarrow")


def setup(tracking_uri: str | None = None) -> str:
    """Point MLflow at the configured store and select the project's experiment."""
    uri = tracking_uri or config.tracking_uri()
    mlflow.set_tracking_uri(uri)
    if mlflow.get_experiment_by_name(EXPERIMENT) is None:
        artifact_location = config.local_artifact_root() if uri.startswith("sqlite") else None
        mlflow.create_experiment(EXPERIMENT, artifact_location=artifact_location)
    mlflow.set_experiment(EXPERIMENT)
    return uri


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


def png_bytes(fig) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    return buffer.getvalue()
