"""Training job: a challenger measured on the latest matured week, refitted through it to serve.

    python -m spark_jobs.train --as-of 2018-05-10            # tunes or refits (auto)
    python -m spark_jobs.train --as-of 2018-05-10 --tune     # grid search now

The production profile (fraudops/model/profile.yaml, logged with every run) sets the windows,
the label delay, the grid and when to tune. A run as of D reads only days whose labels are known
on D: up to the matured end M = D - --delay-days (fraudops.model.splits.run_windows). By time,
never at random: --test-days of test ending on M; an evaluation model trained on --train-days
that end --delay-days before the test window; the model that serves, refitted on the
--train-days ending on M. Warm-up days (feature windows that reach before the lake's first day)
are left out of training. Then one of two paths (fraudops.model.tuning decides which):

- tune: each candidate of the grid is scored on the prequential folds inside the days before
  the test window (a nested MLflow run each); the best one's configuration is recorded;
- refit: the configuration of the latest tuning is fitted on the fresh windows.

The evaluation model is measured on the test window and logged beside the serving model (the
run's artifact evaluation_model: promote compares versions by it); the serving model is logged
with its inputs, plots and pinned requirements, and registered as a new version tagged with the
run id. promote decides whether it becomes the champion. A retry with the same --run-id finds
that version by its tag and returns it: one run id, one version (docs/failure-modes.md).
"""

from __future__ import annotations

import argparse
import json
import logging
from dataclasses import dataclass, fields

import mlflow
import numpy as np
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from fraudops.core import cli, laps, storage
from fraudops.core.lake import Lake
from fraudops.model import evaluation, families, grid, loading, tracking, tuning
from fraudops.model.families import LABEL, Candidate, days_of
from fraudops.model.profile import PRODUCTION, Profile
from fraudops.model.registry import PRIMARY
from fraudops.model.splits import (
    Period,
    RunWindows,
    Split,
    first_full_day,
    prequential_folds,
    run_windows,
    warmed_up,
)
from spark_jobs.datasets import clean_days
from spark_jobs.marts import LOOKBACK_DAYS, labeled_features

log = logging.getLogger(__name__)

# The run's summary without its model version, logged before the version is registered.
SUMMARY_ARTIFACT = "train_summary.json"


@dataclass(frozen=True)
class TrainConfig:
    """The profile's settings, each overridable on the command line (logged as config_*)."""

    train_days: int = PRODUCTION.train_days
    delay_days: int = PRODUCTION.label_delay_days  # the label delay
    test_days: int = PRODUCTION.test_days
    folds: int = PRODUCTION.folds
    fold_train_days: int = PRODUCTION.fold_train_days
    fold_assess_days: int = PRODUCTION.fold_assess_days
    grid: str = "default"  # default (the profile's) | small
    seed: int = PRODUCTION.seed
    path: str = tuning.AUTO  # auto | tune | refit
    tune_every_days: int = PRODUCTION.tune_every_days

    def grids(self, profile: Profile = PRODUCTION) -> dict:
        return families.SMALL_GRIDS if self.grid == "small" else profile.grid


def window_data(spark: SparkSession, lake: Lake, period: Period) -> DataFrame:
    return labeled_features(spark, lake, period.start, period.end)


def fit(candidate: Candidate, train: DataFrame, seed: int):
    counts = train.agg(F.count("*").alias("n"), F.sum(LABEL).alias("f")).first()
    weight = families.fraud_weight(candidate, counts["n"], counts["f"] or 0)
    rows = families.with_class_weights(in_canonical_layout(train, candidate.family), weight)
    return families.pipeline(candidate, seed).fit(rows)


def in_canonical_layout(rows: DataFrame, family: str | None = None) -> DataFrame:
    """The rows in an order that depends on the rows only, sorted by transaction id.

    A model fitted on the same rows and seed in another order (how a mart's files were written,
    which join AQE chose) is another model: XGBoost's quantile sketch and Spark's bagging,
    subsampling and split-candidate sampling read rows in order. XGBoost trains in one task
    (num_workers=1): its rows are one partition, which xgboost.spark takes as it is and
    fraudops.model.grid rebuilds. Spark's own families are hashed by id into the session's
    shuffle width, an explicit partition count that AQE does not coalesce.
    """
    if family == grid.FAMILY:
        return rows.repartition(1).sortWithinPartitions("transaction_id")
    width = int(rows.sparkSession.conf.get("spark.sql.shuffle.partitions"))
    return rows.repartition(width, "transaction_id").sortWithinPartitions("transaction_id")


