"""charts/mlflow rendered by Helm's own engine with several value sets: lint-clean, valid for the
Kubernetes API, hardened, wired to Secrets only, and its schema refusing what it must refuse."""

from __future__ import annotations

import json

import pytest
import yaml

from fraudops.core.platform import platform
from tests.k8s.manifests import (
    MLFLOW_CHART,
    by_kind,
    containers,
    deep_merge,
    helm,
    objects,
    one,
    pod_specs,
    render_chart,
    validate,
)

NAMES = platform()
RELEASE = NAMES["mlflow"]["service"]
NAMESPACE = NAMES["namespaces"]["platform"]
DEFAULTS = yaml.safe_load((MLFLOW_CHART / "values.yaml").read_text())

VALUE_SETS = {
    "defaults": {},
    "ingress-and-auth": {
        "ingress": {"enabled": True, "className": "nginx", "host": "mlflow.example.org",
                    "tls": {"enabled": True, "secretName": "mlflow-tls"}},
        "auth": {"enabled": True},
        "server": {"corsAllowedOrigins": ["https://notebooks.example.org"],
                   "extraAllowedHosts": ["mlflow.internal"]},
    },
    "single-replica-pinned-digest": {
        "replicaCount": 1,
        "image": {"digest": "sha256:" + "a" * 64},
        "networkPolicy": {"enabled": False},
        "backendStore": {"upgradeOnStart": False},
        "tests": {"enabled": False},
        "auth": {"enabled": False},
    },
}


def render(values=None, release=RELEASE):
    return render_chart(MLFLOW_CHART, values, release=release, namespace=NAMESPACE)


@pytest.fixture(scope="module", params=sorted(VALUE_SETS))
def rendered(request):
    values = VALUE_SETS[request.param]
    return request.param, values, render(values)


def server(objs):
    deployment = one(objs, "Deployment")
    return deployment, next(c for c in deployment["spec"]["template"]["spec"]["containers"]
                            if c["name"] == "mlflow")


def env_of(container):
    return {e["name"]: e for e in container.get("env", [])}


def test_lint_is_clean_in_strict_mode():
    for values in VALUE_SETS.values():
        report = helm().lint(str(MLFLOW_CHART), values, strict=True, namespace=NAMESPACE,
                             kube_version="v1.33.0")
        assert report["errors"] == [], report
        assert [m for m in report["messages"] if m["severity"] >= 2] == [], report


def test_every_object_is_valid_for_the_kubernetes_api(rendered):
    _, _, out = rendered
    objs = objects(out)
    assert objs
    for obj in objs:
        validate(obj)
        assert obj["metadata"]["namespace"] == NAMESPACE


