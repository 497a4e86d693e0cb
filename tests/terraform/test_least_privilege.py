"""Who may touch what in terraform/: one service account and one S3 key per component, each able
to write only the bucket it owns, and defaults under which a `terraform destroy` cannot delete the
lake, the model artifacts, the database or the key (docs/security.md)."""

from __future__ import annotations

import re

import pytest

from fraudops.core.platform import platform
from tests.terraform import hcl

# The policy itself, stated here on purpose rather than read from terraform/: the bucket each
# component owns (writes) and the ones it may only read.
OWNS = {"spark": {"lake"}, "airflow": {"airflow_logs"}, "mlflow": {"mlflow_artifacts"},
        "spark_history": set()}
READS = {"spark": set(), "airflow": {"lake"}, "mlflow": set(), "spark_history": {"lake"}}
WRITE_ROLES = {"storage.editor", "storage.uploader", "storage.admin", "storage.configurer"}
READ_ROLES = {"storage.viewer"}
# The Secret (platform.yaml secrets.*) each component's key goes to.
SECRET_OF = {"spark": "s3_spark", "airflow": "s3_airflow", "mlflow": "s3_mlflow",
             "spark_history": "s3_spark_history"}

_STORAGE_ACCOUNT = re.compile(r'^serviceAccount:\$\{yandex_iam_service_account\.storage\["(\w+)"\]\.id\}$')
_BUCKET = re.compile(r"^\$\{yandex_storage_bucket\.(\w+)\.bucket\}$")


def bucket_grants() -> list[tuple[str, str, str]]:
    """(bucket, role, component) for every bucket-level role binding."""
    grants = []
    for resource in hcl.resources():
        if resource.type not in ("yandex_storage_bucket_iam_binding",
                                 "yandex_storage_bucket_iam_member"):
            continue
        assert "for_each" not in resource.body, f"{resource.address}: one binding per bucket and role"
        bucket = _BUCKET.match(resource.body["bucket"])
        assert bucket, f"{resource.address}: bucket must be one of ours by reference"
        members = resource.body.get("members") or [resource.body["member"]]
        for member in members:
            component = _STORAGE_ACCOUNT.match(member)
            assert component, f"{resource.address}: {member} is not a component account"
            grants.append((bucket.group(1), resource.body["role"], component.group(1)))
    return grants


def test_every_bucket_role_is_a_known_read_or_write_role():
    for bucket, role, component in bucket_grants():
        assert role in WRITE_ROLES | READ_ROLES, (bucket, role, component)
        assert role not in {"storage.admin", "storage.configurer"}, "no bucket configuration rights"


@pytest.mark.parametrize("bucket", sorted(platform()["buckets"]))
def test_each_bucket_is_written_by_exactly_its_owner(bucket):
    writers = {component for b, role, component in bucket_grants()
               if b == bucket and role in WRITE_ROLES}
    owners = {component for component, owned in OWNS.items() if bucket in owned}
    assert writers == owners


@pytest.mark.parametrize("bucket", sorted(platform()["buckets"]))
def test_each_bucket_is_read_only_by_whom_needs_it(bucket):
    readers = {component for b, _, component in bucket_grants() if b == bucket}
    needed = {c for c in OWNS if bucket in OWNS[c] | READS[c]}
    assert readers == needed


def test_storage_accounts_are_the_components_and_hold_no_folder_role():
    accounts = hcl.resolve(hcl.locals_()["storage_accounts"])
    assert accounts.keys() == OWNS.keys()
    names = platform()["service_accounts"]
    assert {key: value["name"] for key, value in accounts.items()} == {
        key: names[f"cloud_{key}"] for key in OWNS}
    assert len({value["name"] for value in accounts.values()}) == len(OWNS)
    for resource in hcl.resources():
        if resource.type.startswith("yandex_resourcemanager_folder_iam"):
            text = str(resource.body)
            assert "yandex_iam_service_account.storage" not in text, resource.address
            assert not resource.body["role"].startswith("storage."), resource.address


def test_no_component_key_can_write_a_bucket_it_does_not_own():
    """Follow each key from its account to the Lockbox secret and name the pods read it by."""
    key = hcl.resource("yandex_iam_service_account_static_access_key.storage").body
    assert key["for_each"] == "${local.storage_accounts}"
    assert key["service_account_id"] == "${yandex_iam_service_account.storage[each.key].id}"
    version = hcl.resource("yandex_lockbox_secret_version.s3").body
    assert version["secret_id"] == "${yandex_lockbox_secret.s3[each.key].id}"
    entries = {entry["key"]: entry["text_value"] for entry in version["entries"]}
    assert entries == {
        "AWS_ACCESS_KEY_ID":
            "${yandex_iam_service_account_static_access_key.storage[each.key].access_key}",
        "AWS_SECRET_ACCESS_KEY":
            "${yandex_iam_service_account_static_access_key.storage[each.key].secret_key}",
    }
    assert hcl.resource("yandex_lockbox_secret.s3").body["name"] == "${each.value}"
    secret_names = hcl.resolve(hcl.locals_()["s3_secret_names"])
    secrets = platform()["secrets"]
    assert secret_names == {component: secrets[SECRET_OF[component]] for component in OWNS}
    grants = bucket_grants()
    for component in OWNS:
        written = {b for b, role, c in grants if c == component and role in WRITE_ROLES}
        assert written == OWNS[component], component


