"""k8s/ built with `kubectl kustomize`: every overlay renders, every object is valid for the
Kubernetes API, and the base grants, isolates and limits exactly what the platform needs."""

from __future__ import annotations

import base64
from urllib.parse import urlparse

import pytest

from fraudops.core.platform import platform
from tests.k8s.manifests import CUSTOM_KINDS, K8S, OVERLAYS, by_kind, kustomize, one, validate

NAMES = platform()
NS = NAMES["namespaces"]
SA = NAMES["service_accounts"]
CLUSTER_SCOPED = {"Namespace", "ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition"}


def overlay(name):
    return kustomize(K8S / "overlays" / name)


@pytest.fixture(scope="module", params=OVERLAYS)
def built(request):
    return request.param, overlay(request.param)


def test_every_object_is_valid_and_namespaced_explicitly(built):
    name, objs = built
    assert objs, name
    for obj in objs:
        if obj["kind"] not in CUSTOM_KINDS:
            validate(obj)
        if obj["kind"] not in CLUSTER_SCOPED:
            assert obj["metadata"].get("namespace") in NS.values(), obj["metadata"]["name"]


def test_the_validator_catches_a_broken_object():
    role = one(overlay("yandex"), "Role", "spark-driver")
    role["rules"][0]["verbz"] = role["rules"][0].pop("verbs")
    with pytest.raises(Exception, match="verbz|verbs"):
        validate(role)


def test_namespaces_and_pod_security(built):
    _, objs = built
    namespaces = {n["metadata"]["name"]: n["metadata"]["labels"] for n in by_kind(objs, "Namespace")}
    assert set(namespaces) == set(NS.values())
    # Every namespace of the platform takes "restricted" (Airflow and spark-operator included).
    for namespace in NS.values():
        assert namespaces[namespace]["pod-security.kubernetes.io/enforce"] == "restricted", namespace


def test_spark_driver_identity_in_the_jobs_namespace(built):
    _, objs = built
    account = one(objs, "ServiceAccount", SA["spark_driver"])
    assert account["metadata"]["namespace"] == NS["jobs"]
    role = one(objs, "Role", SA["spark_driver"])
    (rule,) = role["rules"]
    assert set(rule["resources"]) == {"pods", "services", "configmaps", "persistentvolumeclaims"}
    # What Spark's driver calls (see the file's comment): no update or patch.
    assert set(rule["verbs"]) == {"create", "get", "list", "watch", "delete", "deletecollection"}
    binding = one(objs, "RoleBinding", SA["spark_driver"])
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": SA["spark_driver"], "namespace": NS["jobs"]}]
    # The executors' identity: no token, bound to nothing.
    executor = one(objs, "ServiceAccount", SA["spark_executor"])
    assert executor["metadata"]["namespace"] == NS["jobs"]
    assert executor["automountServiceAccountToken"] is False
    assert not [b for b in by_kind(objs, "RoleBinding") + by_kind(objs, "ClusterRoleBinding")
                if any(s["name"] == SA["spark_executor"] for s in b["subjects"])]


def test_airflow_workers_may_only_run_spark_applications_in_the_jobs_namespace(built):
    _, objs = built
    bindings = [b for b in by_kind(objs, "RoleBinding") + by_kind(objs, "ClusterRoleBinding")
                if any(s["name"] == SA["airflow_worker"] for s in b["subjects"])]
    (binding,) = bindings
    assert binding["kind"] == "RoleBinding" and binding["metadata"]["namespace"] == NS["jobs"]
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": SA["airflow_worker"], "namespace": NS["platform"]}]
    role = one(objs, "Role", binding["roleRef"]["name"])
    grants = {(group, resource): set(rule["verbs"]) for rule in role["rules"]
              for group in rule["apiGroups"] for resource in rule["resources"]}
    assert grants[("sparkoperator.k8s.io", "sparkapplications")] == {
        "create", "get", "list", "watch", "delete"}
    # What the provider calls: get_namespaced_custom_object_status, patch_namespaced_pod.
    assert grants[("sparkoperator.k8s.io", "sparkapplications/status")] == {"get"}
    assert grants[("", "pods")] == {"get", "list", "watch", "patch"}
    assert grants[("", "pods/log")] == {"get", "list", "watch"}
    assert all(verbs <= {"get", "list", "watch"} for (group, resource), verbs in grants.items()
               if resource not in {"sparkapplications", "pods"})
    assert not any("*" in verbs or resource == "secrets" for (_, resource), verbs in grants.items())


def policies(objs, namespace):
    return [p for p in by_kind(objs, "NetworkPolicy") if p["metadata"]["namespace"] == namespace]


def egress_ports(policy):
    return {port["port"] for rule in policy["spec"].get("egress", []) for port in rule.get("ports", [])}


@pytest.mark.parametrize("namespace", ["platform", "jobs", "spark_operator"])
def test_default_deny_with_dns_and_the_api(built, namespace):
    _, objs = built
    found = {p["metadata"]["name"]: p for p in policies(objs, NS[namespace])}
    deny = found["default-deny"]["spec"]
    assert deny == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}
    assert egress_ports(found["allow-dns"]) == {53}
    (peer,) = found["allow-dns"]["spec"]["egress"][0]["to"]
    assert peer["podSelector"] == {"matchLabels": {"k8s-app": "kube-dns"}}
    assert 443 in egress_ports(found["allow-api-server-egress"])
    assert "allow-https-egress" not in found, "no port-only egress (test_network_policies.py)"