def test_names_are_the_platform_names(rendered):
    _, values, out = rendered
    objs = objects(out)
    service = one(objs, "Service")
    assert service["metadata"]["name"] == NAMES["mlflow"]["service"]
    assert service["spec"]["ports"][0]["port"] == NAMES["mlflow"]["port"]
    assert one(objs, "ServiceAccount")["metadata"]["name"] == NAMES["service_accounts"]["mlflow"]
    deployment, container = server(objs)
    pod = deployment["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == NAMES["service_accounts"]["mlflow"]
    assert pod["automountServiceAccountToken"] is False
    assert set(service["spec"]["selector"].items()) <= set(
        deployment["spec"]["template"]["metadata"]["labels"].items())


def test_security_context_is_restricted(rendered):
    _, _, out = rendered
    for name, pod in pod_specs(objects(out)):
        assert pod["securityContext"]["runAsNonRoot"] is True, name
        assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault", name
        for container in containers(pod):
            context = container["securityContext"]
            assert context["allowPrivilegeEscalation"] is False, name
            assert context["readOnlyRootFilesystem"] is True, name
            assert context["capabilities"]["drop"] == ["ALL"], name
            assert context["runAsNonRoot"] is True, name
            assert container["resources"]["requests"] and container["resources"]["limits"]["memory"]
            mounts = {m["mountPath"] for m in container.get("volumeMounts", [])}
            if pod.get("volumes"):
                assert "/tmp" in mounts, f"{name}/{container['name']}: writable /tmp"


def test_server_command_proxies_artifacts_and_checks_hosts(rendered):
    _, values, out = rendered
    _, container = server(objects(out))
    args = container["args"]
    assert args[0] == "server"
    assert "--serve-artifacts" in args
    bucket = NAMES["buckets"]["mlflow_artifacts"]
    assert f"--artifacts-destination=s3://{bucket}/" in args
    assert f"--port={NAMES['mlflow']['port']}" in args
    assert ("--app-name=basic-auth" in args) == values.get("auth", {}).get(
        "enabled", DEFAULTS["auth"]["enabled"])
    hosts = env_of(container)["MLFLOW_SERVER_ALLOWED_HOSTS"]["value"].split(",")
    svc = f"{NAMES['mlflow']['service']}.{NAMESPACE}.svc.cluster.local"
    # What the jobs send (MLFLOW_TRACKING_URI's host with its port) and port-forward's localhost.
    assert {svc, f"{svc}:*", "localhost:*", NAMES["mlflow"]["service"]} <= set(hosts)
    assert "*" not in hosts
    if values.get("ingress", {}).get("enabled"):
        assert values["ingress"]["host"] in hosts and "mlflow.internal" in hosts


def test_credentials_come_from_existing_secrets_only(rendered):
    _, values, out = rendered
    objs = objects(out)
    assert by_kind(objs, "Secret") == [], "the chart must not create Secrets"
    _, container = server(objs)
    env = env_of(container)
    assert env["MLFLOW_BACKEND_STORE_URI"]["valueFrom"]["secretKeyRef"] == {
        "name": NAMES["secrets"]["mlflow_db"], "key": "uri"}
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        assert env[key]["valueFrom"]["secretKeyRef"] == {
            "name": NAMES["secrets"]["s3_mlflow"], "key": key}
    assert env["MLFLOW_S3_ENDPOINT_URL"]["value"] == NAMES["s3"]["endpoint"]
    for entry in env.values():
        assert "value" in entry or "secretKeyRef" in entry.get("valueFrom", {})
    # The auth bootstrap Job runs the chart's script (its own words are no values) and names
    # the Secret keys and files that hold passwords.
    script = (MLFLOW_CHART / "files" / "auth-bootstrap.py").read_text()
    for job in by_kind(objs, "Job"):
        for container in job["spec"]["template"]["spec"]["containers"]:
            assert container["args"] == [script]
            container["args"] = []
    text = yaml.safe_dump_all(objs).lower()
    for name in ("mlflow_tracking_password", NAMES["mlflow"]["auth_spark_password_key"],
                 "passwordfile"):
        text = text.replace(name, "")
    for word in ("password", "postgresql://"):
        assert word not in text, word


def test_database_is_upgraded_before_the_server_starts(rendered):
    _, values, out = rendered
    deployment, _ = server(objects(out))
    init = deployment["spec"]["template"]["spec"].get("initContainers", [])
    if values.get("backendStore", {}).get("upgradeOnStart", True):
        (upgrade,) = init
        assert "pg_advisory_lock" in upgrade["args"][0]
        # Both paths of MLflow's schema code; tests/k8s/test_mlflow_chart_runs.py runs them.
        assert "utils._initialize_tables(engine)" in upgrade["args"][0]
        assert "utils._upgrade_db(engine)" in upgrade["args"][0]
        assert env_of(upgrade)["MLFLOW_BACKEND_STORE_URI"]["valueFrom"]["secretKeyRef"]
    else:
        assert init == []


def test_probes_hit_health(rendered):
    _, _, out = rendered
    _, container = server(objects(out))
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        assert container[probe]["httpGet"] == {"path": "/health", "port": "http"}


def test_network_policy_admits_only_platform_and_jobs_on_the_port(rendered):
    _, values, out = rendered
    policies = by_kind(objects(out), "NetworkPolicy")
    if not values.get("networkPolicy", {}).get("enabled", True):
        assert policies == []
        return
    (policy,) = policies
    (rule,) = policy["spec"]["ingress"]
    assert rule["ports"] == [{"port": "http", "protocol": "TCP"}]
    namespaces = {peer["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"]
                  for peer in rule["from"]}
    assert namespaces == {NAMES["namespaces"]["platform"], NAMES["namespaces"]["jobs"]}


def test_disruption_budget_follows_replicas(rendered):
    _, values, out = rendered
    budgets = by_kind(objects(out), "PodDisruptionBudget")
    replicas = values.get("replicaCount", DEFAULTS["replicaCount"])
    assert len(budgets) == (1 if replicas > 1 else 0)
    one_deployment = one(objects(out), "Deployment")
    assert one_deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0


def test_auth_mounts_the_server_secret():
    objs = objects(render(VALUE_SETS["ingress-and-auth"]))
    deployment, container = server(objs)
    env = env_of(container)
    assert env["MLFLOW_AUTH_CONFIG_PATH"]["value"] == "/etc/mlflow/auth/basic_auth.ini"
    assert env["MLFLOW_FLASK_SERVER_SECRET_KEY"]["valueFrom"]["secretKeyRef"]["name"] == (
        NAMES["secrets"]["mlflow_auth_server"])
    (volume,) = [v for v in deployment["spec"]["template"]["spec"]["volumes"]
                 if v["name"] == "auth-config"]
    assert volume["secret"]["secretName"] == NAMES["secrets"]["mlflow_auth_server"]
    ingress = one(objs, "Ingress")
    assert ingress["spec"]["rules"][0]["host"] == "mlflow.example.org"
    assert ingress["spec"]["tls"][0]["secretName"] == "mlflow-tls"


def test_image_digest_wins_over_tag():
    _, container = server(objects(render(VALUE_SETS["single-replica-pinned-digest"])))
    assert container["image"] == "fraudops-mlflow@sha256:" + "a" * 64
    _, container = server(objects(render()))
    assert container["image"] == f"{NAMES['images']['mlflow']}:{NAMES['images']['default_tag']}"


def test_helm_test_pod_gets_health_through_the_service():
    rendered = render()
    test_pod = one(objects(rendered), "Pod")
    assert test_pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    script = test_pod["spec"]["containers"][0]["args"][0]
    assert f"http://{RELEASE}:{NAMES['mlflow']['port']}/health" in script
    selector = one(objects(rendered), "Service")["spec"]["selector"]
    assert not set(selector.items()) <= set(test_pod["metadata"]["labels"].items())


def test_notes_give_the_port_forward_command():
    notes = render()["mlflow/templates/NOTES.txt"]
    port = NAMES["mlflow"]["port"]
    assert f"kubectl --namespace {NAMESPACE} port-forward service/{RELEASE} {port}:{port}" in notes
    assert f"http://{RELEASE}.{NAMESPACE}.svc.cluster.local:{port}" in notes


def test_auth_is_on_by_default_and_off_only_in_dev():
    assert DEFAULTS["auth"]["enabled"] is True
    _, container = server(objects(render()))
    assert "--app-name=basic-auth" in container["args"]
    dev = yaml.safe_load((MLFLOW_CHART.parent / "mlflow-values.dev.yaml").read_text())
    assert dev["auth"]["enabled"] is False


def test_ingress_without_auth_fails_to_render():
    with pytest.raises(helm().HelmError):
        render({"ingress": {"enabled": True, "host": "mlflow.example.org"},
                "auth": {"enabled": False}})
    # The same Ingress with auth renders.
    assert one(objects(render({"ingress": {"enabled": True, "host": "mlflow.example.org"}})),
               "Ingress")


def test_ingress_without_host_fails_to_render():
    with pytest.raises(helm().HelmRenderError, match="ingress.host"):
        render({"ingress": {"enabled": True}})


BAD_VALUES = {
    "unknown top-level key": {"replicas": 3},
    "zero replicas": {"replicaCount": 0},
    "artifacts not in S3": {"artifacts": {"destination": "file:///tmp/artifacts"}},
    "malformed digest": {"image": {"digest": "latest"}},
    "credential in values": {"backendStore": {"uri": "postgresql://u:p@h/db"}},
    "unknown key under server": {"server": {"allowedHosts": ["*"]}},
    "wrong type": {"auth": {"enabled": "yes"}},
    "ingress without auth": {"ingress": {"enabled": True, "host": "mlflow.example.org"},
                             "auth": {"enabled": False}},
}


@pytest.mark.parametrize("case", sorted(BAD_VALUES))
def test_schema_rejects_bad_values(case):
    values = deep_merge(DEFAULTS, BAD_VALUES[case])
    with helm().Chart.load(str(MLFLOW_CHART)) as chart:
        chart.validate_schema(DEFAULTS)  # the defaults themselves pass
        with pytest.raises(helm().HelmError):
            chart.validate_schema(values)


def test_schema_is_closed_at_the_top_level_and_documents_every_default():
    schema = json.loads((MLFLOW_CHART / "values.schema.json").read_text())
    assert schema["additionalProperties"] is False
    assert set(schema["properties"]) == set(DEFAULTS)
