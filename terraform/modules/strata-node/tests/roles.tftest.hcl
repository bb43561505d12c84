# Each role renders a complete, correct node: the right subcommand, exactly
# the settings the role uses (STRATA_* lines, quoted for systemd), a
# hardened unit and cloud-init that installs it all. Offline: `command =
# plan` on a module without providers or resources.

variables {
  namesrv_addresses = ["10.0.1.10:9876", "10.0.2.10:9876"]
}

run "namesrv" {
  command = plan

  variables {
    role = "namesrv"
  }

  assert {
    condition     = output.subcommand == "namesrv" && output.command == ["/usr/local/bin/strata", "namesrv"]
    error_message = "a name server runs `strata namesrv`"
  }
  assert {
    condition     = strcontains(output.systemd_unit, "\nExecStart=/usr/local/bin/strata namesrv\n")
    error_message = "the unit's ExecStart runs `strata namesrv`"
  }
  assert {
    condition = [for l in split("\n", output.environment_file) : l if l != "" && !startswith(l, "#")] == [
      "STRATA_NAMESRV_LISTEN=\":9876\"",
      "STRATA_HTTP_LISTEN=\"127.0.0.1:8080\"",
      "STRATA_LOG_LEVEL=\"info\"",
    ]
    error_message = "a name server's environment holds its listen address, the loopback HTTP address and the log level, nothing else: ${output.environment_file}"
  }
  assert {
    condition     = !strcontains(output.systemd_unit, "ReadWritePaths=") && !strcontains(output.systemd_unit, "RequiresMountsFor=")
    error_message = "a name server keeps no data: nothing is writable"
  }
  assert {
    condition     = !strcontains(output.prepare_script, "mkfs") && !strcontains(output.prepare_script, "chown")
    error_message = "a name server has no data disk or directory to prepare"
  }
}

run "broker" {
  command = plan

  variables {
    role            = "broker"
    broker_name     = "broker-b"
    cluster_name    = "prod"
    tier_url        = "s3://strata-cold/prod/broker-b?region=eu-west-1"
    flush           = "async"
    segment_size    = "256MiB"
    segment_max_age = "5m"
    hot_retention   = "24h"
    cache_size      = "2GiB"
    advertise       = "10.0.1.20:10911"
    data_dir        = "/srv/strata"
  }

  assert {
    condition     = output.subcommand == "broker"
    error_message = "a leader runs `strata broker`"
  }
  assert {
    condition = [for l in split("\n", output.environment_file) : l if l != "" && !startswith(l, "#")] == [
      "STRATA_ROLE=\"leader\"",
      "STRATA_CLUSTER=\"prod\"",
      "STRATA_BROKER_NAME=\"broker-b\"",
      "STRATA_BROKER_ID=\"0\"",
      "STRATA_NAMESRV=\"10.0.1.10:9876;10.0.2.10:9876\"",
      "STRATA_LISTEN=\":10911\"",
      "STRATA_ADVERTISE=\"10.0.1.20:10911\"",
      "STRATA_DATA_DIR=\"/srv/strata\"",
      "STRATA_SEGMENT_SIZE=\"256MiB\"",
      "STRATA_SEGMENT_MAX_AGE=\"5m\"",
      "STRATA_FLUSH=\"async\"",
      "STRATA_REPLICATION=\"async\"",
      "STRATA_MIN_INSYNC_REPLICAS=\"1\"",
      "STRATA_FAILOVER=\"off\"",
      "STRATA_AUTO_CREATE_TOPICS=\"false\"",
      "STRATA_TIER=\"s3://strata-cold/prod/broker-b?region=eu-west-1\"",
      "STRATA_HOT_RETENTION=\"24h\"",
      "STRATA_CACHE_SIZE=\"2GiB\"",
      "STRATA_HTTP_LISTEN=\"127.0.0.1:8080\"",
      "STRATA_LOG_LEVEL=\"info\"",
    ]
    error_message = "the leader's environment file is not the expected one (replication: async, no failover, Strata's replication port): ${output.environment_file}"
  }
  assert {
    condition     = output.environment["STRATA_NAMESRV"] == "10.0.1.10:9876;10.0.2.10:9876" && output.environment["STRATA_ROLE"] == "leader"
    error_message = "environment map: name servers joined with ';', role leader"
  }
  assert {
    condition     = contains(output.flags, "--namesrv=10.0.1.10:9876;10.0.2.10:9876") && contains(output.flags, "--flush=async") && contains(output.flags, "--data-dir=/srv/strata")
    error_message = "flags mirror the environment: ${jsonencode(output.flags)}"
  }
  assert {
    condition     = endswith(output.environment_file, "\n") && startswith(output.environment_file, "# strata: Strata broker")
    error_message = "the environment file starts with its comment header and ends with a newline"
  }
  # The unit: dedicated user, restarts, limits, sandbox with only the data
  # directory writable, and ExecStart following the role.
  assert {
    condition = alltrue([for l in [
      "ExecStart=/usr/local/bin/strata broker",
      "User=strata",
      "Group=strata",
      "EnvironmentFile=/etc/strata/strata.env",
      "Restart=on-failure",
      "LimitNOFILE=1048576",
      "NoNewPrivileges=yes",
      "ProtectSystem=strict",
      "ReadWritePaths=/srv/strata",
      "RequiresMountsFor=/srv/strata",
      "ProtectHome=yes",
      "PrivateTmp=yes",
      "CapabilityBoundingSet=",
      "Requires=strata-prepare.service",
      "WantedBy=multi-user.target",
    ] : contains(split("\n", output.systemd_unit), l)])
    error_message = "the unit lacks an expected line: ${output.systemd_unit}"
  }
  assert {
    condition     = length(regexall("(?m)^EnvironmentFile=", output.systemd_unit)) == 1
    error_message = "without credentials_env_file or host-derived settings the unit reads only the rendered environment file"
  }
  # cloud-init writes every file and enables the service.
  assert {
    condition     = startswith(output.cloud_init, "#cloud-config\n")
    error_message = "cloud-init user data starts with #cloud-config"
  }
  assert {
    condition = [for f in yamldecode(output.cloud_init).write_files : f.path] == [
      "/etc/strata/strata.env",
      "/etc/systemd/system/strata-prepare.service",
      "/etc/systemd/system/strata.service",
      "/usr/local/lib/strata/strata-prepare",
    ]
    error_message = "cloud-init writes the environment file, both units and the preparation script"
  }
  assert {
    condition     = [for f in yamldecode(output.cloud_init).write_files : f.content if f.path == "/etc/strata/strata.env"][0] == output.environment_file
    error_message = "cloud-init writes the environment file verbatim"
  }
  assert {
    condition     = contains(yamldecode(output.cloud_init).runcmd, ["systemctl", "enable", "--now", "strata.service"])
    error_message = "cloud-init enables and starts the service"
  }
  assert {
    condition     = sort(keys(output.files)) == sort([for f in yamldecode(output.cloud_init).write_files : f.path])
    error_message = "files and cloud-init carry the same files"
  }
  assert {
    condition     = !strcontains(output.prepare_script, "curl") && !strcontains(output.prepare_script, "mkfs")
    error_message = "without binary_url and data_device nothing is downloaded or formatted"
  }
}

