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
  description = "Leader brokers."
  type        = number
  default     = 2
}

variable "readers_per_broker" {
  description = "Tier readers per broker (0: none)."
  type        = number
  default     = 0
}
