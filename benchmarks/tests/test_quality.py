"""`make bench-quality`'s code path on a tiny lake: the production profile, the training job's
own selection and fit, the handbook's folds. The figures mean nothing at this size."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

import mlflow
import pytest

from benchmarks import quality
from fraudops.core import config
from fraudops.model.profile import PRODUCTION
from tests.paths import REPO


@pytest.mark.slow
def test_quality_benchmark_runs_the_training_jobs_path(tmp_path):
    output = tmp_path / "quality.json"
    subprocess.run(
        [sys.executable, "-m", "benchmarks.quality", "--workdir", str(tmp_path / "work"),
         "--output", str(output), "--customers", "60", "--terminals", "120", "--grid", "small",
         "--seeds", "3"],
        cwd=REPO, check=True, timeout=1800,
        # Its own MLflow store under --workdir, whatever an earlier test left in the environment.
        env={**{k: v for k, v in os.environ.items()
                if k not in (config.HOME_ENV, "MLFLOW_TRACKING_URI")}, "PYTHONPATH": str(REPO)},
    )
    figures = json.loads(output.read_text())
    assert figures["profile"] == {"version": PRODUCTION.version, "digest": PRODUCTION.digest,
                                  "grid": "small"}
    assert figures["seeds"] == [3] and list(figures["per_seed"]) == ["3"]
    one = figures["per_seed"]["3"]
    assert len(one["test_folds"]) == 4
    for key in ("auc_roc", "average_precision", "card_precision_at_100"):
        assert 0 <= one[key] <= 1
        assert figures[key] == one[key] and figures[f"{key}_spread"] == 0
    # The selection is the training job's: one nested MLflow run per candidate, in the seed's
    # own store.
    store = tmp_path / "work" / "seed-3" / ".mlflow" / "mlflow.db"
    client = mlflow.MlflowClient(f"sqlite:///{store}")
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()])
    assert {r.data.tags.get("fraudops.trial_family") for r in runs} >= {"xgboost", "random_forest"}
    parent = next(r for r in runs if r.info.run_name == "bench-quality")
    assert parent.data.params["profile_digest"] == PRODUCTION.digest
    assert parent.data.params["lake_seed"] == "3"


def test_figures_over_seeds_are_the_means_of_each_seeds_and_their_spread():
    per_seed = {seed: {"auc_roc": auc, "average_precision": ap, "card_precision_at_100": cp}
                for seed, auc, ap, cp in [(2, 0.88, 0.70, 0.30), (0, 0.86, 0.72, 0.32),
                                          (1, 0.87, 0.71, 0.28)]}
    figures = quality.over_seeds(per_seed)
    assert figures["seeds"] == [0, 1, 2] and list(figures["per_seed"]) == ["0", "1", "2"]
    assert figures["auc_roc"] == pytest.approx(0.87)
    assert figures["card_precision_at_100"] == pytest.approx(0.30)
    assert figures["average_precision_spread"] == pytest.approx((2 / 3) ** 0.5 / 100)


@pytest.mark.parametrize("text, seeds", [("0,1,2", [0, 1, 2]), ("2, 0,2", [0, 2]), ("5", [5])])
def test_seeds_are_read_as_a_sorted_set(text, seeds):
    assert quality.seed_list(text) == seeds


@pytest.mark.parametrize("text", ["", "a,b", "1.5"])
def test_bad_seeds_are_refused(text):
    with pytest.raises(argparse.ArgumentTypeError):
        quality.seed_list(text)