run "reader" {
  command = plan

  variables {
    role                 = "reader"
    broker_id            = 2
    tier_url             = "minio://minio.internal:9000/strata/prod?secure=true"
    listen               = ":10921"
    http_listen          = "127.0.0.1:8081"
    credentials_env_file = "/etc/strata/credentials.env"
  }

  assert {
    condition     = output.subcommand == "broker" && strcontains(output.systemd_unit, "\nExecStart=/usr/local/bin/strata broker\n")
    error_message = "a tier reader runs `strata broker`"
  }
  assert {
    condition = [for l in split("\n", output.environment_file) : l if l != "" && !startswith(l, "#")] == [
      "STRATA_ROLE=\"reader\"",
      "STRATA_CLUSTER=\"DefaultCluster\"",
      "STRATA_BROKER_NAME=\"broker-a\"",
      "STRATA_BROKER_ID=\"2\"",
      "STRATA_NAMESRV=\"10.0.1.10:9876;10.0.2.10:9876\"",
      "STRATA_LISTEN=\":10921\"",
      "STRATA_DATA_DIR=\"/var/lib/strata\"",
      "STRATA_TIER=\"minio://minio.internal:9000/strata/prod?secure=true\"",
      "STRATA_CACHE_SIZE=\"512MiB\"",
      "STRATA_HTTP_LISTEN=\"127.0.0.1:8081\"",
      "STRATA_LOG_LEVEL=\"info\"",
    ]
    error_message = "the reader's environment (no leader-only settings such as STRATA_FLUSH) is not the expected one: ${output.environment_file}"
  }
  assert {
    condition     = strcontains(output.systemd_unit, "\nEnvironmentFile=/etc/strata/strata.env\nEnvironmentFile=-/etc/strata/credentials.env\n")
    error_message = "the unit reads the operator's credentials file after the rendered one, if it exists"
  }
  assert {
    condition     = length(regexall("(?i)(secret|password|MINIO_|AWS_ACCESS)", output.environment_file)) == 0 && length(regexall("(?i)(secret|password|MINIO_|AWS_ACCESS)", output.cloud_init)) == 0
    error_message = "no credentials are rendered"
  }
  assert {
    condition     = !contains(keys(output.files), "/etc/strata/credentials.env")
    error_message = "the module never writes the credentials file"
  }
}

run "reader_in_an_auto_scaling_group" {
  command = plan

  variables {
    role                   = "reader"
    broker_id_from_address = true
    advertise              = "auto"
    tier_url               = "s3://strata-cold/prod?region=eu-west-1"
  }

  assert {
    condition     = jsonencode(output.host_derived) == jsonencode(["STRATA_ADVERTISE", "STRATA_BROKER_ID"])
    error_message = "advertise address and broker id are derived at boot"
  }
  assert {
    condition     = !strcontains(output.environment_file, "STRATA_BROKER_ID") && !strcontains(output.environment_file, "STRATA_ADVERTISE")
    error_message = "derived settings are not in the rendered file"
  }
  assert {
    condition     = strcontains(output.systemd_unit, "\nEnvironmentFile=/run/strata/strata.host.env\n")
    error_message = "the unit reads the boot-time file (and fails without it)"
  }
  assert {
    condition     = strcontains(output.prepare_script, "echo \"STRATA_ADVERTISE=\\\"$addr:10911\\\"\"") && strcontains(output.prepare_script, "STRATA_BROKER_ID=")
    error_message = "the preparation script writes both derived settings"
  }
}

