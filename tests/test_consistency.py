"""fraudops/core/platform.yaml is the one place for shared names: everything that deploys says the same.

Sources, each rendered the way it is deployed:
  - the DAG's SparkApplication of every step, built with the environment the Airflow pods get in
    each overlay (charts/airflow-values.yaml env and extraEnv, the overlay's ConfigMap);
  - the k8s/ overlays (dev, yandex) and k8s/argocd/apps, through `kubectl kustomize`;
  - charts/mlflow through Helm's engine, with the release name and namespace Argo CD gives it;
  - the values files of the upstream charts (Airflow, spark-operator) and of ours (mlflow);
  - terraform/, parsed with python-hcl2.

Rather than checking a hand-picked list of fields, ``collect()`` walks every object and gathers
each namespace, service account, Secret, image repository, bucket, S3 endpoint and region,
in-cluster service host, MLflow tracking URI, node selector and toleration wherever it appears,
plus every ``fraudops-*`` token in any string; ``violations()`` then requires each to be one
that platform.yaml allows (or one of the few upstream or dev-only names of ``EXTRA``, each with
its reason). The tests at the end mutate one name in a copy and show the checkers catch it.
"""

from __future__ import annotations

import base64
import copy
import importlib.util
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cache
from typing import Any

import pytest
import yaml

from fraudops.core.platform import PLATFORM_FILE, platform
from fraudops.core.steps import STEPS, RunContext
from fraudops.orchestration import spark_application as sa
from fraudops.orchestration.settings import load_settings
from tests.k8s.manifests import (
    CHARTS,
    K8S,
    MLFLOW_CHART,
    OVERLAYS,
    REPO,
    by_kind,
    deep_merge,
    kustomize,
    objects,
    one,
    render_chart,
)
from tests.terraform import hcl

NAMES = platform()
PROJECT = NAMES["project"]
NS = NAMES["namespaces"]
SA = NAMES["service_accounts"]
SECRETS = NAMES["secrets"]
BUCKETS = NAMES["buckets"]
IMAGES = NAMES["images"]
S3 = NAMES["s3"]
POOL = NAMES["spark_node_pool"]
MLFLOW = NAMES["mlflow"]
POSTGRES = NAMES["postgres"]

TRACKING_URI = f"http://{MLFLOW['service']}.{NS['platform']}.svc.cluster.local:{MLFLOW['port']}"
DEV_S3_ENDPOINT = f"http://minio.{NS['platform']}.svc.cluster.local:9000"
ENVIRONMENT_CONFIGMAP = "fraudops-environment"
RUN_ID = "scheduled__2018-04-02T00:00:00+00:00"
# The components with an Object Storage account and S3 key (terraform local.storage_accounts).
STORAGE_COMPONENTS = ("spark", "airflow", "mlflow", "spark_history")

# --- what platform.yaml allows ---------------------------------------------------------------

OUR_IMAGES = {IMAGES["spark"], IMAGES["airflow"], IMAGES["mlflow"]}
ALLOWED: dict[str, set[str]] = {
    "namespace": set(NS.values()) | {NAMES["external_secrets"]["namespace"]},
    # Kubernetes ServiceAccounts; the cloud_* ones are Yandex IAM accounts (terraform only).
    "service_account": {SA["spark_driver"], SA["spark_executor"], SA["airflow_worker"],
                        SA["mlflow"]},
    "secret": set(SECRETS.values()),
    "image": OUR_IMAGES,
    "bucket": set(BUCKETS.values()),
    "s3_endpoint": {S3["endpoint"]},
    "s3_region": {S3["region"]},
    "service": {MLFLOW["service"]},
    "tracking_uri": {TRACKING_URI},
    "node_label": {f"{POOL['label_key']}={POOL['label_value']}"},
    "toleration": {f"Equal {POOL['taint_key']}={POOL['taint_value']}:NoSchedule"},
    "configmap": {ENVIRONMENT_CONFIGMAP, POSTGRES["ca_configmap"]},
    # Every "fraudops-..." token anywhere: a retyped name in free text (a shell command, a URL).
    "prefixed": {value for value in (
        *NS.values(), *SA.values(), *SECRETS.values(), *BUCKETS.values(), *OUR_IMAGES,
        NAMES["airflow"]["lake_writer_pool"],  # the chart's migration job creates the pools
        NAMES["airflow"]["model_pool"],
        MLFLOW["auth_spark_user"],  # the MLflow account the chart's auth bootstrap creates
    ) if value.startswith(f"{PROJECT}-")} | {ENVIRONMENT_CONFIGMAP, POSTGRES["ca_configmap"]},
}

# Names platform.yaml does not hold, each allowed only in the sources tagged as listed.
DEV, ARGOCD = "dev", "argocd"
EXTRA: dict[str, dict[str, tuple[set[str], str]]] = {
    "namespace": {
        "argocd": ({ARGOCD}, "Argo CD's own namespace, where its Application objects live"),
        "default": ({ARGOCD}, "kubernetes.default.svc: the in-cluster API server destination"),
        "kube-system": ({DEV, "yandex"}, "the cluster DNS the NetworkPolicies let pods resolve names with"),
    },
    "service": {
        "kubernetes": ({ARGOCD}, "kubernetes.default.svc: the in-cluster API server destination"),
        "minio": ({DEV}, "dev overlay only: MinIO stands in for Object Storage"),
        "postgres": ({DEV}, "dev overlay only: one PostgreSQL stands in for Managed PostgreSQL"),
    },
    "secret": {
        "dev-postgres": ({DEV}, "dev overlay only: the in-cluster PostgreSQL's own passwords"),
        "dev-minio-root": ({DEV}, "dev overlay only: MinIO's root user, for the bucket Job"),
        "dev-minio-users": ({DEV}, "dev overlay only: the component users the bucket Job creates"),
    },
    "image": {
        "quay.io/minio/minio": ({DEV}, "dev overlay only: MinIO server and its mc client"),
        "postgres": ({DEV}, "dev overlay only: the official PostgreSQL image"),
    },
    "s3_endpoint": {
        DEV_S3_ENDPOINT: ({DEV}, "dev only: the MinIO Service of the dev overlay"),
    },
    "configmap": {
        "dev-postgres-init": ({DEV}, "dev overlay only: creates the Airflow and MLflow databases"),
        "dev-minio-policies": ({DEV}, "dev overlay only: the bucket policies of the MinIO users"),
    },
}


@dataclass(frozen=True)
class Ref:
    category: str
    value: str
    path: str


@dataclass(frozen=True)
class Source:
    name: str
    tags: frozenset[str]
    data: Any


