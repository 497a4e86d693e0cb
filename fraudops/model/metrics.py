"""Model metrics on a bounded test window collected to the driver as arrays (numpy only).

- ``roc_auc`` and ``average_precision`` follow scikit-learn's ``roc_auc_score`` and
  ``average_precision_score`` (step-wise AP, one step per distinct score, so tied scores form
  one threshold). Both take an optional ``sample_weight``, which may be 2-D (one row of weights
  per resample, each row measured with the same sort).
  Where scikit-learn raises or warns (one class absent) they return NaN.
- ``card_precision_at_k`` is the Fraud Detection Handbook's card precision top-k (chapter 4),
  cards already found compromised on earlier days left out.
- ``paired_day_interval`` gives a t interval for the mean per-day difference of a metric between
  two models scored on the same rows (what promote decides on).
- ``psi_from_counts`` is the population stability index of two samples' counts over the same
  bins (fraudops.model.drift bins the features in Spark).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

PSI_EPSILON = 1e-4  # share given to an empty bin so that the log stays finite


def _weights(n_rows: int, sample_weight) -> np.ndarray:
    if sample_weight is None:
        return np.ones((1, n_rows))
    w = np.atleast_2d(np.asarray(sample_weight))
    if w.ndim != 2 or w.shape[1] != n_rows:
        raise ValueError(f"sample_weight of shape {w.shape} does not fit {n_rows} rows")
    return w


def _ranked_counts(y, s, sample_weight):
    """Weighted counts at each distinct score holding a positive, highest score first.

    Returns (tp, fp, fp_above, positives, negatives), the first three of shape
    (resamples, thresholds): tp/fp are the weights of positives/negatives scored >= the
    threshold, fp_above the weight of negatives scored strictly above it. Distinct scores that
    hold no positive change neither AP nor AUC, so they are not kept: the cost is one sort and
    one pass over the weights.
    """
    y = np.asarray(y)
    s = np.asarray(s, dtype=float)
    if y.shape != s.shape or y.ndim != 1:
        raise ValueError(f"y and s must be 1-D arrays of one length, got {y.shape}, {s.shape}")
    w = _weights(len(y), sample_weight)
    order = np.argsort(-s, kind="stable")
    s_sorted, positive = s[order], y[order] == 1
    w_sorted = w[:, order]
    new_score = np.r_[True, s_sorted[1:] != s_sorted[:-1]]
    tie_group = np.cumsum(new_score) - 1
    group_start = np.flatnonzero(new_score)
    group_end = np.r_[group_start[1:], len(s)] - 1  # last row of each tie group
    positive_rows = np.flatnonzero(positive)
    # Cumulative positive weight after each positive row; its last value in each tie group.
    tp_after_row = np.cumsum(w_sorted[:, positive_rows], axis=1)
    groups_with_positive, last_in_group = np.unique(tie_group[positive_rows][::-1],
                                                   return_index=True)
    tp = tp_after_row[:, len(positive_rows) - 1 - last_in_group]
    positives = tp_after_row[:, -1] if len(positive_rows) else np.zeros(len(w))
    # All weight above each such tie group and through its end, from sums over the segments
    # between those boundaries (cheaper than a cumulative sum over every row).
    starts = group_start[groups_with_positive]
    ends = group_end[groups_with_positive] + 1
    boundaries = np.unique(np.r_[0, starts, ends, len(s)])
    segment_sums = (np.add.reduceat(w_sorted, boundaries[:-1], axis=1) if len(s)
                    else np.zeros((len(w), 0)))
    weight_before = np.hstack([np.zeros((len(w), 1)), np.cumsum(segment_sums, axis=1)])
    everything_above = weight_before[:, np.searchsorted(boundaries, starts)]
    everything_through_end = weight_before[:, np.searchsorted(boundaries, ends)]
    total = weight_before[:, -1]
    tp_above = np.hstack([np.zeros((len(w), 1)), tp[:, :-1]])
    fp = everything_through_end - tp
    fp_above = everything_above - tp_above
    return tp, fp, fp_above, positives, total - positives


def _one_or_many(values: np.ndarray, sample_weight):
    if sample_weight is not None and np.ndim(sample_weight) == 2:
        return values
    return float(values[0])


def roc_auc(y, s, sample_weight=None):
    """Area under the ROC curve; ties between a fraud and a genuine score count one half.

    A float, or one value per row when ``sample_weight`` is 2-D; NaN without both classes.
    """
    tp, fp, fp_above, positives, negatives = _ranked_counts(y, s, sample_weight)
    tp_steps = np.diff(tp, axis=1, prepend=0.0)
    # Each positive beats the negatives scored below it and ties half of those at its score.
    beaten = negatives[:, None] - (fp + fp_above) / 2
    with np.errstate(invalid="ignore", divide="ignore"):
        auc = np.sum(tp_steps * beaten, axis=1) / (positives * negatives)
    auc[(positives == 0) | (negatives == 0)] = np.nan
    return _one_or_many(auc, sample_weight)


def average_precision(y, s, sample_weight=None):
    """sum_n (R_n - R_{n-1}) P_n over the distinct scores taken as thresholds, highest first.

    The same value as scikit-learn's average_precision_score (no interpolation). A float, or
    one value per row when ``sample_weight`` is 2-D; NaN when there is no positive.
    """
    tp, fp, _, positives, _ = _ranked_counts(y, s, sample_weight)
    tp_steps = np.diff(tp, axis=1, prepend=0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        # A step is taken only where tp grew, so tp + fp > 0 wherever it counts.
        precision = np.where(tp_steps > 0, tp / np.where(tp + fp > 0, tp + fp, 1), 0.0)
        ap = np.sum(tp_steps * precision, axis=1) / positives
    ap[positives == 0] = np.nan
    return _one_or_many(ap, sample_weight)


def card_precision_at_k(days, customer_ids, y, s, k: int = 100) -> tuple[list[float], float]:
    """The handbook's card precision top-k over a test period: (per-day values, their mean).

    Each day, in date order: every card (customer) gets its highest score and its highest label
    of the day; cards found compromised on an earlier day of the period (among that day's top k
    AND truly fraudulent) are left out, since investigators already blocked them; the k cards with
    the highest scores are the day's alerts and the value is frauds among them / k (still / k
    when fewer than k cards remain). Equal scores are ordered by card id, so the result is
    deterministic.
    """
    days, cards_all = np.asarray(days), np.asarray(customer_ids)
    y, s = np.asarray(y).astype(int), np.asarray(s, dtype=float)
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    known_compromised = np.array([], dtype=cards_all.dtype)
    per_day: list[float] = []
    for day in np.unique(days):
        in_day = days == day
        cards, card_of_row = np.unique(cards_all[in_day], return_inverse=True)
        card_score = np.full(len(cards), -np.inf)
        np.maximum.at(card_score, card_of_row, s[in_day])
        card_label = np.zeros(len(cards), dtype=int)
        np.maximum.at(card_label, card_of_row, y[in_day])
        still_open = ~np.isin(cards, known_compromised)
        cards, card_score, card_label = cards[still_open], card_score[still_open], card_label[
            still_open]
        top = np.argsort(-card_score, kind="stable")[:k]
        per_day.append(float(card_label[top].sum()) / k)
        known_compromised = np.union1d(known_compromised, cards[top][card_label[top] == 1])
    return per_day, float(np.mean(per_day)) if per_day else float("nan")


@dataclass(frozen=True)
class DayInterval:
    """metric(challenger) - metric(champion): on the whole window, per day, and a Student t
    interval of the mean per-day difference (what the promotion policy decides on)."""

    observed: float  # on the whole window, every day pooled
    mean: float  # mean of the per-day differences
    low: float  # t interval of that mean at `confidence` (NaN with fewer than 2 days)
    high: float
    confidence: float
    days: int  # days where both metrics are defined (AP needs a fraud that day)
    per_day: dict[str, float]


def paired_day_interval(metric_fn: Callable, days, y, s_challenger, s_champion,
                        confidence: float = 0.95) -> DayInterval:
    """The difference of ``metric_fn`` between two models measured on the same rows, day by day.

    Each day gives one paired difference; their mean gets a Student t interval with one degree
    of freedom fewer than days. Days, not rows, are the units: rows of one day share cards,
    terminals and fraud scenarios. Unlike a percentile bootstrap over a handful of days, whose
    interval is too narrow (it covers well under its nominal level on 7 days), the t interval
    keeps its level for few days when the per-day differences are roughly normal
    (tests/model/test_promotion_statistics.py simulates equal models).
    """
    from scipy import stats

    days, y = np.asarray(days), np.asarray(y)
    a, b = np.asarray(s_challenger, dtype=float), np.asarray(s_champion, dtype=float)
    if not (len(y) == len(a) == len(b) == len(days)):
        raise ValueError("days, y and both score arrays must have one length")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    per_day = {}
    for day in np.unique(days):
        rows = days == day
        diff = float(metric_fn(y[rows], a[rows]) - metric_fn(y[rows], b[rows]))
        if not np.isnan(diff):
            per_day[str(day)] = diff
    diffs = np.array(list(per_day.values()))
    n, nan = len(diffs), float("nan")
    mean = float(diffs.mean()) if n else nan
    half = (float(stats.t.ppf(0.5 + confidence / 2, n - 1) * diffs.std(ddof=1) / np.sqrt(n))
            if n >= 2 else nan)
    return DayInterval(observed=float(metric_fn(y, a) - metric_fn(y, b)) if len(y) else nan,
                       mean=mean, low=mean - half, high=mean + half, confidence=confidence,
                       days=n, per_day=per_day)


def psi_from_counts(expected_counts, actual_counts, epsilon: float = PSI_EPSILON) -> float:
    """sum (a - e) * ln(a / e) over bins of the two samples' shares (each at least epsilon)."""
    e = np.asarray(expected_counts, dtype=float)
    a = np.asarray(actual_counts, dtype=float)
    e = np.maximum(e / max(e.sum(), 1.0), epsilon)
    a = np.maximum(a / max(a.sum(), 1.0), epsilon)
    return float(np.sum((a - e) * np.log(a / e)))