run "standalone" {
  command = plan

  variables {
    role              = "standalone"
    namesrv_addresses = []
  }

  assert {
    condition     = output.subcommand == "standalone" && strcontains(output.systemd_unit, "\nExecStart=/usr/local/bin/strata standalone\n")
    error_message = "standalone runs `strata standalone`"
  }
  assert {
    condition = [for l in split("\n", output.environment_file) : l if l != "" && !startswith(l, "#")] == [
      "STRATA_CLUSTER=\"DefaultCluster\"",
      "STRATA_BROKER_NAME=\"broker-a\"",
      "STRATA_BROKER_ID=\"0\"",
      "STRATA_NAMESRV_LISTEN=\"127.0.0.1:9876\"",
      "STRATA_LISTEN=\"127.0.0.1:10911\"",
      "STRATA_DATA_DIR=\"/var/lib/strata\"",
      "STRATA_SEGMENT_SIZE=\"1GiB\"",
      "STRATA_SEGMENT_MAX_AGE=\"10m\"",
      "STRATA_FLUSH=\"sync\"",
      "STRATA_AUTO_CREATE_TOPICS=\"false\"",
      "STRATA_HOT_RETENTION=\"80%\"",
      "STRATA_CACHE_SIZE=\"512MiB\"",
      "STRATA_HTTP_LISTEN=\"127.0.0.1:8080\"",
      "STRATA_LOG_LEVEL=\"info\"",
    ]
    error_message = "standalone: loopback listeners, Strata's default file tier (no STRATA_TIER): ${output.environment_file}"
  }
}

run "values_are_quoted_for_systemd" {
  command = plan

  variables {
    role = "broker"
    extra_env = {
      AWS_REGION = "eu-west-1"
      ODD        = "a \"b\" $HOME `c` \\d 'e' #f"
    }
  }

  assert {
    condition     = strcontains(output.environment_file, "\nODD=\"a \\\"b\\\" \\$HOME \\`c\\` \\\\d 'e' #f\"\n")
    error_message = "inside double quotes \\ \" ` and $ are escaped, nothing else: ${output.environment_file}"
  }
  assert {
    condition     = endswith(output.environment_file, "AWS_REGION=\"eu-west-1\"\nODD=\"a \\\"b\\\" \\$HOME \\`c\\` \\\\d 'e' #f\"\n")
    error_message = "extra_env follows the module's settings, sorted by name"
  }
  assert {
    condition     = output.environment["ODD"] == "a \"b\" $HOME `c` \\d 'e' #f"
    error_message = "the environment map holds the raw value"
  }
  assert {
    condition     = alltrue([for l in split("\n", output.environment_file) : l == "" || startswith(l, "#") || can(regex("^[A-Za-z_][A-Za-z0-9_]*=\"([^\"\\\\`$]|\\\\[\"\\\\`$])*\"$", l))])
    error_message = "every line is a comment or KEY=\"escaped value\""
  }
}

run "nvme_instance_store" {
  command = plan

  variables {
    role                = "broker"
    data_device         = "/dev/disk/by-id/nvme-Amazon_EC2_NVMe_Instance_Storage_*"
    data_device_fs_type = "xfs"
    binary_url          = "https://releases.example.com/strata/v1.0.0/strata-linux-amd64"
    binary_sha256       = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
  }

  assert {
    condition     = strcontains(output.prepare_script, "pattern='/dev/disk/by-id/nvme-Amazon_EC2_NVMe_Instance_Storage_*'") && strcontains(output.prepare_script, "mkfs.xfs -q -K -L strata-data \"$dev\"")
    error_message = "the preparation script formats (xfs) and mounts the instance store"
  }
  assert {
    condition     = strcontains(output.prepare_script, "mount -o noatime \"$dev\" \"$data_dir\"") && strcontains(output.prepare_script, "data_dir='/var/lib/strata'")
    error_message = "the device is mounted at the data directory"
  }
  assert {
    condition     = strcontains(output.prepare_script, "url='https://releases.example.com/strata/v1.0.0/strata-linux-amd64'") && strcontains(output.prepare_script, "sha='9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08'")
    error_message = "the binary is downloaded and checked against its hash"
  }
}

run "privileged_port_gets_one_capability" {
  command = plan

  variables {
    role   = "broker"
    listen = ":443"
  }

  assert {
    condition     = strcontains(output.systemd_unit, "\nCapabilityBoundingSet=CAP_NET_BIND_SERVICE\nAmbientCapabilities=CAP_NET_BIND_SERVICE\n")
    error_message = "a port below 1024 needs CAP_NET_BIND_SERVICE, and only that"
  }
}

run "http_on_every_interface_when_allowed" {
  command = plan

  variables {
    role                  = "namesrv"
    http_listen           = ":8080"
    allow_http_listen_any = true
    service_name          = "strata-namesrv"
    config_dir            = "/opt/strata/etc"
  }

  assert {
    condition     = output.environment["STRATA_HTTP_LISTEN"] == ":8080"
    error_message = "an explicit opt-in allows a wildcard HTTP address"
  }
  assert {
    condition     = output.environment_file_path == "/opt/strata/etc/strata-namesrv.env" && output.unit_name == "strata-namesrv.service"
    error_message = "file and unit names follow service_name and config_dir"
  }
  assert {
    condition     = strcontains(output.systemd_unit, "\nEnvironmentFile=/opt/strata/etc/strata-namesrv.env\n") && strcontains(output.systemd_unit, "\nRequires=strata-namesrv-prepare.service\n")
    error_message = "the unit refers to its own files"
  }
}

# ---------------------------------------------------------------------------
# Replication and failover: a group is a leader (role broker, id 0) and its
# followers (role follower, ids 1 and up), with the same settings.

