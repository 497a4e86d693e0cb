"""The upstream Airflow and spark-operator charts rendered with our values, when present.

`make charts-pull` (CI runs it first) downloads the pinned versions of charts/versions.yaml into
.tools/charts; machines that reach no chart repository skip these tests with that reason.
"""

from __future__ import annotations

from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from fraudops.core.platform import platform
from tests.k8s.manifests import KUBE_VERSION, deep_merge, objects, render_chart
from tests.paths import REPO

CHART_CACHE = REPO / ".tools" / "charts"
VERSIONS = yaml.safe_load((REPO / "charts" / "versions.yaml").read_text())["data"]
NAMES = platform()


def pulled_chart(key: str) -> Path:
    archive = CHART_CACHE / f"{VERSIONS[f'{key}_chart']}-{VERSIONS[f'{key}_version']}.tgz"
    if not archive.is_file():
        pytest.skip(f"{archive.name} is not in {CHART_CACHE}: `make charts-pull` downloads it "
                    "(needs the chart repositories, which this machine cannot reach)")
    return archive


def values(*names: str) -> dict:
    merged: dict = {}
    for name in names:
        merged = deep_merge(merged, yaml.safe_load((REPO / "charts" / name).read_text()) or {})
    return merged


def assert_valid(objs: list[dict]) -> None:
    errors = []
    for obj in objs:
        try:
            kubernetes_validate.validate(obj, KUBE_VERSION, strict=False)
        except kubernetes_validate.ValidationError as error:
            errors.append(f"{obj['kind']}/{obj['metadata']['name']}: {error.message}")
        except kubernetes_validate.SchemaNotFoundError:
            continue  # a CRD's custom resource: no built-in schema
    assert not errors, errors


@pytest.mark.parametrize("value_files", [("airflow-values.yaml",),
                                         ("airflow-values.yaml", "airflow-values.dev.yaml")])
def test_airflow_chart_renders_with_our_values(value_files):
    rendered = render_chart(pulled_chart("airflow"), values(*value_files), release="airflow",
                            namespace=NAMES["namespaces"]["platform"])
    objs = objects(rendered)
    assert_valid(objs)
    accounts = {o["metadata"]["name"] for o in objs if o["kind"] == "ServiceAccount"}
    assert NAMES["service_accounts"]["airflow_worker"] in accounts
    text = yaml.safe_dump_all(objs)
    assert "FRAUDOPS_BACKEND" in text and NAMES["secrets"]["airflow_db"] in text


def test_spark_operator_chart_renders_with_our_values():
    rendered = render_chart(pulled_chart("spark_operator"), values("spark-operator-values.yaml"),
                            release="spark-operator",
                            namespace=NAMES["namespaces"]["spark_operator"])
    objs = objects(rendered)
    assert_valid(objs)
    jobs = NAMES["namespaces"]["jobs"]
    (controller,) = [o for o in objs if o["kind"] == "Deployment"
                     and "controller" in o["metadata"]["name"]]
    args = " ".join(arg for c in controller["spec"]["template"]["spec"]["containers"]
                    for arg in c.get("args", []))
    assert f"--namespaces={jobs}" in args, args
    # The drivers' ServiceAccount and Role come from k8s/base, not from the chart.
    assert not [o for o in objs if o["kind"] == "ServiceAccount"
                and o["metadata"]["name"] == NAMES["service_accounts"]["spark_driver"]]


def test_git_sync_checks_out_the_pinned_commit_in_the_rendered_chart(tmp_path):
    """scripts/pin_deploy.py's values through the real chart: every git-sync container's
    environment resolves, as git-sync 4 reads it, to the pinned commit."""
    import shutil
    import subprocess
    import sys

    from tests.k8s.test_argocd import COMMIT, git_sync_ref

    chart = pulled_chart("airflow")
    shutil.copytree(REPO / "charts", tmp_path / "charts")
    shutil.copytree(REPO / "k8s", tmp_path / "k8s")
    subprocess.run([sys.executable, str(REPO / "scripts" / "pin_deploy.py"), "--root",
                    str(tmp_path), "cr.yandex/crp0test", COMMIT], check=True, timeout=60)
    pinned = yaml.safe_load((tmp_path / "charts" / "airflow-values.yaml").read_text())
    objs = objects(render_chart(chart, pinned, release="airflow",
                                namespace=NAMES["namespaces"]["platform"]))
    seen = 0
    for obj in objs:
        spec = obj.get("spec", {}).get("template", {}).get("spec", {})
        for container in spec.get("containers", []) + spec.get("initContainers", []):
            if not container["name"].startswith("git-sync"):
                continue
            env = {e["name"]: e.get("value", "") for e in container.get("env", [])}
            seen += 1
            assert git_sync_ref({"branch": env.get("GIT_SYNC_BRANCH", ""),
                                 "rev": env.get("GIT_SYNC_REV", ""),
                                 "ref": env.get("GITSYNC_REF", "")}) == COMMIT, env
    assert seen, "no git-sync container rendered"


def test_airflow_pods_have_memory_limits_and_tokens_only_where_used():
    """Every container, sidecars and the migration Job included, has a memory limit; the
    components that never call the Kubernetes API get no token (the chart sets it on their
    ServiceAccounts). The scheduler creates the task pods and the API server reads their logs."""
    from tests.k8s.manifests import containers, pod_specs

    objs = objects(render_chart(pulled_chart("airflow"), values("airflow-values.yaml"),
                                release="airflow", namespace=NAMES["namespaces"]["platform"]))
    unlimited = [f"{name}/{c['name']}" for name, pod in pod_specs(objs) for c in containers(pod)
                 if not (c.get("resources") or {}).get("limits", {}).get("memory")]
    assert unlimited == []
    tokens = {o["metadata"]["name"]: o.get("automountServiceAccountToken", True)
              for o in objs if o["kind"] == "ServiceAccount"}
    for account in ("airflow-dag-processor", "airflow-triggerer", "airflow-migrate-database-job"):
        assert tokens[account] is False, account
