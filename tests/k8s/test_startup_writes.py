"""Every container we harden in a chart we do not own can write what it writes at start.

Pod Security admits a pod whose security context leaves its program nowhere to write: the failure
only shows at run time (git-sync under a read-only root and the pod's uid stops at "FATAL: can't
add user" and leaves every Airflow pod in Init:CrashLoopBackOff). charts/startup-writes.yaml says,
per image, what it writes at start and what its image lets which user write; this test puts each
path through the container's effective security context and mounts:

- from our values, on every run: the pod specs the charts build from them, by the charts'
  documented precedence (Airflow chart 1.18.0 ``localContainerSecurityContext``: the
  ``securityContexts.container`` of a component replaces its default ``runAsUser`` wholesale);
- from the rendered upstream charts, where `make charts-pull` put them in .tools/charts.
"""

from __future__ import annotations

import re
import stat
from pathlib import Path

import pytest
import yaml

from fraudops.core.platform import platform
from tests.k8s.manifests import containers, objects, pod_specs, render_chart
from tests.k8s.test_upstream_charts import pulled_chart, values
from tests.paths import REPO

NAMES = platform()
WRITES_FILE = REPO / "charts" / "startup-writes.yaml"
IMAGES = yaml.safe_load(WRITES_FILE.read_text())["images"]
WRITABLE_VOLUMES = {"emptyDir", "persistentVolumeClaim", "ephemeral"}
AIRFLOW_VALUE_SETS = [("airflow-values.yaml",), ("airflow-values.yaml", "airflow-values.dev.yaml")]


# The check ------------------------------------------------------------------------------------

def image_of(container: dict) -> tuple[str, dict] | None:
    for name, facts in IMAGES.items():
        if facts["match"] in container.get("image", ""):
            return name, facts
    return None


def identity(pod: dict, container: dict, facts: dict) -> tuple[int, set[int], bool]:
    """(uid, groups, read-only root) the container's process runs with."""
    pod_sc = pod.get("securityContext") or {}
    sc = container.get("securityContext") or {}
    uid = sc.get("runAsUser", pod_sc.get("runAsUser", facts["user"][0]))
    default_gid = facts["user"][1] if uid == facts["user"][0] else 0
    gid = sc.get("runAsGroup", pod_sc.get("runAsGroup", default_gid))
    groups = {gid, *pod_sc.get("supplementalGroups", [])}
    if "fsGroup" in pod_sc:
        groups.add(pod_sc["fsGroup"])
    return uid, groups, bool(sc.get("readOnlyRootFilesystem", False))


def expand(path: str, env: dict[str, str]) -> str:
    def value(match: re.Match) -> str:
        name = match.group(1)
        assert name in env, f"{path}: ${name} is neither in the image's env nor the container's"
        return env[name]
    return re.sub(r"\$([A-Z_]+)", value, path)


def under(path: str, prefix: str) -> bool:
    prefix = prefix.rstrip("/") or "/"
    return path == prefix or path.startswith(prefix.rstrip("/") + "/")


def writable(path: str, pod: dict, container: dict, facts: dict) -> str | None:
    """None if the container can write ``path`` (a file, or a new entry in a directory), else
    why not."""
    volumes = {v["name"]: v for v in pod.get("volumes", [])}
    mounts = sorted(container.get("volumeMounts", []), key=lambda m: len(m["mountPath"]))
    covering = [m for m in mounts if under(path, m["mountPath"])]
    if covering:
        mount = covering[-1]
        volume = volumes.get(mount["name"], {})
        kinds = set(volume) - {"name"}
        if mount.get("readOnly"):
            return f"{path} is on the read-only mount {mount['mountPath']}"
        if not kinds & WRITABLE_VOLUMES:
            return f"{path} is on {mount['mountPath']}, a {sorted(kinds) or 'missing'} volume"
        return None
    uid, groups, read_only = identity(pod, container, facts)
    if read_only:
        return f"{path} is on the read-only root filesystem (no volume mounted there)"
    owners = [p for p in facts["files"] if under(path, p)]
    if not owners:
        return f"{path}: its owner and mode in the image are not in {WRITES_FILE.name}"
    owner_uid, owner_gid, mode = facts["files"][max(owners, key=len)]
    mode = int(mode, 8)
    if (mode & stat.S_IWOTH or (uid == owner_uid and mode & stat.S_IWUSR)
            or (owner_gid in groups and mode & stat.S_IWGRP)):
        return None
    return (f"{path} belongs to {owner_uid}:{owner_gid} mode {mode:o}; the container runs as "
            f"uid {uid}, groups {sorted(groups)}")


