"""Time in one place: when the run for a day starts, how long it waits for the day's raw file,
and which day a run without a logical date processes. Rationale: docs/dag.md, "When a run
starts".

The run whose logical day (``ds``) is D processes D: ``clean --until D``, ``score --date D``.
D's file can only exist once D is over, so the run for D is due at the end of its data interval
(an Airflow data-interval timetable: ``ds`` is the interval's start, the run starts at its end),
then waits for ``raw/D.txt`` until the end of D plus the arrival deadline, and goes on without
it after that. Everything here is pure: the current time is an argument, read by the caller.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from airflow.timetables.base import Timetable

TIMEZONE = "UTC"  # the lake's days, the schedule and the deadline are all UTC
ONE_DAY = dt.timedelta(days=1)

# What the wait for a day's raw file found.
ARRIVED = "arrived"  # raw/D.txt is in the lake
WAITING = "waiting"  # not yet, and its deadline has not passed: look again later
MISSING = "missing"  # not there by its deadline: the run goes on without it
# Airflow schedules that are no series of data intervals.
_NOT_INTERVALS = ("@once", "@continuous")


def timetable(schedule: str | None, setting: str) -> Timetable:
    """The DAG's timetable for a cron expression or preset (``@daily``, ``0 3 * * *``), in UTC:
    the run for the interval that starts on day D (``ds`` = D) starts when the interval ends.
    None: manual runs only. Airflow 3 would make a plain cron string a CronTriggerTimetable,
    whose run for D starts at the start of D, before D's file can exist. ``setting`` names where
    the schedule came from, for the error."""
    from airflow.exceptions import AirflowTimetableInvalid
    from airflow.timetables.interval import CronDataIntervalTimetable
    from airflow.timetables.simple import NullTimetable

    if schedule is None:
        return NullTimetable()
    if schedule in _NOT_INTERVALS:
        raise ValueError(f"{setting}={schedule!r}: expected a cron expression or preset, or none")
    result = CronDataIntervalTimetable(schedule, TIMEZONE)
    try:
        result.validate()
    except AirflowTimetableInvalid as error:
        raise ValueError(f"{setting}={schedule!r}: {error}") from error
    return result


def day_end(ds: str) -> dt.datetime:
    """When the day ``ds`` (YYYY-MM-DD) ends: the next midnight, UTC."""
    return dt.datetime.combine(dt.date.fromisoformat(ds) + ONE_DAY, dt.time(), dt.UTC)


def arrival_deadline(ds: str, wait: dt.timedelta) -> dt.datetime:
    """Until when the run for ``ds`` waits for raw/<ds>.txt: the end of the day plus ``wait``
    (FRAUDOPS_ARRIVAL_DEADLINE_HOURS). Anchored on the day, not on the run's data interval:
    a manual run's interval is inferred to end at its logical date, a scheduled one's after it."""
    return day_end(ds) + wait


def longest_wait(wait: dt.timedelta) -> dt.timedelta:
    """The longest a run can rightly wait for its file: started as its day begins, until the
    deadline. The sensor's own timeout (a failure) lies beyond it; only a run for a day that has
    not begun yet reaches it."""
    return ONE_DAY + wait


def arrival_state(arrived: bool, now: dt.datetime, deadline: dt.datetime) -> str:
    """ARRIVED when the day's file is there; otherwise WAITING until ``deadline``, MISSING from
    then on. ``now`` must be timezone-aware (the caller reads the clock)."""
    if now.tzinfo is None:
        raise ValueError(f"now must be timezone-aware, got {now!r}")
    if arrived:
        return ARRIVED
    return MISSING if now >= deadline else WAITING


def run_day(run_after: dt.datetime) -> str:
    """The logical day of a run without a logical date (Airflow 3 allows them): the latest day
    that had ended when the run was due, as for a scheduled run."""
    return (run_after.astimezone(dt.UTC) - ONE_DAY).date().isoformat()