run "follower" {
  command = plan

  variables {
    role                = "follower"
    broker_name         = "broker-b"
    broker_id           = 2
    cluster_name        = "prod"
    advertise           = "10.0.2.21:10911"
    ha_listen           = ":10912"
    replication         = "sync"
    min_insync_replicas = 2
    segment_size        = "256MiB"
    segment_max_age     = "5m"
    flush               = "async"
    data_dir            = "/srv/strata"
    data_device         = "/dev/disk/by-id/nvme-Amazon_EC2_NVMe_Instance_Storage_*"
  }

  assert {
    condition     = output.subcommand == "broker" && strcontains(output.systemd_unit, "\nExecStart=/usr/local/bin/strata broker\n")
    error_message = "a follower runs `strata broker`"
  }
  assert {
    condition = [for l in split("\n", output.environment_file) : l if l != "" && !startswith(l, "#")] == [
      "STRATA_ROLE=\"follower\"",
      "STRATA_CLUSTER=\"prod\"",
      "STRATA_BROKER_NAME=\"broker-b\"",
      "STRATA_BROKER_ID=\"2\"",
      "STRATA_NAMESRV=\"10.0.1.10:9876;10.0.2.10:9876\"",
      "STRATA_LISTEN=\":10911\"",
      "STRATA_ADVERTISE=\"10.0.2.21:10911\"",
      "STRATA_HA_LISTEN=\":10912\"",
      "STRATA_DATA_DIR=\"/srv/strata\"",
      "STRATA_SEGMENT_SIZE=\"256MiB\"",
      "STRATA_SEGMENT_MAX_AGE=\"5m\"",
      "STRATA_FLUSH=\"async\"",
      "STRATA_REPLICATION=\"sync\"",
      "STRATA_MIN_INSYNC_REPLICAS=\"2\"",
      "STRATA_FAILOVER=\"off\"",
      "STRATA_AUTO_CREATE_TOPICS=\"false\"",
      "STRATA_HTTP_LISTEN=\"127.0.0.1:8080\"",
      "STRATA_LOG_LEVEL=\"info\"",
    ]
    error_message = "a follower has its leader's log settings (segment size, flush) and the group's replication settings, and without tier_url no cold-tier settings: ${output.environment_file}"
  }
  assert {
    condition     = startswith(output.environment_file, "# strata: Strata follower (`strata broker`)")
    error_message = "the header names the role"
  }
  assert {
    condition     = contains(output.flags, "--role=follower") && contains(output.flags, "--broker-id=2") && contains(output.flags, "--ha-listen=:10912") && contains(output.flags, "--min-insync-replicas=2")
    error_message = "flags mirror the environment: ${jsonencode(output.flags)}"
  }
  assert {
    condition = alltrue([for l in [
      "ReadWritePaths=/srv/strata",
      "RequiresMountsFor=/srv/strata",
      "ProtectSystem=strict",
      "CapabilityBoundingSet=",
    ] : contains(split("\n", output.systemd_unit), l)])
    error_message = "a follower's unit: only its data directory is writable, no capabilities: ${output.systemd_unit}"
  }
  assert {
    condition     = strcontains(output.prepare_script, "mkfs.ext4") && strcontains(output.prepare_script, "mount -o noatime \"$dev\" \"$data_dir\"") && strcontains(output.prepare_script, "data_dir='/srv/strata'")
    error_message = "a follower keeps its copy on its own data disk, like a leader"
  }
}

run "follower_advertising_its_boot_address" {
  command = plan

  variables {
    role      = "follower"
    broker_id = 1
    advertise = "auto"
  }

  assert {
    condition     = jsonencode(output.host_derived) == jsonencode(["STRATA_ADVERTISE"]) && output.environment["STRATA_BROKER_ID"] == "1"
    error_message = "the address is derived at boot, the id is fixed"
  }
  assert {
    condition     = !contains(keys(output.environment), "STRATA_HA_LISTEN") && !contains(keys(output.environment), "STRATA_HA_ADVERTISE")
    error_message = "without ha_listen and ha_advertise Strata's defaults apply: the client port's successor on the advertised host"
  }
  assert {
    condition     = !contains(keys(output.environment), "STRATA_TIER") && !contains(keys(output.environment), "STRATA_HOT_RETENTION") && !contains(keys(output.environment), "STRATA_CACHE_SIZE")
    error_message = "a follower without tier_url renders no cold-tier settings"
  }
}

# A group's members share the cold tier: only the current leader offloads;
# followers delete what it offloaded (after their own hot retention), serve
# offloaded history from the tier and rebuild from it when they fall behind.
run "follower_with_a_cold_tier" {
  command = plan

  variables {
    role          = "follower"
    broker_name   = "broker-b"
    broker_id     = 1
    advertise     = "10.0.2.21:10911"
    tier_url      = "s3://strata-cold/prod?region=eu-west-1"
    hot_retention = "24h"
    cache_size    = "2GiB"
  }

  assert {
    condition = [for l in split("\n", output.environment_file) : l if l != "" && !startswith(l, "#")] == [
      "STRATA_ROLE=\"follower\"",
      "STRATA_CLUSTER=\"DefaultCluster\"",
      "STRATA_BROKER_NAME=\"broker-b\"",
      "STRATA_BROKER_ID=\"1\"",
      "STRATA_NAMESRV=\"10.0.1.10:9876;10.0.2.10:9876\"",
      "STRATA_LISTEN=\":10911\"",
      "STRATA_ADVERTISE=\"10.0.2.21:10911\"",
      "STRATA_DATA_DIR=\"/var/lib/strata\"",
      "STRATA_SEGMENT_SIZE=\"1GiB\"",
      "STRATA_SEGMENT_MAX_AGE=\"10m\"",
      "STRATA_FLUSH=\"sync\"",
      "STRATA_REPLICATION=\"async\"",
      "STRATA_MIN_INSYNC_REPLICAS=\"1\"",
      "STRATA_FAILOVER=\"off\"",
      "STRATA_AUTO_CREATE_TOPICS=\"false\"",
      "STRATA_TIER=\"s3://strata-cold/prod?region=eu-west-1\"",
      "STRATA_HOT_RETENTION=\"24h\"",
      "STRATA_CACHE_SIZE=\"2GiB\"",
      "STRATA_HTTP_LISTEN=\"127.0.0.1:8080\"",
      "STRATA_LOG_LEVEL=\"info\"",
    ]
    error_message = "a follower with a cold tier renders it, its hot retention and its cache: ${output.environment_file}"
  }
  assert {
    condition     = output.environment["STRATA_TIER"] == "s3://strata-cold/prod?region=eu-west-1" && output.environment["STRATA_HOT_RETENTION"] == "24h" && output.environment["STRATA_CACHE_SIZE"] == "2GiB"
    error_message = "environment map: the follower's tier, hot retention and cache"
  }
  assert {
    condition     = contains(output.flags, "--tier=s3://strata-cold/prod?region=eu-west-1") && contains(output.flags, "--hot-retention=24h") && contains(output.flags, "--cache-size=2GiB")
    error_message = "flags mirror the environment: ${jsonencode(output.flags)}"
  }
}

