# strata-aws against a mocked AWS provider: no API calls and no credentials,
# but the provider's schema must be installed (terraform init). What the
# plan would create: placement, security groups, the bucket's protections,
# the instance role's scope, and each node's rendered configuration.

mock_provider "aws" {
  override_data {
    target = data.aws_subnet.first
    values = { id = "subnet-0000000000000000a", vpc_id = "vpc-00000000000000001" }
  }
  override_data {
    target = data.aws_vpc.this
    values = { id = "vpc-00000000000000001", cidr_block = "10.20.0.0/16" }
  }
  override_data {
    target = data.aws_region.current
    values = { name = "eu-west-1" }
  }
  override_data {
    target = data.aws_partition.current
    values = { partition = "aws" }
  }
  override_data {
    target = data.aws_ssm_parameter.al2023
    values = { value = "ami-0123456789abcdef0" }
  }
  override_data {
    target = data.aws_ec2_instance_type.broker
    values = { instance_storage_supported = true, supported_architectures = ["x86_64"] }
  }
  # Generated policy JSON would be random text, which the provider's own
  # validation rejects; the statements themselves are asserted on below.
  override_data {
    target = data.aws_iam_policy_document.assume_ec2
    values = { json = "{\"Version\":\"2012-10-17\",\"Statement\":[]}" }
  }
  override_data {
    target = data.aws_iam_policy_document.tier
    values = { json = "{\"Version\":\"2012-10-17\",\"Statement\":[]}" }
  }
  override_data {
    target = data.aws_iam_policy_document.tier_bucket
    values = { json = "{\"Version\":\"2012-10-17\",\"Statement\":[]}" }
  }
  override_resource {
    target = aws_network_interface.namesrv
    values = { private_ip = "10.20.1.10" }
  }
  override_resource {
    target = aws_launch_template.reader
    values = { id = "lt-0123456789abcdef0", latest_version = 1 }
  }
  override_resource {
    target = aws_s3_bucket.tier
    values = { bucket = "strata-tier-test", arn = "arn:aws:s3:::strata-tier-test" }
  }
}

variables {
  subnet_ids    = ["subnet-0000000000000000a", "subnet-0000000000000000b", "subnet-0000000000000000c"]
  binary_url    = "https://releases.example.com/strata/v0.1.0/strata-linux-amd64"
  binary_sha256 = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
}