# --- the walker ------------------------------------------------------------------------------

ENV_CATEGORIES = {
    "FRAUDOPS_JOBS_NAMESPACE": "namespace",
    "FRAUDOPS_S3_ENDPOINT": "s3_endpoint",
    "MLFLOW_S3_ENDPOINT_URL": "s3_endpoint",
    "AWS_ENDPOINT_URL": "s3_endpoint",
    "AWS_REGION": "s3_region",
    "MINIO_SITE_REGION": "s3_region",
    "MLFLOW_TRACKING_URI": "tracking_uri",
    "FRAUDOPS_SPARK_IMAGE": "image_ref",
}
KEY_CATEGORIES = {
    "namespace": "namespace",
    "kubernetes.io/metadata.name": "namespace",
    "serviceAccountName": "service_account",
    "serviceAccount": "service_account",          # SparkApplication driver/executor
    "secretName": "secret",
    "existingSecret": "secret",
    "image": "image_ref",
    "repository": "image",
    "defaultAirflowRepository": "image",
    "s3_endpoint": "s3_endpoint",
    "endpoint": "s3_endpoint",                    # charts/mlflow artifacts.s3.endpoint
    "spark.hadoop.fs.s3a.endpoint": "s3_endpoint",
    "s3_region": "s3_region",
    "region": "s3_region",
    "spark.hadoop.fs.s3a.endpoint.region": "s3_region",
}
LIST_KEY_CATEGORIES = {"jobNamespaces": "namespace", "allowedNamespaces": "namespace"}
KIND_CATEGORIES = {"Namespace": "namespace", "ServiceAccount": "service_account",
                   "Secret": "secret", "ConfigMap": "configmap"}
BUCKET_URL = re.compile(r"\bs3a?://([a-z0-9][a-z0-9.-]*[a-z0-9])"
                        # and mc's alias/bucket, as the dev overlay's minio-buckets Job names them
                        r"|(?<![\w./-])local/([a-z0-9][a-z0-9.-]*[a-z0-9])")
SERVICE_HOST = re.compile(r"(?<![\w.-])([a-z0-9](?:[-a-z0-9]*[a-z0-9])?)\."
                          r"([a-z0-9](?:[-a-z0-9]*[a-z0-9])?)\.svc\b")
PREFIXED = re.compile(rf"(?<![\w.-]){PROJECT}-[a-z0-9]+(?:-[a-z0-9]+)*(?![\w-])")


def image_repository(ref: str) -> str:
    """``registry/path/name`` of an image reference, without its tag and digest."""
    ref = ref.split("@", 1)[0]
    head, _, last = ref.rpartition("/")
    return f"{head}/{last.split(':', 1)[0]}" if head else last.split(":", 1)[0]


def image_tag(ref: str) -> str | None:
    last = ref.split("@", 1)[0].rpartition("/")[2]
    return last.split(":", 1)[1] if ":" in last else None


def _image(repository: str) -> str:
    """Our images may carry the registry prefix ``<registry_host>/<registry id>/``."""
    parts = repository.split("/")
    if len(parts) == 3 and parts[0] == IMAGES["registry_host"] and parts[2] in OUR_IMAGES:
        return parts[2]
    return repository


def collect(node: Any, path: str = "") -> Iterator[Ref]:
    """Every shared name under ``node``, wherever it appears."""
    if isinstance(node, dict):
        kind = node.get("kind")
        metadata = node.get("metadata")
        if isinstance(kind, str) and isinstance(metadata, dict) and kind in KIND_CATEGORIES:
            yield Ref(KIND_CATEGORIES[kind], metadata["name"], f"{path}.metadata.name")
        if kind == "Secret" and isinstance(node.get("data"), dict):  # what the values say
            for key, value in node["data"].items():
                yield from collect(base64.b64decode(value).decode(), f"{path}.data.{key}")
        if kind == "ServiceAccount" and "metadata" not in node and "name" in node:  # a subject
            yield Ref("service_account", node["name"], f"{path}.name")
        if isinstance(node.get("name"), str) and isinstance(node.get("value"), str) \
                and (category := ENV_CATEGORIES.get(node["name"])):  # an env var
            yield from _leaf(category, node["value"], f"{path}[{node['name']}]")
        for key, value in node.items():
            here = f"{path}.{key}" if path else str(key)
            yield from _keyed(str(key), value, here)
            yield from collect(key, here)
            yield from collect(value, here)
    elif isinstance(node, list):
        for index, item in enumerate(node):
            yield from collect(item, f"{path}[{index}]")
    elif isinstance(node, str):
        for match in BUCKET_URL.finditer(node):
            yield Ref("bucket", match.group(1) or match.group(2), path)
        for match in SERVICE_HOST.finditer(node):
            yield Ref("service", match.group(1), path)
            yield Ref("namespace", match.group(2), path)
        for match in PREFIXED.finditer(node):
            yield Ref("prefixed", match.group(0), path)


def _leaf(category: str, value: str, path: str) -> Iterator[Ref]:
    if category == "image_ref":
        yield Ref("image", _image(image_repository(value)), path)
    else:
        yield Ref(category, value, path)


def _keyed(key: str, value: Any, path: str) -> Iterator[Ref]:
    if isinstance(value, str) and value:
        if key in KEY_CATEGORIES:
            yield from _leaf(KEY_CATEGORIES[key], value, path)
        elif key.endswith("SecretName"):  # the Airflow chart's *SecretName values
            yield Ref("secret", value, path)
        elif key == "extraEnv":  # the Airflow chart's env as a YAML string
            yield from collect(yaml.safe_load(value), path)
        elif key.endswith("_image"):  # fraudops-environment's image references
            yield from _leaf("image_ref", value, path)
    elif isinstance(value, dict):
        if key in ("secretKeyRef", "secretRef") and value.get("name"):
            yield Ref("secret", value["name"], f"{path}.name")
        if key in ("configMapKeyRef", "configMapRef") and value.get("name"):
            yield Ref("configmap", value["name"], f"{path}.name")
        if key == "serviceAccount" and value.get("name"):  # chart values
            yield Ref("service_account", value["name"], f"{path}.name")
        if key == "nodeSelector":
            for label, label_value in value.items():
                yield Ref("node_label", f"{label}={label_value}", path)
    elif isinstance(value, list):
        if key in LIST_KEY_CATEGORIES:
            for index, item in enumerate(value):
                yield Ref(LIST_KEY_CATEGORIES[key], item, f"{path}[{index}]")
        if key == "tolerations":
            for index, item in enumerate(value):
                yield Ref("toleration", f"{item.get('operator', 'Equal')} {item.get('key')}="
                          f"{item.get('value', '')}:{item.get('effect', '')}", f"{path}[{index}]")


