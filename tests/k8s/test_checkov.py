"""checkov over what we deploy and build: the rendered overlays, the rendered MLflow chart and the
three Dockerfiles. Nothing may fail; every skip carries its reason inline (a `checkov.io/skipN`
annotation on the object, a `# checkov:skip=` comment in the Dockerfile)."""

from __future__ import annotations

import shutil

import pytest
import yaml

from fraudops.core.platform import platform
from tests import checkov
from tests.k8s.manifests import (
    K8S,
    MLFLOW_CHART,
    OVERLAYS,
    REPO,
    kustomize_text,
    objects,
    render_chart,
)

pytestmark = checkov.requires_checkov
TARGET = "deploy"
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


@checkov.target(TARGET)
def deployed_and_built(root):
    """The rendered overlays and MLflow chart, and the three Dockerfiles."""
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


@pytest.fixture
def report(checkov_reports):
    return {framework: checkov.report(checkov_reports, TARGET, framework)
            for framework in ("kubernetes", "dockerfile")}


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
