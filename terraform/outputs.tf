# Outputs of the lifeboat module, named after the policy fields they fill (README.md
# has the full table). `policy_vars_toml` renders them all as a lifeboat vars file:
#
#   terraform output -raw policy_vars_toml > /etc/lifeboat/checkout.vars.toml
#
# and a policy reads them with `[vars] file = "checkout.vars.toml"` and `${name}`.

output "role_arn" {
  description = "ARN of the role lifeboat runs as. Not a policy field: give it to the host or profile that runs lifeboat (e.g. role_arn in the AWS profile named by `[aws] profile`)."
  value       = aws_iam_role.lifeboat.arn
}

output "primary_region" {
  description = "Fills `[regions] primary`."
  value       = var.primary_region
}

output "secondary_region" {
  description = "Fills `[regions] secondaries` (as its only element)."
  value       = var.secondary_region
}

output "route53_zone_id" {
  description = "Fills `[targets.<dns>] zone_id` of the route53 target."
  value       = var.route53_zone_id
}

output "record_name" {
  description = "Fills `[targets.<dns>] record_name` (fully qualified, with the trailing dot)."
  value       = "${var.record_name}."
}

output "record_type" {
  description = "Fills `[targets.<dns>] record_type`."
  value       = var.record_type
}

output "record_ttl" {
  description = "Fills `[targets.<dns>] ttl`."
  value       = var.record_ttl
}

output "primary_set_identifier" {
  description = "Fills `[targets.<dns>] regions.<primary_region>.set_identifier` (the PRIMARY failover record)."
  value       = aws_route53_record.primary.set_identifier
}

output "secondary_set_identifier" {
  description = "Fills `[targets.<dns>] regions.<secondary_region>.set_identifier` (the SECONDARY failover record)."
  value       = aws_route53_record.secondary.set_identifier
}

output "switch_health_check_id" {
  description = "Fills `[targets.<dns>] regions.<region>.health_check_id` in both regions: the switch health check attached to the PRIMARY record, which lifeboat inverts."
  value       = aws_route53_health_check.switch.id
}

output "endpoint_health_check_ids" {
  description = "IDs of the HTTPS health checks of the regional endpoints, keyed primary/secondary (empty when endpoint_health_checks is false). Not a policy field: for dashboards and alarms."
  value       = { for k, hc in aws_route53_health_check.endpoint : k => hc.id }
}

output "sns_topic_arn" {
  description = "Fills `[channels.<name>] topic_arn` of a `kind = \"sns\"` channel."
  value       = aws_sns_topic.notifications.arn
}

output "reports_bucket" {
  description = "Bucket for run reports and journal backups, in the control region. Fills `[reports] s3 = \"s3://<bucket>/lifeboat/\"`."
  value       = aws_s3_bucket.reports.bucket
}

locals {
  # Everything a policy can take from this module, under the names used in `${...}`.
  policy_vars = {
    primary_region           = var.primary_region
    secondary_region         = var.secondary_region
    route53_zone_id          = var.route53_zone_id
    record_name              = "${var.record_name}."
    record_type              = var.record_type
    record_ttl               = var.record_ttl
    primary_set_identifier   = aws_route53_record.primary.set_identifier
    secondary_set_identifier = aws_route53_record.secondary.set_identifier
    switch_health_check_id   = aws_route53_health_check.switch.id
    sns_topic_arn            = aws_sns_topic.notifications.arn
    reports_bucket           = aws_s3_bucket.reports.bucket
    role_arn                 = aws_iam_role.lifeboat.arn
  }
}

output "policy_vars" {
  description = "The values above as one map, keyed by the variable names the README's policy snippet uses."
  value       = local.policy_vars
}

output "policy_vars_toml" {
  description = "policy_vars as a lifeboat vars file (name = value lines). JSON string and number literals are valid TOML, so jsonencode quotes and escapes each value."
  value       = join("", [for k in sort(keys(local.policy_vars)) : "${k} = ${jsonencode(local.policy_vars[k])}\n"])
}
