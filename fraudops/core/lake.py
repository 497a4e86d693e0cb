"""The data-lake layout, defined once.

    <root>/raw/YYYY-MM-DD.txt                     daily raw files as delivered
    <root>/clean/tx_date=YYYY-MM-DD/              clean transactions (Parquet)
    <root>/quarantine/tx_date=.../reason=.../     rejected rows with their reason code
    <root>/features/customer/tx_date=.../         customer mart, one row per transaction
    <root>/features/terminal/tx_date=.../         terminal mart, one row per transaction
    <root>/scores/tx_date=.../                    scored transactions
    <root>/alerts/tx_date=.../                    the day's top-k alert list
    <root>/_state/manifest.json                   processed raw files (path, size, checksum)
    <root>/_state/clean_days.json                 rows and id range of each clean day
    <root>/_state/windows/<mart>/day=YYYY-MM-DD/  each mart's sums over its windows' full days
    <root>/_state/windows/<mart>.json             which of those days are current
    <root>/_state/runs/<step>/<run_id>.json       one summary per step run
    <root>/_state/pending/features.json           changed days whose marts are not rebuilt yet
    <root>/_state/pending/clean.json              days a cleaning run is rewriting, not recorded yet
    <root>/_state/pending/score.json              days whose scores are owed (again), and why
    <root>/_state/scores.json                     each scored day: model version, run, restatements
    <root>/_state/lease.json                      the one writer of the state (fraudops.core.lease)

The root is a local path by default and ``s3a://bucket/prefix`` in the cloud. Only this module
and fraudops.core.storage know the difference.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from fraudops.core import config

RAW_SUFFIX = ".txt"
PARTITION_COLUMN = "tx_date"


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
    def clean_pending(self) -> str:
        """Days a cleaning run began to rewrite and has not recorded yet (see pending)."""
        return self.path("_state", "pending", "clean.json")

    @property
    def lease(self) -> str:
        return self.path("_state", "lease.json")

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


def shift(day: str, days: int) -> str:
    """The ISO day ``days`` after ``day`` (before it when negative)."""
    return (dt.date.fromisoformat(day) + dt.timedelta(days=days)).isoformat()
