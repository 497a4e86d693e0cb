"""The Airflow Assets the steps update, so other DAGs (and the UI's asset graph) can follow them.

Asset URIs must be valid URIs with a known meaning: lake folders become ``file://`` (a local
lake) or ``s3://`` (Spark's ``s3a://`` is the same object store, not a scheme Airflow knows);
the registered model, which has no standard scheme, uses the ``x-`` prefix Airflow reserves for
user-defined schemes.
"""

from __future__ import annotations

from pathlib import Path

from airflow.sdk import Asset

from fraudops.core.lake import Lake
from fraudops.core.platform import platform


def lake_asset_uri(path: str) -> str:
    if path.startswith("s3a://"):
        return "s3://" + path[len("s3a://") :]
    if "://" in path:
        return path
    return Path(path).resolve().as_uri()


def model_asset_uri(model_name: str) -> str:
    return f"x-mlflow://models/{model_name}"


def step_outlets(lake: Lake, model_name: str) -> dict[str, list[Asset]]:
    """Step name -> the assets a successful run of that step updates."""

    project = platform()["project"]

    def folder(name: str, path: str) -> Asset:
        return Asset(name=f"{project}-{name}", uri=lake_asset_uri(path), group="lake")

    return {
        "clean": [folder("clean-transactions", lake.clean)],
        "features": [
            folder("customer-features", lake.customer_features),
            folder("terminal-features", lake.terminal_features),
        ],
        "promote": [
            Asset(name=f"{model_name}-model", uri=model_asset_uri(model_name), group="model")
        ],
        "score": [folder("scores", lake.scores), folder("alerts", lake.alerts)],
    }
