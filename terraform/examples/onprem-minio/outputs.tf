output "namesrv_addresses" {
  description = "Name servers for clients: host:port;host:port (e.g. `strata produce --namesrv …`, or a RocketMQ client's name-server address)."
  value       = join(";", local.namesrv_addresses)
}

output "tier_url" {
  description = "The cold tier every broker and reader uses."
  value       = local.tier_url
}

output "hosts" {
  description = "Per host address: its role, service, broker name and id, and every rendered file (files: absolute path => { content, permissions })."
  value = { for ip, n in module.node : ip => {
    role                  = var.hosts[ip]
    unit_name             = n.unit_name
    subcommand            = n.subcommand
    broker_name           = var.hosts[ip] == "namesrv" ? null : n.environment["STRATA_BROKER_NAME"]
    broker_id             = var.hosts[ip] == "namesrv" ? null : tonumber(n.environment["STRATA_BROKER_ID"])
    environment_file_path = n.environment_file_path
    environment_file      = n.environment_file
    systemd_unit          = n.systemd_unit
    files                 = n.files
  } }
}

output "install_scripts" {
  description = "Per host address: a shell script that writes the host's files and (re)starts its service. Run as root on that host."
  value       = local.install_scripts
}
