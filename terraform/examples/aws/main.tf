# A Strata cluster on EC2: three name servers across the subnets' zones,
# broker groups (a leader and its followers) on NVMe instance storage, an S3
# cold tier, optional failover. See README.md.

module "strata" {
  source = "../../modules/strata-aws"

  name               = var.name
  subnet_ids         = var.subnet_ids
  client_cidrs       = var.client_cidrs
  admin_cidrs        = var.admin_cidrs
  architecture       = var.architecture
  binary_url         = var.binary_url
  binary_sha256      = var.binary_sha256
  broker_count       = var.broker_count
  readers_per_broker = var.readers_per_broker

  followers_per_group = var.followers_per_group
  replication         = var.replication
  min_insync_replicas = var.min_insync_replicas
  failover            = var.failover
}
