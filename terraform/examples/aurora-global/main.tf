# Example root configuration: the lifeboat module beside the "checkout" service of
# policies/examples/aurora-global.toml — an Aurora global database in us-east-1
# (primary) and us-west-2 (secondary), workers in Auto Scaling groups, assets in S3,
# CloudFront in front — with lifeboat's own resources, daemon included, in us-east-2,
# a third region.
#
# Apply it from this directory (terraform init && terraform apply), then write the
# policy's vars file:
#
#   terraform output -raw policy_vars_toml > checkout.vars.toml
#
# checkout.toml beside this file is the policy that reads it.

terraform {
  required_version = ">= 1.5.0"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = ">= 5.40, < 7.0"
    }
  }
}

# The control region: lifeboat's topic, buckets and role live here, away from both
# regions it protects.
provider "aws" {
  region = "us-east-2"
}

# The application's two regions. The module needs neither (Route 53 and IAM are
# global); this configuration uses them to look up the regional endpoints the
# failover records point at.
provider "aws" {
  alias  = "primary"
  region = "us-east-1"
}

provider "aws" {
  alias  = "secondary"
  region = "us-west-2"
}

data "aws_lb" "api_primary" {
  provider = aws.primary
  name     = "checkout-api-use1"
}

data "aws_lb" "api_secondary" {
  provider = aws.secondary
  name     = "checkout-api-usw2"
}

module "lifeboat" {
  source = "../.."

  providers = {
    aws = aws
  }

  name             = "checkout"
  primary_region   = "us-east-1"
  secondary_region = "us-west-2"

  # The on-call role assumes lifeboat's role for the manual CLI.
  trusted_principal_arns = ["arn:aws:iam::111122223333:role/oncall"]

  route53_zone_id    = "Z0123456789ABCDEFGHIJ"
  record_name        = "checkout.example.com"
  record_type        = "CNAME"
  record_ttl         = 30
  primary_endpoint   = data.aws_lb.api_primary.dns_name
  secondary_endpoint = data.aws_lb.api_secondary.dns_name

  aurora_global_cluster_id = "checkout-global"
  aurora_clusters = [
    { region = "us-east-1", id = "checkout-use1" },
    { region = "us-west-2", id = "checkout-usw2" },
  ]

  autoscaling_groups = [
    { region = "us-east-1", name = "checkout-workers-use1" },
    { region = "us-west-2", name = "checkout-workers-usw2" },
  ]

  s3_buckets = [
    { name = "checkout-assets-use1" },
    { name = "checkout-assets-usw2" },
  ]

  cloudfront_distribution_ids = ["E2QWRUHAPOMQZL"]

  # The daemon runs in the control region: an image built FROM the lifeboat image
  # with checkout.toml and its vars file copied to /etc/lifeboat/.
  deploy_daemon             = true
  daemon_image              = "111122223333.dkr.ecr.us-east-2.amazonaws.com/checkout-lifeboat:1.0.0"
  daemon_ecr_repository_arn = "arn:aws:ecr:us-east-2:111122223333:repository/checkout-lifeboat"
  daemon_policy_path        = "/etc/lifeboat/checkout.toml"
  daemon_vpc_id             = "vpc-0123456789abcdef0"
  daemon_subnet_ids         = ["subnet-0123456789abcdef0", "subnet-0fedcba9876543210"]

  tags = {
    team = "payments"
  }
}

output "role_arn" {
  description = "The role lifeboat runs as."
  value       = module.lifeboat.role_arn
}

output "policy_vars_toml" {
  description = "The policy's vars file: terraform output -raw policy_vars_toml > checkout.vars.toml"
  value       = module.lifeboat.policy_vars_toml
}
