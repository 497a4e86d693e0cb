"""Structural checks of terraform/ with python-hcl2: inputs and outputs documented, names taken
from platform.yaml, the security posture (private nodes and database, Calico, KMS everywhere,
least-privilege IAM) and the cost posture (Spark nodes preemptible, scaled from zero)."""

from __future__ import annotations

import re

import pytest

from fraudops.core.lake import Lake
from fraudops.core.platform import platform
from tests.terraform import hcl

# Resource types and where they take the platform labels. A new type must be placed here.
LABELLED = {
    "yandex_vpc_network", "yandex_vpc_subnet", "yandex_vpc_gateway", "yandex_vpc_route_table",
    "yandex_vpc_security_group", "yandex_iam_service_account", "yandex_kms_symmetric_key",
    "yandex_kubernetes_cluster", "yandex_kubernetes_node_group", "yandex_mdb_postgresql_cluster",
    "yandex_container_registry", "yandex_lockbox_secret",
}
TAGGED = {"yandex_storage_bucket", "yandex_storage_object"}  # Object Storage has tags, not labels
UNLABELLABLE = {
    "yandex_resourcemanager_folder_iam_member", "yandex_kms_symmetric_key_iam_member",
    "yandex_container_registry_iam_binding", "yandex_storage_bucket_iam_binding",
    "yandex_iam_service_account_static_access_key", "yandex_mdb_postgresql_user",
    "yandex_mdb_postgresql_database", "random_password", "yandex_lockbox_secret_version",
    "yandex_lockbox_secret_iam_member", "yandex_iam_service_account_key",
}
LABELS = "${local.labels}"
FOLDER_ROLES = {"k8s.clusters.agent", "vpc.publicAdmin", "logging.writer"}
BUCKETS = ("lake", "mlflow_artifacts", "airflow_logs")


def test_expected_files_exist():
    for name in ("versions.tf", "providers.tf", "variables.tf", "locals.tf", "network.tf",
                 "iam.tf", "kms.tf", "kubernetes.tf", "storage.tf", "postgres.tf",
                 "registry.tf", "outputs.tf", "backend.tf.example", "terraform.tfvars.example"):
        assert (hcl.TERRAFORM_DIR / name).is_file(), name


def test_terraform_and_providers_are_pinned():
    (terraform,) = [block for _, block in hcl.blocks("terraform")]
    assert terraform["required_version"].startswith(">= 1.")
    providers = hcl.one(terraform["required_providers"])
    assert providers["yandex"]["source"] == "yandex-cloud/yandex"
    assert re.fullmatch(r"~> 0\.\d+\.\d+", providers["yandex"]["version"])
    assert providers["random"]["source"] == "hashicorp/random"
    assert providers["random"]["version"].startswith("~> ")


def test_every_variable_is_typed_and_described():
    variables = hcl.variables()
    assert {"cloud_id", "folder_id", "zones", "kubernetes_version", "api_allowed_cidrs",
            "system_node_group", "spark_node_group"} <= variables.keys()
    for name, body in variables.items():
        assert body.get("type"), f"variable {name} has no type"
        assert len(body.get("description", "")) > 15, f"variable {name} is not described"


def test_ids_and_cidrs_are_validated():
    variables = hcl.variables()
    for name in ("cloud_id", "folder_id", "zones", "network_cidr", "cluster_ipv4_range",
                 "service_ipv4_range", "kubernetes_version", "api_allowed_cidrs"):
        assert variables[name].get("validation"), f"variable {name} is not validated"


def test_every_output_is_described():
    outputs = hcl.outputs()
    for name, body in outputs.items():
        assert len(body.get("description", "")) > 10, f"output {name} is not described"


def test_secret_outputs_are_sensitive_and_others_are_not():
    outputs = hcl.outputs()
    secret = {"lockbox_authorized_key"}
    for name, body in outputs.items():
        assert body.get("sensitive", False) is (name in secret), name


def test_every_resource_type_is_known_and_labelled():
    for resource in hcl.resources():
        kind = resource.type
        assert kind in LABELLED | TAGGED | UNLABELLABLE, f"decide how {kind} is labelled"
        if kind in LABELLED:
            assert resource.body.get("labels") == LABELS, f"{resource.address} is not labelled"
        if kind in TAGGED:
            assert resource.body.get("tags") == LABELS, f"{resource.address} is not tagged"


def test_labels_always_name_the_project():
    labels = hcl.resolve(hcl.locals_()["labels"])
    assert f'"project": "{platform()["project"]}"' in labels
    assert '"managed-by": "terraform"' in labels


