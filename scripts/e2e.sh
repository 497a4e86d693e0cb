#!/usr/bin/env bash
# make e2e: the whole platform on a throwaway kind cluster, end to end.
#
# Creates a kind cluster, builds the three images and loads them into it (make images-dev),
# deploys the dev overlay with spark-operator, MLflow and Airflow (make deploy OVERLAY=dev),
# writes a small generated lake into the in-cluster MinIO, runs one DAG date through the real
# spark-operator, and asserts that a @champion exists and that the day was scored
# (scripts/e2e_check.py). Needs Docker, kind, helm and kubectl; the cluster is deleted at the
# end unless E2E_KEEP=1. The GitHub workflow .github/workflows/e2e.yaml runs it.
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PY:-.venv/bin/python}
MAKE=${MAKE:-make}
KIND=${KIND:-kind}
KUBECTL=${KUBECTL:-kubectl}
CLUSTER=${E2E_CLUSTER:-fraudops-e2e}
DAYS=${E2E_DAYS:-45}                  # days of generated history; the DAG runs the last one
CUSTOMERS=${E2E_CUSTOMERS:-500}
TERMINALS=${E2E_TERMINALS:-1000}
MINIO_PORT=${E2E_MINIO_PORT:-19000}   # local ends of the port-forwards
MLFLOW_PORT=${E2E_MLFLOW_PORT:-15000}
PARSE_TIMEOUT=${E2E_PARSE_TIMEOUT:-600}  # seconds for git-sync and the DAG processor
RUN_TIMEOUT=${E2E_RUN_TIMEOUT:-3600}  # seconds for the DAG run
POLL=${E2E_POLL:-20}
KEEP=${E2E_KEEP:-0}

say() { printf '>>> %s\n' "$*"; }
need() { command -v "$1" >/dev/null || { echo "make e2e needs $1: $2" >&2; exit 2; }; }
need docker "a Docker engine builds the images and runs the kind nodes"
need "$KIND" "kind creates the throwaway cluster (https://kind.sigs.k8s.io)"
need helm "helm installs spark-operator, MLflow and Airflow"
need "$KUBECTL" "kubectl applies the overlay and reaches the pods"

platform() { "$PY" -c "from fraudops.core.platform import platform; print(platform()$1)"; }
NS=$(platform "['namespaces']['platform']")
DAG=$(platform "['airflow']['dag_id']")
# Writing the lake takes Spark's key, the only one that may (docs/security.md); it lives in the
# jobs namespace.
JOBS_NS=$(platform "['namespaces']['jobs']")
S3_SECRET=$(platform "['secrets']['s3_spark']")
MLFLOW_SERVICE=$(platform "['mlflow']['service']")
MLFLOW_SERVICE_PORT=$(platform "['mlflow']['port']")
LAKE_ROOT=$("$PY" scripts/e2e_check.py lake-root)
DAY=$("$PY" scripts/e2e_check.py last-day --days "$DAYS")
RUN_ID="e2e-$DAY"

forwards=()
cleanup() {
  for pid in "${forwards[@]}"; do kill "$pid" 2>/dev/null || true; done
  if [ "$KEEP" = 1 ]; then say "kept cluster $CLUSTER (E2E_KEEP=1)"; else "$KIND" delete cluster --name "$CLUSTER"; fi
}
trap cleanup EXIT

forward() {  # forward <service> <local port> <service port>: in the background, until it answers
  "$KUBECTL" --namespace "$NS" port-forward "service/$1" "$2:$3" >/dev/null &
  forwards+=("$!")
  "$PY" - "$2" <<'PY'
import socket, sys, time
for _ in range(120):
    try:
        socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=1).close()
        sys.exit(0)
    except OSError:
        time.sleep(1)
sys.exit(f"port {sys.argv[1]} did not answer")
PY
}

say "cluster $CLUSTER"
"$KIND" get clusters 2>/dev/null | grep -qx "$CLUSTER" || "$KIND" create cluster --name "$CLUSTER" --wait 5m
"$KUBECTL" config use-context "kind-$CLUSTER"

