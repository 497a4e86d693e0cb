"""When a run starts, how long it waits for its day's file, and what it does without it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from fraudops.core import storage
from fraudops.core.lake import Lake
from fraudops.orchestration import timing
from fraudops.orchestration.arrivals import day_file_arrived
from fraudops.orchestration.settings import load_settings
from tests.orchestration.conftest import load_dag

DAY = timedelta(days=1)


def _runs(dag, count: int, catchup: bool = True, last=None) -> list:
    """The timetable's next ``count`` runs, as the scheduler asks for them."""
    from airflow.timetables.base import TimeRestriction

    restriction = TimeRestriction(earliest=dag.start_date, latest=None, catchup=catchup)
    runs = []
    for _ in range(count):
        info = dag.timetable.next_dagrun_info(
            last_automated_data_interval=last, restriction=restriction)
        runs.append(info)
        last = info.data_interval if info else None
    return runs


def _ds_and_start(runs) -> list[tuple[str, str]]:
    return [(r.logical_date.strftime("%Y-%m-%d"), r.run_after.isoformat()) for r in runs]


def test_the_run_for_a_day_starts_after_the_day_has_ended(local_dag):
    """The default settings: each day's run starts once the day is over, with ds = that day."""
    runs = _runs(local_dag, 3)
    assert _ds_and_start(runs) == [
        ("2018-04-01", "2018-04-02T00:00:00+00:00"),
        ("2018-04-02", "2018-04-03T00:00:00+00:00"),
        ("2018-04-03", "2018-04-04T00:00:00+00:00"),
    ]
    for run in runs:
        assert run.run_after >= timing.day_end(run.logical_date.strftime("%Y-%m-%d"))


def test_a_schedule_from_the_environment_keeps_ds_the_day_before_the_run(monkeypatch):
    dag, _ = load_dag(monkeypatch, FRAUDOPS_SCHEDULE="0 3 * * *", FRAUDOPS_START_DATE="2018-05-01")
    assert _ds_and_start(_runs(dag, 2)) == [
        ("2018-05-01", "2018-05-02T03:00:00+00:00"),
        ("2018-05-02", "2018-05-03T03:00:00+00:00"),
    ]


def test_a_resumed_dag_runs_the_latest_ended_day_only(local_dag):
    """catchup=False: after a pause, the next run is the one for the last day that has ended,
    due at once; the days in between get no run of their own."""
    long_ago = _runs(local_dag, 1)[0].data_interval
    before = datetime.now(UTC)
    (run,) = _runs(local_dag, 1, catchup=local_dag.catchup, last=long_ago)
    assert before - DAY < run.run_after <= datetime.now(UTC)
    assert run.logical_date == run.run_after - DAY


def test_manual_runs_only_when_the_schedule_is_none(monkeypatch):
    dag, _ = load_dag(monkeypatch, FRAUDOPS_SCHEDULE="none")
    assert _runs(dag, 1) == [None]


@pytest.mark.parametrize("schedule", ["@once", "@continuous", "61 * * * *"])
def test_a_schedule_that_is_no_series_of_days_is_refused(schedule):
    with pytest.raises(ValueError, match="FRAUDOPS_SCHEDULE"):
        timing.timetable(schedule, "FRAUDOPS_SCHEDULE")


def test_the_deadline_is_hours_after_the_day_has_ended(monkeypatch):
    assert load_settings().arrival_deadline == timedelta(hours=6)
    assert timing.arrival_deadline("2018-04-01", timedelta(hours=6)) == datetime(
        2018, 4, 2, 6, tzinfo=UTC)
    monkeypatch.setenv("FRAUDOPS_ARRIVAL_DEADLINE_HOURS", "1.5")
    assert load_settings().arrival_deadline == timedelta(minutes=90)
    for wrong in ("-1", "24", "six", "nan"):
        monkeypatch.setenv("FRAUDOPS_ARRIVAL_DEADLINE_HOURS", wrong)
        with pytest.raises(ValueError, match="FRAUDOPS_ARRIVAL_DEADLINE_HOURS"):
            load_settings()