def violations(source: Source) -> list[str]:
    """``source: category 'value' at path`` for every name platform.yaml does not allow there."""
    found = []
    for ref in collect(source.data):
        if ref.value in ALLOWED[ref.category]:
            continue
        extra = EXTRA.get(ref.category, {}).get(ref.value)
        if extra and extra[0] & source.tags:
            continue
        found.append(f"{source.name}: {ref.category} {ref.value!r} at {ref.path}")
    return found


def refs(source: Source, category: str) -> set[str]:
    return {ref.value for ref in collect(source.data) if ref.category == category}


# --- the sources -----------------------------------------------------------------------------

def values_file(name: str) -> dict[str, Any]:
    return yaml.safe_load((CHARTS / name).read_text())


def merged(*names: str) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for name in names:
        result = deep_merge(result, values_file(name))
    return result


def overlay(name: str) -> list[dict[str, Any]]:
    return kustomize(K8S / "overlays" / name)


def airflow_values(overlay_name: str) -> dict[str, Any]:
    dev = ("airflow-values.dev.yaml",) if overlay_name == "dev" else ()
    return merged("airflow-values.yaml", *dev)


def airflow_pod_env(overlay_name: str) -> dict[str, str]:
    """The environment every Airflow pod gets in ``overlay_name``: the chart values' env, and
    extraEnv resolved against the overlay's ConfigMap (secrets left out)."""
    values = airflow_values(overlay_name)
    env = {item["name"]: item["value"] for item in values["env"]}
    objs = overlay(overlay_name)
    for item in yaml.safe_load(values["extraEnv"]):
        ref = item["valueFrom"]["configMapKeyRef"]
        config = one(objs, "ConfigMap", ref["name"])
        assert config["metadata"]["namespace"] == NS["platform"], ref
        assert ref["key"] in config["data"], f"{ref['name']} has no key {ref['key']}"
        env[item["name"]] = config["data"][ref["key"]]
    return env


@cache
def _spark_applications(overlay_name: str) -> tuple[dict[str, Any], ...]:
    env = airflow_pod_env(overlay_name)
    with pytest.MonkeyPatch.context() as patch:
        for name in [n for n in os.environ if n.startswith(("FRAUDOPS_", "MLFLOW_"))]:
            patch.delenv(name)
        for name, value in env.items():
            patch.setenv(name, value)
        settings = load_settings()
    ctx = RunContext(ds="2018-04-02", run_id=RUN_ID, lake_root=settings.lake_root)
    return tuple(sa.build_spark_application(step, ctx, settings) for step in STEPS.values())


def spark_applications(overlay_name: str) -> list[dict[str, Any]]:
    """Every step's SparkApplication as the DAG builds it in the cluster of ``overlay_name``."""
    return copy.deepcopy(list(_spark_applications(overlay_name)))


def mlflow_application() -> dict[str, Any]:
    return one(kustomize(K8S / "argocd" / "apps"), "Application", "mlflow")


@cache
def _mlflow_chart(dev: bool) -> tuple[dict[str, Any], ...]:
    """charts/mlflow as Argo CD (yandex) or `make deploy OVERLAY=dev` installs it."""
    app = mlflow_application()
    values = yaml.safe_load((CHARTS / "mlflow-values.dev.yaml").read_text()) if dev else {}
    rendered = render_chart(MLFLOW_CHART, values, release=app["spec"]["source"]["helm"]["releaseName"],
                            namespace=app["spec"]["destination"]["namespace"])
    return tuple(objects(rendered))


def mlflow_chart(dev: bool = False) -> list[dict[str, Any]]:
    return copy.deepcopy(list(_mlflow_chart(dev)))


SOURCES: dict[str, Callable[[], Source]] = {
    **{f"spark-application/{o}": (lambda o=o: Source(
        f"SparkApplications ({o})", frozenset({o}), spark_applications(o))) for o in OVERLAYS},
    **{f"overlay/{o}": (lambda o=o: Source(
        f"k8s/overlays/{o}", frozenset({o}), overlay(o))) for o in OVERLAYS},
    "argocd": lambda: Source("k8s/argocd/apps", frozenset({ARGOCD, "yandex"}),
                             kustomize(K8S / "argocd" / "apps")),
    "chart/mlflow": lambda: Source("charts/mlflow", frozenset({"yandex"}), mlflow_chart()),
    "chart/mlflow-dev": lambda: Source("charts/mlflow + mlflow-values.dev.yaml",
                                       frozenset({DEV}), mlflow_chart(dev=True)),
    **{f"values/{path.relative_to(CHARTS)}": (lambda path=path: Source(
        str(path.relative_to(REPO)), frozenset({DEV} if ".dev." in path.name else ()),
        yaml.safe_load(path.read_text())))
       for path in sorted([*CHARTS.glob("*values*.yaml"), MLFLOW_CHART / "values.yaml"])},
}


@pytest.fixture(scope="module", params=sorted(SOURCES))
def source(request) -> Source:
    return SOURCES[request.param]()


# --- every name everywhere is platform.yaml's --------------------------------------------------

def test_every_values_file_is_covered():
    """SOURCES globs charts/; a new values file also needs its entry in EXPECTED below."""
    assert {p.name for p in CHARTS.glob("*values*.yaml")} == {
        "airflow-values.yaml", "airflow-values.dev.yaml", "spark-operator-values.yaml",
        "mlflow-values.dev.yaml"}


def test_every_name_in_every_source_is_allowed(source):
    found = violations(source)
    assert not found, "names not in fraudops/core/platform.yaml:\n" + "\n".join(found)


def test_extras_are_not_platform_names():
    """An EXTRA entry must not shadow a platform name (it would allow a name in the wrong place)."""
    for category, names in EXTRA.items():
        assert not names.keys() & ALLOWED[category], category
        for name, (tags, reason) in names.items():
            assert tags and len(reason) > 20, name


