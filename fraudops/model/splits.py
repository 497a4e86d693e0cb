"""Time-ordered splits: a training window, a label delay, then the test window; and the
prequential folds that choose hyperparameters inside the training window (as in the handbook).

A run as of day D reads labels up to its matured end D - label delay only (``run_windows``):
the evaluation split's test window ends there, and the model that serves is refitted on the
training window that ends there (docs/model-loop.md, "The time split").

Warm-up: a day whose feature windows reach back before the lake's first day has features that
count only part of their window (a 30-day count over 5 days of data). Such days are neither
trained on nor used as a drift reference: the model would learn, and the drift report would
compare against, a distribution it never sees later.

Nothing here is random: every split is a set of whole days, and each later period starts after
the earlier one ends.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from fraudops.core.lake import shift


@dataclass(frozen=True)
class Period:
    start: str  # first day, included
    end: str  # last day, included

    @property
    def days(self) -> int:
        from datetime import date

        return (date.fromisoformat(self.end) - date.fromisoformat(self.start)).days + 1


@dataclass(frozen=True)
class Split:
    """Train on ``train``; skip ``delay`` (labels not known yet); evaluate on ``test``."""

    train: Period
    delay: Period
    test: Period

    def as_dict(self) -> dict:
        return asdict(self)


def period_ending(end: str, days: int) -> Period:
    return Period(shift(end, -(days - 1)), end)


def split_ending(test_end: str, train_days: int, delay_days: int, test_days: int) -> Split:
    """The split whose test window is the ``test_days`` days ending on ``test_end``."""
    if min(train_days, test_days) < 1 or delay_days < 0:
        raise ValueError("train and test need at least one day, the delay cannot be negative")
    test = period_ending(test_end, test_days)
    delay_end = shift(test.start, -1)
    delay = Period(shift(delay_end, -(delay_days - 1)), delay_end)
    train = period_ending(shift(test.start, -(delay_days + 1)), train_days)
    return Split(train, delay, test)


@dataclass(frozen=True)
class RunWindows:
    """The days a training run as of ``as_of`` reads, all on or before ``matured_end``.

    ``evaluation``: the split that measures the run's configuration, its test window ending on
    the matured end and its training data ending a label delay before the test window, as a
    served model's data end a label delay before the first day it scores. ``serving``: the
    window the model that serves is refitted on, ending on the matured end. ``tuning``: the days
    the prequential folds may use, every day of the evaluation split before its test window, so
    that choosing a configuration never looks at the days that measure it.
    """

    as_of: str
    matured_end: str
    evaluation: Split
    serving: Period
    tuning: Period

    def as_dict(self) -> dict:
        return asdict(self)


def matured_end(as_of: str, label_delay_days: int) -> str:
    """The last day whose labels are known on ``as_of``."""
    if label_delay_days < 0:
        raise ValueError("the label delay cannot be negative")
    return shift(as_of, -label_delay_days)


def run_windows(as_of: str, train_days: int, label_delay_days: int, test_days: int
                ) -> RunWindows:
    end = matured_end(as_of, label_delay_days)
    evaluation = split_ending(end, train_days, label_delay_days, test_days)
    return RunWindows(as_of, end, evaluation, period_ending(end, train_days),
                      Period(evaluation.train.start, shift(evaluation.test.start, -1)))


def prequential_folds(
    window: Period, n_folds: int, fold_train_days: int, delay_days: int, assess_days: int
) -> list[Split]:
    """Folds inside ``window``: the latest assesses its last days, each earlier one is shifted
    back by ``assess_days``; every fold's training days lie inside the window."""
    folds = []
    for k in range(n_folds):
        fold = split_ending(shift(window.end, -k * assess_days), fold_train_days, delay_days,
                            assess_days)
        if fold.train.start < window.start:
            break
        folds.append(fold)
    if not folds:
        raise ValueError(
            f"no prequential fold of {fold_train_days}+{delay_days}+{assess_days} days fits in "
            f"the training window {window.start}..{window.end} ({window.days} days)"
        )
    return folds


def first_full_day(first_day: str, lookback_days: int) -> str:
    """The first day whose feature windows, reaching ``lookback_days`` back, hold only days on
    or after the lake's ``first_day``."""
    return shift(first_day, lookback_days)


def warmed_up(period: Period, first_full: str | None) -> Period | None:
    """The days of ``period`` from ``first_full`` on (all of it when None); None when none is."""
    if first_full is None or period.start >= first_full:
        return period
    if period.end < first_full:
        return None
    return Period(first_full, period.end)
