# Strata on EC2: name servers on fixed addresses across availability zones,
# broker groups (a leader and optional followers) on local NVMe, optional
# tier readers in auto-scaling groups, an S3 bucket for the cold tier and an
# instance role scoped to it. Every node's configuration comes from
# terraform/modules/strata-node (cloud-init).

data "aws_partition" "current" {}
data "aws_region" "current" {}

data "aws_subnet" "first" {
  id = var.subnet_ids[0]
}

data "aws_vpc" "this" {
  id = data.aws_subnet.first.vpc_id
}

data "aws_ssm_parameter" "al2023" {
  count = var.ami_id == null ? 1 : 0
  name  = "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-${var.architecture}"
}

data "aws_ec2_instance_type" "broker" {
  instance_type = local.broker_type
}

locals {
  defaults = {
    x86_64 = { namesrv = "t3.small", broker = "i4i.large", reader = "m6i.large" }
    arm64  = { namesrv = "t4g.small", broker = "i4g.large", reader = "m7g.large" }
  }[var.architecture]
  namesrv_type = coalesce(var.namesrv_instance_type, local.defaults.namesrv)
  broker_type  = coalesce(var.broker_instance_type, local.defaults.broker)
  reader_type  = coalesce(var.reader_instance_type, local.defaults.reader)
  ami_id       = var.ami_id != null ? var.ami_id : nonsensitive(data.aws_ssm_parameter.al2023[0].value)

  client_cidrs = var.client_cidrs != null ? var.client_cidrs : [data.aws_vpc.this.cidr_block]
  admin_open   = length(var.admin_cidrs) > 0
  # The admin port listens on every interface only when the security group
  # lets administrators reach it; otherwise on loopback.
  http_listen = local.admin_open ? "0.0.0.0:${var.http_port}" : "127.0.0.1:${var.http_port}"

  letters           = split("", "abcdefghijklmnopqrstuvwxyz")
  broker_names      = [for i in range(var.broker_count) : "broker-${local.letters[i]}"]
  namesrv_addresses = [for eni in aws_network_interface.namesrv : "${eni.private_ip}:${var.namesrv_port}"]
  tier_url          = "s3://${aws_s3_bucket.tier.bucket}/${var.tier_prefix}?region=${data.aws_region.current.name}"

  # Followers: broker-a-1, broker-a-2, …, each in the subnets after its
  # leader's (another availability zone when there are several).
  followers = { for p in setproduct(range(var.broker_count), range(1, var.followers_per_group + 1)) : "${local.broker_names[p[0]]}-${p[1]}" => {
    broker_name = local.broker_names[p[0]]
    broker_id   = p[1]
    subnet_id   = var.subnet_ids[(p[0] + p[1]) % length(var.subnet_ids)]
  } }
  ha_port = coalesce(var.ha_port, var.broker_port + 1)
  # With failover every name server runs the controller, on its fixed
  # address; the raft peers are all of them.
  controller_peers = [for eni in aws_network_interface.namesrv : "${eni.private_ip}:${var.controller_port}"]

  tags = merge({ "strata:cluster" = var.cluster_name, "managed-by" = "terraform" }, var.tags)
}

# ---------------------------------------------------------------------------
# Node configurations.

module "namesrv" {
  source = "../strata-node"
  count  = var.namesrv_count

  role                  = "namesrv"
  namesrv_listen        = ":${var.namesrv_port}"
  controller_listen     = var.failover ? local.controller_peers[count.index] : null
  controller_peers      = var.failover ? local.controller_peers : []
  http_listen           = local.http_listen
  allow_http_listen_any = local.admin_open # only the admin CIDRs reach it (security group)
  binary_url            = var.binary_url
  binary_sha256         = var.binary_sha256

  acl_file         = var.acl_file
  require_auth     = var.require_auth
  tls_cert_file    = var.tls_cert_file
  tls_key_file     = var.tls_key_file
  tls_ca_file      = var.tls_ca_file
  tls_client_auth  = var.tls_client_auth
  max_conns        = var.max_conns
  max_conns_per_ip = var.max_conns_per_ip
  max_inflight     = var.max_inflight # not rendered for a name server
  max_held_pulls   = var.max_held_pulls
}

module "broker" {
  source   = "../strata-node"
  for_each = toset(local.broker_names)