def test_node_vms_carry_the_labels_too():
    for name in ("system", "spark"):
        group = hcl.resource(f"yandex_kubernetes_node_group.{name}").body
        assert hcl.one(group["instance_template"])["labels"] == LABELS


# --- names come from platform.yaml ----------------------------------------------------------


def test_platform_local_reads_platform_yaml():
    assert hcl.locals_()["platform"] == hcl.PLATFORM_LOCAL


@pytest.mark.parametrize("bucket", BUCKETS)
def test_bucket_names_come_from_platform_yaml(bucket):
    body = hcl.resource(f"yandex_storage_bucket.{bucket}").body
    assert body["bucket"] == f"${{local.buckets.{bucket}}}"
    assert hcl.resolve(body["bucket"]) == platform()["buckets"][bucket]


@pytest.mark.parametrize(("resource_name", "platform_key"), [
    ("cluster", "cloud_cluster"), ("nodes", "cloud_nodes"), ("secrets_reader", "cloud_secrets"),
])
def test_service_account_names_come_from_platform_yaml(resource_name, platform_key):
    body = hcl.resource(f"yandex_iam_service_account.{resource_name}").body
    assert body["name"].startswith("${local.")
    assert hcl.resolve(body["name"]) == platform()["service_accounts"][platform_key]


def test_spark_pool_label_and_taint_come_from_platform_yaml():
    pool = platform()["spark_node_pool"]
    group = hcl.resource("yandex_kubernetes_node_group.spark").body
    assert all(key.startswith("${") for key in group["node_labels"])
    assert hcl.resolve(group["node_labels"]) == {pool["label_key"]: pool["label_value"]}
    (taint,) = hcl.resolve(group["node_taints"])
    key_value, effect = taint.split(":")
    assert key_value == f"{pool['taint_key']}={pool['taint_value']}"
    # The provider maps NoSchedule to the API's NO_SCHEDULE; the SparkApplications tolerate it.
    assert effect == "NoSchedule"


def test_system_nodes_are_not_tainted():
    group = hcl.resource("yandex_kubernetes_node_group.system").body
    assert "node_taints" not in group


def test_postgres_databases_and_users_come_from_platform_yaml():
    names = platform()["postgres"]
    users = hcl.resource("yandex_mdb_postgresql_user.this").body
    databases = hcl.resource("yandex_mdb_postgresql_database.this").body
    assert hcl.resolve(users["for_each"]) == names["users"]
    assert hcl.resolve(databases["for_each"]) == names["databases"]
    assert users["name"] == databases["name"] == "${each.value}"
    assert databases["owner"] == "${yandex_mdb_postgresql_user.this[each.key].name}"
    assert names["databases"].keys() == names["users"].keys() == {"airflow", "mlflow"}


def test_namespaces_output_is_platform_yaml():
    assert hcl.resolve(hcl.outputs()["namespaces"]["value"]) == platform()["namespaces"]


def test_registry_url_uses_the_platform_registry_host():
    value = hcl.resolve(hcl.outputs()["registry_url"]["value"])
    assert value.startswith(platform()["images"]["registry_host"] + "/")


# --- Kubernetes -----------------------------------------------------------------------------


def test_cluster_has_calico_network_policies_and_kms_encryption():
    cluster = hcl.resource("yandex_kubernetes_cluster.this").body
    assert cluster["network_policy_provider"] == "CALICO"
    assert hcl.one(cluster["kms_provider"])["key_id"] == "${yandex_kms_symmetric_key.this.id}"


def test_master_is_patched_and_fenced():
    master = hcl.one(hcl.resource("yandex_kubernetes_cluster.this").body["master"])
    assert hcl.one(master["maintenance_policy"])["auto_upgrade"] is True
    assert master["public_ip"] == "${var.master_public_ip}"
    assert set(master["security_group_ids"]) == {
        "${yandex_vpc_security_group.cluster.id}", "${yandex_vpc_security_group.api.id}"}


def test_public_master_requires_allowed_cidrs():
    cluster = hcl.resource("yandex_kubernetes_cluster.this").body
    (precondition,) = hcl.one(cluster["lifecycle"])["precondition"]
    assert "var.master_public_ip" in precondition["condition"]
    assert "length(var.api_allowed_cidrs) > 0" in precondition["condition"]


def test_cluster_waits_for_its_roles():
    depends_on = " ".join(hcl.resource("yandex_kubernetes_cluster.this").body["depends_on"])
    for role_resource in ("folder_iam_member.cluster_agent", "symmetric_key_iam_member.cluster",
                          "container_registry_iam_binding.nodes_pull"):
        assert role_resource in depends_on


