"""A tuning's XGBoost grid scored on its prequential folds in one Spark task per fold.

The plain way (spark_jobs.train.fold_scores) fits each candidate on each fold with
xgboost.spark: per fit a row count, a barrier job, a booster shipped to the driver and a
prediction job, around a booster that trains in one Python task anyway (num_workers=1). Here the
rows of each fold go to one task once (``groupBy(fold).applyInPandas``); the task builds the
training matrix as xgboost.spark builds it (the same rows in the same order, the same Arrow
batches, the same parameters: spark_jobs.train.fit lays the rows out as one partition sorted by
transaction id), trains the candidates there and returns their metrics only. Candidates that
differ only in ``n_estimators`` share one booster: the trees of round t depend only on the
rounds before it, so the first n trees of a longer booster are the booster of n rounds, and the
assess days are scored with ``iteration_range=(0, n)``.

The memory a task holds is what xgboost.spark's one worker holds for the same fold. A fold's
metrics are the plain way's, candidate by candidate: tests/model/test_grid.py compares the two.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from pyspark.ml import PipelineModel
from pyspark.ml.functions import vector_to_array
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from fraudops.core.lake import PARTITION_COLUMN
from fraudops.model import evaluation, families
from fraudops.model.families import LABEL, Candidate, days_of
from fraudops.model.splits import Split

FAMILY = "xgboost"
ROUNDS = "n_estimators"
_ROLE, _FOLD = "_grid_role", "_grid_fold"
_RESULT_SCHEMA = "fold int, candidate int, metric string, value double"


def supports(candidates: Sequence[Candidate]) -> bool:
    """Whether every candidate is one this module fits (XGBoost)."""
    return bool(candidates) and all(c.family == FAMILY for c in candidates)


@dataclass(frozen=True)
class _Booster:
    """One booster to train in a fold's task, and the candidates (by index) read off it at
    their number of rounds."""

    params: dict  # xgboost.train's parameters, as xgboost.spark passes them
    weighting: str
    max_bin: int
    rounds: dict[int, int]  # number of rounds -> candidate index


def _boosters(candidates: Sequence[Candidate], seed: int, nthread: int) -> list[_Booster]:
    groups: dict[tuple, dict[int, int]] = {}
    for index, candidate in enumerate(candidates):
        rest = {k: v for k, v in candidate.params.items() if k != ROUNDS}
        groups.setdefault(tuple(sorted(rest.items())), {})[candidate.params[ROUNDS]] = index
    out = []
    for rest, rounds in groups.items():
        params = dict(rest)
        params.pop(families.CLASS_WEIGHTING, None)
        weighting = families.weighting(candidates[next(iter(rounds.values()))])
        # What xgboost.spark hands xgboost.train for SparkXGBClassifier(tree_method="hist",
        # random_state=seed, ...) on a CPU with spark.task.cpus = nthread.
        booster = {"objective": "binary:logistic", "device": "cpu",
                   "tree_method": families.TREE_METHOD,
                   "random_state": seed, "nthread": nthread, **params}
        out.append(_Booster(booster, weighting, int(params.get("max_bin", 256)), rounds))
    return out


def fold_rows(data: DataFrame, folds: Sequence[Split]) -> DataFrame:
    """Each fold's train and assess rows, tagged, with the assembled features as float32
    arrays (as xgboost.spark converts them)."""
    parts = [days_of(data, period).withColumn(_FOLD, F.lit(i)).withColumn(_ROLE, F.lit(role))
             for i, fold in enumerate(folds)
             for role, period in (("train", fold.train), ("assess", fold.test))]
    rows = functools.reduce(DataFrame.unionByName, parts)
    assembled = PipelineModel(stages=families.feature_stages()).transform(rows)
    return assembled.select(_FOLD, _ROLE, "transaction_id", PARTITION_COLUMN, "customer_id",
                            F.col(LABEL).cast("double").alias(LABEL),
                            vector_to_array("features", dtype="float32").alias("values"))


def grid_scores(candidates: Sequence[Candidate], data: DataFrame, folds: Sequence[Split],
                seed: int) -> list[dict[str, float]]:
    """Each candidate's metrics over the folds, as spark_jobs.train.fold_scores gives them:
    the mean of each metric and its population standard deviation (``<metric>_std``)."""
    if not supports(candidates):
        raise ValueError(f"grid_scores fits {FAMILY} candidates only")
    spark = data.sparkSession
    conf = spark.sparkContext.getConf()
    task = functools.partial(
        _fold_task, _boosters(candidates, seed, int(conf.get("spark.task.cpus", "1"))),
        int(spark.conf.get("spark.sql.execution.arrow.maxRecordsPerBatch")))
    result = (fold_rows(data, folds).groupBy(_FOLD).applyInPandas(task, _RESULT_SCHEMA)
              .toPandas())
    out = []
    for index, candidate in enumerate(candidates):
        mine = result[result["candidate"] == index]
        per_fold = [dict(zip(rows["metric"], rows["value"]))
                    for _, rows in mine.groupby("fold", sort=True)]
        if len(per_fold) != len(folds):
            raise RuntimeError(f"candidate {candidate.name}: metrics of {len(folds)} folds "
                               f"expected, got {len(per_fold)}")
        out.append(evaluation.over_folds(per_fold))
    return out


def _fold_task(boosters: list[_Booster], batch_rows: int, rows: pd.DataFrame) -> pd.DataFrame:
    """Runs in a Spark Python worker: every booster of the grid on one fold's rows."""
    import xgboost
    from xgboost.spark.data import alias, create_dmatrix_from_partitions

    fold = int(rows[_FOLD].iloc[0])
    train = rows[rows[_ROLE] == "train"].sort_values("transaction_id", ignore_index=True)
    assess = rows[rows[_ROLE] == "assess"].sort_values("transaction_id", ignore_index=True)
    features = np.stack(assess["values"].to_numpy()) if len(assess) else None
    n_rows, n_frauds = len(train), int(train[LABEL].sum())
    out = []
    for booster in boosters:
        weight = families.weight_of_frauds(booster.weighting, n_rows, n_frauds)
        matrix = pd.DataFrame({alias.label: train[LABEL], alias.data: train["values"],
                               alias.weight: np.where(train[LABEL] == 1, weight, 1.0)})
        batches = (matrix.iloc[i:i + batch_rows] for i in range(0, len(matrix), batch_rows))
        dtrain, _ = create_dmatrix_from_partitions(
            iterator=batches, feature_cols=None, dev_ordinal=None, use_qdm=True,
            kwargs={"nthread": booster.params["nthread"], "missing": math.nan,
                    "max_bin": booster.max_bin},
            enable_sparse_data_optim=False, has_validation_col=False)
        model = xgboost.train(booster.params, dtrain, num_boost_round=max(booster.rounds),
                              verbose_eval=False)
        for n, index in booster.rounds.items():
            probability = (model.inplace_predict(features, iteration_range=(0, n),
                                                 missing=math.nan)
                           if features is not None else np.empty(0, dtype=np.float32))
            scored = assess[["transaction_id", PARTITION_COLUMN, "customer_id", LABEL]].assign(
                **{LABEL: assess[LABEL].astype(int),
                   "fraud_probability": np.asarray(probability, dtype=np.float64)})
            for metric, value in evaluation.metrics_of(scored).items():
                out.append((fold, index, metric, float(value)))
    return pd.DataFrame(out, columns=["fold", "candidate", "metric", "value"])
