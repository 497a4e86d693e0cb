"""Tune rarely, refit daily: the path a training run takes, read from a real (SQLite) MLflow
store holding the runs earlier steps would have logged."""

from __future__ import annotations

import dataclasses

import mlflow
import pytest

from fraudops.model import tracking, tuning
from fraudops.model.profile import PRODUCTION, load


@pytest.fixture
def client(tmp_path, monkeypatch, mlflow_sqlite):
    monkeypatch.setenv("FRAUDOPS_HOME", str(tmp_path))
    tracking.setup(mlflow_sqlite)
    return mlflow.MlflowClient()


def log_run(step: str, as_of: str, tags: dict | None = None, metrics: dict | None = None,
            params: dict | None = None) -> str:
    with mlflow.start_run() as run:
        mlflow.set_tags({tracking.TAG_STEP: step, tracking.TAG_AS_OF: as_of, **(tags or {})})
        mlflow.log_metrics(metrics or {})
        mlflow.log_params(params or {})
    return run.info.run_id


def tuned_on(as_of: str, version: int = PRODUCTION.version) -> None:
    config = tuning.TunedConfig("gbt", {"maxDepth": 4}, as_of, version)
    log_run("train", as_of, {tuning.TAG_PATH: tuning.TUNE, **config.tags()})


def test_the_profile_is_one_versioned_file():
    profile = load()
    assert profile == PRODUCTION and profile.version >= 1 and len(profile.digest) == 12
    assert profile.grid and profile.tune_every_days == 7


def test_first_run_tunes_then_refits_within_the_week(client):
    first = tuning.choose(client, "auto", "2018-06-10", PRODUCTION)
    assert first.path == "tune" and "no configuration" in first.reason
    tuned_on("2018-06-10")
    for day in ("2018-06-10", "2018-06-11", "2018-06-16"):
        choice = tuning.choose(client, "auto", day, PRODUCTION)
        assert choice.path == "refit", (day, choice)
        assert choice.config.params == {"maxDepth": 4} and choice.config.tuned_on == "2018-06-10"
    weekly = tuning.choose(client, "auto", "2018-06-17", PRODUCTION)
    assert weekly.path == "tune" and weekly.reason.startswith("schedule")
    assert tuning.choose(client, "tune", "2018-06-11", PRODUCTION).path == "tune"
    assert tuning.choose(client, "refit", "2018-06-30", PRODUCTION).path == "refit"


def test_a_configuration_of_another_profile_version_is_not_reused(client):
    tuned_on("2018-06-10", version=PRODUCTION.version + 1)
    assert tuning.choose(client, "auto", "2018-06-11", PRODUCTION).path == "tune"
    newer = dataclasses.replace(PRODUCTION, version=PRODUCTION.version + 1)
    assert tuning.choose(client, "auto", "2018-06-11", newer).path == "refit"


def test_a_drift_alert_after_the_tuning_triggers_one_tuning(client):
    tuned_on("2018-06-10")
    log_run("score", "2018-06-10", metrics={"psi_max": 0.1})
    assert tuning.choose(client, "auto", "2018-06-12", PRODUCTION).path == "refit"
    log_run("score", "2018-06-12", metrics={"psi_max": 0.9})
    choice = tuning.choose(client, "auto", "2018-06-13", PRODUCTION)
    assert choice.path == "tune" and choice.reason.startswith("drift")
    assert tuning.choose(client, "auto", "2018-06-12", PRODUCTION).path == "refit"  # not yet
    tuned_on("2018-06-13")  # that tuning answered the alert
    assert tuning.choose(client, "auto", "2018-06-14", PRODUCTION).path == "refit"


def test_a_falling_champion_triggers_a_tuning(client):
    tuned_on("2018-06-10")
    trained = log_run("train", "2018-06-01", metrics={"test_average_precision": 0.8})
    client.create_registered_model(tracking.MODEL_NAME)
    version = client.create_model_version(tracking.MODEL_NAME, "runs:/x/model", trained)
    log_run("promote", "2018-06-11", metrics={"champion_average_precision": 0.7},
            params={"champion_version": version.version})
    assert tuning.choose(client, "auto", "2018-06-12", PRODUCTION).path == "refit"
    log_run("promote", "2018-06-12", metrics={"champion_average_precision": 0.4},
            params={"champion_version": version.version})
    choice = tuning.choose(client, "auto", "2018-06-13", PRODUCTION)
    assert choice.path == "tune" and choice.reason.startswith("metric"), choice
