# Every shared name comes from fraudops/core/platform.yaml, the file the Python code, the Helm values
# and k8s/ also read; nothing here retypes a bucket, service account or node-pool name.
locals {
  platform = yamldecode(file("${path.module}/../fraudops/core/platform.yaml"))

  project = local.platform.project
  labels  = merge(var.labels, { project = local.project, managed-by = "terraform" })

  buckets    = local.platform.buckets
  namespaces = local.platform.namespaces
  s3         = local.platform.s3

  service_account_names = {
    cluster        = local.platform.service_accounts.cloud_cluster
    nodes          = local.platform.service_accounts.cloud_nodes
    secrets_reader = local.platform.service_accounts.cloud_secrets
  }

  # The components that hold an S3 key: their service accounts (iam.tf) and the Secret each key
  # reaches (secrets.tf). Which bucket each may read or write is in iam.tf.
  storage_accounts = {
    spark = {
      name        = local.platform.service_accounts.cloud_spark
      description = "Spark drivers and executors: read and write the lake"
    }
    airflow = {
      name        = local.platform.service_accounts.cloud_airflow
      description = "Airflow pods: read the lake, write the task logs"
    }
    mlflow = {
      name        = local.platform.service_accounts.cloud_mlflow
      description = "MLflow server: read and write the model artifacts"
    }
    spark_history = {
      name        = local.platform.service_accounts.cloud_spark_history
      description = "Spark History Server: read the lake (the Spark event logs)"
    }
  }
  s3_secret_names = {
    spark         = local.platform.secrets.s3_spark
    airflow       = local.platform.secrets.s3_airflow
    mlflow        = local.platform.secrets.s3_mlflow
    spark_history = local.platform.secrets.s3_spark_history
  }
  # Keyed like postgres_users; key is the Secret key the chart reads the URI from.
  database_secrets = {
    mlflow  = { name = local.platform.secrets.mlflow_db, key = "uri" }
    airflow = { name = local.platform.secrets.airflow_db, key = "connection" }
  }
  # MLflow basic auth: the server's Secret and the clients' (Spark pods).
  mlflow_auth_secrets = {
    server = local.platform.secrets.mlflow_auth_server
    client = local.platform.secrets.mlflow_auth
  }
  # Every Lockbox secret External Secrets Operator may read: known keys, ids after apply.
  lockbox_secret_keys = toset(concat(
    [for key in keys(local.s3_secret_names) : "s3-${key}"],
    [for key in keys(local.database_secrets) : "database-${key}"],
    [for key in keys(local.mlflow_auth_secrets) : "mlflow-auth-${key}"],
  ))
  lockbox_secret_ids = merge(
    { for key, secret in yandex_lockbox_secret.s3 : "s3-${key}" => secret.id },
    { for key, secret in yandex_lockbox_secret.database : "database-${key}" => secret.id },
    { for key, secret in yandex_lockbox_secret.mlflow_auth : "mlflow-auth-${key}" => secret.id },
  )

  spark_pool = local.platform.spark_node_pool
  # The SparkApplications tolerate exactly this taint (k8s/spark/sparkapplication.template.yaml).
  spark_node_taint = "${local.spark_pool.taint_key}=${local.spark_pool.taint_value}:NoSchedule"

  postgres_databases = local.platform.postgres.databases
  postgres_users     = local.platform.postgres.users
  postgres_port      = 6432 # Managed PostgreSQL serves clients through its pooler on 6432

  # The cloud lake root is s3a://<lake bucket>/<lake_prefix> (FRAUDOPS_LAKE_ROOT); fraudops.core.lake
  # puts daily scores under <root>/scores.
  lake_prefix        = "lake"
  lake_scores_prefix = "${local.lake_prefix}/scores/"
  lake_alerts_prefix = "${local.lake_prefix}/alerts/"

  # Every step's Spark event log goes to s3a://<lake bucket>/<event_log_prefix>/ (the
  # SparkApplication template), one eventlog_v2_<app id>/ folder per application (rolling event
  # logs): the lifecycle rule expires those folders, never the marker object that keeps the
  # prefix in existence (platform.yaml spark_history).
  spark_history             = local.platform.spark_history
  event_log_prefix          = "${local.spark_history.event_log_prefix}/"
  event_log_expiring_prefix = "${local.event_log_prefix}eventlog_v2_"

  primary_zone = var.zones[0]
  subnet_cidrs = { for index, zone in var.zones : zone => cidrsubnet(var.network_cidr, 4, index) }

  # Kubernetes API callers: the allowed external CIDRs (only with a public endpoint) and the VPC.
  api_source_cidrs = distinct(concat(var.master_public_ip ? var.api_allowed_cidrs : [], [var.network_cidr]))

  # The rw host name follows the primary through failovers. Clients check the server's
  # certificate and name against Yandex Cloud's CA, mounted from postgres.ca_configmap.
  postgres_ca_path = "${local.platform.postgres.ca_dir}/${local.platform.postgres.ca_file}"
  postgres_host    = "c-${yandex_mdb_postgresql_cluster.this.id}.rw.mdb.yandexcloud.net"
  mlflow_auth_uri  = "postgresql://${yandex_mdb_postgresql_user.this["mlflow"].name}:${random_password.postgres["mlflow"].result}@${local.postgres_host}:${local.postgres_port}/${yandex_mdb_postgresql_database.mlflow_auth.name}?sslmode=verify-full&sslrootcert=${local.postgres_ca_path}"
  postgres_uris = {
    for key, user in yandex_mdb_postgresql_user.this :
    key => "postgresql://${user.name}:${random_password.postgres[key].result}@${local.postgres_host}:${local.postgres_port}/${yandex_mdb_postgresql_database.this[key].name}?sslmode=verify-full&sslrootcert=${local.postgres_ca_path}"
  }
}
