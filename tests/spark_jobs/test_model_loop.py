"""Train -> promote -> score -> rollback on a small generated lake, with a real MLflow store: an
MLflow server on PostgreSQL with S3 (moto) artifacts, as in production (the local SQLite
store's round trip is the end-to-end test's)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import mlflow
import pandas as pd
import pytest

from fraudops.core import scored, storage
from fraudops.core.lake import Lake
from fraudops.model import loading, registry, served, tracking, tuning
from fraudops.model.profile import PRODUCTION
from spark_jobs import clean, features, promote, report, score, train
from spark_jobs.datasets import clean_days, day_range
from tests.spark_jobs.lakes import copy_of

pytestmark = pytest.mark.slow

# Features are complete from the 38th day (2018-05-08). With a label delay of 2 days, a run as of
# AS_OF reads labels through 2018-05-17: it tests on 05-15..17, its evaluation model learns
# 05-03..12 less the 5 warm-up days, its folds (05-03..14 less the same) hold exactly one fold
# of 3 + 2 + 2 days, and the model that serves is refitted on 05-08..17.
AS_OF = "2018-05-19"
FIRST_FULL = "2018-05-08"
MATURED_END = "2018-05-17"
CFG = train.TrainConfig(train_days=10, delay_days=2, test_days=3, folds=1, fold_train_days=3,
                        fold_assess_days=2, grid="small")
THREE_DAYS = registry.Policy(min_days=3)  # CFG's test window
LOOSE = registry.Gates(min_roc_auc=0.5, min_average_precision=0.05, min_test_rows=100,
                       min_test_frauds=5)


@pytest.fixture(scope="module")
def small_lake(warmed_lake, tmp_path_factory) -> Lake:
    return copy_of(warmed_lake, tmp_path_factory.mktemp("loop"))


@pytest.fixture(scope="module")
def store(request, tmp_path_factory):
    """The tracking URI the scenario runs against, set the way users set it: the env var. The
    whole loop runs on what production runs, an MLflow server on PostgreSQL with S3 artifacts;
    the local SQLite store's round trip (train, promote, score, report) is the end-to-end
    test's (tests/orchestration/test_end_to_end.py, the demo's store)."""
    try:
        uri = request.getfixturevalue("mlflow_server")
    except pytest.FixtureLookupError:
        pytest.skip("no mlflow_server fixture (tests/conftest.py) in this checkout")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLFLOW_TRACKING_URI", uri)
        mp.setenv("FRAUDOPS_HOME", str(tmp_path_factory.mktemp("home")))
        yield uri


@pytest.fixture(scope="module")
def trained(spark, small_lake, store):
    return train.run(spark, small_lake, AS_OF, "run-1", CFG)


def test_training_logs_trials_inputs_model_and_plots(trained, store):
    client = mlflow.MlflowClient()
    parent = client.get_run(trained["mlflow_run_id"])
    trials = client.search_runs([parent.info.experiment_id],
                                f"tags.mlflow.parentRunId = '{parent.info.run_id}'")
    assert {t.data.tags["fraudops.trial_family"] for t in trials} == {"xgboost", "random_forest"}
    assert all("validation_average_precision" in t.data.metrics for t in trials)
    assert {i.dataset.name for i in parent.inputs.dataset_inputs} == {"train", "evaluation_train",
                                                                      "test"}
    assert {a.path for a in client.list_artifacts(parent.info.run_id)} >= {
        "model", loading.EVALUATION_MODEL}
    artifacts = {a.path for a in client.list_artifacts(parent.info.run_id, "plots")}
    assert {"plots/test_roc.png", "plots/test_precision_recall.png",
            "plots/feature_importances.png"} <= artifacts
    version = client.get_model_version(tracking.MODEL_NAME, trained["model_version"])
    assert version.run_id == parent.info.run_id
    info = mlflow.models.get_model_info(f"models:/{tracking.MODEL_NAME}/{version.version}")
    assert info.signature is not None and "pyspark" in str(info.flavors)
    for key in ("roc_auc", "average_precision", "card_precision_at_100"):
        assert 0.0 <= trained["test_metrics"][key] <= 1.0


def test_first_passing_model_becomes_champion_and_an_equal_one_is_not_promoted(
        spark, small_lake, trained, store):
    first = promote.run(spark, small_lake, AS_OF, "run-1", LOOSE, "ci")
    assert first["decision"] == "first_champion"
    assert first["champion_version"] == trained["model_version"]

    # A second version of the very same model: the interval of the difference is [0, 0].
    client = mlflow.MlflowClient()
    source = client.get_model_version(tracking.MODEL_NAME, trained["model_version"]).source
    twin = client.create_model_version(tracking.MODEL_NAME, source, trained["mlflow_run_id"])
    _write_train_summary(small_lake, "run-2", trained, twin.version)
    second = promote.run(spark, small_lake, AS_OF, "run-2", LOOSE, "ci", THREE_DAYS)
    assert second["decision"] == "rejected_policy"
    assert second["interval"]["low"] == second["interval"]["high"] == 0.0
    assert second["interval"]["days"] == 3
    assert second["champion_version"] == trained["model_version"]
    # The production policy wants more test days with a fraud than this window's three.
    _write_train_summary(small_lake, "run-2b", trained, twin.version)
    undecided = promote.run(spark, small_lake, AS_OF, "run-2b", LOOSE, "ci")
    assert undecided["decision"] == "no_decision" and "only 3 test day(s)" in undecided["reason"]

    # Another run deciding on the same version (a run id decides once: run-2 again would
    # return its recorded decision).
    _write_train_summary(small_lake, "run-3", trained, twin.version)
    strict = registry.Gates(min_roc_auc=0.999, min_average_precision=0.99)
    third = promote.run(spark, small_lake, AS_OF, "run-3", strict, "better")
    assert third["decision"] == "rejected_gates"

    # A backfill's challenger, trained on data that ends before the champion's: never promoted,
    # however it compares.
    older = {**trained, "serving": {"start": FIRST_FULL, "end": "2018-05-15"}}
    _write_train_summary(small_lake, "run-4", older, twin.version)
    fourth = promote.run(spark, small_lake, AS_OF, "run-4", LOOSE, "better")
    assert fourth["decision"] == "rejected_older" and MATURED_END in fourth["reason"]
    assert fourth["champion_version"] == trained["model_version"]


def test_scoring_covers_every_arrived_day_once_and_restates_a_corrected_one(
        spark, small_lake, trained, store, tmp_path):
    lake = copy_of(small_lake, tmp_path)
    client = mlflow.MlflowClient()
    versions = sorted(int(v.version) for v in client.search_model_versions(
        f"name = '{tracking.MODEL_NAME}'"))
    assert len(versions) >= 2
    champion, other = str(versions[0]), str(versions[-1])
    client.set_registered_model_alias(tracking.MODEL_NAME, registry.CHAMPION, other)
    client.set_registered_model_alias(tracking.MODEL_NAME, registry.PREVIOUS, champion)

    # The first run scores every warmed-up day that arrived, not only its own.
    summary = score.run(spark, lake, AS_OF, "score-1", top_k=50)
    assert summary["days"] == day_range(FIRST_FULL, AS_OF) and not summary["restated"]
    scores = pd.read_parquet(lake.scores)
    assert sorted(scores["tx_date"].astype(str).unique()) == summary["days"]
    assert set(scores["model_version"]) == {int(other)}
    one_day = scores[scores["tx_date"].astype(str) == AS_OF]
    assert sorted(one_day["rank"]) == list(range(1, len(one_day) + 1))
    assert one_day.sort_values("rank")["fraud_probability"].is_monotonic_decreasing
    alerts = pd.read_parquet(lake.alerts)
    assert (alerts.groupby(alerts["tx_date"].astype(str)).size() == 50).all()
    assert summary["psi"] and all(v >= 0 for v in summary["psi"].values())
    assert summary["drift_day"] == AS_OF
    assert scored.status(lake, clean_days(lake))["stale_scores"] == 0

    # Served quality: only the days whose labels matured by AS_OF, equal to pandas' figures.
    quality = served.measurements(lake)
    assert sorted(quality) == day_range(FIRST_FULL, served.matured_until(AS_OF))
    assert summary["served_quality"] == {d: {k: v for k, v in e.items() if k not in (
        "served", "measured_as_of", "measured_by", "remeasured")} for d, e in quality.items()}
    reference = served_reference(lake, sorted(quality), k=50)
    for day, want in reference.items():
        assert quality[day]["model_version"] == other
        assert quality[day]["rows"] == want["rows"]
        assert quality[day]["average_precision"] == pytest.approx(want["ap"], abs=1e-12)
        assert quality[day]["card_precision_at_50"] == want["cp"]
    history = mlflow.MlflowClient().get_metric_history(_served_run(other),
                                                       "served_average_precision")
    assert sorted(m.step for m in history) == [served.day_step(d) for d in sorted(quality)]

    # Nothing arrived since: the next run scores nothing again.
    assert score.run(spark, lake, AS_OF, "score-2", top_k=50)["days"] == []

    # A rollback changes what scores next, not the scores already served; a corrected file
    # restates its day (the newest: no later day's windows reach it) with the new champion.
    registry.rollback(client, tracking.MODEL_NAME)
    raw = Path(lake.raw_file(AS_OF))
    lines = raw.read_text().splitlines(keepends=True)
    raw.write_text("".join(lines[:-40]))
    fix = clean.run(lake, None, "fix", spark)
    assert fix["changed_dates"] == [AS_OF]
    features.run(spark, lake, fix["changed_dates"], "fix")
    third = score.run(spark, lake, AS_OF, "score-3", top_k=50)
    assert third["days"] == [AS_OF] and "own data changed" in third["restated"][AS_OF]
    rescored = pd.read_parquet(f"{lake.scores}/tx_date={AS_OF}")
    assert set(rescored["model_version"]) == {int(champion)}
    rows_now = storage.read_json(lake.clean_days)[AS_OF]["rows"]
    assert len(rescored) == rows_now < len(one_day)
    assert set(rescored["features_run"]) == {"fix"}
    entry = scored.ledger(lake)[AS_OF]
    assert entry["model_version"] == champion
    assert [r["previous_model_version"] for r in entry["restatements"]] == [other]
    assert registry.alias_version(client, tracking.MODEL_NAME, registry.PREVIOUS) == other
    assert scored.status(lake, clean_days(lake))["stale_scores"] == 0
    page = report.build(lake, tmp_path / "report").read_text()
    assert f"<td>{AS_OF}</td><td>restated</td>" in page and "own data changed" in page
    assert "0 stale" in page
    assert "served.png" in page
    # The restated day has not matured; a later run measures it with the scores that stand.
    later = served.matured_until(AS_OF, -served.LABEL_DELAY_DAYS)  # AS_OF + the delay
    fourth = score.run(spark, lake, later, "score-4", top_k=50)
    assert fourth["days"] == [] and max(fourth["served_quality"]) == AS_OF
    assert served.measurements(lake)[AS_OF]["model_version"] == champion
    assert served.measurements(lake)[AS_OF]["rows"] == rows_now


def served_reference(lake: Lake, days: list[str], k: int) -> dict[str, dict]:
    """Per day, with pandas and scikit-learn: rows, AP of the scores, frauds among the alert
    list's k cards over k."""
    from sklearn.metrics import average_precision_score

    scores = pd.read_parquet(lake.scores)
    clean = pd.read_parquet(lake.clean)
    alerts = pd.read_parquet(lake.alerts)
    out = {}
    for day in days:
        mine = scores[scores["tx_date"].astype(str) == day].merge(
            clean[clean["tx_date"].astype(str) == day][["transaction_id", "tx_fraud"]],
            on="transaction_id")
        cards = clean[clean["tx_date"].astype(str) == day].groupby("customer_id")["tx_fraud"].max()
        listed = alerts[(alerts["tx_date"].astype(str) == day) & (alerts["rank"] <= k)]
        out[day] = {"rows": len(mine),
                    "ap": average_precision_score(mine["tx_fraud"], mine["fraud_probability"]),
                    "cp": cards.reindex(listed["customer_id"]).fillna(0).sum() / k}
    return out