def startup_problems(pod: dict, container: dict) -> list[str]:
    """What the container would fail to write at start, as sentences (empty: nothing)."""
    found = image_of(container)
    if found is None:
        return []
    name, facts = found
    env = {**facts["env"], **{e["name"]: e["value"] for e in container.get("env", [])
                              if "value" in e}}
    uid, _, _ = identity(pod, container, facts)
    add_user = any(env.get(key, "").lower() == "true"
                   for key in ("GITSYNC_ADD_USER", "GIT_SYNC_ADD_USER"))
    problems = []
    for write in facts["writes"]:
        if write.get("only") and write["only"] not in container["name"]:
            continue
        if write["when"] == "add-user" and not (add_user and uid not in facts["passwd"]):
            continue
        path = expand(write["path"], env)
        why = writable(path, pod, container, facts)
        if why:
            problems.append(f"{container['name']} ({name}, uid {uid}): {why} "
                            f"[writes {write['path']}: {write['source']}]")
    return problems


# Pod specs from our values, as the charts build them ------------------------------------------

# Airflow chart 1.18.0: the pods of components that run git-sync (Airflow 3 with a DAG processor:
# not the scheduler or the API server), and every component's Airflow container.
AIRFLOW_COMPONENTS = {"scheduler": False, "apiServer": False, "dagProcessor": True,
                      "triggerer": True, "workers": True, "migrateDatabaseJob": False}
GIT_SYNC_IMAGE = "registry.k8s.io/git-sync/git-sync:v4"


def airflow_pods(chart_values: dict) -> list[tuple[str, dict]]:
    """(component, pod spec) as the Airflow chart derives them from ``chart_values``: its
    airflowPodSecurityContext, containerSecurityContext and localContainerSecurityContext
    helpers, its dags and logs volumes, and the global and per-component extra volumes."""
    image = f"{chart_values['images']['airflow']['repository']}:0"
    git_sync = chart_values["dags"]["gitSync"]
    pods = []
    for component, has_git_sync in AIRFLOW_COMPONENTS.items():
        own = chart_values.get(component, {})
        pod_sc = ((own.get("securityContexts") or {}).get("pod") or own.get("securityContext")
                  or (chart_values.get("securityContexts") or {}).get("pod")
                  or chart_values.get("securityContext")
                  or {"runAsUser": chart_values.get("uid", 50000),
                      "fsGroup": chart_values.get("gid", 0)})
        container_sc = ((own.get("securityContexts") or {}).get("container")
                        or (chart_values.get("securityContexts") or {}).get("containers")
                        or {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}})
        volumes = [{"name": "dags", "emptyDir": {}}, {"name": "logs", "emptyDir": {}},
                   {"name": "config", "configMap": {"name": "airflow-config"}},
                   *chart_values.get("volumes", []), *own.get("extraVolumes", [])]
        airflow = {"name": component, "image": image, "securityContext": container_sc,
                   "env": [e for e in chart_values.get("env", []) if "value" in e],
                   "volumeMounts": [
                       {"name": "logs", "mountPath": "/opt/airflow/logs"},
                       {"name": "config", "mountPath": "/opt/airflow/airflow.cfg",
                        "subPath": "airflow.cfg", "readOnly": True},
                       {"name": "dags", "mountPath": "/opt/airflow/dags", "readOnly": True},
                       *chart_values.get("volumeMounts", []), *own.get("extraVolumeMounts", [])]}
        pod_containers = [airflow]
        if has_git_sync and git_sync.get("enabled"):
            sync_sc = ((git_sync.get("securityContexts") or {}).get("container")
                       or git_sync.get("securityContext")
                       or {"runAsUser": git_sync.get("uid", 65533)})
            env = [{"name": "GIT_SYNC_ROOT", "value": "/git"},
                   {"name": "GIT_SYNC_ADD_USER", "value": "true"},
                   {"name": "GITSYNC_ADD_USER", "value": "true"},
                   *git_sync.get("env", [])]
            mounts = [{"name": "dags", "mountPath": "/git"},
                      *git_sync.get("extraVolumeMounts", [])]
            for suffix in ("-init", ""):
                if component == "workers" and not suffix:
                    continue  # task pods run git-sync once, as an init container
                pod_containers.append({"name": f"git-sync{suffix}", "image": GIT_SYNC_IMAGE,
                                       "securityContext": sync_sc, "env": env,
                                       "volumeMounts": mounts})
        pods.append((component, {"securityContext": pod_sc, "volumes": volumes,
                                 "containers": pod_containers}))
    return pods


