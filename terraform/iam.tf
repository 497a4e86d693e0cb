# Three service accounts, each with the narrowest roles Yandex documents for its job, granted on
# the single resource where the role can be scoped (key, registry, bucket), on the folder otherwise.

resource "yandex_iam_service_account" "cluster" {
  name        = local.service_account_names.cluster
  description = "Managed Kubernetes control plane: creates node VMs and network resources"
  folder_id   = var.folder_id
  labels      = local.labels
}

resource "yandex_iam_service_account" "nodes" {
  name        = local.service_account_names.nodes
  description = "Kubernetes nodes: pull images from the platform registry"
  folder_id   = var.folder_id
  labels      = local.labels
}

# One account per component that talks to Object Storage, so that each holds a key for its own
# buckets only (docs/security.md): Spark writes the lake, Airflow reads it and writes its task
# logs, MLflow reads and writes its artifacts, the Spark History Server reads the lake.
resource "yandex_iam_service_account" "storage" {
  for_each = local.storage_accounts

  name        = each.value.name
  description = each.value.description
  folder_id   = var.folder_id
  labels      = local.labels
}

# External Secrets Operator (yandex overlay): reads the component secrets from Lockbox, nothing else.
resource "yandex_iam_service_account" "secrets_reader" {
  name        = local.service_account_names.secrets_reader
  description = "External Secrets Operator: reads the platform's Lockbox secrets"
  folder_id   = var.folder_id
  labels      = local.labels
}

# --- cluster ---------------------------------------------------------------------------------

resource "yandex_resourcemanager_folder_iam_member" "cluster_agent" {
  folder_id = var.folder_id
  role      = "k8s.clusters.agent"
  member    = "serviceAccount:${yandex_iam_service_account.cluster.id}"
}

resource "yandex_resourcemanager_folder_iam_member" "cluster_public_api" {
  count = var.master_public_ip ? 1 : 0

  folder_id = var.folder_id
  role      = "vpc.publicAdmin"
  member    = "serviceAccount:${yandex_iam_service_account.cluster.id}"
}

resource "yandex_resourcemanager_folder_iam_member" "cluster_logging" {
  count = var.master_logging ? 1 : 0

  folder_id = var.folder_id
  role      = "logging.writer"
  member    = "serviceAccount:${yandex_iam_service_account.cluster.id}"
}

resource "yandex_kms_symmetric_key_iam_member" "cluster_secrets" {
  symmetric_key_id = yandex_kms_symmetric_key.this.id
  role             = "kms.keys.encrypterDecrypter"
  member           = "serviceAccount:${yandex_iam_service_account.cluster.id}"
}

# --- nodes -----------------------------------------------------------------------------------

resource "yandex_container_registry_iam_binding" "nodes_pull" {
  registry_id = yandex_container_registry.this.id
  role        = "container-registry.images.puller"
  members     = ["serviceAccount:${yandex_iam_service_account.nodes.id}"]
}

# --- workloads' storage access ---------------------------------------------------------------
# A bucket binding is authoritative for its bucket and role: it lists every member. Writers of
# each bucket are exactly its owner (tests/terraform/test_least_privilege.py).

resource "yandex_storage_bucket_iam_binding" "lake_editor" {
  bucket  = yandex_storage_bucket.lake.bucket
  role    = "storage.editor"
  members = ["serviceAccount:${yandex_iam_service_account.storage["spark"].id}"]
}

# The branch tasks read the clean step's run summary and the lake state; the Spark History
# Server reads the event logs (a role cannot be narrowed to a prefix: docs/security.md).
resource "yandex_storage_bucket_iam_binding" "lake_viewer" {
  bucket = yandex_storage_bucket.lake.bucket
  role   = "storage.viewer"
  members = [
    "serviceAccount:${yandex_iam_service_account.storage["airflow"].id}",
    "serviceAccount:${yandex_iam_service_account.storage["spark_history"].id}",
  ]
}

# Registered models: MLflow proxies every artifact (--serve-artifacts), so no other key needs it.
resource "yandex_storage_bucket_iam_binding" "mlflow_artifacts_editor" {
  bucket  = yandex_storage_bucket.mlflow_artifacts.bucket
  role    = "storage.editor"
  members = ["serviceAccount:${yandex_iam_service_account.storage["mlflow"].id}"]
}

# Task logs: uploads (and the overwrite of an appended log) and reads for the UI, no deletes;
# the bucket's lifecycle rule expires them.
resource "yandex_storage_bucket_iam_binding" "airflow_logs_uploader" {
  bucket  = yandex_storage_bucket.airflow_logs.bucket
  role    = "storage.uploader"
  members = ["serviceAccount:${yandex_iam_service_account.storage["airflow"].id}"]
}

resource "yandex_storage_bucket_iam_binding" "airflow_logs_viewer" {
  bucket  = yandex_storage_bucket.airflow_logs.bucket
  role    = "storage.viewer"
  members = ["serviceAccount:${yandex_iam_service_account.storage["airflow"].id}"]
}

# The buckets are encrypted with the platform key: reading or writing an object needs it.
resource "yandex_kms_symmetric_key_iam_member" "storage_objects" {
  for_each = local.storage_accounts

  symmetric_key_id = yandex_kms_symmetric_key.this.id
  role             = "kms.keys.encrypterDecrypter"
  member           = "serviceAccount:${yandex_iam_service_account.storage[each.key].id}"
}

# S3 clients (Hadoop S3A, boto3, Airflow remote logging) authenticate with these keys. They go to
# Lockbox (secrets.tf), and from there to one Kubernetes Secret per component; never into git.
resource "yandex_iam_service_account_static_access_key" "storage" {
  for_each = local.storage_accounts

  service_account_id = yandex_iam_service_account.storage[each.key].id
  description        = "S3 access of ${local.project}'s ${each.key}"
}

# --- External Secrets Operator ---------------------------------------------------------------

resource "yandex_lockbox_secret_iam_member" "secrets_reader" {
  for_each = local.lockbox_secret_keys

  secret_id = local.lockbox_secret_ids[each.key]
  role      = "lockbox.payloadViewer"
  member    = "serviceAccount:${yandex_iam_service_account.secrets_reader.id}"
}

# Lockbox payloads are encrypted with the platform key.
resource "yandex_kms_symmetric_key_iam_member" "secrets_reader" {
  symmetric_key_id = yandex_kms_symmetric_key.this.id
  role             = "kms.keys.decrypter"
  member           = "serviceAccount:${yandex_iam_service_account.secrets_reader.id}"
}

# The operator's only credential; `make infra-secrets` puts it into the Secret
# secrets.lockbox_auth of each namespace that takes Lockbox secrets.
resource "yandex_iam_service_account_key" "secrets_reader" {
  service_account_id = yandex_iam_service_account.secrets_reader.id
  description        = "External Secrets Operator of ${local.project}"
  key_algorithm      = "RSA_4096"
}