run "follower_with_the_cold_tier_disabled" {
  command = plan

  variables {
    role      = "follower"
    broker_id = 1
    tier_url  = "none"
  }

  assert {
    condition     = output.environment["STRATA_TIER"] == "none" && !contains(keys(output.environment), "STRATA_HOT_RETENTION") && !contains(keys(output.environment), "STRATA_CACHE_SIZE")
    error_message = "tier_url = \"none\" disables the tier explicitly, with no hot retention or cache: ${jsonencode(output.environment)}"
  }
}

run "follower_with_a_static_leader" {
  command = plan

  variables {
    role           = "follower"
    broker_id      = 1
    replicate_from = "10.0.1.20:10912"
  }

  assert {
    condition     = output.environment["STRATA_REPLICATE_FROM"] == "10.0.1.20:10912" && output.environment["STRATA_FAILOVER"] == "off"
    error_message = "a follower without failover may name its leader's replication address"
  }
}

run "leader_with_sync_replication_and_failover" {
  command = plan

  variables {
    role                = "broker"
    advertise           = "10.0.1.20:10911"
    ha_listen           = "10.0.1.20:10922"
    ha_advertise        = "broker-a.internal:10922"
    replication         = "sync"
    min_insync_replicas = 3
    failover            = true
  }

  assert {
    condition = [for l in split("\n", output.environment_file) : l if l != "" && !startswith(l, "#")] == [
      "STRATA_ROLE=\"leader\"",
      "STRATA_CLUSTER=\"DefaultCluster\"",
      "STRATA_BROKER_NAME=\"broker-a\"",
      "STRATA_BROKER_ID=\"0\"",
      "STRATA_NAMESRV=\"10.0.1.10:9876;10.0.2.10:9876\"",
      "STRATA_LISTEN=\":10911\"",
      "STRATA_ADVERTISE=\"10.0.1.20:10911\"",
      "STRATA_HA_LISTEN=\"10.0.1.20:10922\"",
      "STRATA_HA_ADVERTISE=\"broker-a.internal:10922\"",
      "STRATA_DATA_DIR=\"/var/lib/strata\"",
      "STRATA_SEGMENT_SIZE=\"1GiB\"",
      "STRATA_SEGMENT_MAX_AGE=\"10m\"",
      "STRATA_FLUSH=\"sync\"",
      "STRATA_REPLICATION=\"sync\"",
      "STRATA_MIN_INSYNC_REPLICAS=\"3\"",
      "STRATA_FAILOVER=\"on\"",
      "STRATA_AUTO_CREATE_TOPICS=\"false\"",
      "STRATA_HTTP_LISTEN=\"127.0.0.1:8080\"",
      "STRATA_LOG_LEVEL=\"info\"",
    ]
    error_message = "the leader's replication settings are not the expected ones: ${output.environment_file}"
  }
  assert {
    condition     = contains(output.flags, "--failover=on") && contains(output.flags, "--replication=sync") && contains(output.flags, "--ha-advertise=broker-a.internal:10922")
    error_message = "flags mirror the environment: ${jsonencode(output.flags)}"
  }
}

# Failover with a cold tier: every member of the group has the same tier,
# hot retention and cache, since any of them may lead (and offload).
run "leader_with_failover_and_a_cold_tier" {
  command = plan

  variables {
    role          = "broker"
    replication   = "sync"
    failover      = true
    tier_url      = "minio://minio.internal:9000/strata/prod"
    hot_retention = "10GiB"
  }

  assert {
    condition = (
      output.environment["STRATA_FAILOVER"] == "on" &&
      output.environment["STRATA_TIER"] == "minio://minio.internal:9000/strata/prod" &&
      output.environment["STRATA_HOT_RETENTION"] == "10GiB" &&
      output.environment["STRATA_CACHE_SIZE"] == "512MiB"
    )
    error_message = "a leader under failover keeps its cold tier: ${jsonencode(output.environment)}"
  }
  assert {
    condition     = contains(output.flags, "--failover=on") && contains(output.flags, "--tier=minio://minio.internal:9000/strata/prod")
    error_message = "flags mirror the environment: ${jsonencode(output.flags)}"
  }
}

