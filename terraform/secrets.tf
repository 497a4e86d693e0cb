# Lockbox holds every secret the pods read, one Lockbox secret per Kubernetes Secret and of the
# same name (platform.yaml secrets.*). External Secrets Operator syncs them into the namespaces
# (k8s/overlays/yandex/external-secrets.yaml), so no secret value passes through a workstation.
# The values are in the Terraform state too: keep the state in the locked, encrypted remote
# backend (backend.tf.example).

resource "yandex_lockbox_secret" "s3" {
  for_each = local.s3_secret_names

  name                = each.value
  description         = "S3 key of ${local.project}'s ${each.key} (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY)"
  folder_id           = var.folder_id
  kms_key_id          = yandex_kms_symmetric_key.this.id
  deletion_protection = var.deletion_protection
  labels              = local.labels
}

resource "yandex_lockbox_secret_version" "s3" {
  for_each = local.s3_secret_names

  secret_id = yandex_lockbox_secret.s3[each.key].id

  entries {
    key        = "AWS_ACCESS_KEY_ID"
    text_value = yandex_iam_service_account_static_access_key.storage[each.key].access_key
  }

  entries {
    key        = "AWS_SECRET_ACCESS_KEY"
    text_value = yandex_iam_service_account_static_access_key.storage[each.key].secret_key
  }
}

resource "yandex_lockbox_secret" "database" {
  for_each = local.database_secrets

  name                = each.value.name
  description         = "PostgreSQL connection URI of ${local.project}'s ${each.key}"
  folder_id           = var.folder_id
  kms_key_id          = yandex_kms_symmetric_key.this.id
  deletion_protection = var.deletion_protection
  labels              = local.labels
}

resource "yandex_lockbox_secret_version" "database" {
  for_each = local.database_secrets

  secret_id = yandex_lockbox_secret.database[each.key].id

  entries {
    key        = each.value.key
    text_value = local.postgres_uris[each.key]
  }
}

# MLflow basic auth: the server's basic_auth.ini (user store, admin account, nothing for a user
# without a grant) with the Flask key and the Spark account's password (for the chart's bootstrap
# Job, which creates that account and grants it EDIT on the experiment and the model); and the
# Spark pods' credentials: the Spark account, never the admin (docs/security.md).
resource "yandex_lockbox_secret" "mlflow_auth" {
  for_each = local.mlflow_auth_secrets

  name                = each.value
  description         = "MLflow basic auth of ${local.project}: ${each.key} side"
  folder_id           = var.folder_id
  kms_key_id          = yandex_kms_symmetric_key.this.id
  deletion_protection = var.deletion_protection
  labels              = local.labels
}

resource "yandex_lockbox_secret_version" "mlflow_auth_server" {
  secret_id = yandex_lockbox_secret.mlflow_auth["server"].id

  entries {
    key = "basic_auth.ini"
    text_value = join("\n", [
      "[mlflow]",
      "default_permission = ${local.platform.mlflow.auth_default_permission}",
      "database_uri = ${local.mlflow_auth_uri}",
      "admin_username = ${local.platform.mlflow.auth_admin}",
      "admin_password = ${random_password.mlflow_auth["admin"].result}",
      "authorization_function = mlflow.server.auth:authenticate_request_basic_auth",
      "",
    ])
  }

  entries {
    key        = "flask-secret-key"
    text_value = random_password.mlflow_auth["flask"].result
  }

  entries {
    key        = local.platform.mlflow.auth_spark_password_key
    text_value = random_password.mlflow_auth["spark"].result
  }
}

resource "yandex_lockbox_secret_version" "mlflow_auth_client" {
  secret_id = yandex_lockbox_secret.mlflow_auth["client"].id

  entries {
    key        = "MLFLOW_TRACKING_USERNAME"
    text_value = local.platform.mlflow.auth_spark_user
  }

  entries {
    key        = "MLFLOW_TRACKING_PASSWORD"
    text_value = random_password.mlflow_auth["spark"].result
  }
}