run "defaults" {
  assert {
    condition     = tolist([for e in aws_network_interface.namesrv : e.subnet_id]) == tolist(var.subnet_ids)
    error_message = "three name servers, one per subnet (availability zone)"
  }
  assert {
    condition     = [for n in ["broker-a", "broker-b"] : aws_instance.broker[n].subnet_id] == ["subnet-0000000000000000a", "subnet-0000000000000000b"]
    error_message = "brokers spread over the subnets"
  }
  assert {
    condition     = output.namesrv_addresses == "10.20.1.10:9876;10.20.1.10:9876;10.20.1.10:9876"
    error_message = "name-server addresses for clients: ip:port joined with ';'"
  }
  assert {
    condition     = output.tier_url == "s3://strata-tier-test/strata?region=eu-west-1"
    error_message = "the tier URL names the bucket, the prefix and the region: ${output.tier_url}"
  }
  # Client ports to the VPC only; the admin port closed and on loopback.
  assert {
    condition     = sort(keys(aws_vpc_security_group_ingress_rule.client)) == tolist(["broker 10.20.0.0/16", "namesrv 10.20.0.0/16"])
    error_message = "client ports default to the VPC's CIDR block"
  }
  assert {
    condition     = aws_vpc_security_group_ingress_rule.client["namesrv 10.20.0.0/16"].from_port == 9876 && aws_vpc_security_group_ingress_rule.client["broker 10.20.0.0/16"].to_port == 10911
    error_message = "client rules open 9876 on name servers and 10911 on brokers"
  }
  assert {
    condition     = length(aws_vpc_security_group_ingress_rule.admin) == 0
    error_message = "no admin rule without admin_cidrs"
  }
  assert {
    condition     = strcontains(module.broker["broker-a"].environment_file, "STRATA_HTTP_LISTEN=\"127.0.0.1:8080\"") && strcontains(module.namesrv[0].environment_file, "STRATA_HTTP_LISTEN=\"127.0.0.1:8080\"")
    error_message = "without admin_cidrs the admin port listens on loopback"
  }
  # Brokers: NVMe, advertise their own address, the bucket as cold tier.
  assert {
    condition     = strcontains(module.broker["broker-b"].prepare_script, "pattern='/dev/disk/by-id/nvme-Amazon_EC2_NVMe_Instance_Storage_*'") && strcontains(module.broker["broker-b"].prepare_script, "mkfs.xfs")
    error_message = "brokers format and mount their instance store"
  }
  assert {
    condition     = module.broker["broker-b"].environment["STRATA_BROKER_NAME"] == "broker-b" && module.broker["broker-b"].environment["STRATA_TIER"] == output.tier_url && module.broker["broker-b"].environment["STRATA_NAMESRV"] == "10.20.1.10:9876;10.20.1.10:9876;10.20.1.10:9876"
    error_message = "each broker has its name, the cold tier and the name servers"
  }
  assert {
    condition     = module.broker["broker-a"].environment["STRATA_AUTO_CREATE_TOPICS"] == "true"
    error_message = "topics are created on first send (topic administration is loopback-only)"
  }
  assert {
    condition     = module.broker["broker-a"].host_derived == tolist(["STRATA_ADVERTISE"])
    error_message = "brokers advertise the address they boot with"
  }
  assert {
    condition     = aws_instance.broker["broker-a"].user_data == module.broker["broker-a"].cloud_init && aws_instance.namesrv[0].user_data == module.namesrv[0].cloud_init
    error_message = "the instances boot with the rendered cloud-init"
  }
  assert {
    condition     = alltrue([for i in concat(values(aws_instance.broker), aws_instance.namesrv) : i.metadata_options[0].http_tokens == "required" && i.root_block_device[0].encrypted])
    error_message = "IMDSv2 only, encrypted root volumes"
  }
  assert {
    condition     = length(aws_autoscaling_group.reader) == 0
    error_message = "no readers by default"
  }
  # Replication: leaders alone by default, with Strata's replication port
  # closed to everyone; no failover controller.
  assert {
    condition     = length(aws_instance.follower) == 0 && length(output.followers) == 0
    error_message = "no followers by default"
  }
  assert {
    condition     = length(aws_vpc_security_group_ingress_rule.replication) == 0 && length(aws_vpc_security_group_ingress_rule.controller) == 0
    error_message = "without followers the replication port is closed; without failover there is no controller port"
  }
  assert {
    condition = (
      module.broker["broker-a"].environment["STRATA_HA_LISTEN"] == ":10912" &&
      module.broker["broker-a"].environment["STRATA_REPLICATION"] == "async" &&
      module.broker["broker-a"].environment["STRATA_FAILOVER"] == "off"
    )
    error_message = "leaders: replication port 10912, async, no failover"
  }
  assert {
    condition     = !anytrue([for k in keys(module.namesrv[0].environment) : startswith(k, "STRATA_CONTROLLER_")]) && !contains(keys(module.namesrv[0].environment), "STRATA_DATA_DIR")
    error_message = "name servers run no controller and keep no data by default"
  }
  assert {
    condition     = length(output.controller_peers) == 0
    error_message = "no controller peers without failover"
  }
  # Security: nothing rendered by default (Strata's defaults), no
  # credentials file for anyone.
  assert {
    condition = !anytrue([for e in concat([module.namesrv[0].environment], [for m in values(module.broker) : m.environment]) :
      anytrue([for k in keys(e) : startswith(k, "STRATA_ACL_") || startswith(k, "STRATA_TLS_") || startswith(k, "STRATA_MAX_") || k == "STRATA_REQUIRE_AUTH"])
    ])
    error_message = "no ACL, TLS or limit settings by default"
  }
  assert {
    condition     = !strcontains(module.broker["broker-a"].systemd_unit, "EnvironmentFile=-")
    error_message = "no credentials file by default: S3 access comes from the instance role"
  }
  # The bucket: private, encrypted, owner-enforced, TLS only.
  assert {
    condition = alltrue([
      aws_s3_bucket_public_access_block.tier.block_public_acls, aws_s3_bucket_public_access_block.tier.block_public_policy,
      aws_s3_bucket_public_access_block.tier.ignore_public_acls, aws_s3_bucket_public_access_block.tier.restrict_public_buckets,
    ])
    error_message = "all public access is blocked"
  }
  assert {
    condition     = one(aws_s3_bucket_ownership_controls.tier.rule).object_ownership == "BucketOwnerEnforced"
    error_message = "ACLs are disabled"
  }
  assert {
    condition     = one(one(aws_s3_bucket_server_side_encryption_configuration.tier.rule).apply_server_side_encryption_by_default).sse_algorithm == "AES256"
    error_message = "SSE-S3 by default"
  }
  assert {
    condition     = one(data.aws_iam_policy_document.tier_bucket.statement).effect == "Deny" && one(one(data.aws_iam_policy_document.tier_bucket.statement).condition).variable == "aws:SecureTransport"
    error_message = "the bucket policy refuses plain HTTP"
  }
  # Lifecycle: segments (not manifests) move to STANDARD_IA after 30 days;
  # nothing expires; stale multipart uploads are aborted.
  assert {
    condition     = [for r in aws_s3_bucket_lifecycle_configuration.tier.rule : one(r.filter).prefix] == ["strata/", "strata/DefaultCluster/broker-a/0", "strata/DefaultCluster/broker-b/0"]
    error_message = "lifecycle rules: the cluster prefix (uploads), then each broker's segment objects only"
  }
  assert {
    condition     = alltrue([for r in slice(aws_s3_bucket_lifecycle_configuration.tier.rule, 1, 3) : one(r.transition).storage_class == "STANDARD_IA" && one(r.transition).days == 30 && length(r.expiration) == 0])
    error_message = "segments go to STANDARD_IA after 30 days and never expire by default"
  }
  # The instance role: the bucket's prefix only, no access keys.
  assert {
    condition     = [for s in data.aws_iam_policy_document.tier.statement : s.sid] == ["ListTheClusterPrefix", "ObjectsUnderTheClusterPrefix"]
    error_message = "two statements (no KMS key)"
  }
  assert {
    condition = (
      sort(data.aws_iam_policy_document.tier.statement[0].resources) == tolist(["arn:aws:s3:::strata-tier-test"]) &&
      sort(data.aws_iam_policy_document.tier.statement[0].actions) == tolist(["s3:ListBucket"]) &&
      one(data.aws_iam_policy_document.tier.statement[0].condition).variable == "s3:prefix" &&
      one(data.aws_iam_policy_document.tier.statement[0].condition).test == "StringLikeIfExists" &&
      sort(one(data.aws_iam_policy_document.tier.statement[0].condition).values) == tolist(["strata", "strata/*"])
    )
    error_message = "listing is limited to the cluster's prefix"
  }
  assert {
    condition = (
      sort(data.aws_iam_policy_document.tier.statement[1].resources) == tolist(["arn:aws:s3:::strata-tier-test/strata/*"]) &&
      contains(data.aws_iam_policy_document.tier.statement[1].actions, "s3:PutObject") &&
      !anytrue([for a in data.aws_iam_policy_document.tier.statement[1].actions : strcontains(a, "*")])
    )
    error_message = "objects: named actions on <bucket>/<prefix>/* only"
  }
}

