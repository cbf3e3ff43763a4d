//! The closed set of step kinds and, in one table, what each kind is: the name policies
//! use, the kind of target it acts on, how long it may take by default, and the AWS IAM
//! actions its adapter calls.
//!
//! Adding a step kind means adding a variant here (the compiler then points at every
//! `match` that must learn it); nothing else keys on a kind's name.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::model::TargetKind;

#[derive(
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Debug,
    Serialize,
    Deserialize,
    schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum StepKind {
    RdsPromoteReplica,
    AuroraGlobalFailover,
    AuroraGlobalSwitchover,
    PostgresPromote,
    PostgresFence,
    PostgresCatchUp,
    Route53Switch,
    AsgScale,
    EcsScale,
    RedisInvalidate,
    CloudfrontInvalidate,
    Notify,
    S3SyncCheck,
    WaitHealthy,
    ManualApproval,
    Command,
}

/// One row of the table.
#[derive(Clone, Copy, Debug)]
pub struct KindInfo {
    /// As written in policies (`kind = "postgres_promote"`) and stored in the journal.
    pub name: &'static str,
    /// The kind of target the step acts on; `None` for steps that take no target.
    pub target: Option<TargetKind>,
    /// The step's deadline when the policy gives no `timeout`.
    pub default_timeout: Duration,
    /// The AWS IAM actions the adapter calls (the Terraform role is tested against
    /// these); empty when it calls no AWS API.
    pub iam: &'static [&'static str],
    /// The AWS IAM actions its readiness check calls: read actions only (`Describe…`,
    /// `Get…`, `List…`), some of them also in `iam`.
    pub readiness_iam: &'static [&'static str],
}

const fn mins(m: u64) -> Duration {
    Duration::from_secs(m * 60)
}

impl StepKind {
    pub const ALL: [StepKind; 16] = [
        StepKind::RdsPromoteReplica,
        StepKind::AuroraGlobalFailover,
        StepKind::AuroraGlobalSwitchover,
        StepKind::PostgresPromote,
        StepKind::PostgresFence,
        StepKind::PostgresCatchUp,
        StepKind::Route53Switch,
        StepKind::AsgScale,
        StepKind::EcsScale,
        StepKind::RedisInvalidate,
        StepKind::CloudfrontInvalidate,
        StepKind::Notify,
        StepKind::S3SyncCheck,
        StepKind::WaitHealthy,
        StepKind::ManualApproval,
        StepKind::Command,
    ];

