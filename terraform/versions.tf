# Terraform and provider versions the lifeboat module is written against.
#
# The module takes one AWS provider: the control region, where lifeboat itself runs
# (a third region, apart from the application's primary and secondary). Route 53,
# IAM and CloudFront are global services, so nothing else needs a regional provider;
# the application's regions enter only as names inside ARNs.

terraform {
  required_version = ">= 1.5.0"

  required_providers {
    aws = {
      source = "hashicorp/aws"
      # 5.x introduced the split S3 bucket resources used in storage.tf.
      version = ">= 5.40, < 7.0"
    }
  }
}