def spark_operator_pods(chart_values: dict) -> list[tuple[str, dict]]:
    """The controller's and the webhook's pod: our security contexts, the chart's own volumes
    (startup-writes.yaml chart_mounts) unless our values replace them."""
    facts = IMAGES["spark-operator"]
    pods = []
    for component in ("controller", "webhook"):
        own = chart_values[component]
        defaults = facts["chart_mounts"][component]
        volumes = own.get("volumes") or [{"name": f"chart-{i}", kind: {}}
                                         for i, kind in enumerate(defaults.values())]
        mounts = own.get("volumeMounts") or [{"name": f"chart-{i}", "mountPath": path}
                                             for i, path in enumerate(defaults)]
        pods.append((component, {
            "securityContext": own.get("podSecurityContext") or {}, "volumes": volumes,
            "containers": [{"name": f"spark-operator-{component}",
                            "image": "ghcr.io/kubeflow/spark-operator/controller:2",
                            "securityContext": own.get("securityContext") or {},
                            "volumeMounts": mounts}]}))
    return pods


def problems_of(pods: list[tuple[str, dict]]) -> list[str]:
    return [f"{name}: {problem}" for name, pod in pods for c in containers(pod)
            for problem in startup_problems(pod, c)]


# The tests ------------------------------------------------------------------------------------

@pytest.mark.parametrize("value_files", AIRFLOW_VALUE_SETS, ids=lambda v: "+".join(v))
def test_git_sync_can_write_what_it_writes_at_start(value_files):
    """git-sync v4 runs as a uid with an /etc/passwd entry (or can add one) and has a writable
    $TMPDIR, $HOME and root, in every pod that runs it."""
    pods = airflow_pods(values(*value_files))
    syncs = [(name, c) for name, pod in pods for c in containers(pod)
             if c["name"].startswith("git-sync")]
    assert len(syncs) == 5, syncs  # DAG processor and triggerer: init + sidecar; task pods: init
    problems = [p for p in problems_of(pods) if "(git-sync," in p]
    assert problems == [], "\n".join(problems)


@pytest.mark.parametrize("value_files", AIRFLOW_VALUE_SETS, ids=lambda v: "+".join(v))
def test_airflow_containers_can_write_what_they_write_at_start(value_files):
    problems = problems_of(airflow_pods(values(*value_files)))
    assert problems == [], "\n".join(problems)


def test_spark_operator_can_write_what_it_writes_at_start():
    problems = problems_of(spark_operator_pods(values("spark-operator-values.yaml")))
    assert problems == [], "\n".join(problems)


