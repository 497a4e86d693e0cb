"""The MLflow chart's auth bootstrap Job, executed: its rendered command and environment run
against a real ``mlflow server --app-name basic-auth`` on PostgreSQL (tests/servers.py), with
basic_auth.ini as Terraform writes it (platform.yaml's admin and default permission).

Then the Spark steps' account does what the steps do, through the platform's own code
(tracking.setup, start_step_run, registry.record_decision, apply_record, alias_version): log a
run and an artifact, log and register a model version, move and read @champion. And it cannot do what the
steps never need: create users, change grants, delete the experiment or the model, read an
experiment nobody granted it. A second run of the Job changes nothing and rotates a password.

What stays untested here: the Job reaching the server through the Service (its URI is replaced
by the local server's), and the kubelet mounting the Secret (its items are written to a folder
the mount path is mapped to).
"""

from __future__ import annotations

import importlib.util
import json
import os
import secrets
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from fraudops.core.platform import platform
from tests import servers
from tests.k8s.manifests import MLFLOW_CHART, objects, one, render_chart

pytest.importorskip("psycopg2")
pytest.importorskip("mlflow")

NAMES = platform()
MLFLOW = NAMES["mlflow"]
SERVER_SECRET = NAMES["secrets"]["mlflow_auth_server"]
SPARK_USER = MLFLOW["auth_spark_user"]
BOOTSTRAP_TIMEOUT = 180


def auth_ini(auth_database_uri: str, admin_password: str) -> str:
    """basic_auth.ini with the lines terraform/secrets.tf writes (tests/terraform checks them)."""
    return "\n".join([
        "[mlflow]",
        f"default_permission = {MLFLOW['auth_default_permission']}",
        f"database_uri = {auth_database_uri}",
        f"admin_username = {MLFLOW['auth_admin']}",
        f"admin_password = {admin_password}",
        "authorization_function = mlflow.server.auth:authenticate_request_basic_auth",
        "",
    ])


class Platform:
    """A basic-auth MLflow server and the Secret the chart's Job and server read."""

    def __init__(self, postgres_uri: str, s3_endpoint: str):
        suffix = f"{os.getpid()}_{secrets.token_hex(3)}"
        backend = servers.create_database(postgres_uri, f"mlflow_authboot_{suffix}")
        auth_db = servers.create_database(postgres_uri, f"mlflow_authstore_{suffix}")
        self.admin_password = secrets.token_urlsafe(24)
        self.spark_password = secrets.token_urlsafe(24)
        self.workdir = Path(tempfile.mkdtemp(prefix="fraudops-mlflow-auth-"))
        self.secret = {
            "basic_auth.ini": auth_ini(auth_db, self.admin_password),
            "flask-secret-key": secrets.token_hex(16),
            MLFLOW["auth_spark_password_key"]: self.spark_password,
        }
        ini = self.workdir / "server-basic_auth.ini"
        ini.write_text(self.secret["basic_auth.ini"])
        self.server = servers.MlflowServer(backend, s3_endpoint, app_name="basic-auth", env={
            "MLFLOW_AUTH_CONFIG_PATH": str(ini),
            "MLFLOW_FLASK_SERVER_SECRET_KEY": self.secret["flask-secret-key"]})
        self.server.start()
        self.url = self.server.url

    def close(self) -> None:
        self.server.close()


@pytest.fixture(scope="module")
def mlflow_platform(postgres_server, s3_server):
    if importlib.util.find_spec("flask_wtf") is None:
        pytest.skip("MLflow's basic auth app needs Flask-WTF (mlflow[auth], the uv.lock group "
                    "mlflow-server); this virtualenv was synced before it was locked")
    running = Platform(postgres_server, s3_server)
    try:
        yield running
    finally:
        running.close()


def bootstrap_job() -> dict:
    rendered = render_chart(MLFLOW_CHART, {}, release=MLFLOW["service"],
                            namespace=NAMES["namespaces"]["platform"])
    return one(objects(rendered), "Job")["spec"]["template"]["spec"]


