"""Champion/challenger decisions and the registry aliases that carry them (never stages)."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import asdict, dataclass

import requests
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from fraudops.model import tracking
from fraudops.model.profile import PRODUCTION

CHAMPION = "champion"
PREVIOUS = "previous"
DECISION_TAG = "fraudops.decision"
DECISION_DETAIL_TAG = "fraudops.decision_detail"
# The metric that ranks candidates in training and decides promotion (one definition for both).
PRIMARY = "average_precision"
TOP_K = PRODUCTION.top_k  # the card precision guard's k (profile.yaml)
CARD_PRECISION = PRODUCTION.card_precision  # its metric, as train and promote log it


@dataclass(frozen=True)
class Gates:
    """What any model must reach on the test window before it may serve."""

    min_roc_auc: float = 0.80
    min_average_precision: float = 0.30
    min_test_rows: int = 1000
    min_test_frauds: int = 20


@dataclass(frozen=True)
class Policy:
    """How the challenger must compare with the champion (profile.yaml, promotion)."""

    confidence: float = 0.95
    min_days: int = 5  # days with a fraud in the test window, fewer: no decision
    cp_margin: float = 0.01  # card precision@100 may fall by this much at most
    non_inferiority_margin: float = 0.02  # AP, for a fresher model replacing an old champion
    max_champion_age_days: int = 28  # the champion's data this much older: not worse suffices

    @classmethod
    def from_profile(cls, profile) -> Policy:
        return cls(**profile.promotion)


DEFAULT_POLICY = Policy()


@dataclass(frozen=True)
class Decision:
    promote: bool
    # first_champion | promoted | refreshed | rejected_gates | rejected_policy | rejected_older
    # | no_decision
    kind: str
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
           policy: str = "ci", rules: Policy = DEFAULT_POLICY,
           champion_age_days: int | None = None) -> Decision:
    """Promote when the gates pass and, with a champion in place, the policy holds.

    policy ``ci``: the lower bound of the interval of the mean per-day primary-metric difference
    (``metrics.paired_day_interval``) is above zero, over at least ``rules.min_days`` days, else
    no decision; or, with a champion whose training data is ``rules.max_champion_age_days``
    older than the challenger's, above ``-rules.non_inferiority_margin`` (``refreshed``).
    ``better``: the observed difference is above zero. Under both, the challenger's card
    precision@100 may not be lower than the champion's by more than ``rules.cp_margin``.
    """
    failures = gate_failures(challenger, gates)
    if failures:
        return Decision(False, "rejected_gates", "gates not passed: " + "; ".join(failures))
    if champion is None:
        return Decision(True, "first_champion", "no champion yet; the gates pass")
    if policy not in ("ci", "better"):
        raise ValueError(f"unknown policy {policy!r}")
    diff = challenger[PRIMARY] - champion[PRIMARY]
    low = high = None
    if interval is not None:
        diff, low, high = interval.observed, interval.low, interval.high
    cp = CARD_PRECISION
    cp_drop = champion.get(cp, 0.0) - challenger.get(cp, 0.0)
    if cp_drop > rules.cp_margin:
        return Decision(False, "rejected_policy",
                        f"card precision@{TOP_K} {challenger[cp]:.3f} is below the champion's "
                        f"{champion[cp]:.3f} by more than {rules.cp_margin:g}", diff, low, high)
    if policy == "better":
        why = f"{PRIMARY} difference {diff:+.4f}"
        if diff > 0:
            return Decision(True, "promoted", f"better than the champion: {why}", diff, low,
                            high)
        return Decision(False, "rejected_policy", f"not better under 'better': {why}", diff,
                        low, high)
    if interval is None:
        raise ValueError("policy 'ci' needs an interval")
    if interval.days < rules.min_days:
        return Decision(False, "no_decision",
                        f"only {interval.days} test day(s) with a fraud, {rules.min_days} needed "
                        "for an interval: the champion stays", diff, low, high)
    why = (f"mean per-day {PRIMARY} difference {interval.mean:+.4f}, "
           f"{interval.confidence:.0%} t interval [{low:+.4f}, {high:+.4f}] over "
           f"{interval.days} days")
    if low > 0:
        return Decision(True, "promoted", f"better than the champion: {why}", diff, low, high)
    old = champion_age_days is not None and champion_age_days >= rules.max_champion_age_days
    if old and low > -rules.non_inferiority_margin:
        return Decision(True, "refreshed",
                        f"not worse than a champion {champion_age_days} days older (margin "
                        f"{rules.non_inferiority_margin:g}): {why}", diff, low, high)
    return Decision(False, "rejected_policy", f"not better under 'ci': {why}", diff, low, high)


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

    pipeline_run: str | None  # None: not recorded under a pipeline run id
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
    def from_json(cls, text: str) -> Record:
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
