"""The backtest's clock without Spark: when files land, when each run goes, which run cleans
which file, and the per-day rows that say who scored each day with which model version."""

from __future__ import annotations

import ast
import datetime as dt
from pathlib import Path

import pytest

from benchmarks import backtest as bt
from fraudops.orchestration import timing

DEADLINE = dt.timedelta(hours=6)
FIRST_RUN, LIVE = 71, 40
EVENTS = bt.Events(late_hours=5, late_days=12, together=20, corrected=26, correction_after=4)
REPO = Path(__file__).resolve().parents[2]


def at(day: str, hours: float) -> dt.datetime:
    return timing.day_end(day) + dt.timedelta(hours=hours)


@pytest.fixture(scope="module")
def timeline():
    deliveries = bt.plan_deliveries(FIRST_RUN, LIVE, DEADLINE, EVENTS, seed=7)
    days = [bt.day_of(i) for i in range(FIRST_RUN, FIRST_RUN + 1 + LIVE)]
    runs = bt.plan_runs(days, bt.rule_fires(days), deliveries, DEADLINE)
    return deliveries, {run.day: run for run in runs}


def live(offset: int) -> str:
    return bt.day_of(FIRST_RUN + 1 + offset)


def picked(run: bt.Run) -> list[tuple[str, str]]:
    return sorted((d.day, d.kind) for d in run.picks_up)


def test_the_first_run_finds_the_history_and_every_file_is_picked_up_once(timeline):
    deliveries, runs = timeline
    first = runs[bt.day_of(FIRST_RUN)]
    assert {d.day for d in first.picks_up} == {bt.day_of(i) for i in range(FIRST_RUN + 1)}
    taken = [id(d) for run in runs.values() for d in run.picks_up]
    assert len(taken) == len(set(taken)) == len(deliveries)


def test_runs_fire_at_the_end_of_their_day_and_wait_until_the_deadline_at_most(timeline):
    _, runs = timeline
    for day, run in runs.items():
        assert run.fired == timing.day_end(day)
        assert run.fired <= run.went <= timing.arrival_deadline(day, DEADLINE)
        assert (run.went - run.fired) % bt.POKE_INTERVAL == dt.timedelta(0)


def test_an_on_time_file_lets_its_run_go_at_the_next_look(timeline):
    deliveries, runs = timeline
    for d in deliveries:
        if d.kind == bt.ON_TIME and d.day in runs:
            run = runs[d.day]
            assert run.own_file == timing.ARRIVED
            assert d.at <= run.went < d.at + bt.POKE_INTERVAL
            assert (d.day, bt.ON_TIME) in picked(run)


def test_a_file_late_by_hours_goes_to_the_next_run_its_run_cleans_a_resend(timeline):
    _, runs = timeline
    late, before, after = live(5), live(4), live(6)
    assert runs[late].own_file == timing.MISSING
    assert runs[late].went == timing.arrival_deadline(late, DEADLINE)
    assert picked(runs[late]) == [(before, bt.RESEND)]  # unchanged: the no_new_rows path
    assert picked(runs[after]) == [(late, bt.LATE), (after, bt.ON_TIME)]


def test_a_file_two_days_late_is_cleaned_by_the_first_run_that_goes_after_it(timeline):
    deliveries, runs = timeline
    late = live(12)
    (landed,) = [d for d in deliveries if d.day == late]
    assert landed.at == at(late, 49)
    assert runs[late].own_file == timing.MISSING and not runs[late].picks_up  # no_new_data
    assert picked(runs[live(13)]) == [(live(13), bt.ON_TIME)]
    takers = [r.day for r in runs.values() if (late, bt.LATE) in picked(r)]
    assert takers == [min(r.day for r in runs.values() if r.day > late and r.went >= landed.at)]


def test_two_days_that_land_together_are_cleaned_by_the_second_days_run(timeline):
    _, runs = timeline
    first, second = live(20), live(21)
    assert runs[first].own_file == timing.MISSING and not runs[first].picks_up
    assert picked(runs[second]) == [(first, bt.TOGETHER), (second, bt.ON_TIME)]


def test_the_correction_lands_after_its_day_was_scored_and_the_next_run_cleans_it(timeline):
    deliveries, runs = timeline
    day = live(26)
    (fix,) = [d for d in deliveries if d.kind == bt.CORRECTION]
    assert fix.day == day and fix.at > runs[day].went
    assert fix.at == at(day, 4 * 24 + 13)
    assert [r.day for r in runs.values() if (day, bt.CORRECTION) in picked(r)] == [live(31)]


def test_the_sensor_reads_the_dags_rule_at_each_look():
    day = "2018-06-20"
    landed = [bt.Delivery(day, at(day, 2.05), bt.ON_TIME)]
    assert bt.sensor_goes(day, timing.day_end(day), landed, DEADLINE) == (at(day, 2 + 1 / 6),
                                                                           timing.ARRIVED)
    assert bt.sensor_goes(day, timing.day_end(day), [], DEADLINE) == (at(day, 6), timing.MISSING)
    # A deadline of 0 h: the run looks once, when it fires.
    assert bt.sensor_goes(day, timing.day_end(day), landed, dt.timedelta(0))[1] == timing.MISSING


