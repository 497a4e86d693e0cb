# Inputs. Names of buckets, service accounts, namespaces and the Spark pool's label/taint are not
# variables: they come from fraudops/core/platform.yaml (locals.tf) so every layer agrees.

variable "cloud_id" {
  type        = string
  description = "Yandex Cloud cloud ID (yc resource-manager cloud list)."

  validation {
    condition     = can(regex("^[a-z0-9]{20}$", var.cloud_id))
    error_message = "cloud_id is a 20-character Yandex Cloud ID such as b1gxxxxxxxxxxxxxxxxx."
  }
}

variable "folder_id" {
  type        = string
  description = "ID of the folder that receives every resource (yc resource-manager folder list)."

  validation {
    condition     = can(regex("^[a-z0-9]{20}$", var.folder_id))
    error_message = "folder_id is a 20-character Yandex Cloud ID such as b1gxxxxxxxxxxxxxxxxx."
  }
}

variable "zones" {
  type        = list(string)
  description = "Availability zones with a subnet each. One zone gives a zonal (base) master; three give a highly available master. Node groups and PostgreSQL live in the first zone (an autoscaled node group can only use one zone)."
  default     = ["ru-central1-a"]

  validation {
    condition     = contains([1, 3], length(var.zones)) && length(distinct(var.zones)) == length(var.zones)
    error_message = "zones must hold one zone or three distinct zones (a master has one or three hosts)."
  }

  validation {
    condition     = alltrue([for zone in var.zones : contains(["ru-central1-a", "ru-central1-b", "ru-central1-d"], zone)])
    error_message = "Each zone must be ru-central1-a, ru-central1-b or ru-central1-d (ru-central1-c is retired)."
  }
}

variable "network_cidr" {
  type        = string
  description = "Address space of the VPC; each zone's subnet takes the next /(prefix+4) block of it."
  default     = "10.10.0.0/16"

  validation {
    condition     = can(cidrhost(var.network_cidr, 0)) && tonumber(split("/", var.network_cidr)[1]) >= 12 && tonumber(split("/", var.network_cidr)[1]) <= 20
    error_message = "network_cidr must be an IPv4 CIDR with a prefix between /12 and /20."
  }
}

variable "cluster_ipv4_range" {
  type        = string
  description = "Pod address range of the Kubernetes cluster; must not overlap network_cidr or service_ipv4_range."
  default     = "10.112.0.0/16"

  validation {
    condition     = can(cidrhost(var.cluster_ipv4_range, 0))
    error_message = "cluster_ipv4_range must be an IPv4 CIDR."
  }
}

variable "service_ipv4_range" {
  type        = string
  description = "Service (ClusterIP) address range of the Kubernetes cluster; must not overlap network_cidr or cluster_ipv4_range."
  default     = "10.96.0.0/16"

  validation {
    condition     = can(cidrhost(var.service_ipv4_range, 0))
    error_message = "service_ipv4_range must be an IPv4 CIDR."
  }
}

variable "kubernetes_version" {
  type        = string
  description = "Kubernetes minor version of the master and node groups (yc managed-kubernetes list-versions)."
  default     = "1.33"

  validation {
    condition     = can(regex("^1\\.[0-9]{2}$", var.kubernetes_version))
    error_message = "kubernetes_version is a minor version such as 1.33."
  }
}

variable "kubernetes_release_channel" {
  type        = string
  description = "Release channel of the cluster: RAPID, REGULAR or STABLE. The version must be offered in it."
  default     = "REGULAR"

  validation {
    condition     = contains(["RAPID", "REGULAR", "STABLE"], var.kubernetes_release_channel)
    error_message = "kubernetes_release_channel must be RAPID, REGULAR or STABLE."
  }
}

variable "master_public_ip" {
  type        = bool
  description = "Give the Kubernetes API a public IPv4 address, reachable only from api_allowed_cidrs. Off by default: the API is reachable from inside the VPC only (VPN or bastion)."
  default     = false
}