def test_only_the_kms_and_lockbox_rights_the_components_need():
    kms = hcl.resource("yandex_kms_symmetric_key_iam_member.storage_objects").body
    assert kms["for_each"] == "${local.storage_accounts}"
    reader = hcl.resource("yandex_lockbox_secret_iam_member.secrets_reader").body
    assert reader["role"] == "lockbox.payloadViewer"
    assert reader["member"] == "serviceAccount:${yandex_iam_service_account.secrets_reader.id}"
    assert hcl.resource("yandex_kms_symmetric_key_iam_member.secrets_reader").body["role"] == (
        "kms.keys.decrypter")
    keys = hcl.resolve(hcl.locals_()["lockbox_secret_keys"])
    assert "s3_secret_names" in keys and "database_secrets" in keys


def test_no_static_key_output_and_only_the_lockbox_reader_key_is_secret():
    outputs = hcl.outputs()
    assert not {name for name in outputs if "access_key" in name or "database_uri" in name}
    assert {name for name, body in outputs.items() if body.get("sensitive")} == {
        "lockbox_authorized_key"}


# --- a default destroy keeps the data -------------------------------------------------------


def test_protection_is_on_by_default():
    variables = hcl.variables()
    assert variables["deletion_protection"]["default"] is True
    assert variables["force_destroy_buckets"]["default"] is False


@pytest.mark.parametrize("address", [
    "yandex_mdb_postgresql_cluster.this", "yandex_kms_symmetric_key.this",
    "yandex_lockbox_secret.s3", "yandex_lockbox_secret.database",
    "yandex_lockbox_secret.mlflow_auth",
])
def test_database_key_and_secrets_take_the_protection_flag(address):
    assert hcl.resource(address).body["deletion_protection"] == "${var.deletion_protection}"


@pytest.mark.parametrize("bucket", sorted(platform()["buckets"]))
def test_buckets_with_objects_survive_a_destroy(bucket):
    assert hcl.resource(f"yandex_storage_bucket.{bucket}").body["force_destroy"] == (
        "${var.force_destroy_buckets}")


def test_kubernetes_api_is_private_by_default():
    assert hcl.variables()["master_public_ip"]["default"] is False


def test_database_clients_verify_the_server():
    uris = hcl.locals_()["postgres_uris"]
    assert "sslmode=verify-full" in uris and "sslmode=require" not in uris
    ca = platform()["postgres"]
    assert hcl.resolve(hcl.locals_()["postgres_ca_path"]) == f"{ca['ca_dir']}/{ca['ca_file']}"
    assert "sslrootcert=${local.postgres_ca_path}" in uris


def test_mlflow_auth_has_its_own_store_and_grants_nothing_by_default():
    mlflow = platform()["mlflow"]
    server = hcl.resource("yandex_lockbox_secret_version.mlflow_auth_server").body
    entries = {hcl.resolve(entry["key"]): entry["text_value"] for entry in server["entries"]}
    assert set(entries) == {"basic_auth.ini", "flask-secret-key", mlflow["auth_spark_password_key"]}
    ini = entries["basic_auth.ini"]
    # A user the bootstrap granted nothing reads nothing (basic auth's default is READ).
    assert mlflow["auth_default_permission"] == "NO_PERMISSIONS"
    assert f"default_permission = {mlflow['auth_default_permission']}" in hcl.resolve(ini)
    assert "database_uri = ${local.mlflow_auth_uri}" in ini
    assert "admin_password = ${random_password.mlflow_auth[\"admin\"].result}" in ini
    uri = hcl.locals_()["mlflow_auth_uri"]
    assert "yandex_mdb_postgresql_database.mlflow_auth.name" in uri and "sslmode=verify-full" in uri
    database = hcl.resource("yandex_mdb_postgresql_database.mlflow_auth").body
    assert hcl.resolve(database["name"]) == platform()["mlflow"]["auth_database"]
    assert database["name"] not in platform()["postgres"]["databases"].values()
    assert hcl.resolve(hcl.locals_()["mlflow_auth_secrets"]) == {
        "server": platform()["secrets"]["mlflow_auth_server"],
        "client": platform()["secrets"]["mlflow_auth"]}


def test_mlflow_clients_hold_the_spark_account_not_the_admin():
    """The Spark pods' Secret carries the Spark steps' own account; the server's Secret carries
    the same password for the bootstrap Job that creates that account; the admin password is in
    basic_auth.ini only."""
    mlflow = platform()["mlflow"]
    client = hcl.resource("yandex_lockbox_secret_version.mlflow_auth_client").body
    client_entries = {e["key"]: e["text_value"] for e in client["entries"]}
    assert hcl.resolve(client_entries["MLFLOW_TRACKING_USERNAME"]) == mlflow["auth_spark_user"]
    assert mlflow["auth_spark_user"] != mlflow["auth_admin"]
    spark_password = '${random_password.mlflow_auth["spark"].result}'
    assert client_entries["MLFLOW_TRACKING_PASSWORD"] == spark_password
    server = hcl.resource("yandex_lockbox_secret_version.mlflow_auth_server").body
    server_entries = {hcl.resolve(e["key"]): e["text_value"] for e in server["entries"]}
    assert server_entries[mlflow["auth_spark_password_key"]] == spark_password
    admin = '${random_password.mlflow_auth["admin"].result}'
    holders = [key for key, value in {**client_entries, **server_entries}.items() if admin in value]
    assert holders == ["basic_auth.ini"]
