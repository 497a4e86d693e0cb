"""The promotion's interval on simulated test windows: equal models are promoted no more often
than the nominal level allows, a clearly better one is promoted.

A simulated window has 7 days of 400 transactions, 3% fraud. Both models see the same signal
(a fraud's score is raised by 1.5 divided by the day's difficulty, shared by both) and the same
row noise, plus noise of their own: neighbouring rows and days are alike for both, as on real
days that share cards and terminals.
"""

from __future__ import annotations

import math

import numpy as np

from fraudops.model import metrics, registry

DAYS, ROWS, FRAUD_RATE = 7, 400, 0.03
NOMINAL = 0.025  # a two-sided 95% interval whose lower bound must be above zero
SIMULATIONS = 400


def window(rng, lift: float = 0.0):
    days = np.repeat(np.arange(DAYS), ROWS)
    hardness = rng.uniform(0.5, 2.0, DAYS)[days]
    y = (rng.random(len(days)) < FRAUD_RATE).astype(int)
    shared = rng.normal(0, 1, len(days))
    challenger = y * (1.5 + lift) / hardness + shared + rng.normal(0, 1, len(days))
    champion = y * 1.5 / hardness + shared + rng.normal(0, 1, len(days))
    return days, y, challenger, champion


def promotions(rng, n: int, lift: float = 0.0) -> float:
    promoted = 0
    for _ in range(n):
        interval = metrics.paired_day_interval(metrics.average_precision, *window(rng, lift))
        decision = registry.decide(_metrics(0.9), _metrics(0.9), interval, LOOSE, "ci")
        promoted += decision.promote
    return promoted / n


LOOSE = registry.Gates(min_roc_auc=0, min_average_precision=0, min_test_rows=0,
                       min_test_frauds=0)


def _metrics(ap: float) -> dict:
    return {"roc_auc": 0.9, "average_precision": ap, "card_precision_at_100": 0.3,
            "rows": 2800.0, "frauds": 84.0}


def test_equal_models_are_promoted_at_most_at_the_nominal_level():
    rate = promotions(np.random.default_rng(1), SIMULATIONS)
    sampling_error = math.sqrt(NOMINAL * (1 - NOMINAL) / SIMULATIONS)
    assert rate <= NOMINAL + 3 * sampling_error, rate


def test_a_clearly_better_model_is_promoted():
    assert promotions(np.random.default_rng(2), 100, lift=2.0) >= 0.8


def test_the_interval_is_over_days_with_a_fraud_only():
    rng = np.random.default_rng(3)
    days, y, a, b = window(rng)
    y[days == 0] = 0  # a day without fraud: AP is undefined there
    interval = metrics.paired_day_interval(metrics.average_precision, days, y, a, b)
    assert interval.days == DAYS - 1 and "0" not in interval.per_day
    assert interval.low < interval.mean < interval.high
    same = metrics.paired_day_interval(metrics.average_precision, days, y, a, a.copy())
    assert same.low == same.high == same.mean == same.observed == 0.0
    one_day = metrics.paired_day_interval(metrics.average_precision, days[days == 1],
                                          y[days == 1], a[days == 1], b[days == 1])
    assert one_day.days == 1 and math.isnan(one_day.low)
