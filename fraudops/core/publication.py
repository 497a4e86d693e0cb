"""Which version of each day of a versioned dataset readers see, and the collection of the rest.

A run writes its days of clean, quarantine or a mart under a version of its own
(spark_jobs.datasets.stage_days) and publishes them with one fenced commit of the dataset's
index (fraudops.core.lake, "versioned datasets"). Every reader resolves the folders it reads
with committed_paths, so files that a failed or fenced run left are never read; collect deletes
them, and the versions a commit replaced: the writer after its commit, for the days it wrote,
and the retention step (spark_jobs.retention) for every day. No PySpark here: DuckDB, the
Airflow side and the retention step resolve the same way.
"""

from __future__ import annotations

from fraudops.core import storage
from fraudops.core.lake import PARTITION_COLUMN, STAGING, Lake


def published(path: str) -> dict[str, str | None] | None:
    """The days the index of the versioned dataset at ``path`` lists, each with the version
    readers see (None: a day written before versions, read from its folder's own files);
    None for a dataset written in place (scores, alerts)."""
    lake = Lake.of_dataset(path)
    index = lake.index_of(path) if lake is not None else None
    if index is None:
        return None
    state_path, key = index
    data = storage.read_json(state_path, default={}) or {}
    if key:
        data = data.get(key, {})
    if state_path == lake.clean_days:
        return {day: stats.get("version") for day, stats in data.items()}
    return dict(data)


def committed_paths(path: str, days: list[str],
                    versions: dict[str, str] | None = None) -> list[str]:
    """What a reader reads for ``days`` of the dataset at ``path``: the one place that resolves
    a day to its committed version (fraudops.core.lake, "versioned datasets").

    A version's folder holds one run's files; a day without a version is read from the files
    directly in its folder, not from the version folders below it (a run's that did not
    commit). Files a failed or fenced run left are therefore never read.
    """
    lake = Lake.of_dataset(path)
    if lake is None:
        return [f"{path}/{PARTITION_COLUMN}={d}" for d in days]
    if versions is None:
        versions = published(path) or {}
    return [lake.day_version(path, d, versions[d]) if versions.get(d)
            else f"{lake.partition(path, d)}/*.parquet" for d in days]


def collect(path: str, days: list[str] | None = None, removed: list[str] = ()) -> list[str]:
    """Delete what no reader of the dataset at ``path`` resolves: the folders of ``removed``
    days (no longer published), and in the folders of ``days`` (every day's where None) each
    version but the committed one, and a versioned day's own files (written before versions).
    Also the staging folder. Call it holding the lake's lease, after the commit. Returns what
    it deleted."""
    lake = Lake.of_dataset(path)
    versions = published(path) or {}
    gone = []
    if storage.exists(f"{path}/{STAGING}"):
        storage.delete_dir(f"{path}/{STAGING}")
        gone.append(f"{path}/{STAGING}")
    for day in removed:
        if day not in versions and storage.exists(lake.partition(path, day)):
            storage.delete_dir(lake.partition(path, day))
            gone.append(lake.partition(path, day))
    if days is None:
        prefix = f"{PARTITION_COLUMN}="
        days = [name[len(prefix):] for name in storage.list_children(path)[0]
                if name.startswith(prefix)]
    for day in days:
        folder = lake.partition(path, day)
        folders, files = storage.list_children(folder)
        keep = versions.get(day)
        for name in folders:
            if name != keep:
                storage.delete_dir(f"{folder}/{name}")
                gone.append(f"{folder}/{name}")
        for name in files if keep else ():
            storage.delete_file(f"{folder}/{name}")
            gone.append(f"{folder}/{name}")
    return gone