def test_spark_group_scales_from_zero_on_preemptible_nodes():
    group = hcl.resource("yandex_kubernetes_node_group.spark").body
    auto_scale = hcl.one(hcl.one(group["scale_policy"])["auto_scale"])
    assert auto_scale["min"] == 0
    assert auto_scale["initial"] == 0
    assert auto_scale["max"] == "${var.spark_node_group.max_size}"
    template = hcl.one(group["instance_template"])
    assert hcl.one(template["scheduling_policy"])["preemptible"] is True


def test_system_group_is_fixed_and_not_preemptible():
    group = hcl.resource("yandex_kubernetes_node_group.system").body
    assert "fixed_scale" in hcl.one(group["scale_policy"])
    template = hcl.one(group["instance_template"])
    assert hcl.one(template["scheduling_policy"])["preemptible"] is False


@pytest.mark.parametrize("name", ["system", "spark"])
def test_nodes_have_no_public_ip_and_the_cluster_security_group(name):
    group = hcl.resource(f"yandex_kubernetes_node_group.{name}").body
    template = hcl.one(group["instance_template"])
    interface = hcl.one(template["network_interface"])
    assert interface["nat"] is False
    assert "nat" not in template
    assert interface["security_group_ids"] == ["${yandex_vpc_security_group.cluster.id}"]
    policy = hcl.one(group["maintenance_policy"])
    assert policy["auto_upgrade"] is True and policy["auto_repair"] is True


def test_spark_node_group_defaults_fit_the_largest_step():
    """Spark's own overhead rules (40% for Python, at least 384 MiB) and the node's allocatable,
    through tests.k8s.capacity; tests/k8s/test_capacity.py checks every step and quota."""
    from tests.k8s import capacity
    from tests.k8s.test_capacity import node_room, step_applications

    train = capacity.spark_pods(step_applications()["train"])
    room, nodes = node_room("spark_node_group")
    assert train.executor.fits_in(room) and train.driver.fits_in(room)
    assert capacity.pack(train.largest, room, nodes) is not None


# --- network ---------------------------------------------------------------------------------


def test_subnets_route_through_the_nat_gateway():
    route_table = hcl.resource("yandex_vpc_route_table.nat").body
    route = hcl.one(route_table["static_route"])
    assert route == {"destination_prefix": "0.0.0.0/0",
                     "gateway_id": "${yandex_vpc_gateway.nat.id}"}
    assert "shared_egress_gateway" in hcl.resource("yandex_vpc_gateway.nat").body
    subnet = hcl.resource("yandex_vpc_subnet.this").body
    assert subnet["route_table_id"] == "${yandex_vpc_route_table.nat.id}"


def test_no_security_group_admits_the_whole_internet():
    for resource in hcl.resources():
        if resource.type != "yandex_vpc_security_group":
            continue
        for rule in resource.body.get("ingress", []):
            assert "0.0.0.0/0" not in rule.get("v4_cidr_blocks", []), resource.address
            assert rule.get("description"), f"{resource.address}: rule without description"


def test_api_accepts_only_allowed_cidrs_and_the_vpc_on_api_ports():
    rules = hcl.resource("yandex_vpc_security_group.api").body["ingress"]
    assert sorted(rule["port"] for rule in rules) == [443, 6443]
    assert all(rule["protocol"] == "TCP" for rule in rules)
    assert all(rule["v4_cidr_blocks"] == "${local.api_source_cidrs}" for rule in rules)
    source = hcl.locals_()["api_source_cidrs"]
    assert "var.master_public_ip ? var.api_allowed_cidrs : []" in source


def test_postgres_accepts_only_the_cluster_nodes_and_pods_on_its_port():
    """The nodes (a pod masqueraded to its node's address) and the pod range (a pod that
    keeps its own address towards a private range), on the pooler's port only."""
    security_group = hcl.resource("yandex_vpc_security_group.postgres").body
    pods, nodes = sorted(security_group["ingress"], key=lambda rule: "security_group_id" in rule)
    assert pods["v4_cidr_blocks"] == ["${var.cluster_ipv4_range}"]
    assert nodes["security_group_id"] == "${yandex_vpc_security_group.cluster.id}"
    for rule in (pods, nodes):
        assert rule["port"] == "${local.postgres_port}" and rule["protocol"] == "TCP"
    assert "egress" not in security_group


def test_allowed_cidrs_validation_refuses_the_whole_internet():
    validations = hcl.variables()["api_allowed_cidrs"]["validation"]
    conditions = " ".join(validation["condition"] for validation in validations)
    assert ">= 8" in conditions


