"""Drift that means something: the score step's PSI against the champion's training window, its
warm-up days left out, stays quiet on a steady lake and fires when the world changes."""

from __future__ import annotations

import pytest

from fraudops.core import storage
from fraudops.core.lake import Lake, shift
from fraudops.model import drift
from fraudops.model.splits import Period
from fraudops.simulator.generate import generate_lake
from fraudops.simulator.handbook import WorldChange
from spark_jobs import clean, features, score
from spark_jobs.datasets import clean_days
from spark_jobs.marts import labeled_features

pytestmark = pytest.mark.slow

FIRST = "2018-04-01"
DAYS = 66
CHANGE_DAY = 58  # index: the day after the reference window below
TODAY = shift(FIRST, DAYS - 1)
# A champion trained as of TODAY - 1 would serve a refit on these 21 days (train.run: the
# window ends the label delay before its run).
CALENDAR_WINDOW = (shift(FIRST, 37), shift(FIRST, 57))


def built_lake(spark, root, change) -> Lake:
    lake = Lake(str(root / "lake"))
    generate_lake(lake, FIRST, DAYS, customers=800, terminals=1600, seed=5, change=change)
    clean.run(lake, None, "setup", spark)
    features.run(spark, lake, clean_days(lake))
    return lake


@pytest.fixture(scope="module")
def steady(spark, tmp_path_factory) -> Lake:
    return built_lake(spark, tmp_path_factory.mktemp("steady"), None)


@pytest.fixture(scope="module")
def changed(spark, tmp_path_factory) -> Lake:
    return built_lake(spark, tmp_path_factory.mktemp("changed"), WorldChange(CHANGE_DAY))


def psi_today(spark, lake: Lake, window: tuple[str, str]) -> dict[str, float]:
    reference = score.drift_reference(lake, window)
    return score.feature_drift(spark, lake, reference, labeled_features(spark, lake, TODAY, TODAY))


def test_warm_up_days_are_left_out_of_the_reference(steady):
    assert score.drift_reference(steady, CALENDAR_WINDOW) == Period(*CALENDAR_WINDOW)
    # The first champion of the old demo: trained on days 3 to 23, all of them warm-up.
    assert score.drift_reference(steady, (shift(FIRST, 3), shift(FIRST, 23))) is None
    assert score.drift_reference(steady, (shift(FIRST, 30), shift(FIRST, 50))) == Period(
        shift(FIRST, 37), shift(FIRST, 50))


def test_a_steady_world_raises_no_alert(spark, steady):
    psi = psi_today(spark, steady, CALENDAR_WINDOW)
    assert max(psi.values()) < drift.PSI_ALERT, psi


def test_a_warm_up_reference_would_alert_on_the_same_steady_day(spark, steady):
    """What the drift plot showed before: 30-day counts "drifting" on a steady lake, because
    the reference held windows that reached before any data."""
    rows = labeled_features(spark, steady, shift(FIRST, 3), shift(FIRST, 23))
    today = labeled_features(spark, steady, TODAY, TODAY)
    reference = drift.reference_bins(rows.select(*score.DRIFT_FEATURES), score.DRIFT_FEATURES)
    psi = drift.psi_against(reference, today.select(*score.DRIFT_FEATURES))
    assert psi["customer_id_nb_tx_30day_window"] > drift.PSI_ALERT


def test_a_change_of_the_world_raises_the_alert(spark, changed):
    psi = psi_today(spark, changed, CALENDAR_WINDOW)
    assert max(psi.values()) > drift.PSI_ALERT, psi
    assert psi["customer_id_nb_tx_7day_window"] > drift.PSI_ALERT


def test_the_reference_is_kept_per_champion_and_read_back(spark, steady):
    reference = score.drift_reference(steady, CALENDAR_WINDOW)
    today = labeled_features(spark, steady, TODAY, TODAY)
    first = score.feature_drift(spark, steady, reference, today, "7")
    assert score.feature_drift(spark, steady, reference, today) == first  # computed afresh
    path = steady.path("_state", "drift_reference", "v7.json")
    stored = storage.read_json(path)
    stored["bins"]["counts"] = {f: [1.0] * len(c) for f, c in stored["bins"]["counts"].items()}
    storage.write_json(path, stored)
    assert score.feature_drift(spark, steady, reference, today, "7") != first  # read back
    other = score.drift_reference(steady, (shift(FIRST, 40), shift(FIRST, 60)))
    assert score.feature_drift(spark, steady, other, today, "7") != score.feature_drift(
        spark, steady, reference, today, "7")  # another window is binned again
