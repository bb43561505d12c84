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
