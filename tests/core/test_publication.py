"""Versioned datasets: the one resolver readers use, and what the writer collects."""

from __future__ import annotations

import pytest

from fraudops.core import publication, storage
from fraudops.core.lake import Lake, write_version

D1, D2, D3 = "2018-04-01", "2018-04-02", "2018-04-03"


def test_readers_resolve_the_committed_version_or_the_days_own_files(lake):
    storage.write_json(lake.clean_days, {D1: {"rows": 1, "version": "r1-aaaa"}, D2: {"rows": 2}})
    storage.write_json(lake.marts_index, {"terminal": {D1: "f1-bbbb"}})
    assert publication.committed_paths(lake.clean, [D1, D2]) == [
        f"{lake.clean}/tx_date={D1}/r1-aaaa", f"{lake.clean}/tx_date={D2}/*.parquet"]
    assert publication.committed_paths(lake.terminal_features, [D1, D2]) == [
        f"{lake.terminal_features}/tx_date={D1}/f1-bbbb",
        f"{lake.terminal_features}/tx_date={D2}/*.parquet"]
    assert publication.committed_paths(lake.customer_features, [D1]) == [
        f"{lake.customer_features}/tx_date={D1}/*.parquet"]
    # Datasets written in place (scores) are read from their day folders.
    assert publication.committed_paths(lake.scores, [D1]) == [f"{lake.scores}/tx_date={D1}"]
    assert publication.published(lake.scores) is None


def test_a_version_name_is_per_run_and_try_and_no_partition():
    a, b = write_version("r1", "0123456789abcdef"), write_version("r1", "fedcba9876543210")
    assert a != b and a.startswith("r1-")
    assert "=" not in a and not a.startswith(("_", "."))


def test_the_lake_of_a_dataset_path():
    lake = Lake("s3a://bucket/lake")
    for path in (lake.clean, lake.quarantine, lake.customer_features, lake.terminal_features):
        assert Lake.of_dataset(path) == lake
        assert lake.index_of(path) is not None
    assert Lake.of_dataset(lake.scores) is None


def _put(path: str) -> None:
    storage.write_bytes(path, b"x")


def test_move_dir_moves_a_folder_whole(lake):
    _put(f"{lake.clean}/_staging/v/tx_date={D1}/part-0.parquet")
    _put(f"{lake.clean}/_staging/v/tx_date={D1}/part-1.parquet")
    storage.move_dir(f"{lake.clean}/_staging/v/tx_date={D1}", f"{lake.clean}/tx_date={D1}/v")
    assert storage.list_children(f"{lake.clean}/tx_date={D1}/v") == (
        [], ["part-0.parquet", "part-1.parquet"])
    assert not storage.exists(f"{lake.clean}/_staging/v/tx_date={D1}")


def test_move_dir_on_s3_copies_then_deletes(s3_server, monkeypatch):
    from tests import servers

    for name, value in {**servers.S3_KEYS, "FRAUDOPS_S3_ENDPOINT": s3_server,
                        "AWS_REGION": servers.S3_REGION}.items():
        monkeypatch.setenv(name, value)
    storage._s3.cache_clear()
    try:
        lake = Lake(f"s3a://{servers.ARTIFACTS_BUCKET}/publication-test")
        _put(f"{lake.clean}/_staging/v/tx_date={D1}/part-0.parquet")
        _put(f"{lake.clean}/_staging/v/tx_date={D1}/sub/part-1.parquet")
        storage.move_dir(f"{lake.clean}/_staging/v/tx_date={D1}",
                         f"{lake.clean}/tx_date={D1}/v")
        assert storage.list_children(f"{lake.clean}/tx_date={D1}/v") == (
            ["sub"], ["part-0.parquet"])
        assert storage.exists(f"{lake.clean}/tx_date={D1}/v/sub/part-1.parquet")
        assert not storage.exists(f"{lake.clean}/_staging/v/tx_date={D1}/part-0.parquet")
    finally:
        storage._s3.cache_clear()


@pytest.mark.parametrize("days", [[D1, D2, D3], None], ids=["the-days-written", "every-day"])
def test_collect_keeps_what_readers_resolve_and_nothing_else(lake, days):
    storage.write_json(lake.clean_days, {D1: {"rows": 1, "version": "new"}, D2: {"rows": 1}})
    keep = [f"{lake.clean}/tx_date={D1}/new/part-0.parquet",
            f"{lake.clean}/tx_date={D2}/part-0.parquet"]
    drop = [f"{lake.clean}/tx_date={D1}/old/part-0.parquet",
            f"{lake.clean}/tx_date={D1}/part-0.parquet",  # before versions
            f"{lake.clean}/tx_date={D2}/dead/part-0.parquet",
            f"{lake.clean}/_staging/dead/tx_date={D3}/part-0.parquet"]
    removed_day = f"{lake.clean}/tx_date={D3}/part-0.parquet"
    for path in keep + drop + [removed_day]:
        _put(path)
    publication.collect(lake.clean, days, removed=[D3])
    assert all(storage.exists(p) for p in keep)
    assert not any(storage.exists(p) for p in drop + [removed_day])