def fold_scores(candidate: Candidate, data: DataFrame, folds: list[Split], seed: int) -> dict:
    """Mean and standard deviation of each metric over the prequential folds."""
    per_fold = []
    for fold in folds:
        model = fit(candidate, days_of(data, fold.train), seed)
        per_fold.append(evaluation.evaluate(model, days_of(data, fold.test)))
    return evaluation.over_folds(per_fold)


def select(candidates: list[Candidate], data: DataFrame, folds: list[Split], seed: int):
    """Score every candidate on the folds and log each in a nested run; return the best by the
    primary metric. The XGBoost candidates are fitted in one task per fold
    (fraudops.model.grid), any other one by one (fold_scores)."""
    boosted = [i for i, c in enumerate(candidates) if grid.supports([c])]
    by_grid = {}
    if boosted:
        log.info("fitting %d XGBoost candidate(s) on %d fold(s), one task per fold",
                 len(boosted), len(folds))
        by_grid = dict(zip(boosted, grid.grid_scores([candidates[i] for i in boosted], data,
                                                     folds, seed), strict=True))
    all_scores = [by_grid[i] if i in by_grid else fold_scores(c, data, folds, seed)
                  for i, c in enumerate(candidates)]
    results = []
    for i, (candidate, scores) in enumerate(zip(candidates, all_scores, strict=True), 1):
        with mlflow.start_run(run_name=candidate.name, nested=True):
            mlflow.set_tag("fraudops.trial_family", candidate.family)
            mlflow.log_params({"family": candidate.family, **candidate.params})
            mlflow.log_metrics({f"validation_{k}": v for k, v in scores.items()})
        log.info("trial %d/%d %s: validation AP=%.4f AUC=%.4f CP@%d=%.4f", i, len(candidates),
                 candidate.name, scores[PRIMARY], scores["roc_auc"], evaluation.TOP_K,
                 scores[evaluation.CARD_PRECISION])
        results.append((scores[PRIMARY], i, candidate, scores))
    best = max(results, key=lambda r: (r[0], -r[1]))
    return best[2], best[3]


def fingerprint(lake: Lake, period: Period) -> str:
    """What the window was made of: the checksums of the raw files behind its days."""
    manifest = storage.read_json(lake.manifest, default={}) or {}
    parts = sorted(f"{e['day']}:{e['md5']}" for e in manifest.values()
                   if period.start <= e.get("day", "") <= period.end)
    return ",".join(parts)


def log_window(lake: Lake, name: str, period: Period, df: DataFrame, context: str) -> dict:
    counts = df.agg(F.count("*").alias("rows"), F.sum(LABEL).alias("frauds")).first()
    stats = {"rows": counts["rows"], "frauds": int(counts["frauds"] or 0)}
    tracking.log_dataset(name, lake.clean, period.start, period.end, stats["rows"],
                         stats["frauds"], context, fingerprint(lake, period))
    return stats


def training_windows(lake: Lake, as_of: str, cfg: TrainConfig) -> tuple[RunWindows, Period]:
    """The windows of a run as of ``as_of`` with the warm-up days cut off their training days;
    and the serving window as the calendar gives it."""
    windows = run_windows(as_of, cfg.train_days, cfg.delay_days, cfg.test_days)
    days = clean_days(lake)
    first_full = first_full_day(days[0], LOOKBACK_DAYS) if days else None
    evaluation = windows.evaluation
    train_period = warmed_up(evaluation.train, first_full)
    if train_period is None:
        raise SystemExit(
            f"no training day as of {as_of}: the evaluation model's window "
            f"{evaluation.train.start}..{evaluation.train.end} lies in the warm-up (features are "
            f"complete from {first_full}, {LOOKBACK_DAYS} days after the lake's first day "
            f"{days[0]})")
    if train_period != evaluation.train:
        log.info("warm-up: training from %s, not %s (feature windows before %s reach before the "
                 "lake's first day)", train_period.start, evaluation.train.start, first_full)
    cut = RunWindows(as_of, windows.matured_end,
                     Split(train_period, evaluation.delay, evaluation.test),
                     warmed_up(windows.serving, first_full),
                     warmed_up(windows.tuning, first_full))
    return cut, windows.serving