variable "api_allowed_cidrs" {
  type        = list(string)
  description = "External IPv4 CIDRs allowed to reach the Kubernetes API on 443 and 6443, e.g. your office or VPN egress. Required when master_public_ip is true; 0.0.0.0/0 is refused."
  default     = []

  validation {
    condition     = alltrue([for cidr in var.api_allowed_cidrs : can(cidrhost(cidr, 0))])
    error_message = "Every entry of api_allowed_cidrs must be an IPv4 CIDR such as 203.0.113.7/32."
  }

  validation {
    condition     = alltrue([for cidr in var.api_allowed_cidrs : tonumber(split("/", cidr)[1]) >= 8])
    error_message = "api_allowed_cidrs may not open the API to the whole internet: use prefixes of /8 or longer."
  }
}

variable "object_storage_cidrs" {
  type        = list(string)
  description = "IPv4 ranges of the Object Storage endpoint (storage.yandexcloud.net): the only HTTPS destination outside the VPC the pods may reach. The yandex overlay's NetworkPolicies (k8s/overlays/yandex/egress.yaml) use the same list; check with `dig +short storage.yandexcloud.net`."
  default     = ["213.180.193.0/24", "213.180.204.0/24"]

  validation {
    condition     = length(var.object_storage_cidrs) > 0 && alltrue([for cidr in var.object_storage_cidrs : can(cidrhost(cidr, 0)) && tonumber(split("/", cidr)[1]) >= 16])
    error_message = "object_storage_cidrs must list IPv4 CIDRs of /16 or longer."
  }
}

variable "master_logging" {
  type        = bool
  description = "Send kube-apiserver audit logs, cluster events and cluster-autoscaler logs to Cloud Logging (the folder's default log group)."
  default     = true
}

variable "maintenance_window" {
  type = object({
    start_time = string
    duration   = string
  })
  description = "Daily window (UTC) for automatic master and node upgrades: start as HH:MM and a duration such as 3h."
  default = {
    start_time = "02:00"
    duration   = "3h"
  }

  validation {
    condition     = can(regex("^([01][0-9]|2[0-3]):[0-5][0-9]$", var.maintenance_window.start_time)) && can(regex("^[0-9]+h([0-9]+m)?$", var.maintenance_window.duration))
    error_message = "maintenance_window needs start_time as HH:MM and duration such as 3h or 4h30m."
  }
}

variable "system_node_group" {
  type = object({
    platform_id   = optional(string, "standard-v3")
    cores         = optional(number, 2)
    memory        = optional(number, 8)
    core_fraction = optional(number, 100)
    disk_type     = optional(string, "network-ssd")
    disk_size     = optional(number, 64)
    size          = optional(number, 2)
  })
  description = "Always-on nodes for Airflow, MLflow and spark-operator: platform, vCPUs, RAM (GB), guaranteed vCPU share (%), boot disk and node count."
  default     = {}

  validation {
    condition     = var.system_node_group.size >= 1 && var.system_node_group.cores >= 2 && var.system_node_group.memory >= 4
    error_message = "system_node_group needs at least one node of 2 vCPUs and 4 GB."
  }

  validation {
    condition     = contains([20, 50, 100], var.system_node_group.core_fraction)
    error_message = "system_node_group.core_fraction must be 20, 50 or 100."
  }

  validation {
    condition     = contains(["network-hdd", "network-ssd"], var.system_node_group.disk_type) && var.system_node_group.disk_size >= 64
    error_message = "system_node_group needs a network-hdd or network-ssd boot disk of at least 64 GB."
  }
}

