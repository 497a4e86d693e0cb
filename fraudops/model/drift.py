"""Population stability index of each model feature between two windows, computed in Spark.

Bin edges are deciles of the reference window (one approxQuantile pass for all features);
both windows are then counted per bin in one aggregation each. Only the counts reach the driver.
A reference (edges and counts) is a small dict, so a daily job can keep it and only count the
day's rows.
"""

from __future__ import annotations

import logging

import numpy as np
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from fraudops.model.metrics import psi_from_counts
from fraudops.model.profile import PRODUCTION

log = logging.getLogger(__name__)

PSI_ALERT = PRODUCTION.psi_alert  # profile.yaml, tuning.psi_alert


def _bin_counts(df: DataFrame, edges: dict[str, list[float]]) -> dict[str, np.ndarray]:
    exprs = []
    for feature, cuts in edges.items():
        index = F.lit(len(cuts))
        for i in reversed(range(len(cuts))):
            index = F.when(F.col(feature) <= cuts[i], F.lit(i)).otherwise(index)
        for b in range(len(cuts) + 1):
            exprs.append(F.sum((index == b).cast("long")).alias(f"{feature}__{b}"))
    row = df.agg(*exprs).first().asDict()
    return {f: np.array([row[f"{f}__{b}"] or 0 for b in range(len(c) + 1)], dtype=float)
            for f, c in edges.items()}


def reference_bins(reference: DataFrame, features: list[str], bins: int = 10) -> dict:
    """{"edges": {feature: cuts}, "counts": {feature: counts per bin}} of the reference rows."""
    probabilities = [i / bins for i in range(1, bins)]
    quantiles = reference.approxQuantile(features, probabilities, 0.001)
    edges = {f: sorted(set(q)) for f, q in zip(features, quantiles)}
    counts = _bin_counts(reference, edges)
    return {"edges": edges, "counts": {f: c.tolist() for f, c in counts.items()}}


def psi_against(reference: dict, current: DataFrame) -> dict[str, float]:
    """PSI of each feature of a reference_bins() result: the current rows against it."""
    cur_counts = _bin_counts(current, reference["edges"])
    psi = {f: psi_from_counts(np.array(reference["counts"][f], dtype=float), cur_counts[f])
           for f in reference["edges"]}
    for feature, value in psi.items():
        if value > PSI_ALERT:
            log.warning("drift: PSI of %s is %.3f (> %.1f)", feature, value, PSI_ALERT)
    return psi
