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


def drift_report(as_of: str, psi: float, reference=("2018-05-01", "2018-05-21")) -> None:
    """A score run's drift report, as spark_jobs.score logs it."""
    log_run("score", as_of, metrics={"psi_max": psi},
            params={"drift_day": as_of, "drift_reference_start": reference[0],
                    "drift_reference_end": reference[1]})


def test_a_drift_alert_tunes_once_the_folds_hold_the_shifted_days(client):
    wait = tuning.drift_wait_days(PRODUCTION)
    p = PRODUCTION
    # The latest fold of a run as of D ends before its test window (D - delay - test days + 1)
    # and spans fold_train + delay + fold_assess days: all of them on or after the alert's day.
    assert wait == p.fold_train_days + 2 * p.label_delay_days + p.fold_assess_days \
        + p.test_days - 1 == 30
    tuned_on("2018-06-10")
    drift_report("2018-06-10", 0.1)
    assert tuning.choose(client, "auto", "2018-06-12", PRODUCTION).path == "refit"
    drift_report("2018-06-12", 0.9)  # the shift is seen on 06-12
    # Every later day alerts against the same reference: the same shift, not a new one.
    for day in range(13, 30):
        drift_report(f"2018-06-{day}", 0.9)
    waiting = tuning.choose(client, "auto", "2018-06-13", PRODUCTION)
    assert waiting.path == "refit" and "drift alert on 2018-06-12: tuning due 2018-07-12" in \
        waiting.reason, waiting
    # The weekly tuning comes on schedule but does not answer the alert: its folds end before
    # the shift.
    weekly = tuning.choose(client, "auto", "2018-06-17", PRODUCTION)
    assert weekly.path == "tune" and weekly.reason.startswith("schedule")
    tuned_on("2018-06-17")
    for day in ("2018-07-01", "2018-07-08"):
        tuned_on(day)  # the weekly tunings until then
    assert tuning.choose(client, "auto", "2018-07-11", PRODUCTION).path == "refit"
    due = tuning.choose(client, "auto", "2018-07-12", PRODUCTION)
    assert due.path == "tune" and due.reason.startswith("drift: PSI 0.90") \
        and "on 2018-06-12" in due.reason, due
    tuned_on("2018-07-12")  # that tuning answered the alert: one alert, one tuning
    for day in range(30, 31):
        drift_report(f"2018-06-{day}", 0.9)
    drift_report("2018-07-12", 0.9)
    assert tuning.choose(client, "auto", "2018-07-13", PRODUCTION).path == "refit"
    assert tuning.choose(client, "auto", "2018-07-18", PRODUCTION).path == "refit"
    # A new champion, a new reference: its first alert schedules a tuning of its own.
    drift_report("2018-07-14", 0.8, reference=("2018-06-20", "2018-07-10"))
    later = tuning.choose(client, "auto", "2018-07-15", PRODUCTION)
    assert later.path == "refit" and "drift alert on 2018-07-14: tuning due 2018-08-13" in \
        later.reason, later


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
