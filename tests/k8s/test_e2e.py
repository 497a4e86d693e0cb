"""make e2e (scripts/e2e.sh) against recording fakes of docker, kind, helm and kubectl, with
the real make targets it calls, a real moto S3 as the cluster's MinIO and a real MLflow server
as the cluster's MLflow: everything of the real-cluster check that can run without Docker."""

from __future__ import annotations

import io
import json
import os
import shutil
import stat
import subprocess
import uuid

import mlflow
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from fraudops.core.lake import shift
from fraudops.core.platform import platform
from fraudops.orchestration.settings import kubernetes_lake_root
from fraudops.simulator.handbook import SimulationParams
from tests import servers
from tests.paths import REPO

KUBECTL = shutil.which("kubectl")
CHECK = [str(REPO / ".venv" / "bin" / "python"), str(REPO / "scripts" / "e2e_check.py")]
ENV = {**os.environ, "PYTHONPATH": str(REPO)}
DAYS = 40
FIRST_DAY = SimulationParams.start_date.isoformat()
DAY = "2018-05-10"  # the last of 40 days from the first, 2018-04-01

FAKE = """#!/usr/bin/env bash
echo "$(basename "$0") $*" >> "$FAKE_LOG"
case "$(basename "$0") $*" in
  "kubectl kustomize"*) exec "$REAL_KUBECTL" "$@" ;;
  "kubectl config current-context"*) echo "kind-$FAKE_CLUSTER" ;;
  *" get secret "*) printf testing | base64 ;;
  *" port-forward "*) exec sleep 600 ;;
  *"dags list-runs"*) printf '%s\\n' "$FAKE_RUNS" ;;
  *"dags details"*)  # the n-th answer of FAKE_DETAILS (the last one after that); "" fails
    n=$(grep -c "dags details" "$FAKE_LOG")
    answer=$(printf '%s' "$FAKE_DETAILS" | "$FAKE_PY" -c \
      'import json, sys; a = json.load(sys.stdin); print(a[min(int(sys.argv[1]), len(a)) - 1])' "$n")
    [ -n "$answer" ] || { echo "DAG: $3 does not exist in 'dag' table" >&2; exit 1; }
    printf '%s\\n' "$answer" ;;
  *"dags unpause"*) echo "No paused DAGs were found" ;;
  "kind get clusters"*) ;;
  *"apply -f -"*) cat > /dev/null ;;
esac
"""


@pytest.fixture
def fakes(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name in ("docker", "kind", "helm", "kubectl"):
        path = bin_dir / name
        path.write_text(FAKE)
        path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return bin_dir, tmp_path / "calls.log"


def details(paused: bool, schedule: str | None = None) -> str:
    """`airflow dags details <dag> -o json` of a parsed DAG (Airflow 3.1's DAGResponse, the
    fields the script reads; a null timetable's summary is "None")."""
    return json.dumps([{"dag_id": platform()["airflow"]["dag_id"], "is_paused": paused,
                        "timetable_summary": schedule or "None"}])


# Not parsed twice (git-sync, then the DAG processor), then paused, then unpaused.
PARSED_LATE = ["", "", details(True), details(False)]


def run_e2e(fakes, s3_endpoint, tracking_uri, runs, model_name, dag_details=PARSED_LATE):
    bin_dir, log = fakes
    cluster = f"e2e-{uuid.uuid4().hex[:6]}"
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
           "FAKE_LOG": str(log), "FAKE_CLUSTER": cluster, "REAL_KUBECTL": KUBECTL,
           "FAKE_RUNS": json.dumps(runs), "FAKE_DETAILS": json.dumps(dag_details),
           "FAKE_PY": CHECK[0], "E2E_CLUSTER": cluster, "E2E_DAYS": str(DAYS),
           "E2E_CUSTOMERS": "50", "E2E_TERMINALS": "100", "E2E_POLL": "0",
           "E2E_MINIO_PORT": s3_endpoint.rsplit(":", 1)[1],
           "E2E_MLFLOW_PORT": tracking_uri.rsplit(":", 1)[1], "E2E_MODEL_NAME": model_name,
           "GIT_REPO_URL": "https://example.invalid/fraudops.git"}
    result = subprocess.run(["make", "--no-print-directory", "e2e"], cwd=REPO, env=env,
                            capture_output=True, text=True, timeout=600, check=False)
    calls = log.read_text().splitlines() if log.exists() else []
    return result, calls, cluster


