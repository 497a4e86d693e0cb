"""Scoring job: every arrived day through the champion, ranked, with the top-k alert lists.

    python -m spark_jobs.score --date 2018-05-10

Scores, as of the run's logical day, every clean day past the warm-up that was never scored or
whose marts changed since it was (a late file, days that arrived together, a corrected or
withdrawn day and the days its windows reach: fraudops.core.scored), and records each in the
ledger _state/scores.json with the model version, the run and the features run whose marts it
read; a day scored again is a restatement, recorded with its reason. Loads the version that
`models:/<name>@champion` points at (resolved once, so every day of the run is scored by one
version even if the alias moves meanwhile), joins the transactions with both marts exactly as
training did, and writes scores/ (probability, rank, model version, features run) and alerts/
(per day, the k cards with the highest risk). Feature drift of the newest scored day against
the champion's training window (its warm-up days left out, see fraudops.model.splits) is
logged as PSI metrics, with a warning above 0.2. Then the served quality of the days whose
labels matured (fraudops.model.served): AP and card precision@k of what was served, to the
lake's _state/served_quality.json and MLflow. A retry with the same --run-id after success
returns the summary it wrote; after a crash it rewrites the days' folders whole and settles
the ledger once.
"""

from __future__ import annotations

import datetime as dt
import json
import logging

import mlflow
from pyspark.sql import functions as F
from pyspark.sql.window import Window

from fraudops.core import cli, laps, lease, scored, storage
from fraudops.core.lake import PARTITION_COLUMN, Lake
from fraudops.model import drift, families, loading, registry, served, tracking
from fraudops.model.splits import Period, first_full_day, warmed_up
from spark_jobs import served as served_quality
from spark_jobs.datasets import clean_days, write_days
from spark_jobs.marts import LOOKBACK_DAYS, labeled_features
from spark_jobs.schema import KEYS, WEEKEND_FLAG

log = logging.getLogger(__name__)

# A scored day is all weekend or all weekday, so the weekend flag always "drifts": left out.
DRIFT_FEATURES = [c for c in families.INPUT_COLUMNS if c != WEEKEND_FLAG]


def champion_training_window(version: str) -> tuple[str, str] | None:
    return registry.training_window(mlflow.MlflowClient(), tracking.MODEL_NAME, version)


def drift_reference(lake: Lake, window: tuple[str, str] | None) -> Period | None:
    """The champion's training window without its warm-up days (a model trained before they
    were left out may have logged them), or None when nothing of it is left."""
    if window is None:
        return None
    days = clean_days(lake)
    return warmed_up(Period(*window),
                     first_full_day(days[0], LOOKBACK_DAYS) if days else None)


def feature_drift(spark, lake: Lake, reference: Period, current,
                  version: str | None = None) -> dict[str, float]:
    """PSI of each drift feature: ``current`` rows against the reference window's.

    With a model ``version``, the reference's bins are kept in the lake (a few numbers per
    feature) and read back on later days: the same champion's window is not read and binned
    again every day.
    """
    path = lake.path("_state", "drift_reference", f"v{version}.json") if version else None
    key = {"start": reference.start, "end": reference.end, "features": DRIFT_FEATURES}
    stored = storage.read_json(path) if path else None
    if stored and stored.get("key") == key:
        bins = stored["bins"]
    else:
        rows = labeled_features(spark, lake, reference.start, reference.end)
        bins = drift.reference_bins(rows.select(*DRIFT_FEATURES), DRIFT_FEATURES)
        if path:
            storage.write_json(path, {"key": key, "bins": bins})
    return drift.psi_against(bins, current.select(*DRIFT_FEATURES))