def test_the_arrival_decision():
    deadline = datetime(2018, 4, 2, 6, tzinfo=UTC)
    early, late = deadline - timedelta(hours=7), deadline + timedelta(days=3000)
    assert timing.arrival_state(True, early, deadline) == timing.ARRIVED
    assert timing.arrival_state(True, late, deadline) == timing.ARRIVED
    assert timing.arrival_state(False, early, deadline) == timing.WAITING
    assert timing.arrival_state(False, deadline - timedelta(seconds=1), deadline) == timing.WAITING
    assert timing.arrival_state(False, deadline, deadline) == timing.MISSING
    assert timing.arrival_state(False, late, deadline) == timing.MISSING
    with pytest.raises(ValueError, match="timezone"):
        timing.arrival_state(False, datetime(2018, 4, 2, 7), deadline)


def test_a_run_without_a_logical_date_takes_the_last_ended_day():
    assert timing.run_day(datetime(2018, 4, 9, 0, 0, tzinfo=UTC)) == "2018-04-08"
    assert timing.run_day(datetime(2018, 4, 9, 23, 59, tzinfo=UTC)) == "2018-04-08"


def test_the_day_file_is_looked_for_by_its_day(tmp_path):
    lake = Lake(str(tmp_path / "lake"))
    with pytest.raises(storage.FolderNotFound, match="raw"):  # a wrong root is no missing day
        day_file_arrived(lake, "2018-04-02")
    storage.write_bytes(lake.raw_file("2018-04-03"), b"a later day\n")
    storage.write_bytes(f"{lake.raw}/2018-04-02.txt.part", b"not a day file\n")
    assert not day_file_arrived(lake, "2018-04-02")
    storage.write_bytes(lake.raw_file("2018-04-02"), b"")  # there, even empty: clean judges it
    assert day_file_arrived(lake, "2018-04-02")


def _poke(dag, monkeypatch, ds: str, now: datetime):
    """One look of the DAG's sensor for the run of ``ds`` at the time ``now``."""
    function = dag.get_task("wait_for_raw_file").python_callable
    monkeypatch.setitem(function.__globals__, "get_current_context",
                        lambda: {"ds": ds, "run_id": "scheduled__x"})
    monkeypatch.setitem(function.__globals__, "utcnow", lambda: now)
    result = function()
    return result.is_done, result.xcom_value


def test_the_sensor_waits_until_the_file_or_the_deadline(local_dag, monkeypatch):
    lake = Lake(local_dag.get_task("clean").settings.lake_root)
    storage.write_bytes(lake.raw_file("2018-04-01"), b"an earlier day\n")
    deadline = datetime(2018, 4, 3, 6, tzinfo=UTC)  # day 2018-04-02 ends, plus 6 hours
    assert _poke(local_dag, monkeypatch, "2018-04-02", deadline - timedelta(hours=6)) == (
        False, timing.WAITING)
    assert _poke(local_dag, monkeypatch, "2018-04-02", deadline) == (True, timing.MISSING)
    storage.write_bytes(lake.raw_file("2018-04-02"), b"the day\n")
    assert _poke(local_dag, monkeypatch, "2018-04-02", deadline - timedelta(hours=6)) == (
        True, timing.ARRIVED)


def test_the_sensor_gives_its_slot_back_and_outlasts_the_longest_wait(local_dag):
    sensor = local_dag.get_task("wait_for_raw_file")
    assert sensor.mode == "reschedule"
    assert sensor.poke_interval <= 15 * 60
    settings = local_dag.get_task("clean").settings
    assert sensor.timeout > timing.longest_wait(settings.arrival_deadline).total_seconds()
    assert sensor.execution_timeout <= timedelta(minutes=10)