def run(spark: SparkSession, lake: Lake, as_of: str, run_id: str, cfg: TrainConfig,
        profile: Profile = PRODUCTION) -> dict:
    """Train and register a challenger, once per run id: a retry returns the version the run
    registered (found by its tag) instead of registering another."""
    with tracking.fail_closed(f"training for run {run_id}"):
        tracking.setup()
        registered = registered_version(run_id)
        if registered is not None:
            summary = recover(lake, as_of, run_id, registered)
        else:
            summary = train(spark, lake, as_of, run_id, cfg, profile)
    if storage.read_json(lake.run_summary("train", run_id)) != summary:
        storage.write_json(lake.run_summary("train", run_id), summary)
    metrics = summary["test_metrics"]
    log.info("%s version %s: test AP=%.4f AUC=%.4f CP@%d=%.4f", tracking.MODEL_NAME,
             summary["model_version"], metrics["average_precision"], metrics["roc_auc"],
             evaluation.TOP_K, metrics[evaluation.CARD_PRECISION])
    return summary


def registered_version(run_id: str):
    """The model version a run registered (tagged with its run id), or None."""
    versions = mlflow.MlflowClient().search_model_versions(
        f"name = '{tracking.MODEL_NAME}' and tags.`{tracking.TAG_PIPELINE_RUN}` = '{run_id}'")
    if not versions:
        return None
    first = min(versions, key=lambda v: int(v.version))
    if len(versions) > 1:
        log.warning("run %s registered %d versions (%s); its first, v%s, is its challenger",
                    run_id, len(versions), ", ".join(sorted(v.version for v in versions)),
                    first.version)
    return first


def recover(lake: Lake, as_of: str, run_id: str, registered) -> dict:
    """The summary of a run that registered its version already, written as it would have been.

    Registering is the run's last MLflow write and its summary artifact comes before it, so the
    version alone proves the training finished: nothing is trained again.
    """
    version = str(registered.version)
    summary = storage.read_json(lake.run_summary("train", run_id))
    if summary is None or summary.get("model_version") != version:
        summary = {**mlflow.artifacts.load_dict(f"runs:/{registered.run_id}/{SUMMARY_ARTIFACT}"),
                   "model_version": version}
    if summary["as_of"] != as_of:
        raise SystemExit(f"run {run_id} trained v{version} as of {summary['as_of']}, not "
                         f"{as_of}: a run id names one run of one day")
    tracking.finish(mlflow.MlflowClient().get_run(registered.run_id))
    log.info("run %s registered v%s already: not training again", run_id, version)
    return summary


