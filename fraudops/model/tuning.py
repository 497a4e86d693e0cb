"""Tune rarely, refit daily: which path a training run takes, and what it refits.

A tuning run (grid search over prequential folds) records the configuration it chose as tags of
its MLflow run (and of the model version it registers). A refit run finds the latest tuning run
of the same profile version up to its logical date and fits that configuration once on its own,
fresh windows. The choice reads only MLflow: the tuning runs, the drift reports (score runs'
psi_max) and the latest promotion (the champion's AP on the newest matured test window).

A drift alert does not tune at once: the first tuning after a shift would choose on folds from
before it. It schedules one tuning, on the first day whose folds hold the shifted world
(``drift_wait_days`` after the alert), and only the first alert against a drift reference
(the champion's training window) counts: while the champion stays, every later day alerts
against the same reference about the same shift.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from dataclasses import dataclass

from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from fraudops.model import tracking
from fraudops.model.profile import Profile

log = logging.getLogger(__name__)

TUNE, REFIT, AUTO = "tune", "refit", "auto"
PATHS = (AUTO, TUNE, REFIT)
TAG_PATH = "fraudops.train_path"
TAG_REASON = "fraudops.train_path_reason"
TAG_CONFIG = "fraudops.config"
TAG_TUNED_ON = "fraudops.tuned_on"
TAG_PROFILE_VERSION = "fraudops.profile_version"


@dataclass(frozen=True)
class TunedConfig:
    family: str
    params: dict
    tuned_on: str  # the logical date of the tuning run
    profile_version: int

    def tags(self) -> dict[str, str]:
        return {TAG_CONFIG: json.dumps({"family": self.family, "params": self.params},
                                       sort_keys=True),
                TAG_TUNED_ON: self.tuned_on, TAG_PROFILE_VERSION: str(self.profile_version)}


@dataclass(frozen=True)
class PathChoice:
    path: str  # tune | refit
    reason: str
    config: TunedConfig | None  # what a refit fits; None when tuning


def _runs(client: MlflowClient, step: str, extra: str = "") -> list:
    experiment = client.get_experiment_by_name(tracking.EXPERIMENT)
    if experiment is None:
        return []
    query = (f"tags.`{tracking.TAG_STEP}` = '{step}' and attributes.status = 'FINISHED'"
             + (f" and {extra}" if extra else ""))
    return client.search_runs([experiment.experiment_id], query, max_results=1000)


def _latest_before(runs: list, as_of: str, inclusive: bool):
    """The run with the latest logical date before (or on) ``as_of``, the newest on ties."""
    kept = [r for r in runs if (r.data.tags.get(tracking.TAG_AS_OF, "") <= as_of if inclusive
                                else r.data.tags.get(tracking.TAG_AS_OF, "") < as_of)]
    return max(kept, key=lambda r: (r.data.tags[tracking.TAG_AS_OF], r.info.start_time),
               default=None)


def last_tuned(client: MlflowClient, as_of: str, profile_version: int) -> TunedConfig | None:
    runs = _runs(client, "train", f"tags.`{TAG_PATH}` = '{TUNE}' and "
                 f"tags.`{TAG_PROFILE_VERSION}` = '{profile_version}'")
    latest = _latest_before(runs, as_of, inclusive=True)
    if latest is None:
        return None
    config = json.loads(latest.data.tags[TAG_CONFIG])
    return TunedConfig(config["family"], config["params"], latest.data.tags[TAG_TUNED_ON],
                       profile_version)


def drift_wait_days(profile: Profile) -> int:
    """Days from a drift alert's day to the tuning it schedules.

    A run as of D tunes on folds inside the days before its test window, which ends the label
    delay before D; the latest fold (fold_train_days, the label delay, fold_assess_days) must
    lie on or after the alert's day, so that candidates are fitted and assessed on the shifted
    world only. Until then the daily refits carry the shift into the serving model."""
    fold = profile.fold_train_days + profile.label_delay_days + profile.fold_assess_days
    return fold - 1 + profile.label_delay_days + profile.test_days


@dataclass(frozen=True)
class DriftAlert:
    """The first drift report above the alert level against one reference window."""

    day: str  # the drifting day the report measured
    psi: float
    reference: str  # the reference window (start..end), or the champion version
    due: str  # the day from which a tuning answers it


def drift_alerts(client: MlflowClient, as_of: str, profile: Profile) -> list[DriftAlert]:
    """The first alert against each drift reference among the reports before ``as_of``, oldest
    first."""
    first: dict[str, DriftAlert] = {}
    for run in sorted(_runs(client, "score"), key=lambda r: (_drift_day(r), r.info.start_time)):
        psi = run.data.metrics.get("psi_max")
        if psi is None or psi <= profile.psi_alert or \
                run.data.tags.get(tracking.TAG_AS_OF, "") >= as_of:
            continue
        params = run.data.params
        reference = (f"{params['drift_reference_start']}..{params['drift_reference_end']}"
                     if "drift_reference_start" in params
                     else f"v{run.data.tags.get('fraudops.model_version', '?')}")
        day = _drift_day(run)
        first.setdefault(reference, DriftAlert(day, psi, reference,
                                               _shift(day, drift_wait_days(profile))))
    return sorted(first.values(), key=lambda a: a.day)


def _drift_day(run) -> str:
    return run.data.params.get("drift_day") or run.data.tags.get(tracking.TAG_AS_OF, "")


def _shift(day: str, days: int) -> str:
    return (dt.date.fromisoformat(day) + dt.timedelta(days=days)).isoformat()


def champion_ap_drop(client: MlflowClient, as_of: str) -> tuple[float, str] | None:
    """How much the champion's AP on the latest promotion's test window fell (relative) from
    the AP its own training run measured, and that promotion's day."""
    latest = _latest_before(
        [r for r in _runs(client, "promote") if "champion_average_precision" in r.data.metrics],
        as_of, inclusive=False)
    if latest is None:
        return None
    version = latest.data.params.get("champion_version")
    if not version or version == "None":
        return None
    try:
        trained = client.get_run(client.get_model_version(tracking.MODEL_NAME, version).run_id)
    except MlflowException as exc:  # a version deleted since: no reference AP
        if tracking.is_absent(exc):
            return None
        raise  # an outage is not an answer (fail closed)
    own = trained.data.metrics.get("test_average_precision")
    if own is None:
        return None
    now = latest.data.metrics["champion_average_precision"]
    return (1 - now / own if own > 0 else 0.0), latest.data.tags[tracking.TAG_AS_OF]


