"""The Spark History Server: every step writes its event log where the server reads it, the
server runs hardened with only the flows it needs, and (slow) its container command, run here
with the real Spark 4 of the virtualenv, shows an application whose event log a local Spark job
wrote with the SparkApplication's own spark.eventLog settings, at the URL the task log prints."""

from __future__ import annotations

import json
import os
import re
import shlex
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import yaml

from fraudops.core.platform import platform
from fraudops.orchestration.spark_application import event_log_dir, history_url
from tests.k8s.manifests import K8S, OVERLAYS, by_kind, kustomize, one

NAMES = platform()
NS = NAMES["namespaces"]
HISTORY = NAMES["spark_history"]
TEMPLATE = K8S / "spark" / "sparkapplication.template.yaml"
HISTORY_SERVER_CLASS = "org.apache.spark.deploy.history.HistoryServer"


def template_conf() -> dict[str, str]:
    return yaml.safe_load(TEMPLATE.read_text())["spec"]["sparkConf"]


def deployment(objs: list[dict]) -> dict:
    return one(objs, "Deployment", HISTORY["service"])


def container(objs: list[dict]) -> dict:
    (only,) = deployment(objs)["spec"]["template"]["spec"]["containers"]
    return only


def env_of(container_: dict) -> dict[str, dict]:
    return {e["name"]: e for e in container_["env"]}


def history_opts(container_: dict) -> dict[str, str]:
    """SPARK_HISTORY_OPTS as the -Dkey=value pairs the server's JVM gets."""
    opts = {}
    for token in shlex.split(env_of(container_)["SPARK_HISTORY_OPTS"]["value"]):
        assert token.startswith("-D") and "=" in token, token
        key, value = token[2:].split("=", 1)
        opts[key] = value
    return opts


# --- where the event logs go and where the server reads them ---------------------------------


def test_every_step_writes_an_event_log_under_the_prefix_of_its_own():
    conf = template_conf()
    assert conf["spark.eventLog.enabled"] == "true"
    assert conf["spark.eventLog.dir"] == "${event_log_dir}"
    assert event_log_dir() == f"s3a://{NAMES['buckets']['lake']}/{HISTORY['event_log_prefix']}/"
    # Rolling: the per-application folders the lifecycle rule expires (terraform/storage.tf).
    assert conf["spark.eventLog.rolling.enabled"] == "true"
    assert conf["spark.eventLog.compress"] == "true"
    # Not under the lake's data (FRAUDOPS_LAKE_ROOT is s3a://<lake>/lake).
    assert not event_log_dir().startswith(f"s3a://{NAMES['buckets']['lake']}/lake/")


def test_every_built_application_carries_the_event_log_dir():
    from tests.test_consistency import spark_applications

    for overlay in OVERLAYS:
        for app in spark_applications(overlay):
            assert app["spec"]["sparkConf"]["spark.eventLog.dir"] == event_log_dir()


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_server_reads_where_the_steps_write_through_the_same_s3a_settings(overlay):
    objs = kustomize(K8S / "overlays" / overlay)
    server = container(objs)
    opts = history_opts(server)
    assert opts["spark.history.fs.logDirectory"] == event_log_dir()
    assert int(opts["spark.history.ui.port"]) == HISTORY["port"]
    assert opts["spark.history.fs.cleaner.enabled"] == "false"  # a read-only key
    conf = template_conf()
    for key in ("spark.hadoop.fs.s3a.path.style.access",
                "spark.hadoop.fs.s3a.aws.credentials.provider"):
        assert opts[key] == conf[key], key
    # The endpoint and region the SparkApplications get: the overlay's ConfigMap.
    env = env_of(server)
    assert opts["spark.hadoop.fs.s3a.endpoint"] == "$(S3_ENDPOINT)"
    assert opts["spark.hadoop.fs.s3a.endpoint.region"] == "$(S3_REGION)"
    for name, key in (("S3_ENDPOINT", "s3_endpoint"), ("S3_REGION", "s3_region")):
        assert env[name]["valueFrom"]["configMapKeyRef"] == {"name": "fraudops-environment",
                                                             "key": key}
    names = [e["name"] for e in server["env"]]  # $(VAR) expands only from earlier entries
    assert names.index("S3_ENDPOINT") < names.index("SPARK_HISTORY_OPTS")
    assert names.index("S3_REGION") < names.index("SPARK_HISTORY_OPTS")
    for name in ("AWS_REQUEST_CHECKSUM_CALCULATION", "AWS_RESPONSE_CHECKSUM_VALIDATION"):
        assert env[name]["value"] == "when_required"