def _served_run(version: str) -> str:
    client = mlflow.MlflowClient()
    experiment = mlflow.get_experiment_by_name(tracking.EXPERIMENT)
    (run,) = client.search_runs([experiment.experiment_id],
                                f"tags.`{tracking.TAG_STEP}` = '{served.STEP}' and "
                                f"tags.`fraudops.model_version` = '{version}'")
    return run.info.run_id


def test_report_draws_the_history(small_lake, trained, store, tmp_path):
    out = report.run(small_lake, "report-1", tmp_path / "report")
    page = (tmp_path / "report" / "index.html").read_text()
    assert out["report"].endswith("index.html")
    # The latest decision of each day is shown: the older challenger's run of AS_OF above.
    assert "rejected_older" in page and "metrics.png" in page and "volumes.png" in page
    assert (tmp_path / "report" / "metrics.png").stat().st_size > 1000


def _write_train_summary(lake, run_id, trained, version):
    from fraudops.core import storage

    storage.write_json(lake.run_summary("train", run_id), {**trained, "run_id": run_id,
                                                           "model_version": str(version)})


def test_training_leaves_the_warm_up_out_tunes_first_then_refits(spark, small_lake, trained,
                                                                  store):
    assert trained["matured_end"] == MATURED_END
    assert trained["split"]["test"] == {"start": "2018-05-15", "end": MATURED_END}
    assert trained["split"]["train"] == {"start": FIRST_FULL, "end": "2018-05-12"}  # warm-up cut
    assert trained["serving"] == {"start": FIRST_FULL, "end": MATURED_END}
    assert trained["path"] == "tune" and "no configuration" in trained["path_reason"]
    client = mlflow.MlflowClient()
    parent = client.get_run(trained["mlflow_run_id"])
    assert parent.data.params["profile_version"] == str(PRODUCTION.version)
    # The version is the serving refit: its window is what drift and promotion read.
    assert registry.training_window(client, tracking.MODEL_NAME, trained["model_version"]) == (
        FIRST_FULL, MATURED_END)
    assert "profile.yaml" in {a.path for a in client.list_artifacts(parent.info.run_id)}

    refit = train.run(spark, small_lake, AS_OF, "run-refit", CFG)
    assert refit["path"] == "refit" and refit["best"] == trained["best"]
    assert refit["config"] == trained["config"] and not refit["validation_metrics"]
    run = client.get_run(refit["mlflow_run_id"])
    assert run.data.tags[tuning.TAG_PATH] == "refit"
    assert not client.search_runs([run.info.experiment_id],
                                  f"tags.mlflow.parentRunId = '{run.info.run_id}'")
    version = client.get_model_version(tracking.MODEL_NAME, refit["model_version"])
    assert version.tags[tuning.TAG_TUNED_ON] == AS_OF
    assert version.tags[tuning.TAG_CONFIG] == run.data.tags[tuning.TAG_CONFIG]

    forced = train.run(spark, small_lake, AS_OF, "run-tune",
                       dataclasses.replace(CFG, path="tune"))
    assert forced["path"] == "tune" and forced["path_reason"].startswith("forced")
