"""Model families, their hyperparameter grids, and the Spark ML pipeline around them."""

from __future__ import annotations

import itertools
from dataclasses import dataclass

from pyspark.ml import Pipeline
from pyspark.ml.classification import GBTClassifier, RandomForestClassifier
from pyspark.ml.feature import SQLTransformer, VectorAssembler
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from fraudops.core.columns import (
    MODEL_FEATURES,
    WINDOWS_DAYS,
    customer_avg_amount,
    customer_nb_tx,
    terminal_risk,
)
from fraudops.core.lake import PARTITION_COLUMN
from fraudops.model.profile import PRODUCTION
from fraudops.model.splits import Period

LABEL = "tx_fraud"
WEIGHT = "class_weight"
# A grid choice like the classifiers' own parameters: how frauds are weighted in the loss.
# "balanced" weights them up to the share of legitimate rows (capped); "none" leaves them at 1,
# which often ranks better (AP) at the cost of calibration. Prequential validation decides.
CLASS_WEIGHTING = "classWeighting"
WEIGHTINGS = ("balanced", "none")

# Ratios the trees would otherwise have to approximate with many splits: how unusual this
# amount is for this customer (compromised cards spend several times their habit), whether the
# customer's recent amounts or pace run above their month, and whether a terminal's recent fraud
# ratio runs above its month.
_MONTH = max(WINDOWS_DAYS)
_RECENT = [w for w in WINDOWS_DAYS if w < _MONTH]


def _per(value: str) -> str:
    return f"greatest({value}, 0.01)"  # no division by a zero mean amount


DERIVED_FEATURES = {
    **{f"amount_to_avg_{w}day": f"tx_amount / {_per(customer_avg_amount(w))}"
       for w in WINDOWS_DAYS},
    **{f"avg_{w}day_to_avg_{_MONTH}day":
       f"{customer_avg_amount(w)} / {_per(customer_avg_amount(_MONTH))}" for w in _RECENT},
    **{f"pace_{w}day_to_{_MONTH}day":  # the recent daily rate against the month's: 1 is usual
       f"{customer_nb_tx(w)} * {_MONTH}.0 / ({w} * {customer_nb_tx(_MONTH)})" for w in _RECENT},
    **{f"risk_{w}day_minus_{_MONTH}day": f"{terminal_risk(w)} - {terminal_risk(_MONTH)}"
       for w in _RECENT},
}
_DERIVED_SQL = ", ".join(f"{sql} AS {name}" for name, sql in DERIVED_FEATURES.items())
INPUT_COLUMNS = list(MODEL_FEATURES)
ALL_FEATURES = [*MODEL_FEATURES, *DERIVED_FEATURES]


@dataclass(frozen=True)
class Candidate:
    family: str
    params: dict

    @property
    def name(self) -> str:
        return self.family + "(" + ", ".join(f"{k}={v}" for k, v in self.params.items()) + ")"


# The production grid is in the training profile (fraudops/model/profile.yaml); this one, one
# candidate per family, is for tests and quick runs (`train --grid small`).
SMALL_GRIDS: dict[str, dict[str, list]] = {
    "xgboost": {"max_depth": [3], "n_estimators": [20]},
    "random_forest": {"maxDepth": [6], "numTrees": [20]},
}


# XGBoost's tree method, wherever it is fitted (xgboost.spark here, fraudops.model.grid).
TREE_METHOD = "hist"

# The Python library a family's models need beyond PySpark, to fit and to load.
LIBRARIES = {"xgboost": "xgboost.spark"}


def libraries(grids: dict[str, dict[str, list]]) -> tuple[str, ...]:
    """The libraries the families of ``grids`` need: what a model step may import early."""
    return tuple(LIBRARIES[family] for family in grids if family in LIBRARIES)


# What train, promote and score import while their JVM starts (spark_jobs.session.get_spark).
PRODUCTION_LIBRARIES = libraries(PRODUCTION.grid)


def candidates(grids: dict[str, dict[str, list]]) -> list[Candidate]:
    out = []
    for family, grid in grids.items():
        keys = sorted(grid)
        for values in itertools.product(*(grid[k] for k in keys)):
            out.append(Candidate(family, dict(zip(keys, values))))
    return out


def _classifier(candidate: Candidate, seed: int):
    common = {"featuresCol": "features", "labelCol": LABEL, "weightCol": WEIGHT, "seed": seed}
    params = {k: v for k, v in candidate.params.items() if k != CLASS_WEIGHTING}
    if candidate.family == "gbt":
        return GBTClassifier(**common, **params)
    if candidate.family == "random_forest":
        return RandomForestClassifier(**common, **params)
    if candidate.family == "xgboost":
        from xgboost.spark import SparkXGBClassifier

        # One worker: the boosting rounds run in one Python task, with spark.task.cpus threads
        # (xgboost.spark's nthread; 1 unless set), and the model does not depend on how many
        # executors there are.
        return SparkXGBClassifier(features_col="features", label_col=LABEL, weight_col=WEIGHT,
                                  random_state=seed, num_workers=1, tree_method=TREE_METHOD,
                                  verbose=False, **params)
    raise ValueError(f"unknown model family {candidate.family!r}")


def feature_stages() -> list:
    """The pipeline's stages before its classifier: the derived ratios, then the vector of
    ALL_FEATURES (missing values kept as NaN)."""
    derived = SQLTransformer(statement=f"SELECT *, {_DERIVED_SQL} FROM __THIS__")
    assembler = VectorAssembler(inputCols=ALL_FEATURES, outputCol="features",
                                handleInvalid="keep")
    return [derived, assembler]


def pipeline(candidate: Candidate, seed: int = 42) -> Pipeline:
    return Pipeline(stages=[*feature_stages(), _classifier(candidate, seed)])


def days_of(df: DataFrame, period: Period) -> DataFrame:
    """The rows of ``df`` whose day lies in ``period``."""
    return df.where(F.col(PARTITION_COLUMN).between(F.lit(period.start).cast("date"),
                                                    F.lit(period.end).cast("date")))


def with_class_weights(df: DataFrame, fraud_weight: float) -> DataFrame:
    """Weight frauds up so that each class carries a comparable share of the loss."""
    return df.withColumn(WEIGHT, F.when(F.col(LABEL) == 1, F.lit(fraud_weight)).otherwise(1.0))


def weighting(candidate: Candidate) -> str:
    """The candidate's class weighting (``balanced`` unless it says), checked."""
    value = candidate.params.get(CLASS_WEIGHTING, "balanced")
    if value not in WEIGHTINGS:
        raise ValueError(f"{CLASS_WEIGHTING}={value!r}: expected one of {WEIGHTINGS}")
    return value


def weight_of_frauds(weighting: str, n_rows: int, n_frauds: int) -> float:
    """A fraud's weight under ``weighting`` (one of WEIGHTINGS) in rows of which n_frauds are
    frauds."""
    return balanced_fraud_weight(n_rows, n_frauds) if weighting == "balanced" else 1.0


def fraud_weight(candidate: Candidate, n_rows: int, n_frauds: int) -> float:
    return weight_of_frauds(weighting(candidate), n_rows, n_frauds)


def balanced_fraud_weight(n_rows: int, n_frauds: int, cap: float = 50.0) -> float:
    if n_frauds == 0:
        return 1.0
    return float(min(cap, (n_rows - n_frauds) / n_frauds))


def fraud_probability(df: DataFrame) -> DataFrame:
    from pyspark.ml.functions import vector_to_array

    return df.withColumn("fraud_probability", vector_to_array("probability")[1])