# --- storage, KMS, database ----------------------------------------------------------------


def test_kms_key_rotates():
    key = hcl.resource("yandex_kms_symmetric_key.this").body
    period = re.fullmatch(r"(\d+)h", key["rotation_period"])
    assert period and 24 <= int(period.group(1)) <= 8760
    assert key["default_algorithm"] == "AES_256"


@pytest.mark.parametrize("bucket", BUCKETS)
def test_buckets_are_encrypted_and_private(bucket):
    body = hcl.resource(f"yandex_storage_bucket.{bucket}").body
    rule = hcl.one(hcl.one(body["server_side_encryption_configuration"])["rule"])
    default = hcl.one(rule["apply_server_side_encryption_by_default"])
    assert default == {"kms_master_key_id": "${yandex_kms_symmetric_key.this.id}",
                       "sse_algorithm": "aws:kms"}
    assert hcl.one(body["anonymous_access_flags"]) == {
        "read": False, "list": False, "config_read": False}
    assert "acl" not in body and "grant" not in body and "policy" not in body
    assert body["force_destroy"] == "${var.force_destroy_buckets}"


@pytest.mark.parametrize("bucket", ["lake", "mlflow_artifacts"])
def test_data_buckets_are_versioned_with_bounded_history(bucket):
    """Replaced and deleted objects expire after a while, and so do the delete markers left
    with no version behind them (on S3 the marker of a deleted key is itself kept otherwise)."""
    body = hcl.resource(f"yandex_storage_bucket.{bucket}").body
    assert hcl.one(body["versioning"])["enabled"] is True
    (rule,) = [rule for rule in body["lifecycle_rule"]
               if "noncurrent_version_expiration" in rule]
    assert rule["enabled"] is True and "filter" not in rule  # the whole bucket
    assert hcl.one(rule["expiration"]) == {"expired_object_delete_marker": True}


def test_old_scores_expire_where_the_lake_writes_them():
    lake_bucket = platform()["buckets"]["lake"]
    lake_root = hcl.resolve(hcl.outputs()["lake_root"]["value"]).replace(
        "${yandex_storage_bucket.lake.bucket}", lake_bucket)
    scores_key_prefix = Lake(lake_root).scores.removeprefix(f"s3a://{lake_bucket}/") + "/"
    rules = hcl.resource("yandex_storage_bucket.lake").body["lifecycle_rule"]
    expiring = [rule for rule in rules if "days" in hcl.one(rule.get("expiration", [{}]))]
    alerts_key_prefix = Lake(lake_root).alerts.removeprefix(f"s3a://{lake_bucket}/") + "/"
    assert [hcl.resolve(hcl.one(rule["filter"])["prefix"]) for rule in expiring] == [
        scores_key_prefix, alerts_key_prefix, "spark-events/eventlog_v2_"]
    assert scores_key_prefix == "lake/scores/"
    # A day's alerts go with its scores.
    assert hcl.one(expiring[0]["expiration"]) == hcl.one(expiring[1]["expiration"])


def test_spark_event_logs_expire_and_their_marker_stays():
    """Every application's rolling event-log folder, eventlog_v2_<app id>/ under the prefix the
    SparkApplications write to, expires whole; the marker object that keeps the prefix (Spark
    and the History Server need it to exist) is outside the rule."""
    from fraudops.orchestration.spark_application import event_log_dir

    history = platform()["spark_history"]
    lake_bucket = platform()["buckets"]["lake"]
    prefix = event_log_dir().removeprefix(f"s3a://{lake_bucket}/")
    assert prefix == f"{history['event_log_prefix']}/"
    (rule,) = [rule for rule in hcl.resource("yandex_storage_bucket.lake").body["lifecycle_rule"]
               if rule.get("id") == "expire-spark-event-logs"]
    assert rule["enabled"] is True
    expiring = hcl.resolve(hcl.one(rule["filter"])["prefix"])
    assert expiring == f"{prefix}eventlog_v2_"
    assert hcl.one(rule["expiration"])["days"] == "${var.lake_retention.event_log_days}"
    assert hcl.variables()["lake_retention"]["type"]  # declared with its default below
    marker = hcl.resource("yandex_storage_object.event_log_marker").body
    assert marker["bucket"] == "${yandex_storage_bucket.lake.bucket}"
    key = hcl.resolve(marker["key"])
    assert key == f"{prefix}{history['event_log_marker']}"
    assert key.startswith(prefix) and not key.startswith(expiring)
    assert history["event_log_marker"].startswith("."), "the History Server skips hidden names"
    assert marker["content"], "the provider refuses an empty content"