def test_the_check_fails_where_git_sync_would():
    """The hardening that stopped the first deploy: a read-only root without a uid of the image
    (the container then runs as the pod's 50000) and no volume on /tmp."""
    broken = values("airflow-values.yaml")
    broken["dags"]["gitSync"]["securityContexts"] = {"container": {"readOnlyRootFilesystem": True}}
    broken["dags"]["gitSync"]["extraVolumeMounts"] = []
    problems = "\n".join(problems_of(airflow_pods(broken)))
    assert "uid 50000" in problems and "/etc/passwd" in problems, problems
    assert "/tmp is on the read-only root filesystem" in problems, problems
    # The chart's own default (runAsUser 65533, writable root) passes.
    default = values("airflow-values.yaml")
    default["dags"]["gitSync"].pop("securityContexts", None)
    default["dags"]["gitSync"].pop("extraVolumeMounts", None)
    assert [p for p in problems_of(airflow_pods(default)) if "(git-sync," in p] == []


# The rendered upstream charts -----------------------------------------------------------------

def rendered_pods(chart: Path, chart_values: dict, release: str, namespace: str):
    objs = objects(render_chart(chart, chart_values, release=release, namespace=namespace))
    pods = pod_specs(objs)
    # The KubernetesExecutor's pod template is a ConfigMap's file, not a workload.
    for obj in objs:
        if obj["kind"] == "ConfigMap" and "pod_template_file.yaml" in obj.get("data", {}):
            template = yaml.safe_load(obj["data"]["pod_template_file.yaml"])
            pods.append((f"ConfigMap/{obj['metadata']['name']}", template["spec"]))
    return pods


@pytest.mark.parametrize("value_files", AIRFLOW_VALUE_SETS, ids=lambda v: "+".join(v))
def test_rendered_airflow_chart_containers_can_write_at_start(value_files):
    pods = rendered_pods(pulled_chart("airflow"), values(*value_files), "airflow",
                         NAMES["namespaces"]["platform"])
    syncs = [c for _, pod in pods for c in containers(pod) if image_of(c)
             and image_of(c)[0] == "git-sync"]
    assert syncs, "no git-sync container rendered"
    problems = problems_of(pods)
    assert problems == [], "\n".join(problems)


def test_rendered_spark_operator_chart_containers_can_write_at_start():
    pods = rendered_pods(pulled_chart("spark_operator"), values("spark-operator-values.yaml"),
                         "spark-operator", NAMES["namespaces"]["spark_operator"])
    names = {c["name"] for _, pod in pods for c in containers(pod) if image_of(c)}
    assert {"spark-operator-controller", "spark-operator-webhook"} <= names, names
    problems = problems_of(pods)
    assert problems == [], "\n".join(problems)


def test_rendered_external_secrets_chart_containers_can_write_at_start():
    pods = rendered_pods(pulled_chart("external_secrets"), {"installCRDs": True},
                         "external-secrets", NAMES["external_secrets"]["namespace"])
    assert [c for _, pod in pods for c in containers(pod) if image_of(c)]
    problems = problems_of(pods)
    assert problems == [], "\n".join(problems)


# The documentation ----------------------------------------------------------------------------

def test_security_docs_list_every_path_written_at_start():
    """docs/security.md prints startup-writes.yaml: each image and each path it writes."""
    text = (REPO / "docs" / "security.md").read_text()
    section = text.split("## Paths written at start", 1)
    assert len(section) == 2, "docs/security.md has no 'Paths written at start' section"
    body = section[1].split("\n## ", 1)[0]
    rows = [line for line in body.splitlines() if line.startswith("| `")]
    listed = {tuple(cell.strip().strip("`") for cell in row.strip("|").split("|")[:2])
              for row in rows}
    expected = {(name, write["path"]) for name, facts in IMAGES.items()
                for write in facts["writes"]} | {
        (name, "(nothing)") for name, facts in IMAGES.items() if not facts["writes"]}
    assert listed == expected
