"""The model steps when things fail on purpose, against a real MLflow server on PostgreSQL that
this module owns, so that it can stop it and start it again without disturbing other tests:

- an outage of the tracking server during promote and during score: the step fails naming the
  server, the aliases do not move, and nothing is read as "no champion";
- a retry with the same run id after success (train, promote, score): the same outcome, one
  model version, the aliases unchanged;
- a retry after a crash (train after registering, promote after moving the aliases, score after
  writing the day): it converges on what one uninterrupted run writes, moving nothing twice.
"""

from __future__ import annotations

from pathlib import Path

import mlflow
import pandas as pd
import pytest
from mlflow import MlflowClient

from fraudops.core import storage
from fraudops.core.lake import Lake
from fraudops.model import registry, tracking
from fraudops.model.registry import CHAMPION, PREVIOUS
from spark_jobs import promote, score, train
from tests import servers
from tests.spark_jobs.lakes import copy_of
from tests.spark_jobs.test_model_loop import AS_OF, CFG, LOOSE

pytestmark = pytest.mark.slow

# The same warmed-up lake, window and gates as the model loop's own tests.
DAY = AS_OF
NAME = tracking.MODEL_NAME


class Killed(BaseException):
    """A crash: nothing in the job catches it, as nothing catches SIGKILL."""


@pytest.fixture(scope="module")
def lake(warmed_lake, tmp_path_factory) -> Lake:
    return copy_of(warmed_lake, tmp_path_factory.mktemp("failures"))


@pytest.fixture(scope="module")
def server(postgres_server, s3_server):
    """A tracking server of this module's own (its own database and artifact prefix)."""
    backend = servers.create_database(postgres_server, "failures")
    server = servers.MlflowServer(backend, s3_server, artifacts_prefix="failures")
    server.start()
    yield server
    server.close()


def _use(server, mp, home) -> None:
    mp.setenv("MLFLOW_TRACKING_URI", server.url)
    mp.setenv("FRAUDOPS_HOME", str(home))


def _global_tracking_uri():
    from mlflow.tracking._tracking_service import utils

    return utils._tracking_uri


@pytest.fixture(scope="module")
def trained(spark, lake, server, tmp_path_factory) -> dict:
    """A trained version, made champion by its promotion (run id f-train)."""
    old = _global_tracking_uri()
    with pytest.MonkeyPatch.context() as mp:
        _use(server, mp, tmp_path_factory.mktemp("home"))
        summary = train.run(spark, lake, AS_OF, "f-train", CFG)
        promote.run(spark, lake, AS_OF, "f-train", LOOSE, "ci")
        mlflow.set_tracking_uri(old)
    return summary


@pytest.fixture
def on_server(server, trained, monkeypatch, tmp_path):
    """This test's jobs and clients use the module's server; MLflow's client tries once, with
    a short timeout (by default it retries for minutes). The server is up again afterwards."""
    old = _global_tracking_uri()
    _use(server, monkeypatch, tmp_path)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "20")
    yield server
    if not server.running:
        server.start()
    mlflow.set_tracking_uri(old)


def aliases(client: MlflowClient) -> dict[str, str]:
    return {k: str(v) for k, v in client.get_registered_model(NAME).aliases.items()}


def versions(client: MlflowClient) -> list[str]:
    return sorted(v.version for v in client.search_model_versions(f"name = '{NAME}'"))


def step_runs(client: MlflowClient, step: str, run_id: str) -> list:
    experiment = client.get_experiment_by_name(tracking.EXPERIMENT)
    return client.search_runs(
        [experiment.experiment_id],
        f"tags.`fraudops.step` = '{step}' and tags.`fraudops.pipeline_run` = '{run_id}'")


def twin(client: MlflowClient, lake: Lake, trained: dict, run_id: str) -> str:
    """What train registers for ``run_id``, without training: a new version of the same model,
    tagged with the run id, and its summary in the lake."""
    source = client.get_model_version(NAME, trained["model_version"]).source
    version = client.create_model_version(NAME, source, trained["mlflow_run_id"],
                                          tags={"fraudops.pipeline_run": run_id}).version
    storage.write_json(lake.run_summary("train", run_id),
                       {**trained, "run_id": run_id, "model_version": str(version)})
    return str(version)


def outcome(call):
    try:
        return call(), None
    except BaseException as exc:  # noqa: BLE001 (which exception it is, is what is tested)
        return None, exc


