# Inputs of the lifeboat module: the service's name and regions, the DNS record pair,
# and the application resources lifeboat may probe and act on.
#
# Every name here ends up inside an IAM ARN, so every validation also refuses `*`, `?`
# and `:`: a wildcard smuggled in through a name would silently widen the grant, and a
# colon would change which part of the ARN the name lands in.

variable "name" {
  description = "Short name of the protected service, e.g. \"checkout\". Prefixes every resource the module creates (role, topic, buckets, health checks)."
  type        = string

  validation {
    # 18 characters keep the derived bucket names (name + suffix + account + region)
    # under S3's 63-character limit.
    condition     = can(regex("^[a-z][a-z0-9-]{0,16}[a-z0-9]$", var.name))
    error_message = "name must be 2-18 lowercase letters, digits or hyphens, starting with a letter and not ending with a hyphen."
  }
}

variable "primary_region" {
  description = "AWS region where the service normally runs, e.g. \"us-east-1\". Fills `[regions] primary` of the policy."
  type        = string

  validation {
    condition     = can(regex("^[a-z]{2}(-gov|-iso[a-z]?)?-[a-z]+-[0-9]+$", var.primary_region))
    error_message = "primary_region must be an AWS region code such as us-east-1."
  }
}

variable "secondary_region" {
  description = "AWS region lifeboat fails over to, e.g. \"us-west-2\". Fills `[regions] secondaries` of the policy."
  type        = string

  validation {
    condition     = can(regex("^[a-z]{2}(-gov|-iso[a-z]?)?-[a-z]+-[0-9]+$", var.secondary_region))
    error_message = "secondary_region must be an AWS region code such as us-west-2."
  }
}

variable "trusted_principal_arns" {
  description = "IAM roles or users (ARNs) allowed to assume the lifeboat role, e.g. the on-call operators' role for the manual CLI, or the role of a host that runs the daemon. At least one is needed unless deploy_daemon is true."
  type        = list(string)
  default     = []

  validation {
    condition = alltrue([
      for arn in var.trusted_principal_arns :
      can(regex("^arn:aws[a-z-]*:iam::[0-9]{12}:(root|role/[A-Za-z0-9+=,.@_/-]+|user/[A-Za-z0-9+=,.@_/-]+)$", arn))
    ])
    error_message = "trusted_principal_arns must hold IAM role, user or account-root ARNs, without wildcards."
  }
}

# --- DNS: the failover record pair and its switch ---------------------------------

variable "route53_zone_id" {
  description = "ID of the Route 53 hosted zone that holds the service's record, e.g. \"Z0123456789ABCDEFGHIJ\". The failover record pair is created in it."
  type        = string

  validation {
    condition     = can(regex("^Z[A-Z0-9]{1,31}$", var.route53_zone_id))
    error_message = "route53_zone_id must be a hosted zone ID such as Z0123456789ABCDEFGHIJ (no /hostedzone/ prefix)."
  }
}

variable "record_name" {
  description = "Fully qualified name clients resolve, lowercase and without the trailing dot, e.g. \"checkout.example.com\". lifeboat may change only this name in the zone."
  type        = string

  validation {
    # Lowercase and dot-less because that is the form Route 53 compares against the
    # route53:ChangeResourceRecordSetsNormalizedRecordNames condition in iam.tf.
    condition     = can(regex("^([a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?\\.)+[a-z][a-z0-9-]{0,61}[a-z0-9]$", var.record_name)) && length(var.record_name) <= 253
    error_message = "record_name must be a lowercase fully qualified domain name without a trailing dot or wildcard, e.g. checkout.example.com."
  }
}

variable "record_type" {
  description = "Type of the failover records: CNAME when the regional endpoints are host names (load balancers, API gateways), A or AAAA when they are addresses."
  type        = string
  default     = "CNAME"

  validation {
    condition     = contains(["A", "AAAA", "CNAME"], var.record_type)
    error_message = "record_type must be A, AAAA or CNAME."
  }
}

variable "record_ttl" {
  description = "TTL in seconds of the failover records. Resolvers keep answering the old region for up to this long after a switch, so it bounds the DNS part of the RTO."
  type        = number
  default     = 60

  validation {
    condition     = var.record_ttl >= 1 && var.record_ttl <= 300 && floor(var.record_ttl) == var.record_ttl
    error_message = "record_ttl must be a whole number of seconds between 1 and 300; a longer TTL defeats a fast failover."
  }
}

