output "controller_peers" {
  description = "With failover: the name servers' failover controller addresses (host:port;host:port); \"\" otherwise."
  value       = join(";", local.controller_peers)
}

output "namesrv_addresses" {
  description = "Name servers for clients: host:port;host:port (e.g. `strata produce --namesrv …`, or a RocketMQ client's name-server address)."
  value       = join(";", local.namesrv_addresses)
}

output "tier_url" {
  description = "The cold tier of every broker (leaders and followers, with or without failover), reader and standalone node."
  value       = local.tier_url
}

output "hosts" {
  description = "Per host address: its role, service, broker name and id, whether its group fails over, and every rendered file (files: absolute path => { content, permissions })."
  value = { for ip, n in module.node : ip => {
    role                  = local.roles[ip]
    unit_name             = n.unit_name
    subcommand            = n.subcommand
    broker_name           = local.roles[ip] == "namesrv" ? null : n.environment["STRATA_BROKER_NAME"]
    broker_id             = local.roles[ip] == "namesrv" ? null : tonumber(n.environment["STRATA_BROKER_ID"])
    failover              = contains(["broker", "follower"], local.roles[ip]) ? n.environment["STRATA_FAILOVER"] == "on" : null
    environment_file_path = n.environment_file_path
    environment_file      = n.environment_file
    systemd_unit          = n.systemd_unit
    files                 = n.files
  } }

  precondition {
    condition     = alltrue([for ip, g in local.follower_group : contains(values(local.broker_names), g)])
    error_message = "Every follower needs its group's leader among the hosts: ${join(", ", [for ip, g in local.follower_group : "${ip} follows ${g}" if !contains(values(local.broker_names), g)])}, but the brokers are ${jsonencode(values(local.broker_names))} (named in lexical order of their addresses)."
  }
  precondition {
    condition     = var.replication != "sync" || alltrue([for g, c in local.group_copies : c >= local.min_insync])
    error_message = "Under sync replication a send needs ${local.min_insync} copies, which a group without enough followers never has: ${join(", ", [for g, c in local.group_copies : "${g} holds ${c}" if c < local.min_insync])}. Add followers (\"follower:<group>\") or lower min_insync_replicas."
  }
  precondition {
    condition     = length(local.readers) == 0 || !contains(local.failover_groups, local.reader_broker)
    error_message = "Tier readers serve ${local.reader_broker}'s offloaded history, but that group fails over, and tier readers are not supported in failover groups yet (their routing under a changing leader is not tested; the group does offload to MinIO): point reader_broker_name at a group without followers, or drop the readers."
  }
}

output "install_scripts" {
  description = "Per host address: a shell script that writes the host's files and (re)starts its service. Run as root on that host."
  value       = local.install_scripts
}