# --- the Deployment and its Service -------------------------------------------------------


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_server_runs_the_spark_image_hardened(overlay):
    objs = kustomize(K8S / "overlays" / overlay)
    found = deployment(objs)
    assert found["metadata"]["namespace"] == NS["platform"]
    pod = found["spec"]["template"]["spec"]
    server = container(objs)
    assert server["name"] == HISTORY["service"]  # `make deploy` sets its image by this name
    config = one(objs, "ConfigMap", "fraudops-environment")["data"]
    assert server["image"] == config["spark_image"]
    assert server["command"] == ["/opt/spark/bin/spark-class", HISTORY_SERVER_CLASS]
    assert pod["automountServiceAccountToken"] is False
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 185
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    context = server["securityContext"]
    assert context == {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                       "capabilities": {"drop": ["ALL"]}}
    # What it writes on a read-only root: the JVM's temp files, on an emptyDir.
    volumes = {v["name"]: v for v in pod["volumes"]}
    mounts = {m["mountPath"]: m["name"] for m in server["volumeMounts"]}
    assert "emptyDir" in volumes[mounts["/tmp"]]
    assert history_opts(server)["java.io.tmpdir"] == "/tmp"
    resources = server["resources"]
    assert resources["requests"]["cpu"] and resources["requests"]["memory"]
    assert resources["limits"]["memory"]
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert server[probe]["httpGet"] == {"path": "/api/v1/version", "port": "http"}
    (port,) = server["ports"]
    assert port == {"name": "http", "containerPort": HISTORY["port"]}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_service_is_the_one_make_port_forwards(overlay):
    objs = kustomize(K8S / "overlays" / overlay)
    service = one(objs, "Service", HISTORY["service"])
    assert service["metadata"]["namespace"] == NS["platform"]
    labels = deployment(objs)["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"] and labels.items() >= service["spec"]["selector"].items()
    (port,) = service["spec"]["ports"]
    assert (port["port"], port["targetPort"]) == (HISTORY["port"], "http")
    makefile = (K8S.parent / "make" / "deploy.mk").read_text()
    assert "port-forward service/$(SPARK_HISTORY) $(SPARK_HISTORY_PORT):$(SPARK_HISTORY_PORT)" in (
        makefile)


# --- its flows -----------------------------------------------------------------------------


def selects(selector: dict, labels: dict) -> bool:
    if any(labels.get(k) != v for k, v in selector.get("matchLabels", {}).items()):
        return False
    for expression in selector.get("matchExpressions", []):
        key, operator, values = expression["key"], expression["operator"], expression.get("values")
        if operator == "In" and labels.get(key) not in values:
            return False
        if operator == "NotIn" and key in labels and labels[key] in values:
            return False
        if operator == "Exists" and key not in labels:
            return False
        if operator == "DoesNotExist" and key in labels:
            return False
    return True


def test_the_selector_matcher():
    assert selects({}, {"a": "b"})
    not_in = {"matchExpressions": [{"key": "a", "operator": "NotIn", "values": ["b"]}]}
    assert not selects(not_in, {"a": "b"}) and selects(not_in, {}) and selects(not_in, {"a": "c"})


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_server_gets_only_its_own_flows(overlay):
    objs = kustomize(K8S / "overlays" / overlay)
    labels = deployment(objs)["spec"]["template"]["metadata"]["labels"]
    applying = {p["metadata"]["name"]: p["spec"] for p in by_kind(objs, "NetworkPolicy")
                if p["metadata"]["namespace"] == NS["platform"]
                and selects(p["spec"]["podSelector"], labels)}
    storage = {"yandex": "allow-object-storage-egress",
               "dev": "allow-spark-history-minio-egress"}[overlay]
    assert set(applying) == {"default-deny", "allow-dns", "allow-spark-history", storage}
    (rule,) = applying["allow-spark-history"]["ingress"]
    assert rule["ports"] == [{"port": HISTORY["port"], "protocol": "TCP"}]
    assert rule["from"] == [{"podSelector": {}}]  # the namespace's pods only
    assert "egress" not in applying["allow-spark-history"]
    # ... while every other pod of the namespace keeps talking to the others.
    same = one(objs, "NetworkPolicy", "allow-same-namespace")["spec"]
    assert selects(same["podSelector"], {"app.kubernetes.io/name": "minio"})
    assert selects(same["podSelector"], {"tier": "airflow"})
    if overlay == "dev":
        (egress,) = applying[storage]["egress"]
        assert egress["to"] == [{"podSelector": {"matchLabels": {"app.kubernetes.io/name":
                                                                 "minio"}}}]
        assert egress["ports"] == [{"port": 9000, "protocol": "TCP"}]


def test_dev_creates_the_event_log_marker():
    objs = kustomize(K8S / "overlays" / "dev")
    script = one(objs, "Job", "minio-buckets")["spec"]["template"]["spec"]["containers"][0]["args"][0]
    key = f"{NAMES['buckets']['lake']}/{HISTORY['event_log_prefix']}/{HISTORY['event_log_marker']}"
    assert re.search(rf"\| mc pipe local/{re.escape(key)}\n", script)
    assert script.index("mc pipe") > script.index("mc mb")


# --- the container command, run: Spark 4 writes, the History Server shows -------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def spark_home() -> Path:
    import pyspark

    return Path(pyspark.__file__).parent


