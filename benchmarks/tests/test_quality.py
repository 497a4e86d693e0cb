"""`make bench-quality`'s code path on a tiny lake: the production profile, the training job's
own selection and fit, the handbook's folds. The figures mean nothing at this size."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import mlflow
import pytest

from fraudops.core import config
from fraudops.model.profile import PRODUCTION
from tests.paths import REPO

pytestmark = pytest.mark.slow


def test_quality_benchmark_runs_the_training_jobs_path(tmp_path):
    output = tmp_path / "quality.json"
    subprocess.run(
        [sys.executable, "-m", "benchmarks.quality", "--workdir", str(tmp_path / "work"),
         "--output", str(output), "--customers", "60", "--terminals", "120", "--grid", "small"],
        cwd=REPO, check=True, timeout=1800,
        # Its own MLflow store under --workdir, whatever an earlier test left in the environment.
        env={**{k: v for k, v in os.environ.items()
                if k not in (config.HOME_ENV, "MLFLOW_TRACKING_URI")}, "PYTHONPATH": str(REPO)},
    )
    figures = json.loads(output.read_text())
    assert figures["profile"] == {"version": PRODUCTION.version, "digest": PRODUCTION.digest,
                                  "grid": "small"}
    assert len(figures["test_folds"]) == 4
    for key in ("auc_roc", "average_precision", "card_precision_at_100"):
        assert 0 <= figures[key] <= 1
    # The selection is the training job's: one nested MLflow run per candidate.
    client = mlflow.MlflowClient(f"sqlite:///{tmp_path / 'work' / '.mlflow' / 'mlflow.db'}")
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()])
    assert {r.data.tags.get("fraudops.trial_family") for r in runs} >= {"xgboost", "random_forest"}
    parent = next(r for r in runs if r.info.run_name == "bench-quality")
    assert parent.data.params["profile_digest"] == PRODUCTION.digest