run "admin_networks_and_readers" {
  variables {
    admin_cidrs        = ["10.20.5.0/24"]
    client_cidrs       = ["10.30.0.0/16", "10.40.0.0/16"]
    readers_per_broker = 2
    broker_count       = 1
  }

  assert {
    condition     = length(aws_vpc_security_group_ingress_rule.client) == 4 && !contains(keys(aws_vpc_security_group_ingress_rule.client), "broker 10.20.0.0/16")
    error_message = "client_cidrs replace the VPC default"
  }
  assert {
    condition     = length(aws_vpc_security_group_ingress_rule.admin) == 2 && alltrue([for r in aws_vpc_security_group_ingress_rule.admin : r.from_port == 8080 && r.cidr_ipv4 == "10.20.5.0/24"])
    error_message = "the admin port opens to admin_cidrs only"
  }
  assert {
    condition     = module.broker["broker-a"].environment["STRATA_HTTP_LISTEN"] == "0.0.0.0:8080"
    error_message = "with admin networks the admin port listens on the host's interfaces"
  }
  assert {
    condition     = aws_autoscaling_group.reader["broker-a"].min_size == 2 && aws_autoscaling_group.reader["broker-a"].max_size == 2
    error_message = "two readers for the broker"
  }
  assert {
    condition     = strcontains(base64decode(aws_launch_template.reader["broker-a"].user_data), "STRATA_ROLE=\\\"reader\\\"") || strcontains(base64decode(aws_launch_template.reader["broker-a"].user_data), "STRATA_ROLE=\"reader\"")
    error_message = "readers boot as tier readers"
  }
  assert {
    condition     = module.reader["broker-a"].host_derived == tolist(["STRATA_ADVERTISE", "STRATA_BROKER_ID"])
    error_message = "readers in a group derive their ids and addresses at boot"
  }
}

