"""Retries, crashes and overlapping runs of clean and features: each converges to one
uninterrupted run's result (issue 33)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pandas as pd
import pytest

from fraudops.core import pending, storage
from fraudops.core.lake import Lake, shift
from fraudops.model.splits import Period
from fraudops.simulator.generate import generate_lake
from spark_jobs import clean, features, marts, promote, score, train, windows
from spark_jobs.datasets import clean_days
from tests.spark_jobs.rawlines import row, write_raw

D1, D2 = "2018-04-01", "2018-04-02"


def _clean_cli(lake: Lake, run_id: str, *extra: str) -> dict:
    """The job as Airflow runs it (its command line); the test's session is reused."""
    return clean.main(["--lake-root", lake.root, "--run-id", run_id, *extra])


def test_a_retry_after_a_successful_clean_returns_its_summary(spark, lake):
    write_raw(lake, D1, [row(1, f"{D1} 10:00:00"), "garbage"])
    first = _clean_cli(lake, "r1")
    assert first["changed_dates"] == [D1] and first["has_new_rows"]

    again = _clean_cli(lake, "r1")  # what an Airflow retry of the task does

    assert again == first
    assert storage.read_json(lake.run_summary("clean", "r1")) == first


def test_a_retry_after_a_crash_before_the_summary_finishes_the_work(spark, lake):
    """Killed after saving the manifest, before writing its summary: the re-run with the same
    id cleans those files again and reports them, instead of finding nothing new."""
    write_raw(lake, D1, [row(1, f"{D1} 10:00:00"), "garbage"])
    first = clean.run(lake, None, "r1", spark)
    manifest = storage.read_json(lake.manifest)
    os.remove(lake.run_summary("clean", "r1"))  # the state such a crash leaves

    again = clean.run(lake, None, "r1", spark)

    assert again["changed_dates"] == [D1] and again["has_new_rows"]
    assert {k: v for k, v in again.items()} == first
    assert _without_times(storage.read_json(lake.manifest)) == _without_times(manifest)


def _without_times(manifest: dict) -> dict:
    return {name: {k: v for k, v in entry.items() if k != "processed_at"}
            for name, entry in manifest.items()}


def test_a_lake_root_without_raw_is_an_error_naming_the_path(tmp_path):
    from fraudops.orchestration.arrivals import new_raw_files

    lake = Lake(str(tmp_path / "no-such-lake"))
    with pytest.raises(storage.FolderNotFound, match=lake.raw):
        new_raw_files(lake, D1)
    with pytest.raises(storage.FolderNotFound, match=lake.raw):
        clean.run(lake, D1, "r1")


def test_an_empty_raw_folder_is_a_day_without_data(tmp_path):
    from fraudops.orchestration.arrivals import new_raw_files

    lake = Lake(str(tmp_path / "lake"))
    os.makedirs(lake.raw)
    assert new_raw_files(lake, D1) == []
    summary = clean.run(lake, D1, "r1")  # no file: no Spark either
    assert summary["files"] == [] and not summary["has_new_rows"]


def _days(first: str, n: int) -> list[str]:
    return [shift(first, i) for i in range(n)]


def _marts(lake: Lake) -> list[pd.DataFrame]:
    return [pd.read_parquet(mart.path(lake)).sort_values("transaction_id")
            .reset_index(drop=True) for mart in windows.MARTS]


def _full_recompute(lake: Lake, into: Lake, spark) -> list[pd.DataFrame]:
    """Both marts of ``lake``'s clean table computed from scratch in a copy of it."""
    shutil.copytree(lake.clean, into.clean)
    storage.write_json(into.clean_days, storage.read_json(lake.clean_days))
    features.run(spark, into, clean_days(into))
    return _marts(into)


def test_a_failed_features_run_leaves_its_days_to_the_next_run(spark, tmp_path, monkeypatch):
    """Day D changes, features fails for good, the next day's run rebuilds D..D+37."""
    lake = Lake(str(tmp_path / "lake"))
    days = _days("2018-04-01", 48)
    generate_lake(lake, days[0], len(days), customers=40, terminals=80, seed=5)
    first = clean.run(lake, days[45], "c1", spark)
    features.run(spark, lake, first["changed_dates"])

    changed_day = days[10]
    path = lake.raw_file(changed_day)
    lines = Path(path).read_text().splitlines(keepends=True)
    with open(path, "w") as handle:  # delivered again, corrected: its last rows dropped
        handle.writelines(lines[:-5])
    second = clean.run(lake, days[45], "c2", spark)
    assert second["changed_dates"] == [changed_day]
    assert pending.features_days(lake) == [changed_day]

    def broken(*args, **kwargs):
        raise RuntimeError("injected: the features job dies while writing")
    with monkeypatch.context() as patch:
        patch.setattr(features, "stage_days", broken)
        with pytest.raises(RuntimeError, match="injected"):
            features.run(spark, lake, second["changed_dates"])
    assert pending.features_days(lake) == [changed_day]  # still owed

    third = clean.run(lake, days[46], "c3", spark)
    assert third["features_pending"] == [changed_day, days[46]]
    features.run(spark, lake, third["changed_dates"])

    assert pending.features_days(lake) == []
    for got, want in zip(_marts(lake), _full_recompute(lake, Lake(str(tmp_path / "full")),
                                                       spark)):
        pd.testing.assert_frame_equal(got, want)


