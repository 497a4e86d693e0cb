"""Loading registered Spark models by version or alias, the same way in promote and score."""

from __future__ import annotations

import mlflow
import mlflow.spark

from fraudops.model import registry, tracking


def load_version(version: str, name: str = tracking.MODEL_NAME):
    return mlflow.spark.load_model(f"models:/{name}/{version}", dfs_tmpdir=tracking.dfs_tmpdir())


def alias_version(alias: str, name: str = tracking.MODEL_NAME) -> str | None:
    """The version an alias points at, or None when the model or the alias does not exist (yet).

    An unreachable or failing tracking server raises tracking.TrackingUnavailable instead.
    """
    return registry.alias_version(mlflow.MlflowClient(), name, alias)
