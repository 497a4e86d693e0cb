"""get_spark under spark-submit, as the spark-operator's driver pod runs every step."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pyspark
import pytest

from spark_jobs import session as spark_session
from tests.paths import REPO

SPARK_SUBMIT = Path(pyspark.__file__).parent / "bin" / "spark-submit"

PROBE = f"""
import sys
sys.path.insert(0, {str(REPO)!r})
from spark_jobs.session import _LOCAL_SQL_SETTINGS, get_spark
session = get_spark("probe")
print("master", session.sparkContext.master)
for key in _LOCAL_SQL_SETTINGS:
    print(key, session.conf.get(key))
"""


def test_spark_submit_keeps_its_master_and_a_local_one_gets_the_local_settings(tmp_path):
    """The master spark-submit was given wins over the local default (in a driver pod it is
    the cluster's), and a local one still gets the local-only settings."""
    probe = tmp_path / "probe.py"
    probe.write_text(PROBE)
    env = {**os.environ, "PYSPARK_PYTHON": sys.executable, "FRAUDOPS_SPARK_MASTER": "local[2]"}
    env.pop("PYSPARK_SUBMIT_ARGS", None)
    result = subprocess.run([str(SPARK_SUBMIT), "--master", "local[1]", str(probe)], env=env,
                            cwd=tmp_path, capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stderr
    printed = dict(line.split(" ", 1) for line in result.stdout.splitlines() if " " in line)
    assert printed["master"] == "local[1]"
    for key, value in spark_session._LOCAL_SQL_SETTINGS.items():
        assert printed[key] == value


def test_who_chose_the_master(monkeypatch):
    for name in ("PYSPARK_GATEWAY_PORT", "PYSPARK_SUBMIT_ARGS", "SPARK_MASTER"):
        monkeypatch.delenv(name, raising=False)
    assert not spark_session.launcher_sets_master()  # a plain `python -m`: get_spark picks
    monkeypatch.setenv("PYSPARK_SUBMIT_ARGS", "--master local[3] pyspark-shell")
    assert spark_session.launcher_sets_master()
    monkeypatch.setenv("PYSPARK_SUBMIT_ARGS", "--conf spark.master=local[3] pyspark-shell")
    assert spark_session.launcher_sets_master()
    monkeypatch.delenv("PYSPARK_SUBMIT_ARGS")
    monkeypatch.setenv("PYSPARK_GATEWAY_PORT", "40000")  # started by spark-submit
    assert spark_session.launcher_sets_master()


def test_only_an_s3a_lake_gets_the_s3a_committers():
    on_s3 = spark_session.session_settings("s3a://fraudops-lake/lake")
    assert on_s3["spark.sql.sources.commitProtocolClass"] == (
        "org.apache.spark.internal.io.cloud.PathOutputCommitProtocol")
    assert on_s3["spark.hadoop.fs.s3a.committer.name"] == "magic"
    local = spark_session.session_settings("/data/lake")
    assert "spark.sql.sources.commitProtocolClass" not in local
    assert local["spark.sql.sources.partitionOverwriteMode"] == "dynamic"


def test_a_background_import_is_the_one_the_job_gets(tmp_path, monkeypatch):
    """The thread runs the module, once: the job's own import, made while the thread's is under
    way, waits for it and reuses it. A module that fails to import raises in the job's import."""
    (tmp_path / "preload_probe.py").write_text(  # slow enough for both imports to overlap
        "import threading, time\ntime.sleep(0.3)\nRUNS = [threading.current_thread().name]\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "preload_probe", raising=False)
    spark_session.import_in_background(("preload_probe", "preload_probe_missing"))
    import preload_probe

    assert preload_probe.RUNS == ["import preload_probe"]
    assert sys.modules["preload_probe"] is preload_probe
    import importlib

    with pytest.raises(ModuleNotFoundError):
        importlib.import_module("preload_probe_missing")


def test_the_model_steps_preload_the_production_familys_library():
    from importlib.util import find_spec

    from fraudops.model import families
    from fraudops.model.profile import PRODUCTION

    preload = families.PRODUCTION_LIBRARIES
    assert preload == families.libraries(PRODUCTION.grid) == ("xgboost.spark",)
    assert all(find_spec(module) for module in preload)
    assert families.libraries({"random_forest": {"maxDepth": [6]}}) == ()


JVM_PROBE = f"""
import sys
sys.path.insert(0, {str(REPO)!r})
from spark_jobs.session import get_spark
jvm = get_spark("probe").sparkContext._jvm
print("jvm-args", " ".join(jvm.java.lang.management.ManagementFactory.getRuntimeMXBean()
                           .getInputArguments()))
"""


def test_a_step_the_local_launcher_starts_runs_its_jvm_with_the_local_options(tmp_path):
    """StepProcess -> environment -> get_spark -> the JVM's own command line: a local step's JVM
    gets the shared options and the local ones; a shell's setting replaces the default."""
    from fraudops.core import config
    from fraudops.orchestration.local import StepProcess

    lines: list[str] = []
    env = {k: v for k, v in os.environ.items() if k != config.LOCAL_JVM_OPTIONS_ENV}
    StepProcess([sys.executable, "-c", JVM_PROBE], env).run(lines.append)
    args = next(line for line in lines if line.startswith("jvm-args")).split()
    assert config.LOCAL_JVM_OPTIONS in args and config.SPARK_JVM_OPTIONS in args

    overridden = StepProcess(["true"], {**env, config.LOCAL_JVM_OPTIONS_ENV: ""}).env
    assert overridden[config.LOCAL_JVM_OPTIONS_ENV] == ""
