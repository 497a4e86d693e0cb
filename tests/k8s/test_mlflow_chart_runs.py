"""charts/mlflow executed, not only rendered: the Deployment's init container and server
command, exactly as Helm renders them, run against a throwaway PostgreSQL (tests/servers.py).

The container environment is the rendered ``env`` with each ``secretKeyRef`` resolved from a
fake Secret store; ``python`` and ``mlflow`` resolve to this virtualenv, whose versions are the
image's (images/mlflow/Dockerfile installs them from the same uv.lock). What stays untested here
(the image itself, the kubelet, Object Storage) is listed in the README's "what CI cannot run".
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from fraudops.core.platform import platform
from tests import servers
from tests.k8s.manifests import MLFLOW_CHART, objects, one, render_chart

NAMES = platform()
RELEASE = NAMES["mlflow"]["service"]
NAMESPACE = NAMES["namespaces"]["platform"]
# What a kubelet's httpGet probe sends as Host: the pod's IP and port.
POD_IP = "10.112.0.17"
INIT_TIMEOUT = 300
START_TIMEOUT = 120

pytest.importorskip("psycopg2")
pytest.importorskip("mlflow")


# A database per test on the session's PostgreSQL cluster -------------------------------------

_counter = iter(range(10_000))


def new_database(server_uri: str) -> str:
    """A fresh, empty database on the cluster behind ``server_uri``; its SQLAlchemy URI."""
    return servers.create_database(server_uri, f"mlflow_{os.getpid()}_{next(_counter)}")


def schema_revision(uri: str) -> str | None:
    import sqlalchemy
    from mlflow.store.db import utils

    engine = sqlalchemy.create_engine(uri)
    try:
        return utils._get_schema_version(engine)
    finally:
        engine.dispose()


def head_revision() -> str:
    from mlflow.store.db import utils

    return utils._get_latest_schema_revision()


def older_schema(uri: str) -> str:
    """Give the empty database at ``uri`` the schema of an older MLflow: the initial tables and
    the migrations up to one halfway to head (MLflow's own scripts). Returns that revision."""
    import sqlalchemy
    from alembic import command
    from alembic.script import ScriptDirectory
    from mlflow.store.db import utils

    engine = sqlalchemy.create_engine(uri)
    try:
        config = utils._get_alembic_config(str(engine.url))
        chain = list(reversed(list(ScriptDirectory.from_config(config).walk_revisions())))
        revision = chain[len(chain) // 2].revision
        utils.InitialBase.metadata.create_all(engine)
        with engine.begin() as connection:
            config.attributes["connection"] = connection
            command.upgrade(config, revision)
    finally:
        engine.dispose()
    return revision


# The rendered pod, run here ------------------------------------------------------------------

def rendered_pod(port: int, s3_endpoint: str) -> dict:
    # Basic auth (on by default) needs its user store and Secret; what runs here is the schema
    # and the server on it, so auth is off (its wiring: test_mlflow_chart.py).
    values = {"server": {"port": port}, "artifacts": {"s3": {"endpoint": s3_endpoint}},
              "auth": {"enabled": False}}
    out = render_chart(MLFLOW_CHART, values, release=RELEASE, namespace=NAMESPACE)
    return one(objects(out), "Deployment")["spec"]["template"]["spec"]


def container_env(container: dict, secrets: dict[str, dict[str, str]]) -> dict[str, str]:
    """The container's env with secretKeyRefs resolved; the test's PATH so that the image's
    executables (python, mlflow) are this virtualenv's."""
    env = {"PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
           "LANG": "C.UTF-8"}
    for entry in container.get("env", []):
        if "value" in entry:
            env[entry["name"]] = entry["value"]
            continue
        ref = entry["valueFrom"]["secretKeyRef"]
        assert ref["name"] in secrets and ref["key"] in secrets[ref["name"]], (
            f"{container['name']}: env {entry['name']} reads Secret {ref['name']}/{ref['key']}, "
            "which the platform does not create")
        env[entry["name"]] = secrets[ref["name"]][ref["key"]]
    return env


def argv(container: dict) -> list[str]:
    return [*container.get("command", []), *container.get("args", [])]


def platform_secrets(backend_uri: str) -> dict[str, dict[str, str]]:
    return {NAMES["secrets"]["mlflow_db"]: {"uri": backend_uri},
            NAMES["secrets"]["s3_mlflow"]: dict(servers.S3_KEYS)}


def run_init(pod: dict, backend_uri: str) -> subprocess.CompletedProcess:
    (init,) = pod["initContainers"]
    return subprocess.run(argv(init), env=container_env(init, platform_secrets(backend_uri)),
                          cwd=tempfile.gettempdir(), capture_output=True, text=True,
                          timeout=INIT_TIMEOUT)


def assert_succeeded(result: subprocess.CompletedProcess) -> None:
    assert result.returncode == 0, (
        f"init container exited {result.returncode}:\n{result.stdout[-3000:]}"
        f"{result.stderr[-3000:]}")


@pytest.fixture(scope="module")
def pod(s3_server):
    return rendered_pod(servers.free_port(), s3_server)


def test_init_container_creates_the_schema_on_an_empty_database(pod, postgres_server):
    uri = new_database(postgres_server)
    assert_succeeded(run_init(pod, uri))
    assert schema_revision(uri) == head_revision()


def test_init_container_is_a_no_op_on_a_migrated_database(pod, postgres_server):
    uri = new_database(postgres_server)
    assert_succeeded(run_init(pod, uri))
    assert_succeeded(run_init(pod, uri))
    assert schema_revision(uri) == head_revision()


def test_init_container_upgrades_an_older_schema(pod, postgres_server):
    uri = new_database(postgres_server)
    old = older_schema(uri)
    assert old != head_revision()
    assert_succeeded(run_init(pod, uri))
    assert schema_revision(uri) == head_revision()


def test_replicas_starting_together_initialize_once(pod, postgres_server):
    """Every replica's init container runs at once on a new database: one creates, the others
    wait on the advisory lock and find it migrated."""
    uri = new_database(postgres_server)
    results = []
    threads = [threading.Thread(target=lambda: results.append(run_init(pod, uri)))
               for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for result in results:
        assert_succeeded(result)
    assert schema_revision(uri) == head_revision()


def get(url: str, host: str) -> int:
    request = urllib.request.Request(url, headers={"Host": host})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code
    except (urllib.error.URLError, OSError):
        return 0


def test_server_command_starts_on_the_initialized_database_and_answers_its_probes(
        pod, postgres_server):
    uri = new_database(postgres_server)
    assert_succeeded(run_init(pod, uri))
    (server,) = [c for c in pod["containers"] if c["name"] == "mlflow"]
    ports = {p["name"]: p["containerPort"] for p in server["ports"]}
    probes = [server[k]["httpGet"] for k in ("startupProbe", "livenessProbe", "readinessProbe")]
    workdir = Path(tempfile.mkdtemp(prefix="fraudops-mlflow-chart-"))
    log = workdir / "server.log"
    with log.open("wb") as out:
        process = subprocess.Popen(argv(server), env=container_env(server, platform_secrets(uri)),
                                   cwd=workdir, stdout=out, stderr=subprocess.STDOUT,
                                   start_new_session=True)
    try:
        first = probes[0]
        port = ports.get(first["port"], first["port"])
        deadline = time.monotonic() + START_TIMEOUT
        while get(f"http://127.0.0.1:{port}{first['path']}", f"{POD_IP}:{port}") != 200:
            if process.poll() is not None:
                pytest.fail(f"the server command exited {process.returncode}:\n"
                            f"{servers._tail(log)}")
            if time.monotonic() > deadline:
                pytest.fail(f"startup probe not 200 after {START_TIMEOUT}s:\n{servers._tail(log)}")
            time.sleep(1)
        for probe in probes:
            port = ports.get(probe["port"], probe["port"])
            assert get(f"http://127.0.0.1:{port}{probe['path']}", f"{POD_IP}:{port}") == 200
        # What the jobs send: the Service's cluster name as Host, an API call on the database.
        port = ports["http"]
        service = f"{RELEASE}.{NAMESPACE}.svc.cluster.local:{NAMES['mlflow']['port']}"
        status = get(f"http://127.0.0.1:{port}/api/2.0/mlflow/experiments/get-by-name"
                     "?experiment_name=Default", service)
        assert status == 200, servers._tail(log)
    finally:
        servers._stop_group(process)
        shutil.rmtree(workdir, ignore_errors=True)
