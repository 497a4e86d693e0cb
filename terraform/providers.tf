# Credentials come from the environment (YC_TOKEN from `yc iam create-token`, or
# YC_SERVICE_ACCOUNT_KEY_FILE), never from a file in this repository.
provider "yandex" {
  cloud_id  = var.cloud_id
  folder_id = var.folder_id
  zone      = local.primary_zone
}
