"""Scoring job: the day's transactions through the champion, ranked, with the top-k alert list.

    python -m spark_jobs.score --date 2018-05-10

Loads the version that `models:/<name>@champion` points at (resolved once, so the whole day is
scored by one version even if the alias moves meanwhile), joins the day's transactions with
both marts exactly as training did, and writes scores/ (probability, rank, model version) and
alerts/ (the k cards with the highest risk). Feature drift against the champion's training
window (its warm-up days left out, see fraudops.model.splits) is logged as PSI metrics, with a
warning above 0.2. A retry with the same --run-id after success returns the summary it wrote;
after a crash it rewrites the day's folders whole.
"""

from __future__ import annotations

import json
import logging

import mlflow
from pyspark.sql import functions as F
from pyspark.sql.window import Window

from fraudops.core import cli, laps, storage
from fraudops.core.lake import PARTITION_COLUMN, Lake
from fraudops.model import drift, families, loading, registry, tracking
from fraudops.model.splits import Period, first_full_day, warmed_up
from spark_jobs.datasets import clean_days, write_days
from spark_jobs.features import LOOKBACK_DAYS, labeled_features
from spark_jobs.schema import KEYS, WEEKEND_FLAG

log = logging.getLogger(__name__)

# A scored day is all weekend or all weekday, so the weekend flag always "drifts": left out.
DRIFT_FEATURES = [c for c in families.INPUT_COLUMNS if c != WEEKEND_FLAG]


def champion_training_window(version: str) -> tuple[str, str] | None:
    client = mlflow.MlflowClient()
    mv = client.get_model_version(tracking.MODEL_NAME, version)
    params = client.get_run(mv.run_id).data.params if mv.run_id else {}
    if "train_start" in params:
        return params["train_start"], params["train_end"]
    return None


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


def run(spark, lake: Lake, day: str, run_id: str, top_k: int) -> dict:
    done = storage.read_json(lake.run_summary("score", run_id))
    if done is not None:
        if done["date"] != day:
            raise SystemExit(f"run {run_id} scored {done['date']}, not {day}: a run id names "
                             "one run of one day")
        log.info("run %s scored %s with v%s already: nothing to do", run_id, day,
                 done["model_version"])
        return done
    with tracking.fail_closed(f"scoring {day} for run {run_id}"):
        summary = score(spark, lake, day, run_id, top_k)
    storage.write_json(lake.run_summary("score", run_id), summary)
    log.info("scored %d transactions of %s with v%s; %d alert cards", summary["rows"], day,
             summary["model_version"], min(top_k, summary["rows"]))
    return summary


def score(spark, lake: Lake, day: str, run_id: str, top_k: int) -> dict:
    """Write the day's scores and alerts (replacing the day's folders), then log the run."""
    tracking.setup()
    version = loading.alias_version(registry.CHAMPION)
    if version is None:
        raise SystemExit(f"no model has the alias @{registry.CHAMPION} yet: nothing can score "
                         f"{day}; the first model that passes the gates becomes champion")
    laps.lap("resolve alias")
    model = loading.load_version(version)
    laps.lap("load model")
    inputs = labeled_features(spark, lake, day, day).select(
        *KEYS, "customer_id", "terminal_id", "tx_datetime", *families.INPUT_COLUMNS
    )
    by_risk = Window.partitionBy(PARTITION_COLUMN).orderBy(F.desc("fraud_probability"),
                                                           "transaction_id")
    scores = (
        families.fraud_probability(model.transform(inputs))
        .select(*KEYS, "customer_id", "terminal_id", "tx_datetime", "fraud_probability",
                F.row_number().over(by_risk).alias("rank"),
                F.lit(int(version)).alias("model_version"), F.lit(run_id).alias("run_id"))
        .persist()
    )
    n_rows = scores.count()
    write_days(scores, lake.scores, [day], {day} if n_rows else set())
    cards = Window.partitionBy(PARTITION_COLUMN).orderBy(F.desc("card_risk"), "customer_id")
    alerts = (
        scores.groupBy(PARTITION_COLUMN, "customer_id")
        .agg(F.max("fraud_probability").alias("card_risk"),
             F.count("*").alias("transactions"), F.first("model_version").alias("model_version"))
        .withColumn("rank", F.row_number().over(cards))
        .where(F.col("rank") <= top_k)
    )
    write_days(alerts, lake.alerts, [day], {day} if n_rows else set())
    scores.unpersist()
    laps.lap("score and write")

    psi = {}
    reference = drift_reference(lake, champion_training_window(version))
    with tracking.start_step_run("score", run_id, f"score {day}",
                                 {tracking.TAG_AS_OF: day, "fraudops.model_version": version}):
        mlflow.log_metric("scored_rows", n_rows)
        if reference is not None and n_rows:
            mlflow.log_params({"drift_reference_start": reference.start,
                               "drift_reference_end": reference.end})
            psi = feature_drift(spark, lake, reference, inputs, version)
            mlflow.log_metrics({f"psi_{k}": v for k, v in psi.items()})
            mlflow.log_metric("psi_max", max(psi.values()))
    laps.lap("drift")
    return {"run_id": run_id, "date": day, "model_version": version, "rows": n_rows,
            "top_k": top_k, "psi": psi, "drift_alerts": sorted(
                k for k, v in psi.items() if v > drift.PSI_ALERT), "seconds": laps.laps()}


def main(argv: list[str] | None = None) -> dict:
    parser = cli.parser(__doc__.split("\n\n")[0])
    parser.add_argument("--date", required=True, type=cli.date_arg, help="the day to score")
    parser.add_argument("--top-k", type=int, default=100, help="cards on the alert list")
    args = parser.parse_args(argv)
    cli.setup_logging()
    from spark_jobs.session import get_spark

    laps.lap("start (python, imports)")
    spark = get_spark("score", preload=families.PRODUCTION_LIBRARIES)
    laps.lap("spark session")
    summary = run(spark, Lake.from_env(args.lake_root), args.date.isoformat(),
                  cli.run_id(args.run_id), args.top_k)
    print(json.dumps({k: summary[k] for k in ("date", "model_version", "rows", "drift_alerts")}))
    return summary


if __name__ == "__main__":
    main()
