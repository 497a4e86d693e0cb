"""Metrics against hand-computed cases and plain brute-force references (no scikit-learn here)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fraudops.model import metrics

# ---------------------------------------------------------------- references, written plainly


def reference_average_precision(y, s, w=None):
    """Every distinct score as a threshold, highest first: sum of recall gain times precision."""
    w = [1.0] * len(y) if w is None else w
    positives = sum(wi for yi, wi in zip(y, w) if yi == 1)
    total, previous_recall = 0.0, 0.0
    for threshold in sorted(set(s), reverse=True):
        selected = [(yi, wi) for yi, si, wi in zip(y, s, w) if si >= threshold]
        tp = sum(wi for yi, wi in selected if yi == 1)
        weight = sum(wi for _, wi in selected)
        recall = tp / positives
        if recall > previous_recall:
            total += (recall - previous_recall) * tp / weight
        previous_recall = recall
    return total


def reference_roc_auc(y, s):
    """Share of (fraud, genuine) pairs ranked right, a tie counting one half."""
    pairs = [(sp, sn) for yp, sp in zip(y, s) if yp == 1 for yn, sn in zip(y, s) if yn == 0]
    return sum(1.0 if sp > sn else 0.5 if sp == sn else 0.0 for sp, sn in pairs) / len(pairs)


labels_and_scores = st.integers(2, 30).flatmap(lambda n: st.tuples(
    st.lists(st.integers(0, 1), min_size=n, max_size=n).filter(lambda y: 0 < sum(y) < n),
    # Few distinct values, so that ties are frequent.
    st.lists(st.sampled_from([0.0, 0.1, 0.25, 0.5, 0.7, 0.9, 1.0]), min_size=n, max_size=n),
    st.lists(st.integers(0, 3), min_size=n, max_size=n),
))

# ---------------------------------------------------------------- AP and ROC AUC


@pytest.mark.parametrize(("y", "s", "expected"), [
    # scikit-learn's documented example: thresholds 0.8, 0.4, 0.35, 0.1 -> 1*1/2 + 2/3*1/2
    ([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8], 0.5 + (2 / 3) * 0.5),
    # one tied threshold holds both frauds and a genuine: a single step, precision 2/3
    ([1, 0, 1, 0], [0.5, 0.5, 0.5, 0.1], 2 / 3),
    # perfect and reversed rankings
    ([1, 1, 0, 0], [0.9, 0.8, 0.2, 0.1], 1.0),
    ([0, 0, 1, 1], [0.9, 0.8, 0.2, 0.1], 0.5 * 1 / 3 + 0.5 * 2 / 4),
    # every score tied: AP is the fraud rate
    ([1, 0, 0, 0], [0.3, 0.3, 0.3, 0.3], 0.25),
])
def test_average_precision_hand_computed(y, s, expected):
    assert metrics.average_precision(y, s) == pytest.approx(expected)


@pytest.mark.parametrize(("y", "s", "expected"), [
    ([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8], 0.75),
    # pairs: two ties (1/2 each) and two wins -> 3/4
    ([1, 0, 1, 0], [0.5, 0.5, 0.5, 0.1], 0.75),
    ([1, 1, 0, 0], [0.9, 0.8, 0.2, 0.1], 1.0),
    ([0, 0, 1, 1], [0.9, 0.8, 0.2, 0.1], 0.0),
    ([1, 0, 0, 0], [0.3, 0.3, 0.3, 0.3], 0.5),
])
def test_roc_auc_hand_computed(y, s, expected):
    assert metrics.roc_auc(y, s) == pytest.approx(expected)


def test_undefined_without_both_classes():
    assert np.isnan(metrics.average_precision([0, 0, 0], [0.1, 0.2, 0.3]))
    assert np.isnan(metrics.roc_auc([1, 1], [0.1, 0.2]))
    assert np.isnan(metrics.roc_auc([0, 0], [0.1, 0.2]))
    assert np.isnan(metrics.average_precision([], []))
    assert metrics.average_precision([1, 1], [0.1, 0.2]) == 1.0


def test_mismatched_lengths_are_refused():
    with pytest.raises(ValueError):
        metrics.average_precision([0, 1, 1], [0.1, 0.2])
    with pytest.raises(ValueError):
        metrics.roc_auc([0, 1], [0.1, 0.2], sample_weight=np.ones((3, 5)))


@settings(max_examples=150, deadline=None)
@given(labels_and_scores)
def test_metrics_match_brute_force(case):
    y, s, _ = case
    assert metrics.average_precision(y, s) == pytest.approx(reference_average_precision(y, s))
    assert metrics.roc_auc(y, s) == pytest.approx(reference_roc_auc(y, s))


@settings(max_examples=100, deadline=None)
@given(labels_and_scores)
def test_integer_weights_equal_repeated_rows(case):
    """A weight-c row is the row drawn c times, for one row of weights or several."""
    y, s, w = case
    repeated_y, repeated_s = np.repeat(y, w), np.repeat(s, w)
    for metric in (metrics.average_precision, metrics.roc_auc):
        expected = metric(repeated_y, repeated_s)
        weighted = metric(y, s, sample_weight=w)
        batched = metric(y, s, sample_weight=np.vstack([w, np.ones(len(w)), w]))
        assert batched.shape == (3,)
        if np.isnan(expected):
            assert np.isnan(weighted) and np.isnan(batched[0])
        else:
            assert weighted == pytest.approx(expected)
            assert batched[[0, 2]] == pytest.approx([expected, expected])
        assert batched[1] == pytest.approx(metric(y, s), nan_ok=True)


@settings(max_examples=100, deadline=None)
@given(labels_and_scores)
def test_weighted_average_precision_matches_weighted_reference(case):
    y, s, w = case
    if sum(wi for yi, wi in zip(y, w) if yi == 1) == 0:
        assert np.isnan(metrics.average_precision(y, s, sample_weight=w))
    else:
        assert metrics.average_precision(y, s, sample_weight=w) == pytest.approx(
            reference_average_precision(y, s, w))


# ---------------------------------------------------------------- card precision top-k


def test_card_precision_at_k_removes_known_compromised_cards():
    """k = 2 over three days; rows are (day, card, label, score), given out of order.

    day 1: A has two transactions (0.9 genuine, 0.3 fraud): max score 0.9, max label 1.
           top 2 = A (fraud), B (genuine) -> 1/2; A is now known compromised, B is not.
    day 2: A (0.95) is left out; top 2 of C 0.9 fraud, D 0.5, B 0.2 = C, D -> 1/2
           (keeping A would have given 2/2); C is now known compromised.
    day 3: A, C (0.99, 0.98, both frauds) are left out; top 2 = B 0.6 fraud, D 0.5 fraud -> 2/2
           (keeping them: A, C -> 2/2 too, but B and D would not be counted).
    """
    rows = [
        (3, "A", 1, 0.99), (3, "C", 1, 0.98), (3, "B", 1, 0.60), (3, "D", 1, 0.50),
        (3, "E", 0, 0.30),
        (1, "A", 0, 0.90), (1, "A", 1, 0.30), (1, "B", 0, 0.80), (1, "C", 1, 0.70),
        (1, "D", 0, 0.10),
        (2, "A", 1, 0.95), (2, "C", 1, 0.90), (2, "B", 0, 0.20), (2, "D", 0, 0.50),
    ]
    days, cards, y, s = map(np.array, zip(*rows))
    per_day, mean = metrics.card_precision_at_k(days, cards, y, s, k=2)
    assert per_day == [0.5, 0.5, 1.0]
    assert mean == pytest.approx(2 / 3)


def test_card_precision_counts_cards_not_transactions_and_divides_by_k():
    # One card with three fraudulent transactions is one alert; only 2 cards for k = 4.
    days = ["2018-05-01"] * 4
    cards = [7, 7, 7, 8]
    per_day, mean = metrics.card_precision_at_k(days, cards, [1, 1, 1, 0], [0.9, 0.8, 0.7, 0.1],
                                                k=4)
    assert per_day == [0.25] and mean == 0.25


def test_card_precision_orders_days_and_breaks_ties_by_card():
    days = np.array(["2018-05-02", "2018-05-01", "2018-05-01"])
    per_day, _ = metrics.card_precision_at_k(days, [1, 2, 1], [1, 0, 1], [0.5, 0.5, 0.5], k=1)
    # 05-01: cards 1 and 2 tie, card 1 first -> fraud found; 05-02: card 1 is known -> nothing.
    assert per_day == [1.0, 0.0]


def test_card_precision_refuses_k_below_one():
    with pytest.raises(ValueError):
        metrics.card_precision_at_k([1], [1], [1], [0.5], k=0)


# ---------------------------------------------------------------- PSI
# metrics.psi_from_counts is the formula; drift bins in Spark. psi() here bins in numpy, by the
# expected sample's quantiles, as drift.reference_bins does, to test the formula on samples.


def quantile_cuts(expected, bins: int = 10) -> np.ndarray:
    """Inner bin edges: the expected sample's quantiles (duplicates merged, so fewer bins when
    values repeat). Bin i holds cuts[i-1] < x <= cuts[i]."""
    values = np.asarray(expected, dtype=float)
    values = values[~np.isnan(values)]
    if len(values) == 0:
        raise ValueError("the expected sample has no value")
    return np.unique(np.quantile(values, np.arange(1, bins) / bins))


def bin_counts(values, cuts: np.ndarray) -> np.ndarray:
    values = np.asarray(values, dtype=float)
    values = values[~np.isnan(values)]
    return np.bincount(np.searchsorted(cuts, values, side="left"), minlength=len(cuts) + 1)


def psi(expected, actual, bins: int = 10) -> float:
    cuts = quantile_cuts(expected, bins)
    return metrics.psi_from_counts(bin_counts(expected, cuts), bin_counts(actual, cuts))


def test_psi_is_zero_for_one_sample_and_small_for_the_same_distribution():
    rng = np.random.default_rng(3)
    reference = rng.normal(size=20_000)
    assert psi(reference, reference) == 0.0
    assert psi(reference, rng.normal(size=20_000)) < 0.01


def test_psi_flags_a_shift():
    rng = np.random.default_rng(4)
    reference = rng.lognormal(size=20_000)
    assert psi(reference, rng.lognormal(mean=0.5, size=20_000)) > 0.2
    assert psi(reference, reference + 10 * reference.max()) > 5  # all in the last bin


def test_psi_hand_computed_with_empty_bin():
    # Quartile bins of 1..8 are <=2.75, <=4.5, <=6.25, rest: 2 values each (shares 1/4).
    # actual: 4 values in the first bin, 4 in the second, none in the others.
    expected, actual = np.arange(1, 9), [1, 1, 2, 2, 3, 3, 4, 4]
    e = np.array([0.25] * 4)
    a = np.array([0.5, 0.5, metrics.PSI_EPSILON, metrics.PSI_EPSILON])
    assert psi(expected, actual, bins=4) == pytest.approx(np.sum((a - e) * np.log(a / e)))


def test_psi_ignores_missing_values_and_merges_repeated_cuts():
    expected = np.r_[np.zeros(900), np.arange(100), [np.nan] * 5]
    assert len(quantile_cuts(expected, bins=10)) < 9
    assert psi(expected, expected[::-1]) == 0.0
    with pytest.raises(ValueError):
        psi([np.nan], [1.0])
