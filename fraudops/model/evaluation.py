"""Scoring a labelled window with a model and measuring it, the same way for train and promote.

A test window is a bounded number of days, so its (day, card, label, score) columns are brought
to the driver as arrays for the metrics; the Spark work that grows with the data stays in Spark.
"""

from __future__ import annotations

import statistics

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import mlflow  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from pyspark.sql import DataFrame  # noqa: E402

from fraudops.core.lake import PARTITION_COLUMN  # noqa: E402
from fraudops.model import families, metrics, registry, tracking  # noqa: E402
from fraudops.model.profile import card_precision_metric  # noqa: E402

TOP_K = registry.TOP_K
CARD_PRECISION = registry.CARD_PRECISION


def score_frame(model, df: DataFrame) -> pd.DataFrame:
    """The window's (day, customer, label, fraud probability) as a driver-side frame."""
    scored = families.fraud_probability(model.transform(df))
    return scored.select(
        "transaction_id", PARTITION_COLUMN, "customer_id", families.LABEL, "fraud_probability"
    ).toPandas().sort_values("transaction_id", ignore_index=True)


def arrays(scored: pd.DataFrame):
    """(day, customer, label, fraud probability) of each scored row, as numpy arrays."""
    return (scored[PARTITION_COLUMN].astype(str).to_numpy(), scored["customer_id"].to_numpy(),
            scored[families.LABEL].to_numpy().astype(int),
            scored["fraud_probability"].to_numpy().astype(float))


def card_precision_per_day(scored: pd.DataFrame, k: int = TOP_K) -> list[float]:
    days, customers, y, s = arrays(scored)
    per_day, _ = metrics.card_precision_at_k(days, customers, y, s, k=k)
    return list(per_day)


def metrics_of(scored: pd.DataFrame, k: int = TOP_K) -> dict[str, float]:
    days, customers, y, s = arrays(scored)
    _, cp_mean = metrics.card_precision_at_k(days, customers, y, s, k=k)
    return {
        "roc_auc": float(metrics.roc_auc(y, s)),
        "average_precision": float(metrics.average_precision(y, s)),
        card_precision_metric(k): float(cp_mean),
        "rows": float(len(y)),
        "frauds": float(y.sum()),
    }


def evaluate(model, df: DataFrame) -> dict[str, float]:
    return metrics_of(score_frame(model, df))


def over_folds(per_fold: list[dict[str, float]]) -> dict[str, float]:
    """Each metric's mean over the folds, and its population standard deviation as
    ``<metric>_std``: a candidate's validation scores."""
    out = {}
    for key in per_fold[0]:
        values = [m[key] for m in per_fold]
        out[key] = statistics.fmean(values)
        out[f"{key}_std"] = statistics.pstdev(values)
    return out


def _curves(y: np.ndarray, s: np.ndarray):
    order = np.argsort(-s, kind="mergesort")
    y_sorted = y[order]
    tp = np.cumsum(y_sorted)
    fp = np.cumsum(1 - y_sorted)
    tpr = tp / max(tp[-1], 1)
    fpr = fp / max(fp[-1], 1)
    precision = tp / np.arange(1, len(y) + 1)
    return np.r_[0, fpr], np.r_[0, tpr], np.r_[1, precision], np.r_[0, tpr]


def log_curves(scored: pd.DataFrame, prefix: str) -> None:
    _, _, y, s = arrays(scored)
    fpr, tpr, precision, recall = _curves(y, s)
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.plot(fpr, tpr, label=f"AUC = {metrics.roc_auc(y, s):.3f}")
    ax.plot([0, 1], [0, 1], "--", color="grey")
    ax.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC curve")
    ax.legend(loc="lower right")
    tracking.log_figure(fig, f"plots/{prefix}_roc.png")
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.plot(recall, precision, label=f"AP = {metrics.average_precision(y, s):.3f}")
    ax.axhline(y.mean() if len(y) else 0, ls="--", color="grey", label="fraud rate")
    ax.set(xlabel="recall", ylabel="precision", title="Precision-recall curve")
    ax.legend(loc="upper right")
    tracking.log_figure(fig, f"plots/{prefix}_precision_recall.png")


def importances(model, feature_names: list[str]) -> dict[str, float]:
    """Each feature's importance in the pipeline's classifier, summing to 1: Spark's trees' own
    featureImportances, or XGBoost's total gain per feature (features it never split on: 0)."""
    classifier = model.stages[-1]
    if hasattr(classifier, "featureImportances"):
        values = [float(v) for v in classifier.featureImportances.toArray()]
    else:  # xgboost.spark names the assembled vector's slots f0, f1, ...
        gain = classifier.get_booster().get_score(importance_type="total_gain")
        values = [gain.get(f"f{i}", 0.0) for i in range(len(feature_names))]
    total = sum(values) or 1.0
    return {name: v / total for name, v in zip(feature_names, values)}


def log_importances(model, feature_names: list[str]) -> None:
    pairs = sorted(importances(model, feature_names).items(), key=lambda p: p[1])
    tracking.log_json(dict(reversed(pairs)), "feature_importances.json")
    fig, ax = plt.subplots(figsize=(6, 0.3 * len(pairs) + 1))
    ax.barh([p[0] for p in pairs], [p[1] for p in pairs])
    ax.set(xlabel="importance", title="Feature importances")
    tracking.log_figure(fig, "plots/feature_importances.png")
    mlflow.log_metrics({f"importance_{name}": float(v) for name, v in pairs})