TINY_JOB = """
import sys
from pyspark.sql import SparkSession
builder = SparkSession.builder.master("local[1]").appName("fraudops-event-log-check")
builder = builder.config("spark.ui.enabled", "false").config("spark.sql.shuffle.partitions", "1")
for key, value in [line.split("=", 1) for line in sys.argv[1:]]:
    builder = builder.config(key, value)
spark = builder.getOrCreate()
numbers = spark.range(100)
assert numbers.groupBy((numbers.id % 3).alias("k")).count().count() == 3
print("APPLICATION", spark.sparkContext.applicationId, flush=True)
spark.stop()
"""


def get(url: str, timeout: float = 5) -> tuple[int, str]:
    with urllib.request.urlopen(url, timeout=timeout) as response:  # follows the redirects
        return response.status, response.read().decode()


@pytest.mark.slow
@pytest.mark.skipif(os.environ.get("FRAUDOPS_RUN_SPARK_HISTORY") != "1", reason=(
    "two Spark JVMs, 80-190 s on the 2-core machine: run with FRAUDOPS_RUN_SPARK_HISTORY=1 "
    "after changing spark.eventLog.* or the History Server's command"))
def test_the_history_server_command_shows_a_step_event_log(tmp_path):
    """The template's spark.eventLog settings (the folder replaced by a local one, with its
    marker object) in a tiny local Spark 4 job; then the Deployment's command and
    SPARK_HISTORY_OPTS (log folder and port replaced) with the virtualenv's Spark: the server
    starts, skips the marker, lists the application, and serves the page the task log names."""
    events = tmp_path / HISTORY["event_log_prefix"]
    events.mkdir()
    (events / HISTORY["event_log_marker"]).write_text("marker\n")
    conf = {key: value for key, value in template_conf().items()
            if key.startswith("spark.eventLog.")}
    conf["spark.eventLog.dir"] = events.as_uri()
    environment = {**os.environ, "SPARK_HOME": str(spark_home()), "PYSPARK_PYTHON": sys.executable}
    job = subprocess.run([sys.executable, "-c", TINY_JOB, *(f"{k}={v}" for k, v in conf.items())],
                         env=environment, capture_output=True, text=True, timeout=300, check=False)
    assert job.returncode == 0, job.stderr[-3000:]
    (app_id,) = re.findall(r"^APPLICATION (\S+)$", job.stdout, re.MULTILINE)
    # The rolling folder the lifecycle rule expires (terraform/storage.tf), beside the marker.
    folders = sorted(p.name for p in events.iterdir())
    assert folders == sorted([HISTORY["event_log_marker"], f"eventlog_v2_{app_id}"])

    server = container(kustomize(K8S / "overlays" / "dev"))
    opts = history_opts(server)
    port = free_port()
    opts["spark.history.fs.logDirectory"] = events.as_uri()
    opts["spark.history.ui.port"] = str(port)
    opts["spark.history.fs.update.interval"] = "1s"
    opts["java.io.tmpdir"] = str(tmp_path)
    # Kubernetes' $(VAR) expansion, with values that reach no S3 (a local folder is read).
    fakes = {"S3_ENDPOINT": "http://127.0.0.1:9", "S3_REGION": NAMES["s3"]["region"]}
    expanded = {k: re.sub(r"[$][(](\w+)[)]", lambda m: fakes[m[1]], v) for k, v in opts.items()}
    history_env = {**environment,
                   "SPARK_HISTORY_OPTS": " ".join(f"-D{k}={v}" for k, v in expanded.items()),
                   "SPARK_DAEMON_MEMORY": env_of(server)["SPARK_DAEMON_MEMORY"]["value"],
                   "SPARK_LOG_DIR": str(tmp_path / "logs")}
    command = [str(spark_home() / "bin" / "spark-class"), *server["command"][1:]]
    assert server["command"][0] == "/opt/spark/bin/spark-class"
    log = (tmp_path / "history.log").open("w")
    process = subprocess.Popen(command, env=history_env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 240
        applications = []
        while time.monotonic() < deadline:
            assert process.poll() is None, (tmp_path / "history.log").read_text()[-3000:]
            try:
                applications = json.loads(get(f"http://127.0.0.1:{port}/api/v1/applications")[1])
            except (urllib.error.URLError, ConnectionError, OSError):
                applications = []
            if applications:
                break
            time.sleep(1)
        assert [a["id"] for a in applications] == [app_id], "the marker is no application"
        assert applications[0]["attempts"][0]["completed"] is True
        # The probes' path, and the page the task log prints (localhost:<port> of the
        # port-forward, here the server's own port).
        assert get(f"http://127.0.0.1:{port}/api/v1/version")[0] == 200
        url = history_url(app_id)
        assert url == f"http://localhost:{HISTORY['port']}/history/{app_id}/"
        status, page = get(url.replace(f"localhost:{HISTORY['port']}", f"127.0.0.1:{port}"),
                           timeout=60)
        assert status == 200 and "fraudops-event-log-check" in page
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()