run "kms_and_expiry" {
  variables {
    kms_key_arn                   = "arn:aws:kms:eu-west-1:111122223333:key/00000000-0000-0000-0000-000000000000"
    tier_transition_storage_class = "GLACIER_IR"
    tier_transition_days          = 60
    tier_expiration_days          = 3650
  }

  assert {
    condition     = one(one(aws_s3_bucket_server_side_encryption_configuration.tier.rule).apply_server_side_encryption_by_default).sse_algorithm == "aws:kms" && one(aws_s3_bucket_server_side_encryption_configuration.tier.rule).bucket_key_enabled
    error_message = "SSE-KMS with a bucket key"
  }
  assert {
    condition     = sort(data.aws_iam_policy_document.tier.statement[2].resources) == tolist([var.kms_key_arn])
    error_message = "the role may use the key"
  }
  assert {
    condition     = one(aws_s3_bucket_lifecycle_configuration.tier.rule[1].expiration).days == 3650 && one(aws_s3_bucket_lifecycle_configuration.tier.rule[1].transition).storage_class == "GLACIER_IR"
    error_message = "expiry and transition as asked"
  }
}

run "admin_port_never_public" {
  command = plan
  variables {
    admin_cidrs = ["0.0.0.0/0"]
  }
  expect_failures = [var.admin_cidrs]
}

run "archive_classes_are_unreadable" {
  command = plan
  variables {
    tier_transition_storage_class = "DEEP_ARCHIVE"
  }
  expect_failures = [var.tier_transition_storage_class]
}

run "brokers_need_instance_storage" {
  command = plan
  override_data {
    target = data.aws_ec2_instance_type.broker
    values = { instance_storage_supported = false, supported_architectures = ["x86_64"] }
  }
  variables {
    broker_instance_type = "m6i.large"
  }
  expect_failures = [aws_instance.broker]
}

run "no_binary" {
  command = plan
  variables {
    binary_url = ""
  }
  expect_failures = [var.binary_url]
}

