"""Class weighting is a grid choice: what it does to the weights and to the classifier."""

from __future__ import annotations

import pytest

from spark_jobs import modeling
from spark_jobs.modeling import CLASS_WEIGHTING, Candidate


def test_weighting_choices():
    balanced = Candidate("gbt", {"maxDepth": 3, CLASS_WEIGHTING: "balanced"})
    unweighted = Candidate("gbt", {"maxDepth": 3, CLASS_WEIGHTING: "none"})
    default = Candidate("gbt", {"maxDepth": 3})
    assert modeling.fraud_weight(balanced, 1000, 10) == 50.0  # 99, capped at 50
    assert modeling.fraud_weight(default, 1000, 100) == 9.0
    assert modeling.fraud_weight(unweighted, 1000, 10) == 1.0
    assert modeling.fraud_weight(balanced, 1000, 0) == 1.0
    with pytest.raises(ValueError, match="classWeighting"):
        modeling.fraud_weight(Candidate("gbt", {CLASS_WEIGHTING: "smote"}), 1000, 10)


def test_the_weighting_choice_is_not_passed_to_the_classifier(spark):
    candidate = Candidate("random_forest", {"numTrees": 7, CLASS_WEIGHTING: "none"})
    classifier = modeling.pipeline(candidate, seed=1).getStages()[-1]
    assert classifier.getNumTrees() == 7 and classifier.getWeightCol() == modeling.WEIGHT
    assert len(modeling.candidates({"gbt": {"maxDepth": [3, 6], CLASS_WEIGHTING: ["none", "balanced"]}})) == 4