# Each source must actually show the names it is expected to carry: a walker that finds nothing
# would pass the test above vacuously.
EXPECTED: dict[str, dict[str, set[str]]] = {
    "spark-application/{o}": {
        "namespace": {NS["jobs"], NS["platform"]},  # the platform one: the MLflow host
        "service_account": {SA["spark_driver"], SA["spark_executor"]},
        "secret": {SECRETS["s3_spark"], SECRETS["mlflow_auth"]},
        "image": {IMAGES["spark"]},
        "bucket": {BUCKETS["lake"]},
        "s3_region": {S3["region"]},
        "service": {MLFLOW["service"]},
        "tracking_uri": {TRACKING_URI},
        "node_label": ALLOWED["node_label"],
        "toleration": ALLOWED["toleration"],
    },
    "overlay/{o}": {
        "namespace": set(NS.values()),
        "service_account": {SA["spark_driver"], SA["spark_executor"], SA["airflow_worker"]},
        "image": OUR_IMAGES,
        "s3_region": {S3["region"]},
        "configmap": {ENVIRONMENT_CONFIGMAP},
    },
    "argocd": {"namespace": set(NS.values()), "image": OUR_IMAGES},
    "chart/mlflow": {
        "namespace": {NS["platform"], NS["jobs"]},
        "service_account": {SA["mlflow"]},
        "secret": {SECRETS["s3_mlflow"], SECRETS["mlflow_db"]},
        "image": {IMAGES["mlflow"]},
        "bucket": {BUCKETS["mlflow_artifacts"]},
        "s3_endpoint": {S3["endpoint"]},
        "s3_region": {S3["region"]},
        "service": {MLFLOW["service"]},
    },
    "values/airflow-values.yaml": {
        "namespace": {NS["jobs"], NS["platform"]},
        "service_account": {SA["airflow_worker"]},
        "secret": {SECRETS["s3_airflow"], SECRETS["airflow_db"], SECRETS["airflow_keys"]},
        "image": {IMAGES["airflow"]},
        "bucket": {BUCKETS["lake"], BUCKETS["airflow_logs"]},
        "tracking_uri": {TRACKING_URI},
        "configmap": {ENVIRONMENT_CONFIGMAP},
    },
    "values/spark-operator-values.yaml": {"namespace": {NS["jobs"]}},
    "values/mlflow/values.yaml": {
        "namespace": {NS["jobs"]},
        "service_account": {SA["mlflow"]},
        "secret": {SECRETS["s3_mlflow"], SECRETS["mlflow_db"], SECRETS["mlflow_auth_server"]},
        "image": {IMAGES["mlflow"]},
        "bucket": {BUCKETS["mlflow_artifacts"]},
        "s3_endpoint": {S3["endpoint"]},
        "s3_region": {S3["region"]},
    },
}


def _expected(key: str) -> dict[str, set[str]]:
    for pattern, expected in EXPECTED.items():
        if pattern in (key, key.rsplit("/", 1)[0] + "/{o}"):
            return expected
    return {}


@pytest.mark.parametrize("key", sorted(SOURCES))
def test_each_source_carries_the_names_it_should(key):
    source = SOURCES[key]()
    expected = _expected(key)
    if key.startswith("spark-application/"):  # the endpoint the overlay's ConfigMap gives
        expected = {**expected, "s3_endpoint": {
            DEV_S3_ENDPOINT if key.endswith("/dev") else S3["endpoint"]}}
    if key == "overlay/dev":
        expected = {**expected, "bucket": set(BUCKETS.values()), "secret": {
            SECRETS["s3_spark"], SECRETS["s3_airflow"], SECRETS["s3_mlflow"], SECRETS["airflow_db"],
            SECRETS["mlflow_db"], SECRETS["airflow_keys"]}}
    for category, names in expected.items():
        missing = names - refs(source, category)
        assert not missing, f"{source.name}: no {category} {sorted(missing)} found"


# --- the same name where each one must meet ----------------------------------------------------

@pytest.mark.parametrize("overlay_name", OVERLAYS)
def test_spark_applications_use_the_overlay_identity_and_images(overlay_name):
    objs = overlay(overlay_name)
    config = one(objs, "ConfigMap", ENVIRONMENT_CONFIGMAP)["data"]
    accounts = {(a["metadata"]["namespace"], a["metadata"]["name"])
                for a in by_kind(objs, "ServiceAccount")}
    namespaces = {n["metadata"]["name"] for n in by_kind(objs, "Namespace")}
    for app in spark_applications(overlay_name):
        namespace = app["metadata"]["namespace"]
        assert namespace == NS["jobs"] and namespace in namespaces
        assert app["spec"]["image"] == config["spark_image"]
        assert image_repository(config["spark_image"]) == IMAGES["spark"]
        for role in ("driver", "executor"):
            assert (namespace, app["spec"][role]["serviceAccount"]) in accounts, role
        assert app["spec"]["sparkConf"]["spark.hadoop.fs.s3a.endpoint"] == config["s3_endpoint"]
        assert app["spec"]["sparkConf"]["spark.hadoop.fs.s3a.endpoint.region"] == S3["region"]


@pytest.mark.parametrize("overlay_name", OVERLAYS)
def test_overlay_images_share_one_tag(overlay_name):
    config = one(overlay(overlay_name), "ConfigMap", ENVIRONMENT_CONFIGMAP)["data"]
    references = [config[f"{image}_image"] for image in ("spark", "airflow", "mlflow")]
    assert [_image(image_repository(r)) for r in references] == [
        IMAGES["spark"], IMAGES["airflow"], IMAGES["mlflow"]]
    tags = {image_tag(r) for r in references}
    assert len(tags) == 1, f"CI bumps the three images together: {references}"
    if overlay_name == "dev":
        assert tags == {"dev"}  # make images-dev
    dev_tags = {values_file("airflow-values.dev.yaml")["images"]["airflow"]["tag"],
                values_file("mlflow-values.dev.yaml")["image"]["tag"]}
    assert dev_tags == {"dev"}


def test_chart_defaults_use_the_default_tag():
    airflow = values_file("airflow-values.yaml")
    mlflow = yaml.safe_load((MLFLOW_CHART / "values.yaml").read_text())
    tag = IMAGES["default_tag"]
    assert airflow["images"]["airflow"] == {
        "repository": IMAGES["airflow"], "tag": tag, "pullPolicy": "IfNotPresent"}
    assert (airflow["defaultAirflowRepository"], airflow["defaultAirflowTag"]) == (
        IMAGES["airflow"], tag)
    assert (mlflow["image"]["repository"], mlflow["image"]["tag"]) == (IMAGES["mlflow"], tag)
    base = yaml.safe_load((K8S / "base" / "environment.yaml").read_text())["data"]
    assert {key: base[f"{key}_image"] for key in ("spark", "airflow", "mlflow")} == {
        key: f"{IMAGES[key]}:{tag}" for key in ("spark", "airflow", "mlflow")}