run "followers_with_sync_replication" {
  variables {
    followers_per_group = 2
    replication         = "sync"
    min_insync_replicas = 2
    segment_size        = "512MiB"
    flush               = "async"
    hot_retention       = "24h"
    cache_size          = "2GiB"
  }

  assert {
    condition     = sort(keys(aws_instance.follower)) == tolist(["broker-a-1", "broker-a-2", "broker-b-1", "broker-b-2"])
    error_message = "two followers per group, named after it"
  }
  assert {
    condition = [for n in ["broker-a-1", "broker-a-2", "broker-b-1", "broker-b-2"] : aws_instance.follower[n].subnet_id] == [
      "subnet-0000000000000000b", "subnet-0000000000000000c", "subnet-0000000000000000c", "subnet-0000000000000000a",
    ]
    error_message = "each group's followers go to the subnets after their leader's: other availability zones"
  }
  assert {
    condition     = alltrue([for i in values(aws_instance.follower) : i.instance_type == "i4i.large" && i.metadata_options[0].http_tokens == "required" && i.root_block_device[0].encrypted])
    error_message = "followers run on the leaders' instance type (local NVMe), IMDSv2 only, encrypted root volumes"
  }
  assert {
    condition     = aws_instance.follower["broker-b-2"].user_data == module.follower["broker-b-2"].cloud_init && aws_instance.follower["broker-b-2"].tags["strata:role"] == "follower" && aws_instance.follower["broker-b-2"].tags["strata:broker-id"] == "2"
    error_message = "followers boot with their rendered cloud-init, tagged with their role and id"
  }
  assert {
    condition = (
      module.follower["broker-b-2"].environment["STRATA_ROLE"] == "follower" &&
      module.follower["broker-b-2"].environment["STRATA_BROKER_NAME"] == "broker-b" &&
      module.follower["broker-b-2"].environment["STRATA_BROKER_ID"] == "2" &&
      module.follower["broker-b-2"].environment["STRATA_NAMESRV"] == "10.20.1.10:9876;10.20.1.10:9876;10.20.1.10:9876" &&
      module.follower["broker-b-2"].environment["STRATA_HA_LISTEN"] == ":10912"
    )
    error_message = "a follower: its group, its id, the name servers, the replication port"
  }
  assert {
    condition = alltrue([for k in ["STRATA_SEGMENT_SIZE", "STRATA_SEGMENT_MAX_AGE", "STRATA_FLUSH", "STRATA_REPLICATION", "STRATA_MIN_INSYNC_REPLICAS", "STRATA_FAILOVER", "STRATA_AUTO_CREATE_TOPICS"] :
      module.follower["broker-a-1"].environment[k] == module.broker["broker-a"].environment[k]
    ])
    error_message = "followers have their leader's log and replication settings"
  }
  assert {
    condition     = module.broker["broker-a"].environment["STRATA_SEGMENT_SIZE"] == "512MiB" && module.broker["broker-a"].environment["STRATA_REPLICATION"] == "sync" && module.broker["broker-a"].environment["STRATA_MIN_INSYNC_REPLICAS"] == "2"
    error_message = "leaders: sync replication, two copies"
  }
  assert {
    condition     = module.broker["broker-a"].environment["STRATA_TIER"] == output.tier_url && module.follower["broker-a-1"].environment["STRATA_TIER"] == output.tier_url && module.follower["broker-b-2"].environment["STRATA_TIER"] == output.tier_url
    error_message = "without failover leaders and followers share the cold tier (only the leader offloads; followers serve what it offloaded)"
  }
  assert {
    condition = alltrue([for k in ["STRATA_TIER", "STRATA_HOT_RETENTION", "STRATA_CACHE_SIZE"] :
      module.follower["broker-a-1"].environment[k] == module.broker["broker-a"].environment[k]
    ])
    error_message = "followers have their leader's tier URL, hot retention and cache size"
  }
  assert {
    condition     = module.follower["broker-a-2"].environment["STRATA_HOT_RETENTION"] == "24h" && module.follower["broker-a-2"].environment["STRATA_CACHE_SIZE"] == "2GiB"
    error_message = "followers delete offloaded segments after the group's hot retention: ${jsonencode(module.follower["broker-a-2"].environment)}"
  }
  assert {
    condition     = strcontains(module.follower["broker-a-1"].prepare_script, "pattern='/dev/disk/by-id/nvme-Amazon_EC2_NVMe_Instance_Storage_*'") && strcontains(module.follower["broker-a-1"].prepare_script, "mkfs.xfs")
    error_message = "followers format and mount their own instance store"
  }
  assert {
    condition     = module.follower["broker-a-1"].host_derived == tolist(["STRATA_ADVERTISE"])
    error_message = "followers advertise the address they boot with (and their replication port on it)"
  }
  # The replication port: leaders and followers only, never clients or readers.
  assert {
    condition = (
      length(aws_vpc_security_group_ingress_rule.replication) == 1 &&
      aws_vpc_security_group_ingress_rule.replication[0].from_port == 10912 && aws_vpc_security_group_ingress_rule.replication[0].to_port == 10912 &&
      aws_vpc_security_group_ingress_rule.replication[0].security_group_id == aws_security_group.replication.id &&
      aws_vpc_security_group_ingress_rule.replication[0].referenced_security_group_id == aws_security_group.replication.id &&
      aws_vpc_security_group_ingress_rule.replication[0].cidr_ipv4 == null
    )
    error_message = "the replication port opens to the members of the replication security group only"
  }
  assert {
    condition = alltrue([for i in concat(values(aws_instance.broker), values(aws_instance.follower)) :
      toset(i.vpc_security_group_ids) == toset([aws_security_group.broker.id, aws_security_group.replication.id])
    ])
    error_message = "leaders and followers are in the broker and replication security groups"
  }
  assert {
    condition     = alltrue([for r in aws_vpc_security_group_ingress_rule.client : contains([9876, 10911], r.from_port)])
    error_message = "clients reach the client ports only"
  }
  assert {
    condition     = length(output.followers) == 4 && output.followers["broker-a-2"].broker_name == "broker-a" && output.followers["broker-a-2"].broker_id == 2
    error_message = "the followers output lists each follower's group and id"
  }
}

