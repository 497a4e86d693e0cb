# One VPC, a subnet per zone, and a NAT gateway as the subnets' default route: nodes and database
# hosts have private addresses only and still reach registries and Object Storage.

resource "yandex_vpc_network" "this" {
  name        = "${local.project}-net"
  description = "Network of the ${local.project} platform"
  folder_id   = var.folder_id
  labels      = local.labels
}

resource "yandex_vpc_gateway" "nat" {
  name        = "${local.project}-nat"
  description = "Egress NAT for nodes without public addresses"
  folder_id   = var.folder_id
  labels      = local.labels

  shared_egress_gateway {}
}

resource "yandex_vpc_route_table" "nat" {
  name        = "${local.project}-egress"
  description = "Default route of every subnet through the NAT gateway"
  folder_id   = var.folder_id
  network_id  = yandex_vpc_network.this.id
  labels      = local.labels

  static_route {
    destination_prefix = "0.0.0.0/0"
    gateway_id         = yandex_vpc_gateway.nat.id
  }
}

resource "yandex_vpc_subnet" "this" {
  for_each = local.subnet_cidrs

  name           = "${local.project}-${each.key}"
  description    = "Master, nodes and PostgreSQL hosts in ${each.key}"
  folder_id      = var.folder_id
  zone           = each.key
  network_id     = yandex_vpc_network.this.id
  v4_cidr_blocks = [each.value]
  route_table_id = yandex_vpc_route_table.nat.id
  labels         = local.labels
}

# Service traffic of the master and every node, as Yandex Managed Kubernetes requires it.
resource "yandex_vpc_security_group" "cluster" {
  name        = "${local.project}-k8s-cluster"
  description = "Master and node service traffic; attached to the master and to every node"
  folder_id   = var.folder_id
  network_id  = yandex_vpc_network.this.id
  labels      = local.labels

  ingress {
    description    = "Pod-to-pod and service traffic inside the cluster ranges"
    protocol       = "ANY"
    v4_cidr_blocks = [var.cluster_ipv4_range, var.service_ipv4_range]
    from_port      = 0
    to_port        = 65535
  }

  ingress {
    description       = "Master-to-node and node-to-node traffic"
    protocol          = "ANY"
    predefined_target = "self_security_group"
    from_port         = 0
    to_port           = 65535
  }

  ingress {
    description       = "Health checks of the platform's load balancer range (needed by the managed master and node groups)"
    protocol          = "TCP"
    predefined_target = "loadbalancer_healthchecks"
    from_port         = 0
    to_port           = 65535
  }

  ingress {
    description    = "ICMP diagnostics from inside the VPC only"
    protocol       = "ICMP"
    v4_cidr_blocks = [var.network_cidr]
  }

  # Image pulls (Container Registry, Docker Hub, ghcr.io), Object Storage, PostgreSQL and the
  # Yandex Cloud APIs; it leaves through the NAT gateway, nothing can connect back in.
  egress {
    description    = "Outbound connections of the master and the nodes"
    protocol       = "ANY"
    v4_cidr_blocks = ["0.0.0.0/0"]
    from_port      = 0
    to_port        = 65535
  }
}

# Who may call the Kubernetes API: the allowed external CIDRs and hosts inside the VPC.
resource "yandex_vpc_security_group" "api" {
  name        = "${local.project}-k8s-api"
  description = "Kubernetes API access; attached to the master only"
  folder_id   = var.folder_id
  network_id  = yandex_vpc_network.this.id
  labels      = local.labels

  ingress {
    description    = "Kubernetes API over HTTPS"
    protocol       = "TCP"
    v4_cidr_blocks = local.api_source_cidrs
    port           = 443
  }

  ingress {
    description    = "Kubernetes API on 6443"
    protocol       = "TCP"
    v4_cidr_blocks = local.api_source_cidrs
    port           = 6443
  }
}

# PostgreSQL accepts connections from the cluster only: its nodes (the cluster security group)
# and its pods (cluster_ipv4_range). Whether a pod's connection leaves with the node's address
# or its own depends on the masquerading rules of the node (ip-masq-agent does not masquerade
# traffic to private ranges by default), so both are admitted, on the pooler's port only.
resource "yandex_vpc_security_group" "postgres" {
  #checkov:skip=CKV_YC_19: the check reads v4_cidr_blocks of every rule and crashes on a rule that names a security group; the rules here admit the cluster security group and the pod range on one port
  name        = "${local.project}-postgres"
  description = "PostgreSQL access from the Kubernetes nodes and pods only"
  folder_id   = var.folder_id
  network_id  = yandex_vpc_network.this.id
  labels      = local.labels

  ingress {
    description    = "PostgreSQL through the connection pooler, from pods (not masqueraded)"
    protocol       = "TCP"
    v4_cidr_blocks = [var.cluster_ipv4_range]
    port           = local.postgres_port
  }

  ingress {
    description       = "PostgreSQL through the connection pooler, from the nodes (masqueraded pods)"
    protocol          = "TCP"
    security_group_id = yandex_vpc_security_group.cluster.id
    port              = local.postgres_port
  }
}