run "follower_with_failover_and_a_cold_tier" {
  command = plan

  variables {
    role          = "follower"
    broker_id     = 2
    replication   = "sync"
    failover      = true
    tier_url      = "minio://minio.internal:9000/strata/prod"
    hot_retention = "10GiB"
  }

  assert {
    condition = (
      output.environment["STRATA_ROLE"] == "follower" &&
      output.environment["STRATA_FAILOVER"] == "on" &&
      output.environment["STRATA_TIER"] == "minio://minio.internal:9000/strata/prod" &&
      output.environment["STRATA_HOT_RETENTION"] == "10GiB" &&
      output.environment["STRATA_CACHE_SIZE"] == "512MiB"
    )
    error_message = "a follower under failover has the group's cold tier: ${jsonencode(output.environment)}"
  }
  assert {
    condition     = contains(output.flags, "--failover=on") && contains(output.flags, "--tier=minio://minio.internal:9000/strata/prod") && contains(output.flags, "--hot-retention=10GiB")
    error_message = "flags mirror the environment: ${jsonencode(output.flags)}"
  }
}

run "sync_replication_needs_two_copies_by_default" {
  command = plan

  variables {
    role        = "broker"
    replication = "sync"
  }

  assert {
    condition     = output.environment["STRATA_REPLICATION"] == "sync" && output.environment["STRATA_MIN_INSYNC_REPLICAS"] == "2"
    error_message = "min_insync_replicas null renders Strata's default under sync: 2"
  }
}

run "privileged_replication_port_gets_one_capability" {
  command = plan

  variables {
    role      = "follower"
    broker_id = 1
    ha_listen = ":853"
  }

  assert {
    condition     = strcontains(output.systemd_unit, "\nCapabilityBoundingSet=CAP_NET_BIND_SERVICE\nAmbientCapabilities=CAP_NET_BIND_SERVICE\n")
    error_message = "a replication port below 1024 needs CAP_NET_BIND_SERVICE"
  }
}

run "namesrv_with_failover_controller" {
  command = plan

  variables {
    role              = "namesrv"
    controller_listen = "10.0.1.10:9878"
    controller_peers  = ["10.0.1.10:9878", "10.0.2.10:9878", "10.0.3.10:9878"]
    data_dir          = "/var/lib/strata-namesrv"
    data_device       = "/dev/nvme1n1"
  }

  assert {
    condition = [for l in split("\n", output.environment_file) : l if l != "" && !startswith(l, "#")] == [
      "STRATA_NAMESRV_LISTEN=\":9876\"",
      "STRATA_CONTROLLER_LISTEN=\"10.0.1.10:9878\"",
      "STRATA_CONTROLLER_PEERS=\"10.0.1.10:9878;10.0.2.10:9878;10.0.3.10:9878\"",
      "STRATA_DATA_DIR=\"/var/lib/strata-namesrv\"",
      "STRATA_HTTP_LISTEN=\"127.0.0.1:8080\"",
      "STRATA_LOG_LEVEL=\"info\"",
    ]
    error_message = "a name server with a controller: its raft address, its peers and the data directory of its raft state: ${output.environment_file}"
  }
  assert {
    condition     = contains(output.flags, "--controller-listen=10.0.1.10:9878") && contains(output.flags, "--controller-peers=10.0.1.10:9878;10.0.2.10:9878;10.0.3.10:9878") && contains(output.flags, "--data-dir=/var/lib/strata-namesrv")
    error_message = "`strata namesrv` has these flags: ${jsonencode(output.flags)}"
  }
  # The raft state must survive restarts: the data directory is the one
  # writable path (ProtectSystem=strict makes everything else read-only).
  assert {
    condition = alltrue([for l in [
      "ExecStart=/usr/local/bin/strata namesrv",
      "ProtectSystem=strict",
      "ReadWritePaths=/var/lib/strata-namesrv",
      "RequiresMountsFor=/var/lib/strata-namesrv",
    ] : contains(split("\n", output.systemd_unit), l)])
    error_message = "the controller's data directory is writable, and mounted first: ${output.systemd_unit}"
  }
  assert {
    condition     = length(regexall("(?m)^ReadWritePaths=", output.systemd_unit)) == 1
    error_message = "nothing else is writable"
  }
  assert {
    condition     = strcontains(output.prepare_script, "data_dir='/var/lib/strata-namesrv'") && strcontains(output.prepare_script, "chown \"$user:$group\" \"$data_dir\"") && strcontains(output.prepare_script, "pattern='/dev/nvme1n1'")
    error_message = "the preparation creates the directory for the service user (and mounts the disk)"
  }
}

run "namesrv_controller_alone" {
  command = plan

  variables {
    role              = "namesrv"
    controller_listen = "10.0.1.10:9878"
  }

  assert {
    condition     = output.environment["STRATA_CONTROLLER_LISTEN"] == "10.0.1.10:9878" && !contains(keys(output.environment), "STRATA_CONTROLLER_PEERS") && output.environment["STRATA_DATA_DIR"] == "/var/lib/strata"
    error_message = "without peers the controller is alone (Strata's default), its state under the default data directory"
  }
}

run "standalone_with_failover_controller" {
  command = plan

  variables {
    role              = "standalone"
    namesrv_addresses = []
    controller_listen = "127.0.0.1:9878"
  }

  assert {
    condition     = output.environment["STRATA_CONTROLLER_LISTEN"] == "127.0.0.1:9878" && output.environment["STRATA_DATA_DIR"] == "/var/lib/strata"
    error_message = "standalone runs the controller too, its state in its data directory"
  }
  assert {
    condition     = !anytrue([for f in output.flags : startswith(f, "--controller-")]) && contains(output.flags, "--namesrv-listen=127.0.0.1:9876")
    error_message = "`strata standalone` reads the controller's settings from the environment only: they are not flags: ${jsonencode(output.flags)}"
  }
  assert {
    condition     = !contains(keys(output.environment), "STRATA_REPLICATION") && !contains(keys(output.environment), "STRATA_FAILOVER")
    error_message = "replication settings are for roles broker and follower"
  }
}

