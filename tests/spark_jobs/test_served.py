"""Spark's average precision per group equals scikit-learn's, ties included."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import average_precision_score

from spark_jobs import served


def test_average_precision_per_group_equals_scikit_learn_with_ties(spark):
    rng = np.random.default_rng(5)
    rows = []
    for group in ("a", "b", "c"):
        scores = rng.choice([0.1, 0.2, 0.35, 0.5, 0.9], size=300)  # many ties
        labels = (rng.random(300) < scores * 0.3).astype(int)
        rows += [(group, float(s), int(y)) for s, y in zip(scores, labels)]
    rows += [("none", 0.4, 0), ("none", 0.2, 0)]
    frame = spark.createDataFrame(rows, "g string, fraud_probability double, tx_fraud int")
    got = {r["g"]: r for r in served.average_precision(frame, ["g"]).collect()}
    for group in ("a", "b", "c"):
        mine = [(s, y) for g, s, y in rows if g == group]
        want = average_precision_score([y for _, y in mine], [s for s, _ in mine])
        assert got[group]["average_precision"] == pytest.approx(want, abs=1e-12)
        assert got[group]["rows"] == 300
    assert got["none"]["average_precision"] is None and got["none"]["frauds"] == 0
