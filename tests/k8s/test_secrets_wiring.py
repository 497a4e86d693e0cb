"""One S3 key per component reaches exactly that component's pods, in both overlays, and in dev
the MinIO user behind each key can write only the bucket its component owns (the same policy as
terraform/iam.tf, tests/terraform/test_least_privilege.py)."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
import yaml

from fraudops.core.platform import platform
from fraudops.orchestration import spark_application as sa
from tests.k8s.manifests import CHARTS, K8S, MLFLOW_CHART, OVERLAYS, by_kind, kustomize, one
from tests.terraform.test_least_privilege import OWNS, SECRET_OF

NAMES = platform()
NS = NAMES["namespaces"]
S3_SECRETS = {component: NAMES["secrets"][key] for component, key in SECRET_OF.items()}
# Where each component's pods run.
NAMESPACE_OF = {"spark": NS["jobs"], "airflow": NS["platform"], "mlflow": NS["platform"],
                "spark_history": NS["platform"]}
WRITE_ACTIONS = ("s3:*", "s3:PutObject", "s3:DeleteObject", "s3:Put*", "s3:Delete*")


def s3_secret_refs(node) -> set[str]:
    """Names of the Secrets whose AWS_* keys ``node`` reads."""
    found = set()
    if isinstance(node, dict):
        ref = node.get("secretKeyRef")
        if isinstance(ref, dict) and str(ref.get("key", "")).startswith("AWS_"):
            found.add(ref["name"])
        if node.get("secretKey", "").startswith("AWS_") and "secretName" in node:
            found.add(node["secretName"])
        for value in node.values():
            found |= s3_secret_refs(value)
    elif isinstance(node, list):
        for item in node:
            found |= s3_secret_refs(item)
    return found


def test_each_component_reads_only_its_own_key():
    # The SparkApplication's one S3 Secret is filled with secrets.s3_spark (the filled
    # applications are checked in tests/orchestration/test_spark_application.py).
    template = yaml.safe_load((K8S / "spark" / "sparkapplication.template.yaml").read_text())
    assert s3_secret_refs(template) == {"${s3_secret}"}
    assert '"s3_secret": names["secrets"]["s3_spark"]' in Path(sa.__file__).read_text()
    airflow = yaml.safe_load((CHARTS / "airflow-values.yaml").read_text())
    assert s3_secret_refs(airflow) == {S3_SECRETS["airflow"]}
    mlflow = yaml.safe_load((MLFLOW_CHART / "values.yaml").read_text())
    assert mlflow["artifacts"]["s3"]["existingSecret"] == S3_SECRETS["mlflow"]
    history = yaml.safe_load_all((K8S / "base" / "spark-history.yaml").read_text())
    assert s3_secret_refs(list(history)) == {S3_SECRETS["spark_history"]}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_only_the_spark_history_server_reads_its_key(overlay):
    from tests.k8s.manifests import pod_specs

    readers = {name for name, pod in pod_specs(kustomize(K8S / "overlays" / overlay))
               if S3_SECRETS["spark_history"] in s3_secret_refs(pod)}
    assert readers == {f"Deployment/{NAMES['spark_history']['service']}"}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_each_key_lives_only_in_its_components_namespace(overlay):
    objs = kustomize(K8S / "overlays" / overlay)
    if overlay == "dev":
        provided = {(s["metadata"]["namespace"], s["metadata"]["name"]) for s in by_kind(objs, "Secret")
                    if set(s.get("data", {})) == {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"}}
    else:
        assert by_kind(objs, "Secret") == [], "yandex Secrets come from Lockbox only"
        provided = {(e["metadata"]["namespace"], e["spec"]["target"]["name"])
                    for e in by_kind(objs, "ExternalSecret")
                    if {d["secretKey"] for d in e["spec"]["data"]} == {
                        "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"}}
    assert provided == {(NAMESPACE_OF[c], S3_SECRETS[c]) for c in OWNS}


def test_yandex_external_secrets_read_the_lockbox_secret_of_the_same_name():
    store = NAMES["external_secrets"]["store"]
    for external in by_kind(kustomize(K8S / "overlays" / "yandex"), "ExternalSecret"):
        spec = external["spec"]
        assert external["apiVersion"] == "external-secrets.io/v1"
        assert spec["secretStoreRef"] == {"kind": "SecretStore", "name": store}
        assert spec["target"]["name"] == external["metadata"]["name"]
        assert spec["target"]["name"] in NAMES["secrets"].values()
        for item in spec["data"]:
            assert item["remoteRef"] == {"key": spec["target"]["name"], "property": item["secretKey"]}


def _written_buckets(policy: dict) -> set[str]:
    buckets = set()
    for statement in policy["Statement"]:
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        if statement["Effect"] == "Allow" and any(a in WRITE_ACTIONS for a in actions):
            buckets |= {r.removeprefix("arn:aws:s3:::").split("/")[0] for r in statement["Resource"]}
    return buckets


def test_dev_minio_users_write_only_the_bucket_they_own():
    objs = kustomize(K8S / "overlays" / "dev")
    policies = one(objs, "ConfigMap", "dev-minio-policies")["data"]
    assert set(policies) == {f"{component}.json" for component in OWNS}
    for component, owned in OWNS.items():
        written = _written_buckets(json.loads(policies[f"{component}.json"]))
        assert written == {NAMES["buckets"][key] for key in owned}, component
    job = one(objs, "Job", "minio-buckets")
    script = job["spec"]["template"]["spec"]["containers"][0]["args"][0]
    for component in OWNS:
        assert f'attach {component} "${component.upper()}_KEY"' in script
    users = {k: base64.b64decode(v).decode()
             for k, v in one(objs, "Secret", "dev-minio-users")["data"].items()}
    root = one(objs, "Secret", "dev-minio-root")
    assert base64.b64decode(root["data"]["MINIO_ROOT_USER"]).decode() not in users.values()


def test_database_ca_is_mounted_where_the_uris_point():
    """sslmode=verify-full&sslrootcert=<ca_dir>/<ca_file> (terraform/locals.tf) needs the CA there
    in every pod that opens the database: all Airflow pods and both MLflow containers."""
    from tests.k8s.manifests import containers, objects, pod_specs, render_chart

    postgres = NAMES["postgres"]
    airflow = yaml.safe_load((CHARTS / "airflow-values.yaml").read_text())
    (volume,) = [v for v in airflow["volumes"] if v.get("configMap")]
    assert volume["configMap"] == {"name": postgres["ca_configmap"], "optional": True}
    assert {"name": volume["name"], "mountPath": postgres["ca_dir"], "readOnly": True} in (
        airflow["volumeMounts"])
    rendered = render_chart(MLFLOW_CHART, {}, release="mlflow", namespace=NS["platform"])
    (_, pod), = [p for p in pod_specs(objects(rendered)) if p[0].startswith("Deployment/")]
    (ca,) = [v for v in pod["volumes"] if v.get("configMap")]
    assert ca["configMap"] == {"name": postgres["ca_configmap"], "optional": True}
    for container in containers(pod):
        mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
        assert mounts[ca["name"]] == postgres["ca_dir"], container["name"]


# --- MLflow: the admin account stays with MLflow ------------------------------------------------

MLFLOW_ADMIN_SECRET = NAMES["secrets"]["mlflow_auth_server"]


def secret_names(node) -> set[str]:
    """Every Secret ``node`` reads: env and envFrom references, secret volumes, chart values."""
    found = set()
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("secretKeyRef", "secretRef") and isinstance(value, dict):
                found.add(value.get("name"))
            elif key in ("secretName", "existingSecret") or key.endswith("SecretName"):
                found.add(value)
            elif key == "extraEnv" and isinstance(value, str):
                found |= secret_names(yaml.safe_load(value))
            found |= secret_names(value)
    elif isinstance(node, list):
        for item in node:
            found |= secret_names(item)
    return found


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_only_mlflow_and_its_bootstrap_read_the_mlflow_admin_secret(overlay):
    from tests.k8s.manifests import pod_specs
    from tests.test_consistency import airflow_values, mlflow_chart, spark_applications

    for app in spark_applications(overlay):
        assert MLFLOW_ADMIN_SECRET not in secret_names(app), app["metadata"]["name"]
        assert NAMES["secrets"]["mlflow_auth"] in secret_names(app)
    assert MLFLOW_ADMIN_SECRET not in secret_names(airflow_values(overlay))
    assert NAMES["secrets"]["mlflow_auth"] not in secret_names(airflow_values(overlay))
    readers = {name for name, pod in pod_specs(mlflow_chart(dev=overlay == "dev"))
               if MLFLOW_ADMIN_SECRET in secret_names(pod)}
    # dev runs MLflow without auth (a throwaway local cluster).
    assert readers == (set() if overlay == "dev" else {
        f"Deployment/{NAMES['mlflow']['service']}",
        f"Job/{NAMES['mlflow']['service']}-auth-bootstrap"})
    objs = kustomize(K8S / "overlays" / overlay)
    assert not [name for name, pod in pod_specs(objs) if MLFLOW_ADMIN_SECRET in secret_names(pod)]
    holders = {(o["metadata"]["namespace"], o["metadata"]["name"]) for o in objs
               if o["kind"] in ("Secret", "ExternalSecret")
               and o["metadata"]["name"] == MLFLOW_ADMIN_SECRET}
    assert holders <= {(NS["platform"], MLFLOW_ADMIN_SECRET)}


def test_mlflow_bootstrap_grants_the_platform_account_what_it_reads_from_its_secret():
    from fraudops.model import tracking
    from tests.k8s.manifests import objects, render_chart

    mlflow = NAMES["mlflow"]
    bootstrap = yaml.safe_load((MLFLOW_CHART / "values.yaml").read_text())["auth"]["bootstrap"]
    assert bootstrap["experiment"] == tracking.EXPERIMENT
    assert bootstrap["registeredModel"] == mlflow["model_name"] == tracking.MODEL_NAME
    assert bootstrap["users"] == [{"username": mlflow["auth_spark_user"],
                                   "passwordKey": mlflow["auth_spark_password_key"],
                                   "permission": mlflow["auth_spark_permission"]}]
    rendered = objects(render_chart(MLFLOW_CHART, {}, release=mlflow["service"],
                                    namespace=NS["platform"]))
    job = one(rendered, "Job")["spec"]["template"]["spec"]
    (volume,) = [v for v in job["volumes"] if "secret" in v]
    needed = {item["key"] for item in volume["secret"]["items"]}
    external = {e["metadata"]["name"]: {d["secretKey"] for d in e["spec"]["data"]}
                for e in by_kind(kustomize(K8S / "overlays" / "yandex"), "ExternalSecret")}
    assert needed <= external[MLFLOW_ADMIN_SECRET]
    assert external[NAMES["secrets"]["mlflow_auth"]] == {
        "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"}