def test_events_must_lie_apart_inside_the_timeline():
    with pytest.raises(ValueError, match="inside"):
        bt.plan_deliveries(FIRST_RUN, 20, DEADLINE, EVENTS, seed=7)
    with pytest.raises(ValueError, match="apart"):
        bt.plan_deliveries(FIRST_RUN, LIVE, DEADLINE, bt.Events(5, 6, 20, 26, 4), seed=7)


def test_the_correction_withdraws_rows_and_changes_amounts():
    header = b"# header\n"
    rows = [f"{i},2018-06-20 10:00:00,1,2,{i}.50,0,0,0,0\n" for i in range(40)]
    fixed = bt.corrected_file(header + "".join(rows).encode()).decode().splitlines(keepends=True)
    assert fixed[0] == "# header\n" and len(fixed) == 1 + 38
    assert "1,2018-06-20 10:00:00,1,2,1.65,0,0,0,0\n" in fixed
    assert rows[0] not in fixed and rows[2] in fixed


def test_the_poke_interval_is_the_dags():
    tree = ast.parse((REPO / "dags" / "fraud_retraining.py").read_text())
    (value,) = [node.value for node in ast.walk(tree) if isinstance(node, ast.Assign)
                and any(getattr(t, "id", None) == "ARRIVAL_POKE_INTERVAL" for t in node.targets)]
    assert ast.unparse(value) == "timedelta(minutes=10)"
    assert dt.timedelta(minutes=10) == bt.POKE_INTERVAL


def test_day_rows_keep_who_scored_each_day_with_which_version_and_the_plot_draws(
        timeline, tmp_path):
    deliveries, runs = timeline
    late, fixed = live(5), live(26)
    ledger = {
        bt.day_of(60): {"first_as_of": bt.day_of(FIRST_RUN), "as_of": bt.day_of(FIRST_RUN),
                        "model_version": "1", "rows": 10},
        live(4): {"first_as_of": live(4), "as_of": live(4), "model_version": "2", "rows": 10},
        late: {"first_as_of": live(6), "as_of": live(6), "model_version": "2", "rows": 10},
        fixed: {"first_as_of": fixed, "as_of": live(31), "model_version": "4", "rows": 9,
                "restatements": [{"as_of": live(31), "reason": "its own data changed",
                                  "previous_model_version": "3"}]},
    }
    run_rows = [{"day": day, "path": "trained", "train_path": "refit", "decision": "promoted",
                 "total_s": 30.0} for day in sorted(runs)]
    rows = {r["day"]: r for r in bt.day_rows(deliveries, list(runs.values()), run_rows, ledger,
                                             bt.day_of(37), live(23))}
    assert rows[late]["late"] and not rows[live(4)]["late"]
    assert rows[late]["picked_up_by_run"] == [live(6)] and rows[late]["delivery"] == bt.LATE
    assert rows[live(4)]["redelivered"][0]["kind"] == bt.RESEND
    assert rows[fixed]["restated"] and rows[fixed]["first_model_version"] == "3"
    assert rows[fixed]["model_version"] == "4" and rows[fixed]["world"] == "after_change"
    assert rows[bt.day_of(FIRST_RUN)]["delivery"] == bt.ON_TIME
    assert not rows[bt.day_of(60)]["late"]  # the first run's backlog is not late
    for i, row in enumerate(rows.values()):  # the served figures judge() adds on matured days
        if row["day"] > bt.day_of(FIRST_RUN) and i % 5:
            row.update(loop_ap=0.6, static_ap=0.5 if i % 3 else None, loop_cp100=0.3,
                       static_cp100=0.25)
    bt.plot(list(rows.values()), run_rows, live(23), 6.0, tmp_path / "backtest.png", 100)
    assert (tmp_path / "backtest.png").stat().st_size > 10_000


def test_the_bars_compare_the_loop_with_the_model_never_replaced():
    means = {"loop_ap_after_change": 0.6, "static_ap_after_change": 0.5,
             "loop_cp100_after_change": 0.29, "static_cp100_after_change": 0.30,
             "loop_ap_before_change": 0.68, "static_ap_before_change": 0.70,
             "loop_cp100_before_change": 0.30, "static_cp100_before_change": 0.33}
    assert bt.bars(means, 100) == {"after_ap_gain": True, "after_cp100_not_lower": True,
                                   "before_ap_not_lower": True,
                                   "before_cp100_not_lower": False}
    less = {**means, "loop_ap_after_change": 0.59, "loop_cp100_after_change": 0.28}
    assert not bt.bars(less, 100)["after_ap_gain"]
    assert not bt.bars(less, 100)["after_cp100_not_lower"]
    assert bt.bars({}, 100)["after_ap_gain"] is None
