"""k8s/argocd: the root Application and what it syncs (the yandex overlay and the Applications of
the three charts), with every moving part copied in by kustomize from one place."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys

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
    assert set(applications(apps)) == {"external-secrets", "spark-operator", "mlflow", "airflow"}
    assert not [o for o in apps if "config.kubernetes.io/local-config" in
                o["metadata"].get("annotations", {})], "kustomize-only ConfigMaps must not be applied"


def test_every_application_syncs_automatically_into_its_namespace(apps):
    destinations = {"spark-operator": NS["spark_operator"], "mlflow": NS["platform"],
                    "airflow": NS["platform"],
                    "external-secrets": NAMES["external_secrets"]["namespace"]}
    waves = []
    for name, app in applications(apps).items():
        spec = app["spec"]
        assert spec["destination"] == {"server": "https://kubernetes.default.svc",
                                       "namespace": destinations[name]}
        assert spec["syncPolicy"]["automated"] == {"prune": True, "selfHeal": True}
        assert "resources-finalizer.argocd.argoproj.io" in app["metadata"]["finalizers"]
        waves.append((int(app["metadata"]["annotations"]["argocd.argoproj.io/sync-wave"]), name))
    # The Secrets' operator, then spark-operator's CRDs, then MLflow, then Airflow (whose DAG
    # needs both).
    assert [name for _, name in sorted(waves)] == [
        "external-secrets", "spark-operator", "mlflow", "airflow"]


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


def test_external_secrets_chart_comes_from_versions_yaml(apps):
    (chart,) = sources(applications(apps)["external-secrets"])
    assert (chart["repoURL"], chart["chart"], chart["targetRevision"]) == (
        VERSIONS["external_secrets_repo"], VERSIONS["external_secrets_chart"],
        VERSIONS["external_secrets_version"])
    assert chart["helm"]["valuesObject"] == {"installCRDs": True}


def test_mlflow_chart_comes_from_this_repo(apps):
    (source,) = sources(applications(apps)["mlflow"])
    assert (source["repoURL"], source["targetRevision"]) == (SETTINGS["repo_url"], SETTINGS["revision"])
    assert (REPO / source["path"] / "Chart.yaml").is_file()
    assert source["helm"]["releaseName"] == NAMES["mlflow"]["service"]


def test_git_sync_clones_the_repository_argo_cd_deploys_at_the_pinned_revision(apps):
    """The Application sets the repository only: the revision stays the one the deploy workflow
    pins in charts/airflow-values.yaml (valuesObject would win over it)."""
    values = sources(applications(apps)["airflow"])[0]["helm"]["valuesObject"]
    assert values["dags"]["gitSync"] == {"repo": SETTINGS["repo_url"]}


COMMIT = "a1b2c3d4e5f6" + "0123456789abcdef0123456789abcdef"[:28]


def git_sync_ref(git_sync: dict) -> str:
    """The revision git-sync 4 checks out from what the Airflow chart passes it: GITSYNC_REF
    (`ref`) and the deprecated GIT_SYNC_BRANCH and GIT_SYNC_REV, which it turns into the ref
    (cmd/git-sync/main.go), refusing a branch with a rev other than HEAD."""
    branch, rev, ref = (str(git_sync.get(key, "")) for key in ("branch", "rev", "ref"))
    if branch and rev in ("", "HEAD"):
        return branch
    if rev and not branch:
        return rev
    if branch and rev:
        raise ValueError(f"git-sync refuses branch {branch!r} with rev {rev!r}")
    return ref


def airflow_values(root=REPO) -> dict:
    return yaml.safe_load((root / "charts" / "airflow-values.yaml").read_text())


def test_git_sync_follows_main_until_the_first_deploy():
    assert git_sync_ref(airflow_values()["dags"]["gitSync"]) == "main"


def test_make_deploy_follows_its_branch():
    """make deploy's --set flags over the values, whatever revision they pin."""
    text = (REPO / "make" / "deploy.mk").read_text()
    flags = dict(re.findall(r"--set dags\.gitSync\.(\w+)=(\S+)", text))
    assert flags.keys() >= {"branch", "rev", "ref"}, flags
    for pinned in (airflow_values()["dags"]["gitSync"], {"branch": "", "rev": COMMIT, "ref": COMMIT}):
        merged = {**pinned, **{k: v.replace("$(GIT_BRANCH)", "feature") for k, v in flags.items()}}
        assert git_sync_ref(merged) == "feature"