def test_argocd_hands_the_overlay_images_to_the_charts():
    objs = kustomize(K8S / "argocd" / "apps")
    config = one(objs, "ConfigMap", ENVIRONMENT_CONFIGMAP)["data"]
    airflow = one(objs, "Application", "airflow")["spec"]["sources"][0]["helm"]["valuesObject"]
    mlflow = mlflow_application()["spec"]["source"]["helm"]["valuesObject"]
    assert f"{airflow['images']['airflow']['repository']}:{airflow['images']['airflow']['tag']}" \
        == config["airflow_image"]
    assert f"{mlflow['image']['repository']}:{mlflow['image']['tag']}" == config["mlflow_image"]


def test_argocd_destinations_and_release_names():
    objs = kustomize(K8S / "argocd" / "apps")
    destinations = {app["metadata"]["name"]: app["spec"]["destination"]["namespace"]
                    for app in by_kind(objs, "Application")}
    assert destinations == {"airflow": NS["platform"], "mlflow": NS["platform"],
                            "spark-operator": NS["spark_operator"],
                            "external-secrets": NAMES["external_secrets"]["namespace"]}
    # The MLflow Service is named after the release: it must be platform.yaml's mlflow.service.
    assert mlflow_application()["spec"]["source"]["helm"]["releaseName"] == MLFLOW["service"]


@pytest.mark.parametrize("dev", [False, True], ids=["yandex", "dev"])
def test_mlflow_service_port_and_identity(dev):
    objs = mlflow_chart(dev)
    service = one(objs, "Service")
    assert service["metadata"]["name"] == MLFLOW["service"]
    assert service["metadata"]["namespace"] == NS["platform"]
    assert [p["port"] for p in service["spec"]["ports"]] == [MLFLOW["port"]]
    pod = one(objs, "Deployment")["spec"]["template"]
    assert pod["spec"]["serviceAccountName"] == SA["mlflow"]
    server = next(c for c in pod["spec"]["containers"] if c["name"] == "mlflow")
    assert f"--port={MLFLOW['port']}" in server["args"]
    assert f"--artifacts-destination=s3://{BUCKETS['mlflow_artifacts']}/" in server["args"]
    # The jobs namespace's egress policy reaches exactly these pods on this port.
    egress = one(overlay("dev" if dev else "yandex"), "NetworkPolicy", "allow-mlflow-egress")
    (rule,) = egress["spec"]["egress"]
    (peer,) = rule["to"]
    assert peer["namespaceSelector"]["matchLabels"] == {
        "kubernetes.io/metadata.name": service["metadata"]["namespace"]}
    assert peer["podSelector"]["matchLabels"].items() <= pod["metadata"]["labels"].items()
    assert rule["ports"] == [{"port": MLFLOW["port"], "protocol": "TCP"}]
    # And the chart's own ingress policy admits the jobs namespace.
    policy = one(objs, "NetworkPolicy")
    admitted = {peer["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"]
                for peer in policy["spec"]["ingress"][0]["from"]}
    assert NS["jobs"] in admitted


def test_tracking_uri_is_the_mlflow_service():
    settings_uri = {item["name"]: item["value"]
                    for item in values_file("airflow-values.yaml")["env"]}["MLFLOW_TRACKING_URI"]
    assert settings_uri == TRACKING_URI
    with pytest.MonkeyPatch.context() as patch:
        for name in [n for n in os.environ if n.startswith(("FRAUDOPS_", "MLFLOW_"))]:
            patch.delenv(name)
        patch.setenv("FRAUDOPS_BACKEND", "kubernetes")
        settings = load_settings()
    assert settings.tracking_uri == TRACKING_URI  # the DAG's own in-cluster default


def test_lake_root_and_buckets_by_role():
    env = {item["name"]: item["value"] for item in values_file("airflow-values.yaml")["env"]}
    lake_root = f"s3a://{BUCKETS['lake']}/{hcl.locals_()['lake_prefix']}"
    assert env["FRAUDOPS_LAKE_ROOT"] == lake_root
    assert values_file("airflow-values.yaml")["config"]["logging"][
        "remote_base_log_folder"].startswith(f"s3://{BUCKETS['airflow_logs']}/")
    mlflow = yaml.safe_load((MLFLOW_CHART / "values.yaml").read_text())
    assert mlflow["artifacts"]["destination"] == f"s3://{BUCKETS['mlflow_artifacts']}/"
    for app in spark_applications("yandex"):
        pod_env = {e["name"]: e.get("value") for e in app["spec"]["driver"]["env"]}
        assert pod_env["FRAUDOPS_LAKE_ROOT"] == lake_root
    # The terraform output the cloud runs are configured from.
    assert hcl.resolve(hcl.outputs()["lake_root"]["value"]).endswith(
        f"/{hcl.locals_()['lake_prefix']}")


def test_dev_minio_creates_every_bucket_and_serves_the_dev_endpoint():
    objs = overlay("dev")
    job = one(objs, "Job", "minio-buckets")
    (container,) = job["spec"]["template"]["spec"]["containers"]
    script = " ".join(container["args"])
    assert set(re.findall(r"\blocal/([a-z0-9.-]+)", script)) == set(BUCKETS.values())
    assert f"--region {S3['region']}" in script
    assert DEV_S3_ENDPOINT.replace("http://", "") in script
    service = one(objs, "Service", "minio")
    assert service["metadata"]["namespace"] == NS["platform"]
    assert [p["port"] for p in service["spec"]["ports"]] == [int(DEV_S3_ENDPOINT.rsplit(":", 1)[1])]
    assert yaml.safe_load((CHARTS / "mlflow-values.dev.yaml").read_text())[
        "artifacts"]["s3"]["endpoint"] == DEV_S3_ENDPOINT
    assert one(objs, "ConfigMap", ENVIRONMENT_CONFIGMAP)["data"]["s3_endpoint"] == DEV_S3_ENDPOINT
    assert one(overlay("yandex"), "ConfigMap", ENVIRONMENT_CONFIGMAP)["data"][
        "s3_endpoint"] == S3["endpoint"]


def test_spark_operator_watches_the_jobs_namespace_with_our_service_account():
    values = values_file("spark-operator-values.yaml")
    assert values["spark"]["jobNamespaces"] == [NS["jobs"]]
    # The drivers' ServiceAccount and Role come from k8s/base, not from the chart.
    assert values["spark"]["serviceAccount"]["create"] is False
    assert values["spark"]["rbac"]["create"] is False