def run_bootstrap(running: Platform) -> subprocess.CompletedProcess:
    """The Job's container as rendered: its volumes written to a folder from the fake Secret,
    its env with each mount path mapped there and the Service URI replaced by the server's."""
    pod = bootstrap_job()
    (container,) = pod["containers"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    mounts = {}
    for mount in container["volumeMounts"]:
        volume = volumes[mount["name"]]
        folder = Path(tempfile.mkdtemp(dir=running.workdir, prefix=f"{mount['name']}-"))
        if "secret" in volume:
            assert volume["secret"]["secretName"] == SERVER_SECRET
            for item in volume["secret"]["items"]:
                (folder / item["path"]).write_text(running.secret[item["key"]])
        mounts[mount["mountPath"]] = str(folder)
    env = {"PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
           "LANG": "C.UTF-8"}
    for entry in container["env"]:
        assert "value" in entry, f"the Job reads {entry['name']} from a Secret: {entry}"
        value = entry["value"]
        for path, folder in mounts.items():
            value = value.replace(path + "/", folder + "/").replace(f'"{path}"', f'"{folder}"')
        env[entry["name"]] = value
    env["MLFLOW_TRACKING_URI"] = running.url
    if "PYTHONPATH" in os.environ:  # the packages this test run sees are the image's
        env["PYTHONPATH"] = os.environ["PYTHONPATH"]
    env["HOME"] = env["TMPDIR"] = mounts["/tmp"]
    result = subprocess.run([*container["command"], *container["args"]], env=env,
                            cwd=mounts["/tmp"], capture_output=True, text=True,
                            timeout=BOOTSTRAP_TIMEOUT)
    assert result.returncode == 0, f"bootstrap exited {result.returncode}:\n{result.stdout}" \
                                   f"{result.stderr[-4000:]}"
    for password in (running.admin_password, running.spark_password):
        assert password not in result.stdout + result.stderr
    return result


@pytest.fixture(scope="module")
def bootstrapped(mlflow_platform):
    run_bootstrap(mlflow_platform)
    return mlflow_platform


@pytest.fixture
def as_user(monkeypatch):
    """Switch the MLflow client of this process to a user (MLflow reads the env per request)."""
    def switch(username: str, password: str) -> None:
        monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", username)
        monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", password)
    return switch


def denied(call) -> bool:
    from mlflow.exceptions import MlflowException

    try:
        call()
    except MlflowException as exc:
        return exc.error_code == "PERMISSION_DENIED"
    return False


def status_as(url: str, experiment_id: str, username: str, password: str) -> int:
    import requests

    return requests.get(f"{url}/api/2.0/mlflow/experiments/get",
                        params={"experiment_id": experiment_id},
                        auth=(username, password), timeout=10).status_code


def test_the_job_runs_the_shipped_script_with_no_secret_on_its_command_line():
    pod = bootstrap_job()
    (container,) = pod["containers"]
    script = (MLFLOW_CHART / "files" / "auth-bootstrap.py").read_text()
    assert container["command"] == ["python", "-c"] and container["args"] == [script]
    env = {e["name"]: e.get("value") for e in container["env"]}
    users = json.loads(env["BOOTSTRAP_USERS"])
    assert users == [{"username": SPARK_USER, "permission": MLFLOW["auth_spark_permission"],
                      "passwordFile": f"/etc/mlflow/auth/{MLFLOW['auth_spark_password_key']}"}]
    from fraudops.model import tracking

    assert (env["BOOTSTRAP_EXPERIMENT"], env["BOOTSTRAP_MODEL"]) == (
        tracking.EXPERIMENT, tracking.MODEL_NAME)


def test_spark_account_logs_registers_and_moves_champion(bootstrapped, as_user):
    import mlflow
    import mlflow.pyfunc
    from mlflow import MlflowClient

    from fraudops.model import registry, tracking

    as_user(SPARK_USER, bootstrapped.spark_password)
    tracking.setup(bootstrapped.url)
    experiment = mlflow.get_experiment_by_name(tracking.EXPERIMENT)
    with tracking.start_step_run("train", "manual__auth-test", "train-auth-test") as run:
        mlflow.log_metric("average_precision", 0.5)
        tracking.log_json({"ok": True}, "summary.json")  # through the artifact proxy

        class Model(mlflow.pyfunc.PythonModel):
            def predict(self, context, model_input):
                return model_input

        logged = mlflow.pyfunc.log_model(name="model", python_model=Model(),
                                         pip_requirements=["mlflow"])
    assert run.info.experiment_id == experiment.experiment_id
    version = mlflow.register_model(logged.model_uri, tracking.MODEL_NAME).version
    client = MlflowClient(bootstrapped.url)
    decision = registry.Decision(True, "first_champion", "test: the gates pass")
    record = registry.record_decision(client, tracking.MODEL_NAME, str(version), decision,
                                      "manual__auth-test", None, run.info.run_id)
    registry.apply_record(client, tracking.MODEL_NAME, record)
    assert registry.alias_version(client, tracking.MODEL_NAME, registry.CHAMPION) == str(version)
    assert client.get_model_version_by_alias(
        tracking.MODEL_NAME, registry.CHAMPION).version == str(version)
    assert tracking.runs_of_pipeline_run("train", "manual__auth-test")


def test_spark_account_cannot_administer_or_delete(bootstrapped, as_user):
    from mlflow import MlflowClient
    from mlflow.server import get_app_client

    from fraudops.model import tracking

    as_user(MLFLOW["auth_admin"], bootstrapped.admin_password)
    admin = MlflowClient(bootstrapped.url)
    experiment_id = admin.get_experiment_by_name(tracking.EXPERIMENT).experiment_id
    other_id = admin.create_experiment(f"someone-else-{secrets.token_hex(3)}")

    as_user(SPARK_USER, bootstrapped.spark_password)
    client = MlflowClient(bootstrapped.url)
    auth = get_app_client("basic-auth", tracking_uri=bootstrapped.url)
    assert denied(lambda: auth.create_user("intruder", secrets.token_urlsafe(16)))
    assert denied(lambda: auth.update_user_admin(SPARK_USER, True))
    assert denied(lambda: auth.update_user_password(MLFLOW["auth_admin"], "x" * 20))
    assert denied(lambda: auth.update_experiment_permission(experiment_id, SPARK_USER, "MANAGE"))
    assert denied(lambda: auth.update_registered_model_permission(
        tracking.MODEL_NAME, SPARK_USER, "MANAGE"))
    assert denied(lambda: auth.create_experiment_permission(other_id, SPARK_USER, "EDIT"))
    assert denied(lambda: client.delete_experiment(experiment_id))
    assert denied(lambda: client.delete_registered_model(tracking.MODEL_NAME))
    # default_permission: nothing on what it was not granted.
    assert denied(lambda: client.get_experiment(other_id))

    as_user(MLFLOW["auth_admin"], bootstrapped.admin_password)
    assert admin.get_experiment(experiment_id).lifecycle_stage == "active"
    assert get_app_client("basic-auth", tracking_uri=bootstrapped.url).get_user(
        SPARK_USER).is_admin is False


def test_a_second_run_changes_nothing_and_rotates_the_password(bootstrapped, as_user):
    from mlflow import MlflowClient
    from mlflow.server import get_app_client

    from fraudops.model import tracking

    as_user(MLFLOW["auth_admin"], bootstrapped.admin_password)
    admin = MlflowClient(bootstrapped.url)
    experiments = [e.experiment_id for e in admin.search_experiments()]
    experiment_id = admin.get_experiment_by_name(tracking.EXPERIMENT).experiment_id
    auth = get_app_client("basic-auth", tracking_uri=bootstrapped.url)
    # A grant someone widened by hand is set back to the configured one.
    auth.update_registered_model_permission(tracking.MODEL_NAME, SPARK_USER, "MANAGE")

    old_password = bootstrapped.spark_password
    bootstrapped.spark_password = bootstrapped.secret[MLFLOW["auth_spark_password_key"]] = (
        secrets.token_urlsafe(24))
    run_bootstrap(bootstrapped)
    run_bootstrap(bootstrapped)

    assert [e.experiment_id for e in admin.search_experiments()] == experiments
    assert auth.get_experiment_permission(experiment_id, SPARK_USER).permission == (
        MLFLOW["auth_spark_permission"])
    assert auth.get_registered_model_permission(tracking.MODEL_NAME, SPARK_USER).permission == (
        MLFLOW["auth_spark_permission"])
    assert status_as(bootstrapped.url, experiment_id, SPARK_USER, old_password) == 401
    assert status_as(bootstrapped.url, experiment_id, SPARK_USER,
                     bootstrapped.spark_password) == 200
    as_user(SPARK_USER, bootstrapped.spark_password)
    assert MlflowClient(bootstrapped.url).get_experiment(experiment_id).name == tracking.EXPERIMENT