@pytest.fixture
def lake_bucket(s3_server):
    client = servers.s3_client(s3_server)
    bucket = platform()["buckets"]["lake"]
    client.create_bucket(Bucket=bucket)
    yield client, bucket
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for item in page.get("Contents", []):
            client.delete_object(Bucket=bucket, Key=item["Key"])
    client.delete_bucket(Bucket=bucket)


def champion(tracking_uri: str) -> str:
    """A registered model with a @champion version on the real server, under a fresh name."""
    name = f"e2e-{uuid.uuid4().hex[:8]}"
    client = mlflow.MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    client.create_registered_model(name)
    version = client.create_model_version(name, source="s3://unused/model")
    client.set_registered_model_alias(name, "champion", version.version)
    return name


def scored(client, bucket: str) -> None:
    prefix = kubernetes_lake_root().split(f"{bucket}/", 1)[1]
    buffer = io.BytesIO()
    pq.write_table(pa.table({"transaction_id": [1, 2, 3]}), buffer)
    client.put_object(Bucket=bucket, Key=f"{prefix}/scores/tx_date={DAY}/part-0.parquet",
                      Body=buffer.getvalue())


pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(KUBECTL is None, reason="kubectl (with kustomize) not on PATH")]


def test_e2e_builds_deploys_loads_runs_one_date_and_asserts(fakes, lake_bucket, mlflow_server,
                                                           s3_server, monkeypatch):
    client, bucket = lake_bucket
    model = champion(mlflow_server)
    scored(client, bucket)
    result, calls, cluster = run_e2e(fakes, s3_server, mlflow_server,
                                     [{"run_id": f"e2e-{DAY}", "state": "success"}], model)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "e2e: the platform trained, promoted and scored" in result.stdout

    def index(prefix: str) -> int:
        return next(i for i, call in enumerate(calls) if call.startswith(prefix))

    order = [index(f"kind create cluster --name {cluster}"),
             index("docker build --file images/spark/Dockerfile"),
             index("kind load docker-image fraudops-spark:dev"),
             index("kubectl kustomize k8s/overlays/dev"),
             index("helm upgrade --install spark-operator"),
             index("helm upgrade --install airflow"),
             index("kubectl --namespace fraudops exec deployment/airflow-scheduler -- airflow "
                   "dags trigger"),
             index(f"kind delete cluster --name {cluster}")]
    assert order == sorted(order)
    # It waited for the DAG to be parsed, unpaused it, saw it unpaused, and only then triggered.
    dag_calls = [c.split(" airflow dags ", 1)[1].split()[0] for c in calls
                 if " airflow dags " in c and "list-runs" not in c]
    assert dag_calls == ["details", "details", "details", "unpause", "details", "trigger"]
    assert sum(c.startswith("docker build") for c in calls) == 3
    trigger = calls[order[6]]
    assert f"--logical-date {DAY}T00:00:00+00:00 --run-id e2e-{DAY}" in trigger
    # The generated lake really went to the "MinIO": a raw file for each day.
    prefix = kubernetes_lake_root().split(f"{bucket}/", 1)[1]
    listed = client.list_objects_v2(Bucket=bucket, Prefix=f"{prefix}/raw/")["Contents"]
    days = {item["Key"].rsplit("/", 1)[1] for item in listed}
    assert {f"{shift(FIRST_DAY, i)}.txt" for i in range(DAYS)} <= days


def test_e2e_fails_on_a_failed_run_and_still_deletes_the_cluster(fakes, lake_bucket,
                                                                 mlflow_server, s3_server):
    result, calls, cluster = run_e2e(fakes, s3_server, mlflow_server,
                                     [{"run_id": f"e2e-{DAY}", "state": "failed"}], "none")
    assert result.returncode != 0
    assert "the DAG run failed" in result.stderr
    assert calls[-1] == f"kind delete cluster --name {cluster}"


