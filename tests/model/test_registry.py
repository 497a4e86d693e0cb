"""Champion/challenger decisions, the aliases that carry them and the rollback CLI, on a local
SQLite store and on the MLflow server fixture (PostgreSQL, S3 artifacts). No Spark: the model
versions are registered from runs directly, since only the registry entries matter here."""

from __future__ import annotations

import http.server
import json
import math
import os
import re
import shutil
import subprocess
import sys
import threading
import uuid
from dataclasses import dataclass

import mlflow
import pytest

from fraudops.model import registry, rollback, tracking
from fraudops.model.metrics import DayInterval
from fraudops.model.registry import CHAMPION, PREVIOUS, Gates
from tests.paths import REPO
from tests.servers import free_port

GATES = Gates()
GOOD = {"roc_auc": 0.90, "average_precision": 0.50, "rows": 5000, "frauds": 100}


def interval(low: float, high: float, observed: float | None = None,
             days: int = 7) -> DayInterval:
    observed = (low + high) / 2 if observed is None else observed
    return DayInterval(observed=observed, mean=observed, low=low, high=high, confidence=0.95,
                       days=days, per_day={})


# decide(): no store needed ---------------------------------------------------------------------

def test_the_first_model_passing_the_gates_is_the_first_champion():
    decision = registry.decide(GOOD, None, None, GATES)
    assert (decision.promote, decision.kind) == (True, "first_champion")


@pytest.mark.parametrize("field, value, message", [
    ("roc_auc", 0.79, "roc_auc=0.79 < 0.8"),
    ("average_precision", 0.29, "average_precision=0.29 < 0.3"),
    ("rows", 999, "rows=999 < 1000"),
    ("frauds", 19, "frauds=19 < 20"),
    ("roc_auc", math.nan, "roc_auc=nan < 0.8"),
])
def test_each_gate_rejects_on_its_own(field, value, message):
    decision = registry.decide({**GOOD, field: value}, None, None, GATES)
    assert (decision.promote, decision.kind) == (False, "rejected_gates")
    assert decision.reason == f"gates not passed: {message}"


def test_gates_come_before_the_policy_even_for_a_much_better_challenger():
    decision = registry.decide({**GOOD, "frauds": 5}, GOOD, interval(0.2, 0.4), GATES)
    assert decision.kind == "rejected_gates" and "frauds=5 < 20" in decision.reason


@pytest.mark.parametrize("low, high, kind", [
    (0.001, 0.05, "promoted"),
    (0.0, 0.05, "rejected_policy"),  # the lower bound must be above zero, not at it
    (-0.02, 0.03, "rejected_policy"),
    (-0.05, -0.01, "rejected_policy"),
])
def test_policy_ci_needs_the_lower_bound_above_zero(low, high, kind):
    decision = registry.decide(GOOD, GOOD, interval(low, high, 0.01), GATES, "ci")
    assert decision.kind == kind and decision.promote == (kind == "promoted")
    assert (decision.diff, decision.ci_low, decision.ci_high) == (0.01, low, high)


def test_policy_better_compares_the_observed_difference():
    better = {**GOOD, "average_precision": 0.51}
    assert registry.decide(better, GOOD, None, GATES, "better").kind == "promoted"
    assert registry.decide(GOOD, GOOD, None, GATES, "better").kind == "rejected_policy"
    # With an interval, its observed difference is used, and its bounds are reported.
    decision = registry.decide(GOOD, GOOD, interval(-0.1, 0.3, 0.02), GATES, "better")
    assert decision.kind == "promoted" and decision.ci_low == -0.1


def test_an_older_challenger_never_replaces_a_champion_trained_on_later_data():
    window = ("2018-05-20", "2018-06-10")
    older = registry.older_than_champion("2018-06-01", window, "3")
    assert older is not None and not older.promote and older.kind == "rejected_older"
    assert "v3" in older.reason and "2018-06-10" in older.reason
    assert registry.older_than_champion("2018-06-10", window, "3") is None  # same data: compare
    assert registry.older_than_champion("2018-06-11", window, "3") is None
    assert registry.older_than_champion("2018-06-01", None, "3") is None  # no window logged


def test_policy_ci_decides_nothing_on_too_few_days_with_a_fraud():
    rules = registry.Policy(min_days=5)
    decision = registry.decide(GOOD, GOOD, interval(0.1, 0.3, days=4), GATES, "ci", rules)
    assert decision.kind == "no_decision" and not decision.promote
    assert "only 4 test day(s)" in decision.reason
    assert registry.decide(GOOD, GOOD, interval(0.1, 0.3, days=5), GATES, "ci",
                           rules).kind == "promoted"