def test_airflow_workers_are_the_account_the_launcher_role_binds():
    account = values_file("airflow-values.yaml")["workers"]["serviceAccount"]
    assert account == {"create": True, "name": SA["airflow_worker"]}
    for name in OVERLAYS:
        binding = one(overlay(name), "RoleBinding", "airflow-spark-launcher")
        assert binding["subjects"] == [{"kind": "ServiceAccount", "name": SA["airflow_worker"],
                                        "namespace": NS["platform"]}]
        assert binding["metadata"]["namespace"] == NS["jobs"]


# --- every Secret a consumer needs exists, with its key, in its namespace ----------------------

# Keys the official Airflow chart reads from the Secrets its *SecretName values name.
AIRFLOW_SECRET_KEYS = {
    "metadataSecretName": "connection",
    "fernetKeySecretName": "fernet-key",
    "webserverSecretKeySecretName": "webserver-secret-key",
    "apiSecretKeySecretName": "api-secret-key",
    "jwtSecretName": "jwt-secret",
}
# `make deploy` creates the Airflow keys once in the yandex cluster (make/deploy.mk).
MAKE_DEPLOY_SECRETS = {(NS["platform"], SECRETS["airflow_keys"]): {
    "fernet-key", "api-secret-key", "jwt-secret", "webserver-secret-key"}}


def required_secret_keys(overlay_name: str) -> set[tuple[str, str, str]]:
    """``(namespace, secret, key)`` every consumer of ``overlay_name`` reads and cannot do without."""
    needed = set()

    def walk(node, namespace):
        if isinstance(node, dict):
            ref = node.get("secretKeyRef")
            if isinstance(ref, dict) and not ref.get("optional"):
                needed.add((namespace, ref["name"], ref["key"]))
            for value in node.values():
                walk(value, namespace)
        elif isinstance(node, list):
            for item in node:
                walk(item, namespace)

    for app in spark_applications(overlay_name):
        walk(app, app["metadata"]["namespace"])
    for obj in mlflow_chart(dev=overlay_name == "dev") + overlay(overlay_name):
        walk(obj, obj["metadata"].get("namespace"))
    values = airflow_values(overlay_name)
    for item in values["secret"]:
        needed.add((NS["platform"], item["secretName"], item["secretKey"]))
    for key, secret_key in AIRFLOW_SECRET_KEYS.items():
        name = values.get(key) or values.get("data", {}).get(key)
        assert name, f"airflow-values.yaml sets no {key}"
        needed.add((NS["platform"], name, secret_key))
    return needed


