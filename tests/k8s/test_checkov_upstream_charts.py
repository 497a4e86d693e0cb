"""checkov over the upstream Airflow and spark-operator charts rendered with our values, where
the pinned chart is in .tools/charts (`make charts-pull`; test_upstream_charts.py says more).

The charts' workloads take no checkov annotations from values, so the findings we keep are in
charts/checkov-skips.yaml with a reason each. Nothing else may fail, and a skip no finding
needs any more fails too, so the file cannot go stale. Each chart is checked with the
NetworkPolicies k8s/base puts in its namespace (they select its pods: CKV2_K8S_6), and with the
release namespace filled in where Helm fills it at install time.
"""

from __future__ import annotations

import pytest
import yaml

from fraudops.core.platform import platform
from tests import checkov
from tests.k8s.manifests import K8S, kustomize_text, objects, render_chart
from tests.k8s.test_upstream_charts import pulled_chart, values
from tests.paths import REPO

pytestmark = checkov.requires_checkov
NAMES = platform()
SKIPS_FILE = REPO / "charts" / "checkov-skips.yaml"
# chart key (charts/versions.yaml) -> release name, namespace, our values files.
RELEASES = {
    "airflow": ("airflow", NAMES["namespaces"]["platform"], ("airflow-values.yaml",)),
    "spark_operator": ("spark-operator", NAMES["namespaces"]["spark_operator"],
                       ("spark-operator-values.yaml",)),
}
CLUSTER_SCOPED = {"ClusterRole", "ClusterRoleBinding", "MutatingWebhookConfiguration",
                  "ValidatingWebhookConfiguration", "CustomResourceDefinition", "PriorityClass",
                  "Namespace", "StorageClass", "PersistentVolume"}
# The hardening our values exist for: it must have run and passed on every chart.
REQUIRED_PASSES = {
    "CKV_K8S_20": "no privilege escalation",
    "CKV_K8S_23": "no root containers",
    "CKV_K8S_28": "NET_RAW dropped",
    "CKV_K8S_37": "all capabilities dropped",
    "CKV_K8S_31": "seccomp RuntimeDefault",
}


def skips() -> dict[str, dict[str, str]]:
    return yaml.safe_load(SKIPS_FILE.read_text()) or {}


def test_every_skip_has_a_reason():
    for chart, checks in skips().items():
        assert chart in RELEASES, f"{SKIPS_FILE.name}: unknown chart {chart}"
        for check, reason in checks.items():
            assert isinstance(reason, str) and len(reason.strip()) > 30, (chart, check)


def rendered_chart(key: str):
    """The target of chart ``key``: the chart rendered with our values, with the NetworkPolicies
    k8s/base puts in its namespace."""
    def build(root):
        release, namespace, value_files = RELEASES[key]
        chart = pulled_chart(key)
        objs = objects(render_chart(chart, values(*value_files), release=release,
                                    namespace=namespace))
        for obj in objs:
            if obj["kind"] not in CLUSTER_SCOPED:
                obj["metadata"].setdefault("namespace", namespace)
        policies = [d for d in yaml.safe_load_all(kustomize_text(K8S / "base")) if d
                    and d.get("kind") == "NetworkPolicy"
                    and d["metadata"].get("namespace") == namespace]
        assert policies, f"k8s/base has no NetworkPolicy in {namespace}"
        (root / f"{release}.yaml").write_text(yaml.safe_dump_all(objs))
        (root / "network-policies.yaml").write_text(yaml.safe_dump_all(policies))
    return build


for _key in RELEASES:
    checkov.target(f"chart-{_key}")(rendered_chart(_key))


@pytest.fixture(params=sorted(RELEASES))
def report(request, checkov_reports):
    key = request.param
    parsed = checkov.report(checkov_reports, f"chart-{key}", "kubernetes")
    return key, parsed


def test_no_unskipped_failure_and_no_stale_skip(report):
    key, parsed = report
    assert parsed["summary"]["parsing_errors"] == 0
    allowed = skips().get(key, {})
    failed = parsed["results"]["failed_checks"]
    unskipped = sorted({(c["check_id"], c["check_name"], c["resource"]) for c in failed
                        if c["check_id"] not in allowed})
    assert unskipped == [], f"fix in our values or justify in {SKIPS_FILE.name}"
    stale = set(allowed) - {c["check_id"] for c in failed}
    assert not stale, f"{SKIPS_FILE.name}: {key} no longer needs {sorted(stale)}"


def test_the_hardening_ran_and_passed(report):
    key, parsed = report
    passed = {c["check_id"] for c in parsed["results"]["passed_checks"]}
    failed = {c["check_id"] for c in parsed["results"]["failed_checks"]}
    missing = {c: why for c, why in REQUIRED_PASSES.items() if c not in passed or c in failed}
    assert not missing, f"{key}: {missing}"
