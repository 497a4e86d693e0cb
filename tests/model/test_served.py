"""Served quality's bookkeeping: only matured days are measured, a restated day again."""

from __future__ import annotations

from fraudops.core import scored
from fraudops.core.columns import LABEL_DELAY_DAYS
from fraudops.core.lake import Lake, shift
from fraudops.model import served
from spark_jobs.datasets import day_range

DAYS = day_range("2018-05-01", "2018-05-20")


def _score(lake, as_of, clean=DAYS, version="1", run="r"):
    plan = scored.plan(lake, as_of, clean, DAYS[0])
    scored.settle(lake, plan, version, f"{run}-{as_of}", {d: 10 for d in plan.score})
    return plan


def _measure(lake, as_of, run="m"):
    due = served.due(lake, as_of)
    values = {d: {"model_version": k["model_version"], served.AP: 0.5} for d, k in due.items()}
    served.record(lake, values, due, as_of, f"{run}-{as_of}")
    return sorted(due)


def test_only_days_whose_labels_matured_are_measured_and_each_once(tmp_path):
    lake = Lake(str(tmp_path / "lake"))
    _score(lake, "2018-05-10")
    assert LABEL_DELAY_DAYS == 7
    assert _measure(lake, "2018-05-10") == day_range("2018-05-01", "2018-05-03")
    _score(lake, "2018-05-12")
    assert _measure(lake, "2018-05-12") == ["2018-05-04", "2018-05-05"]
    assert _measure(lake, "2018-05-12") == []
    # A run with nothing new to score still measures what matured since.
    assert _measure(lake, "2018-05-13") == ["2018-05-06"]
    assert served.matured_until("2018-05-13") == shift("2018-05-13", -LABEL_DELAY_DAYS)


def test_a_restated_day_is_measured_again_and_keeps_what_it_measured_before(tmp_path):
    lake = Lake(str(tmp_path / "lake"))
    _score(lake, "2018-05-12")
    _measure(lake, "2018-05-12")
    scored.owe(lake, {"2018-05-03": "its own data changed"}, "features-fix")
    _score(lake, "2018-05-13", version="2")
    assert _measure(lake, "2018-05-13") == ["2018-05-03", "2018-05-06"]
    entry = served.measurements(lake)["2018-05-03"]
    assert entry["model_version"] == "2" and entry["served"]["features_run"] == "features-fix"
    assert [m["model_version"] for m in entry["remeasured"]] == ["1"]
    assert entry["measured_as_of"] == "2018-05-13"


def test_withdrawn_days_and_days_never_cleaned_are_not_measured(tmp_path):
    lake = Lake(str(tmp_path / "lake"))
    _score(lake, "2018-05-12", clean=[d for d in DAYS if d != "2018-05-02"])
    left = [d for d in DAYS if d not in ("2018-05-02", "2018-05-04")]
    plan = scored.plan(lake, "2018-05-13", left, DAYS[0])
    scored.settle(lake, plan, "1", "r2", {})
    assert "2018-05-04" in plan.withdraw
    assert _measure(lake, "2018-05-13") == ["2018-05-01", "2018-05-03", "2018-05-05",
                                            "2018-05-06"]


def test_means_take_the_days_where_a_metric_is_defined():
    values = {"2018-05-01": {"ap": 0.2}, "2018-05-02": {"ap": None}, "2018-05-03": {"ap": 0.4}}
    assert served.means(values, ("ap",)) == {"ap": 0.30000000000000004}
    assert served.means(values, ("ap",), start="2018-05-02") == {"ap": 0.4}
    assert served.means(values, ("ap",), end="2018-05-01") == {"ap": 0.2}
    assert served.means({}, ("ap",)) == {"ap": None}
