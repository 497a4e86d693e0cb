"""The score ledger: every arrived day scored once, owed days restated once, retries settle once."""

from __future__ import annotations

from fraudops.core import scored, storage
from fraudops.core.lake import Lake
from spark_jobs.datasets import day_range

DAYS = day_range("2018-05-01", "2018-05-10")


def _lake(tmp_path) -> Lake:
    return Lake(str(tmp_path / "lake"))


def _score(lake, as_of, clean=DAYS, first="2018-05-03", version="1", run="r"):
    plan = scored.plan(lake, as_of, clean, first)
    scored.settle(lake, plan, version, f"{run}-{as_of}", {d: 10 for d in plan.score})
    return plan


def test_a_run_scores_every_warmed_up_day_up_to_its_day_and_no_later_one(tmp_path):
    lake = _lake(tmp_path)
    plan = _score(lake, "2018-05-06")
    assert plan.score == day_range("2018-05-03", "2018-05-06") and not plan.restated
    # The next run scores only what came since; a day after its logical day waits for its run.
    assert _score(lake, "2018-05-08").score == ["2018-05-07", "2018-05-08"]
    assert _score(lake, "2018-05-08", run="again").score == []
    assert scored.status(lake, DAYS)["days_scored"] == 6


def test_a_late_day_is_scored_by_the_next_run_and_counted_late(tmp_path):
    lake = _lake(tmp_path)
    without = [d for d in DAYS if d != "2018-05-05"]
    _score(lake, "2018-05-06", clean=without)
    assert scored.status(lake, without)["stale_scores"] == 0
    # 05-05 arrives after its run: the run of 05-07 scores it, and it is late.
    assert _score(lake, "2018-05-07").score == ["2018-05-05", "2018-05-07"]
    status = scored.status(lake, DAYS)
    assert status["late_days"] == ["2018-05-05"] and status["stale_scores"] == 0


def test_owed_days_are_restated_once_with_their_reason(tmp_path):
    lake = _lake(tmp_path)
    _score(lake, "2018-05-08")
    reasons = scored.rebuild_reasons(["2018-05-04"], day_range("2018-05-04", "2018-05-10"), [])
    scored.owe(lake, reasons, "features-run-2")
    assert scored.status(lake, DAYS)["stale_scores"] == 5  # 05-04..05-08, the scored ones
    plan = _score(lake, "2018-05-08", version="2", run="b")
    assert plan.score == day_range("2018-05-04", "2018-05-08")
    assert "own data changed" in plan.restated["2018-05-04"]
    assert "reach 2018-05-04" in plan.restated["2018-05-06"]
    entry = scored.ledger(lake)["2018-05-06"]
    assert entry["model_version"] == "2" and entry["features_run"] == "features-run-2"
    assert entry["restatements"][0]["previous_model_version"] == "1"
    # The owed days after the run's day stay owed for their own run, and are new there.
    assert set(scored.owed(lake)) == {"2018-05-09", "2018-05-10"}
    assert _score(lake, "2018-05-10", run="c").restated == {}
    status = scored.status(lake, DAYS)
    assert status["days_restated"] == 5 and status["stale_scores"] == 0


def test_a_withdrawn_day_loses_its_scores_and_a_warm_up_debt_is_dropped(tmp_path):
    lake = _lake(tmp_path)
    _score(lake, "2018-05-06")
    scored.owe(lake, scored.rebuild_reasons(["2018-05-01"], ["2018-05-01"], ["2018-05-04"]), "f")
    left = [d for d in DAYS if d != "2018-05-04"]
    plan = _score(lake, "2018-05-06", clean=left, run="w")
    assert plan.withdraw == ["2018-05-04"] and plan.score == []
    assert scored.owed(lake) == {}  # the warm-up day 05-01 is never scored
    assert scored.ledger(lake)["2018-05-04"]["withdrawn"]
    assert scored.status(lake, left)["days_scored"] == 3


def test_settling_twice_restates_once_and_keeps_a_debt_features_renewed_meanwhile(tmp_path):
    lake = _lake(tmp_path)
    _score(lake, "2018-05-06")
    scored.owe(lake, {"2018-05-05": "corrected"}, "f1")
    plan = scored.plan(lake, "2018-05-06", DAYS, "2018-05-03")
    # features rebuilds 05-06 while the score run works: its debt is not the one consumed.
    scored.owe(lake, {"2018-05-06": "corrected again"}, "f2")
    scored.settle(lake, plan, "2", "run-x", {"2018-05-05": 10})
    assert scored.owed(lake) == {"2018-05-06": {"reason": "corrected again",
                                                "features_run": "f2"}}
    # A retry of the same run after a crash between the ledger and the debts: nothing twice.
    storage.write_json(lake.score_pending, {**scored.owed(lake), **plan.consumed})
    retry = scored.plan(lake, "2018-05-06", DAYS, "2018-05-03")
    assert "2018-05-05" not in retry.score and "2018-05-05" in retry.consumed
    scored.settle(lake, retry, "2", "run-x", {})
    assert len(scored.ledger(lake)["2018-05-05"]["restatements"]) == 1
    assert "2018-05-05" not in scored.owed(lake)


def test_a_retry_of_a_run_that_settled_scores_the_same_days_with_the_same_reasons(tmp_path):
    lake = _lake(tmp_path)
    _score(lake, "2018-05-06", run="r")
    scored.owe(lake, {"2018-05-04": "corrected"}, "f1")
    first = scored.plan(lake, "2018-05-08", DAYS, "2018-05-03", "run-y")
    scored.settle(lake, first, "2", "run-y", {d: 10 for d in first.score})
    ledger_after = scored.ledger(lake)
    # The step crashed after settling (before its summary): the retry redoes the same work.
    retry = scored.plan(lake, "2018-05-08", DAYS, "2018-05-03", "run-y")
    assert (retry.score, retry.restated) == (first.score, first.restated)
    assert retry.score == ["2018-05-04", "2018-05-07", "2018-05-08"]
    scored.settle(lake, retry, "2", "run-y", {d: 10 for d in retry.score})
    assert scored.ledger(lake) == ledger_after
    assert scored.ledger(lake)["2018-05-07"]["first_as_of"] == "2018-05-08"
    # Another run id finds nothing to do.
    assert scored.plan(lake, "2018-05-08", DAYS, "2018-05-03", "run-z").score == []