def run(spark, lake: Lake, as_of: str, run_id: str, top_k: int) -> dict:
    done = storage.read_json(lake.run_summary("score", run_id))
    if done is not None:
        if done["date"] != as_of:
            raise SystemExit(f"run {run_id} scored as of {done['date']}, not {as_of}: a run id "
                             "names one run of one day")
        log.info("run %s scored as of %s with v%s already: nothing to do", run_id, as_of,
                 done["model_version"])
        return done
    with tracking.fail_closed(f"scoring as of {as_of} for run {run_id}"):
        summary = score(spark, lake, as_of, run_id, top_k)
    storage.write_json(lake.run_summary("score", run_id), summary)
    log.info("scored %d transactions of %d day(s) with v%s (%d restated, %d withdrawn)",
             summary["rows"], len(summary["days"]), summary["model_version"],
             len(summary["restated"]), len(summary["withdrawn"]))
    return summary


def plan_days(lake: Lake, as_of: str, run_id: str) -> scored.Plan:
    """Every warmed-up clean day up to ``as_of`` never scored or owed again; a retry of
    ``run_id`` the days it scored before (fraudops.core.scored)."""
    days = clean_days(lake)
    first = first_full_day(days[0], LOOKBACK_DAYS) if days else None
    plan = scored.plan(lake, as_of, days, first, run_id)
    late = [d for d in plan.score if d < as_of and d not in plan.restated]
    log.info("days to score as of %s: %s (late or not scored yet: %s; restated: %s; "
             "withdrawn: %s)", as_of, cli.span(plan.score) if plan.score else "none",
             cli.span(late) if late else "none",
             ", ".join(f"{d} ({why})" for d, why in plan.restated.items()) or "none",
             cli.span(plan.withdraw) if plan.withdraw else "none")
    return plan


def score_days(spark, lake: Lake, model, version: str, days: list[str], run_id: str,
               top_k: int, features_run: dict[str, str | None],
               replace: list[str] | None = None, out: Lake | None = None):
    """Score ``days`` with ``model`` and write their scores (naming the features run whose marts
    each day read) and top-k card alerts under ``out`` (default: the lake; the backtest's
    never-replaced model writes elsewhere), replacing the folders of ``replace`` (default:
    ``days``). Returns the model's inputs (for drift) and the rows written per day."""
    out = out or lake
    wanted = [dt.date.fromisoformat(d) for d in days]
    inputs = (labeled_features(spark, lake, days[0], days[-1])
              .where(F.col(PARTITION_COLUMN).isin(wanted))
              .select(*KEYS, "customer_id", "terminal_id", "tx_datetime",
                      *families.INPUT_COLUMNS))
    by_risk = Window.partitionBy(PARTITION_COLUMN).orderBy(F.desc("fraud_probability"),
                                                           "transaction_id")
    lake_state = F.create_map(*[F.lit(x) for day, run in features_run.items()
                                for x in (day, run)])
    scores = (
        families.fraud_probability(model.transform(inputs))
        .select(*KEYS, "customer_id", "terminal_id", "tx_datetime", "fraud_probability",
                F.row_number().over(by_risk).alias("rank"),
                F.lit(int(version)).alias("model_version"), F.lit(run_id).alias("run_id"),
                lake_state[F.col(PARTITION_COLUMN).cast("string")].cast("string")
                .alias("features_run"))
        .persist()
    )
    rows = {r[0].isoformat(): r[1] for r in scores.groupBy(PARTITION_COLUMN).count().collect()}
    write_days(scores, out.scores, replace or days, set(rows))
    cards = Window.partitionBy(PARTITION_COLUMN).orderBy(F.desc("card_risk"), "customer_id")
    alerts = (
        scores.groupBy(PARTITION_COLUMN, "customer_id")
        .agg(F.max("fraud_probability").alias("card_risk"),
             F.count("*").alias("transactions"),
             F.first("model_version").alias("model_version"))
        .withColumn("rank", F.row_number().over(cards))
        .where(F.col("rank") <= top_k)
    )
    write_days(alerts, out.alerts, replace or days, set(rows))
    scores.unpersist()
    return inputs, rows