@pytest.mark.parametrize("policy", ["ci", "better"])
def test_a_challenger_worse_on_card_precision_is_not_promoted(policy):
    champion = {**GOOD, "card_precision_at_100": 0.30}
    slightly = {**GOOD, "average_precision": 0.6, "card_precision_at_100": 0.295}
    worse = {**slightly, "card_precision_at_100": 0.28}
    better_ap = interval(0.05, 0.15, 0.1)
    assert registry.decide(slightly, champion, better_ap, GATES, policy).promote
    decision = registry.decide(worse, champion, better_ap, GATES, policy)
    assert decision.kind == "rejected_policy" and "card precision@100 0.280" in decision.reason


def test_a_fresher_model_not_worse_replaces_an_old_champion_only():
    rules = registry.Policy(non_inferiority_margin=0.02, max_champion_age_days=28)
    close = interval(-0.015, 0.01, -0.002)
    assert registry.decide(GOOD, GOOD, close, GATES, "ci", rules, 27).kind == "rejected_policy"
    old = registry.decide(GOOD, GOOD, close, GATES, "ci", rules, 28)
    assert old.kind == "refreshed" and old.promote and "28 days older" in old.reason
    worse = interval(-0.03, 0.01, -0.01)
    assert registry.decide(GOOD, GOOD, worse, GATES, "ci", rules, 60).kind == "rejected_policy"


def test_the_policy_comes_from_the_profile():
    from fraudops.model.profile import PRODUCTION

    rules = registry.Policy.from_profile(PRODUCTION)
    assert rules.min_days >= 2 and 0 < rules.confidence < 1
    assert set(PRODUCTION.promotion) == set(registry.Policy.__dataclass_fields__)


def test_policy_errors():
    with pytest.raises(ValueError, match="needs an interval"):
        registry.decide(GOOD, GOOD, None, GATES, "ci")
    with pytest.raises(ValueError, match="unknown policy"):
        registry.decide(GOOD, GOOD, interval(0.1, 0.2), GATES, "vibes")


# The registry: a local SQLite store and the MLflow server ---------------------------------------


def apply_decision(client, name: str, version: str, decision: registry.Decision,
                   run_id: str | None = None) -> None:
    """A decision carried out outside a pipeline run: the aliases move from @champion as it is
    now (promote records first under its run id: record_decision, then apply_record)."""
    champion = registry.alias_version(client, name, CHAMPION)
    registry.apply_record(client, name,
                          registry.Record(None, str(version), decision, champion, run_id))


@pytest.fixture(scope="module",
                params=["local", pytest.param("server", marks=pytest.mark.server)])
def tracking_uri(request, tmp_path_factory, migrated_mlflow_db):
    if request.param == "local":
        path = tmp_path_factory.mktemp("registry") / "mlflow.db"
        shutil.copyfile(migrated_mlflow_db, path)
        return f"sqlite:///{path}"
    return request.getfixturevalue("mlflow_server")


@dataclass
class Model:
    client: mlflow.MlflowClient
    name: str
    experiment_id: str

    def new_version(self) -> tuple[str, str]:
        """A run and a version registered from it: (version, run id)."""
        run = self.client.create_run(self.experiment_id)
        self.client.set_terminated(run.info.run_id)
        version = self.client.create_model_version(
            self.name, f"{run.info.artifact_uri}/model", run.info.run_id)
        return str(version.version), run.info.run_id

    def alias(self, alias: str) -> str | None:
        return registry.alias_version(self.client, self.name, alias)

    def decision_tag(self, version: str) -> str | None:
        return self.client.get_model_version(self.name, version).tags.get("fraudops.decision")

    def promote(self, challenger: dict, champion: dict | None, bootstrap=None,
                policy: str = "ci") -> tuple[str, registry.Decision]:
        """What the promote job does, without Spark: a new version, a decision, the aliases."""
        version, run_id = self.new_version()
        decision = registry.decide(challenger, champion, bootstrap, GATES, policy)
        apply_decision(self.client, self.name, version, decision, run_id)
        return version, decision


@pytest.fixture
def model(tracking_uri, tmp_path, monkeypatch) -> Model:
    """A fresh registered model (and experiment) for each test, on either store."""
    # mlflow-artifacts:/ URIs resolve against the global tracking URI, as the jobs set it.
    monkeypatch.setenv("MLFLOW_TRACKING_URI", tracking_uri)
    client = mlflow.MlflowClient(tracking_uri=tracking_uri)
    name = f"fraud-test-{uuid.uuid4().hex[:8]}"
    location = (tmp_path / "artifacts").as_uri() if tracking_uri.startswith("sqlite") else None
    experiment_id = client.create_experiment(name, artifact_location=location)
    client.create_registered_model(name)
    return Model(client, name, experiment_id)


