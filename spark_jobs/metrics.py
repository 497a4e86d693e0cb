"""Threshold-free and top-k metrics, bootstrap and PSI on driver-side arrays (numpy only)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def _ranked(y, s):
    y = np.asarray(y, dtype=float)
    s = np.asarray(s, dtype=float)
    order = np.argsort(-s, kind="mergesort")
    y, s = y[order], s[order]
    last_of_tie = np.r_[np.diff(s) != 0, True]
    tp = np.cumsum(y)[last_of_tie]
    fp = np.cumsum(1 - y)[last_of_tie]
    return tp, fp


def roc_auc(y, s) -> float:
    tp, fp = _ranked(y, s)
    if tp[-1] == 0 or fp[-1] == 0:
        return float("nan")
    tpr = np.r_[0, tp / tp[-1]]
    fpr = np.r_[0, fp / fp[-1]]
    return float(np.trapezoid(tpr, fpr))


def average_precision(y, s) -> float:
    """As sklearn's average_precision_score: sum over thresholds of (R_n - R_n-1) * P_n."""
    tp, fp = _ranked(y, s)
    if tp[-1] == 0:
        return float("nan")
    precision = tp / (tp + fp)
    recall = tp / tp[-1]
    return float(np.sum(np.diff(np.r_[0, recall]) * precision))


def card_precision_at_k(days, customers, y, s, k: int = 100):
    """The handbook's card precision top-k: per day, each card's highest score and label; cards
    found compromised on earlier days (in a top k and truly fraudulent) are left out; the share
    of frauds among the k riskiest remaining cards. Returns (per-day values, their mean)."""
    days, customers = np.asarray(days), np.asarray(customers)
    y, s = np.asarray(y), np.asarray(s, dtype=float)
    known: set = set()
    per_day = []
    for day in np.unique(days):
        mask = days == day
        cards, inverse = np.unique(customers[mask], return_inverse=True)
        card_score = np.full(len(cards), -np.inf)
        np.maximum.at(card_score, inverse, s[mask])
        card_label = np.zeros(len(cards), dtype=int)
        np.maximum.at(card_label, inverse, y[mask].astype(int))
        keep = np.array([c not in known for c in cards], dtype=bool)
        cards, card_score, card_label = cards[keep], card_score[keep], card_label[keep]
        top = np.argsort(-card_score, kind="mergesort")[:k]
        per_day.append(card_label[top].sum() / k)
        known.update(cards[top][card_label[top] == 1].tolist())
    return per_day, float(np.mean(per_day)) if per_day else float("nan")


@dataclass(frozen=True)
class BootstrapResult:
    observed: float  # metric(challenger) - metric(champion) on the full sample
    mean: float
    low: float
    high: float
    confidence: float
    resamples: int


def paired_bootstrap(metric_fn, groups, y, s_challenger, s_champion, n_resamples: int = 1000,
                     seed: int = 0, confidence: float = 0.95) -> BootstrapResult:
    """Resample whole groups (days or cards) with replacement, the same draw for both models."""
    groups, y = np.asarray(groups), np.asarray(y)
    a, b = np.asarray(s_challenger, dtype=float), np.asarray(s_champion, dtype=float)
    labels, inverse = np.unique(groups, return_inverse=True)
    members = [np.flatnonzero(inverse == g) for g in range(len(labels))]
    rng = np.random.default_rng(seed)
    diffs = np.empty(n_resamples)
    for i in range(n_resamples):
        idx = np.concatenate([members[g] for g in rng.integers(0, len(labels), len(labels))])
        diffs[i] = metric_fn(y[idx], a[idx]) - metric_fn(y[idx], b[idx])
    diffs = diffs[~np.isnan(diffs)]
    alpha = (1 - confidence) / 2
    return BootstrapResult(
        observed=float(metric_fn(y, a) - metric_fn(y, b)),
        mean=float(diffs.mean()),
        low=float(np.quantile(diffs, alpha)),
        high=float(np.quantile(diffs, 1 - alpha)),
        confidence=confidence,
        resamples=n_resamples,
    )
