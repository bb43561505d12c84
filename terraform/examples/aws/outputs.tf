output "namesrv_addresses" {
  description = "Give this to clients: --namesrv for strata, the name-server address for RocketMQ clients."
  value       = module.strata.namesrv_addresses
}

output "bucket_name" {
  description = "The cold tier's bucket."
  value       = module.strata.bucket_name
}

output "tier_url" {
  description = "The brokers' --tier."
  value       = module.strata.tier_url
}

output "brokers" {
  description = "Broker instances (broker id 0 of each group)."
  value       = module.strata.brokers
}

output "followers" {
  description = "Follower instances: group, broker id, instance, address, zone."
  value       = module.strata.followers
}