def test_first_passing_model_becomes_champion_and_the_decision_is_recorded(model):
    version, decision = model.promote(GOOD, None)
    assert decision.kind == "first_champion"
    assert model.alias(CHAMPION) == version and model.alias(PREVIOUS) is None
    mv = model.client.get_model_version(model.name, version)
    assert mv.tags["fraudops.decision"] == "first_champion"
    assert json.loads(mv.tags["fraudops.decision_detail"])["kind"] == "first_champion"
    run = model.client.get_run(mv.run_id)
    assert json.loads(run.data.tags["fraudops.decision_detail"])["promote"] is True


def test_a_first_model_failing_the_gates_gets_no_alias(model):
    version, decision = model.promote({**GOOD, "roc_auc": 0.6}, None)
    assert decision.kind == "rejected_gates"
    assert model.alias(CHAMPION) is None and model.decision_tag(version) == "rejected_gates"


def test_a_worse_challenger_is_rejected_and_the_champion_stays(model):
    first, _ = model.promote(GOOD, None)
    worse = {**GOOD, "average_precision": 0.45}
    second, decision = model.promote(worse, GOOD, interval(-0.08, 0.0, -0.05))
    assert decision.kind == "rejected_policy" and not decision.promote
    assert model.alias(CHAMPION) == first and model.alias(PREVIOUS) is None
    assert model.decision_tag(second) == "rejected_policy"
    assert model.decision_tag(first) == "first_champion"


def test_a_better_challenger_is_promoted_and_the_old_champion_becomes_previous(model):
    first, _ = model.promote(GOOD, None)
    better = {**GOOD, "average_precision": 0.6}
    second, decision = model.promote(better, GOOD, interval(0.02, 0.15, 0.1))
    assert decision.kind == "promoted"
    assert model.alias(CHAMPION) == second and model.alias(PREVIOUS) == first
    third, _ = model.promote({**GOOD, "average_precision": 0.7}, better, interval(0.01, 0.2))
    assert model.alias(CHAMPION) == third and model.alias(PREVIOUS) == second


def test_a_challenger_failing_a_gate_is_rejected_even_if_better(model):
    first, _ = model.promote(GOOD, None)
    second, decision = model.promote({**GOOD, "average_precision": 0.9, "frauds": 10}, GOOD,
                                     interval(0.2, 0.5))
    assert decision.kind == "rejected_gates" and "frauds=10 < 20" in decision.reason
    assert model.alias(CHAMPION) == first and model.alias(PREVIOUS) is None
    assert model.decision_tag(second) == "rejected_gates"


def test_re_deciding_the_champion_itself_keeps_previous_unset(model):
    first, run_id = model.new_version()
    decision = registry.decide(GOOD, None, None, GATES)
    apply_decision(model.client, model.name, first, decision, run_id)
    apply_decision(model.client, model.name, first, decision, run_id)
    assert model.alias(CHAMPION) == first and model.alias(PREVIOUS) is None


def test_rollback_swaps_champion_and_previous_and_a_second_one_undoes_it(model):
    first, _ = model.promote(GOOD, None)
    second, _ = model.promote({**GOOD, "average_precision": 0.6}, GOOD, interval(0.02, 0.15))

    assert registry.rollback(model.client, model.name) == (first, second)
    assert model.alias(CHAMPION) == first and model.alias(PREVIOUS) == second
    assert model.decision_tag(first) == "rolled_back_to"
    assert model.decision_tag(second) == "promoted"

    assert registry.rollback(model.client, model.name) == (second, first)
    assert model.alias(CHAMPION) == second and model.alias(PREVIOUS) == first
    assert model.decision_tag(second) == "rolled_back_to"


def test_rollback_without_previous_is_a_clear_error(model):
    with pytest.raises(SystemExit, match=f"{model.name} has no @previous version"):
        registry.rollback(model.client, model.name)  # no version at all
    first, _ = model.promote(GOOD, None)
    with pytest.raises(SystemExit, match="no @previous version to roll back to"):
        registry.rollback(model.client, model.name)
    assert model.alias(CHAMPION) == first


def test_alias_version_is_none_for_an_unknown_alias_or_model(model):
    assert model.alias("nope") is None
    assert registry.alias_version(model.client, f"{model.name}-missing", CHAMPION) is None


# Recorded decisions: one promotion per pipeline run id ---------------------------------------------

