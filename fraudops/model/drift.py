"""Population stability index of each model feature between two windows, computed in Spark.

Bin edges are deciles of the reference window (one approxQuantile pass for all features);
both windows are then counted per bin in one aggregation each. Only the counts reach the driver.
"""

from __future__ import annotations

import logging

import numpy as np
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

log = logging.getLogger(__name__)

PSI_ALERT = 0.2
_EPS = 1e-4


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


def psi_from_counts(expected: np.ndarray, actual: np.ndarray) -> float:
    e = np.maximum(expected / max(expected.sum(), 1), _EPS)
    a = np.maximum(actual / max(actual.sum(), 1), _EPS)
    return float(np.sum((a - e) * np.log(a / e)))


def psi_by_feature(reference: DataFrame, current: DataFrame, features: list[str],
                   bins: int = 10) -> dict[str, float]:
    probabilities = [i / bins for i in range(1, bins)]
    quantiles = reference.approxQuantile(features, probabilities, 0.001)
    edges = {f: sorted(set(q)) for f, q in zip(features, quantiles)}
    ref_counts, cur_counts = _bin_counts(reference, edges), _bin_counts(current, edges)
    psi = {f: psi_from_counts(ref_counts[f], cur_counts[f]) for f in features}
    for feature, value in psi.items():
        if value > PSI_ALERT:
            log.warning("drift: PSI of %s is %.3f (> %.1f)", feature, value, PSI_ALERT)
    return psi