run "failover" {
  variables {
    failover            = true
    followers_per_group = 1
    replication         = "sync"
    ha_port             = 10999
    controller_port     = 9900
  }

  # Every name server runs the controller on its fixed address, with all
  # of them as raft peers, and keeps its raft state in its data directory.
  assert {
    condition = (
      module.namesrv[1].environment["STRATA_CONTROLLER_LISTEN"] == "10.20.1.10:9900" &&
      module.namesrv[1].environment["STRATA_CONTROLLER_PEERS"] == "10.20.1.10:9900;10.20.1.10:9900;10.20.1.10:9900" &&
      module.namesrv[1].environment["STRATA_DATA_DIR"] == "/var/lib/strata"
    )
    error_message = "name servers run the failover controller: ${jsonencode(module.namesrv[1].environment)}"
  }
  assert {
    condition     = contains(split("\n", module.namesrv[0].systemd_unit), "ReadWritePaths=/var/lib/strata")
    error_message = "the name server may write its raft state"
  }
  assert {
    condition     = output.controller_peers == tolist(["10.20.1.10:9900", "10.20.1.10:9900", "10.20.1.10:9900"])
    error_message = "the controller peers are the name servers' fixed addresses"
  }
  # The controller port: name servers only.
  assert {
    condition = (
      length(aws_vpc_security_group_ingress_rule.controller) == 1 &&
      aws_vpc_security_group_ingress_rule.controller[0].from_port == 9900 &&
      aws_vpc_security_group_ingress_rule.controller[0].security_group_id == aws_security_group.namesrv.id &&
      aws_vpc_security_group_ingress_rule.controller[0].referenced_security_group_id == aws_security_group.namesrv.id &&
      aws_vpc_security_group_ingress_rule.controller[0].cidr_ipv4 == null
    )
    error_message = "the controller's raft port opens to the name servers only"
  }
  assert {
    condition     = aws_vpc_security_group_ingress_rule.replication[0].from_port == 10999 && module.broker["broker-b"].environment["STRATA_HA_LISTEN"] == ":10999" && module.follower["broker-b-1"].environment["STRATA_HA_LISTEN"] == ":10999"
    error_message = "ha_port moves the replication port and its rule"
  }
  assert {
    condition     = alltrue([for r in aws_vpc_security_group_ingress_rule.client : !contains([9900, 10999], r.from_port)])
    error_message = "clients reach neither the controller nor the replication port"
  }
  # Members: failover on, two copies under sync (Strata's default), and the
  # same cold tier, hot retention and cache (any member may lead and offload).
  assert {
    condition = alltrue([for e in concat([for m in values(module.broker) : m.environment], [for m in values(module.follower) : m.environment]) :
      e["STRATA_FAILOVER"] == "on" && e["STRATA_REPLICATION"] == "sync" && e["STRATA_MIN_INSYNC_REPLICAS"] == "2" &&
      e["STRATA_TIER"] == output.tier_url && e["STRATA_HOT_RETENTION"] == "80%" && e["STRATA_CACHE_SIZE"] == "512MiB"
    ])
    error_message = "every member of every group: failover on, sync replication, the cold tier with the group's hot retention and cache"
  }
  assert {
    condition     = module.broker["broker-a"].environment["STRATA_TIER"] == output.tier_url && module.follower["broker-a-1"].environment["STRATA_TIER"] == output.tier_url
    error_message = "under failover the leader and its follower both have the cold tier"
  }
}

run "failover_needs_followers" {
  command = plan
  variables {
    failover = true
  }
  expect_failures = [var.failover]
}

