# Bad inputs fail at plan time with a clear message, before anything is
# rendered. Each run changes one input of an otherwise valid broker.

variables {
  role              = "broker"
  namesrv_addresses = ["10.0.1.10:9876"]
}

run "unknown_role" {
  command = plan
  variables {
    role = "master"
  }
  expect_failures = [var.role]
}

run "broker_id_negative" {
  command = plan
  variables {
    role      = "reader"
    tier_url  = "s3://strata-cold/prod"
    broker_id = -1
  }
  expect_failures = [var.broker_id]
}

run "broker_id_too_large" {
  command = plan
  variables {
    role      = "reader"
    tier_url  = "s3://strata-cold/prod"
    broker_id = 4294967296
  }
  expect_failures = [var.broker_id]
}

run "broker_id_fractional" {
  command = plan
  variables {
    role      = "reader"
    tier_url  = "s3://strata-cold/prod"
    broker_id = 1.5
  }
  expect_failures = [var.broker_id]
}

run "leader_with_reader_id" {
  command = plan
  variables {
    broker_id = 3
  }
  expect_failures = [var.broker_id]
}

run "reader_with_leader_id" {
  command = plan
  variables {
    role     = "reader"
    tier_url = "s3://strata-cold/prod"
  }
  expect_failures = [var.broker_id]
}

run "derived_id_for_a_leader" {
  command = plan
  variables {
    broker_id_from_address = true
  }
  expect_failures = [var.broker_id_from_address]
}

run "s3_tier_without_bucket" {
  command = plan
  variables {
    tier_url = "s3:///prefix"
  }
  expect_failures = [var.tier_url]
}

run "s3_tier_bad_bucket" {
  command = plan
  variables {
    tier_url = "s3://Strata_Cold/prefix"
  }
  expect_failures = [var.tier_url]
}

run "minio_tier_without_bucket" {
  command = plan
  variables {
    tier_url = "minio://minio.internal:9000/"
  }
  expect_failures = [var.tier_url]
}

run "minio_tier_without_port" {
  command = plan
  variables {
    tier_url = "minio://minio.internal/strata/prod"
  }
  expect_failures = [var.tier_url]
}

run "file_tier_without_path" {
  command = plan
  variables {
    tier_url = "file://"
  }
  expect_failures = [var.tier_url]
}

run "tier_unknown_scheme" {
  command = plan
  variables {
    tier_url = "gs://strata-cold/prod"
  }
  expect_failures = [var.tier_url]
}

run "tier_with_credentials" {
  command = plan
  variables {
    tier_url = "minio://strata:hunter2@minio.internal:9000/strata/prod"
  }
  expect_failures = [var.tier_url]
}

run "reader_without_tier" {
  command = plan
  variables {
    role      = "reader"
    broker_id = 1
  }
  expect_failures = [var.tier_url]
}

run "bad_flush_mode" {
  command = plan
  variables {
    flush = "fsync"
  }
  expect_failures = [var.flush]
}

run "broker_without_name_servers" {
  command = plan
  variables {
    namesrv_addresses = []
  }
  expect_failures = [var.namesrv_addresses]
}

run "name_server_without_port" {
  command = plan
  variables {
    namesrv_addresses = ["10.0.1.10:9876", "10.0.2.10"]
  }
  expect_failures = [var.namesrv_addresses]
}

run "http_on_every_interface" {
  command = plan
  variables {
    http_listen = "0.0.0.0:8080"
  }
  expect_failures = [var.http_listen]
}

run "http_on_every_interface_short_form" {
  command = plan
  variables {
    http_listen = ":8080"
  }
  expect_failures = [var.http_listen]
}

run "advertise_a_host_name" {
  command = plan
  variables {
    advertise = "broker1.internal:10911"
  }
  expect_failures = [var.advertise]
}

run "listen_port_out_of_range" {
  command = plan
  variables {
    listen = ":70000"
  }
  expect_failures = [var.listen]
}

run "hot_retention_over_100_percent" {
  command = plan
  variables {
    tier_url      = "s3://strata-cold/prod"
    hot_retention = "150%"
  }
  expect_failures = [var.hot_retention]
}

run "segment_size_not_a_size" {
  command = plan
  variables {
    segment_size = "big"
  }
  expect_failures = [var.segment_size]
}

run "segment_max_age_not_a_duration" {
  command = plan
  variables {
    segment_max_age = "10 minutes"
  }
  expect_failures = [var.segment_max_age]
}

run "credentials_in_extra_env" {
  command = plan
  variables {
    extra_env = { MINIO_SECRET_KEY = "hunter2" }
  }
  expect_failures = [var.extra_env]
}

run "multi_line_extra_env" {
  command = plan
  variables {
    extra_env = { NOTE = "one\ntwo" }
  }
  expect_failures = [var.extra_env]
}

run "extra_env_overrides_a_setting" {
  command = plan
  variables {
    extra_env = { STRATA_FLUSH = "async" }
  }
  expect_failures = [output.environment_file]
}

