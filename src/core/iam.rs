//! The AWS IAM actions each probe kind and step kind calls — the one list the Terraform
//! policy is checked against.
//!
//! Invariant: an adapter calls an AWS API only if its kind lists the action here. When an
//! adapter starts calling a new API, add it here and grant it in `terraform/iam.tf`; the
//! Terraform test fails until both agree.

use std::collections::BTreeSet;

/// AWS actions per probe kind. Kinds that call no AWS API are absent.
pub const PROBE_ACTIONS: &[(&str, &[&str])] = &[
    // Canary round trip: put, read back, delete.
    ("s3", &["s3:PutObject", "s3:GetObject", "s3:DeleteObject"]),
    (
        "rds",
        &[
            "rds:DescribeDBInstances",
            "rds:DescribeDBClusters",
            "rds:DescribeGlobalClusters",
        ],
    ),
    // Heartbeats from an S3 object's LastModified (HeadObject needs s3:GetObject), or the
    // in-service count of an Auto Scaling group or ECS service.
    (
        "heartbeat",
        &[
            "s3:GetObject",
            "autoscaling:DescribeAutoScalingGroups",
            "ecs:DescribeServices",
        ],
    ),
];

/// AWS actions per step kind. Kinds that call no AWS API are absent.
pub const STEP_ACTIONS: &[(&str, &[&str])] = &[
    // The replica's lag before promoting: RDS publishes `ReplicaLag` to CloudWatch only.
    (
        "rds_promote_replica",
        &[
            "rds:DescribeDBInstances",
            "rds:PromoteReadReplica",
            "cloudwatch:GetMetricStatistics",
        ],
    ),
    (
        "aurora_global_failover",
        &[
            "rds:DescribeGlobalClusters",
            "rds:DescribeDBClusters",
            "rds:FailoverGlobalCluster",
        ],
    ),
    (
        "aurora_global_switchover",
        &[
            "rds:DescribeGlobalClusters",
            "rds:DescribeDBClusters",
            "rds:SwitchoverGlobalCluster",
        ],
    ),
    (
        "route53_switch",
        &[
            "route53:GetHealthCheck",
            "route53:UpdateHealthCheck",
            "route53:ListResourceRecordSets",
            "route53:ChangeResourceRecordSets",
            "route53:GetChange",
        ],
    ),
    (
        "asg_scale",
        &[
            "autoscaling:DescribeAutoScalingGroups",
            "autoscaling:UpdateAutoScalingGroup",
        ],
    ),
    ("ecs_scale", &["ecs:DescribeServices", "ecs:UpdateService"]),
    // The caller reference is fixed per run and step, so a repeated CreateInvalidation
    // returns the invalidation already made: no listing needed to find it after a crash.
    (
        "cloudfront_invalidate",
        &[
            "cloudfront:CreateInvalidation",
            "cloudfront:GetInvalidation",
        ],
    ),
    ("notify", &["sns:Publish"]),
    // List both buckets; CopyObject reads the source (GetObject) and writes the
    // destination (PutObject), and copies the object's tags with it, which takes
    // GetObjectTagging on the source and PutObjectTagging on the destination.
    (
        "s3_sync_check",
        &[
            "s3:ListBucket",
            "s3:GetObject",
            "s3:PutObject",
            "s3:GetObjectTagging",
            "s3:PutObjectTagging",
        ],
    ),
];

/// The actions of one probe kind (empty when it calls no AWS API).
pub fn probe_actions(kind: &str) -> &'static [&'static str] {
    lookup(PROBE_ACTIONS, kind)
}

/// The actions of one step kind (empty when it calls no AWS API).
pub fn step_actions(kind: &str) -> &'static [&'static str] {
    lookup(STEP_ACTIONS, kind)
}

/// Every action lifeboat may call, sorted and without duplicates.
pub fn all_actions() -> BTreeSet<&'static str> {
    PROBE_ACTIONS
        .iter()
        .chain(STEP_ACTIONS.iter())
        .flat_map(|(_, actions)| actions.iter().copied())
        .collect()
}

fn lookup(
    table: &'static [(&str, &'static [&'static str])],
    kind: &str,
) -> &'static [&'static str] {
    table
        .iter()
        .find(|(k, _)| *k == kind)
        .map(|(_, a)| *a)
        .unwrap_or(&[])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actions_are_service_prefixed_and_never_wildcards() {
        for action in all_actions() {
            let (service, name) = action.split_once(':').expect("service:Action");
            assert!(!service.is_empty() && !name.is_empty(), "{action}");
            assert!(!action.contains('*'), "{action} is a wildcard");
        }
    }
}