def test_the_git_sync_emulation_refuses_what_git_sync_refuses():
    with pytest.raises(ValueError):
        git_sync_ref({"branch": "main", "rev": COMMIT, "ref": COMMIT})
    assert git_sync_ref({"branch": "", "rev": "HEAD", "ref": "main"}) == "HEAD"


@pytest.fixture
def bumped_copy(tmp_path):
    """A copy of k8s/ and charts/ after the deploy workflow's scripts/pin_deploy.py."""
    for folder in ("k8s", "charts"):
        shutil.copytree(REPO / folder, tmp_path / folder)
    subprocess.run([sys.executable, str(REPO / "scripts" / "pin_deploy.py"), "--root",
                    str(tmp_path), "cr.yandex/crp0test", COMMIT], check=True, timeout=60)
    result = subprocess.run([require_kubectl(), "kustomize", str(tmp_path / "k8s/argocd/apps")],
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    return tmp_path, load_all(result.stdout)


def test_the_deploy_commit_pins_git_sync_to_the_commit_of_its_images(bumped_copy):
    root, _ = bumped_copy
    git_sync = airflow_values(root)["dags"]["gitSync"]
    assert git_sync_ref(git_sync) == COMMIT
    assert (git_sync["rev"], git_sync["ref"], git_sync["branch"]) == (COMMIT, COMMIT, "")
    # Nothing else in the values moved, and the comments stay.
    before, after = airflow_values(), airflow_values(root)
    for values in (before, after):
        for key in ("branch", "rev", "ref"):
            values["dags"]["gitSync"].pop(key)
    assert before == after
    original = (REPO / "charts" / "airflow-values.yaml").read_text()
    pinned = (root / "charts" / "airflow-values.yaml").read_text()
    assert [line for line in original.splitlines() if line.lstrip().startswith("#")] == [
        line for line in pinned.splitlines() if line.lstrip().startswith("#")]


def test_the_pin_refuses_a_short_commit(tmp_path):
    result = subprocess.run([sys.executable, str(REPO / "scripts" / "pin_deploy.py"), "--root",
                             str(tmp_path), "cr.yandex/crp0test", COMMIT[:12]],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode != 0 and "40" in result.stderr


def test_the_image_tag_ci_commits_reaches_every_release(bumped_copy):
    _, bumped_copy = bumped_copy
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


# --- the Application health check: what makes the sync waves between Applications wait ---------

HEALTH_KEY = "resource.customizations.health.argoproj.io_Application"


def argocd_cm() -> dict:
    return one(kustomize(K8S / "argocd"), "ConfigMap", "argocd-cm")


def test_sync_waves_between_applications_come_with_the_application_health_check(apps):
    waves = {name: int(app["metadata"].get("annotations", {}).get("argocd.argoproj.io/sync-wave", 0))
             for name, app in applications(apps).items()}
    assert waves == {"external-secrets": -1, "spark-operator": 0, "mlflow": 1, "airflow": 2}
    cm = argocd_cm()
    assert cm["metadata"]["namespace"] == "argocd"
    assert cm["metadata"]["labels"]["app.kubernetes.io/part-of"] == "argocd"
    assert set(cm["data"]) == {HEALTH_KEY}, "apply merges only this key into argocd-cm"


def application_health(status: dict | None) -> tuple[str, str]:
    """Run the Lua health check as Argo CD does: the resource as the global ``obj``."""
    lupa = pytest.importorskip("lupa", reason="lupa (PyPI) runs Argo CD's Lua health checks; "
                                              "it is not in the dev group")
    lua = lupa.LuaRuntime(unpack_returned_tuples=True)
    obj = {"apiVersion": "argoproj.io/v1alpha1", "kind": "Application",
           "metadata": {"name": "mlflow"}}
    if status is not None:
        obj["status"] = status
    lua.globals().obj = lua.table_from(obj, recursive=True)
    hs = lua.execute(argocd_cm()["data"][HEALTH_KEY])
    return hs["status"], hs["message"]


@pytest.mark.parametrize("status, expected", [
    (None, ("Progressing", "")),
    ({"sync": {"status": "OutOfSync"}}, ("Progressing", "")),
    ({"health": {"status": "Progressing"}}, ("Progressing", "")),
    ({"health": {"status": "Healthy"}}, ("Healthy", "")),
    ({"health": {"status": "Degraded", "message": "Init:CrashLoopBackOff"}},
     ("Degraded", "Init:CrashLoopBackOff")),
])
def test_an_application_is_as_healthy_as_its_own_health(status, expected):
    assert application_health(status) == expected
