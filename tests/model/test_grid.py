"""The grid in one task per fold (fraudops.model.grid) against the plain way: each candidate
fitted with xgboost.spark on each fold and scored by evaluation.evaluate
(spark_jobs.train.fold_scores)."""

from __future__ import annotations

import datetime as dt

import pytest
from pyspark.sql import functions as F

from fraudops.core.lake import PARTITION_COLUMN
from fraudops.model import families, grid
from fraudops.model.families import CLASS_WEIGHTING, Candidate
from fraudops.model.splits import Period, Split
from spark_jobs import train

START = dt.date(2018, 5, 1)


def day(i: int) -> str:
    return (START + dt.timedelta(days=i)).isoformat()


def labelled_days(spark, days: int = 12, per_day: int = 300):
    """Random features over ``days`` days, a tenth of them missing; the label depends on the
    amount and on one customer feature, so that models rank and differ."""
    features = families.INPUT_COLUMNS
    rows = spark.range(days * per_day).select(
        F.col("id").alias("transaction_id"),
        F.date_add(F.lit(START), (F.col("id") / per_day).cast("int")).alias(PARTITION_COLUMN),
        (F.col("id") % 53).alias("customer_id"),
        *[F.when(F.rand(100 + i) < 0.1, None).otherwise(F.rand(i) * 100).alias(name)
          for i, name in enumerate(features)])
    signal = F.coalesce(F.col(features[0]), F.lit(50)) + F.coalesce(F.col(features[2]), F.lit(0))
    return rows.withColumn(families.LABEL, (signal + F.rand(99) * 60 > 170).cast("int")) \
        .localCheckpoint()


FOLDS = [Split(Period(day(0), day(4)), Period(day(5), day(5)), Period(day(6), day(7))),
         Split(Period(day(2), day(6)), Period(day(7), day(7)), Period(day(8), day(10)))]


def xgb(n: int, weighting: str) -> Candidate:
    return Candidate("xgboost", {"max_depth": 3, "max_bin": 32, "n_estimators": n,
                                 "learning_rate": 0.3, CLASS_WEIGHTING: weighting})


def test_each_candidate_scores_as_when_fitted_alone_with_xgboost_spark(spark):
    data = labelled_days(spark)
    # Two candidates share a booster (rounds 4 and 9), a third weights frauds up.
    candidates = [xgb(4, "none"), xgb(9, "none"), xgb(9, "balanced")]
    fast = grid.grid_scores(candidates, data, FOLDS, seed=7)
    plain = [train.fold_scores(c, data, FOLDS, seed=7) for c in candidates]
    assert fast == plain
    assert len({s["average_precision"] for s in fast}) == 3  # three different models
    assert all(s["rows"] > 0 and s["frauds"] > 0 for s in fast)


def test_candidates_that_differ_in_rounds_only_share_a_booster():
    candidates = [xgb(4, "none"), xgb(9, "none"), xgb(9, "balanced"),
                  Candidate("xgboost", {"max_depth": 5, "n_estimators": 4})]
    boosters = grid._boosters(candidates, seed=1, nthread=2)
    assert [b.rounds for b in boosters] == [{4: 0, 9: 1}, {9: 2}, {4: 3}]
    assert [b.weighting for b in boosters] == ["none", "balanced", "balanced"]
    assert boosters[0].params == {"objective": "binary:logistic", "device": "cpu",
                                  "tree_method": "hist", "random_state": 1, "nthread": 2,
                                  "learning_rate": 0.3, "max_bin": 32, "max_depth": 3}
    assert boosters[2].max_bin == 256  # XGBoost's default, as the plain way gets it
    with pytest.raises(ValueError, match="classWeighting='smote'"):  # on the driver, early
        grid._boosters([xgb(4, "smote")], seed=1, nthread=1)


def test_only_an_xgboost_grid_goes_the_fast_way():
    assert grid.supports([xgb(4, "none")])
    assert not grid.supports([xgb(4, "none"), Candidate("random_forest", {"numTrees": 5})])
    assert not grid.supports([])
    with pytest.raises(ValueError, match="xgboost"):
        grid.grid_scores([Candidate("random_forest", {"numTrees": 5})], None, FOLDS, 1)