def test_e2e_check_refuses_a_platform_without_champion_or_scores(lake_bucket, mlflow_server,
                                                                 s3_server):
    env = {**os.environ, "FRAUDOPS_S3_ENDPOINT": s3_server, "AWS_ACCESS_KEY_ID": "testing",
           "AWS_SECRET_ACCESS_KEY": "testing", "PYTHONPATH": str(REPO)}
    result = subprocess.run([*CHECK, "assert", "--tracking-uri", mlflow_server, "--lake-root",
                             kubernetes_lake_root(), "--date", DAY, "--model-name", "absent"],
                            cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    assert "no @champion for absent" in result.stderr
    assert f"no scored rows for {DAY}" in result.stderr


def test_e2e_check_reads_a_run_state_from_list_runs_json():
    runs = json.dumps([{"run_id": "a", "state": "running"}, {"run_id": "b", "state": "success"}])
    for run_id, state in (("b", "success"), ("a", "running"), ("c", "missing")):
        result = subprocess.run([*CHECK, "run-state", "--run-id", run_id], input=runs,
                                cwd=REPO, env=ENV, capture_output=True, text=True, check=True)
        assert result.stdout.strip() == state
    last = subprocess.run([*CHECK, "last-day", "--days", str(DAYS)], cwd=REPO, env=ENV,
                          capture_output=True, text=True, check=True)
    assert last.stdout.strip() == DAY


def test_e2e_stops_before_unpausing_a_scheduled_dag(fakes, lake_bucket, mlflow_server,
                                                    s3_server):
    """With a schedule, unpausing first queues the run of today: the script refuses."""
    result, calls, cluster = run_e2e(fakes, s3_server, mlflow_server, [], "none",
                                     dag_details=["", details(True, "@daily")])
    assert result.returncode != 0
    assert "scheduled @daily" in result.stderr and "FRAUDOPS_SCHEDULE=none" in result.stderr
    assert not [c for c in calls if "dags unpause" in c or "dags trigger" in c]
    assert calls[-1] == f"kind delete cluster --name {cluster}"


def test_e2e_does_not_trust_an_unpause_that_found_nothing(fakes, lake_bucket, mlflow_server,
                                                          s3_server):
    """`airflow dags unpause` exits 0 when it changed nothing ("No paused DAGs were found")."""
    result, calls, _ = run_e2e(fakes, s3_server, mlflow_server, [], "none",
                               dag_details=[details(True), details(True)])
    assert result.returncode != 0
    assert "is paused after `airflow dags unpause`" in result.stderr
    assert not [c for c in calls if "dags trigger" in c]


def test_e2e_dag_state_reads_dags_details():
    for answer, state in (("", "unparsed"), ("Error: DAG does not exist", "unparsed"),
                          ("some log line\n" + details(True), "paused"),
                          (details(False), "unpaused"),
                          (details(True, "@daily"), "scheduled @daily")):
        result = subprocess.run([*CHECK, "dag-state"], input=answer, cwd=REPO, env=ENV,
                                capture_output=True, text=True, check=True)
        assert result.stdout.strip() == state, answer


def test_the_dev_values_give_the_dag_no_schedule(monkeypatch):
    """Every Airflow component that parses the DAG file gets FRAUDOPS_SCHEDULE from the dev
    values, and the DAG's settings read it as no schedule; the base values keep one."""
    import yaml

    from fraudops.orchestration import settings as dag_settings
    from tests.k8s.manifests import deep_merge

    base = yaml.safe_load((REPO / "charts" / "airflow-values.yaml").read_text())
    dev = deep_merge(base, yaml.safe_load(
        (REPO / "charts" / "airflow-values.dev.yaml").read_text()))
    for component in ("dagProcessor", "scheduler", "triggerer", "workers"):
        env = {e["name"]: e["value"] for e in dev[component].get("env", [])}
        assert dag_settings.SCHEDULE_ENV in env, component
        monkeypatch.setenv(dag_settings.SCHEDULE_ENV, env[dag_settings.SCHEDULE_ENV])
        assert dag_settings.load_settings().schedule is None, component
    assert not [e for e in base.get("env", []) if e["name"] == dag_settings.SCHEDULE_ENV]
