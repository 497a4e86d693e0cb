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

resource "yandex_iam_service_account" "storage" {
  name        = local.service_account_names.storage
  description = "Spark, Airflow and MLflow pods: read and write the platform buckets"
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

resource "yandex_storage_bucket_iam_binding" "storage_editor" {
  for_each = {
    lake             = yandex_storage_bucket.lake.bucket
    mlflow_artifacts = yandex_storage_bucket.mlflow_artifacts.bucket
    airflow_logs     = yandex_storage_bucket.airflow_logs.bucket
  }

  bucket  = each.value
  role    = "storage.editor"
  members = ["serviceAccount:${yandex_iam_service_account.storage.id}"]
}

resource "yandex_kms_symmetric_key_iam_member" "storage_objects" {
  symmetric_key_id = yandex_kms_symmetric_key.this.id
  role             = "kms.keys.encrypterDecrypter"
  member           = "serviceAccount:${yandex_iam_service_account.storage.id}"
}

# S3 clients (Hadoop S3A, boto3, Airflow remote logging) authenticate with this key; the script
# scripts/tf-outputs-to-k8s.sh puts it into the Kubernetes Secret secrets.s3, never into git.
resource "yandex_iam_service_account_static_access_key" "storage" {
  service_account_id = yandex_iam_service_account.storage.id
  description        = "S3 access of the ${local.project} workloads"
}
