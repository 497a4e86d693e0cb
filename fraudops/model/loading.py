"""Loading registered Spark models by version or alias, the same way in promote and score."""

from __future__ import annotations

import mlflow
import mlflow.spark

from fraudops.model import registry, tracking

# The artifact of a training run holding its evaluation model (the run's configuration fitted
# on the evaluation split's training window): what promote scores for the run's version.
EVALUATION_MODEL = "evaluation_model"


def load_version(version: str, name: str = tracking.MODEL_NAME):
    return mlflow.spark.load_model(f"models:/{name}/{version}", dfs_tmpdir=tracking.dfs_tmpdir())


def load_evaluation(version: str, name: str = tracking.MODEL_NAME):
    """The evaluation model the training run of ``version`` logged (EVALUATION_MODEL): its
    configuration fitted on data that end a label delay before its test window
    (spark_jobs.train). A version whose run logged none (trained before evaluation models
    were kept) stands for itself."""
    run_id = mlflow.MlflowClient().get_model_version(name, str(version)).run_id
    if run_id and mlflow.MlflowClient().list_artifacts(run_id, EVALUATION_MODEL):
        return mlflow.spark.load_model(f"runs:/{run_id}/{EVALUATION_MODEL}",
                                       dfs_tmpdir=tracking.dfs_tmpdir())
    return load_version(version, name)


def alias_version(alias: str, name: str = tracking.MODEL_NAME) -> str | None:
    """The version an alias points at, or None when the model or the alias does not exist (yet).

    An unreachable or failing tracking server raises tracking.TrackingUnavailable instead.
    """
    return registry.alias_version(mlflow.MlflowClient(), name, alias)
