"""Run-time configuration shared by every job: where the lake is and where MLflow is.

Everything comes from the environment with a local default, so the same CLI runs on a laptop
(local paths, a SQLite MLflow store) and inside the Spark image (s3a:// lake, MLflow server).
"""

from __future__ import annotations

import os
from pathlib import Path

LAKE_ROOT_ENV = "FRAUDOPS_LAKE_ROOT"
TRACKING_URI_ENV = "MLFLOW_TRACKING_URI"
REGISTRY_URI_ENV = "MLFLOW_REGISTRY_URI"
S3_ENDPOINT_ENV = "FRAUDOPS_S3_ENDPOINT"
HOME_ENV = "FRAUDOPS_HOME"

# JVM options of every Spark driver and executor, local or in a SparkApplication. Batch jobs
# want throughput, not short pauses: the parallel collector costs less CPU than G1 in the
# features job (docs/performance.md).
SPARK_JVM_OPTIONS = "-XX:+UseParallelGC"
# What a step's JVM adds to those when the step starts it itself (a local master: driver and
# executor in one JVM). Such a JVM lives for seconds to a minute on a day's data, and much of
# that is spent compiling: the C1 compiler alone (no C2) gets the job done sooner. The local
# launcher (fraudops.orchestration.local) puts it in a step's environment unless that
# environment sets the variable already; driver and executor pods keep the full JIT.
LOCAL_JVM_OPTIONS_ENV = "FRAUDOPS_LOCAL_JVM_OPTIONS"
LOCAL_JVM_OPTIONS = "-XX:TieredStopAtLevel=1"


# Spark's writes to an s3a:// lake go through the S3A magic committer: a task's files are
# uploaded as pending multipart uploads, and only the job commit makes them visible, so a
# driver lost mid-job leaves no partial day behind the old one (the default rename-based
# committer is not safe on S3, which has no rename). The magic committer needs no cluster
# filesystem (the staging committers keep their state on one, which a Kubernetes cluster
# without HDFS lacks). It needs the spark-hadoop-cloud jar (images/spark/Dockerfile). None of
# the S3A committers supports dynamic partition overwrite, so spark_jobs.datasets.write_days
# deletes the days it replaces and appends on such lakes. File paths keep Spark's default.
S3A_COMMITTER_SETTINGS = {
    "spark.hadoop.fs.s3a.committer.name": "magic",
    "spark.hadoop.fs.s3a.committer.magic.enabled": "true",
    "spark.hadoop.mapreduce.outputcommitter.factory.scheme.s3a":
        "org.apache.hadoop.fs.s3a.commit.S3ACommitterFactory",
    "spark.sql.sources.commitProtocolClass":
        "org.apache.spark.internal.io.cloud.PathOutputCommitProtocol",
    "spark.sql.parquet.output.committer.class":
        "org.apache.spark.internal.io.cloud.BindingParquetOutputCommitter",
}


def committer_settings(lake_root: str) -> dict[str, str]:
    """The Spark settings a lake at ``lake_root`` needs for atomic job commits (none locally)."""
    return dict(S3A_COMMITTER_SETTINGS) if lake_root.startswith(("s3a://", "s3://")) else {}


def home() -> Path:
    """Working folder for local state (lake, MLflow store, reports): $FRAUDOPS_HOME or the cwd."""
    return Path(os.environ.get(HOME_ENV, os.getcwd())).resolve()


def lake_root_in(folder: Path) -> str:
    """Where a working folder keeps its local lake."""
    return str(folder / "data" / "lake")


def default_lake_root() -> str:
    return os.environ.get(LAKE_ROOT_ENV) or lake_root_in(home())


def tracking_uri() -> str:
    """MLflow tracking URI: the server in the cluster, or a local SQLite store by default."""
    uri = os.environ.get(TRACKING_URI_ENV)
    if uri:
        return uri
    store = home() / ".mlflow"
    store.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{store / 'mlflow.db'}"


def local_artifact_root() -> str:
    """Where a local (SQLite) store keeps artifacts; a server proxies its own."""
    return (home() / ".mlflow" / "artifacts").as_uri()


def reports_dir() -> Path:
    return home() / "reports"


def s3_endpoint() -> str | None:
    return os.environ.get(S3_ENDPOINT_ENV) or os.environ.get("AWS_ENDPOINT_URL")
