"""Champion/challenger decisions and the registry aliases that carry them (never stages)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

CHAMPION = "champion"
PREVIOUS = "previous"
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
    kind: str  # first_champion | promoted | rejected_gates | rejected_policy
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


def alias_version(client: MlflowClient, name: str, alias: str) -> str | None:
    try:
        return str(client.get_model_version_by_alias(name, alias).version)
    except MlflowException:
        return None


def apply_decision(client: MlflowClient, name: str, version: str, decision: Decision,
                   run_id: str | None = None) -> None:
    """Move the aliases when promoting, and record the decision on the version and the run."""
    old = alias_version(client, name, CHAMPION)
    if decision.promote:
        if old is not None and old != str(version):
            client.set_registered_model_alias(name, PREVIOUS, old)
        client.set_registered_model_alias(name, CHAMPION, str(version))
    record = json.dumps(asdict(decision))
    client.set_model_version_tag(name, str(version), "fraudops.decision", decision.kind)
    client.set_model_version_tag(name, str(version), "fraudops.decision_detail", record)
    if run_id:
        client.set_tag(run_id, "fraudops.decision_detail", record)


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
    client.set_model_version_tag(name, previous, "fraudops.decision", "rolled_back_to")
    return previous, current or ""