run "download_without_hash" {
  command = plan
  variables {
    binary_url = "https://releases.example.com/strata"
  }
  expect_failures = [var.binary_sha256]
}

run "run_as_root" {
  command = plan
  variables {
    user = "root"
  }
  expect_failures = [var.user]
}

run "relative_data_dir" {
  command = plan
  variables {
    data_dir = "strata-data"
  }
  expect_failures = [var.data_dir]
}

run "data_device_on_a_name_server" {
  command = plan
  variables {
    role        = "namesrv"
    data_device = "/dev/nvme1n1"
  }
  expect_failures = [var.data_device]
}

# ---------------------------------------------------------------------------
# Replication and failover.

run "follower_with_leader_id" {
  command = plan
  variables {
    role = "follower"
  }
  expect_failures = [var.broker_id]
}

run "follower_with_derived_id" {
  command = plan
  variables {
    role                   = "follower"
    broker_id              = 1
    broker_id_from_address = true
  }
  expect_failures = [var.broker_id_from_address]
}

run "unknown_replication_mode" {
  command = plan
  variables {
    replication = "semi-sync"
  }
  expect_failures = [var.replication]
}

run "replication_on_a_reader" {
  command = plan
  variables {
    role        = "reader"
    broker_id   = 1
    tier_url    = "s3://strata-cold/prod"
    replication = "sync"
  }
  expect_failures = [var.replication]
}

run "min_insync_zero" {
  command = plan
  variables {
    replication         = "sync"
    min_insync_replicas = 0
  }
  expect_failures = [var.min_insync_replicas]
}

run "min_insync_fractional" {
  command = plan
  variables {
    replication         = "sync"
    min_insync_replicas = 1.5
  }
  expect_failures = [var.min_insync_replicas]
}

run "min_insync_above_one_without_sync" {
  command = plan
  variables {
    min_insync_replicas = 2
  }
  expect_failures = [var.min_insync_replicas]
}

run "min_insync_on_a_name_server" {
  command = plan
  variables {
    role                = "namesrv"
    min_insync_replicas = 1
  }
  expect_failures = [var.min_insync_replicas]
}

run "failover_on_a_reader" {
  command = plan
  variables {
    role      = "reader"
    broker_id = 1
    tier_url  = "s3://strata-cold/prod"
    failover  = true
  }
  expect_failures = [var.failover]
}

run "failover_on_a_name_server" {
  command = plan
  variables {
    role     = "namesrv"
    failover = true
  }
  expect_failures = [var.failover]
}

run "failover_on_standalone" {
  command = plan
  variables {
    role     = "standalone"
    tier_url = "none"
    failover = true
  }
  expect_failures = [var.failover]
}

run "ha_listen_without_port" {
  command = plan
  variables {
    ha_listen = "10.0.1.20"
  }
  expect_failures = [var.ha_listen]
}

run "ha_listen_port_out_of_range" {
  command = plan
  variables {
    ha_listen = ":70000"
  }
  expect_failures = [var.ha_listen]
}

run "ha_listen_on_a_reader" {
  command = plan
  variables {
    role      = "reader"
    broker_id = 1
    tier_url  = "s3://strata-cold/prod"
    ha_listen = ":10922"
  }
  expect_failures = [var.ha_listen]
}

run "ha_advertise_wildcard" {
  command = plan
  variables {
    ha_advertise = "0.0.0.0:10912"
  }
  expect_failures = [var.ha_advertise]
}

run "ha_advertise_without_host" {
  command = plan
  variables {
    ha_advertise = ":10912"
  }
  expect_failures = [var.ha_advertise]
}

run "ha_advertise_on_a_name_server" {
  command = plan
  variables {
    role         = "namesrv"
    ha_advertise = "10.0.1.10:10912"
  }
  expect_failures = [var.ha_advertise]
}

run "replicate_from_on_a_leader" {
  command = plan
  variables {
    replicate_from = "10.0.1.20:10912"
  }
  expect_failures = [var.replicate_from]
}

run "replicate_from_with_failover" {
  command = plan
  variables {
    role           = "follower"
    broker_id      = 1
    failover       = true
    replicate_from = "10.0.1.20:10912"
  }
  expect_failures = [var.replicate_from]
}

run "replicate_from_without_port" {
  command = plan
  variables {
    role           = "follower"
    broker_id      = 1
    replicate_from = "10.0.1.20"
  }
  expect_failures = [var.replicate_from]
}

# ---------------------------------------------------------------------------
# The failover controller.

run "controller_on_a_broker" {
  command = plan
  variables {
    controller_listen = "10.0.1.20:9878"
  }
  expect_failures = [var.controller_listen]
}

run "controller_on_every_interface" {
  command = plan
  variables {
    role              = "namesrv"
    controller_listen = ":9878"
  }
  expect_failures = [var.controller_listen]
}

run "controller_on_the_wildcard_address" {
  command = plan
  variables {
    role              = "namesrv"
    controller_listen = "0.0.0.0:9878"
  }
  expect_failures = [var.controller_listen]
}