def record(model: Model, challenger: dict, champion: dict | None, bootstrap=None,
           pipeline_run: str = "run-a") -> registry.Record:
    """promote's write-ahead half: a new version and its decision, no alias moved yet."""
    version, run_id = model.new_version()
    decision = registry.decide(challenger, champion, bootstrap, GATES)
    before = model.alias(CHAMPION)
    return registry.record_decision(model.client, model.name, version, decision, pipeline_run,
                                    before, run_id)


def test_a_recorded_decision_is_applied_once_and_read_back(model):
    first, _ = model.promote(GOOD, None)
    written = record(model, {**GOOD, "average_precision": 0.6}, GOOD, interval(0.02, 0.1))
    assert model.alias(CHAMPION) == first  # recorded, not applied: nothing moved
    read = registry.recorded_decision(model.client, model.name, written.version, "run-a")
    assert read == written and not read.applied
    assert registry.recorded_decision(model.client, model.name, written.version, "run-b") is None

    applied = registry.apply_record(model.client, model.name, read)
    assert applied.applied and model.alias(CHAMPION) == written.version
    assert model.alias(PREVIOUS) == first
    assert registry.recorded_decision(model.client, model.name, written.version,
                                      "run-a") == applied
    # A rollback, then a retry of the run that promoted: it must not promote again.
    registry.rollback(model.client, model.name)
    assert registry.apply_record(model.client, model.name, applied) == applied
    assert model.alias(CHAMPION) == first and model.alias(PREVIOUS) == written.version


def test_a_decision_whose_aliases_moved_before_the_crash_is_not_moved_twice(model):
    first, _ = model.promote(GOOD, None)
    written = record(model, {**GOOD, "average_precision": 0.6}, GOOD, interval(0.02, 0.1))
    # The crashed attempt moved both aliases but died before marking the record applied.
    model.client.set_registered_model_alias(model.name, PREVIOUS, first)
    model.client.set_registered_model_alias(model.name, CHAMPION, written.version)
    applied = registry.apply_record(model.client, model.name, written)
    assert applied.applied
    assert model.alias(CHAMPION) == written.version and model.alias(PREVIOUS) == first


def test_a_recorded_promotion_is_not_applied_once_the_champion_moved_elsewhere(model):
    first, _ = model.promote(GOOD, None)
    written = record(model, {**GOOD, "average_precision": 0.6}, GOOD, interval(0.02, 0.1))
    third, _ = model.promote({**GOOD, "average_precision": 0.7}, GOOD, interval(0.02, 0.1))
    with pytest.raises(SystemExit, match=f"@champion is now v{third}"):
        registry.apply_record(model.client, model.name, written)
    assert model.alias(CHAMPION) == third and model.alias(PREVIOUS) == first


def test_a_recorded_rejection_moves_nothing(model):
    first, _ = model.promote(GOOD, None)
    written = record(model, {**GOOD, "frauds": 3}, GOOD, interval(0.2, 0.3))
    applied = registry.apply_record(model.client, model.name, written)
    assert applied.applied and applied.decision.kind == "rejected_gates"
    assert applied.champion_after == first
    assert model.alias(CHAMPION) == first and model.alias(PREVIOUS) is None
    assert model.decision_tag(written.version) == "rejected_gates"


# Fail closed: an unreachable or failing server is never "no champion" ---------------------------

@pytest.fixture
def quick_http(monkeypatch):
    """MLflow's client retries for minutes by default; here one try, a short timeout."""
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "5")


class _Failing(http.server.BaseHTTPRequestHandler):
    status, body, content_type = 503, b"upstream connect error", "text/plain"

    def do_GET(self):  # noqa: N802 (the http.server API)
        self.send_response(self.status)
        self.send_header("Content-Type", self.content_type)
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    do_POST = do_PATCH = do_DELETE = do_GET

    def log_message(self, *args):
        pass


@pytest.fixture(params=["closed port", "503", "404 html", "500 json"])
def broken_server(request):
    """The URI of a tracking server that does not answer as one."""
    if request.param == "closed port":
        yield f"http://127.0.0.1:{free_port()}"  # nothing listens there
        return
    status, body, content_type = {
        "503": (503, b"upstream connect error", "text/plain"),
        "404 html": (404, b"<html>no such route</html>", "text/html"),
        "500 json": (500, json.dumps({"error_code": "INTERNAL_ERROR",
                                      "message": "database is down"}).encode(),
                     "application/json"),
    }[request.param]
    handler = type("Handler", (_Failing,), {"status": status, "body": body,
                                            "content_type": content_type})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def _outcome(call):
    try:
        return call(), None
    except BaseException as exc:  # noqa: BLE001 (which exception it is, is what is tested)
        return None, exc


