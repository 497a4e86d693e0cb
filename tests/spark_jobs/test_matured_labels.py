"""Decisions on matured labels only: what a run as of D decides (its training path, the model it
measures, the promotion and every metric that decision reads) does not depend on the labels of
its last label-delay days, which nobody knows yet on D."""

from __future__ import annotations

import dataclasses
import glob
import shutil
from pathlib import Path

import mlflow
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from fraudops.core.lake import Lake, shift
from spark_jobs import promote, train
from tests.spark_jobs.lakes import copy_of
from tests.spark_jobs.test_model_loop import AS_OF, CFG, LOOSE, THREE_DAYS

pytestmark = pytest.mark.slow

# CFG's label delay (2 days) and windows; folds of 2 + 2 + 2 days, so that a run the day before
# AS_OF, whose window loses more days to the warm-up, can tune too.
DECISIONS_CFG = dataclasses.replace(CFG, fold_train_days=2)
RUNS = ((shift(AS_OF, -1), "matured-1"), (AS_OF, "matured-2"))
TRAIN_KEYS = ("as_of", "path", "path_reason", "best", "config", "test_metrics",
              "validation_metrics", "split")
PROMOTE_KEYS = ("decision", "reason", "metrics", "interval")


def relabel(lake: Lake, days: list[str]) -> int:
    """Flip every label of ``days`` in the clean table, in place (every file of the day's
    folder, whatever version folders it holds); how many rows changed."""
    changed = 0
    for day in days:
        for path in glob.glob(f"{lake.clean}/tx_date={day}/**/*.parquet", recursive=True):
            table = pq.read_table(path)
            frame = table.to_pandas()
            frame["tx_fraud"] = 1 - frame["tx_fraud"]
            pq.write_table(pa.Table.from_pandas(frame, schema=table.schema,
                                              preserve_index=False), path)
            # Hadoop's checksum of the file as Spark wrote it: it would refuse the new bytes.
            Path(path).with_name(f".{Path(path).name}.crc").unlink(missing_ok=True)
            changed += len(frame)
    return changed


def decisions(spark, lake: Lake, home, store_db) -> list[dict]:
    """Train and promote for the two days of RUNS in a fresh MLflow store: what each decided."""
    shutil.copyfile(store_db, home / "mlflow.db")
    old = mlflow.get_tracking_uri()
    out = []
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{home / 'mlflow.db'}")
        mp.setenv("FRAUDOPS_HOME", str(home))
        for as_of, run_id in RUNS:
            trained = train.run(spark, lake, as_of, run_id, DECISIONS_CFG)
            promoted = promote.run(spark, lake, as_of, run_id, LOOSE, "ci", THREE_DAYS)
            out.append({**{f"train.{k}": trained.get(k) for k in TRAIN_KEYS},
                        **{f"promote.{k}": promoted.get(k) for k in PROMOTE_KEYS}})
    mlflow.set_tracking_uri(old)
    return out


def test_decisions_are_blind_to_labels_younger_than_the_delay(spark, tmp_path, warmed_lake,
                                                              migrated_mlflow_db):
    lake = copy_of(warmed_lake, tmp_path / "as-known")
    young = [shift(AS_OF, -k) for k in range(DECISIONS_CFG.delay_days)]  # AS_OF's last days
    relabeled = copy_of(lake, tmp_path / "relabeled")
    assert relabel(relabeled, young) > 1000

    homes = [tmp_path / "home-known", tmp_path / "home-relabeled"]
    for home in homes:
        home.mkdir()
    known = decisions(spark, lake, homes[0], migrated_mlflow_db)
    other = decisions(spark, relabeled, homes[1], migrated_mlflow_db)
    assert [run["promote.decision"] for run in known][0] == "first_champion"
    assert known[1]["train.path"] == "refit" and known[1]["promote.metrics"]["champion"]
    for as_of_known, as_of_other in zip(known, other):
        differ = {k: (as_of_known[k], as_of_other[k]) for k in as_of_known
                  if as_of_known[k] != as_of_other[k]}
        assert not differ, f"decisions as of {as_of_known['train.as_of']} read labels of " \
                           f"{', '.join(young)}: {differ}"
