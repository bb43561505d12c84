variable "region" {
  description = "AWS region, e.g. \"eu-west-1\"."
  type        = string
}

variable "name" {
  description = "Prefix of every resource's name."
  type        = string
  default     = "strata"
}

variable "subnet_ids" {
  description = "Private subnets of one VPC, one per availability zone (with a NAT gateway or an S3 gateway endpoint: nodes reach S3 and binary_url)."
  type        = list(string)
}

variable "client_cidrs" {
  description = "Networks of your producers and consumers; null: the VPC's CIDR block."
  type        = list(string)
  default     = null
}

variable "admin_cidrs" {
  description = "Networks of your Prometheus and operators, for /metrics and the admin API; empty: closed."
  type        = list(string)
  default     = []
}

variable "architecture" {
  description = "\"x86_64\" or \"arm64\"; must match binary_url."
  type        = string
  default     = "x86_64"
}

variable "binary_url" {
  description = "https URL of dist/strata-linux-amd64 (or -arm64) from scripts/release.sh."
  type        = string
}

variable "binary_sha256" {
  description = "Its SHA-256, from dist/SHA256SUMS."
  type        = string
}

variable "broker_count" {
  description = "Broker groups (broker-a, broker-b, …), each a leader and followers_per_group followers."
  type        = number
  default     = 2
}

variable "followers_per_group" {
  description = "Followers per broker group, each on its own NVMe instance in another zone (0: leaders alone)."
  type        = number
  default     = 0
}

variable "replication" {
  description = "\"async\" (acknowledge after the leader's write) or \"sync\" (after min_insync_replicas copies)."
  type        = string
  default     = "async"
}

variable "min_insync_replicas" {
  description = "Copies, the leader's included, a send needs under sync replication; null: 2."
  type        = number
  default     = null
}

variable "failover" {
  description = "The name servers' controller elects a new leader when one fails (needs followers). Every member keeps the S3 cold tier (only the current leader offloads); tier readers are not supported with failover yet (readers_per_broker = 0)."
  type        = bool
  default     = false
}

variable "readers_per_broker" {
  description = "Tier readers per broker (0: none)."
  type        = number
  default     = 0
}