run "controller_on_a_host_name" {
  command = plan
  variables {
    role              = "namesrv"
    controller_listen = "ns1.internal:9878"
  }
  expect_failures = [var.controller_listen]
}

run "controller_port_out_of_range" {
  command = plan
  variables {
    role              = "namesrv"
    controller_listen = "10.0.1.10:0"
  }
  expect_failures = [var.controller_listen]
}

run "controller_peers_without_this_one" {
  command = plan
  variables {
    role              = "namesrv"
    controller_listen = "10.0.1.10:9878"
    controller_peers  = ["10.0.2.10:9878", "10.0.3.10:9878"]
  }
  expect_failures = [var.controller_peers]
}

run "controller_peers_without_a_controller" {
  command = plan
  variables {
    role             = "namesrv"
    controller_peers = ["10.0.1.10:9878"]
  }
  expect_failures = [var.controller_peers]
}

run "controller_peer_not_an_address" {
  command = plan
  variables {
    role              = "namesrv"
    controller_listen = "10.0.1.10:9878"
    controller_peers  = ["10.0.1.10:9878", "ns2.internal:9878"]
  }
  expect_failures = [var.controller_peers]
}

# ---------------------------------------------------------------------------
# Security: the ACL file, TLS and the limits.

run "acl_file_relative" {
  command = plan
  variables {
    acl_file = "acl.yml"
  }
  expect_failures = [var.acl_file]
}

run "acl_file_with_dot_dot" {
  command = plan
  variables {
    acl_file = "/etc/strata/../shadow"
  }
  expect_failures = [var.acl_file]
}

run "acl_file_with_a_space" {
  command = plan
  variables {
    acl_file = "/etc/strata/my acl.yml"
  }
  expect_failures = [var.acl_file]
}

run "require_auth_without_acl_file" {
  command = plan
  variables {
    require_auth = true
  }
  expect_failures = [var.require_auth]
}

run "tls_cert_without_key" {
  command = plan
  variables {
    tls_cert_file = "/etc/strata/tls/node.crt"
  }
  expect_failures = [var.tls_cert_file]
}

run "tls_key_without_cert" {
  command = plan
  variables {
    tls_key_file = "/etc/strata/tls/node.key"
  }
  expect_failures = [var.tls_cert_file]
}

run "tls_cert_relative" {
  command = plan
  variables {
    tls_cert_file = "tls/node.crt"
    tls_key_file  = "/etc/strata/tls/node.key"
  }
  expect_failures = [var.tls_cert_file]
}

run "tls_key_relative" {
  command = plan
  variables {
    tls_cert_file = "/etc/strata/tls/node.crt"
    tls_key_file  = "node.key"
  }
  expect_failures = [var.tls_key_file]
}

run "tls_ca_relative" {
  command = plan
  variables {
    tls_cert_file = "/etc/strata/tls/node.crt"
    tls_key_file  = "/etc/strata/tls/node.key"
    tls_ca_file   = "ca.pem"
  }
  expect_failures = [var.tls_ca_file]
}

run "tls_ca_without_tls" {
  command = plan
  variables {
    tls_ca_file = "/etc/strata/tls/ca.pem"
  }
  expect_failures = [var.tls_ca_file]
}

run "tls_client_auth_without_ca" {
  command = plan
  variables {
    tls_cert_file   = "/etc/strata/tls/node.crt"
    tls_key_file    = "/etc/strata/tls/node.key"
    tls_client_auth = true
  }
  expect_failures = [var.tls_client_auth]
}

run "tls_client_auth_without_tls" {
  command = plan
  variables {
    tls_client_auth = true
  }
  expect_failures = [var.tls_client_auth]
}

run "tls_controller_without_ca" {
  command = plan
  variables {
    role              = "namesrv"
    controller_listen = "10.0.1.10:9878"
    tls_cert_file     = "/etc/strata/tls/ns.crt"
    tls_key_file      = "/etc/strata/tls/ns.key"
  }
  expect_failures = [var.tls_ca_file]
}

run "max_conns_zero" {
  command = plan
  variables {
    max_conns = 0
  }
  expect_failures = [var.max_conns]
}

run "max_conns_fractional" {
  command = plan
  variables {
    max_conns = 100.5
  }
  expect_failures = [var.max_conns]
}

run "max_conns_per_ip_zero" {
  command = plan
  variables {
    max_conns_per_ip = 0
  }
  expect_failures = [var.max_conns_per_ip]
}

run "max_inflight_negative" {
  command = plan
  variables {
    max_inflight = -1
  }
  expect_failures = [var.max_inflight]
}

run "max_held_pulls_zero" {
  command = plan
  variables {
    max_held_pulls = 0
  }
  expect_failures = [var.max_held_pulls]
}

run "strata_keys_in_extra_env" {
  command = plan
  variables {
    extra_env = { STRATA_ACCESS_KEY = "ops" }
  }
  expect_failures = [var.extra_env]
}

run "extra_env_sets_a_security_setting" {
  command = plan
  variables {
    extra_env = { STRATA_ACL_FILE = "/etc/strata/acl.yml" }
  }
  expect_failures = [output.environment_file]
}
