"""Promotion step: champion and challenger on the same test window; promote only a better one.

    python -m spark_jobs.promote --as-of 2018-05-10 --run-id <the train run's id>

The challenger is the version the training step of the same run registered. Each version is
measured by its evaluation model (spark_jobs.train: its configuration fitted on data that end a
label delay before its own test window, as its serving refit's data end a label delay before
the days it scores), on the challenger's test window, whose labels are known on --as-of: neither
side has seen those days, and each is as stale as it will be when serving (docs/model-loop.md).
Every metric is computed for both, and a t interval of the mean per-day difference in the
primary metric decides. The challenger must pass absolute gates; with a
champion in place the policy must hold too (default `ci`: the interval's lower bound is above
zero over enough days, or above a non-inferiority margin against an old champion, and card
precision@100 not lower by more than a margin: profile.yaml promotion; `better`: a plain
comparison). Promotion moves the `champion` alias and gives the
old champion the alias `previous`; the decision is recorded on the run and the model version.

One decision per --run-id: it is written on the challenger's version before any alias moves,
so a retry returns it (finishing the moves a crash interrupted) instead of deciding again, and
an unreachable tracking server fails the step instead of reading as "no champion"
(docs/failure-modes.md).
"""

from __future__ import annotations

import datetime as dt
import json
import logging

import mlflow

from fraudops.core import cli, laps, storage
from fraudops.core.lake import Lake
from fraudops.model import evaluation, families, loading, metrics, registry, tracking
from fraudops.model.profile import PRODUCTION
from spark_jobs.marts import labeled_features

log = logging.getLogger(__name__)

# The summary a run writes to the lake, logged on its MLflow run before the decision is
# recorded, so that a retry after a crash writes exactly the same one.
SUMMARY_ARTIFACT = "promote_summary.json"


def paired_scores(spark, lake: Lake, test: dict, challenger: str, champion: str | None):
    data = labeled_features(spark, lake, test["start"], test["end"]).persist()
    challenger_model = loading.load_evaluation(challenger)
    laps.lap("load challenger")
    challenger_scored = evaluation.score_frame(challenger_model, data)
    laps.lap("score challenger")
    champion_scored = None
    if champion is not None:
        champion_model = loading.load_evaluation(champion)
        laps.lap("load champion")
        champion_scored = evaluation.score_frame(champion_model, data)
        laps.lap("score champion")
        if not champion_scored["transaction_id"].equals(challenger_scored["transaction_id"]):
            raise RuntimeError("champion and challenger were not scored on the same rows")
    data.unpersist()
    return challenger_scored, champion_scored


def shift_days(start: str, end: str) -> int:
    """Days from ``start`` to ``end`` (ISO days)."""
    return (dt.date.fromisoformat(end) - dt.date.fromisoformat(start)).days


def run(spark, lake: Lake, as_of: str, run_id: str, gates: registry.Gates, policy: str,
        rules: registry.Policy | None = None) -> dict:
    with tracking.fail_closed(f"promoting for run {run_id}"):
        tracking.setup()
        trained = storage.read_json(lake.run_summary("train", run_id))
        if trained is None:
            raise SystemExit(f"no training summary for run {run_id!r}: run spark_jobs.train "
                             "first")
        challenger = trained["model_version"]
        client = mlflow.MlflowClient()
        record = registry.recorded_decision(client, tracking.MODEL_NAME, challenger, run_id)
        if record is None:
            summary = decide(spark, lake, as_of, run_id, trained, gates, policy,
                             rules or registry.Policy.from_profile(PRODUCTION))
        else:
            summary = resume(lake, as_of, record)
    if storage.read_json(lake.run_summary("promote", run_id)) != summary:
        storage.write_json(lake.run_summary("promote", run_id), summary)
    log.info("%s: %s (champion is now v%s)", summary["decision"], summary["reason"],
             summary["champion_version"])
    return summary