def train(spark: SparkSession, lake: Lake, as_of: str, run_id: str, cfg: TrainConfig,
          profile: Profile = PRODUCTION) -> dict:
    windows, calendar_serving = training_windows(lake, as_of, cfg)
    split, serving = windows.evaluation, windows.serving
    choice = tuning.choose(mlflow.MlflowClient(), cfg.path, as_of, profile, cfg.tune_every_days)
    log.info("training path: %s (%s)", choice.path, choice.reason)
    laps.lap("mlflow set-up, path")
    folds = []
    if choice.path == tuning.TUNE:
        folds = prequential_folds(windows.tuning, cfg.folds, cfg.fold_train_days, cfg.delay_days,
                                  cfg.fold_assess_days)
    log.info("labels known through %s; evaluation split %s; serving refit on %s..%s; %d "
             "prequential fold(s)", windows.matured_end, json.dumps(split.as_dict()),
             serving.start, serving.end, len(folds))
    # Every day the run reads, once: the evaluation split's and the serving window's.
    data = window_data(spark, lake, Period(min(split.train.start, serving.start),
                                           windows.matured_end)).persist()
    train_df, eval_train_df = days_of(data, serving), days_of(data, split.train)
    test_df = days_of(data, split.test)

    tracking.end_abandoned_runs("train", run_id)
    with mlflow.start_run(run_name=f"train {as_of}") as parent:
        mlflow.set_tags({tracking.TAG_STEP: "train", tracking.TAG_PIPELINE_RUN: run_id,
                         tracking.TAG_AS_OF: as_of, tuning.TAG_PATH: choice.path,
                         tuning.TAG_REASON: choice.reason[:500]})
        # train_start/train_end: what the registered version learned (registry.training_window).
        mlflow.log_params({**{f"config_{k}": v for k, v in cfg.__dict__.items()},
                           "profile_version": profile.version, "profile_digest": profile.digest,
                           "matured_end": windows.matured_end,
                           "train_start": serving.start, "train_end": serving.end,
                           "train_calendar_start": calendar_serving.start,
                           "evaluation_train_start": split.train.start,
                           "evaluation_train_end": split.train.end,
                           "test_start": split.test.start, "test_end": split.test.end,
                           "primary_metric": PRIMARY})
        mlflow.log_text(profile.text, "profile.yaml")
        train_stats = log_window(lake, "train", serving, train_df, "training")
        eval_stats = log_window(lake, "evaluation_train", split.train, eval_train_df,
                                "training")
        test_stats = log_window(lake, "test", split.test, test_df, "testing")
        if min(train_stats["frauds"], eval_stats["frauds"]) == 0 or test_stats["rows"] == 0:
            raise SystemExit(f"not enough data to train as of {as_of}: train={train_stats}, "
                             f"evaluation_train={eval_stats}, test={test_stats}; run clean and "
                             "features first")
        laps.lap("read and count windows")

        if choice.path == tuning.TUNE:
            best, validation = select(families.candidates(cfg.grids(profile)), data, folds,
                                      cfg.seed)
            config = tuning.TunedConfig(best.family, best.params, as_of, profile.version)
            mlflow.log_metrics({f"validation_{k}": v for k, v in validation.items()})
            log.info("best candidate %s", best.name)
            laps.lap("tuning")
        else:
            config, validation = choice.config, {}
            best = Candidate(config.family, config.params)
            log.info("refitting %s (tuned on %s)", best.name, config.tuned_on)
        mlflow.set_tags(config.tags())
        mlflow.log_params({"best_family": best.family,
                           **{f"best_{k}": v for k, v in best.params.items()}})
        log.info("evaluation model on %s..%s, tested on %s..%s", split.train.start,
                 split.train.end, split.test.start, split.test.end)
        evaluation_model = fit(best, eval_train_df, cfg.seed)
        laps.lap("fit evaluation model")
        scored = evaluation.score_frame(evaluation_model, test_df)
        metrics = evaluation.metrics_of(scored)
        mlflow.log_metrics({f"test_{k}": v for k, v in metrics.items()})
        for step, value in enumerate(evaluation.card_precision_per_day(scored)):
            mlflow.log_metric(f"test_{evaluation.CARD_PRECISION}_daily", value, step=step)
        evaluation.log_curves(scored, "test")
        laps.lap("test metrics and plots")
        log_evaluation_model(evaluation_model)
        log.info("serving model on %s..%s", serving.start, serving.end)
        model = fit(best, train_df, cfg.seed)
        evaluation.log_importances(model, families.ALL_FEATURES)
        laps.lap("fit serving model")
        logged = log_model(model, test_df)
        laps.lap("log models")
        summary = {
            "run_id": run_id, "mlflow_run_id": parent.info.run_id, "as_of": as_of,
            "matured_end": windows.matured_end, "split": split.as_dict(),
            "serving": {"start": serving.start, "end": serving.end},
            "model_name": tracking.MODEL_NAME, "best": best.name, "test_metrics": metrics,
            "validation_metrics": validation, "train": train_stats,
            "evaluation_train": eval_stats, "test": test_stats,
            "path": choice.path, "path_reason": choice.reason,
            "config": {"family": config.family, "params": config.params,
                       "tuned_on": config.tuned_on},
            "profile": {"version": profile.version, "digest": profile.digest},
        }
        summary = json.loads(json.dumps(summary, default=str))  # as a retry reads it back
        tracking.log_json(summary, SUMMARY_ARTIFACT)
        # Last: once the version exists, a retry returns it (registered_version, recover).
        summary["model_version"] = register(logged, run_id, {**config.tags(),
                                                             tuning.TAG_PATH: choice.path})
    data.unpersist()
    return summary


