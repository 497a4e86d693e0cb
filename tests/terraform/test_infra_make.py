"""make/infra.mk: the targets exist and drive terraform and yc as documented (fake binaries)."""

from __future__ import annotations

import os
import stat
import subprocess

import pytest

from fraudops.core.platform import platform
from tests.paths import REPO
from tests.terraform import hcl

TARGETS = ("infra-init", "infra-fmt", "infra-plan", "infra-apply", "infra-destroy", "kubeconfig",
           "infra-secrets")

FAKE_TERRAFORM = """#!/bin/sh
echo "$*" >> "$FAKE_LOG_DIR/terraform.calls"
case "$*" in
  *"output -raw cluster_id") printf cat0123456789abcdef ;;
  *"output -raw cluster_endpoint_type") printf "$FAKE_ENDPOINT" ;;
esac
"""
FAKE_YC = """#!/bin/sh
echo "$*" >> "$FAKE_LOG_DIR/yc.calls"
"""


def make(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(["make", "--no-print-directory", *args], cwd=REPO,
                          capture_output=True, text=True, timeout=60, env=env, check=False)


@pytest.fixture
def fakes(tmp_path):
    bin_dir, log_dir = tmp_path / "bin", tmp_path / "log"
    bin_dir.mkdir()
    log_dir.mkdir()
    for name, text in (("terraform", FAKE_TERRAFORM), ("yc", FAKE_YC)):
        path = bin_dir / name
        path.write_text(text)
        path.chmod(path.stat().st_mode | stat.S_IXUSR)
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
           "FAKE_LOG_DIR": str(log_dir)}
    return env, log_dir


def test_help_lists_every_infra_target():
    result = make("help")
    assert result.returncode == 0, result.stderr
    for target in TARGETS:
        assert f"  {target} " in result.stdout, target


@pytest.mark.parametrize("endpoint", ["external", "internal"])
def test_kubeconfig_asks_yc_for_the_terraform_cluster(fakes, endpoint):
    env, log_dir = fakes
    result = make("kubeconfig", env={**env, "FAKE_ENDPOINT": endpoint})
    assert result.returncode == 0, result.stderr
    (call,) = (log_dir / "yc.calls").read_text().splitlines()
    assert call == (f"managed-kubernetes cluster get-credentials --id cat0123456789abcdef "
                    f"--{endpoint} --context-name {platform()['project']} --force")


@pytest.mark.parametrize(("target", "expected"), [
    ("infra-plan", "-chdir=terraform plan"),
    ("infra-init", "-chdir=terraform init -input=false"),
])
def test_terraform_targets_run_in_the_terraform_folder(fakes, target, expected):
    env, log_dir = fakes
    result = make(target, "LOCAL_STATE=1", env=env)
    assert result.returncode == 0, result.stderr
    assert (log_dir / "terraform.calls").read_text().strip() == expected


def test_init_refuses_local_state_unless_asked():
    assert not (hcl.TERRAFORM_DIR / "backend.tf").exists(), "backend.tf is never committed"
    result = make("infra-init", env={**os.environ, "PATH": "/nonexistent:" + os.environ["PATH"]})
    assert result.returncode != 0
    assert "backend.tf.example" in result.stderr and "LOCAL_STATE=1" in result.stderr


# --- make infra-destroy: stops the spend, keeps the data --------------------------------------

# What holds data or secrets: never a target of the default destroy, nor destroyed with one.
KEPT = ("yandex_storage_bucket.", "yandex_mdb_postgresql_", "yandex_kms_symmetric_key.",
        "yandex_lockbox_secret", "random_password.", "yandex_iam_service_account_static_access_key.")


def destroy_call(fakes, *args: str) -> tuple[subprocess.CompletedProcess, list[str]]:
    env, log_dir = fakes
    result = make("infra-destroy", *args, env=env)
    assert result.returncode == 0, result.stderr
    (call,) = (log_dir / "terraform.calls").read_text().splitlines()
    return result, call.split()


def dependents(addresses: set[str]) -> set[str]:
    """Every resource that references one of ``addresses``, transitively (what -target takes)."""
    found = set(addresses)
    while True:
        more = {r.address for r in hcl.resources() if r.address not in found
                and any(f"{address}." in str(r.body) or f"{address}[" in str(r.body)
                        for address in found)}
        if not more:
            return found
        found |= more


def test_default_destroy_targets_only_what_costs_money_idle(fakes):
    result, call = destroy_call(fakes)
    assert call[:2] == ["-chdir=terraform", "destroy"]
    targets = {arg.removeprefix("-target=") for arg in call[2:] if arg.startswith("-target=")}
    assert targets == {"yandex_kubernetes_cluster.this", "yandex_kubernetes_node_group.system",
                       "yandex_kubernetes_node_group.spark"}
    assert len(targets) == len(call) - 2, "nothing but targets"
    destroyed = dependents(targets)
    assert not [address for address in destroyed if address.startswith(KEPT)]
    # Said before terraform asks for its confirmation.
    assert "will destroy" in result.stdout and "will keep" in result.stdout
    assert result.stdout.index("will keep") < len(result.stdout)
    assert "DESTROY_DATA=1" in result.stdout


def test_destroy_data_is_explicit_and_warns(fakes):
    result, call = destroy_call(fakes, "DESTROY_DATA=1")
    assert call == ["-chdir=terraform", "destroy"]
    assert "EVERYTHING" in result.stdout and "deletion_protection" in result.stdout


@pytest.mark.parametrize(("install", "helm", "waits"), [("helm", True, False),
                                                          ("argocd", False, True)])
def test_infra_secrets_brings_external_secrets_before_its_stores(install, helm, waits):
    # -n: print the recipe only; -o: never rebuild the shared virtualenv from a test.
    result = make("-n", "-o", ".venv/.synced", "infra-secrets",
                  f"EXTERNAL_SECRETS_INSTALL={install}", env=dict(os.environ))
    assert result.returncode == 0, result.stderr
    lines = result.stdout
    script = lines.index("scripts/tf-outputs-to-k8s.sh")
    assert ("upgrade --install external-secrets" in lines[:script]) is helm
    assert ("crd/secretstores.external-secrets.io" in lines[:script]) is waits
    assert "upgrade --install external-secrets" not in lines[script:]
