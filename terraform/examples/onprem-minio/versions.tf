# Provider-free: the example only renders files (see README.md), so
# `terraform init` needs no registry and no credentials.
terraform {
  required_version = ">= 1.9"
}
