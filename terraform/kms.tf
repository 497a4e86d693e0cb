# One symmetric key encrypts Kubernetes Secrets in etcd, the three buckets and the PostgreSQL
# disks. Rotation adds a new key version yearly; older versions stay to decrypt older data.
resource "yandex_kms_symmetric_key" "this" {
  name                = "${local.project}-key"
  description         = "Envelope key for Kubernetes secrets, buckets and PostgreSQL disks"
  folder_id           = var.folder_id
  default_algorithm   = "AES_256"
  rotation_period     = "8760h"
  deletion_protection = var.deletion_protection
  labels              = local.labels
}
