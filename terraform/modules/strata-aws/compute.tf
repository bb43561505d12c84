# ---------------------------------------------------------------------------
# Name servers: one per subnet in turn, each on its own network interface so
# that its address (what clients and brokers are configured with) outlives
# the instance.

resource "aws_network_interface" "namesrv" {
  count = var.namesrv_count

  subnet_id       = var.subnet_ids[count.index % length(var.subnet_ids)]
  security_groups = [aws_security_group.namesrv.id]
  description     = "${var.name} name server ${count.index + 1}"
  tags            = merge(local.tags, { Name = "${var.name}-namesrv-${count.index + 1}" })
}

resource "aws_instance" "namesrv" {
  count = var.namesrv_count

  ami                         = local.ami_id
  instance_type               = local.namesrv_type
  iam_instance_profile        = aws_iam_instance_profile.node.name
  key_name                    = var.key_name
  user_data                   = module.namesrv[count.index].cloud_init
  user_data_replace_on_change = true

  network_interface {
    network_interface_id = aws_network_interface.namesrv[count.index].id
    device_index         = 0
  }

  metadata_options {
    http_endpoint               = "enabled"
    http_tokens                 = "required"
    http_put_response_hop_limit = 1
  }

  root_block_device {
    volume_type = "gp3"
    volume_size = var.root_volume_size
    encrypted   = true
  }

  tags        = merge(local.tags, { Name = "${var.name}-namesrv-${count.index + 1}", "strata:role" = "namesrv" })
  volume_tags = local.tags

  lifecycle {
    ignore_changes = [ami] # a newer image must not replace running nodes
  }
}

# ---------------------------------------------------------------------------
# Brokers: leaders on instance types with local NVMe, which holds the hot
# tier (formatted and mounted at boot by the node's preparation unit).
# Anything not yet offloaded lives only there (and on the group's followers,
# if any): segment_max_age bounds it.

resource "aws_instance" "broker" {
  for_each = toset(local.broker_names)

  ami                         = local.ami_id
  instance_type               = local.broker_type
  subnet_id                   = var.subnet_ids[index(local.broker_names, each.key) % length(var.subnet_ids)]
  vpc_security_group_ids      = [aws_security_group.broker.id, aws_security_group.replication.id]
  iam_instance_profile        = aws_iam_instance_profile.node.name
  key_name                    = var.key_name
  user_data                   = module.broker[each.key].cloud_init
  user_data_replace_on_change = true

  metadata_options {
    http_endpoint               = "enabled"
    http_tokens                 = "required"
    http_put_response_hop_limit = 1
  }

  root_block_device {
    volume_type = "gp3"
    volume_size = var.root_volume_size
    encrypted   = true
  }

  tags        = merge(local.tags, { Name = "${var.name}-${each.key}", "strata:role" = "broker", "strata:broker-name" = each.key, "strata:broker-id" = "0" })
  volume_tags = local.tags

  lifecycle {
    ignore_changes = [ami]
    precondition {
      condition     = data.aws_ec2_instance_type.broker.instance_storage_supported
      error_message = "broker_instance_type ${local.broker_type} has no instance storage: brokers keep their hot tier on local NVMe (e.g. i4i, i4g, im4gn, is4gen, m6id, c6gd)."
    }
    precondition {
      condition     = contains(data.aws_ec2_instance_type.broker.supported_architectures, var.architecture)
      error_message = "broker_instance_type ${local.broker_type} does not run ${var.architecture} (architecture)."
    }
  }
}

# ---------------------------------------------------------------------------
# Followers: the same instance type as their leader (under failover one may
# lead), their copy of the log on their own instance store, in another
# availability zone than the leader's when there are several subnets.

resource "aws_instance" "follower" {
  for_each = local.followers

  ami                         = local.ami_id
  instance_type               = local.broker_type
  subnet_id                   = each.value.subnet_id
  vpc_security_group_ids      = [aws_security_group.broker.id, aws_security_group.replication.id]
  iam_instance_profile        = aws_iam_instance_profile.node.name
  key_name                    = var.key_name
  user_data                   = module.follower[each.key].cloud_init
  user_data_replace_on_change = true

  metadata_options {
    http_endpoint               = "enabled"
    http_tokens                 = "required"
    http_put_response_hop_limit = 1
  }

  root_block_device {
    volume_type = "gp3"
    volume_size = var.root_volume_size
    encrypted   = true
  }

  tags = merge(local.tags, {
    Name                 = "${var.name}-${each.key}"
    "strata:role"        = "follower"
    "strata:broker-name" = each.value.broker_name
    "strata:broker-id"   = tostring(each.value.broker_id)
  })
  volume_tags = local.tags

  lifecycle {
    ignore_changes = [ami]
    precondition {
      condition     = data.aws_ec2_instance_type.broker.instance_storage_supported
      error_message = "broker_instance_type ${local.broker_type} has no instance storage: followers keep their copy of the log on local NVMe (e.g. i4i, i4g, im4gn, is4gen, m6id, c6gd)."
    }
    precondition {
      condition     = contains(data.aws_ec2_instance_type.broker.supported_architectures, var.architecture)
      error_message = "broker_instance_type ${local.broker_type} does not run ${var.architecture} (architecture)."
    }
  }
}

# ---------------------------------------------------------------------------
# Tier readers: stateless, so an auto-scaling group per broker replaces them
# freely; a changed configuration rolls through the group.

resource "aws_launch_template" "reader" {
  for_each = module.reader

  name_prefix            = "${var.name}-reader-${each.key}-"
  image_id               = local.ami_id
  instance_type          = local.reader_type
  key_name               = var.key_name
  user_data              = base64encode(each.value.cloud_init)
  vpc_security_group_ids = [aws_security_group.broker.id]
  update_default_version = true

  iam_instance_profile {
    name = aws_iam_instance_profile.node.name
  }

  metadata_options {
    http_endpoint               = "enabled"
    http_tokens                 = "required"
    http_put_response_hop_limit = 1
  }

  tag_specifications {
    resource_type = "instance"
    tags          = merge(local.tags, { Name = "${var.name}-reader-${each.key}", "strata:role" = "reader", "strata:broker-name" = each.key })
  }
  tag_specifications {
    resource_type = "volume"
    tags          = local.tags
  }
  tags = local.tags

  lifecycle {
    ignore_changes = [image_id]
  }
}

resource "aws_autoscaling_group" "reader" {
  for_each = aws_launch_template.reader

  name_prefix         = "${var.name}-reader-${each.key}-"
  vpc_zone_identifier = var.subnet_ids
  min_size            = var.readers_per_broker
  max_size            = var.readers_per_broker
  desired_capacity    = var.readers_per_broker
  health_check_type   = "EC2"

  launch_template {
    id      = each.value.id
    version = each.value.latest_version
  }

  instance_refresh {
    strategy = "Rolling"
    preferences {
      min_healthy_percentage = 50
    }
  }

  dynamic "tag" {
    for_each = merge(local.tags, { "strata:role" = "reader" })
    content {
      key                 = tag.key
      value               = tag.value
      propagate_at_launch = false # the launch template tags the instances
    }
  }
}
