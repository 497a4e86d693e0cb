"""Class weighting is a grid choice: what it does to the weights and to the classifier."""

from __future__ import annotations

import pytest
from pyspark.sql import functions as F

from fraudops.model import evaluation, families
from fraudops.model.families import CLASS_WEIGHTING, Candidate
from spark_jobs import train


def test_weighting_choices():
    balanced = Candidate("gbt", {"maxDepth": 3, CLASS_WEIGHTING: "balanced"})
    unweighted = Candidate("gbt", {"maxDepth": 3, CLASS_WEIGHTING: "none"})
    default = Candidate("gbt", {"maxDepth": 3})
    assert families.fraud_weight(balanced, 1000, 10) == 50.0  # 99, capped at 50
    assert families.fraud_weight(default, 1000, 100) == 9.0
    assert families.fraud_weight(unweighted, 1000, 10) == 1.0
    assert families.fraud_weight(balanced, 1000, 0) == 1.0
    with pytest.raises(ValueError, match="classWeighting"):
        families.fraud_weight(Candidate("gbt", {CLASS_WEIGHTING: "smote"}), 1000, 10)


def test_the_weighting_choice_is_not_passed_to_the_classifier(spark):
    candidate = Candidate("random_forest", {"numTrees": 7, CLASS_WEIGHTING: "none"})
    classifier = families.pipeline(candidate, seed=1).getStages()[-1]
    assert classifier.getNumTrees() == 7 and classifier.getWeightCol() == families.WEIGHT
    assert len(families.candidates({"gbt": {"maxDepth": [3, 6], CLASS_WEIGHTING: ["none", "balanced"]}})) == 4


def synthetic_rows(spark, n: int = 3000):
    """Random features; the label depends on the first one only."""
    return spark.range(n).select(
        F.col("id").alias("transaction_id"),
        *[(F.rand(i) * 100).alias(name) for i, name in enumerate(families.INPUT_COLUMNS)],
    ).withColumn(families.LABEL, (F.col(families.INPUT_COLUMNS[0]) + F.rand(99) * 40 > 110)
                 .cast("int")).localCheckpoint()


@pytest.mark.parametrize("candidate", [
    Candidate("random_forest", {"numTrees": 5, "maxDepth": 4}),
    Candidate("xgboost", {"max_depth": 3, "n_estimators": 10, "subsample": 0.7,
                          "colsample_bytree": 0.7}),
], ids=lambda c: c.family)
def test_a_model_does_not_depend_on_the_order_of_its_rows(spark, candidate):
    """Same rows, seed and settings in another order and partitioning: the same model."""
    rows = synthetic_rows(spark)
    layouts = [rows.orderBy("transaction_id").coalesce(1),
               rows.repartition(3).orderBy(F.rand(7)),
               rows.orderBy(F.col("transaction_id").desc()).repartition(5)]
    scores = []
    for layout in layouts:
        model = train.fit(candidate, layout, seed=3)
        scored = families.fraud_probability(model.transform(rows)).select(
            "transaction_id", "fraud_probability")
        scores.append(sorted(tuple(r) for r in scored.collect()))
    assert scores[0] == scores[1] == scores[2]
    assert len({p for _, p in scores[0]}) > 10  # a real model, not a constant


@pytest.mark.parametrize("candidate", [
    Candidate("random_forest", {"numTrees": 5, "maxDepth": 4}),
    Candidate("xgboost", {"max_depth": 3, "n_estimators": 10}),
], ids=lambda c: c.family)
def test_importances_name_every_feature_and_find_the_informative_one(spark, candidate):
    model = train.fit(candidate, synthetic_rows(spark), seed=3)
    found = evaluation.importances(model, families.ALL_FEATURES)
    assert list(found) == families.ALL_FEATURES
    assert sum(found.values()) == pytest.approx(1.0)
    # The label is a function of the first input and of the ratios derived from it.
    top = max(found, key=found.get)
    assert top == families.INPUT_COLUMNS[0] or top.startswith("amount_to_avg"), found