def test_jobs_reach_mlflow_on_its_port_only(built):
    _, objs = built
    policy = one(objs, "NetworkPolicy", "allow-mlflow-egress")
    (rule,) = policy["spec"]["egress"]
    (peer,) = rule["to"]
    assert peer["namespaceSelector"]["matchLabels"] == {"kubernetes.io/metadata.name": NS["platform"]}
    assert peer["podSelector"]["matchLabels"] == {"app.kubernetes.io/name": "mlflow"}
    assert egress_ports(policy) == {NAMES["mlflow"]["port"]}


def test_jobs_quota_and_limits(built):
    _, objs = built
    quota = one(objs, "ResourceQuota")
    assert quota["metadata"]["namespace"] == NS["jobs"]
    hard = quota["spec"]["hard"]
    assert {"requests.cpu", "requests.memory", "limits.memory", "pods",
            "count/sparkapplications.sparkoperator.k8s.io"} <= set(hard)
    limits = one(objs, "LimitRange")["spec"]["limits"][0]
    assert limits["type"] == "Container" and limits["default"]["memory"]


def test_environment_config_map(built):
    name, objs = built
    data = one(objs, "ConfigMap", "fraudops-environment")["data"]
    images = NAMES["images"]
    for key in ("spark", "airflow", "mlflow"):
        assert data[f"{key}_image"].split("/")[-1].split(":")[0] == images[key]
    assert data["s3_region"] == NAMES["s3"]["region"]
    if name == "yandex":
        assert data["s3_endpoint"] == NAMES["s3"]["endpoint"]
    else:
        assert urlparse(data["s3_endpoint"]).hostname == f"minio.{NS['platform']}.svc.cluster.local"


def test_yandex_has_no_secret_and_reaches_managed_postgres():
    objs = overlay("yandex")
    assert by_kind(objs, "Secret") == []
    policy = one(objs, "NetworkPolicy", "allow-managed-postgres-egress")
    assert egress_ports(policy) == {6432}


def secret_data(secret):
    return {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}


def test_dev_secrets_are_labelled_dev_only_and_consistent():
    objs = overlay("dev")
    secrets = by_kind(objs, "Secret")
    assert secrets and all(s["metadata"]["labels"]["fraudops.io/dev-only"] == "true" for s in secrets)
    named = {(s["metadata"]["namespace"], s["metadata"]["name"]): secret_data(s) for s in secrets}
    for namespace, key in ((NS["jobs"], "s3_spark"), (NS["platform"], "s3_airflow"),
                           (NS["platform"], "s3_mlflow")):
        assert set(named[(namespace, NAMES["secrets"][key])]) == {
            "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"}
    postgres = named[(NS["platform"], "dev-postgres")]
    airflow = urlparse(named[(NS["platform"], NAMES["secrets"]["airflow_db"])]["connection"])
    mlflow = urlparse(named[(NS["platform"], NAMES["secrets"]["mlflow_db"])]["uri"])
    assert airflow.password == postgres["AIRFLOW_DB_PASSWORD"]
    assert mlflow.password == postgres["MLFLOW_DB_PASSWORD"]
    assert (airflow.username, airflow.path) == (NAMES["postgres"]["users"]["airflow"],
                                               "/" + NAMES["postgres"]["databases"]["airflow"])
    assert (mlflow.username, mlflow.path) == (NAMES["postgres"]["users"]["mlflow"],
                                             "/" + NAMES["postgres"]["databases"]["mlflow"])
    keys = named[(NS["platform"], NAMES["secrets"]["airflow_keys"])]
    assert len(base64.urlsafe_b64decode(keys["fernet-key"])) == 32  # a valid Fernet key
    assert all(value.startswith("dev-only") for data in named.values() for key, value in data.items()
               if key != "fernet-key" and "://" not in value)
    # The bucket Job creates exactly the users the component Secrets hold.
    users = named[(NS["platform"], "dev-minio-users")]
    for component, namespace in (("spark", NS["jobs"]), ("airflow", NS["platform"]),
                                 ("mlflow", NS["platform"])):
        keys = named[(namespace, NAMES["secrets"][f"s3_{component}"])]
        assert (users[f"{component.upper()}_KEY"], users[f"{component.upper()}_SECRET"]) == (
            keys["AWS_ACCESS_KEY_ID"], keys["AWS_SECRET_ACCESS_KEY"])


def test_dev_creates_the_platform_buckets_and_opens_minio_to_the_jobs():
    objs = overlay("dev")
    job = one(objs, "Job", "minio-buckets")
    script = job["spec"]["template"]["spec"]["containers"][0]["args"][0]
    for bucket in NAMES["buckets"].values():
        assert f"local/{bucket}" in script
    assert f"--region {NAMES['s3']['region']}" in script
    minio = one(objs, "StatefulSet", "minio")
    env = {e["name"]: e for e in minio["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["MINIO_SITE_REGION"]["value"] == NAMES["s3"]["region"]
    assert egress_ports(one(objs, "NetworkPolicy", "allow-minio-egress")) == {9000}


def test_dev_images_are_pinned_by_digest():
    for obj in overlay("dev"):
        if obj["kind"] in ("StatefulSet", "Job"):
            for container in obj["spec"]["template"]["spec"]["containers"]:
                image = container["image"]
                assert "@sha256:" in image and ":latest" not in image, image
