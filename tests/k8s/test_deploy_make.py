"""make/deploy.mk against fake kubectl and helm on PATH that record their calls: `make deploy
OVERLAY=dev` refuses a context that is not a local cluster (it labels every node and ships fake
credentials) unless ALLOW_REMOTE_CONTEXT=1; the yandex deploy installs External Secrets Operator
first; the port-forward targets say how to log in."""

from __future__ import annotations

import os
import stat
import subprocess

import pytest

from fraudops.core.platform import platform
from tests.k8s.manifests import REPO

FAKE = """#!/bin/sh
echo "$*" >> "$FAKE_LOG_DIR/{name}.calls"
echo "{name} $*" >> "$FAKE_LOG_DIR/all.calls"
case "$*" in
  "config current-context") echo "$FAKE_CONTEXT" ;;
  "kustomize "*) echo "apiVersion: v1" ;;
  *" -f -") cat > /dev/null ;;
esac
exit 0
"""


@pytest.fixture
def fakes(tmp_path):
    bin_dir, log_dir = tmp_path / "bin", tmp_path / "log"
    bin_dir.mkdir()
    log_dir.mkdir()
    for name in ("kubectl", "helm", "docker"):
        path = bin_dir / name
        path.write_text(FAKE.format(name=name))
        path.chmod(path.stat().st_mode | stat.S_IXUSR)
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
           "FAKE_LOG_DIR": str(log_dir)}
    return env, log_dir


def make(env, *args):
    # -o: never rebuild the shared virtualenv from a test.
    return subprocess.run(
        ["make", "--no-print-directory", "-o", ".venv/.synced", *args,
         "GIT_REPO_URL=https://example.org/fraudops.git", "REGISTRY=cr.yandex/crp0", "TAG=abc"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=120, check=False)


def calls(log_dir, name):
    path = log_dir / f"{name}.calls"
    return path.read_text().splitlines() if path.exists() else []


@pytest.mark.parametrize("context", ["kind-fraudops", "k3d-dev", "minikube", "docker-desktop",
                                     "rancher-desktop"])
def test_dev_deploys_to_a_local_cluster(fakes, context):
    env, log_dir = fakes
    result = make({**env, "FAKE_CONTEXT": context}, "deploy", "OVERLAY=dev")
    assert result.returncode == 0, result.stderr
    assert any(call.startswith("label nodes --all") for call in calls(log_dir, "kubectl"))
    assert not any("external-secrets" in call for call in calls(log_dir, "helm"))


@pytest.mark.parametrize("context", ["fraudops", "yc-prod", "kind", "arn:aws:eks:cluster/kind-x"])
def test_dev_refuses_any_other_context(fakes, context):
    env, log_dir = fakes
    result = make({**env, "FAKE_CONTEXT": context}, "deploy", "OVERLAY=dev")
    assert result.returncode != 0
    assert "not a local cluster" in result.stderr and "ALLOW_REMOTE_CONTEXT=1" in result.stderr
    assert calls(log_dir, "kubectl") == ["config current-context"]
    assert calls(log_dir, "helm") == []


def test_dev_on_a_remote_context_only_when_asked(fakes):
    env, log_dir = fakes
    result = make({**env, "FAKE_CONTEXT": "fraudops"}, "deploy", "OVERLAY=dev",
                  "ALLOW_REMOTE_CONTEXT=1")
    assert result.returncode == 0, result.stderr
    assert any(call.startswith("label nodes --all") for call in calls(log_dir, "kubectl"))


def test_yandex_installs_external_secrets_before_the_overlay(fakes):
    env, log_dir = fakes
    result = make({**env, "FAKE_CONTEXT": "fraudops"}, "deploy")
    assert result.returncode == 0, result.stderr
    helm = calls(log_dir, "helm")
    install = next(i for i, call in enumerate(helm) if call.startswith("upgrade --install external-secrets"))
    assert f"--namespace {platform()['external_secrets']['namespace']}" in helm[install]
    assert "--version " in helm[install]
    kubectl = calls(log_dir, "kubectl")
    assert any(call.startswith("kustomize k8s/overlays/yandex") for call in kubectl)
    assert not any(call.startswith("label nodes") for call in kubectl)
    # The operator (and its CRDs) before the overlay's ExternalSecrets.
    every = calls(log_dir, "all")
    assert every.index(f"helm {helm[install]}") < next(
        i for i, call in enumerate(every) if call.startswith("kubectl kustomize"))


def test_deploy_runs_the_spark_history_server_on_the_deployed_spark_image(fakes):
    env, log_dir = fakes
    result = make({**env, "FAKE_CONTEXT": "fraudops"}, "deploy")
    assert result.returncode == 0, result.stderr
    history = platform()["spark_history"]["service"]
    image = f"cr.yandex/crp0/{platform()['images']['spark']}:abc"
    kubectl = calls(log_dir, "kubectl")
    (set_image,) = [call for call in kubectl if call.startswith(
        f"--namespace {platform()['namespaces']['platform']} set image")]
    assert set_image.endswith(f"deployment/{history} {history}={image}")
    # after the overlay is applied, with the image the ConfigMap hands the SparkApplications
    patch = next(i for i, call in enumerate(kubectl) if "patch configmap" in call)
    assert f'"spark_image": "{image}"' in kubectl[patch]
    assert kubectl.index(set_image) > patch


def test_port_forward_spark_history(fakes):
    env, log_dir = fakes
    result = make({**env, "FAKE_CONTEXT": "kind-x"}, "port-forward-spark-history")
    assert result.returncode == 0, result.stderr
    history = platform()["spark_history"]
    port = history["port"]
    assert calls(log_dir, "kubectl") == [
        f"--namespace {platform()['namespaces']['platform']} port-forward "
        f"service/{history['service']} {port}:{port}"]
    assert f"http://localhost:{port}" in result.stdout and "/history/" in result.stdout


@pytest.mark.parametrize(("target", "says"), [
    ("port-forward-airflow", "log in"), ("port-forward-mlflow", "log in")])
def test_port_forward_says_how_to_log_in(fakes, target, says):
    env, log_dir = fakes
    result = make({**env, "FAKE_CONTEXT": "kind-x"}, target)
    assert result.returncode == 0, result.stderr
    assert says in result.stdout
    if target.endswith("mlflow"):
        assert f"user {platform()['mlflow']['auth_admin']}" in result.stdout
        # The admin's password is in the server's basic_auth.ini; secrets.mlflow_auth holds
        # the Spark steps' account.
        assert (f"yc lockbox payload get --name {platform()['secrets']['mlflow_auth_server']} "
                "--key basic_auth.ini") in result.stdout
        assert f"--name {platform()['secrets']['mlflow_auth']} " not in result.stdout