def provided_secret_keys(overlay_name: str) -> set[tuple[str, str, str]]:
    if overlay_name == "dev":
        return {(s["metadata"]["namespace"], s["metadata"]["name"], key)
                for s in by_kind(overlay("dev"), "Secret") for key in s.get("data", {})}
    spec = importlib.util.spec_from_file_location(
        "tf_outputs_to_k8s", REPO / "scripts" / "tf_outputs_to_k8s.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    outputs = {name: "x" for name in (*script.SECRET_OUTPUTS, *script.VALUE_OUTPUTS)}
    provided = {(namespace, name, key) for namespace, name, data in script.secrets(outputs)
                for key in data}
    # The component Secrets: External Secrets Operator's targets, synced from Lockbox.
    provided |= {(es["metadata"]["namespace"], es["spec"]["target"]["name"], item["secretKey"])
                 for es in by_kind(overlay("yandex"), "ExternalSecret") for item in es["spec"]["data"]}
    return provided | {(namespace, name, key) for (namespace, name), keys
                       in MAKE_DEPLOY_SECRETS.items() for key in keys}


@pytest.mark.parametrize("overlay_name", OVERLAYS)
def test_every_required_secret_key_is_provided(overlay_name):
    missing = required_secret_keys(overlay_name) - provided_secret_keys(overlay_name)
    assert not missing, f"{overlay_name}: Secrets read but never created: {sorted(missing)}"


# --- PostgreSQL ------------------------------------------------------------------------------

def test_dev_postgres_has_the_platform_databases_and_users():
    objs = overlay("dev")
    script = one(objs, "ConfigMap", "dev-postgres-init")["data"]["create-databases.sh"]
    for key in ("airflow", "mlflow"):
        user, database = POSTGRES["users"][key], POSTGRES["databases"][key]
        assert f"CREATE ROLE {user} LOGIN" in script
        assert f"CREATE DATABASE {database} OWNER {user};" in script
    uris = {s["metadata"]["name"]: next(iter(s["data"].values())) for s in by_kind(objs, "Secret")
            if s["metadata"]["name"] in (SECRETS["airflow_db"], SECRETS["mlflow_db"])}
    for key in ("airflow", "mlflow"):
        uri = base64.b64decode(uris[SECRETS[f"{key}_db"]]).decode()
        match = re.fullmatch(r"postgresql://([^:]+):[^@]+@([^:/]+):\d+/(\w+)", uri)
        assert match, uri
        assert (match.group(1), match.group(3)) == (POSTGRES["users"][key],
                                                    POSTGRES["databases"][key])
        assert match.group(2) == f"postgres.{NS['platform']}.svc.cluster.local"


def test_managed_postgres_egress_is_terraforms_network_and_pooler_port():
    policy = one(overlay("yandex"), "NetworkPolicy", "allow-managed-postgres-egress")
    assert policy["metadata"]["namespace"] == NS["platform"]
    (rule,) = policy["spec"]["egress"]
    assert [peer["ipBlock"]["cidr"] for peer in rule["to"]] == [
        hcl.variables()["network_cidr"]["default"]]
    assert rule["ports"] == [{"port": hcl.locals_()["postgres_port"], "protocol": "TCP"}]


# --- terraform: every shared name through local.platform, none retyped ---------------------------

_INTERPOLATION = re.compile(r"\$\{[^${}]*\}")
_WHOLE_REF = re.compile(r"\$\{\(?local\.([A-Za-z_][\w.]*)\)?\}")


def platform_path(expression: Any, defined: dict[str, Any] | None = None) -> str | None:
    """The platform.yaml path (``buckets.lake``) an expression reads through ``local.*``
    references ending at ``local.platform`` (the yamldecode), or None if it does not."""
    defined = hcl.locals_() if defined is None else defined
    match = _WHOLE_REF.fullmatch(expression) if isinstance(expression, str) else None
    if not match:
        return None
    head, *rest = match.group(1).split(".")
    if head == "platform":
        return ".".join(rest) if defined.get("platform") == hcl.PLATFORM_LOCAL else None
    value = defined.get(head)
    while rest and isinstance(value, dict):
        value = value.get(rest.pop(0))
    inner = platform_path(value, defined)
    return ".".join([inner, *rest]) if inner is not None and rest else inner


def terraform_reference_violations(resources: dict[str, dict[str, Any]],
                                   defined: dict[str, Any]) -> list[str]:
    """Where a shared name is not read from platform.yaml (``resources``: address -> body)."""
    expected = {
        **{(f"yandex_storage_bucket.{key}", "bucket"): f"buckets.{key}" for key in BUCKETS},
        **{(f"yandex_iam_service_account.{key}", "name"): f"service_accounts.cloud_{key}"
           for key in ("cluster", "nodes")},
        ("yandex_iam_service_account.secrets_reader", "name"): "service_accounts.cloud_secrets",
        ("yandex_mdb_postgresql_user.this", "for_each"): "postgres.users",
        ("yandex_mdb_postgresql_database.this", "for_each"): "postgres.databases",
    }
    found = []
    for (address, attribute), path in expected.items():
        actual = platform_path(resources[address].get(attribute), defined)
        if actual != path:
            found.append(f"{address}.{attribute} = {resources[address].get(attribute)!r} "
                         f"does not read local.platform.{path}")
    for address in ("yandex_mdb_postgresql_user.this", "yandex_mdb_postgresql_database.this"):
        if resources[address].get("name") != "${each.value}":
            found.append(f"{address}.name is not each.value (the platform.yaml name)")
    spark = resources["yandex_kubernetes_node_group.spark"]
    labels = spark.get("node_labels", {})
    if [(platform_path(k, defined), platform_path(v, defined)) for k, v in labels.items()] != [
            ("spark_node_pool.label_key", "spark_node_pool.label_value")]:
        found.append(f"node_labels {labels!r} do not read local.platform.spark_node_pool")
    taints = spark.get("node_taints", [])
    taint = _WHOLE_REF.fullmatch(taints[0]) if len(taints) == 1 else None
    expression = defined.get(taint.group(1), "") if taint else ""
    if [platform_path(f"${{local.{ref}}}", defined) for ref in _WHOLE_REF.findall(expression)] != [
            "spark_node_pool.taint_key", "spark_node_pool.taint_value"]:
        found.append(f"node_taints {taints!r} do not read local.platform.spark_node_pool")
    # One account per component, and the Lockbox secrets named like the Kubernetes Secrets.
    storage = defined.get("storage_accounts", {})
    if resources["yandex_iam_service_account.storage"].get("name") != "${each.value.name}" or {
            key: platform_path(value.get("name"), defined) for key, value in storage.items()} != {
            key: f"service_accounts.cloud_{key}" for key in STORAGE_COMPONENTS}:
        found.append("yandex_iam_service_account.storage does not read service_accounts.cloud_*")
    if {key: platform_path(value, defined)
            for key, value in defined.get("s3_secret_names", {}).items()} != {
            key: f"secrets.s3_{key}" for key in STORAGE_COMPONENTS}:
        found.append("s3_secret_names do not read local.platform.secrets.s3_*")
    return found


def terraform_resources() -> dict[str, dict[str, Any]]:
    return {r.address: r.body for r in hcl.resources()}


def test_terraform_reads_platform_yaml_through_yamldecode():
    defined = hcl.locals_()
    assert defined["platform"] == hcl.PLATFORM_LOCAL
    assert (hcl.TERRAFORM_DIR / ".." / "fraudops" / "core" / "platform.yaml").resolve() == PLATFORM_FILE
    assert platform_path("${local.project}") == "project"


def test_terraform_shared_names_come_from_local_platform():
    found = terraform_reference_violations(terraform_resources(), hcl.locals_())
    assert not found, "\n".join(found)


def test_terraform_names_resolve_to_platform_yaml():
    resources = terraform_resources()
    for key, bucket in BUCKETS.items():
        assert hcl.resolve(resources[f"yandex_storage_bucket.{key}"]["bucket"]) == bucket
    for key in ("cluster", "nodes"):
        assert hcl.resolve(resources[f"yandex_iam_service_account.{key}"]["name"]) == \
            SA[f"cloud_{key}"]
    spark = resources["yandex_kubernetes_node_group.spark"]
    assert {f"{k}={v}" for k, v in hcl.resolve(spark["node_labels"]).items()} == \
        ALLOWED["node_label"]
    # The same taint the SparkApplications tolerate.
    (taint,) = hcl.resolve(spark["node_taints"])
    tolerations = {ref.value for app in spark_applications("yandex")
                   for ref in collect(app) if ref.category == "toleration"}
    assert {f"Equal {taint}"} == tolerations == ALLOWED["toleration"]
    assert hcl.resolve(hcl.locals_()["postgres_users"]) == POSTGRES["users"]
    assert hcl.resolve(hcl.locals_()["postgres_databases"]) == POSTGRES["databases"]
    outputs = hcl.outputs()
    assert platform_path(outputs["s3_endpoint"]["value"]) == "s3.endpoint"
    assert platform_path(outputs["s3_region"]["value"]) == "s3.region"
    assert platform_path(outputs["namespaces"]["value"]) == "namespaces"
    assert outputs["registry_url"]["value"].startswith("${local.platform.images.registry_host}/")


def literal_platform_names(files: dict[str, Any]) -> list[str]:
    """Platform names typed as literals in terraform (outside ``${...}``), descriptions aside."""
    distinctive = {value for value in _leaves(NAMES)
                   if isinstance(value, str) and value != PROJECT and re.search(r"[-./:]", value)}
    patterns = {name: re.compile(rf"(?<![\w.-]){re.escape(name)}(?![\w-])") for name in distinctive}
    found = []
    for file_name, document in files.items():
        for path, text in hcl.strings(document):
            if path.endswith(("description", "error_message")):
                continue
            literal = text
            while _INTERPOLATION.search(literal):
                literal = _INTERPOLATION.sub(" ", literal)
            found += [f"{file_name}: {path} = {text!r} types {name!r}"
                      for name, pattern in patterns.items() if pattern.search(literal)]
    return found


def _leaves(node: Any) -> Iterator[Any]:
    if isinstance(node, dict):
        for value in node.values():
            yield from _leaves(value)
    else:
        yield node


def test_terraform_retypes_no_platform_name():
    found = literal_platform_names(hcl.parsed_files())
    assert not found, "\n".join(found)


# --- the checkers catch a mismatch -------------------------------------------------------------

def _set_env(app, name, value):
    for item in app["spec"]["driver"]["env"]:
        if item["name"] == name:
            item.clear()
            item.update(value)


def _first(objs, kind, name):
    return next(o for o in objs if o["kind"] == kind and o["metadata"]["name"] == name)


MUTATIONS: dict[str, tuple[str, Callable[[Any], None], str]] = {
    "secret in a SparkApplication": ("spark-application/yandex", lambda apps: _set_env(
        apps[0], "AWS_ACCESS_KEY_ID", {"name": "AWS_ACCESS_KEY_ID", "valueFrom": {
            "secretKeyRef": {"name": "fraudops-s3-keys", "key": "AWS_ACCESS_KEY_ID"}}}),
        "secret 'fraudops-s3-keys'"),
    "node selector of a SparkApplication": ("spark-application/dev", lambda apps: apps[1][
        "spec"]["executor"].update(nodeSelector={POOL["label_key"]: "sparks"}),
        f"node_label '{POOL['label_key']}=sparks'"),
    "toleration of a SparkApplication": ("spark-application/yandex", lambda apps: apps[0][
        "spec"]["driver"]["tolerations"][0].update(key="fraudops.io/nodepool"), "toleration"),
    "namespace of a RoleBinding subject": ("overlay/yandex", lambda objs: _first(
        objs, "RoleBinding", "airflow-spark-launcher")["subjects"][0].update(
        namespace="fraudops-platform"), "namespace 'fraudops-platform'"),
    "S3 endpoint of the environment": ("overlay/yandex", lambda objs: _first(
        objs, "ConfigMap", ENVIRONMENT_CONFIGMAP)["data"].update(
        s3_endpoint="https://storage.yandexcloud.com"), "s3_endpoint"),
    "dev-only image in the yandex overlay": ("overlay/yandex", lambda objs: _first(
        objs, "ConfigMap", ENVIRONMENT_CONFIGMAP)["data"].update(
        spark_image="postgres:16"), "image 'postgres'"),
    "bucket in a shell command": ("overlay/dev", lambda objs: _first(
        objs, "Job", "minio-buckets")["spec"]["template"]["spec"]["containers"][0].update(
        args=["mc mb local/fraudops-lakes"]), "prefixed 'fraudops-lakes'"),
    "image of the MLflow chart": ("chart/mlflow", lambda objs: _first(
        objs, "Deployment", MLFLOW["service"])["spec"]["template"]["spec"]["containers"][0].update(
        image="cr.yandex/crp1/fraudops-mlfow:abc"), "image 'cr.yandex/crp1/fraudops-mlfow'"),
    "service account of the MLflow chart": ("chart/mlflow", lambda objs: _first(
        objs, "Deployment", MLFLOW["service"])["spec"]["template"]["spec"].update(
        serviceAccountName="mlflow-server"), "service_account 'mlflow-server'"),
    "logs bucket in the Airflow values": ("values/airflow-values.yaml", lambda values: values[
        "config"]["logging"].update(remote_base_log_folder="s3://fraudops-airflow-log/logs"),
        "bucket 'fraudops-airflow-log'"),
    "MLflow port in the Airflow values": ("values/airflow-values.yaml", lambda values: next(
        item for item in values["env"] if item["name"] == "MLFLOW_TRACKING_URI").update(
        value=TRACKING_URI.replace(str(MLFLOW["port"]), "5001")), "tracking_uri"),
    "ConfigMap in the Airflow extraEnv": ("values/airflow-values.yaml", lambda values: values.update(
        extraEnv=values["extraEnv"].replace(ENVIRONMENT_CONFIGMAP, "fraudops-env", 1)),
        "configmap 'fraudops-env'"),
    "Airflow key Secret": ("values/airflow-values.yaml", lambda values: values.update(
        jwtSecretName="fraudops-airflow-jwt"), "secret 'fraudops-airflow-jwt'"),
    "jobs namespace of spark-operator": ("values/spark-operator-values.yaml", lambda values: values[
        "spark"].update(jobNamespaces=["fraudops-job"]), "namespace 'fraudops-job'"),
}


@pytest.mark.parametrize("case", sorted(MUTATIONS))
def test_a_mismatched_name_is_caught(case):
    key, mutate, expected = MUTATIONS[case]
    original = SOURCES[key]()
    assert not violations(original), "the unmutated source must be clean"
    mutated = copy.deepcopy(original.data)
    mutate(mutated)
    found = violations(Source(original.name, original.tags, mutated))
    assert any(expected in line for line in found), found


def test_an_unknown_category_value_is_reported_with_its_path():
    found = violations(Source("inline", frozenset(), {"spec": {"serviceAccountName": "spark"}}))
    assert found == ["inline: service_account 'spark' at spec.serviceAccountName"]


def test_terraform_checker_catches_a_literal_name():
    resources = copy.deepcopy(terraform_resources())
    resources["yandex_storage_bucket.lake"]["bucket"] = BUCKETS["lake"]
    resources["yandex_iam_service_account.nodes"]["name"] = "${local.project}-k8s-nodes"
    resources["yandex_kubernetes_node_group.spark"]["node_labels"] = {
        POOL["label_key"]: "${local.spark_pool.label_value}"}
    found = "\n".join(terraform_reference_violations(resources, hcl.locals_()))
    assert "yandex_storage_bucket.lake.bucket" in found
    assert "yandex_iam_service_account.nodes.name" in found
    assert "node_labels" in found


def test_terraform_checker_catches_a_local_that_stops_reading_platform_yaml():
    defined = copy.deepcopy(hcl.locals_())
    defined["buckets"] = {**{k: f"${{local.platform.buckets.{k}}}" for k in BUCKETS},
                          "airflow_logs": "fraudops-airflow-logs"}
    defined["spark_node_taint"] = "fraudops.io/pool=${local.spark_pool.taint_value}:NoSchedule"
    found = "\n".join(terraform_reference_violations(terraform_resources(), defined))
    assert "yandex_storage_bucket.airflow_logs.bucket" in found
    assert "yandex_storage_bucket.lake.bucket" not in found
    assert "node_taints" in found


def test_terraform_literal_scan_catches_a_retyped_name():
    files = copy.deepcopy(hcl.parsed_files())
    (lake,) = [block["yandex_storage_bucket"]["lake"] for block in files["storage.tf"]["resource"]
               if "lake" in block.get("yandex_storage_bucket", {})]
    lake["bucket"] = "fraudops-lake"
    (output,) = [block["lake_root"] for block in files["outputs.tf"]["output"]
                 if "lake_root" in block]
    output["value"] = "s3a://fraudops-lake/${local.lake_prefix}"
    found = set(literal_platform_names(files)) - set(literal_platform_names(hcl.parsed_files()))
    assert len(found) == 2 and all("'fraudops-lake'" in line for line in found), found
