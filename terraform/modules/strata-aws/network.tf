# Security groups: client ports open to client_cidrs only, brokers reach the
# name servers, and the admin/metrics port only to admin_cidrs (closed by
# default). The replication port is open only between leaders and followers,
# the controller's raft port only between name servers. Outbound is open
# (S3, package mirrors, the binary's URL).

resource "aws_security_group" "namesrv" {
  name_prefix = "${var.name}-namesrv-"
  description = "Strata name servers"
  vpc_id      = data.aws_vpc.this.id
  tags        = merge(local.tags, { Name = "${var.name}-namesrv" })

  lifecycle {
    create_before_destroy = true
  }
}

resource "aws_security_group" "broker" {
  name_prefix = "${var.name}-broker-"
  description = "Strata brokers and tier readers"
  vpc_id      = data.aws_vpc.this.id
  tags        = merge(local.tags, { Name = "${var.name}-broker" })

  lifecycle {
    create_before_destroy = true
  }
}

# Leaders and followers only (not tier readers, not clients): the members of
# this group reach each other's replication port. Outbound goes through the
# broker group's rule.
resource "aws_security_group" "replication" {
  name_prefix = "${var.name}-replication-"
  description = "Strata leaders and followers: replication"
  vpc_id      = data.aws_vpc.this.id
  tags        = merge(local.tags, { Name = "${var.name}-replication" })

  lifecycle {
    create_before_destroy = true
  }
}

locals {
  sg_ids = {
    namesrv = aws_security_group.namesrv.id
    broker  = aws_security_group.broker.id
  }
  client_rules = merge(
    { for c in local.client_cidrs : "namesrv ${c}" => { sg = "namesrv", port = var.namesrv_port, cidr = c, what = "clients to name servers" } },
    { for c in local.client_cidrs : "broker ${c}" => { sg = "broker", port = var.broker_port, cidr = c, what = "clients to brokers" } },
  )
  admin_rules = merge(
    { for c in var.admin_cidrs : "namesrv ${c}" => { sg = "namesrv", cidr = c } },
    { for c in var.admin_cidrs : "broker ${c}" => { sg = "broker", cidr = c } },
  )
}

resource "aws_vpc_security_group_ingress_rule" "client" {
  for_each = local.client_rules

  security_group_id = local.sg_ids[each.value.sg]
  description       = each.value.what
  ip_protocol       = "tcp"
  from_port         = each.value.port
  to_port           = each.value.port
  cidr_ipv4         = strcontains(each.value.cidr, ":") ? null : each.value.cidr
  cidr_ipv6         = strcontains(each.value.cidr, ":") ? each.value.cidr : null
}

resource "aws_vpc_security_group_ingress_rule" "admin" {
  for_each = local.admin_rules

  security_group_id = local.sg_ids[each.value.sg]
  description       = "administrators to /metrics, /healthz and the admin API"
  ip_protocol       = "tcp"
  from_port         = var.http_port
  to_port           = var.http_port
  cidr_ipv4         = strcontains(each.value.cidr, ":") ? null : each.value.cidr
  cidr_ipv6         = strcontains(each.value.cidr, ":") ? each.value.cidr : null
}

# Brokers and readers register with the name servers, and reach each other.
resource "aws_vpc_security_group_ingress_rule" "broker_to_namesrv" {
  security_group_id            = aws_security_group.namesrv.id
  description                  = "brokers register with the name servers"
  ip_protocol                  = "tcp"
  from_port                    = var.namesrv_port
  to_port                      = var.namesrv_port
  referenced_security_group_id = aws_security_group.broker.id
}

resource "aws_vpc_security_group_ingress_rule" "broker_to_broker" {
  security_group_id            = aws_security_group.broker.id
  description                  = "leaders, followers and tier readers"
  ip_protocol                  = "tcp"
  from_port                    = var.broker_port
  to_port                      = var.broker_port
  referenced_security_group_id = aws_security_group.broker.id
}

# Followers copy their leader's log over the replication port; under
# failover any member may lead, so every member opens it to the others.
resource "aws_vpc_security_group_ingress_rule" "replication" {
  count = var.followers_per_group > 0 ? 1 : 0

  security_group_id            = aws_security_group.replication.id
  description                  = "followers copy their leader's log"
  ip_protocol                  = "tcp"
  from_port                    = local.ha_port
  to_port                      = local.ha_port
  referenced_security_group_id = aws_security_group.replication.id
}

# The failover controller's raft group: name servers among themselves.
resource "aws_vpc_security_group_ingress_rule" "controller" {
  count = var.failover ? 1 : 0

  security_group_id            = aws_security_group.namesrv.id
  description                  = "the failover controller's raft peers"
  ip_protocol                  = "tcp"
  from_port                    = var.controller_port
  to_port                      = var.controller_port
  referenced_security_group_id = aws_security_group.namesrv.id
}

resource "aws_vpc_security_group_egress_rule" "all" {
  for_each = local.sg_ids

  security_group_id = each.value
  description       = "S3, package mirrors, the binary's URL"
  ip_protocol       = "-1"
  cidr_ipv4         = "0.0.0.0/0"
}
