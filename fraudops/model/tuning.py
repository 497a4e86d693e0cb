"""Tune rarely, refit daily: which path a training run takes, and what it refits.

A tuning run (grid search over prequential folds) records the configuration it chose as tags of
its MLflow run (and of the model version it registers). A refit run finds the latest tuning run
of the same profile version up to its logical date and fits that configuration once on its own,
fresh window. The choice reads only MLflow: the tuning runs, the latest drift report (score runs'
psi_max) and the latest promotion (the champion's AP on the newest test window).
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


def latest_psi_max(client: MlflowClient, as_of: str) -> tuple[float, str] | None:
    """The largest feature PSI of the latest drift report before ``as_of``, and its day."""
    latest = _latest_before([r for r in _runs(client, "score") if "psi_max" in r.data.metrics],
                            as_of, inclusive=False)
    if latest is None:
        return None
    return latest.data.metrics["psi_max"], latest.data.tags[tracking.TAG_AS_OF]


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
    """Tune or refit, and why (the first reason that applies). A drift report or a promotion
    counts only when it is later than the last tuning: one alert triggers one tuning."""
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
    psi = latest_psi_max(client, as_of)
    if psi is not None and psi[1] > tuned.tuned_on and psi[0] > profile.psi_alert:
        return PathChoice(TUNE, f"drift: PSI {psi[0]:.2f} > {profile.psi_alert} on {psi[1]}",
                          None)
    drop = champion_ap_drop(client, as_of)
    if drop is not None and drop[1] > tuned.tuned_on and drop[0] > profile.max_ap_drop:
        return PathChoice(TUNE, f"metric: the champion's AP fell {drop[0]:.0%} on {drop[1]}",
                          None)
    age = (dt.date.fromisoformat(as_of) - dt.date.fromisoformat(tuned.tuned_on)).days
    if age >= every:
        return PathChoice(TUNE, f"schedule: last tuned on {tuned.tuned_on}, {age} >= {every} "
                          "days ago", None)
    return PathChoice(REFIT, f"refit of the configuration tuned on {tuned.tuned_on}", tuned)
