"""The data-lake layout, defined once.

    <root>/raw/YYYY-MM-DD.txt                     daily raw files as delivered
    <root>/clean/tx_date=YYYY-MM-DD/<version>/    clean transactions (Parquet)
    <root>/quarantine/tx_date=.../<version>/      rejected rows with their reason code
    <root>/features/customer/tx_date=.../<version>/   customer mart, one row per transaction
    <root>/features/terminal/tx_date=.../<version>/   terminal mart, one row per transaction
    <root>/<dataset>/_staging/<version>/tx_date=.../  a run's days while it writes them
    <root>/scores/tx_date=.../                    scored transactions
    <root>/alerts/tx_date=.../                    the day's top-k alert list
    <root>/_state/manifest.json                   processed raw files (path, size, checksum)
    <root>/_state/clean_days.json                 rows, id range and version of each clean day
    <root>/_state/quarantine_days.json            the version of each quarantine day
    <root>/_state/marts.json                      the version of each day of each mart
    <root>/_state/windows/<mart>/day=YYYY-MM-DD/  each mart's sums over its windows' full days
    <root>/_state/windows/<mart>.json             which of those days are current
    <root>/_state/runs/<step>/<run_id>.json       one summary per step run
    <root>/_state/pending/features.json           changed days whose marts are not rebuilt yet
    <root>/_state/pending/clean.json              days a cleaning run is rewriting, not recorded yet
    <root>/_state/pending/score.json              days whose scores are owed (again), and why
    <root>/_state/scores.json                     each scored day: model version, run, restatements
    <root>/_state/served_quality.json             each matured scored day: what served, how well
    <root>/_state/lease.json                      the one writer of the state (fraudops.core.lease)

The versioned datasets (VERSIONED) are published by a state commit: a run writes its days
under a version of its own (a folder inside each day's, named by write_version, that no reader
resolves), then one fenced write of the dataset's index (clean_days.json, marts.json,
quarantine_days.json) points readers at them. A day that the index lists without a version is
read from its folder's own files (a lake written before versions). Readers resolve the folders
with spark_jobs.datasets.committed_paths; docs/data.md, "Atomic publication".

The root is a local path by default and ``s3a://bucket/prefix`` in the cloud. Only this module
and fraudops.core.storage know the difference.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from fraudops.core import config

RAW_SUFFIX = ".txt"
PARTITION_COLUMN = "tx_date"
STAGING = "_staging"  # hidden from Spark's and pyarrow's listings (a leading underscore)
# Datasets published by version, and the state file that names each day's version.
VERSIONED = ("clean", "quarantine", "features/customer", "features/terminal")


@dataclass(frozen=True)
class Lake:
    root: str

    @classmethod
    def from_env(cls, root: str | None = None) -> Lake:
        return cls((root or config.default_lake_root()).rstrip("/"))

    def path(self, *parts: str) -> str:
        return "/".join([self.root, *parts])

    @property
    def raw(self) -> str:
        return self.path("raw")

    @property
    def clean(self) -> str:
        return self.path("clean")

    @property
    def quarantine(self) -> str:
        return self.path("quarantine")

    @property
    def customer_features(self) -> str:
        return self.path("features", "customer")

    @property
    def terminal_features(self) -> str:
        return self.path("features", "terminal")

    @property
    def scores(self) -> str:
        return self.path("scores")

    @property
    def alerts(self) -> str:
        return self.path("alerts")

    @property
    def state(self) -> str:
        return self.path("_state")

    @property
    def manifest(self) -> str:
        return self.path("_state", "manifest.json")

    @property
    def clean_days(self) -> str:
        """Rows and transaction-id range of each clean day (to find duplicates cheaply)."""
        return self.path("_state", "clean_days.json")

    def window_sums(self, mart: str, day: str) -> str:
        """Per-key sums of a mart's full window days up to ``day`` (the daily step's state)."""
        return self.path("_state", "windows", mart, f"day={day}")

    def window_sums_index(self, mart: str) -> str:
        return self.path("_state", "windows", f"{mart}.json")

    @property
    def features_pending(self) -> str:
        """Days clean changed whose marts (and window sums) features has not rebuilt yet."""
        return self.path("_state", "pending", "features.json")

    @property
    def score_pending(self) -> str:
        """Days whose marts changed after they were scored, or were never scored (scored)."""
        return self.path("_state", "pending", "score.json")

    @property
    def score_ledger(self) -> str:
        """Each scored day: the model version, the run and the marts it came from."""
        return self.path("_state", "scores.json")

    @property
    def served_quality(self) -> str:
        """Each scored day whose labels matured: its version's AP and card precision (served)."""
        return self.path("_state", "served_quality.json")

    @property
    def clean_pending(self) -> str:
        """Days a cleaning run began to rewrite and has not recorded yet (see pending)."""
        return self.path("_state", "pending", "clean.json")

    @property
    def lease(self) -> str:
        return self.path("_state", "lease.json")

    @property
    def quarantine_days(self) -> str:
        """The version of each quarantine day (clean_days.json holds the clean days')."""
        return self.path("_state", "quarantine_days.json")

    @property
    def marts_index(self) -> str:
        """The version of each day of each feature mart."""
        return self.path("_state", "marts.json")

    def index_of(self, dataset_path: str) -> tuple[str, str] | None:
        """(state file, key in it) naming the versions of a versioned dataset's days; None for
        a dataset written in place (scores, alerts)."""
        if dataset_path == self.clean:
            return self.clean_days, ""
        if dataset_path == self.quarantine:
            return self.quarantine_days, ""
        for mart in ("customer", "terminal"):
            if dataset_path == self.path("features", mart):
                return self.marts_index, mart
        return None

    @classmethod
    def of_dataset(cls, dataset_path: str) -> Lake | None:
        """The lake a versioned dataset's path belongs to (None for any other path)."""
        for name in VERSIONED:
            if dataset_path.rstrip("/").endswith("/" + name):
                return cls(dataset_path.rstrip("/")[:-len(name) - 1])
        return None

    def staging(self, dataset_path: str, version: str) -> str:
        return f"{dataset_path}/{STAGING}/{version}"

    def day_version(self, dataset_path: str, day: str, version: str | None) -> str:
        """A day's folder as published: its version's folder, or the day's own (no version)."""
        folder = self.partition(dataset_path, day)
        return f"{folder}/{version}" if version else folder

    def run_summary(self, step: str, run_id: str) -> str:
        return self.path("_state", "runs", step, f"{run_id}.json")

    @property
    def raw_glob(self) -> str:
        """Every raw file, as a pattern (for readers such as DuckDB that take one)."""
        return self.path("raw", f"*{RAW_SUFFIX}")

    def raw_file(self, day: str) -> str:
        return self.path("raw", f"{day}{RAW_SUFFIX}")

    def partition(self, dataset: str, day: str) -> str:
        return f"{dataset}/{PARTITION_COLUMN}={day}"


def write_version(run_id: str, token: str) -> str:
    """The folder name of one run's writes: the run id and the start of its lease's token (a
    retry of the same run id writes elsewhere). No '=' and no leading '_' or '.', so that
    Spark and pyarrow read it as part of its day's folder."""
    return f"{run_id}-{token[:8]}"


def shift(day: str, days: int) -> str:
    """The ISO day ``days`` after ``day`` (before it when negative)."""
    return (dt.date.fromisoformat(day) + dt.timedelta(days=days)).isoformat()