variable "spark_node_group" {
  type = object({
    platform_id = optional(string, "standard-v3")
    cores       = optional(number, 8)
    memory      = optional(number, 32)
    disk_type   = optional(string, "network-ssd")
    disk_size   = optional(number, 64)
    max_size    = optional(number, 4)
  })
  description = "Preemptible Spark nodes, scaled from zero by the cluster autoscaler: platform, vCPUs, RAM (GB), boot disk and the most nodes a run may use."
  default     = {}

  validation {
    condition     = var.spark_node_group.max_size >= 1 && var.spark_node_group.max_size <= 32
    error_message = "spark_node_group.max_size must be between 1 and 32."
  }

  validation {
    condition     = var.spark_node_group.cores >= 2 && var.spark_node_group.memory >= 8
    error_message = "A Spark node needs at least 2 vCPUs and 8 GB (a driver plus one executor)."
  }

  validation {
    condition     = contains(["network-hdd", "network-ssd"], var.spark_node_group.disk_type) && var.spark_node_group.disk_size >= 64
    error_message = "spark_node_group needs a network-hdd or network-ssd boot disk of at least 64 GB."
  }
}

variable "postgres" {
  type = object({
    version            = optional(string, "16")
    resource_preset_id = optional(string, "b3-c1-m4")
    disk_type          = optional(string, "network-ssd")
    disk_size          = optional(number, 20)
    backup_retain_days = optional(number, 7)
  })
  description = "Managed PostgreSQL for the Airflow and MLflow metadata: major version, host class, disk and backup retention."
  default     = {}

  validation {
    condition     = contains(["15", "16"], var.postgres.version)
    error_message = "postgres.version must be 15 or 16."
  }

  validation {
    condition     = var.postgres.disk_size >= 10 && var.postgres.backup_retain_days >= 7 && var.postgres.backup_retain_days <= 60
    error_message = "postgres needs a disk of at least 10 GB and a backup retention of 7 to 60 days."
  }
}

variable "lake_retention" {
  type = object({
    scores_days             = optional(number, 90)
    noncurrent_version_days = optional(number, 7)
    event_log_days          = optional(number, 30)
  })
  description = "Lake bucket lifecycle: days to keep daily score partitions (lake/scores/), overwritten object versions, and the Spark event logs the History Server shows (spark-events/)."
  default     = {}

  validation {
    condition     = var.lake_retention.scores_days >= 1 && var.lake_retention.noncurrent_version_days >= 1 && var.lake_retention.event_log_days >= 1
    error_message = "lake_retention days must be positive."
  }
}

variable "mlflow_noncurrent_version_days" {
  type        = number
  description = "Days to keep overwritten or deleted versions of MLflow artifacts (models, reports)."
  default     = 30

  validation {
    condition     = var.mlflow_noncurrent_version_days >= 1
    error_message = "mlflow_noncurrent_version_days must be positive."
  }
}

variable "airflow_log_retention_days" {
  type        = number
  description = "Days to keep Airflow task logs in their bucket."
  default     = 30

  validation {
    condition     = var.airflow_log_retention_days >= 1
    error_message = "airflow_log_retention_days must be positive."
  }
}

variable "force_destroy_buckets" {
  type        = bool
  description = "Let terraform destroy delete buckets that still hold objects (all versions). Off by default: the lake and the model artifacts survive any destroy; docs/security.md says how to really delete everything."
  default     = false
}

variable "deletion_protection" {
  type        = bool
  description = "Protect the PostgreSQL cluster, the KMS key and the Lockbox secrets from deletion (on by default). Apply false first to let a full destroy remove them."
  default     = true
}

variable "labels" {
  type        = map(string)
  description = "Extra labels for every resource; project and managed-by are always set."
  default     = {}

  validation {
    condition = alltrue([
      for key, value in var.labels :
      can(regex("^[a-z][-_./\\\\@0-9a-z]{0,62}$", key)) && can(regex("^[-_./\\\\@0-9a-z]{0,63}$", value))
    ])
    error_message = "Label keys start with a lowercase letter; keys and values use lowercase letters, digits and -_./\\@ (at most 63 characters)."
  }
}
