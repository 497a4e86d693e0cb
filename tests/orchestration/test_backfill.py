"""What Airflow's own backfill does with the DAG: which runs, in which order, and what keeps
overlapping runs apart (docs/dag.md, "Backfills and overlapping runs").

The runs are computed by the code `airflow backfill create` runs (airflow.models.backfill), on
the DAG as the scheduler sees it (serialized). Running them needs a scheduler and an API server,
which the suite does not start: what a backfill then does to the lake and the registry is what
the steps do on any overlap, tested where they are (the pools in test_dag_structure.py, the
lease in tests/core, the older-champion guard and the score ledger in tests/spark_jobs and
tests/core).
"""

from __future__ import annotations

import datetime as dt

from airflow.models import backfill
from airflow.serialization.serialized_objects import SerializedDAG

from fraudops.core.platform import platform
from tests.orchestration.conftest import load_dag

UTC = dt.UTC
FROM, TO = dt.datetime(2018, 5, 1, tzinfo=UTC), dt.datetime(2018, 5, 4, tzinfo=UTC)


def _scheduled(dag):
    return SerializedDAG.deserialize_dag(SerializedDAG.serialize_dag(dag))


def _runs(dag, reverse: bool) -> list[tuple[str, str]]:
    infos = backfill._get_info_list(from_date=FROM, to_date=TO, reverse=reverse, dag=dag)
    return [(i.logical_date.date().isoformat(), i.run_after.isoformat()) for i in infos]


def test_a_backfill_runs_each_day_after_it_ended_in_date_order_or_reversed(monkeypatch):
    dag = _scheduled(load_dag(monkeypatch, FRAUDOPS_BACKEND="local")[0])
    forward = _runs(dag, reverse=False)
    assert forward == [("2018-05-01", "2018-05-02T00:00:00+00:00"),
                       ("2018-05-02", "2018-05-03T00:00:00+00:00"),
                       ("2018-05-03", "2018-05-04T00:00:00+00:00"),
                       ("2018-05-04", "2018-05-05T00:00:00+00:00")]
    assert _runs(dag, reverse=True) == forward[::-1]
    # No task depends on its past run, so Airflow accepts --run-backwards: the newest day may
    # run first, which is why an older run's challenger never replaces a newer champion.
    backfill._validate_backfill_params(dag, True, FROM, TO, None)
    assert not any(task.depends_on_past for task in dag.tasks)


def test_overlapping_runs_share_one_slot_for_the_lake_and_one_for_the_champion(monkeypatch):
    dag = _scheduled(load_dag(monkeypatch, FRAUDOPS_BACKEND="local")[0])
    pools = {task.task_id: task.pool for task in dag.tasks}
    names = platform()["airflow"]
    assert {t for t, p in pools.items() if p == names["lake_writer_pool"]} == {
        "clean", "features", "retention"}
    assert {t for t, p in pools.items() if p == names["model_pool"]} == {"promote", "score"}
    # The DAG's own max_active_runs holds scheduled runs to one; a backfill has its own limit
    # (default 10), which the pools above make safe.
    assert dag.max_active_runs == 1
    assert backfill.Backfill.max_active_runs.default.arg == 10


def test_without_a_schedule_airflow_refuses_backfills(monkeypatch):
    """The kind run and manual-only installs (FRAUDOPS_SCHEDULE=none): `airflow backfill
    create` stops with "has no schedule" (it checks the DAG's timetable summary); replay days
    with `airflow dags trigger` or `airflow dags test` instead."""
    dag = load_dag(monkeypatch, FRAUDOPS_BACKEND="local", FRAUDOPS_SCHEDULE="none")[0]
    assert dag.timetable.summary == "None"