    /// The table. A `match` rather than an array so that a new variant cannot compile
    /// without its row.
    pub const fn info(self) -> KindInfo {
        use TargetKind as T;
        match self {
            // The replica's lag before promoting: RDS publishes `ReplicaLag` to
            // CloudWatch only.
            StepKind::RdsPromoteReplica => KindInfo {
                name: "rds_promote_replica",
                target: Some(T::RdsInstance),
                default_timeout: mins(30),
                iam: &[
                    "rds:DescribeDBInstances",
                    "rds:PromoteReadReplica",
                    "cloudwatch:GetMetricStatistics",
                ],
                readiness_iam: &["rds:DescribeDBInstances", "cloudwatch:GetMetricStatistics"],
            },
            StepKind::AuroraGlobalFailover => KindInfo {
                name: "aurora_global_failover",
                target: Some(T::AuroraCluster),
                default_timeout: mins(30),
                iam: &[
                    "rds:DescribeGlobalClusters",
                    "rds:DescribeDBClusters",
                    "rds:FailoverGlobalCluster",
                ],
                readiness_iam: &["rds:DescribeGlobalClusters"],
            },
            StepKind::AuroraGlobalSwitchover => KindInfo {
                name: "aurora_global_switchover",
                target: Some(T::AuroraCluster),
                default_timeout: mins(30),
                iam: &[
                    "rds:DescribeGlobalClusters",
                    "rds:DescribeDBClusters",
                    "rds:SwitchoverGlobalCluster",
                ],
                readiness_iam: &["rds:DescribeGlobalClusters"],
            },
            StepKind::PostgresPromote => KindInfo {
                name: "postgres_promote",
                target: Some(T::Postgres),
                default_timeout: mins(5),
                iam: &[],
                readiness_iam: &[],
            },
            StepKind::PostgresFence => KindInfo {
                name: "postgres_fence",
                target: Some(T::Postgres),
                default_timeout: mins(1),
                iam: &[],
                readiness_iam: &[],
            },
            StepKind::PostgresCatchUp => KindInfo {
                name: "postgres_catch_up",
                target: Some(T::Postgres),
                default_timeout: mins(5),
                iam: &[],
                readiness_iam: &[],
            },
            StepKind::Route53Switch => KindInfo {
                name: "route53_switch",
                target: Some(T::Route53),
                default_timeout: mins(10),
                iam: &[
                    "route53:GetHealthCheck",
                    "route53:UpdateHealthCheck",
                    "route53:ListResourceRecordSets",
                    "route53:ChangeResourceRecordSets",
                    "route53:GetChange",
                ],
                readiness_iam: &["route53:ListResourceRecordSets", "route53:GetHealthCheck"],
            },
            StepKind::AsgScale => KindInfo {
                name: "asg_scale",
                target: Some(T::Asg),
                default_timeout: mins(10),
                iam: &[
                    "autoscaling:DescribeAutoScalingGroups",
                    "autoscaling:UpdateAutoScalingGroup",
                ],
                readiness_iam: &["autoscaling:DescribeAutoScalingGroups"],
            },
            StepKind::EcsScale => KindInfo {
                name: "ecs_scale",
                target: Some(T::Ecs),
                default_timeout: mins(10),
                iam: &["ecs:DescribeServices", "ecs:UpdateService"],
                readiness_iam: &["ecs:DescribeServices"],
            },
            StepKind::RedisInvalidate => KindInfo {
                name: "redis_invalidate",
                target: Some(T::Redis),
                default_timeout: mins(10),
                iam: &[],
                readiness_iam: &[],
            },
            // The caller reference is fixed per run and step, so a repeated
            // CreateInvalidation returns the invalidation already made: no listing needed
            // to find it after a crash.
            StepKind::CloudfrontInvalidate => KindInfo {
                name: "cloudfront_invalidate",
                target: Some(T::Cloudfront),
                default_timeout: mins(30),
                iam: &[
                    "cloudfront:CreateInvalidation",
                    "cloudfront:GetInvalidation",
                ],
                readiness_iam: &["cloudfront:GetDistribution"],
            },
            StepKind::Notify => KindInfo {
                name: "notify",
                target: None,
                default_timeout: mins(1),
                iam: &["sns:Publish"],
                readiness_iam: &["sns:GetTopicAttributes"],
            },
            // List both buckets; CopyObject reads the source (GetObject) and writes the
            // destination (PutObject), and copies the object's tags with it, which takes
            // GetObjectTagging on the source and PutObjectTagging on the destination.
            StepKind::S3SyncCheck => KindInfo {
                name: "s3_sync_check",
                target: Some(T::S3),
                default_timeout: mins(10),
                iam: &[
                    "s3:ListBucket",
                    "s3:GetObject",
                    "s3:PutObject",
                    "s3:GetObjectTagging",
                    "s3:PutObjectTagging",
                ],
                readiness_iam: &[
                    "s3:ListBucket",
                    "s3:GetReplicationConfiguration",
                    "s3:GetBucketVersioning",
                ],
            },
            StepKind::WaitHealthy => KindInfo {
                name: "wait_healthy",
                target: None,
                default_timeout: mins(10),
                iam: &[],
                readiness_iam: &[],
            },
            StepKind::ManualApproval => KindInfo {
                name: "manual_approval",
                target: None,
                default_timeout: mins(24 * 60),
                iam: &[],
                readiness_iam: &[],
            },
            StepKind::Command => KindInfo {
                name: "command",
                target: None,
                default_timeout: mins(10),
                iam: &[],
                readiness_iam: &[],
            },
        }
    }

    pub const fn name(self) -> &'static str {
        self.info().name
    }

    /// The kind policies call `name`, if there is one.
    pub fn from_name(name: &str) -> Option<StepKind> {
        StepKind::ALL.into_iter().find(|k| k.name() == name)
    }

    pub fn names() -> impl Iterator<Item = &'static str> {
        StepKind::ALL.into_iter().map(StepKind::name)
    }

    /// Makes the region it acts in the writable database.
    pub fn promotes_database(self) -> bool {
        matches!(
            self,
            StepKind::RdsPromoteReplica
                | StepKind::AuroraGlobalFailover
                | StepKind::AuroraGlobalSwitchover
                | StepKind::PostgresPromote
        )
    }

    pub fn moves_dns(self) -> bool {
        self == StepKind::Route53Switch
    }
}

impl fmt::Display for StepKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_has_one_name_that_reads_back_and_matches_serde() {
        let mut seen = std::collections::BTreeSet::new();
        for k in StepKind::ALL {
            assert!(seen.insert(k.name()), "{} twice", k.name());
            assert_eq!(StepKind::from_name(k.name()), Some(k));
            let json = serde_json::to_string(&k).expect("serialize");
            assert_eq!(json, format!("\"{}\"", k.name()));
        }
        assert_eq!(StepKind::from_name("dns_switch"), None);
    }
}
