"""SIGKILL a real clean or features run at several points, re-run it with the same run id, and
compare every dataset and the lake's state with one uninterrupted run (issue 33, item 8).

The killed run is a `python -m` process in a session of its own; at the named point it kills
its whole process group, its Spark JVM included (fraudops.core.faults). The re-run and the
uninterrupted run use the test session. The lake is small, with defects."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys

import pandas as pd
import pytest

from fraudops.core import faults, storage
from fraudops.core.lake import Lake
from fraudops.simulator.generate import generate_lake
from spark_jobs import clean, features, window_sums, windows
from tests.paths import REPO

DAYS = ["2018-04-01", "2018-04-02", "2018-04-03", "2018-04-04", "2018-04-05"]
DATASETS = ("clean", "quarantine", "customer_features", "terminal_features")


def _killed(module: str, lake: Lake, run_id: str, at: str) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO), faults.KILL_AT_ENV: at,
           "FRAUDOPS_SPARK_MASTER": "local[2]", "FRAUDOPS_SHUFFLE_PARTITIONS": "2"}
    result = subprocess.run(
        [sys.executable, "-m", module, "--lake-root", lake.root, "--run-id", run_id],
        env=env, cwd=REPO, capture_output=True, text=True, timeout=300,
        start_new_session=True)
    assert result.returncode == -signal.SIGKILL, (at, result.returncode, result.stderr[-3000:])


def _frame(path: str) -> pd.DataFrame:
    if not os.path.exists(path):
        return pd.DataFrame()
    df = pd.read_parquet(path)
    for column in df.columns:
        if isinstance(df[column].dtype, pd.CategoricalDtype):  # partition columns
            df[column] = df[column].astype(str)
    return df.sort_values(list(df.columns)).reset_index(drop=True)


def snapshot(lake: Lake, step: str, run_id: str) -> dict:
    """Every dataset and every state file the steps write, without processing times (and
    without the lake's own root in the manifest's paths)."""
    state = {
        "manifest": {name: {k: v for k, v in entry.items() if k not in ("processed_at", "path")}
                     for name, entry in (storage.read_json(lake.manifest) or {}).items()},
        "clean_days": unversioned(storage.read_json(lake.clean_days)),
        "pending": storage.read_json(lake.features_pending),
        "summary": storage.read_json(lake.run_summary(step, run_id)),
        "lease": os.path.exists(lake.lease),
    }
    for mart in windows.MARTS:
        days = window_sums.current_sums(lake, mart)
        state[f"{mart.name}_sums_days"] = days
        state.update({f"{mart.name}_sums_{day}": _frame(lake.window_sums(mart.name, day))
                      for day in days})
    state.update({name: _frame(getattr(lake, name)) for name in DATASETS})
    return state


def unversioned(days: dict | None) -> dict | None:
    """clean_days.json without the versions, which name the run that wrote each day."""
    return None if days is None else {
        day: {k: v for k, v in stats.items() if k != "version"} for day, stats in days.items()}


def assert_same(got: dict, want: dict) -> None:
    assert got.keys() == want.keys()
    for key in want:
        if isinstance(want[key], pd.DataFrame):
            pd.testing.assert_frame_equal(got[key], want[key], obj=key)
        else:
            assert got[key] == want[key], key


@pytest.fixture(scope="module")
def raw(tmp_path_factory) -> Lake:
    lake = Lake(str(tmp_path_factory.mktemp("kills") / "generated"))
    generate_lake(lake, DAYS[0], len(DAYS), customers=30, terminals=60, seed=4,
                  defect_rate=0.05)
    return lake


def _lake_with_raw(raw: Lake, root) -> Lake:
    lake = Lake(str(root))
    shutil.copytree(raw.raw, lake.raw)  # the same bytes and times
    return lake


@pytest.fixture(scope="module")
def clean_reference(spark, raw, tmp_path_factory) -> dict:
    lake = _lake_with_raw(raw, tmp_path_factory.mktemp("clean-reference") / "lake")
    clean.run(lake, None, "r1", spark)
    return snapshot(lake, "clean", "r1")


@pytest.mark.parametrize("at", ["clean.before_writes", "clean.between_clean_and_quarantine",
                                "clean.after_clean_days", "clean.after_manifest"])
def test_clean_killed_then_rerun_equals_an_uninterrupted_run(spark, raw, clean_reference,
                                                             tmp_path, at):
    lake = _lake_with_raw(raw, tmp_path / "lake")
    _killed("spark_jobs.clean", lake, "r1", at)
    assert storage.read_json(lake.run_summary("clean", "r1")) is None
    clean.run(lake, None, "r1", spark)
    assert_same(snapshot(lake, "clean", "r1"), clean_reference)


@pytest.fixture(scope="module")
def before_features(spark, raw, tmp_path_factory) -> Lake:
    """Four days cleaned with their marts and window sums; the fifth cleaned (run c2), its
    marts owed: the DAG's daily step comes next."""
    lake = _lake_with_raw(raw, tmp_path_factory.mktemp("before-features") / "lake")
    features.run(spark, lake, clean.run(lake, DAYS[3], "c1", spark)["changed_dates"], "c1")
    assert clean.run(lake, DAYS[4], "c2", spark)["changed_dates"] == [DAYS[4]]
    return lake


def _copy(lake: Lake, root) -> Lake:
    copy = Lake(str(root))
    shutil.copytree(lake.root, copy.root)
    return copy


@pytest.fixture(scope="module")
def features_reference(spark, before_features, tmp_path_factory) -> dict:
    lake = _copy(before_features, tmp_path_factory.mktemp("features-reference") / "lake")
    assert features.main(["--lake-root", lake.root, "--run-id", "c2"])["daily_step"]
    return snapshot(lake, "features", "c2")


@pytest.mark.parametrize("at", ["features.before_writes", "features.after_customer_sums",
                                "features.after_commit", "features.after_marts"])
def test_features_killed_then_rerun_equals_an_uninterrupted_run(spark, before_features,
                                                                features_reference, tmp_path,
                                                                at):
    lake = _copy(before_features, tmp_path / "lake")
    _killed("spark_jobs.features", lake, "c2", at)
    assert storage.read_json(lake.run_summary("features", "c2")) is None
    features.main(["--lake-root", lake.root, "--run-id", "c2"])
    assert_same(snapshot(lake, "features", "c2"), features_reference)
