output "namesrv_addresses" {
  description = "Name servers for clients: \"ip:port;ip:port\" (Strata's --namesrv, a RocketMQ client's name-server address)."
  value       = join(";", local.namesrv_addresses)
}

output "namesrv_private_ips" {
  description = "Fixed private addresses of the name servers."
  value       = aws_network_interface.namesrv[*].private_ip
}

output "brokers" {
  description = "Per broker name: instance id, private address and availability zone."
  value = { for n, i in aws_instance.broker : n => {
    instance_id       = i.id
    private_ip        = i.private_ip
    availability_zone = i.availability_zone
  } }
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
  description = "The --tier every broker and reader uses."
  value       = local.tier_url
}

output "instance_role_arn" {
  description = "The nodes' IAM role (S3 access to the cluster's prefix only)."
  value       = aws_iam_role.node.arn
}

output "security_group_ids" {
  description = "Security groups of the name servers and of brokers and readers; add client rules of your own to these."
  value       = local.sg_ids
}
