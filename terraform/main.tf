# Shared lookups and the ARNs every other file builds from the inputs.
#
# ARNs are assembled here, in one place, from validated names, so iam.tf reads as a
# list of grants and the formats can be checked against the Service Authorization
# Reference at a glance.

data "aws_caller_identity" "current" {}

data "aws_partition" "current" {}

# The control region: where the provider given to this module points, and where the
# topic, the buckets and (optionally) the daemon live.
data "aws_region" "current" {}

locals {
  partition      = data.aws_partition.current.partition
  account_id     = data.aws_caller_identity.current.account_id
  control_region = data.aws_region.current.id

  common_tags = merge(var.tags, {
    "lifeboat:service" = var.name
  })

  # Route 53 record set identifiers of the failover pair; the policy's
  # regions.<region>.set_identifier take these values (outputs.tf).
  primary_set_identifier   = "${var.name}-${var.primary_region}"
  secondary_set_identifier = "${var.name}-${var.secondary_region}"

  hosted_zone_arn = "arn:${local.partition}:route53:::hostedzone/${var.route53_zone_id}"

  rds_instance_arns = [
    for i in var.rds_instances : "arn:${local.partition}:rds:${i.region}:${local.account_id}:db:${i.id}"
  ]

  aurora_cluster_arns = [
    for c in var.aurora_clusters : "arn:${local.partition}:rds:${c.region}:${local.account_id}:cluster:${c.id}"
  ]

  # Global clusters have no region in their ARN.
  aurora_global_cluster_arns = var.aurora_global_cluster_id == null ? [] : [
    "arn:${local.partition}:rds::${local.account_id}:global-cluster:${var.aurora_global_cluster_id}"
  ]

  # The group's UUID sits between the type and the name and changes if the group is
  # recreated; matching any UUID keeps the grant on the group's name.
  autoscaling_group_arns = [
    for g in var.autoscaling_groups :
    "arn:${local.partition}:autoscaling:${g.region}:${local.account_id}:autoScalingGroup:*:autoScalingGroupName/${g.name}"
  ]

  ecs_service_arns = [
    for s in var.ecs_services : "arn:${local.partition}:ecs:${s.region}:${local.account_id}:service/${s.cluster}/${s.service}"
  ]

  cloudfront_distribution_arns = [
    for id in var.cloudfront_distribution_ids : "arn:${local.partition}:cloudfront::${local.account_id}:distribution/${id}"
  ]

  # Application buckets keyed by position, so dynamic statements get stable keys.
  s3_buckets = { for i, b in var.s3_buckets : tostring(i) => b }
}
