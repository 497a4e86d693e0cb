# Three private, KMS-encrypted buckets. Access is granted per bucket to the storage service
# account (iam.tf); anonymous access is switched off explicitly.

resource "yandex_storage_bucket" "lake" {
  bucket        = local.buckets.lake
  folder_id     = var.folder_id
  force_destroy = var.force_destroy_buckets
  tags          = local.labels

  anonymous_access_flags {
    read        = false
    list        = false
    config_read = false
  }

  server_side_encryption_configuration {
    rule {
      apply_server_side_encryption_by_default {
        kms_master_key_id = yandex_kms_symmetric_key.this.id
        sse_algorithm     = "aws:kms"
      }
    }
  }

  # A bad run that overwrites a partition can be rolled back for a few days.
  versioning {
    enabled = true
  }

  lifecycle_rule {
    id      = "expire-old-scores"
    enabled = true

    filter {
      prefix = local.lake_scores_prefix
    }

    expiration {
      days = var.lake_retention.scores_days
    }
  }

  # A day's alert list goes with its scores.
  lifecycle_rule {
    id      = "expire-old-alerts"
    enabled = true

    filter {
      prefix = local.lake_alerts_prefix
    }

    expiration {
      days = var.lake_retention.scores_days
    }
  }

  # The Spark event logs: each application's folder, whole; the marker object stays.
  lifecycle_rule {
    id      = "expire-spark-event-logs"
    enabled = true

    filter {
      prefix = local.event_log_expiring_prefix
    }

    expiration {
      days = var.lake_retention.event_log_days
    }
  }

  # Replaced and deleted objects (state rewrites, lease renewals, collected versions of days)
  # stay recoverable for a few days; a delete marker with no version left behind it goes too.
  lifecycle_rule {
    id                                     = "expire-overwritten-versions"
    enabled                                = true
    abort_incomplete_multipart_upload_days = 2

    noncurrent_version_expiration {
      days = var.lake_retention.noncurrent_version_days
    }

    expiration {
      expired_object_delete_marker = true
    }
  }
}

# Spark 4 stops at start when spark.eventLog.dir does not exist, and so does the History Server
# for its log directory; an S3 prefix exists only while an object is under it. This one keeps the
# event-log prefix: a hidden name the History Server skips, outside the expiring folders.
resource "yandex_storage_object" "event_log_marker" {
  bucket  = yandex_storage_bucket.lake.bucket
  key     = "${local.event_log_prefix}${local.spark_history.event_log_marker}"
  content = "Spark event logs of every ${local.project} step: the Spark History Server reads this folder.\n"
  tags    = local.labels
}

resource "yandex_storage_bucket" "mlflow_artifacts" {
  bucket        = local.buckets.mlflow_artifacts
  folder_id     = var.folder_id
  force_destroy = var.force_destroy_buckets
  tags          = local.labels

  anonymous_access_flags {
    read        = false
    list        = false
    config_read = false
  }

  server_side_encryption_configuration {
    rule {
      apply_server_side_encryption_by_default {
        kms_master_key_id = yandex_kms_symmetric_key.this.id
        sse_algorithm     = "aws:kms"
      }
    }
  }

  # Registered model versions live here: a deleted or overwritten artifact stays recoverable.
  versioning {
    enabled = true
  }

  lifecycle_rule {
    id                                     = "expire-overwritten-versions"
    enabled                                = true
    abort_incomplete_multipart_upload_days = 2

    noncurrent_version_expiration {
      days = var.mlflow_noncurrent_version_days
    }

    expiration {
      expired_object_delete_marker = true
    }
  }
}

resource "yandex_storage_bucket" "airflow_logs" {
  bucket        = local.buckets.airflow_logs
  folder_id     = var.folder_id
  force_destroy = var.force_destroy_buckets
  tags          = local.labels

  anonymous_access_flags {
    read        = false
    list        = false
    config_read = false
  }

  server_side_encryption_configuration {
    rule {
      apply_server_side_encryption_by_default {
        kms_master_key_id = yandex_kms_symmetric_key.this.id
        sse_algorithm     = "aws:kms"
      }
    }
  }

  lifecycle_rule {
    id                                     = "expire-task-logs"
    enabled                                = true
    abort_incomplete_multipart_upload_days = 2

    expiration {
      days = var.airflow_log_retention_days
    }
  }
}