def test_readers_refuse_marts_that_miss_rows_of_a_day(spark, tmp_path):
    lake = Lake(str(tmp_path / "lake"))
    days = _days("2018-04-01", 6)
    generate_lake(lake, days[0], len(days), customers=40, terminals=80, seed=6)
    features.run(spark, lake, clean.run(lake, None, "c1", spark)["changed_dates"])
    rows = storage.read_json(lake.clean_days)
    assert marts.labeled_features(spark, lake, days[0], days[-1]).count() == sum(
        stats["rows"] for stats in rows.values())

    day = days[3]
    folder = f"{windows.TERMINAL.path(lake)}/tx_date={day}"
    for place, _, names in os.walk(folder):
        for name in names:
            if name.endswith(".parquet"):
                os.remove(os.path.join(place, name))  # a lost or never-committed file
    for reader in (promote.labeled_features, score.labeled_features,
                   lambda s, lk, a, b: train.window_data(s, lk, Period(a, b))):
        with pytest.raises(marts.IncompleteFeatures, match=day):
            reader(spark, lake, days[0], days[-1])
    marts.labeled_features(spark, lake, days[4], days[5])  # other days still read

    pending.add_features_days(lake, [days[1]])  # owed by a features run that failed
    with pytest.raises(marts.IncompleteFeatures, match=days[1]):
        marts.labeled_features(spark, lake, days[4], days[5])


def test_two_cleaning_runs_at_once_both_land_in_the_state(spark, lake, monkeypatch):
    """Run B plans day 2; day 1 arrives and run A plans it while B has not written yet. Both
    read the manifest and clean_days.json before either writes them back: without one writer
    at a time the last one to write loses the other's day."""
    import threading

    from fraudops.core import rawfiles

    write_raw(lake, D2, [row(2, f"{D2} 10:00:00")])
    b_planned, a_planned = threading.Event(), threading.Event()
    real_plan = rawfiles.plan

    def plan(*args, **kwargs):
        planned = real_plan(*args, **kwargs)
        if threading.current_thread().name == "B":
            b_planned.set()
            a_planned.wait(5)  # with the lease A cannot plan now: B goes on alone
        else:
            a_planned.set()
        return planned
    monkeypatch.setattr(rawfiles, "plan", plan)

    results = {}
    b = threading.Thread(name="B", target=lambda: results.update(
        B=clean.run(lake, None, "rB", spark)))
    b.start()
    assert b_planned.wait(60)
    write_raw(lake, D1, [row(1, f"{D1} 10:00:00")])
    a = threading.Thread(name="A", target=lambda: results.update(
        A=clean.run(lake, D1, "rA", spark)))
    a.start()
    a.join(300)
    b.join(300)

    assert results["A"]["changed_dates"] == [D1] and results["B"]["changed_dates"] == [D2]
    assert sorted(storage.read_json(lake.manifest)) == [f"{D1}.txt", f"{D2}.txt"]
    assert sorted(storage.read_json(lake.clean_days)) == [D1, D2]


@pytest.mark.parametrize("object_store", [False, True], ids=["local", "s3-style"])
def test_write_days_replaces_exactly_its_days_both_ways(spark, lake, monkeypatch, object_store):
    """On S3 write_days deletes the days it replaces and appends (no dynamic overwrite with the
    S3A committers); the result must be the local way's: days replaced, others untouched."""
    import datetime as dt

    from pyspark.sql import types as T

    from spark_jobs import datasets

    monkeypatch.setattr(storage, "is_object_store", lambda path: object_store)
    days = {1: D1, 2: D2, 3: "2018-04-03"}
    schema = T.StructType([T.StructField("transaction_id", T.LongType()),
                           T.StructField("tx_date", T.DateType())])

    def frame(ids):
        return spark.createDataFrame([(i, dt.date.fromisoformat(days[i])) for i in ids], schema)
    datasets.write_days(frame([1, 2, 3]), lake.clean, [D1, D2, "2018-04-03"],
                        {D1, D2, "2018-04-03"})
    datasets.write_days(frame([2]), lake.clean, [D1, D2], {D2})  # D1 lost its rows
    datasets.write_days(frame([2]), lake.clean, [D2], {D2})  # a re-run
    got = pd.read_parquet(lake.clean)
    assert sorted(got["transaction_id"]) == [2, 3]