  role                  = "broker"
  cluster_name          = var.cluster_name
  broker_name           = each.key
  namesrv_addresses     = local.namesrv_addresses
  listen                = ":${var.broker_port}"
  advertise             = "auto"
  ha_listen             = ":${local.ha_port}"
  http_listen           = local.http_listen
  allow_http_listen_any = local.admin_open
  data_device           = var.broker_data_device
  data_device_fs_type   = var.broker_data_fs_type
  tier_url              = local.tier_url
  segment_size          = var.segment_size
  segment_max_age       = var.segment_max_age
  hot_retention         = var.hot_retention
  flush                 = var.flush
  cache_size            = var.cache_size
  auto_create_topics    = var.auto_create_topics
  replication           = var.replication
  min_insync_replicas   = var.min_insync_replicas
  failover              = var.failover
  binary_url            = var.binary_url
  binary_sha256         = var.binary_sha256

  acl_file             = var.acl_file
  require_auth         = var.require_auth
  tls_cert_file        = var.tls_cert_file
  tls_key_file         = var.tls_key_file
  tls_ca_file          = var.tls_ca_file
  tls_client_auth      = var.tls_client_auth
  max_conns            = var.max_conns
  max_conns_per_ip     = var.max_conns_per_ip
  max_inflight         = var.max_inflight
  max_held_pulls       = var.max_held_pulls
  credentials_env_file = var.credentials_env_file
}

# Followers: the leader's log settings (segment size and flush must match),
# the group's replication settings and the leader's cold tier, hot retention
# and cache (under failover any member may lead). Only the current leader
# offloads; followers delete what it offloaded, serve that history from the
# cold tier and rebuild from it when they fall behind.
module "follower" {
  source   = "../strata-node"
  for_each = local.followers

  role                  = "follower"
  cluster_name          = var.cluster_name
  broker_name           = each.value.broker_name
  broker_id             = each.value.broker_id
  namesrv_addresses     = local.namesrv_addresses
  listen                = ":${var.broker_port}"
  advertise             = "auto"
  ha_listen             = ":${local.ha_port}"
  http_listen           = local.http_listen
  allow_http_listen_any = local.admin_open
  data_device           = var.broker_data_device
  data_device_fs_type   = var.broker_data_fs_type
  tier_url              = local.tier_url
  segment_size          = var.segment_size
  segment_max_age       = var.segment_max_age
  hot_retention         = var.hot_retention
  flush                 = var.flush
  cache_size            = var.cache_size
  auto_create_topics    = var.auto_create_topics
  replication           = var.replication
  min_insync_replicas   = var.min_insync_replicas
  failover              = var.failover
  binary_url            = var.binary_url
  binary_sha256         = var.binary_sha256

  acl_file             = var.acl_file
  require_auth         = var.require_auth
  tls_cert_file        = var.tls_cert_file
  tls_key_file         = var.tls_key_file
  tls_ca_file          = var.tls_ca_file
  tls_client_auth      = var.tls_client_auth
  max_conns            = var.max_conns
  max_conns_per_ip     = var.max_conns_per_ip
  max_inflight         = var.max_inflight
  max_held_pulls       = var.max_held_pulls
  credentials_env_file = var.credentials_env_file
}

module "reader" {
  source   = "../strata-node"
  for_each = var.readers_per_broker > 0 ? toset(local.broker_names) : toset([])

  role                   = "reader"
  cluster_name           = var.cluster_name
  broker_name            = each.key
  broker_id_from_address = true # instances of a group share one configuration
  namesrv_addresses      = local.namesrv_addresses
  listen                 = ":${var.broker_port}"
  advertise              = "auto"
  http_listen            = local.http_listen
  allow_http_listen_any  = local.admin_open
  tier_url               = local.tier_url
  cache_size             = var.cache_size
  binary_url             = var.binary_url
  binary_sha256          = var.binary_sha256

  acl_file             = var.acl_file
  require_auth         = var.require_auth
  tls_cert_file        = var.tls_cert_file
  tls_key_file         = var.tls_key_file
  tls_ca_file          = var.tls_ca_file
  tls_client_auth      = var.tls_client_auth
  max_conns            = var.max_conns
  max_conns_per_ip     = var.max_conns_per_ip
  max_inflight         = var.max_inflight
  max_held_pulls       = var.max_held_pulls
  credentials_env_file = var.credentials_env_file
}
