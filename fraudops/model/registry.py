"""Champion/challenger decisions and the registry aliases that carry them (never stages)."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import asdict, dataclass

import requests
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from fraudops.model import tracking

CHAMPION = "champion"
PREVIOUS = "previous"
DECISION_TAG = "fraudops.decision"
DECISION_DETAIL_TAG = "fraudops.decision_detail"
# The metric that ranks candidates in training and decides promotion (one definition for both).
PRIMARY = "average_precision"


@dataclass(frozen=True)
class Gates:
    """What any model must reach on the test window before it may serve."""

    min_roc_auc: float = 0.80
    min_average_precision: float = 0.30
    min_test_rows: int = 1000
    min_test_frauds: int = 20


@dataclass(frozen=True)
class Decision:
    promote: bool
    kind: str  # first_champion | promoted | rejected_gates | rejected_policy | rejected_older
    reason: str
    diff: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None


def gate_failures(metrics: dict, gates: Gates) -> list[str]:
    failures = []
    for name, value, minimum in (
        ("roc_auc", metrics["roc_auc"], gates.min_roc_auc),
        ("average_precision", metrics["average_precision"], gates.min_average_precision),
        ("rows", metrics["rows"], gates.min_test_rows),
        ("frauds", metrics["frauds"], gates.min_test_frauds),
    ):
        if not value >= minimum:  # NaN fails too
            failures.append(f"{name}={value:.4g} < {minimum:g}")
    return failures


def decide(challenger: dict, champion: dict | None, interval, gates: Gates,
           policy: str = "ci") -> Decision:
    """Promote when the gates pass and, with a champion in place, the policy holds.

    policy ``ci``: the lower bound of the bootstrap interval of the primary-metric difference is
    above zero; ``better``: the observed difference is.
    """
    failures = gate_failures(challenger, gates)
    if failures:
        return Decision(False, "rejected_gates", "gates not passed: " + "; ".join(failures))
    if champion is None:
        return Decision(True, "first_champion", "no champion yet; the gates pass")
    diff = challenger[PRIMARY] - champion[PRIMARY]
    low = high = None
    if interval is not None:
        diff, low, high = interval.observed, interval.low, interval.high
    if policy == "ci":
        if low is None:
            raise ValueError("policy 'ci' needs a bootstrap interval")
        ok = low > 0
        why = f"{PRIMARY} difference {diff:+.4f}, 95% CI [{low:+.4f}, {high:+.4f}]"
    elif policy == "better":
        ok = diff > 0
        why = f"{PRIMARY} difference {diff:+.4f}"
    else:
        raise ValueError(f"unknown policy {policy!r}")
    if ok:
        return Decision(True, "promoted", f"better than the champion: {why}", diff, low, high)
    return Decision(False, "rejected_policy", f"not better under '{policy}': {why}", diff, low,
                    high)


def training_window(client: MlflowClient, name: str, version: str) -> tuple[str, str] | None:
    """The first and last day of the data ``version`` was trained on (its run's params), or
    None for a version registered without them."""
    mv = client.get_model_version(name, str(version))
    params = client.get_run(mv.run_id).data.params if mv.run_id else {}
    if "train_start" in params:
        return params["train_start"], params["train_end"]
    return None


def older_than_champion(challenger_end: str, champion_window: tuple[str, str] | None,
                        champion: str) -> Decision | None:
    """A rejection when the champion was trained on data after the challenger's (a backfill or
    manual run for an older date): an older run never replaces a newer champion."""
    if champion_window is None or champion_window[1] <= challenger_end:
        return None
    return Decision(False, "rejected_older",
                    f"the champion v{champion} was trained on data through "
                    f"{champion_window[1]}, after this challenger's {challenger_end}: a run "
                    "for an older date never replaces a champion trained on later data")


def alias_version(client: MlflowClient, name: str, alias: str) -> str | None:
    """The version ``alias`` points at; None only when the model or the alias does not exist.

    The registered model is read and its aliases looked at, so that a missing alias is a fact
    in an answer, not an error: MLflow reports a missing alias with the same error code as a
    malformed request. Anything but "no such model" raises TrackingUnavailable, naming the
    server: an outage read as "no champion" would promote the challenger unopposed.
    """
    try:
        model = client.get_registered_model(name)
    except MlflowException as exc:
        if tracking.is_absent(exc):
            return None
        raise tracking.unavailable(exc, f"reading @{alias} of {name}",
                                   client.tracking_uri) from exc
    except requests.exceptions.RequestException as exc:
        raise tracking.unavailable(exc, f"reading @{alias} of {name}",
                                   client.tracking_uri) from exc
    version = model.aliases.get(alias)
    return None if version is None else str(version)


def apply_decision(client: MlflowClient, name: str, version: str, decision: Decision,
                   run_id: str | None = None) -> None:
    """Move the aliases when promoting, and record the decision on the version and the run
    (``run_id``: the MLflow run). promote goes through record_decision and apply_record
    instead, so that a retry of the same pipeline run finds what it decided."""
    champion = alias_version(client, name, CHAMPION)
    apply_record(client, name, Record(None, str(version), decision, champion, run_id))


# One promotion per pipeline run id --------------------------------------------------------------
#
# promote writes its decision on the challenger's version, under a tag named after the pipeline
# run, BEFORE it moves any alias (applied: false), and marks it applied after. A retry with the
# same run id reads the record instead of deciding again: after success it changes nothing;
# after a crash between the record and the mark it finishes the recorded moves, once.

def _record_tag(pipeline_run: str) -> str:
    return f"fraudops.promote.{pipeline_run}"


@dataclass(frozen=True)
class Record:
    """What one pipeline run decided for one version, and what @champion was when it did."""

    pipeline_run: str | None  # None: not recorded under a run id (apply_decision)
    version: str
    decision: Decision
    champion_before: str | None  # @champion when the decision was made (None: unset)
    mlflow_run_id: str | None
    applied: bool = False

    @property
    def champion_after(self) -> str | None:
        return self.version if self.decision.promote else self.champion_before

    def to_json(self) -> str:
        return json.dumps({**asdict(self), "decision": asdict(self.decision)})

    @classmethod
    def from_json(cls, text: str) -> "Record":
        raw = json.loads(text)
        return cls(**{**raw, "decision": Decision(**raw["decision"])})


def recorded_decision(client: MlflowClient, name: str, version: str,
                      pipeline_run: str) -> Record | None:
    """The decision ``pipeline_run`` recorded on ``version``, or None when it made none."""
    tags = client.get_model_version(name, str(version)).tags
    text = tags.get(_record_tag(pipeline_run))
    return None if text is None else Record.from_json(text)


def record_decision(client: MlflowClient, name: str, version: str, decision: Decision,
                    pipeline_run: str, champion_before: str | None,
                    mlflow_run_id: str | None) -> Record:
    """Write the decision down before any alias moves (the write-ahead half of a promotion)."""
    record = Record(pipeline_run, str(version), decision, champion_before, mlflow_run_id)
    client.set_model_version_tag(name, str(version), _record_tag(pipeline_run), record.to_json())
    return record


def apply_record(client: MlflowClient, name: str, record: Record) -> Record:
    """Carry out a recorded decision exactly once; a no-op when it is applied already.

    Moves @previous then @champion when promoting, but only from the state the decision was
    made in: @champion still at ``champion_before`` (not moved yet) or at the challenger (moved,
    the mark was not written). Anything else means someone moved @champion since; the recorded
    decision is then stale and nothing is moved.
    """
    if record.applied:
        return record
    version = record.version
    if record.decision.promote:
        current = alias_version(client, name, CHAMPION)
        if current not in (record.champion_before, version):
            raise SystemExit(
                f"run {record.pipeline_run} decided to promote v{version} over "
                f"{_v(record.champion_before)}, but @{CHAMPION} is now {_v(current)}: it moved "
                "since that decision, which is therefore not applied; decide again with a new "
                "run id")
        if current != version:
            if record.champion_before is not None and record.champion_before != version:
                client.set_registered_model_alias(name, PREVIOUS, record.champion_before)
            client.set_registered_model_alias(name, CHAMPION, version)
    detail = json.dumps(asdict(record.decision))
    client.set_model_version_tag(name, version, DECISION_TAG, record.decision.kind)
    client.set_model_version_tag(name, version, DECISION_DETAIL_TAG, detail)
    if record.mlflow_run_id:
        client.set_tag(record.mlflow_run_id, DECISION_DETAIL_TAG, detail)
    applied = dataclasses.replace(record, applied=True)
    if record.pipeline_run is not None:
        client.set_model_version_tag(name, version, _record_tag(record.pipeline_run),
                                     applied.to_json())
    return applied


def _v(version: str | None) -> str:
    return "(none)" if version is None else f"v{version}"


def rollback(client: MlflowClient, name: str) -> tuple[str, str]:
    """Point ``champion`` back at ``previous``; the demoted version becomes ``previous``, so a
    second rollback undoes the first. Returns (new champion, new previous)."""
    previous = alias_version(client, name, PREVIOUS)
    if previous is None:
        raise SystemExit(f"{name} has no @{PREVIOUS} version to roll back to")
    current = alias_version(client, name, CHAMPION)
    client.set_registered_model_alias(name, CHAMPION, previous)
    if current is not None:
        client.set_registered_model_alias(name, PREVIOUS, current)
    client.set_model_version_tag(name, previous, DECISION_TAG, "rolled_back_to")
    return previous, current or ""