run "failover_without_readers" {
  command = plan
  variables {
    followers_per_group = 1
    failover            = true
    readers_per_broker  = 1
  }
  expect_failures = [var.readers_per_broker]
}

run "more_copies_than_a_group_holds" {
  command = plan
  variables {
    followers_per_group = 1
    replication         = "sync"
    min_insync_replicas = 3
  }
  expect_failures = [var.min_insync_replicas]
}

run "sync_replication_without_followers" {
  command = plan
  variables {
    replication = "sync"
  }
  expect_failures = [var.min_insync_replicas]
}

run "unknown_replication_mode" {
  command = plan
  variables {
    replication = "quorum"
  }
  expect_failures = [var.replication]
}

run "replication_port_is_the_client_port" {
  command = plan
  variables {
    ha_port = 10911
  }
  expect_failures = [var.ha_port]
}

run "followers_need_instance_storage" {
  command = plan
  override_data {
    target = data.aws_ec2_instance_type.broker
    values = { instance_storage_supported = false, supported_architectures = ["x86_64"] }
  }
  variables {
    broker_instance_type = "m6i.large"
    followers_per_group  = 1
  }
  expect_failures = [aws_instance.broker, aws_instance.follower]
}

# ---------------------------------------------------------------------------
# Security: the ACL file, TLS and limits reach every node as paths and
# numbers; no secret is a variable or in any user data.

run "security_on_every_node" {
  variables {
    followers_per_group  = 1
    readers_per_broker   = 1
    broker_count         = 1
    acl_file             = "/etc/strata/acl.yml"
    require_auth         = true
    tls_cert_file        = "/etc/strata/tls/node.crt"
    tls_key_file         = "/etc/strata/tls/node.key"
    tls_ca_file          = "/etc/strata/tls/ca.pem"
    tls_client_auth      = true
    max_conns            = 20000
    max_conns_per_ip     = 300
    max_inflight         = 512
    max_held_pulls       = 40000
    credentials_env_file = "/etc/strata/credentials.env"
  }

  # Every node: the ACL file, mutual TLS, the connection limits.
  assert {
    condition = alltrue([for e in [module.namesrv[0].environment, module.namesrv[2].environment, module.broker["broker-a"].environment, module.follower["broker-a-1"].environment, module.reader["broker-a"].environment] :
      e["STRATA_ACL_FILE"] == "/etc/strata/acl.yml" && e["STRATA_REQUIRE_AUTH"] == "true" &&
      e["STRATA_TLS_CERT"] == "/etc/strata/tls/node.crt" && e["STRATA_TLS_KEY"] == "/etc/strata/tls/node.key" &&
      e["STRATA_TLS_CA"] == "/etc/strata/tls/ca.pem" && e["STRATA_TLS_CLIENT_AUTH"] == "true" &&
      e["STRATA_MAX_CONNS"] == "20000" && e["STRATA_MAX_CONNS_PER_IP"] == "300"
    ])
    error_message = "name servers, leaders, followers and readers all get the ACL file, TLS and the connection limits"
  }
  # Brokers, followers and readers: the request limits and the credentials
  # file (for STRATA_ACCESS_KEY/STRATA_SECRET_KEY); name servers neither.
  assert {
    condition = alltrue([for m in [module.broker["broker-a"], module.follower["broker-a-1"], module.reader["broker-a"]] :
      m.environment["STRATA_MAX_INFLIGHT"] == "512" && m.environment["STRATA_MAX_HELD_PULLS"] == "40000" &&
      contains(split("\n", m.systemd_unit), "EnvironmentFile=-/etc/strata/credentials.env")
    ])
    error_message = "brokers, followers and readers get the request limits and read the credentials file"
  }
  assert {
    condition = (
      !contains(keys(module.namesrv[0].environment), "STRATA_MAX_INFLIGHT") &&
      !contains(keys(module.namesrv[0].environment), "STRATA_MAX_HELD_PULLS") &&
      !strcontains(module.namesrv[0].systemd_unit, "EnvironmentFile=-")
    )
    error_message = "name servers take neither the broker limits nor a credentials file: ${jsonencode(module.namesrv[0].environment)}"
  }
  # What boots the instances: the settings, never a secret or a file's content.
  assert {
    condition = (
      aws_instance.namesrv[0].user_data == module.namesrv[0].cloud_init &&
      aws_instance.broker["broker-a"].user_data == module.broker["broker-a"].cloud_init &&
      aws_instance.follower["broker-a-1"].user_data == module.follower["broker-a-1"].cloud_init &&
      base64decode(aws_launch_template.reader["broker-a"].user_data) == module.reader["broker-a"].cloud_init
    )
    error_message = "every instance boots with its rendered configuration"
  }
  assert {
    condition = alltrue([for u in [aws_instance.namesrv[0].user_data, aws_instance.broker["broker-a"].user_data, aws_instance.follower["broker-a-1"].user_data, base64decode(aws_launch_template.reader["broker-a"].user_data)] :
      strcontains(u, "/etc/strata/acl.yml") && !strcontains(u, "STRATA_ACCESS_KEY") && !strcontains(u, "STRATA_SECRET_KEY") && !strcontains(u, "PRIVATE KEY") &&
      length([for f in yamldecode(u).write_files : f.path if contains(["/etc/strata/acl.yml", "/etc/strata/tls/node.key", "/etc/strata/tls/node.crt", "/etc/strata/tls/ca.pem", "/etc/strata/credentials.env"], f.path)]) == 0
    ])
    error_message = "user data names the files and carries no key, account or certificate, and writes none of them"
  }
  # TLS runs on the same ports: the security groups do not change.
  assert {
    condition     = sort(keys(aws_vpc_security_group_ingress_rule.client)) == tolist(["broker 10.20.0.0/16", "namesrv 10.20.0.0/16"]) && length(aws_vpc_security_group_ingress_rule.admin) == 0
    error_message = "no new ports with TLS"
  }
  assert {
    condition     = output.instance_role_name == aws_iam_role.node.name
    error_message = "the role's name, for a policy of the operator's (an agent fetching the files at boot)"
  }
}