def test_airflow_logs_expire():
    rules = hcl.resource("yandex_storage_bucket.airflow_logs").body["lifecycle_rule"]
    (rule,) = rules
    assert rule["enabled"] is True and "filter" not in rule
    assert hcl.one(rule["expiration"])["days"] == "${var.airflow_log_retention_days}"


def test_postgres_is_private_encrypted_and_versioned():
    cluster = hcl.resource("yandex_mdb_postgresql_cluster.this").body
    host = hcl.one(cluster["host"])
    assert host["assign_public_ip"] is False
    assert cluster["security_group_ids"] == ["${yandex_vpc_security_group.postgres.id}"]
    assert cluster["disk_encryption_key_id"] == "${yandex_kms_symmetric_key.this.id}"
    config = hcl.one(cluster["config"])
    assert config["version"] == "${var.postgres.version}"
    assert hcl.object_defaults("postgres")["version"] in {"15", "16"}
    assert all(value is False for value in hcl.one(config["access"]).values())


def test_postgres_passwords_are_generated():
    user = hcl.resource("yandex_mdb_postgresql_user.this").body
    assert user["password"] == "${random_password.postgres[each.key].result}"
    password = hcl.resource("random_password.postgres").body
    assert password["length"] >= 24 and password["special"] is False


def test_connection_uris_verify_the_server():
    uris = hcl.locals_()["postgres_uris"]
    assert "sslmode=verify-full" in uris and uris.count("postgresql://") == 1


# --- IAM -------------------------------------------------------------------------------------


def test_folder_roles_are_the_documented_minimum():
    roles = {r.body["role"] for r in hcl.resources()
             if r.type == "yandex_resourcemanager_folder_iam_member"}
    assert roles == FOLDER_ROLES


def test_scoped_roles_are_granted_on_single_resources():
    for resource in hcl.resources():
        if resource.type == "yandex_kms_symmetric_key_iam_member":
            assert resource.body["role"] in {"kms.keys.encrypterDecrypter", "kms.keys.decrypter"}
        if resource.type == "yandex_container_registry_iam_binding":
            assert resource.body["role"] == "container-registry.images.puller"
            assert resource.body["members"] == [
                "serviceAccount:${yandex_iam_service_account.nodes.id}"]
        if resource.type == "yandex_storage_bucket_iam_binding":
            # Which component may do what on which bucket: test_least_privilege.py.
            assert resource.body["bucket"].startswith("${yandex_storage_bucket.")
            # (the lake's viewers: Airflow and the Spark History Server)
            members = resource.body["members"]
            assert members and all(m.startswith(
                "serviceAccount:${yandex_iam_service_account.storage[") for m in members)


# --- no secrets in the code ----------------------------------------------------------------

SECRET_NAME = re.compile(r"(password|secret|token|private_key|access_key)", re.IGNORECASE)
SECRET_VALUE = re.compile(
    r"(-----BEGIN [A-Z ]*PRIVATE KEY-----|\bt1\.[A-Za-z0-9_-]{20,}|\by0_[A-Za-z0-9_-]{20,}"
    r"|\bYCAJ[A-Za-z0-9_-]{20,}|\bYC[A-Za-z0-9_-]{38,}|\bAQVN[A-Za-z0-9_-]{20,})")


def _attribute(path: str) -> str:
    return re.sub(r"\[\d+\]", "", path).rsplit(".", 1)[-1]


def test_no_secret_looking_literal_in_terraform():
    for file_name, document in hcl.parsed_files().items():
        for path, value in hcl.strings(document):
            assert not SECRET_VALUE.search(value), f"{file_name}: {path} looks like a credential"
            name = _attribute(path)
            if SECRET_NAME.search(name) and name not in {"description", "sensitive"}:
                assert value.startswith("${"), f"{file_name}: {path} is a literal secret"


def test_no_credentials_in_example_files():
    for name in ("backend.tf.example", "terraform.tfvars.example"):
        text = (hcl.TERRAFORM_DIR / name).read_text()
        assert not SECRET_VALUE.search(text), name
        for line in text.splitlines():
            if not line.lstrip().startswith("#"):
                assert not re.match(r"\s*(access_key|secret_key|token)\s*=", line), line


def test_tfvars_example_sets_only_declared_variables():
    import hcl2

    with (hcl.TERRAFORM_DIR / "terraform.tfvars.example").open() as handle:
        example = hcl2.load(handle)
    assert example.keys() <= hcl.variables().keys()
    assert {"cloud_id", "folder_id"} <= example.keys()