variable "primary_endpoint" {
  description = "Value of the PRIMARY record: the primary region's endpoint (a host name for CNAME, an address for A/AAAA), e.g. \"use1.checkout.example.com\"."
  type        = string

  validation {
    condition     = can(regex("^[A-Za-z0-9][A-Za-z0-9.:-]{0,252}$", var.primary_endpoint))
    error_message = "primary_endpoint must be a host name or an IP address."
  }
}

variable "secondary_endpoint" {
  description = "Value of the SECONDARY record: the secondary region's endpoint, e.g. \"usw2.checkout.example.com\"."
  type        = string

  validation {
    condition     = can(regex("^[A-Za-z0-9][A-Za-z0-9.:-]{0,252}$", var.secondary_endpoint))
    error_message = "secondary_endpoint must be a host name or an IP address."
  }
}

variable "endpoint_health_checks" {
  description = "Whether to create an HTTPS Route 53 health check of each regional endpoint. They give an outside view (CloudWatch metric HealthCheckStatus) for dashboards and alarms; they never steer traffic, lifeboat's own probes decide."
  type        = bool
  default     = true
}

variable "endpoint_health_check_path" {
  description = "Path the endpoint health checks request, e.g. \"/healthz\"."
  type        = string
  default     = "/healthz"

  validation {
    condition     = can(regex("^/[A-Za-z0-9._~!$&'()+,;=:@/?%-]{0,254}$", var.endpoint_health_check_path))
    error_message = "endpoint_health_check_path must start with / and be at most 255 characters."
  }
}

variable "endpoint_health_check_port" {
  description = "TCP port of the endpoint health checks."
  type        = number
  default     = 443

  validation {
    condition     = var.endpoint_health_check_port >= 1 && var.endpoint_health_check_port <= 65535 && floor(var.endpoint_health_check_port) == var.endpoint_health_check_port
    error_message = "endpoint_health_check_port must be a port number between 1 and 65535."
  }
}

# --- Application resources lifeboat probes and acts on ----------------------------
# Each list is empty by default; a kind of resource the service does not use gets no
# statement in the policy at all.

variable "rds_instances" {
  description = "RDS DB instances (primary and cross-region read replica) lifeboat describes and promotes: one entry per region, e.g. [{ region = \"eu-central-1\", id = \"ledger-primary\" }]. Fills `regions.<region>.instance_id` of an rds_instance target."
  type = list(object({
    region = string
    id     = string
  }))
  default = []

  validation {
    condition = alltrue([
      for i in var.rds_instances :
      can(regex("^[a-z]{2}(-gov|-iso[a-z]?)?-[a-z]+-[0-9]+$", i.region)) && can(regex("^[A-Za-z][A-Za-z0-9-]{0,62}$", i.id))
    ])
    error_message = "Each rds_instances entry needs an AWS region code and a DB instance identifier (letters, digits, hyphens; 1-63 characters; starts with a letter)."
  }
}

variable "aurora_global_cluster_id" {
  description = "Identifier of the Aurora global database lifeboat fails over or switches over, e.g. \"checkout-global\". Fills `global_cluster_id` of an aurora_cluster target. Null when the service has none."
  type        = string
  default     = null

  validation {
    condition     = var.aurora_global_cluster_id == null || can(regex("^[A-Za-z][A-Za-z0-9-]{0,62}$", coalesce(var.aurora_global_cluster_id, "x")))
    error_message = "aurora_global_cluster_id must be a global cluster identifier (letters, digits, hyphens; 1-63 characters)."
  }
}

variable "aurora_clusters" {
  description = "Regional Aurora clusters of the global database, one per region, e.g. [{ region = \"us-east-1\", id = \"checkout-use1\" }]. Fills `regions.<region>.cluster_id` of an aurora_cluster target."
  type = list(object({
    region = string
    id     = string
  }))
  default = []

  validation {
    condition = alltrue([
      for c in var.aurora_clusters :
      can(regex("^[a-z]{2}(-gov|-iso[a-z]?)?-[a-z]+-[0-9]+$", c.region)) && can(regex("^[A-Za-z][A-Za-z0-9-]{0,62}$", c.id))
    ])
    error_message = "Each aurora_clusters entry needs an AWS region code and a DB cluster identifier (letters, digits, hyphens; 1-63 characters)."
  }
}

