# What `make kubeconfig`, scripts/tf-outputs-to-k8s.sh and `make deploy` read. The components'
# keys and database URIs are not outputs: they go to Lockbox (secrets.tf). The one secret output,
# the Lockbox reader's key, is sensitive: `terraform output` hides it unless asked with -json.

output "folder_id" {
  description = "Folder that holds every resource."
  value       = var.folder_id
}

output "registry_id" {
  description = "Container Registry ID; images are pushed as <registry_url>/<image>:<tag>."
  value       = yandex_container_registry.this.id
}

output "registry_url" {
  description = "Image prefix for docker push and for the image fields of the Helm values."
  value       = "${local.platform.images.registry_host}/${yandex_container_registry.this.id}"
}

output "cluster_id" {
  description = "Managed Kubernetes cluster ID (yc managed-kubernetes cluster get-credentials --id)."
  value       = yandex_kubernetes_cluster.this.id
}

output "cluster_endpoint_type" {
  description = "external when the API has a public address (reachable from api_allowed_cidrs), internal otherwise; `make kubeconfig` passes it to yc as --external/--internal."
  value       = var.master_public_ip ? "external" : "internal"
}

output "egress_cidrs" {
  description = "Where pods may open connections outside the cluster, as the yandex overlay's NetworkPolicies say: the VPC (PostgreSQL, the Kubernetes API) and Object Storage."
  value = {
    vpc            = var.network_cidr
    object_storage = var.object_storage_cidrs
  }
}

output "namespaces" {
  description = "Kubernetes namespaces of the platform (Airflow and MLflow), the Spark jobs and spark-operator."
  value       = local.namespaces
}

output "buckets" {
  description = "Object Storage bucket names: lake, mlflow_artifacts, airflow_logs."
  value = {
    lake             = yandex_storage_bucket.lake.bucket
    mlflow_artifacts = yandex_storage_bucket.mlflow_artifacts.bucket
    airflow_logs     = yandex_storage_bucket.airflow_logs.bucket
  }
}

output "lake_root" {
  description = "FRAUDOPS_LAKE_ROOT of the cloud runs."
  value       = "s3a://${yandex_storage_bucket.lake.bucket}/${local.lake_prefix}"
}

output "s3_endpoint" {
  description = "Object Storage endpoint for S3 clients."
  value       = local.s3.endpoint
}

output "s3_region" {
  description = "Object Storage region for S3 clients."
  value       = local.s3.region
}

output "lockbox_authorized_key" {
  description = "Authorized key (JSON) of the Lockbox reader account; `make infra-secrets` gives it to External Secrets Operator."
  value = jsonencode({
    id                 = yandex_iam_service_account_key.secrets_reader.id
    service_account_id = yandex_iam_service_account_key.secrets_reader.service_account_id
    created_at         = yandex_iam_service_account_key.secrets_reader.created_at
    key_algorithm      = yandex_iam_service_account_key.secrets_reader.key_algorithm
    public_key         = yandex_iam_service_account_key.secrets_reader.public_key
    private_key        = yandex_iam_service_account_key.secrets_reader.private_key
  })
  sensitive = true
}

output "postgres_host" {
  description = "Host name that always points at the PostgreSQL primary."
  value       = local.postgres_host
}

output "postgres_port" {
  description = "PostgreSQL port (the managed connection pooler)."
  value       = local.postgres_port
}