def choose(client: MlflowClient, requested: str, as_of: str, profile: Profile,
           every_days: int | None = None) -> PathChoice:
    """Tune or refit, and why (the first reason that applies). A promotion counts only when it
    is later than the last tuning; a drift alert is answered by the first tuning on or after the
    day it falls due (``drift_alerts``): one alert, one tuning, at a time it can help."""
    if requested not in PATHS:
        raise ValueError(f"training path {requested!r}: expected one of {PATHS}")
    every = profile.tune_every_days if every_days is None else every_days
    tuned = last_tuned(client, as_of, profile.version)
    if requested == TUNE:
        return PathChoice(TUNE, "forced (--tune)", None)
    if tuned is None:
        return PathChoice(TUNE, f"no configuration tuned under profile v{profile.version} yet",
                          None)
    if requested == REFIT:
        return PathChoice(REFIT, f"forced (--path refit); tuned on {tuned.tuned_on}", tuned)
    alerts = [a for a in drift_alerts(client, as_of, profile) if a.due > tuned.tuned_on]
    due = [a for a in alerts if a.due <= as_of]
    if due:
        alert = due[-1]
        return PathChoice(TUNE, f"drift: PSI {alert.psi:.2f} > {profile.psi_alert} on "
                          f"{alert.day} (reference {alert.reference}), due {alert.due}: the "
                          "tuning folds now hold the days after it", None)
    waiting = "".join(f"; drift alert on {a.day}: tuning due {a.due}" for a in alerts)
    drop = champion_ap_drop(client, as_of)
    if drop is not None and drop[1] > tuned.tuned_on and drop[0] > profile.max_ap_drop:
        return PathChoice(TUNE, f"metric: the champion's AP fell {drop[0]:.0%} on {drop[1]}",
                          None)
    age = (dt.date.fromisoformat(as_of) - dt.date.fromisoformat(tuned.tuned_on)).days
    if age >= every:
        return PathChoice(TUNE, f"schedule: last tuned on {tuned.tuned_on}, {age} >= {every} "
                          f"days ago{waiting}", None)
    return PathChoice(REFIT, f"refit of the configuration tuned on {tuned.tuned_on}{waiting}",
                      tuned)
