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

from fraudops.core import storage
from fraudops.core.lake import Lake, shift
from fraudops.core.steps import STEPS, RunContext, safe_id
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


def submit(app: dict, tmp_path: Path) -> subprocess.CompletedProcess:
    spec = app["spec"]
    assert spec["mainApplicationFile"].startswith(IMAGE_ROOT)
    main_file = str(REPO) + spec["mainApplicationFile"][len(IMAGE_ROOT):]
    confs = [arg for key, value in spec.get("sparkConf", {}).items()
             for arg in ("--conf", f"{key}={value}")]
    env = {**os.environ, "PYSPARK_PYTHON": sys.executable, "PYSPARK_DRIVER_PYTHON": sys.executable,
           "PYTHONPATH": str(REPO), "FRAUDOPS_HOME": str(tmp_path)}
    env.update({e["name"]: e["value"] for e in spec["driver"].get("env", []) if "value" in e})
    return subprocess.run(
        [str(SPARK_SUBMIT), "--master", "local[2]", "--driver-memory", "1g", *confs, main_file,
         *spec["arguments"]],
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
    summary = storage.read_json(lake.run_summary("clean", safe_id(RUN_ID)))
    assert summary["has_new_rows"] and len(summary["changed_dates"]) == DAYS
    for mart in (lake.customer_features, lake.terminal_features):
        assert storage.list_files(lake.partition(mart, ds), ".parquet"), mart
