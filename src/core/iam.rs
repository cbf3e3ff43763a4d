//! The AWS IAM actions each probe kind and step kind calls — the one list the Terraform
//! policy is checked against. Step kinds keep theirs in the step kind table
//! (`core::kind`); probe kinds here.
//!
//! Invariant: an adapter calls an AWS API only if its kind lists the action. When an
//! adapter starts calling a new API, add it there and grant it in `terraform/iam.tf`; the
//! Terraform test fails until both agree.

use std::collections::BTreeSet;

use super::kind::StepKind;

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

/// The actions of one probe kind (empty when it calls no AWS API).
pub fn probe_actions(kind: &str) -> &'static [&'static str] {
    lookup(PROBE_ACTIONS, kind)
}

/// The actions of one step kind (empty when it calls no AWS API), from the step kind
/// table.
pub fn step_actions(kind: StepKind) -> &'static [&'static str] {
    kind.info().iam
}

/// Every action lifeboat may call, sorted and without duplicates.
pub fn all_actions() -> BTreeSet<&'static str> {
    PROBE_ACTIONS
        .iter()
        .flat_map(|(_, actions)| actions.iter().copied())
        .chain(StepKind::ALL.into_iter().flat_map(step_actions).copied())
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
