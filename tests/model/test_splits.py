"""Time-ordered splits: no later day before an earlier one, the delay kept, folds inside."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fraudops.model.splits import Period, prequential_folds, run_windows, split_ending


def _d(day: str) -> dt.date:
    return dt.date.fromisoformat(day)


def test_default_split_is_21_7_7_ending_on_the_logical_date():
    split = split_ending("2018-05-31", 21, 7, 7)
    assert split.test == Period("2018-05-25", "2018-05-31")
    assert split.delay == Period("2018-05-18", "2018-05-24")
    assert split.train == Period("2018-04-27", "2018-05-17")
    assert (split.train.days, split.delay.days, split.test.days) == (21, 7, 7)


@given(
    end=st.dates(dt.date(2018, 1, 1), dt.date(2030, 1, 1)),
    train=st.integers(1, 60), delay=st.integers(0, 14), test=st.integers(1, 14),
)
def test_periods_are_ordered_contiguous_and_keep_the_delay(end, train, delay, test):
    split = split_ending(end.isoformat(), train, delay, test)
    assert _d(split.train.end) < _d(split.test.start)
    assert (_d(split.test.start) - _d(split.train.end)).days == delay + 1
    assert split.test.end == end.isoformat()
    assert (split.train.days, split.test.days) == (train, test)


def test_a_run_reads_matured_days_only_and_serves_a_refit_through_them():
    windows = run_windows("2018-06-30", 21, 7, 7)
    assert windows.matured_end == "2018-06-23"  # labels of the last 7 days are not known yet
    assert windows.evaluation.test == Period("2018-06-17", "2018-06-23")
    assert windows.evaluation.delay == Period("2018-06-10", "2018-06-16")
    assert windows.evaluation.train == Period("2018-05-20", "2018-06-09")
    assert windows.serving == Period("2018-06-03", "2018-06-23")
    # Tuning sees every day before the test window, none of it.
    assert windows.tuning == Period("2018-05-20", "2018-06-16")


@given(
    as_of=st.dates(dt.date(2018, 1, 1), dt.date(2030, 1, 1)),
    train=st.integers(1, 60), delay=st.integers(0, 14), test=st.integers(1, 14),
)
def test_every_window_ends_by_the_matured_end(as_of, train, delay, test):
    windows = run_windows(as_of.isoformat(), train, delay, test)
    end = _d(windows.matured_end)
    assert (as_of - end).days == delay
    assert windows.evaluation.test.end == windows.serving.end == windows.matured_end
    # The evaluation model is as stale against its test window as the serving model is
    # against the first day it scores (as_of + 1).
    assert (_d(windows.evaluation.test.start) - _d(windows.evaluation.train.end)).days == \
        (as_of + dt.timedelta(days=1) - end).days == delay + 1
    assert _d(windows.tuning.end) < _d(windows.evaluation.test.start)
    assert windows.serving.days == windows.evaluation.train.days == train


@given(n=st.integers(1, 5), fold_train=st.integers(1, 10), assess=st.integers(1, 7))
def test_prequential_folds_stay_inside_the_training_window(n, fold_train, assess):
    window = Period("2018-04-01", "2018-05-20")
    try:
        folds = prequential_folds(window, n, fold_train, 7, assess)
    except ValueError:
        assert fold_train + 7 + assess > window.days
        return
    assert 1 <= len(folds) <= n
    for earlier, later in zip(folds[1:], folds):
        assert _d(earlier.test.end) < _d(later.test.end)  # each fold shifted back in time
    for fold in folds:
        assert window.start <= fold.train.start and fold.test.end <= window.end
        assert (_d(fold.test.start) - _d(fold.train.end)).days == 8


def test_a_window_too_short_for_any_fold_is_a_clear_error():
    with pytest.raises(ValueError, match="no prequential fold"):
        prequential_folds(Period("2018-04-01", "2018-04-10"), 2, 7, 7, 3)


def test_warm_up_days_are_cut_off_the_start_of_a_period():
    from fraudops.model.splits import first_full_day, warmed_up

    first_full = first_full_day("2018-04-01", 37)
    assert first_full == "2018-05-08"
    assert warmed_up(Period("2018-04-04", "2018-04-24"), first_full) is None
    assert warmed_up(Period("2018-05-01", "2018-05-21"), first_full) == Period("2018-05-08",
                                                                              "2018-05-21")
    assert warmed_up(Period("2018-05-08", "2018-05-21"), first_full) == Period("2018-05-08",
                                                                              "2018-05-21")
    assert warmed_up(Period("2018-04-04", "2018-04-24"), None) == Period("2018-04-04",
                                                                         "2018-04-24")
