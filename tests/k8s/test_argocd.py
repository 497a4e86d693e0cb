"""k8s/argocd: the root Application and what it syncs (the yandex overlay and the Applications of
the three charts), with every moving part copied in by kustomize from one place."""

from __future__ import annotations

import shutil
import subprocess

import pytest
import yaml

from fraudops.core.platform import platform
from tests.k8s.manifests import (
    CHARTS,
    K8S,
    REPO,
    by_kind,
    kustomize,
    load_all,
    one,
    require_kubectl,
)

NAMES = platform()
NS = NAMES["namespaces"]
VERSIONS = yaml.safe_load((CHARTS / "versions.yaml").read_text())["data"]
SETTINGS = yaml.safe_load((K8S / "argocd" / "settings" / "settings.yaml").read_text())["data"]


@pytest.fixture(scope="module")
def apps():
    return kustomize(K8S / "argocd" / "apps")


def applications(objs):
    return {a["metadata"]["name"]: a for a in by_kind(objs, "Application")}


def sources(app):
    return app["spec"].get("sources") or [app["spec"]["source"]]


def test_root_application_syncs_the_apps_folder():
    (root,) = by_kind(kustomize(K8S / "argocd"), "Application")
    source = root["spec"]["source"]
    assert source["path"] == "k8s/argocd/apps" and (REPO / source["path"]).is_dir()
    assert (source["repoURL"], source["targetRevision"]) == (SETTINGS["repo_url"], SETTINGS["revision"])
    assert root["spec"]["syncPolicy"]["automated"] == {"prune": True, "selfHeal": True}


def test_apps_hold_the_yandex_overlay_and_the_three_charts(apps):
    overlay = kustomize(K8S / "overlays" / "yandex")
    non_apps = [o for o in apps if o["kind"] != "Application"]
    assert sorted(non_apps, key=repr) == sorted(overlay, key=repr)
    assert set(applications(apps)) == {"spark-operator", "mlflow", "airflow"}
    assert not [o for o in apps if "config.kubernetes.io/local-config" in
                o["metadata"].get("annotations", {})], "kustomize-only ConfigMaps must not be applied"


def test_every_application_syncs_automatically_into_its_namespace(apps):
    destinations = {"spark-operator": NS["spark_operator"], "mlflow": NS["platform"],
                    "airflow": NS["platform"]}
    waves = []
    for name, app in applications(apps).items():
        spec = app["spec"]
        assert spec["destination"] == {"server": "https://kubernetes.default.svc",
                                       "namespace": destinations[name]}
        assert spec["syncPolicy"]["automated"] == {"prune": True, "selfHeal": True}
        assert "resources-finalizer.argocd.argoproj.io" in app["metadata"]["finalizers"]
        waves.append((int(app["metadata"]["annotations"]["argocd.argoproj.io/sync-wave"]), name))
    # The operator's CRDs, then MLflow, then Airflow (whose DAG needs both).
    assert [name for _, name in sorted(waves)] == ["spark-operator", "mlflow", "airflow"]


@pytest.mark.parametrize("name, key", [("airflow", "airflow"), ("spark-operator", "spark_operator")])
def test_upstream_charts_come_from_versions_yaml_with_values_from_this_repo(apps, name, key):
    chart, values_ref = sources(applications(apps)[name])
    assert (chart["repoURL"], chart["chart"], chart["targetRevision"]) == (
        VERSIONS[f"{key}_repo"], VERSIONS[f"{key}_chart"], VERSIONS[f"{key}_version"])
    assert chart["helm"]["releaseName"] == name
    (value_file,) = chart["helm"]["valueFiles"]
    assert value_file.startswith("$values/") and (REPO / value_file.removeprefix("$values/")).is_file()
    assert values_ref == {"repoURL": SETTINGS["repo_url"], "targetRevision": SETTINGS["revision"],
                          "ref": "values"}


def test_mlflow_chart_comes_from_this_repo(apps):
    (source,) = sources(applications(apps)["mlflow"])
    assert (source["repoURL"], source["targetRevision"]) == (SETTINGS["repo_url"], SETTINGS["revision"])
    assert (REPO / source["path"] / "Chart.yaml").is_file()
    assert source["helm"]["releaseName"] == NAMES["mlflow"]["service"]


def test_git_sync_follows_the_repository_argo_cd_deploys(apps):
    values = sources(applications(apps)["airflow"])[0]["helm"]["valuesObject"]
    assert values["dags"]["gitSync"] == {"repo": SETTINGS["repo_url"], "branch": SETTINGS["revision"]}


@pytest.fixture
def bumped_copy(tmp_path):
    """A copy of k8s/ and charts/ after CI's `kustomize edit set image` (edited as YAML here)."""
    for folder in ("k8s", "charts"):
        shutil.copytree(REPO / folder, tmp_path / folder)
    kustomization = tmp_path / "k8s" / "overlays" / "yandex" / "kustomization.yaml"
    document = yaml.safe_load(kustomization.read_text())
    for image in document["images"]:
        image.update(newName=f"cr.yandex/crp0test/{image['name']}", newTag="a1b2c3d4e5f6")
    kustomization.write_text(yaml.safe_dump(document))
    result = subprocess.run([require_kubectl(), "kustomize", str(tmp_path / "k8s/argocd/apps")],
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    return load_all(result.stdout)


def test_the_image_tag_ci_commits_reaches_every_release(bumped_copy):
    images = NAMES["images"]
    registry = "cr.yandex/crp0test"
    environment = one(bumped_copy, "ConfigMap", "fraudops-environment")["data"]
    assert environment["spark_image"] == f"{registry}/{images['spark']}:a1b2c3d4e5f6"
    apps = applications(bumped_copy)
    airflow = sources(apps["airflow"])[0]["helm"]["valuesObject"]
    assert airflow["images"]["airflow"] == {"repository": f"{registry}/{images['airflow']}",
                                            "tag": "a1b2c3d4e5f6"}
    assert (airflow["defaultAirflowRepository"], airflow["defaultAirflowTag"]) == (
        f"{registry}/{images['airflow']}", "a1b2c3d4e5f6")
    mlflow = sources(apps["mlflow"])[0]["helm"]["valuesObject"]
    assert mlflow["image"] == {"repository": f"{registry}/{images['mlflow']}", "tag": "a1b2c3d4e5f6"}
