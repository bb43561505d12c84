# On-prem Strata on hosts you already have, with MinIO as the cold tier.
# Terraform renders each host's files (see README.md); it touches no host.

locals {
  ips       = sort(keys(var.hosts))
  roles     = { for ip, r in var.hosts : ip => split(":", r)[0] } # "follower:broker-b" is a follower
  namesrvs  = [for ip in local.ips : ip if local.roles[ip] == "namesrv"]
  brokers   = [for ip in local.ips : ip if local.roles[ip] == "broker"]
  followers = [for ip in local.ips : ip if local.roles[ip] == "follower"]
  readers   = [for ip in local.ips : ip if local.roles[ip] == "reader"]
  letters   = split("", "abcdefghijklmnopqrstuvwxyz")

  broker_names  = { for i, ip in local.brokers : ip => (i < length(local.letters) ? "broker-${local.letters[i]}" : "broker-${i + 1}") }
  first_broker  = try(local.broker_names[local.brokers[0]], "broker-a")
  reader_ids    = { for i, ip in local.readers : ip => i + 1 }
  reader_broker = coalesce(var.reader_broker_name, local.first_broker)

  # A follower joins the group its role names ("follower:broker-b"), or the
  # first broker's; its id is its place among the group's followers.
  follower_group = { for ip in local.followers : ip => strcontains(var.hosts[ip], ":") ? split(":", var.hosts[ip])[1] : local.first_broker }
  follower_ids   = { for ip in local.followers : ip => 1 + index([for f in local.followers : f if local.follower_group[f] == local.follower_group[ip]], ip) }
  broker_name = { for ip, r in local.roles : ip => (
    r == "reader" ? local.reader_broker : r == "follower" ? local.follower_group[ip] : lookup(local.broker_names, ip, "broker-a")
  ) }
  group_copies = { for ip, n in local.broker_names : n => 1 + length([for f in local.followers : f if local.follower_group[f] == n]) }
  min_insync   = var.min_insync_replicas != null ? var.min_insync_replicas : (var.replication == "sync" ? 2 : 1)

  # failover = true: the groups with followers fail over, elected by the
  # name servers' controller. Every broker (leader or follower, with or
  # without failover), reader and standalone node uses MinIO: only a
  # group's current leader offloads; its followers delete what it offloaded,
  # serve that history from MinIO and rebuild from it when they fall behind.
  failover_groups  = var.failover ? toset(values(local.follower_group)) : toset([])
  uses_tier        = { for ip, r in local.roles : ip => r != "namesrv" }
  controller_peers = var.failover ? [for ip in local.namesrvs : "${ip}:${var.controller_port}"] : []

  namesrv_addresses = [for ip in local.namesrvs : "${ip}:${var.namesrv_port}"]
  security_files    = compact([var.acl_file, var.tls_cert_file, var.tls_key_file, var.tls_ca_file])
  tier_url          = "minio://${var.minio_endpoint}/${var.minio_bucket}${var.minio_prefix == "" ? "" : "/${var.minio_prefix}"}${var.minio_secure ? "?secure=true" : ""}"
}

module "node" {
  source   = "../../modules/strata-node"
  for_each = var.hosts

  role         = local.roles[each.key]
  service_name = "strata-${local.roles[each.key]}"
  cluster_name = var.cluster_name
  broker_name  = local.broker_name[each.key]
  broker_id    = local.roles[each.key] == "reader" ? local.reader_ids[each.key] : local.roles[each.key] == "follower" ? local.follower_ids[each.key] : 0

  # Every listener binds the host's own address; brokers advertise it.
  namesrv_addresses = local.roles[each.key] == "standalone" ? [] : local.namesrv_addresses
  namesrv_listen    = "${each.key}:${var.namesrv_port}"
  listen            = "${each.key}:${var.broker_port}"
  advertise         = local.roles[each.key] == "namesrv" ? "" : "${each.key}:${var.broker_port}"
  http_listen       = "${var.http_on_host_address ? each.key : "127.0.0.1"}:${var.http_port}"

  # Groups: leaders and followers replicate over ha_port (null: Strata's
  # default, the next port after broker_port, or any free one if that is
  # taken); with failover the name servers run the controller on
  # controller_port.
  ha_listen           = contains(["broker", "follower"], local.roles[each.key]) && var.ha_port != null ? "${each.key}:${coalesce(var.ha_port, 0)}" : null
  replication         = contains(["broker", "follower"], local.roles[each.key]) ? var.replication : "async"
  min_insync_replicas = contains(["broker", "follower"], local.roles[each.key]) ? var.min_insync_replicas : null
  failover            = contains(["broker", "follower"], local.roles[each.key]) && contains(local.failover_groups, local.broker_name[each.key])
  controller_listen   = local.roles[each.key] == "namesrv" && var.failover ? "${each.key}:${var.controller_port}" : null
  controller_peers    = local.roles[each.key] == "namesrv" ? local.controller_peers : []

  tier_url             = local.uses_tier[each.key] ? local.tier_url : ""
  credentials_env_file = local.uses_tier[each.key] ? var.credentials_env_file : null
  data_dir             = var.data_dir
  data_device          = local.roles[each.key] == "namesrv" ? null : var.data_device
  segment_size         = var.segment_size
  segment_max_age      = var.segment_max_age
  hot_retention        = var.hot_retention
  flush                = var.flush
  cache_size           = var.cache_size
  auto_create_topics   = contains(["broker", "follower", "standalone"], local.roles[each.key]) && var.auto_create_topics

  binary_path   = var.binary_path
  binary_url    = var.binary_url
  binary_sha256 = var.binary_sha256
  config_dir    = var.config_dir

  # Security: paths of files of yours on every host, and limits (the broker
  # limits are not rendered for name servers).
  acl_file         = var.acl_file
  require_auth     = var.require_auth
  tls_cert_file    = var.tls_cert_file
  tls_key_file     = var.tls_key_file
  tls_ca_file      = var.tls_ca_file
  tls_client_auth  = var.tls_client_auth
  max_conns        = var.max_conns
  max_conns_per_ip = var.max_conns_per_ip
  max_inflight     = var.max_inflight
  max_held_pulls   = var.max_held_pulls
}

locals {
  # A script per host that installs its files and starts its service: run
  # it as root on the host (README.md).
  install_scripts = { for ip, n in module.node : ip => join("\n", concat(
    [
      "#!/bin/sh",
      "# Installs strata-${local.roles[ip]} on ${ip}; rendered by terraform/examples/onprem-minio.",
      "set -eu",
    ],
    flatten([for p in sort(keys(n.files)) : [
      "mkdir -p '${dirname(p)}'",
      "cat >'${p}.new' <<'STRATA_FILE_EOF'",
      trimsuffix(n.files[p].content, "\n"),
      "STRATA_FILE_EOF",
      "chmod ${n.files[p].permissions} '${p}.new'",
      "mv -f '${p}.new' '${p}'",
    ]]),
    !local.uses_tier[ip] ? [] : [
      "[ -f '${var.credentials_env_file}' ] || echo 'warning: ${var.credentials_env_file} is missing: create it (root, mode 0600) with MINIO_ACCESS_KEY=... and MINIO_SECRET_KEY=...' >&2",
    ],
    # The ACL and TLS files are the operator's: only checked for.
    [for f in local.security_files : "[ -f '${f}' ] || echo 'warning: ${f} is missing: put it there (readable by the strata user) before the service starts' >&2"],
    [
      "systemctl daemon-reload",
      "systemctl enable '${n.unit_name}'",
      "systemctl restart '${n.unit_name}'",
      "",
    ],
  )) }
}
