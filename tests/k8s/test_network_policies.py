"""NetworkPolicies of both overlays: every namespace denies by default, every egress rule names
its destination (no port-only rule that reaches the whole internet), the yandex CIDRs are
Terraform's, and spark-operator's namespace lets in only its webhook's port."""

from __future__ import annotations

import ipaddress

import pytest

from fraudops.core.platform import platform
from tests.k8s.manifests import (
    K8S,
    MLFLOW_CHART,
    OVERLAYS,
    by_kind,
    kustomize,
    objects,
    render_chart,
)
from tests.terraform import hcl

NAMES = platform()
NS = NAMES["namespaces"]


def overlay_policies(name):
    return by_kind(kustomize(K8S / "overlays" / name), "NetworkPolicy")


def egress_rules(policies):
    for policy in policies:
        for rule in policy["spec"].get("egress", []):
            yield f"{policy['metadata']['namespace']}/{policy['metadata']['name']}", rule


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_no_egress_rule_lacks_a_destination(overlay):
    chart = by_kind(objects(render_chart(MLFLOW_CHART, {}, release="mlflow",
                                         namespace=NS["platform"])), "NetworkPolicy")
    rules = list(egress_rules(overlay_policies(overlay) + chart))
    assert rules
    for name, rule in rules:
        assert rule.get("to"), f"{name}: an egress rule without a destination allows any address"
        for peer in rule["to"]:
            assert peer.get("ipBlock") or "podSelector" in peer or "namespaceSelector" in peer, name
            if "ipBlock" in peer:
                network = ipaddress.ip_network(peer["ipBlock"]["cidr"])
                assert network.prefixlen >= 8 and not peer["ipBlock"].get("except"), name
        # Same-namespace rules may leave ports open; anything else names its ports.
        if any("ipBlock" in peer or "namespaceSelector" in peer for peer in rule["to"]):
            assert rule.get("ports"), f"{name}: name the ports of a destination outside the namespace"


def test_the_checker_catches_a_port_only_rule():
    policy = {"metadata": {"namespace": "x", "name": "https"},
              "spec": {"egress": [{"ports": [{"port": 443}]}]}}
    ((_, rule),) = egress_rules([policy])
    assert not rule.get("to")


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_namespace_denies_by_default(overlay):
    policies = overlay_policies(overlay)
    for namespace in NS.values():
        deny = [p for p in policies if p["metadata"]["namespace"] == namespace
                and p["metadata"]["name"] == "default-deny"]
        assert [p["spec"] for p in deny] == [{"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_spark_operator_lets_in_its_webhook_and_reaches_the_api_only(overlay):
    policies = {p["metadata"]["name"]: p for p in overlay_policies(overlay)
                if p["metadata"]["namespace"] == NS["spark_operator"]}
    assert set(policies) == {"default-deny", "allow-webhook-from-api-server", "allow-dns",
                             "allow-api-server-egress"}
    webhook = policies["allow-webhook-from-api-server"]["spec"]
    assert webhook["podSelector"] == {"matchLabels": {"app.kubernetes.io/component": "webhook"}}
    assert webhook["policyTypes"] == ["Ingress"]
    (rule,) = webhook["ingress"]
    assert rule["ports"] == [{"port": 9443, "protocol": "TCP"}]
    for name, policy in policies.items():
        if name != "allow-webhook-from-api-server":
            assert "ingress" not in policy["spec"], name


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_only_drivers_and_airflow_reach_the_api(overlay):
    api = {p["metadata"]["namespace"]: p["spec"]["podSelector"] for p in overlay_policies(overlay)
           if p["metadata"]["name"] == "allow-api-server-egress"}
    assert api == {NS["platform"]: {"matchLabels": {"tier": "airflow"}},
                   NS["jobs"]: {"matchLabels": {"spark-role": "driver"}},
                   NS["spark_operator"]: {}}


def cidrs(policy):
    return [peer["ipBlock"]["cidr"] for rule in policy["spec"]["egress"] for peer in rule["to"]]


def test_yandex_cidrs_are_terraforms():
    variables = hcl.variables()
    vpc, storage = variables["network_cidr"]["default"], variables["object_storage_cidrs"]["default"]
    for policy in overlay_policies("yandex"):
        name = policy["metadata"]["name"]
        if name == "allow-object-storage-egress":
            assert cidrs(policy) == storage
        elif name in ("allow-api-server-egress", "allow-managed-postgres-egress"):
            assert cidrs(policy) == [vpc]
    namespaces = {p["metadata"]["namespace"] for p in overlay_policies("yandex")
                  if p["metadata"]["name"] == "allow-object-storage-egress"}
    assert namespaces == {NS["platform"], NS["jobs"]}
    assert hcl.resolve(hcl.outputs()["egress_cidrs"]["value"]) == {
        "vpc": "${var.network_cidr}", "object_storage": "${var.object_storage_cidrs}"}


def test_yandex_api_egress_allows_every_port_terraform_opens_on_the_master():
    """Calico applies egress rules after kube-proxy's DNAT: the `kubernetes` Service's 443
    becomes an address and port of its Endpoints, which only a live cluster shows. Both ports
    the master's security group opens are allowed, in every namespace that calls the API."""
    master_ports = {rule["port"] for rule in
                    hcl.resource("yandex_vpc_security_group.api").body["ingress"]}
    assert master_ports == {443, 6443}
    api = [p for p in overlay_policies("yandex") if p["metadata"]["name"] == "allow-api-server-egress"]
    assert {p["metadata"]["namespace"] for p in api} == {NS["platform"], NS["jobs"],
                                                         NS["spark_operator"]}
    for policy in api:
        ports = {port["port"] for rule in policy["spec"]["egress"] for port in rule["ports"]}
        assert ports == master_ports, policy["metadata"]["namespace"]