# ---------------------------------------------------------------------------
# Security: the ACL file, TLS and the limits are rendered as STRATA_*
# settings naming files on the node, only when set, for the roles that use
# them; the files' content (secret keys, the TLS key) is never rendered.

run "security_off_by_default" {
  command = plan

  variables {
    role = "broker"
  }

  assert {
    condition = !anytrue([for k in keys(output.environment) : contains([
      "STRATA_ACL_FILE", "STRATA_REQUIRE_AUTH", "STRATA_TLS_CERT", "STRATA_TLS_KEY", "STRATA_TLS_CA", "STRATA_TLS_CLIENT_AUTH",
      "STRATA_MAX_CONNS", "STRATA_MAX_CONNS_PER_IP", "STRATA_MAX_INFLIGHT", "STRATA_MAX_HELD_PULLS",
    ], k)])
    error_message = "with no security input set nothing is rendered (Strata's defaults): ${jsonencode(output.environment)}"
  }
  assert {
    condition     = !anytrue([for f in output.flags : startswith(f, "--acl-file") || startswith(f, "--tls-") || startswith(f, "--max-") || startswith(f, "--require-auth")])
    error_message = "no security flags by default: ${jsonencode(output.flags)}"
  }
}

run "broker_with_acl_tls_and_limits" {
  command = plan

  variables {
    role                 = "broker"
    advertise            = "10.0.1.20:10911"
    acl_file             = "/etc/strata/acl.yml"
    require_auth         = true
    tls_cert_file        = "/etc/strata/tls/broker.crt"
    tls_key_file         = "/etc/strata/tls/broker.key"
    tls_ca_file          = "/etc/strata/tls/ca.pem"
    tls_client_auth      = true
    max_conns            = 20000
    max_conns_per_ip     = 500
    max_inflight         = 256
    max_held_pulls       = 50000
    credentials_env_file = "/etc/strata/credentials.env"
  }

  assert {
    condition = [for l in split("\n", output.environment_file) : l if l != "" && !startswith(l, "#")] == [
      "STRATA_ROLE=\"leader\"",
      "STRATA_CLUSTER=\"DefaultCluster\"",
      "STRATA_BROKER_NAME=\"broker-a\"",
      "STRATA_BROKER_ID=\"0\"",
      "STRATA_NAMESRV=\"10.0.1.10:9876;10.0.2.10:9876\"",
      "STRATA_LISTEN=\":10911\"",
      "STRATA_ADVERTISE=\"10.0.1.20:10911\"",
      "STRATA_DATA_DIR=\"/var/lib/strata\"",
      "STRATA_SEGMENT_SIZE=\"1GiB\"",
      "STRATA_SEGMENT_MAX_AGE=\"10m\"",
      "STRATA_FLUSH=\"sync\"",
      "STRATA_REPLICATION=\"async\"",
      "STRATA_MIN_INSYNC_REPLICAS=\"1\"",
      "STRATA_FAILOVER=\"off\"",
      "STRATA_AUTO_CREATE_TOPICS=\"false\"",
      "STRATA_ACL_FILE=\"/etc/strata/acl.yml\"",
      "STRATA_REQUIRE_AUTH=\"true\"",
      "STRATA_TLS_CERT=\"/etc/strata/tls/broker.crt\"",
      "STRATA_TLS_KEY=\"/etc/strata/tls/broker.key\"",
      "STRATA_TLS_CA=\"/etc/strata/tls/ca.pem\"",
      "STRATA_TLS_CLIENT_AUTH=\"true\"",
      "STRATA_MAX_CONNS=\"20000\"",
      "STRATA_MAX_CONNS_PER_IP=\"500\"",
      "STRATA_MAX_INFLIGHT=\"256\"",
      "STRATA_MAX_HELD_PULLS=\"50000\"",
      "STRATA_HTTP_LISTEN=\"127.0.0.1:8080\"",
      "STRATA_LOG_LEVEL=\"info\"",
    ]
    error_message = "a leader with an ACL file, mutual TLS and limits: ${output.environment_file}"
  }
  assert {
    condition = alltrue([for f in [
      "--acl-file=/etc/strata/acl.yml",
      "--require-auth=true",
      "--tls-cert=/etc/strata/tls/broker.crt",
      "--tls-key=/etc/strata/tls/broker.key",
      "--tls-ca=/etc/strata/tls/ca.pem",
      "--tls-client-auth=true",
      "--max-conns=20000",
      "--max-conns-per-ip=500",
      "--max-inflight=256",
      "--max-held-pulls=50000",
    ] : contains(output.flags, f)])
    error_message = "`strata broker` has every one of these flags: ${jsonencode(output.flags)}"
  }
  # Secrets stay in files of the operator's: the keys in the credentials
  # file the unit reads as root, the accounts and the TLS key where the
  # settings point. Nothing rendered (so nothing in Terraform's state or in
  # the user data) carries them, and no file is written for them.
  assert {
    condition     = contains(split("\n", output.systemd_unit), "EnvironmentFile=-/etc/strata/credentials.env")
    error_message = "STRATA_ACCESS_KEY/STRATA_SECRET_KEY, if any, come from credentials_env_file"
  }
  assert {
    condition     = !anytrue([for k in keys(output.environment) : strcontains(k, "ACCESS_KEY") || strcontains(k, "SECRET")])
    error_message = "no key is rendered: ${jsonencode(keys(output.environment))}"
  }
  assert {
    condition     = sort(keys(output.files)) == sort(["/etc/strata/strata.env", "/etc/systemd/system/strata.service", "/etc/systemd/system/strata-prepare.service", "/usr/local/lib/strata/strata-prepare"])
    error_message = "the module writes neither the ACL file nor the TLS files: ${jsonencode(keys(output.files))}"
  }
  # The sandbox is unchanged: the files are read, never written.
  assert {
    condition     = length(regexall("(?m)^ReadWritePaths=", output.systemd_unit)) == 1 && contains(split("\n", output.systemd_unit), "ReadWritePaths=/var/lib/strata")
    error_message = "only the data directory is writable"
  }
}

