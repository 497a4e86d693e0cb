# Managed PostgreSQL for the Airflow and MLflow metadata: one private host in the first zone,
# reachable from the Kubernetes nodes only, disks encrypted with the platform key.

resource "yandex_mdb_postgresql_cluster" "this" {
  name                   = "${local.project}-pg"
  description            = "Airflow and MLflow metadata"
  folder_id              = var.folder_id
  environment            = "PRODUCTION"
  network_id             = yandex_vpc_network.this.id
  security_group_ids     = [yandex_vpc_security_group.postgres.id]
  disk_encryption_key_id = yandex_kms_symmetric_key.this.id
  deletion_protection    = var.deletion_protection
  labels                 = local.labels

  config {
    version                   = var.postgres.version
    backup_retain_period_days = var.postgres.backup_retain_days

    resources {
      resource_preset_id = var.postgres.resource_preset_id
      disk_type_id       = var.postgres.disk_type
      disk_size          = var.postgres.disk_size
    }

    backup_window_start {
      hours   = 1
      minutes = 0
    }

    # No console SQL, DataLens, serverless or Data Transfer access paths.
    access {
      web_sql       = false
      data_lens     = false
      serverless    = false
      data_transfer = false
      yandex_query  = false
    }
  }

  host {
    zone             = local.primary_zone
    subnet_id        = yandex_vpc_subnet.this[local.primary_zone].id
    assign_public_ip = false
  }

  maintenance_window {
    type = "WEEKLY"
    day  = "SUN"
    hour = 3
  }
}

# Passwords are alphanumeric so the connection URIs need no escaping.
resource "random_password" "postgres" {
  for_each = local.postgres_users

  length  = 32
  special = false
}

resource "yandex_mdb_postgresql_user" "this" {
  for_each = local.postgres_users

  cluster_id = yandex_mdb_postgresql_cluster.this.id
  name       = each.value
  password   = random_password.postgres[each.key].result
  conn_limit = 50
}

resource "yandex_mdb_postgresql_database" "this" {
  for_each = local.postgres_databases

  cluster_id = yandex_mdb_postgresql_cluster.this.id
  name       = each.value
  owner      = yandex_mdb_postgresql_user.this[each.key].name
  lc_collate = "en_US.UTF-8"
  lc_type    = "en_US.UTF-8"
}

# MLflow's basic-auth user store keeps its own schema and migrations: a database of its own,
# owned by the MLflow user.
resource "yandex_mdb_postgresql_database" "mlflow_auth" {
  cluster_id = yandex_mdb_postgresql_cluster.this.id
  name       = local.platform.mlflow.auth_database
  owner      = yandex_mdb_postgresql_user.this["mlflow"].name
  lc_collate = "en_US.UTF-8"
  lc_type    = "en_US.UTF-8"
}

# MLflow's admin password, the Spark steps' account's password and the Flask secret key its
# replicas share (basic auth).
resource "random_password" "mlflow_auth" {
  for_each = toset(["admin", "spark", "flask"])

  length  = 40
  special = false
}
