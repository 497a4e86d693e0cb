"""Served quality: how good the scores each model actually served turned out, once labels matured.

A day's label is known ``LABEL_DELAY_DAYS`` after it (the delay the terminal features assume).
A score run for D therefore measures the days up to D - delay whose standing scores (the ledger's
entry: model version, score run, features run) it has not measured yet: days that just matured,
and matured days whose scores were restated since they were measured. Per day it records the
model version that served it, the average precision of its scores and the card precision@k of
its alert list (the frauds among the k cards the day's list named, over k, as the list was
served: unlike the handbook's test metric, cards found on earlier days are not left out, since
the served list did not leave them out), computed in Spark (spark_jobs.served).

Kept in the lake beside the ledger, one entry per day (the measurement its standing scores got,
with the earlier measurements of the day under ``remeasured``):

    _state/served_quality.json   {day: {"model_version", "average_precision", ...}}

and in MLflow, one run per model version (tag fraudops.step = served, run name "served vN")
with the metrics served_average_precision and served_card_precision_at_<k>, whose step is the
served day (days since 1970-01-01) and whose timestamp is that day's midnight: in the MLflow UI,
select the served runs and chart either metric against wall time to see each version's days. A
restated day is logged again at the same step. The report plots the lake's file.
"""

from __future__ import annotations

import datetime as dt
import logging

from fraudops.core import scored, storage
from fraudops.core.columns import LABEL_DELAY_DAYS
from fraudops.core.lake import Lake, shift

log = logging.getLogger(__name__)

STEP = "served"  # the MLflow runs' fraudops.step tag
AP = "average_precision"
EPOCH = dt.date(1970, 1, 1)


def card_precision(k: int) -> str:
    return f"card_precision_at_{k}"


def measurements(lake: Lake) -> dict[str, dict]:
    return dict(storage.read_json(lake.served_quality, default={}) or {})


def matured_until(as_of: str, delay: int = LABEL_DELAY_DAYS) -> str:
    """The last day whose labels are known on ``as_of``."""
    return shift(as_of, -delay)


def served_key(entry: dict) -> dict:
    """What identifies a day's standing scores in the ledger."""
    return {k: entry.get(k) for k in ("model_version", "run_id", "features_run")}


def due(lake: Lake, as_of: str, delay: int = LABEL_DELAY_DAYS) -> dict[str, dict]:
    """Scored days up to ``as_of`` - ``delay`` whose standing scores were not measured yet:
    {day: served_key}. Days scored with no rows and withdrawn days are not measured."""
    last, done = matured_until(as_of, delay), measurements(lake)
    out = {}
    for day, entry in sorted(scored.ledger(lake).items()):
        if day > last or entry.get("withdrawn") or not entry.get("rows"):
            continue
        key = served_key(entry)
        if done.get(day, {}).get("served") != key:
            out[day] = key
    return out


def record(lake: Lake, measured: dict[str, dict], keys: dict[str, dict], as_of: str,
           run_id: str) -> dict[str, dict]:
    """Store a run's measurements (``measured``: {day: values}, ``keys``: due's answer); the
    caller holds the lake's lease. A day measured before keeps its earlier values under
    ``remeasured``."""
    state = measurements(lake)
    for day, values in measured.items():
        before = state.get(day)
        history = list((before or {}).get("remeasured", []))
        if before:
            history.append({k: v for k, v in before.items() if k != "remeasured"})
        state[day] = {**values, "served": keys[day], "measured_as_of": as_of,
                      "measured_by": run_id, "remeasured": history}
    storage.write_json(lake.served_quality, dict(sorted(state.items())))
    return state


def day_step(day: str) -> int:
    return (dt.date.fromisoformat(day) - EPOCH).days


def log_to_mlflow(measured: dict[str, dict], k: int) -> None:
    """Each day's values as metrics of its model version's served run, stepped by the day."""
    import mlflow
    from mlflow.entities import Metric

    from fraudops.model import tracking

    client = mlflow.MlflowClient()
    experiment = mlflow.get_experiment_by_name(tracking.EXPERIMENT)
    by_version: dict[str, list[tuple[str, dict]]] = {}
    for day, values in sorted(measured.items()):
        by_version.setdefault(str(values["model_version"]), []).append((day, values))
    for version, days in by_version.items():
        found = client.search_runs(
            [experiment.experiment_id],
            filter_string=f"tags.`{tracking.TAG_STEP}` = '{STEP}' and "
                          f"tags.`fraudops.model_version` = '{version}'")
        run_id = (found[0].info.run_id if found else client.create_run(
            experiment.experiment_id, run_name=f"served v{version}",
            tags={tracking.TAG_STEP: STEP, "fraudops.model_version": version}).info.run_id)
        metrics = []
        for day, values in days:
            at = int(dt.datetime.combine(dt.date.fromisoformat(day), dt.time(),
                                         dt.UTC).timestamp() * 1000)
            for name in (AP, card_precision(k)):
                if values.get(name) is not None:
                    metrics.append(Metric(f"served_{name}", values[name], at, day_step(day)))
        client.log_batch(run_id, metrics=metrics)
        client.set_terminated(run_id, "FINISHED")


def means(values: dict[str, dict], names: tuple[str, ...], start: str | None = None,
          end: str | None = None) -> dict[str, float | None]:
    """Mean of each metric over the days from ``start`` to ``end`` (both included) where it is
    defined (AP needs a fraud that day)."""
    out = {}
    for name in names:
        got = [v[name] for d, v in values.items() if v.get(name) is not None
               and (start is None or d >= start) and (end is None or d <= end)]
        out[name] = sum(got) / len(got) if got else None
    return out
