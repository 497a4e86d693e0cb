"""The pipeline's Spark steps and their arguments, defined once.

The Airflow DAG, the local launcher and the SparkApplication builder all take a step's module
and arguments from here, so a job's command line is never retyped.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Resources:
    driver_cores: int = 1
    driver_memory: str = "2g"
    executor_cores: int = 2
    executor_memory: str = "4g"
    min_executors: int = 1
    max_executors: int = 4
    # Off: min_executors executors for the whole run. Spark refuses barrier stages (how
    # xgboost.spark trains) under dynamic allocation.
    dynamic_allocation: bool = True


@dataclass(frozen=True)
class RunContext:
    """What a DAG run tells its steps: the logical day, a run id, where the lake is."""

    ds: str  # YYYY-MM-DD: the day whose data the run processes and scores
    run_id: str
    lake_root: str
    # Extra command-line options per step name (FRAUDOPS_<STEP>_ARGS), after the standard ones.
    extra_args: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    @property
    def safe_run_id(self) -> str:
        """The run id as the steps, their files and their Kubernetes objects name the run: one
        per Airflow run id (unique_id), so two runs never share a summary or a name."""
        return unique_id(self.run_id)


@dataclass(frozen=True)
class Step:
    name: str
    module: str
    description: str
    resources: Resources = field(default_factory=Resources)
    # Writes the lake's state (manifest, clean_days.json, pending days, window sums): one such
    # task at a time (platform.yaml airflow.lake_writer_pool, and fraudops.core.lease).
    writes_lake_state: bool = False
    # Reads or moves @champion and settles the score ledger (promote, score): one such task at
    # a time (platform.yaml airflow.model_pool), so that overlapping runs neither race on the
    # aliases nor score with a champion another run is replacing.
    uses_champion: bool = False

    @property
    def pool(self) -> str | None:
        """The platform.yaml key (under airflow) of the Airflow pool this step's task takes."""
        if self.writes_lake_state:
            return "lake_writer_pool"
        return "model_pool" if self.uses_champion else None

    def args(self, ctx: RunContext) -> list[str]:
        common = ["--lake-root", ctx.lake_root, "--run-id", ctx.safe_run_id]
        return common + _STEP_ARGS[self.name](ctx) + list(ctx.extra_args.get(self.name, ()))


SAFE_ID_LENGTH = 63  # a DNS label
_SAFE_ID = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
_ID_HASH_LENGTH = 8


def safe_id(value: str) -> str:
    """A fixed name (a DAG id, a step) usable in Kubernetes names. Lossy: ``Retrain.1`` and
    ``retrain_1`` give one name, so run ids go through unique_id instead."""
    return re.sub(r"[^a-z0-9-]+", "-", value.lower()).strip("-")[:SAFE_ID_LENGTH]


def unique_id(value: str) -> str:
    """A run id usable in file names, Kubernetes names and MLflow tags, one per original id.

    An id that is already safe (lower-case letters, digits and inner dashes, 63 at most) is
    kept as it is. Any other is mapped as safe_id maps it, cut shorter, and given a short hash
    of the original, so that two ids that map alike (``Retrain.1`` and ``retrain_1``) still
    name two runs.
    """
    if _SAFE_ID.match(value):
        return value
    digest = hashlib.sha256(value.encode()).hexdigest()[:_ID_HASH_LENGTH]
    mapped = re.sub(r"[^a-z0-9]+", "-", value.lower()).strip("-")
    mapped = mapped[:SAFE_ID_LENGTH - _ID_HASH_LENGTH - 1].rstrip("-")
    return f"{mapped}-{digest}" if mapped else f"id-{digest}"


def is_safe_id(value: str) -> bool:
    """Whether ``value`` may name a run's files as it is (unique_id keeps it)."""
    return bool(_SAFE_ID.match(value))


_STEP_ARGS = {
    "clean": lambda ctx: ["--until", ctx.ds],
    "features": lambda ctx: [],
    "train": lambda ctx: ["--as-of", ctx.ds],
    "promote": lambda ctx: ["--as-of", ctx.ds],
    "score": lambda ctx: ["--date", ctx.ds],
    "report": lambda ctx: [],
    "retention": lambda ctx: [],
}

_TRAINING = Resources(driver_memory="4g", executor_memory="6g", min_executors=1,
                      max_executors=1, dynamic_allocation=False)

STEPS: dict[str, Step] = {
    step.name: step
    for step in (
        Step("clean", "spark_jobs.clean", "Parse, validate and deduplicate new raw files",
             writes_lake_state=True),
        Step("features", "spark_jobs.features", "Customer and terminal feature marts",
             writes_lake_state=True),
        Step("train", "spark_jobs.train", "Train a challenger with prequential validation",
             _TRAINING),
        Step("promote", "spark_jobs.promote", "Champion/challenger comparison and promotion",
             uses_champion=True),
        Step("score", "spark_jobs.score", "Score every arrived day with the champion",
             uses_champion=True),
        Step("report", "spark_jobs.report", "Metric-history report"),
        # Deletes what the lake's state no longer names: one writer at a time, like clean.
        Step("retention", "spark_jobs.retention",
             "Delete old run records, unpublished files, unused model versions",
             Resources(driver_memory="1g", max_executors=1, dynamic_allocation=False),
             writes_lake_state=True),
    )
}