say "images and platform"
"$MAKE" images-dev KIND_CLUSTER="$CLUSTER"
"$MAKE" deploy OVERLAY=dev ${GIT_REPO_URL:+GIT_REPO_URL=$GIT_REPO_URL} ${GIT_BRANCH:+GIT_BRANCH=$GIT_BRANCH}

say "lake: $DAYS days into $LAKE_ROOT on the cluster's MinIO"
forward minio "$MINIO_PORT" 9000
secret() { "$KUBECTL" --namespace "$JOBS_NS" get secret "$S3_SECRET" -o "jsonpath={.data.$1}" | base64 -d; }
AWS_ACCESS_KEY_ID=$(secret AWS_ACCESS_KEY_ID) AWS_SECRET_ACCESS_KEY=$(secret AWS_SECRET_ACCESS_KEY) \
  FRAUDOPS_S3_ENDPOINT="http://127.0.0.1:$MINIO_PORT" \
  "$PY" -m fraudops.simulator.generate --lake-root "$LAKE_ROOT" --days "$DAYS" \
    --customers "$CUSTOMERS" --terminals "$TERMINALS" --defect-rate 0.002

say "DAG $DAG, logical date $DAY (run $RUN_ID)"
airflow() { "$KUBECTL" --namespace "$NS" exec deployment/airflow-scheduler -- airflow "$@"; }
# Unpause and trigger only a parsed DAG: on one not in the database yet, `dags unpause` prints
# "No paused DAGs were found" and exits 0, and the trigger fails. And only one without a
# schedule (charts/airflow-values.dev.yaml): with @daily, unpausing first queues the run of
# today, which takes every generated day as arrived and leaves the e2e date nothing to do.
dag_state() {
  { airflow dags details "$DAG" -o json 2>/dev/null || true; } | "$PY" scripts/e2e_check.py dag-state
}
deadline=$((SECONDS + PARSE_TIMEOUT))
while state=$(dag_state); [ "$state" = unparsed ]; do
  say "waiting for $DAG to be parsed (git-sync, then the DAG processor)"
  [ "$SECONDS" -lt "$deadline" ] || { echo "$DAG was not parsed in ${PARSE_TIMEOUT}s:" \
    "kubectl -n $NS logs deploy/airflow-dag-processor -c git-sync; airflow dags list-import-errors" >&2; exit 1; }
  sleep "$POLL"
done
case "$state" in
  scheduled*) echo "$DAG is $state: unpausing would start the scheduled run of today first;" \
    "the dev values set FRAUDOPS_SCHEDULE=none (charts/airflow-values.dev.yaml)" >&2; exit 1 ;;
esac
airflow dags unpause "$DAG"
state=$(dag_state)
[ "$state" = unpaused ] || { echo "$DAG is $state after \`airflow dags unpause\`" >&2; exit 1; }
airflow dags trigger "$DAG" --logical-date "${DAY}T00:00:00+00:00" --run-id "$RUN_ID"
deadline=$((SECONDS + RUN_TIMEOUT))
while :; do
  state=$(airflow dags list-runs "$DAG" -o json | "$PY" scripts/e2e_check.py run-state --run-id "$RUN_ID")
  say "run $RUN_ID: $state"
  case "$state" in
    success) break ;;
    failed) echo "the DAG run failed: airflow tasks logs in the scheduler pod" >&2; exit 1 ;;
  esac
  [ "$SECONDS" -lt "$deadline" ] || { echo "the DAG run did not end in ${RUN_TIMEOUT}s" >&2; exit 1; }
  sleep "$POLL"
done

say "asserts"
forward "$MLFLOW_SERVICE" "$MLFLOW_PORT" "$MLFLOW_SERVICE_PORT"
AWS_ACCESS_KEY_ID=$(secret AWS_ACCESS_KEY_ID) AWS_SECRET_ACCESS_KEY=$(secret AWS_SECRET_ACCESS_KEY) \
  FRAUDOPS_S3_ENDPOINT="http://127.0.0.1:$MINIO_PORT" \
  "$PY" scripts/e2e_check.py assert --tracking-uri "http://127.0.0.1:$MLFLOW_PORT" \
    --lake-root "$LAKE_ROOT" --date "$DAY" ${E2E_MODEL_NAME:+--model-name "$E2E_MODEL_NAME"}
