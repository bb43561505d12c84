# A Strata cluster on EC2: three name servers across the subnets' zones,
# brokers on NVMe instance storage, an S3 cold tier. See README.md.

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
}
