"""Retries, crashes and overlapping runs of clean and features: each converges to one
uninterrupted run's result (issue 33)."""

from __future__ import annotations

import os

import pytest

from fraudops.core import storage
from fraudops.core.lake import Lake
from spark_jobs import clean
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
