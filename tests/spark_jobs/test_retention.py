"""The retention step: what it deletes and what it keeps (docs/data.md, "Retention")."""

from __future__ import annotations

import os
import time

import pytest

from fraudops.core import storage
from fraudops.core.lake import Lake
from spark_jobs import retention

NOW = time.time()
OLD = NOW - 500 * retention.DAY_SECONDS
D1, D2 = "2018-04-01", "2018-04-02"


def _file(path: str, data: bytes = b"x", mtime: float | None = None) -> str:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as handle:
        handle.write(data)
    if mtime is not None:
        os.utime(path, (mtime, mtime))
    return path


def _summary(lake: Lake, step: str, run_id: str, mtime: float) -> str:
    path = lake.run_summary(step, run_id)
    storage.write_json(path, {"run_id": run_id})
    os.utime(path, (mtime, mtime))
    return path


def test_old_summaries_go_unless_the_state_names_their_run(lake):
    storage.write_json(lake.manifest, {f"{D1}.txt": {"day": D1, "run_id": "cleaned-it"}})
    storage.write_json(lake.score_ledger, {D1: {"model_version": "3", "run_id": "scored-it",
                                                "features_run": "built-it", "restatements": []}})
    kept = [_summary(lake, "clean", "cleaned-it", OLD), _summary(lake, "score", "scored-it", OLD),
            _summary(lake, "features", "built-it", OLD), _summary(lake, "clean", "recent", NOW)]
    gone = [_summary(lake, "clean", "old", OLD), _summary(lake, "train", "old", OLD)]

    summary = retention.run(lake, "ret-1", now=NOW)

    assert sorted(summary["deleted"]["summaries"]) == sorted(gone)
    assert all(os.path.exists(p) for p in kept) and not any(os.path.exists(p) for p in gone)
    assert storage.read_json(lake.run_summary("retention", "ret-1"))["counts"]["summaries"] == 2


def test_unpublished_files_go_and_every_published_day_stays(lake):
    """A replaced version, a dead run's version and its staging folder go; the committed
    version of a versioned day stays, and so do a day's own files where it has no version
    (written before versions), but not the versions below them that nobody committed."""
    storage.write_json(lake.clean_days, {D1: {"rows": 1, "version": "r2-bbbb"},
                                         D2: {"rows": 1}})
    committed = _file(f"{lake.clean}/tx_date={D1}/r2-bbbb/part-0.parquet")
    own = _file(f"{lake.clean}/tx_date={D2}/part-0.parquet")
    replaced = _file(f"{lake.clean}/tx_date={D1}/r1-aaaa/part-0.parquet")
    dead = _file(f"{lake.clean}/tx_date={D2}/r3-cccc/part-0.parquet")
    staging = _file(f"{lake.clean}/_staging/r3-cccc/tx_date={D2}/part-0.parquet")
    legacy_after_version = _file(f"{lake.clean}/tx_date={D1}/part-old.parquet")
    mart = _file(f"{lake.customer_features}/tx_date={D1}/r4-dddd/part-0.parquet")
    storage.write_json(lake.marts_index, {"customer": {D1: "r4-dddd"}})
    mart_dead = _file(f"{lake.customer_features}/tx_date={D1}/r5-eeee/part-0.parquet")

    retention.run(lake, "ret-1", now=NOW)

    for path in (committed, own, mart):
        assert os.path.exists(path), path
    for path in (replaced, dead, staging, legacy_after_version, mart_dead):
        assert not os.path.exists(path), path


def test_model_versions_and_runs_no_one_refers_to_go(lake, mlflow_sqlite):
    """With no newest version kept by number: 1 (@champion), 2 (@previous) and 3 (it scored a
    day whose scores are kept) stay; 4 to 6 go, and so do their old runs and drift references.
    7 scored a day whose scores expired: it goes too. A recent run stays."""
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=mlflow_sqlite, registry_uri=mlflow_sqlite)
    experiment = client.create_experiment("retention")
    name = "fraud"
    client.create_registered_model(name)
    runs = {}
    for version in range(1, 8):
        run = client.create_run(experiment, start_time=int(OLD * 1000))
        client.set_terminated(run.info.run_id, end_time=int(OLD * 1000))
        runs[str(version)] = run.info.run_id
        client.create_model_version(name, f"runs:/{run.info.run_id}/model", run.info.run_id)
        _file(f"{retention.drift_references(lake)}/v{version}.json", b"{}")
    recent = client.create_run(experiment).info.run_id
    client.set_registered_model_alias(name, "champion", "1")
    client.set_registered_model_alias(name, "previous", "2")
    storage.write_json(lake.score_ledger, {
        D1: {"model_version": "3", "run_id": "s1", "restatements": []},
        D2: {"model_version": "7", "run_id": "s2", "restatements": []}})
    _file(f"{lake.scores}/tx_date={D1}/part-0.parquet")  # D2's scores expired

    summary = retention.run(lake, "ret-1", retention.Policy(keep_versions=0), client=client,
                            model_name=name, now=NOW)

    assert summary["deleted"]["model_versions"] == ["4", "5", "6", "7"]
    left = sorted(v.version for v in client.search_model_versions(f"name='{name}'"))
    assert [str(v) for v in left] == ["1", "2", "3"]
    deleted_runs = set(summary["deleted"]["mlflow_runs"])
    assert deleted_runs == {runs[v] for v in ("4", "5", "6", "7")}
    assert client.get_run(runs["4"]).info.lifecycle_stage == "deleted"
    assert client.get_run(recent).info.lifecycle_stage == "active"
    assert sorted(os.listdir(retention.drift_references(lake))) == ["v1.json", "v2.json",
                                                                    "v3.json"]


def test_the_newest_versions_stay_whatever_refers_to_them(lake, mlflow_sqlite):
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=mlflow_sqlite, registry_uri=mlflow_sqlite)
    experiment = client.create_experiment("retention")
    client.create_registered_model("fraud")
    for _ in range(3):
        run = client.create_run(experiment).info.run_id
        client.create_model_version("fraud", f"runs:/{run}/model", run)
    summary = retention.run(lake, "ret-1", retention.Policy(keep_versions=2), client=client,
                            model_name="fraud", now=NOW)
    assert summary["deleted"]["model_versions"] == ["1"]
    assert summary["deleted"]["mlflow_runs"] == []  # recent runs stay


@pytest.mark.parametrize("argv", [["--lake-only"]])
def test_the_command_line_runs_the_lake_part(lake, argv):
    storage.write_json(lake.clean_days, {})
    summary = retention.main(["--lake-root", lake.root, "--run-id", "ret-cli", *argv])
    assert summary["counts"] == {"summaries": 0, "unpublished": 0}
