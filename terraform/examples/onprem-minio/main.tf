# On-prem Strata on hosts you already have, with MinIO as the cold tier.
# Terraform renders each host's files (see README.md); it touches no host.

locals {
  ips      = sort(keys(var.hosts))
  namesrvs = [for ip in local.ips : ip if var.hosts[ip] == "namesrv"]
  brokers  = [for ip in local.ips : ip if var.hosts[ip] == "broker"]
  readers  = [for ip in local.ips : ip if var.hosts[ip] == "reader"]
  letters  = split("", "abcdefghijklmnopqrstuvwxyz")

  broker_names  = { for i, ip in local.brokers : ip => (i < length(local.letters) ? "broker-${local.letters[i]}" : "broker-${i + 1}") }
  reader_ids    = { for i, ip in local.readers : ip => i + 1 }
  reader_broker = coalesce(var.reader_broker_name, try(local.broker_names[local.brokers[0]], "broker-a"))

  namesrv_addresses = [for ip in local.namesrvs : "${ip}:${var.namesrv_port}"]
  tier_url          = "minio://${var.minio_endpoint}/${var.minio_bucket}${var.minio_prefix == "" ? "" : "/${var.minio_prefix}"}${var.minio_secure ? "?secure=true" : ""}"
}

module "node" {
  source   = "../../modules/strata-node"
  for_each = var.hosts

  role         = each.value
  service_name = "strata-${each.value}"
  cluster_name = var.cluster_name
  broker_name  = each.value == "reader" ? local.reader_broker : lookup(local.broker_names, each.key, "broker-a")
  broker_id    = each.value == "reader" ? local.reader_ids[each.key] : 0

  # Every listener binds the host's own address; brokers advertise it.
  namesrv_addresses = each.value == "standalone" ? [] : local.namesrv_addresses
  namesrv_listen    = "${each.key}:${var.namesrv_port}"
  listen            = "${each.key}:${var.broker_port}"
  advertise         = each.value == "namesrv" ? "" : "${each.key}:${var.broker_port}"
  http_listen       = "${var.http_on_host_address ? each.key : "127.0.0.1"}:${var.http_port}"

  tier_url             = each.value == "namesrv" ? "" : local.tier_url
  credentials_env_file = each.value == "namesrv" ? null : var.credentials_env_file
  data_dir             = var.data_dir
  data_device          = each.value == "namesrv" ? null : var.data_device
  segment_size         = var.segment_size
  segment_max_age      = var.segment_max_age
  hot_retention        = var.hot_retention
  flush                = var.flush
  cache_size           = var.cache_size
  auto_create_topics   = contains(["broker", "standalone"], each.value) && var.auto_create_topics

  binary_path   = var.binary_path
  binary_url    = var.binary_url
  binary_sha256 = var.binary_sha256
  config_dir    = var.config_dir
}

locals {
  # A script per host that installs its files and starts its service: run
  # it as root on the host (README.md).
  install_scripts = { for ip, n in module.node : ip => join("\n", concat(
    [
      "#!/bin/sh",
      "# Installs strata-${var.hosts[ip]} on ${ip}; rendered by terraform/examples/onprem-minio.",
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
    var.hosts[ip] == "namesrv" ? [] : [
      "[ -f '${var.credentials_env_file}' ] || echo 'warning: ${var.credentials_env_file} is missing: create it (root, mode 0600) with MINIO_ACCESS_KEY=... and MINIO_SECRET_KEY=...' >&2",
    ],
    [
      "systemctl daemon-reload",
      "systemctl enable '${n.unit_name}'",
      "systemctl restart '${n.unit_name}'",
      "",
    ],
  )) }
}
