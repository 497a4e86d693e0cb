"""make/infra.mk: the targets exist and drive terraform and yc as documented (fake binaries)."""

from __future__ import annotations

import os
import stat
import subprocess

import pytest

from fraudops.core.platform import platform
from tests.paths import REPO

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
    result = make(target, env=env)
    assert result.returncode == 0, result.stderr
    assert (log_dir / "terraform.calls").read_text().strip() == expected