def down_at_the_champion_lookup(monkeypatch, server) -> list:
    """Stop the server for the job's first look at @champion only (a short outage)."""
    real = registry.alias_version
    seen = []

    def lookup(client, name, alias):
        if alias != CHAMPION or seen:
            return real(client, name, alias)
        seen.append(alias)
        server.stop()
        try:
            return real(client, name, alias)
        finally:
            server.start()

    monkeypatch.setattr(registry, "alias_version", lookup)
    return seen


def assert_names_the_server(error, server) -> None:
    assert error is not None, "the step succeeded while the tracking server was down"
    assert f"MLflow tracking server {server.url} failed" in str(error), repr(error)
    assert isinstance(error, tracking.TrackingUnavailable)


# An outage during promote -------------------------------------------------------------------------

def test_promote_fails_closed_when_the_server_is_down_at_the_champion_lookup(
        spark, lake, trained, on_server, monkeypatch):
    client = MlflowClient(on_server.url)
    twin(client, lake, trained, "f-outage-lookup")
    before = aliases(client)
    assert before[CHAMPION] == trained["model_version"]
    seen = down_at_the_champion_lookup(monkeypatch, on_server)

    _, error = outcome(lambda: promote.run(spark, lake, AS_OF, "f-outage-lookup", LOOSE, "ci"))
    assert seen, "the outage was not injected"
    assert_names_the_server(error, on_server)
    assert aliases(client) == before
    assert storage.read_json(lake.run_summary("promote", "f-outage-lookup")) is None
    assert step_runs(client, "promote", "f-outage-lookup") == []


def test_promote_fails_closed_when_the_server_goes_away_after_deciding_and_a_retry_decides(
        spark, lake, trained, on_server, monkeypatch):
    client = MlflowClient(on_server.url)
    challenger = twin(client, lake, trained, "f-outage-decided")
    before = aliases(client)
    real = registry.decide

    def decide_then_outage(*args, **kwargs):
        decision = real(*args, **kwargs)
        on_server.stop()
        return decision

    monkeypatch.setattr(registry, "decide", decide_then_outage)
    _, error = outcome(lambda: promote.run(spark, lake, AS_OF, "f-outage-decided", LOOSE,
                                           "better"))
    assert_names_the_server(error, on_server)
    on_server.start()
    assert aliases(client) == before
    assert "fraudops.decision" not in client.get_model_version(NAME, challenger).tags

    monkeypatch.setattr(registry, "decide", real)
    retried = promote.run(spark, lake, AS_OF, "f-outage-decided", LOOSE, "better")
    assert retried["decision"] == "rejected_policy"  # the very same model: not better
    assert aliases(client) == before
    assert [r.info.status for r in step_runs(client, "promote", "f-outage-decided")] == [
        "FINISHED"]


# An outage during score ---------------------------------------------------------------------------

def test_score_fails_closed_when_the_server_is_down_at_the_champion_lookup(
        spark, lake, trained, on_server, monkeypatch):
    client = MlflowClient(on_server.url)
    before = aliases(client)
    seen = down_at_the_champion_lookup(monkeypatch, on_server)
    _, error = outcome(lambda: score.run(spark, lake, "2018-05-07", "f-score-lookup", 50))
    assert seen, "the outage was not injected"
    assert_names_the_server(error, on_server)
    assert aliases(client) == before
    assert not storage.exists(lake.partition(lake.scores, "2018-05-07"))
    assert storage.read_json(lake.run_summary("score", "f-score-lookup")) is None


