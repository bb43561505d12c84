locals {
  subcommand = {
    namesrv    = "namesrv"
    broker     = "broker"
    follower   = "broker"
    reader     = "broker"
    standalone = "standalone"
  }[var.role]

  has_broker     = var.role != "namesrv"                                    # a broker process: data dir, tier, listen
  has_namesrv    = contains(["namesrv", "standalone"], var.role)            # a name-server listener
  has_log        = contains(["broker", "follower", "standalone"], var.role) # keeps a commit log: segments, flush, hot retention
  is_replica     = contains(["broker", "follower"], var.role)               # a group member: replication, failover
  has_controller = local.has_namesrv && var.controller_listen != null       # runs the failover controller
  has_tier       = var.tier_url != "" && var.tier_url != "none"
  listen         = coalesce(var.listen, var.role == "standalone" ? "127.0.0.1:10911" : ":10911")
  listen_port    = tonumber(regex(":([0-9]+)$", local.listen)[0])
  nsrv_listen    = coalesce(var.namesrv_listen, var.role == "standalone" ? "127.0.0.1:9876" : ":9876")
  nsrv_port      = tonumber(regex(":([0-9]+)$", local.nsrv_listen)[0])
  http_port      = tonumber(regex(":([0-9]+)$", var.http_listen)[0])
  # Strata's default replication port is the client port's successor.
  ha_port         = var.ha_listen != null ? tonumber(regex(":([0-9]+)$", var.ha_listen)[0]) : local.listen_port + 1
  controller_port = local.has_controller ? tonumber(regex(":([0-9]+)$", var.controller_listen)[0]) : 0
  min_insync      = var.min_insync_replicas != null ? var.min_insync_replicas : (var.replication == "sync" ? 2 : 1)
  derive_addr     = local.has_broker && var.advertise == "auto"
  derive_id       = var.broker_id_from_address
  derives_host    = local.derive_addr || local.derive_id

  # Binding a port below 1024 needs one capability; nothing else does.
  ports = concat(
    [local.http_port],
    local.has_broker ? [local.listen_port] : [],
    local.is_replica ? [local.ha_port] : [],
    local.has_namesrv ? [local.nsrv_port] : [],
    local.has_controller ? [local.controller_port] : [],
  )
  low_port        = min(local.ports...) < 1024
  unit_name       = "${var.service_name}.service"
  prepare_name    = "${var.service_name}-prepare.service"
  unit_path       = "/etc/systemd/system/${local.unit_name}"
  prepare_path    = "/etc/systemd/system/${local.prepare_name}"
  prepare_script  = "/usr/local/lib/strata/${var.service_name}-prepare"
  env_file_path   = "${var.config_dir}/${var.service_name}.env"
  host_env_path   = "/run/strata/${var.service_name}.host.env"
  data_dir        = local.has_broker || local.has_controller ? var.data_dir : ""
  credentials_env = var.credentials_env_file == null ? "" : var.credentials_env_file

  # The STRATA_* settings in a fixed, readable order; `on` says whether the
  # role uses the setting at all (nothing irrelevant is rendered), `flag`
  # whether the subcommand also has it as a flag (`strata standalone` reads
  # the controller's settings from the environment only).
  settings = [for s in [
    { k = "STRATA_ROLE", v = var.role == "broker" ? "leader" : var.role, on = contains(["broker", "follower", "reader"], var.role) },
    { k = "STRATA_CLUSTER", v = var.cluster_name, on = local.has_broker },
    { k = "STRATA_BROKER_NAME", v = var.broker_name, on = local.has_broker },
    { k = "STRATA_BROKER_ID", v = format("%d", var.broker_id), on = local.has_broker && !local.derive_id },
    { k = "STRATA_NAMESRV_LISTEN", v = local.nsrv_listen, on = local.has_namesrv },
    { k = "STRATA_CONTROLLER_LISTEN", v = coalesce(var.controller_listen, "-"), on = local.has_controller, flag = var.role == "namesrv" },
    { k = "STRATA_CONTROLLER_PEERS", v = join(";", var.controller_peers), on = local.has_controller && length(var.controller_peers) > 0, flag = var.role == "namesrv" },
    { k = "STRATA_NAMESRV", v = join(";", var.namesrv_addresses), on = local.has_broker && length(var.namesrv_addresses) > 0 },
    { k = "STRATA_LISTEN", v = local.listen, on = local.has_broker },
    { k = "STRATA_ADVERTISE", v = var.advertise, on = local.has_broker && var.advertise != "" && var.advertise != "auto" },
    { k = "STRATA_HA_LISTEN", v = coalesce(var.ha_listen, "-"), on = local.is_replica && var.ha_listen != null },
    { k = "STRATA_HA_ADVERTISE", v = var.ha_advertise, on = local.is_replica && var.ha_advertise != "" },
    { k = "STRATA_DATA_DIR", v = var.data_dir, on = local.has_broker || local.has_controller },
    { k = "STRATA_SEGMENT_SIZE", v = var.segment_size, on = local.has_log },
    { k = "STRATA_SEGMENT_MAX_AGE", v = var.segment_max_age, on = local.has_log },
    { k = "STRATA_FLUSH", v = var.flush, on = local.has_log },
    { k = "STRATA_REPLICATION", v = var.replication, on = local.is_replica },
    { k = "STRATA_MIN_INSYNC_REPLICAS", v = format("%d", local.min_insync), on = local.is_replica },
    { k = "STRATA_FAILOVER", v = var.failover ? "on" : "off", on = local.is_replica },
    { k = "STRATA_REPLICATE_FROM", v = var.replicate_from, on = var.role == "follower" && var.replicate_from != "" },
    { k = "STRATA_AUTO_CREATE_TOPICS", v = tostring(var.auto_create_topics), on = local.has_log },
    { k = "STRATA_TIER", v = var.tier_url, on = local.has_broker && var.tier_url != "" },
    { k = "STRATA_HOT_RETENTION", v = var.hot_retention, on = local.has_log && (local.has_tier || (var.role == "standalone" && var.tier_url == "")) },
    { k = "STRATA_CACHE_SIZE", v = var.cache_size, on = local.has_broker && (local.has_tier || (var.role == "standalone" && var.tier_url == "")) },
    { k = "STRATA_ACL_FILE", v = coalesce(var.acl_file, "-"), on = var.acl_file != null },
    { k = "STRATA_REQUIRE_AUTH", v = "true", on = var.require_auth },
    { k = "STRATA_TLS_CERT", v = coalesce(var.tls_cert_file, "-"), on = var.tls_cert_file != null },
    { k = "STRATA_TLS_KEY", v = coalesce(var.tls_key_file, "-"), on = var.tls_key_file != null },
    { k = "STRATA_TLS_CA", v = coalesce(var.tls_ca_file, "-"), on = var.tls_ca_file != null },
    { k = "STRATA_TLS_CLIENT_AUTH", v = "true", on = var.tls_client_auth },
    { k = "STRATA_MAX_CONNS", v = format("%d", coalesce(var.max_conns, 0)), on = var.max_conns != null },
    { k = "STRATA_MAX_CONNS_PER_IP", v = format("%d", coalesce(var.max_conns_per_ip, 0)), on = var.max_conns_per_ip != null },
    { k = "STRATA_MAX_INFLIGHT", v = format("%d", coalesce(var.max_inflight, 0)), on = local.has_broker && var.max_inflight != null },
    { k = "STRATA_MAX_HELD_PULLS", v = format("%d", coalesce(var.max_held_pulls, 0)), on = local.has_broker && var.max_held_pulls != null },
    { k = "STRATA_HTTP_LISTEN", v = var.http_listen, on = true },
    { k = "STRATA_LOG_LEVEL", v = var.log_level, on = true },
  ] : merge({ flag = true }, s)]
  module_env = { for s in local.settings : s.k => s.v if s.on }
  # The security settings belong to this module's inputs even when not
  # rendered (extra_env must not set them behind the validations' back).
  security_keys = [
    "STRATA_ACL_FILE", "STRATA_REQUIRE_AUTH", "STRATA_TLS_CERT", "STRATA_TLS_KEY", "STRATA_TLS_CA", "STRATA_TLS_CLIENT_AUTH",
    "STRATA_MAX_CONNS", "STRATA_MAX_CONNS_PER_IP", "STRATA_MAX_INFLIGHT", "STRATA_MAX_HELD_PULLS",
  ]
  env_pairs = concat(
    [for s in local.settings : { k = s.k, v = s.v } if s.on],
    [for k in sort(keys(var.extra_env)) : { k = k, v = var.extra_env[k] }],
  )
  # Values are double-quoted for systemd's EnvironmentFile= (and POSIX sh):
  # inside double quotes a backslash escapes \ " ` and $, and nothing is
  # expanded. Values never hold a newline (validated).
  env_lines = [for p in local.env_pairs : format("%s=\"%s\"", p.k, replace(replace(replace(replace(p.v, "\\", "\\\\"), "\"", "\\\""), "`", "\\`"), "$", "\\$"))]
  environment_file = format("%s\n", join("\n", concat([
    "# ${var.service_name}: Strata ${var.role} (`strata ${local.subcommand}`), rendered by terraform/modules/strata-node.",
    "# Every STRATA_<NAME> is the flag --<name> (see `strata ${local.subcommand} -h`).",
    local.credentials_env != "" ? "# No credentials here: the unit reads them from ${local.credentials_env} (yours to create, mode 0600)." : "# No credentials here: they come from the instance role.",
  ], local.env_lines)))

  # Host-derived settings, written at boot by the preparation script.
  host_derived = concat(local.derive_addr ? ["STRATA_ADVERTISE"] : [], local.derive_id ? ["STRATA_BROKER_ID"] : [])

  # Single-quoted for sh: '…' with each ' written as '\''.
  shq = {
    service  = "'${replace(var.service_name, "'", "'\\''")}'"
    user     = "'${replace(var.user, "'", "'\\''")}'"
    binary   = "'${replace(var.binary_path, "'", "'\\''")}'"
    url      = "'${replace(var.binary_url, "'", "'\\''")}'"
    sha      = "'${var.binary_sha256}'"
    device   = "'${replace(coalesce(var.data_device, "-"), "'", "'\\''")}'"
    data_dir = "'${replace(local.data_dir, "'", "'\\''")}'"
    host_env = "'${local.host_env_path}'"
  }

  systemd_unit = templatefile("${path.module}/templates/strata.service.tftpl", {
    service_name         = var.service_name
    role                 = var.role
    subcommand           = local.subcommand
    prepare_name         = local.prepare_name
    user                 = var.user
    env_file             = local.env_file_path
    host_env_file        = local.derives_host ? local.host_env_path : ""
    credentials_env_file = local.credentials_env
    binary_path          = var.binary_path
    data_dir             = local.data_dir
    limit_nofile         = format("%d", var.limit_nofile)
    low_port             = local.low_port
  })

  prepare_unit = templatefile("${path.module}/templates/prepare.service.tftpl", {
    service_name   = var.service_name
    unit_name      = local.unit_name
    prepare_script = local.prepare_script
  })

  prepare_script_text = templatefile("${path.module}/templates/prepare.sh.tftpl", {
    service_name   = var.service_name
    q              = local.shq
    has_url        = var.binary_url != ""
    has_device     = var.data_device != null
    fs_type        = var.data_device_fs_type
    has_data_dir   = local.data_dir != ""
    derive_addr    = local.derive_addr
    derive_id      = local.derive_id
    derives_host   = local.derives_host
    host_env_path  = local.host_env_path
    advertise_port = format("%d", local.listen_port)
  })

  files = {
    (local.env_file_path)  = { content = local.environment_file, permissions = "0644" }
    (local.unit_path)      = { content = local.systemd_unit, permissions = "0644" }
    (local.prepare_path)   = { content = local.prepare_unit, permissions = "0644" }
    (local.prepare_script) = { content = local.prepare_script_text, permissions = "0755" }
  }

  cloud_init = "#cloud-config\n${yamlencode({
    write_files = [for p in sort(keys(local.files)) : {
      path        = p
      content     = local.files[p].content
      permissions = local.files[p].permissions
      owner       = "root:root"
    }]
    runcmd = [
      ["systemctl", "daemon-reload"],
      ["systemctl", "enable", "--now", local.unit_name],
    ]
  })}"
}
