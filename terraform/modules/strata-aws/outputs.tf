output "namesrv_addresses" {
  description = "Name servers for clients: \"ip:port;ip:port\" (Strata's --namesrv, a RocketMQ client's name-server address)."
  value       = join(";", local.namesrv_addresses)
}

output "namesrv_private_ips" {
  description = "Fixed private addresses of the name servers."
  value       = aws_network_interface.namesrv[*].private_ip
}

output "brokers" {
  description = "Per broker name: the instance id, private address and availability zone of the group's broker id 0 (its leader, unless failover elected another)."
  value = { for n, i in aws_instance.broker : n => {
    instance_id       = i.id
    private_ip        = i.private_ip
    availability_zone = i.availability_zone
  } }
}

output "followers" {
  description = "Per follower (broker-a-1, …): its broker name and id, instance id, private address and availability zone."
  value = { for n, i in aws_instance.follower : n => {
    broker_name       = local.followers[n].broker_name
    broker_id         = local.followers[n].broker_id
    instance_id       = i.id
    private_ip        = i.private_ip
    availability_zone = i.availability_zone
  } }
}

output "controller_peers" {
  description = "With failover: the name servers' controller raft addresses (ip:port); empty otherwise."
  value       = var.failover ? local.controller_peers : []
}

output "reader_autoscaling_groups" {
  description = "Per broker name: the auto-scaling group of its tier readers."
  value       = { for n, g in aws_autoscaling_group.reader : n => g.name }
}

output "bucket_name" {
  description = "The cold tier's S3 bucket."
  value       = aws_s3_bucket.tier.bucket
}

output "bucket_arn" {
  description = "ARN of the cold tier's bucket."
  value       = aws_s3_bucket.tier.arn
}

output "tier_url" {
  description = "The --tier of every broker (leaders and followers, with or without failover) and of the tier readers."
  value       = local.tier_url
}

output "instance_role_arn" {
  description = "The nodes' IAM role (S3 access to the cluster's prefix only)."
  value       = aws_iam_role.node.arn
}

output "instance_role_name" {
  description = "Name of the nodes' IAM role: attach a policy of yours to it (aws_iam_role_policy_attachment) if an agent in your image fetches the ACL file or TLS files at boot, e.g. from Secrets Manager."
  value       = aws_iam_role.node.name
}

output "security_group_ids" {
  description = "Security groups of the name servers (namesrv), of brokers, followers and readers (broker), and of leaders and followers only (replication); add client rules of your own to the first two."
  value       = merge(local.sg_ids, { replication = aws_security_group.replication.id })
}