def test_score_fails_when_the_server_goes_away_after_writing_and_a_retry_converges(
        spark, lake, trained, on_server, monkeypatch):
    client = MlflowClient(on_server.url)
    before = aliases(client)
    real = score.champion_training_window

    def outage_then_window(version):
        on_server.stop()
        return real(version)

    monkeypatch.setattr(score, "champion_training_window", outage_then_window)
    _, error = outcome(lambda: score.run(spark, lake, DAY, "f-score-late", 50))
    assert_names_the_server(error, on_server)
    on_server.start()
    assert aliases(client) == before
    assert storage.read_json(lake.run_summary("score", "f-score-late")) is None

    monkeypatch.setattr(score, "champion_training_window", real)
    first = score.run(spark, lake, DAY, "f-score-late", 50)
    scores = pd.read_parquet(lake.partition(lake.scores, DAY)).sort_values("transaction_id")
    alerts = pd.read_parquet(lake.partition(lake.alerts, DAY)).sort_values("rank")
    assert first["rows_by_day"][DAY] == len(scores) > 0
    assert set(scores["run_id"]) == {"f-score-late"} and DAY in first["days"]
    assert [r.info.status for r in step_runs(client, "score", "f-score-late")] == ["FINISHED"]

    # A retry after success changes nothing: same summary, same files, no second run.
    files = sorted(storage.list_files(lake.partition(lake.scores, DAY)), key=lambda f: f.path)
    again = score.run(spark, lake, DAY, "f-score-late", 50)
    assert again == first
    assert sorted(storage.list_files(lake.partition(lake.scores, DAY)),
                  key=lambda f: f.path) == files
    pd.testing.assert_frame_equal(
        pd.read_parquet(lake.partition(lake.alerts, DAY)).sort_values("rank"), alerts)
    assert len(step_runs(client, "score", "f-score-late")) == 1


# Retries of train and promote ---------------------------------------------------------------------

def test_a_retried_train_and_promote_return_their_outcome_and_change_nothing(
        spark, lake, trained, on_server):
    client = MlflowClient(on_server.url)
    before_versions, before_aliases = versions(client), aliases(client)
    promoted = storage.read_json(lake.run_summary("promote", "f-train"))
    assert promoted["decision"] == "first_champion"

    again = train.run(spark, lake, AS_OF, "f-train", CFG)
    assert again == trained
    assert versions(client) == before_versions
    assert len(step_runs(client, "train", "f-train")) == 1

    decided = promote.run(spark, lake, AS_OF, "f-train", LOOSE, "ci")
    assert decided == promoted
    assert aliases(client) == before_aliases and versions(client) == before_versions
    assert len(step_runs(client, "promote", "f-train")) == 1


def test_a_train_that_died_after_registering_returns_that_version_on_retry(
        spark, lake, trained, on_server):
    """The state a SIGKILL between registration and the summary leaves: the version exists,
    the MLflow run is still RUNNING, the lake has no summary."""
    client = MlflowClient(on_server.url)
    before = versions(client)
    path = lake.run_summary("train", "f-train")
    written = storage.read_bytes(path)
    Path(path).unlink()
    client.update_run(trained["mlflow_run_id"], "RUNNING")

    again = train.run(spark, lake, AS_OF, "f-train", CFG)
    assert again == trained
    assert storage.read_bytes(path) == written
    assert versions(client) == before
    assert client.get_run(trained["mlflow_run_id"]).info.status == "FINISHED"


def test_a_promote_that_died_after_moving_the_aliases_finishes_without_moving_them_again(
        spark, lake, trained, on_server, monkeypatch):
    client = MlflowClient(on_server.url)
    challenger = twin(client, lake, trained, "f-crash")
    champion = aliases(client)[CHAMPION]
    real_decide, real_write = registry.decide, storage.write_json

    def decide(challenger_metrics, champion_metrics, interval, gates, *args):
        """As if the challenger were better than the champion; the real rule without one."""
        if champion_metrics is None:
            return real_decide(challenger_metrics, champion_metrics, interval, gates, *args)
        return registry.Decision(True, "promoted", "better than the champion (test)")

    def dies_before_the_summary(path, value):
        if path == lake.run_summary("promote", "f-crash"):
            raise Killed(path)
        real_write(path, value)

    monkeypatch.setattr(registry, "decide", decide)
    monkeypatch.setattr(storage, "write_json", dies_before_the_summary)
    with pytest.raises(Killed):
        promote.run(spark, lake, AS_OF, "f-crash", LOOSE, "better")
    moved = aliases(client)
    assert moved == {CHAMPION: challenger, PREVIOUS: champion}

    monkeypatch.setattr(storage, "write_json", real_write)
    retried = promote.run(spark, lake, AS_OF, "f-crash", LOOSE, "better")
    assert (retried["decision"], retried["previous_champion_version"],
            retried["champion_version"]) == ("promoted", champion, challenger)
    assert storage.read_json(lake.run_summary("promote", "f-crash")) == retried
    assert aliases(client) == moved
    assert [r.info.status for r in step_runs(client, "promote", "f-crash")] == ["FINISHED"]