def decide(spark, lake: Lake, as_of: str, run_id: str, trained: dict,
           gates: registry.Gates, policy: str, rules: registry.Policy) -> dict:
    """Compare, record the decision on the challenger's version, then move the aliases."""
    challenger = trained["model_version"]
    champion_before = loading.alias_version(registry.CHAMPION)
    champion = None if champion_before == challenger else champion_before
    test = trained["split"]["test"]
    challenger_end = trained["serving"]["end"]  # what the challenger serves with
    champion_window = champion and registry.training_window(mlflow.MlflowClient(),
                                                            tracking.MODEL_NAME, champion)
    older = champion and registry.older_than_champion(challenger_end, champion_window, champion)
    laps.lap("mlflow set-up, aliases")
    log.info("challenger v%s vs champion %s on %s..%s", challenger,
             f"v{champion}" if champion else "(none)", test["start"], test["end"])
    challenger_scored, champion_scored = paired_scores(spark, lake, test, challenger,
                                                       None if older else champion)
    challenger_metrics = evaluation.metrics_of(challenger_scored)
    champion_metrics = evaluation.metrics_of(champion_scored) if champion_scored is not None \
        else None
    interval = None
    if champion_scored is not None:
        days, _, labels, challenger_probability = evaluation.arrays(challenger_scored)
        interval = metrics.paired_day_interval(
            metrics.average_precision, days, labels, challenger_probability,
            evaluation.arrays(champion_scored)[3], confidence=rules.confidence)
    laps.lap("metrics and interval")
    age = (shift_days(champion_window[1], challenger_end) if champion_window else None)
    decision = older or registry.decide(challenger_metrics, champion_metrics, interval, gates,
                                        policy, rules, age)
    champion_after = challenger if decision.promote else champion_before
    summary = {
        "run_id": run_id, "as_of": as_of, "decision": decision.kind,
        "promoted": decision.promote, "reason": decision.reason,
        "challenger_version": challenger, "previous_champion_version": champion,
        "champion_version": champion_after,
        "metrics": {"challenger": challenger_metrics, "champion": champion_metrics},
        "interval": interval.__dict__ if interval is not None else None,
    }
    summary = json.loads(json.dumps(summary, default=str))  # as a retry reads it back
    client = mlflow.MlflowClient()
    tracking.end_abandoned_runs("promote", run_id)
    with mlflow.start_run(run_name=f"promote {as_of}") as active:
        mlflow.set_tags({tracking.TAG_STEP: "promote", tracking.TAG_PIPELINE_RUN: run_id,
                         tracking.TAG_AS_OF: as_of})
        mlflow.log_params({"policy": policy, "champion_age_days": age,
                           "challenger_version": challenger, "champion_version": champion,
                           **{f"gate_{k}": v for k, v in gates.__dict__.items()},
                           **{f"policy_{k}": v for k, v in rules.__dict__.items()}})
        mlflow.log_metrics({f"challenger_{k}": v for k, v in challenger_metrics.items()})
        if champion_metrics:
            mlflow.log_metrics({f"champion_{k}": v for k, v in champion_metrics.items()})
        if interval is not None:
            mlflow.log_metrics({"ap_diff": interval.observed, "ap_diff_day_mean": interval.mean,
                                "ap_diff_ci_low": interval.low, "ap_diff_ci_high": interval.high,
                                "ap_diff_days": interval.days})
        tracking.log_json(summary, SUMMARY_ARTIFACT)
        # The decision is written down before any alias moves: a retry finds it (resume).
        record = registry.record_decision(client, tracking.MODEL_NAME, challenger, decision,
                                          run_id, champion_before, active.info.run_id)
        registry.apply_record(client, tracking.MODEL_NAME, record)
        mlflow.set_tags(decision_tags(record))
    laps.lap("record decision")
    return summary


def resume(lake: Lake, as_of: str, record: registry.Record) -> dict:
    """A retry of a run that decided already: finish what it recorded, decide nothing anew."""
    log.info("run %s already decided %s for v%s (champion then %s): %s", record.pipeline_run,
             record.decision.kind, record.version, record.champion_before or "(none)",
             "nothing to do" if record.applied else "finishing the recorded alias moves")
    summary = mlflow.artifacts.load_dict(f"runs:/{record.mlflow_run_id}/{SUMMARY_ARTIFACT}")
    if summary["as_of"] != as_of:
        raise SystemExit(f"run {record.pipeline_run} promoted as of {summary['as_of']}, not "
                         f"{as_of}: a run id names one run of one day")
    client = mlflow.MlflowClient()
    registry.apply_record(client, tracking.MODEL_NAME, record)
    run = client.get_run(record.mlflow_run_id)
    if run.info.status != "FINISHED":
        for key, value in decision_tags(record).items():
            client.set_tag(run.info.run_id, key, value)
        tracking.finish(run)
    return summary


def decision_tags(record: registry.Record) -> dict:
    return {registry.DECISION_TAG: record.decision.kind, "fraudops.reason": record.decision.reason,
            "fraudops.champion_version": str(record.champion_after)}


def main(argv: list[str] | None = None) -> dict:
    parser = cli.parser(__doc__.split("\n\n")[0])
    defaults = registry.Gates()
    parser.add_argument("--as-of", required=True, type=cli.date_arg)
    parser.add_argument("--policy", choices=["ci", "better"], default="ci",
                        help="ci: the lower bound of the t interval of the mean per-day AP "
                             "difference > 0; better: AP higher")
    for field, value in defaults.__dict__.items():
        parser.add_argument(f"--{field.replace('_', '-')}", type=type(value), default=value,
                            help="absolute gate the challenger must pass")
    rules = registry.Policy.from_profile(PRODUCTION)
    for field, value in rules.__dict__.items():
        parser.add_argument(f"--{field.replace('_', '-')}", type=type(value), default=value,
                            help="promotion policy (profile.yaml promotion)")
    args = parser.parse_args(argv)
    cli.setup_logging()
    gates = registry.Gates(**{f: getattr(args, f) for f in defaults.__dict__})
    rules = registry.Policy(**{f: getattr(args, f) for f in rules.__dict__})
    from spark_jobs.session import get_spark

    laps.lap("start (python, imports)")
    spark = get_spark("promote", preload=families.PRODUCTION_LIBRARIES)
    laps.lap("spark session")
    summary = run(spark, Lake.from_env(args.lake_root), args.as_of.isoformat(),
                  cli.run_id(args.run_id), gates, args.policy, rules)
    print(json.dumps({k: summary[k] for k in ("decision", "reason", "champion_version")}))
    return summary


if __name__ == "__main__":
    main()