def score(spark, lake: Lake, as_of: str, run_id: str, top_k: int) -> dict:
    """Write the scores and alerts of every day the plan names (replacing those days' folders),
    record them in the ledger, then log the run."""
    tracking.setup()
    version = loading.alias_version(registry.CHAMPION)
    if version is None:
        raise SystemExit(f"no model has the alias @{registry.CHAMPION} yet: nothing can score "
                         f"as of {as_of}; the first model that passes the gates becomes champion")
    laps.lap("resolve alias")
    plan = plan_days(lake, as_of, run_id)
    rows: dict[str, int] = {}
    inputs = None
    if plan.score:
        model = loading.load_version(version)
        laps.lap("load model")
        inputs, rows = score_days(spark, lake, model, version, plan.score, run_id, top_k,
                                  plan.features_run, replace=plan.days)
    elif plan.withdraw:
        write_days(None, lake.scores, plan.withdraw, set())
        write_days(None, lake.alerts, plan.withdraw, set())
    laps.lap("score and write")
    if plan.score or plan.withdraw or plan.consumed:
        with lease.held(lake, "score", run_id):
            scored.settle(lake, plan, version, run_id, rows)
    laps.lap("ledger")
    # Served quality: the matured days whose standing scores were not measured yet.
    due = served.due(lake, as_of)
    quality = served_quality.measure(spark, lake, sorted(due), top_k)
    laps.lap("served quality")

    psi, drift_day = {}, plan.score[-1] if plan.score else None
    reference = drift_reference(lake, champion_training_window(version)) if inputs is not None else None
    n_rows = sum(rows.values())
    with tracking.start_step_run("score", run_id, f"score {as_of}",
                                 {tracking.TAG_AS_OF: as_of, "fraudops.model_version": version}):
        mlflow.log_metrics({"scored_rows": n_rows, "scored_days": len(plan.score),
                            "restated_days": len(plan.restated)})
        if plan.restated:
            mlflow.log_dict({"as_of": as_of, "restated": plan.restated,
                             "withdrawn": plan.withdraw}, "restatements.json")
        if reference is not None and rows.get(drift_day):
            mlflow.log_params({"drift_reference_start": reference.start,
                               "drift_reference_end": reference.end, "drift_day": drift_day})
            current = inputs.where(F.col(PARTITION_COLUMN) == F.lit(drift_day).cast("date"))
            psi = feature_drift(spark, lake, reference, current, version)
            mlflow.log_metrics({f"psi_{k}": v for k, v in psi.items()})
            mlflow.log_metric("psi_max", max(psi.values()))
        mlflow.log_metric("served_days_measured", len(quality))
    laps.lap("drift")
    if quality:
        served.log_to_mlflow(quality, top_k)
        with lease.held(lake, "score", run_id):
            served.record(lake, quality, due, as_of, run_id)
        laps.lap("served quality logged")
    return {"run_id": run_id, "date": as_of, "model_version": version, "rows": n_rows,
            "days": plan.score, "rows_by_day": rows, "restated": plan.restated,
            "withdrawn": plan.withdraw, "top_k": top_k, "psi": psi, "drift_day": drift_day,
            "drift_alerts": sorted(k for k, v in psi.items() if v > drift.PSI_ALERT),
            "served_quality": quality, "seconds": laps.laps()}


def main(argv: list[str] | None = None) -> dict:
    parser = cli.parser(__doc__.split("\n\n")[0])
    parser.add_argument("--date", required=True, type=cli.date_arg,
                        help="the run's logical day: every arrived day up to it that is not "
                             "scored yet, or whose marts changed since, is scored")
    parser.add_argument("--top-k", type=int, default=registry.TOP_K,
                        help="cards on the alert list (profile.yaml top_k)")
    args = parser.parse_args(argv)
    cli.setup_logging()
    from spark_jobs.session import get_spark

    laps.lap("start (python, imports)")
    spark = get_spark("score", preload=families.PRODUCTION_LIBRARIES)
    laps.lap("spark session")
    summary = run(spark, Lake.from_env(args.lake_root), args.date.isoformat(),
                  cli.run_id(args.run_id), args.top_k)
    print(json.dumps({k: summary[k] for k in ("date", "model_version", "rows", "days",
                                              "restated", "drift_alerts")}))
    return summary


if __name__ == "__main__":
    main()
