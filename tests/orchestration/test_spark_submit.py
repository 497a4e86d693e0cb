"""What a SparkApplication says, executed: the step's mainApplicationFile and arguments, its
sparkConf and its driver's plain environment, through spark-submit on a small generated lake.

The image puts the repository's packages under /opt/fraudops (images/spark/Dockerfile), so the
application's local:///opt/fraudops/... file is this repository's. clean and features run here
to the end; train, promote, score and report get the same treatment through the local launcher
in tests/orchestration/test_end_to_end.py (the arguments are the same Step.args).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pyspark
import pytest

from fraudops.core import publication, storage
from fraudops.core.lake import Lake, shift
from fraudops.core.steps import STEPS, RunContext, unique_id
from fraudops.orchestration import spark_application as sa
from fraudops.orchestration.settings import load_settings
from fraudops.simulator.generate import generate_lake
from fraudops.simulator.handbook import SimulationParams
from tests.paths import REPO

pytestmark = pytest.mark.slow

SPARK_SUBMIT = Path(pyspark.__file__).parent / "bin" / "spark-submit"
IMAGE_ROOT = "local:///opt/fraudops"
DAYS = 12
RUN_ID = "scheduled__2018-04-12T00:00:00+00:00"


def allocation_conf(spec: dict) -> dict[str, str]:
    """The executor-count settings spark-operator derives from the spec (submission.go:
    dynamicAllocationOption, executor.instances), and the one setting that makes a local master
    apply the dynamic-allocation rules a cluster applies (Spark refuses barrier stages, which
    xgboost.spark trains in, under dynamic allocation)."""
    conf = {}
    if "instances" in spec["executor"]:
        conf["spark.executor.instances"] = str(spec["executor"]["instances"])
    dynamic = spec.get("dynamicAllocation") or {}
    if dynamic.get("enabled"):
        conf.update({"spark.dynamicAllocation.enabled": "true",
                     "spark.dynamicAllocation.testing": "true",
                     "spark.dynamicAllocation.minExecutors": str(dynamic["minExecutors"]),
                     "spark.dynamicAllocation.maxExecutors": str(dynamic["maxExecutors"]),
                     "spark.dynamicAllocation.shuffleTracking.enabled":
                         str(dynamic.get("shuffleTrackingEnabled", False)).lower()})
    return conf


def submit(app: dict, tmp_path: Path, main_file: Path | None = None,
           arguments: list[str] | None = None) -> subprocess.CompletedProcess:
    spec = app["spec"]
    assert spec["mainApplicationFile"].startswith(IMAGE_ROOT)
    main_file = main_file or str(REPO) + spec["mainApplicationFile"][len(IMAGE_ROOT):]
    conf = {**spec.get("sparkConf", {}), **allocation_conf(spec)}
    if conf.get("spark.eventLog.dir", "").startswith("s3a://"):
        # The event log goes to the lake bucket on a cluster; here to a local folder (Spark
        # stops at start when the folder does not exist), with the template's other settings.
        events = tmp_path / "spark-events"
        events.mkdir(exist_ok=True)
        conf["spark.eventLog.dir"] = events.as_uri()
    confs = [arg for key, value in conf.items() for arg in ("--conf", f"{key}={value}")]
    env = {**os.environ, "PYSPARK_PYTHON": sys.executable, "PYSPARK_DRIVER_PYTHON": sys.executable,
           "PYTHONPATH": str(REPO), "FRAUDOPS_HOME": str(tmp_path)}
    env.update({e["name"]: e["value"] for e in spec["driver"].get("env", []) if "value" in e})
    return subprocess.run(
        [str(SPARK_SUBMIT), "--master", "local[2]", "--driver-memory", "1g", *confs,
         str(main_file), *(spec["arguments"] if arguments is None else arguments)],
        env=env, capture_output=True, text=True, timeout=900, check=False)


def test_clean_and_features_run_as_their_sparkapplications_say(tmp_path, monkeypatch):
    lake = Lake(str(tmp_path / "lake"))
    generate_lake(lake, days=DAYS, customers=100, terminals=200, defect_rate=0.01)
    monkeypatch.setenv("FRAUDOPS_BACKEND", "kubernetes")
    monkeypatch.setenv("FRAUDOPS_LAKE_ROOT", lake.root)
    settings = load_settings()
    ds = shift(SimulationParams.start_date.isoformat(), DAYS - 1)
    ctx = RunContext(ds=ds, run_id=RUN_ID, lake_root=settings.lake_root)
    for name in ("clean", "features"):
        result = submit(sa.build_spark_application(STEPS[name], ctx, settings), tmp_path)
        assert result.returncode == 0, f"{name}:\n{result.stderr[-4000:]}"
    summary = storage.read_json(lake.run_summary("clean", unique_id(RUN_ID)))
    assert summary["has_new_rows"] and len(summary["changed_dates"]) == DAYS
    # Each step left its event log, as the Spark History Server reads them (rolling folders).
    assert len(list((tmp_path / "spark-events").glob("eventlog_v2_*"))) == 2
    for mart in (lake.customer_features, lake.terminal_features):
        (published,) = publication.committed_paths(mart, [ds])  # the day's version
        assert storage.list_files(published, ".parquet"), mart


# The production profile's first candidate, made small, fitted as train.fit fits it.
FIT_PRODUCTION_FAMILY = """
from pyspark.sql import SparkSession, functions as F
from fraudops.model import families
from fraudops.model.profile import PRODUCTION
from spark_jobs import train

spark = SparkSession.builder.getOrCreate()
rows = spark.range(2000).select(
    F.col("id").alias("transaction_id"),
    *[(F.rand(i) * 100).alias(name) for i, name in enumerate(families.INPUT_COLUMNS)],
).withColumn(families.LABEL, (F.col(families.INPUT_COLUMNS[0]) > 80).cast("int"))
candidate = families.candidates(PRODUCTION.grid)[0]
small = families.Candidate(candidate.family, {**candidate.params, "n_estimators": 3})
train.fit(small, rows, seed=1)
print("fitted", small.name)
"""


def test_the_training_step_fits_the_production_family_as_its_sparkapplication_says(
        tmp_path, monkeypatch):
    """xgboost.spark trains in a barrier stage, which Spark refuses under dynamic allocation:
    the train step's SparkApplication must run a fixed number of executors."""
    monkeypatch.setenv("FRAUDOPS_BACKEND", "kubernetes")
    monkeypatch.setenv("FRAUDOPS_LAKE_ROOT", str(tmp_path / "lake"))
    settings = load_settings()
    ctx = RunContext(ds="2018-04-12", run_id=RUN_ID, lake_root=settings.lake_root)
    app = sa.build_spark_application(STEPS["train"], ctx, settings)
    script = tmp_path / "fit.py"
    script.write_text(FIT_PRODUCTION_FAMILY)
    result = submit(app, tmp_path, main_file=script, arguments=[])
    assert result.returncode == 0, result.stderr[-4000:]
    assert "fitted xgboost(" in result.stdout