def test_alias_version_fails_closed_naming_the_server(broken_server, quick_http):
    client = mlflow.MlflowClient(tracking_uri=broken_server)
    got, error = _outcome(lambda: registry.alias_version(client, "fraud-detector", CHAMPION))
    assert error is not None, (
        f"alias_version returned {got!r} from {broken_server}: an outage read as absence")
    assert f"MLflow tracking server {broken_server} failed" in str(error), repr(error)
    assert "@champion of fraud-detector" in str(error)
    assert isinstance(error, tracking.TrackingUnavailable)


def test_rollback_cli_fails_closed_naming_the_server(broken_server, quick_http, capsys):
    _, error = _outcome(lambda: rollback.main(["--tracking-uri", broken_server]))
    assert re.search(f"MLflow tracking server {re.escape(broken_server)} failed",
                     str(error)), repr(error)
    assert isinstance(error, tracking.TrackingUnavailable)
    assert capsys.readouterr().out == ""


@pytest.fixture
def global_tracking_uri(monkeypatch):
    """Put MLflow's process-wide tracking URI (and the variable it sets) back afterwards."""
    from mlflow.tracking._tracking_service import utils

    old = utils._tracking_uri
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    yield
    mlflow.set_tracking_uri(old)


def test_a_step_fails_closed_on_an_unreachable_server_naming_it(global_tracking_uri, quick_http):
    uri = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(tracking.TrackingUnavailable,
                       match=f"MLflow tracking server {re.escape(uri)} failed while selecting"):
        tracking.setup(uri)


# The rollback CLI on a local SQLite store --------------------------------------------------------

@pytest.fixture
def local_model(tmp_path, monkeypatch, mlflow_sqlite) -> tuple[str, Model]:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("MLFLOW_REGISTRY_URI", raising=False)
    monkeypatch.setenv("FRAUDOPS_HOME", str(tmp_path))
    uri = mlflow_sqlite
    client = mlflow.MlflowClient(tracking_uri=uri)
    name = f"fraud-cli-{uuid.uuid4().hex[:8]}"
    experiment_id = client.create_experiment(name, (tmp_path / "artifacts").as_uri())
    client.create_registered_model(name)
    return uri, Model(client, name, experiment_id)


def test_rollback_cli_moves_the_champion_back_and_prints_a_summary(local_model, capsys):
    uri, model = local_model
    first, _ = model.promote(GOOD, None)
    second, _ = model.promote({**GOOD, "average_precision": 0.6}, GOOD, interval(0.02, 0.15))

    summary = rollback.main(["--tracking-uri", uri, "--model-name", model.name])
    expected = {"model_name": model.name, "rolled_back_from": second,
                "champion_version": first, "previous_version": second}
    assert summary == expected
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1]) == expected
    assert model.alias(CHAMPION) == first and model.alias(PREVIOUS) == second


def test_rollback_cli_reads_the_tracking_uri_from_the_environment(local_model, monkeypatch):
    uri, model = local_model
    first, _ = model.promote(GOOD, None)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    with pytest.raises(SystemExit, match="no @previous version"):
        rollback.main(["--model-name", model.name])
    assert model.alias(CHAMPION) == first


def test_rollback_cli_help(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")
    with pytest.raises(SystemExit) as exit_info:
        rollback.main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: python -m fraudops.model.rollback")
    assert "--tracking-uri" in out and "(default: fraud-detector)" in out


NO_PYSPARK = """
import sys
class NoSpark:
    def find_spec(self, name, path=None, target=None):
        if name == "pyspark" or name.startswith("pyspark."):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
sys.meta_path.insert(0, NoSpark())
from fraudops.model import rollback
from tests.paths import REPO
rollback.main(sys.argv[1:])
"""


def test_rollback_cli_runs_without_pyspark(local_model):
    """As in an image without Spark: pyspark cannot be imported at all."""
    uri, model = local_model
    first, _ = model.promote(GOOD, None)
    second, _ = model.promote({**GOOD, "average_precision": 0.6}, GOOD, interval(0.02, 0.15))
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env["PYTHONPATH"] = str(REPO)
    result = subprocess.run(
        [sys.executable, "-c", NO_PYSPARK, "--tracking-uri", uri, "--model-name", model.name],
        capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.strip().splitlines()[-1])["champion_version"] == first
    assert f"moved from v{second} to v{first}" in result.stderr
    assert model.alias(CHAMPION) == first
