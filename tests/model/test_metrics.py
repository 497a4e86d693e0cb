"""Metrics against hand-computed cases and plain brute-force references (no scikit-learn here)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from benchmarks import bootstrap as bootstrap_bench
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
    """What paired_bootstrap relies on: a weight-c row is the row drawn c times."""
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


# ---------------------------------------------------------------- paired bootstrap


@pytest.fixture(scope="module")
def window():
    """A week of 10,000 transactions a day, fraud rate ~1%, cards shared across days."""
    rng = np.random.default_rng(7)
    n = 70_000
    y = (rng.random(n) < 0.01).astype(int)
    days = np.repeat(np.arange(7), n // 7)
    cards = rng.integers(0, 5_000, n)
    return rng, days, cards, y


def test_identical_models_differ_by_exactly_zero(window):
    rng, days, _, y = window
    s = rng.random(len(y)) + y * rng.random(len(y))
    result = metrics.paired_bootstrap(metrics.average_precision, days, y, s, s.copy(),
                                      n_resamples=200)
    assert (result.observed, result.mean, result.low, result.high) == (0.0, 0.0, 0.0, 0.0)
    assert result.valid_resamples == 200 and result.groups == 7


def test_perfect_challenger_beats_random_champion(window):
    rng, days, cards, y = window
    perfect, random = y + 0.01 * rng.random(len(y)), rng.random(len(y))
    for groups in (days, cards):
        result = metrics.paired_bootstrap(metrics.average_precision, groups, y, perfect, random,
                                          n_resamples=200)
        assert result.observed > 0.9 and result.low > 0.9 and result.high <= 1.0
    reverse = metrics.paired_bootstrap(metrics.roc_auc, days, y, random, perfect, n_resamples=200)
    assert reverse.high < 0


def test_same_seed_same_interval_other_seed_other_interval(window):
    rng, days, _, y = window
    a, b = rng.random(len(y)) + 0.3 * y, rng.random(len(y)) + 0.25 * y
    first = metrics.paired_bootstrap(metrics.average_precision, days, y, a, b, n_resamples=100)
    again = metrics.paired_bootstrap(metrics.average_precision, days, y, a, b, n_resamples=100,
                                     batch_size=7)
    other = metrics.paired_bootstrap(metrics.average_precision, days, y, a, b, n_resamples=100,
                                     seed=1)
    assert first == again
    assert (first.low, first.high) != (other.low, other.high)
    assert first.observed == other.observed


def weighted_mean(y, s, sample_weight=None):
    """A metric with a closed form: the (weighted) mean score."""
    w = np.ones((1, len(s))) if sample_weight is None else np.atleast_2d(sample_weight)
    values = (w * s).sum(axis=1) / w.sum(axis=1)
    return values if sample_weight is not None and np.ndim(sample_weight) == 2 else values[0]


def test_one_dominant_group_does_not_hide_the_other():
    """Two groups: 1,000 rows where the challenger is ahead by 0.1, 10 rows where it is behind
    by 1. The observed difference (0.089) is dominated by the big group, but a resample is
    {big, big}, {big, small} or {small, small} with probabilities 1/4, 1/2, 1/4, so the 95%
    percentile interval is exactly [-1, 0.1] and the mean is 1/4*0.1 + 1/2*observed - 1/4."""
    groups = np.r_[np.zeros(1000), np.ones(10)]
    champion = np.zeros(1010)
    challenger = np.r_[np.full(1000, 0.1), np.full(10, -1.0)]
    result = metrics.paired_bootstrap(weighted_mean, groups, np.zeros(1010), challenger,
                                      champion, n_resamples=4000)
    observed = (1000 * 0.1 - 10) / 1010
    assert result.observed == pytest.approx(observed)
    assert (result.low, result.high) == (pytest.approx(-1.0), pytest.approx(0.1))
    assert result.mean == pytest.approx(0.25 * 0.1 + 0.5 * observed - 0.25, abs=0.03)


def test_resamples_without_fraud_are_left_out():
    # Group 0 holds the only fraud: resamples that miss it have no AP (probability 1/4).
    groups = np.array([0, 0, 1, 1])
    y = np.array([1, 0, 0, 0])
    result = metrics.paired_bootstrap(metrics.average_precision, groups, y,
                                      [0.9, 0.1, 0.2, 0.3], [0.1, 0.9, 0.2, 0.3],
                                      n_resamples=400)
    assert 200 < result.valid_resamples < 400
    assert result.low > 0


def test_bootstrap_checks_its_inputs():
    with pytest.raises(ValueError):
        metrics.paired_bootstrap(metrics.average_precision, [0, 1], [0, 1], [0.1], [0.2, 0.3])
    with pytest.raises(ValueError):
        metrics.paired_bootstrap(metrics.average_precision, [0, 1], [0, 1], [0.1, 0.2],
                                 [0.2, 0.3], confidence=95)


def test_the_benchmarks_plain_loop_measures_what_the_batched_bootstrap_does(window):
    """`make bench-bootstrap` sets the batched bootstrap's time against a plain loop over the
    same draws; the ratio means something only if both give the same differences."""
    rng, days, _, y = window
    a, b = rng.random(len(y)) + 0.3 * y, rng.random(len(y)) + 0.25 * y
    result = metrics.paired_bootstrap(metrics.average_precision, days, y, a, b, n_resamples=200)
    draws = metrics.group_draws(7, 200)  # the draws paired_bootstrap makes with its seed
    plain = bootstrap_bench.plain_bootstrap(days, y, a, b, draws)
    assert result.mean == pytest.approx(plain.mean(), rel=1e-9)
    assert (result.low, result.high) == pytest.approx(tuple(np.quantile(plain, [0.025, 0.975])),
                                                      rel=1e-9)


# ---------------------------------------------------------------- PSI


def test_psi_is_zero_for_one_sample_and_small_for_the_same_distribution():
    rng = np.random.default_rng(3)
    reference = rng.normal(size=20_000)
    assert metrics.psi(reference, reference) == 0.0
    assert metrics.psi(reference, rng.normal(size=20_000)) < 0.01


def test_psi_flags_a_shift():
    rng = np.random.default_rng(4)
    reference = rng.lognormal(size=20_000)
    assert metrics.psi(reference, rng.lognormal(mean=0.5, size=20_000)) > 0.2
    assert metrics.psi(reference, reference + 10 * reference.max()) > 5  # all in the last bin


def test_psi_hand_computed_with_empty_bin():
    # Quartile bins of 1..8 are <=2.75, <=4.5, <=6.25, rest: 2 values each (shares 1/4).
    # actual: 4 values in the first bin, 4 in the second, none in the others.
    expected, actual = np.arange(1, 9), [1, 1, 2, 2, 3, 3, 4, 4]
    e = np.array([0.25] * 4)
    a = np.array([0.5, 0.5, metrics.PSI_EPSILON, metrics.PSI_EPSILON])
    assert metrics.psi(expected, actual, bins=4) == pytest.approx(np.sum((a - e) * np.log(a / e)))


def test_psi_ignores_missing_values_and_merges_repeated_cuts():
    expected = np.r_[np.zeros(900), np.arange(100), [np.nan] * 5]
    assert len(metrics.quantile_cuts(expected, bins=10)) < 9
    assert metrics.psi(expected, expected[::-1]) == 0.0
    with pytest.raises(ValueError):
        metrics.psi([np.nan], [1.0])
