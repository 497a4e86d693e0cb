"""checkov over the pods every step's SparkApplication makes: checkov does not know the
SparkApplication kind, so each filled application is turned into the driver and executor pods
Spark creates from it (image, service account, security contexts, env, node placement, the
annotations spark-operator copies onto the pods, and the requests and limits Spark computes,
tests.k8s.capacity). Nothing may fail; each skip is an annotation in the SparkApplication
template, with its reason beside it."""

from __future__ import annotations

import pytest
import yaml

from fraudops.core.platform import platform
from fraudops.core.steps import STEPS, RunContext
from fraudops.orchestration import spark_application as sa
from fraudops.orchestration.settings import load_settings
from tests import checkov
from tests.k8s import capacity
from tests.k8s.manifests import K8S, kustomize_text

pytestmark = checkov.requires_checkov
TARGET = "spark-pods"
NAMES = platform()


def service_accounts() -> dict[str, dict]:
    """The ServiceAccounts of the jobs namespace, as the base overlay renders them."""
    docs = [d for d in yaml.safe_load_all(kustomize_text(K8S / "base")) if d]
    return {d["metadata"]["name"]: d for d in docs if d.get("kind") == "ServiceAccount"
            and d["metadata"].get("namespace") == NAMES["namespaces"]["jobs"]}


def pod(app: dict, role: str, accounts: dict[str, dict]) -> dict:
    spec, side = app["spec"], app["spec"][role]
    pods = capacity.spark_pods(app)
    need = pods.driver if role == "driver" else pods.executor
    resources = {"requests": {"cpu": f"{need.cpu}m", "memory": f"{need.memory}Mi"},
                 "limits": {"memory": f"{need.memory_limit}Mi"}}
    if need.cpu_limit:
        resources["limits"]["cpu"] = f"{need.cpu_limit}m"
    account = side["serviceAccount"]
    automount = accounts[account].get("automountServiceAccountToken", True)
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": f"{app['metadata']['name']}-{role}",
                     "namespace": app["metadata"]["namespace"],
                     "labels": side.get("labels", {}),
                     "annotations": side.get("annotations", {})},
        "spec": {
            "serviceAccountName": account,
            "automountServiceAccountToken": automount,
            "securityContext": side["podSecurityContext"],
            "nodeSelector": side["nodeSelector"],
            "tolerations": side["tolerations"],
            "restartPolicy": "Never",
            "containers": [{
                "name": f"spark-kubernetes-{role}",
                "image": spec["image"],
                "imagePullPolicy": spec["imagePullPolicy"],
                "env": side.get("env", []),
                "envFrom": side.get("envFrom", []),
                "securityContext": side["securityContext"],
                "resources": resources,
            }],
        },
    }


@checkov.target(TARGET)
def step_pods(root):
    """The driver and executor pods of every step, with the jobs namespace's NetworkPolicies."""
    with pytest.MonkeyPatch.context() as env:
        env.setenv("FRAUDOPS_BACKEND", "kubernetes")
        env.setenv("FRAUDOPS_SPARK_IMAGE", "cr.yandex/crp123/fraudops-spark:abc1234")
        settings = load_settings()
    ctx = RunContext(ds="2018-05-01", run_id="scheduled__2018-05-01T00:00:00+00:00",
                     lake_root=settings.lake_root)
    accounts = service_accounts()
    pods = [pod(sa.build_spark_application(step, ctx, settings), role, accounts)
            for step in STEPS.values() for role in ("driver", "executor")]
    (root / "spark-pods.yaml").write_text(yaml.safe_dump_all(pods))
    # The jobs namespace's NetworkPolicies, which select these pods (CKV2_K8S_6).
    policies = [d for d in yaml.safe_load_all(kustomize_text(K8S / "base")) if d
                and d.get("kind") == "NetworkPolicy"
                and d["metadata"].get("namespace") == NAMES["namespaces"]["jobs"]]
    assert policies
    (root / "network-policies.yaml").write_text(yaml.safe_dump_all(policies))


@pytest.fixture
def report(checkov_reports):
    return checkov.report(checkov_reports, TARGET, "kubernetes")


def test_every_step_pod_passes_checkov(report):
    parsed = report
    checked = parsed["results"]["passed_checks"] + parsed["results"]["failed_checks"]
    pods = {c["resource"] for c in checked if c["resource"].startswith("Pod.")
            and c["resource"].endswith(("-driver", "-executor"))}
    assert len(pods) == 2 * len(STEPS), sorted(pods)
    failed = [(c["check_id"], c["check_name"], c["resource"])
              for c in parsed["results"]["failed_checks"]]
    assert failed == []
    passed = {c["check_id"] for c in parsed["results"]["passed_checks"]}
    # The hardening the template exists for ran and passed.
    assert {"CKV_K8S_20", "CKV_K8S_23", "CKV_K8S_28", "CKV_K8S_37", "CKV_K8S_13"} <= passed


def test_every_skip_has_a_reason(report):
    parsed = report
    skipped = parsed["results"]["skipped_checks"]
    assert all((c.get("check_result") or {}).get("suppress_comment", "").strip()
               for c in skipped), [c["check_id"] for c in skipped]
