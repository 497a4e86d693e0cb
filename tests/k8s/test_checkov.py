"""checkov over what we deploy and build: the rendered overlays, the rendered MLflow chart and the
three Dockerfiles. Nothing may fail; every skip carries its reason inline (a `checkov.io/skipN`
annotation on the object, a `# checkov:skip=` comment in the Dockerfile)."""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest
import yaml

from fraudops.core.platform import platform
from tests.k8s.manifests import (
    K8S,
    MLFLOW_CHART,
    OVERLAYS,
    REPO,
    kustomize_text,
    objects,
    render_chart,
)

CHECKOV = REPO / "tools" / "checkov" / ".venv" / "bin" / "checkov"
pytestmark = pytest.mark.skipif(
    not CHECKOV.exists(), reason="checkov is not installed (make setup creates tools/checkov/.venv)"
)
NAMES = platform()
# Checks that must have run and passed: the hardening this code exists for.
REQUIRED_PASSES = {
    "kubernetes": {
        "CKV_K8S_20": "no privilege escalation",
        "CKV_K8S_22": "read-only root filesystem",
        "CKV_K8S_23": "no root containers",
        "CKV_K8S_28": "NET_RAW dropped",
        "CKV_K8S_37": "capabilities dropped",
        "CKV_K8S_13": "memory limits",
        "CKV_K8S_8": "liveness probes",
        "CKV_K8S_9": "readiness probes",
        "CKV_K8S_38": "service account tokens only where needed",
    },
    "dockerfile": {
        "CKV_DOCKER_3": "a non-root user",
        "CKV_DOCKER_2": "a HEALTHCHECK decision",
    },
}


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    root = tmp_path_factory.mktemp("checkov")
    for overlay in OVERLAYS:
        (root / f"overlay-{overlay}.yaml").write_text(kustomize_text(K8S / "overlays" / overlay))
    namespace = NAMES["namespaces"]["platform"]
    for name, values in {
        "defaults": {},
        "exposed": {"ingress": {"enabled": True, "host": "mlflow.example.org",
                                "tls": {"enabled": True, "secretName": "tls"}},
                    "auth": {"enabled": True}},
    }.items():
        rendered = render_chart(MLFLOW_CHART, values, release="mlflow", namespace=namespace)
        (root / f"mlflow-{name}.yaml").write_text(yaml.safe_dump_all(objects(rendered)))
    for image in ("spark", "airflow", "mlflow"):
        (root / image).mkdir()
        shutil.copy(REPO / "images" / image / "Dockerfile", root / image / "Dockerfile")
    result = subprocess.run(
        [str(CHECKOV), "-d", str(root), "--framework", "kubernetes", "dockerfile",
         "--skip-download", "--output", "json"],
        capture_output=True, text=True, timeout=180, check=False,
    )
    assert result.stdout.strip(), result.stderr[-2000:]
    parsed = json.loads(result.stdout)
    reports = {r["check_type"]: r for r in (parsed if isinstance(parsed, list) else [parsed])}
    assert set(reports) == {"kubernetes", "dockerfile"}, reports.keys()
    return reports


@pytest.mark.parametrize("framework", ["kubernetes", "dockerfile"])
def test_no_failed_checks(report, framework):
    results = report[framework]
    failed = [(c["check_id"], c["resource"], c["file_path"]) for c in results["results"]["failed_checks"]]
    assert failed == []
    assert results["summary"]["parsing_errors"] == 0
    assert results["summary"]["passed"] > 0


@pytest.mark.parametrize("framework", ["kubernetes", "dockerfile"])
def test_every_skip_has_a_reason(report, framework):
    for check in report[framework]["results"]["skipped_checks"]:
        reason = (check.get("check_result") or {}).get("suppress_comment", "").strip()
        assert len(reason) > 30, f"{check['check_id']} on {check['resource']}: explain the skip"


@pytest.mark.parametrize("framework", ["kubernetes", "dockerfile"])
def test_the_checks_that_matter_ran_and_passed(report, framework):
    passed = {c["check_id"] for c in report[framework]["results"]["passed_checks"]}
    missing = {check: why for check, why in REQUIRED_PASSES[framework].items() if check not in passed}
    assert not missing