run "follower_and_reader_limits" {
  command = plan

  variables {
    role             = "follower"
    broker_id        = 1
    acl_file         = "/etc/strata/acl.yml"
    max_inflight     = 64
    max_held_pulls   = 1000
    max_conns_per_ip = 100
  }

  assert {
    condition = (
      output.environment["STRATA_ACL_FILE"] == "/etc/strata/acl.yml" &&
      output.environment["STRATA_MAX_INFLIGHT"] == "64" &&
      output.environment["STRATA_MAX_HELD_PULLS"] == "1000" &&
      output.environment["STRATA_MAX_CONNS_PER_IP"] == "100" &&
      !contains(keys(output.environment), "STRATA_MAX_CONNS") &&
      !contains(keys(output.environment), "STRATA_REQUIRE_AUTH")
    )
    error_message = "a follower gets the broker limits and the ACL file; unset settings stay unrendered: ${jsonencode(output.environment)}"
  }
}

run "reader_with_tls" {
  command = plan

  variables {
    role          = "reader"
    broker_id     = 1
    tier_url      = "s3://strata-cold/prod?region=eu-west-1"
    tls_cert_file = "/etc/strata/tls/node.crt"
    tls_key_file  = "/etc/strata/tls/node.key"
    max_inflight  = 128
  }

  assert {
    condition = (
      output.environment["STRATA_TLS_CERT"] == "/etc/strata/tls/node.crt" &&
      output.environment["STRATA_TLS_KEY"] == "/etc/strata/tls/node.key" &&
      output.environment["STRATA_MAX_INFLIGHT"] == "128" &&
      !contains(keys(output.environment), "STRATA_TLS_CA") &&
      !contains(keys(output.environment), "STRATA_TLS_CLIENT_AUTH")
    )
    error_message = "TLS without a CA (servers verified against the system's roots) and without client certificates: ${jsonencode(output.environment)}"
  }
}

run "standalone_with_acl_and_limits" {
  command = plan

  variables {
    role              = "standalone"
    namesrv_addresses = []
    acl_file          = "/etc/strata/acl.yml"
    require_auth      = true
    max_conns         = 100
    max_held_pulls    = 10
  }

  assert {
    condition = (
      output.environment["STRATA_ACL_FILE"] == "/etc/strata/acl.yml" &&
      output.environment["STRATA_REQUIRE_AUTH"] == "true" &&
      output.environment["STRATA_MAX_CONNS"] == "100" &&
      output.environment["STRATA_MAX_HELD_PULLS"] == "10"
    )
    error_message = "standalone is a broker too: ${jsonencode(output.environment)}"
  }
  assert {
    condition     = contains(output.flags, "--acl-file=/etc/strata/acl.yml") && contains(output.flags, "--max-held-pulls=10")
    error_message = "`strata standalone` has these flags: ${jsonencode(output.flags)}"
  }
}

run "namesrv_with_tls_controller_and_limits" {
  command = plan

  variables {
    role              = "namesrv"
    controller_listen = "10.0.1.10:9878"
    controller_peers  = ["10.0.1.10:9878", "10.0.2.10:9878", "10.0.3.10:9878"]
    acl_file          = "/etc/strata/acl.yml"
    tls_cert_file     = "/etc/strata/tls/ns.crt"
    tls_key_file      = "/etc/strata/tls/ns.key"
    tls_ca_file       = "/etc/strata/tls/ca.pem"
    max_conns         = 5000
    max_conns_per_ip  = 200
    max_inflight      = 256
    max_held_pulls    = 50000
  }

  assert {
    condition = [for l in split("\n", output.environment_file) : l if l != "" && !startswith(l, "#")] == [
      "STRATA_NAMESRV_LISTEN=\":9876\"",
      "STRATA_CONTROLLER_LISTEN=\"10.0.1.10:9878\"",
      "STRATA_CONTROLLER_PEERS=\"10.0.1.10:9878;10.0.2.10:9878;10.0.3.10:9878\"",
      "STRATA_DATA_DIR=\"/var/lib/strata\"",
      "STRATA_ACL_FILE=\"/etc/strata/acl.yml\"",
      "STRATA_TLS_CERT=\"/etc/strata/tls/ns.crt\"",
      "STRATA_TLS_KEY=\"/etc/strata/tls/ns.key\"",
      "STRATA_TLS_CA=\"/etc/strata/tls/ca.pem\"",
      "STRATA_MAX_CONNS=\"5000\"",
      "STRATA_MAX_CONNS_PER_IP=\"200\"",
      "STRATA_HTTP_LISTEN=\"127.0.0.1:8080\"",
      "STRATA_LOG_LEVEL=\"info\"",
    ]
    error_message = "a name server gets the ACL file, TLS (its controller's raft peers verified against the CA) and the connection limits, not the broker limits: ${output.environment_file}"
  }
  assert {
    condition     = !anytrue([for f in output.flags : startswith(f, "--max-inflight") || startswith(f, "--max-held-pulls")])
    error_message = "`strata namesrv` has no --max-inflight or --max-held-pulls: ${jsonencode(output.flags)}"
  }
}
