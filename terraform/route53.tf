# The DNS half of a failover: a pre-created PRIMARY/SECONDARY failover record pair and
# the switch health check lifeboat inverts to move traffic (`route53_switch`, style
# `failover_pair`).
#
# Why a switch and not a record edit: the records are written once, here, and never
# change. Route 53's resolvers answer PRIMARY while the health check attached to it is
# healthy and SECONDARY otherwise; that decision runs in Route 53's data plane, in
# every edge location. A failover is one small UpdateHealthCheck call (Inverted =
# true) and a failback is the same call with false: no ChangeResourceRecordSets, no
# record to get wrong under pressure, no change batch to wait on.
#
# Why a CALCULATED check with threshold 0 and not an HTTPS check of the primary: a
# check with threshold 0 is healthy by definition, whatever happens to the endpoints,
# so its state is lifeboat's decision alone. Inverting an HTTPS check of the primary
# would send traffic *back* to the primary exactly when the primary is down (a failing
# check, inverted, reads healthy), and Route 53 would fail over by itself on a blip,
# before lifeboat promoted the database. lifeboat decides with its quorum, RPO gate
# and cooldown; Route 53 follows.

resource "aws_route53_health_check" "switch" {
  type                   = "CALCULATED"
  child_health_threshold = 0
  child_healthchecks     = []
  invert_healthcheck     = false

  tags = merge(local.common_tags, {
    Name = "${var.name}-lifeboat-switch"
  })

  lifecycle {
    # lifeboat owns this flag after creation. Without this, the next `terraform
    # apply` during an outage would "correct" it and silently fail traffic back to
    # the dead primary.
    ignore_changes = [invert_healthcheck]
  }
}

resource "aws_route53_record" "primary" {
  zone_id         = var.route53_zone_id
  name            = var.record_name
  type            = var.record_type
  ttl             = var.record_ttl
  records         = [var.primary_endpoint]
  set_identifier  = local.primary_set_identifier
  health_check_id = aws_route53_health_check.switch.id

  failover_routing_policy {
    type = "PRIMARY"
  }
}

# No health check on SECONDARY, deliberately: when PRIMARY is unhealthy Route 53
# answers SECONDARY as long as SECONDARY is not itself unhealthy, and if both were
# unhealthy it would fall back to PRIMARY. lifeboat checks the secondary before
# switching; Route 53 must not second-guess it.
resource "aws_route53_record" "secondary" {
  zone_id        = var.route53_zone_id
  name           = var.record_name
  type           = var.record_type
  ttl            = var.record_ttl
  records        = [var.secondary_endpoint]
  set_identifier = local.secondary_set_identifier

  failover_routing_policy {
    type = "SECONDARY"
  }
}

# An outside view of each regional endpoint from Route 53's checkers around the world,
# for dashboards and alarms. They are attached to no record: they inform people,
# lifeboat's probes decide.
resource "aws_route53_health_check" "endpoint" {
  for_each = var.endpoint_health_checks ? {
    primary   = var.primary_endpoint
    secondary = var.secondary_endpoint
  } : {}

  type              = "HTTPS"
  fqdn              = var.record_type == "CNAME" ? each.value : null
  ip_address        = var.record_type == "CNAME" ? null : each.value
  port              = var.endpoint_health_check_port
  resource_path     = var.endpoint_health_check_path
  failure_threshold = 3
  request_interval  = 30
  enable_sni        = var.record_type == "CNAME"

  tags = merge(local.common_tags, {
    Name = "${var.name}-lifeboat-${each.key}-endpoint"
  })
}
