output "subcommand" {
  description = "The strata subcommand the role runs: namesrv, broker (roles broker, follower and reader) or standalone."
  value       = local.subcommand
}

output "command" {
  description = "The command line the unit runs ([binary_path, subcommand]); every setting is in the environment."
  value       = [var.binary_path, local.subcommand]
}

output "environment" {
  description = "The variables of the environment file, unquoted (STRATA_* settings and extra_env). Settings derived at boot (host_derived) are not in it."
  value       = merge(var.extra_env, local.module_env)
}

output "environment_file" {
  description = "The environment file (KEY=\"value\" lines, quoted for systemd's EnvironmentFile= and POSIX sh) to install at environment_file_path."
  value       = local.environment_file

  precondition {
    condition     = length(setintersection(keys(var.extra_env), keys(local.module_env))) == 0
    error_message = "extra_env sets ${join(", ", sort(setintersection(keys(var.extra_env), keys(local.module_env))))}, which this module renders from its own inputs: set the input instead."
  }
  precondition {
    condition     = length(setintersection(keys(var.extra_env), local.security_keys)) == 0
    error_message = "extra_env sets ${join(", ", sort(setintersection(keys(var.extra_env), local.security_keys)))}: use the module's inputs (acl_file, require_auth, tls_cert_file, tls_key_file, tls_ca_file, tls_client_auth, max_conns, max_conns_per_ip, max_inflight, max_held_pulls), which are validated together."
  }
  precondition {
    condition     = !contains(keys(var.extra_env), "STRATA_ADVERTISE") || !local.derive_addr
    error_message = "extra_env sets STRATA_ADVERTISE while advertise = \"auto\" derives it at boot."
  }
}

output "environment_file_path" {
  description = "Where the environment file goes: <config_dir>/<service_name>.env."
  value       = local.env_file_path
}

output "host_derived" {
  description = "Settings the preparation script writes at boot to /run/strata/<service_name>.host.env (STRATA_ADVERTISE with advertise = \"auto\", STRATA_BROKER_ID with broker_id_from_address)."
  value       = local.host_derived
}

output "flags" {
  description = "The STRATA_* settings as command-line flags (--name=value), for running strata outside systemd. Settings derived at boot are not included, nor those the subcommand reads from the environment only (a standalone node's STRATA_CONTROLLER_LISTEN and STRATA_CONTROLLER_PEERS: set those as variables)."
  value       = [for s in local.settings : format("--%s=%s", lower(replace(trimprefix(s.k, "STRATA_"), "_", "-")), s.v) if s.on && s.flag]
}

output "unit_name" {
  description = "The systemd service: <service_name>.service."
  value       = local.unit_name
}

output "systemd_unit" {
  description = "The hardened systemd unit to install at /etc/systemd/system/<service_name>.service."
  value       = local.systemd_unit
}

output "prepare_unit" {
  description = "The oneshot unit that prepares the host before the service at every boot (<service_name>-prepare.service)."
  value       = local.prepare_unit
}

output "prepare_script" {
  description = "The script prepare_unit runs: creates the account, installs the binary (binary_url), mounts data_device, writes host-derived settings."
  value       = local.prepare_script_text
}

output "files" {
  description = "Every file the node needs, by absolute path: { content, permissions }. Install them all, then `systemctl daemon-reload && systemctl enable --now <unit_name>` (cloud_init does exactly that)."
  value       = local.files
}

output "cloud_init" {
  description = "#cloud-config user data that writes the files and enables the service."
  value       = local.cloud_init
}