run "tls_with_failover" {
  variables {
    failover            = true
    followers_per_group = 1
    tls_cert_file       = "/etc/strata/tls/node.crt"
    tls_key_file        = "/etc/strata/tls/node.key"
    tls_ca_file         = "/etc/strata/tls/ca.pem"
  }

  assert {
    condition = alltrue([for m in module.namesrv :
      m.environment["STRATA_CONTROLLER_LISTEN"] == "10.20.1.10:9878" && m.environment["STRATA_TLS_CA"] == "/etc/strata/tls/ca.pem" && m.environment["STRATA_TLS_CERT"] == "/etc/strata/tls/node.crt" &&
      !contains(keys(m.environment), "STRATA_TLS_CLIENT_AUTH") && !contains(keys(m.environment), "STRATA_ACL_FILE")
    ])
    error_message = "the controller's raft peers authenticate each other against the CA (mutual TLS); client certificates stay optional"
  }
  assert {
    condition     = module.follower["broker-b-1"].environment["STRATA_TLS_CA"] == "/etc/strata/tls/ca.pem" && module.follower["broker-b-1"].environment["STRATA_FAILOVER"] == "on"
    error_message = "members of failover groups verify the others against the CA"
  }
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

run "tls_client_auth_without_ca" {
  command = plan
  variables {
    tls_cert_file   = "/etc/strata/tls/node.crt"
    tls_key_file    = "/etc/strata/tls/node.key"
    tls_client_auth = true
  }
  expect_failures = [var.tls_client_auth]
}

run "tls_ca_without_tls" {
  command = plan
  variables {
    tls_ca_file = "/etc/strata/tls/ca.pem"
  }
  expect_failures = [var.tls_ca_file]
}

run "tls_with_failover_without_ca" {
  command = plan
  variables {
    failover            = true
    followers_per_group = 1
    tls_cert_file       = "/etc/strata/tls/node.crt"
    tls_key_file        = "/etc/strata/tls/node.key"
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

run "max_conns_per_ip_fractional" {
  command = plan
  variables {
    max_conns_per_ip = 2.5
  }
  expect_failures = [var.max_conns_per_ip]
}

run "max_inflight_zero" {
  command = plan
  variables {
    max_inflight = 0
  }
  expect_failures = [var.max_inflight]
}

run "max_held_pulls_negative" {
  command = plan
  variables {
    max_held_pulls = -5
  }
  expect_failures = [var.max_held_pulls]
}