def log_evaluation_model(model) -> None:
    """The evaluation model, as the run's artifact loading.EVALUATION_MODEL (not registered)."""
    import mlflow.spark

    mlflow.spark.log_model(model, artifact_path=loading.EVALUATION_MODEL,
                           pip_requirements=tracking.pinned_requirements(),
                           dfs_tmpdir=tracking.dfs_tmpdir())


def log_model(model, test_df: DataFrame):
    """Log the fitted pipeline with its signature and pinned requirements (not registered)."""
    import mlflow.spark
    from mlflow.models import infer_signature

    example = test_df.select(*families.INPUT_COLUMNS).limit(5).toPandas()
    output = np.full(len(example), 0.5)
    return mlflow.spark.log_model(
        model,
        artifact_path="model",
        signature=infer_signature(example, output),
        input_example=example,
        pip_requirements=tracking.pinned_requirements(),
        dfs_tmpdir=tracking.dfs_tmpdir(),
    )


def register(logged, run_id: str, tags: dict[str, str] | None = None) -> str:
    """A new version of the model, created with the run id's tag (and ``tags``: the training
    path and configuration) in the same request."""
    version = mlflow.register_model(logged.model_uri, tracking.MODEL_NAME,
                                    tags={**(tags or {}), tracking.TAG_PIPELINE_RUN: run_id})
    return str(version.version)


def arguments() -> argparse.ArgumentParser:
    """The command line: --as-of, the common options and one option per TrainConfig field."""
    parser = cli.parser(__doc__.split("\n\n")[0])
    defaults = TrainConfig()
    parser.add_argument("--as-of", required=True, type=cli.date_arg,
                        help="the run's day (the DAG's logical date): the test window ends "
                        "--delay-days before it")
    parser.add_argument("--train-days", type=int, default=defaults.train_days)
    parser.add_argument("--delay-days", type=int, default=defaults.delay_days,
                        help="label delay: only days this old have labels (the matured end); "
                        "also the gap before the test window")
    parser.add_argument("--test-days", type=int, default=defaults.test_days)
    parser.add_argument("--folds", type=int, default=defaults.folds,
                        help="prequential folds inside the training window")
    parser.add_argument("--fold-train-days", type=int, default=defaults.fold_train_days)
    parser.add_argument("--fold-assess-days", type=int, default=defaults.fold_assess_days)
    parser.add_argument("--grid", choices=["default", "small"], default=defaults.grid,
                        help="hyperparameter grid when tuning (default: the profile's; small: "
                        "one candidate per family)")
    parser.add_argument("--seed", type=int, default=defaults.seed)
    path = parser.add_mutually_exclusive_group()
    path.add_argument("--path", choices=tuning.PATHS, default=defaults.path,
                      help="auto: tune when the profile's rules say so, else refit")
    path.add_argument("--tune", dest="path", action="store_const", const=tuning.TUNE,
                      help="tune now (same as --path tune)")
    parser.add_argument("--tune-every-days", type=int, default=defaults.tune_every_days,
                        help="tune when the last tuning is this many days old")
    return parser


def config_of(args: argparse.Namespace) -> TrainConfig:
    """The run's TrainConfig: each field from the command-line option of its name."""
    return TrainConfig(**{field.name: getattr(args, field.name) for field in fields(TrainConfig)})


def main(argv: list[str] | None = None) -> dict:
    args = arguments().parse_args(argv)
    cli.setup_logging()
    cfg = config_of(args)
    from spark_jobs.session import get_spark

    laps.lap("start (python, imports)")
    spark = get_spark("train", preload=families.PRODUCTION_LIBRARIES)
    laps.lap("spark session")
    summary = run(spark, Lake.from_env(args.lake_root), args.as_of.isoformat(),
                  cli.run_id(args.run_id), cfg)
    laps.lap("register, summary")
    print(json.dumps({k: summary[k] for k in ("model_version", "path", "best", "test_metrics")}))
    return summary


if __name__ == "__main__":
    main()
