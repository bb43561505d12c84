terraform {
  required_version = ">= 1.9"

  required_providers {
    aws = {
      source = "hashicorp/aws"
      # 5.x: aws_vpc_security_group_*_rule, and aws_instance's
      # network_interface block for the name servers' fixed addresses.
      version = ">= 5.40, < 6.0"
    }
  }
}
