# Managed Kubernetes: Calico network policies, etcd secrets encrypted with the KMS key, a small
# always-on "system" group (Airflow, MLflow, spark-operator) and a preemptible "spark" group that
# the cluster autoscaler grows from zero when SparkApplication pods are pending and shrinks back.

resource "yandex_kubernetes_cluster" "this" {
  #checkov:skip=CKV_YC_5: the public endpoint admits only var.api_allowed_cidrs through security group "api" (whole-internet prefixes are refused by validation); master_public_ip = false makes the API private
  name                    = "${local.project}-k8s"
  description             = "Kubernetes cluster of the ${local.project} platform"
  folder_id               = var.folder_id
  network_id              = yandex_vpc_network.this.id
  cluster_ipv4_range      = var.cluster_ipv4_range
  service_ipv4_range      = var.service_ipv4_range
  network_policy_provider = "CALICO"
  release_channel         = var.kubernetes_release_channel
  service_account_id      = yandex_iam_service_account.cluster.id
  node_service_account_id = yandex_iam_service_account.nodes.id
  labels                  = local.labels

  kms_provider {
    key_id = yandex_kms_symmetric_key.this.id
  }

  master {
    version            = var.kubernetes_version
    public_ip          = var.master_public_ip
    security_group_ids = [yandex_vpc_security_group.cluster.id, yandex_vpc_security_group.api.id]

    dynamic "master_location" {
      for_each = yandex_vpc_subnet.this

      content {
        zone      = master_location.value.zone
        subnet_id = master_location.value.id
      }
    }

    maintenance_policy {
      auto_upgrade = true

      maintenance_window {
        start_time = var.maintenance_window.start_time
        duration   = var.maintenance_window.duration
      }
    }

    master_logging {
      enabled                    = var.master_logging
      folder_id                  = var.folder_id
      audit_enabled              = var.master_logging
      events_enabled             = var.master_logging
      cluster_autoscaler_enabled = var.master_logging
      kube_apiserver_enabled     = false
    }
  }

  lifecycle {
    precondition {
      condition     = !var.master_public_ip || length(var.api_allowed_cidrs) > 0
      error_message = "master_public_ip is true but api_allowed_cidrs is empty: list the CIDRs that may reach the Kubernetes API, or set master_public_ip = false."
    }
  }

  # The roles must outlive the cluster on destroy, or node groups cannot be deleted.
  depends_on = [
    yandex_resourcemanager_folder_iam_member.cluster_agent,
    yandex_resourcemanager_folder_iam_member.cluster_public_api,
    yandex_resourcemanager_folder_iam_member.cluster_logging,
    yandex_kms_symmetric_key_iam_member.cluster_secrets,
    yandex_container_registry_iam_binding.nodes_pull,
  ]
}

resource "yandex_kubernetes_node_group" "system" {
  cluster_id  = yandex_kubernetes_cluster.this.id
  name        = "${local.project}-system"
  description = "Always-on nodes for Airflow, MLflow and spark-operator"
  version     = var.kubernetes_version
  labels      = local.labels

  instance_template {
    platform_id = var.system_node_group.platform_id
    labels      = local.labels

    resources {
      cores         = var.system_node_group.cores
      memory        = var.system_node_group.memory
      core_fraction = var.system_node_group.core_fraction
    }

    boot_disk {
      type = var.system_node_group.disk_type
      size = var.system_node_group.disk_size
    }

    network_interface {
      nat                = false
      subnet_ids         = [yandex_vpc_subnet.this[local.primary_zone].id]
      security_group_ids = [yandex_vpc_security_group.cluster.id]
    }

    scheduling_policy {
      preemptible = false
    }

    container_runtime {
      type = "containerd"
    }
  }

  scale_policy {
    fixed_scale {
      size = var.system_node_group.size
    }
  }

  allocation_policy {
    location {
      zone = local.primary_zone
    }
  }

  # Surge upgrades: a replacement node joins before the old one drains.
  deploy_policy {
    max_expansion   = 1
    max_unavailable = 0
  }

  maintenance_policy {
    auto_upgrade = true
    auto_repair  = true

    maintenance_window {
      start_time = var.maintenance_window.start_time
      duration   = var.maintenance_window.duration
    }
  }
}

resource "yandex_kubernetes_node_group" "spark" {
  cluster_id  = yandex_kubernetes_cluster.this.id
  name        = "${local.project}-spark"
  description = "Preemptible Spark nodes, present only while a SparkApplication runs"
  version     = var.kubernetes_version
  labels      = local.labels

  # Only pods that tolerate the taint (the SparkApplications) land here, and they select it.
  node_labels = {
    (local.spark_pool.label_key) = local.spark_pool.label_value
  }
  node_taints = [local.spark_node_taint]

  instance_template {
    platform_id = var.spark_node_group.platform_id
    labels      = local.labels

    resources {
      cores         = var.spark_node_group.cores
      memory        = var.spark_node_group.memory
      core_fraction = 100
    }

    boot_disk {
      type = var.spark_node_group.disk_type
      size = var.spark_node_group.disk_size
    }

    network_interface {
      nat                = false
      subnet_ids         = [yandex_vpc_subnet.this[local.primary_zone].id]
      security_group_ids = [yandex_vpc_security_group.cluster.id]
    }

    # Spark retries lost executors and Airflow retries a failed step: preemption costs a retry,
    # not data, at about a third of the on-demand price.
    scheduling_policy {
      preemptible = true
    }

    container_runtime {
      type = "containerd"
    }
  }

  scale_policy {
    auto_scale {
      min     = 0
      initial = 0
      max     = var.spark_node_group.max_size
    }
  }

  # An autoscaled group lives in a single zone.
  allocation_policy {
    location {
      zone = local.primary_zone
    }
  }

  maintenance_policy {
    auto_upgrade = true
    auto_repair  = true

    maintenance_window {
      start_time = var.maintenance_window.start_time
      duration   = var.maintenance_window.duration
    }
  }
}