variable "autoscaling_groups" {
  description = "Auto Scaling groups of the workers lifeboat describes and resizes, one entry per group, e.g. [{ region = \"us-west-2\", name = \"checkout-workers-usw2\" }]. Fills `regions.<region>.group` of an asg target."
  type = list(object({
    region = string
    name   = string
  }))
  default = []

  validation {
    condition = alltrue([
      for g in var.autoscaling_groups :
      can(regex("^[a-z]{2}(-gov|-iso[a-z]?)?-[a-z]+-[0-9]+$", g.region)) && can(regex("^[A-Za-z0-9._ -]{1,255}$", g.name))
    ])
    error_message = "Each autoscaling_groups entry needs an AWS region code and a group name of letters, digits, dots, underscores, spaces or hyphens (no wildcards or colons)."
  }
}

variable "ecs_services" {
  description = "ECS services of the workers lifeboat describes and resizes, e.g. [{ region = \"eu-west-1\", cluster = \"ledger-euw1\", service = \"ledger-workers\" }]. Fills `regions.<region>.cluster` and `.service` of an ecs target."
  type = list(object({
    region  = string
    cluster = string
    service = string
  }))
  default = []

  validation {
    condition = alltrue([
      for s in var.ecs_services :
      can(regex("^[a-z]{2}(-gov|-iso[a-z]?)?-[a-z]+-[0-9]+$", s.region)) && can(regex("^[A-Za-z0-9_-]{1,255}$", s.cluster)) && can(regex("^[A-Za-z0-9_-]{1,255}$", s.service))
    ])
    error_message = "Each ecs_services entry needs an AWS region code, a cluster name and a service name (letters, digits, hyphens, underscores)."
  }
}

variable "s3_buckets" {
  description = <<-EOT
    Application buckets lifeboat probes and compares, one entry per bucket, e.g.
    [{ name = "checkout-assets-use1" }]. canary_prefix (default "lifeboat/") bounds the
    s3 probe's put/read/delete round trip and must match the target's `prefix`;
    data_prefix (default "", the whole bucket) bounds what heartbeat probes read and
    s3_sync_check lists, reads and copies. lifeboat can delete nothing outside
    canary_prefix. Fills `regions.<region>.bucket` of an s3 target.
  EOT
  type = list(object({
    name          = string
    canary_prefix = optional(string, "lifeboat/")
    data_prefix   = optional(string, "")
  }))
  default = []

  validation {
    condition = alltrue([
      for b in var.s3_buckets :
      can(regex("^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$", b.name)) && can(regex("^[^*?]{1,512}$", b.canary_prefix)) && can(regex("^[^*?]{0,512}$", b.data_prefix))
    ])
    error_message = "Each s3_buckets entry needs a valid bucket name; canary_prefix must be non-empty and neither prefix may contain * or ?."
  }
}

variable "cloudfront_distribution_ids" {
  description = "CloudFront distributions lifeboat invalidates after a switch, e.g. [\"E2QWRUHAPOMQZL\"]. Fills `distribution_id` of a cloudfront target."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for id in var.cloudfront_distribution_ids : can(regex("^[A-Z0-9]{8,32}$", id))])
    error_message = "cloudfront_distribution_ids must hold distribution IDs (uppercase letters and digits), e.g. E2QWRUHAPOMQZL."
  }
}

# --- Storage and housekeeping ------------------------------------------------------

variable "reports_retention_days" {
  description = "Days a drill report or journal backup is kept in the reports bucket before it expires."
  type        = number
  default     = 400

  validation {
    condition     = var.reports_retention_days >= 30 && floor(var.reports_retention_days) == var.reports_retention_days
    error_message = "reports_retention_days must be a whole number of days, at least 30."
  }
}

variable "tags" {
  description = "Tags added to every resource the module creates."
  type        = map(string)
  default     = {}

  validation {
    condition     = alltrue([for k in keys(var.tags) : !startswith(k, "aws:") && length(k) <= 128])
    error_message = "Tag keys must not start with aws: and must be at most 128 characters."
  }
}
