//! The AWS paths moto cannot play, with the SDK's scripted-response test utilities
//! (aws-smithy-mocks): each rule answers one API call with a response built from the
//! shapes in the AWS API reference (field names and values as documented there), so the
//! adapters' real request building and response handling run, without a server.
//!
//! Covered here: Aurora FailoverGlobalCluster / SwitchoverGlobalCluster (moto answers
//! an HTML 500), a replica promotion that finishes (moto keeps the replica source set),
//! RDS replication that stopped, the replica's `ReplicaLag` from CloudWatch (the SDK
//! speaks CloudWatch's CBOR protocol, which moto does not), ECS tasks that start one
//! poll after UpdateService (moto reports them running at once), and CloudFront
//! answering a repeated caller reference with the invalidation it already made (moto
//! creates another).

#[path = "support/action_helpers.rs"]
#[macro_use]
mod helpers;
mod support;

use aws_sdk_rds::operation::describe_db_instances::DescribeDbInstancesOutput;
use aws_sdk_rds::operation::describe_global_clusters::DescribeGlobalClustersOutput;
use aws_sdk_rds::operation::failover_global_cluster::FailoverGlobalClusterOutput;
use aws_sdk_rds::operation::promote_read_replica::PromoteReadReplicaOutput;
use aws_sdk_rds::operation::switchover_global_cluster::SwitchoverGlobalClusterOutput;
use aws_sdk_rds::types::{
    DbInstance, DbInstanceStatusInfo, FailoverState, FailoverStatus, GlobalCluster,
    GlobalClusterMember,
};
use aws_smithy_mocks::{RuleMode, mock};
use helpers::{Ran, SECONDARY, ctx, drive};
use lifeboat::action::cache::CloudfrontInvalidate;
use lifeboat::action::rds::{AuroraGlobal, PromoteReplica};
use lifeboat::action::scale::Ecs;
use lifeboat::core::model::AuroraEndpoint;
use lifeboat::core::step::ErrorClass;
use lifeboat::runbook::Step;

// ---------------------------------------------------------------- RDS read replica

/// DescribeDBInstances' `DBInstance` for the replica: `DBInstanceStatus`,
/// `ReadReplicaSourceDBInstanceIdentifier` while it is a replica, and the
/// `StatusInfos` entry of type `read replication` (`replicating`, `error`, `stopped`).
fn replica(
    status: &str,
    source: Option<&str>,
    replication: Option<(&str, bool)>,
) -> DescribeDbInstancesOutput {
    let db = DbInstance::builder()
        .db_instance_identifier("ledger-replica-euw1")
        .db_instance_status(status)
        .engine("postgres")
        .set_read_replica_source_db_instance_identifier(source.map(str::to_string))
        .set_status_infos(replication.map(|(s, normal)| {
            vec![
                DbInstanceStatusInfo::builder()
                    .status_type("read replication")
                    .status(s)
                    .normal(normal)
                    .build(),
            ]
        }))
        .build();
    DescribeDbInstancesOutput::builder()
        .db_instances(db)
        .build()
}

fn promoted() -> PromoteReadReplicaOutput {
    PromoteReadReplicaOutput::builder()
        .db_instance(
            DbInstance::builder()
                .db_instance_identifier("ledger-replica-euw1")
                .db_instance_status("modifying")
                .build(),
        )
        .build()
}

/// GetMetricStatistics' answer for `ReplicaLag`: `Datapoints`, each with a `Timestamp`,
/// the `Maximum` asked for and `Unit` Seconds.
fn replica_lag(
    seconds: &[f64],
) -> aws_sdk_cloudwatch::operation::get_metric_statistics::GetMetricStatisticsOutput {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64;
    let mut out =
        aws_sdk_cloudwatch::operation::get_metric_statistics::GetMetricStatisticsOutput::builder()
            .label("ReplicaLag");
    // Oldest first, and not sorted by size: the adapter must pick the newest.
    for (i, s) in seconds.iter().enumerate() {
        out = out.datapoints(
            aws_sdk_cloudwatch::types::Datapoint::builder()
                .timestamp(aws_sdk_cloudwatch::primitives::DateTime::from_secs(
                    now - 60 * (seconds.len() - i) as i64,
                ))
                .maximum(*s)
                .unit(aws_sdk_cloudwatch::types::StandardUnit::Seconds)
                .build(),
        );
    }
    out.build()
}

/// A CloudWatch client whose GetMetricStatistics for the replica answers `seconds`.
fn cloudwatch(seconds: &'static [f64]) -> (aws_sdk_cloudwatch::Client, aws_smithy_mocks::Rule) {
    let rule = mock!(aws_sdk_cloudwatch::Client::get_metric_statistics)
        .match_requests(|r| {
            r.namespace() == Some("AWS/RDS")
                && r.metric_name() == Some("ReplicaLag")
                && r.dimensions().iter().any(|d| {
                    d.name() == Some("DBInstanceIdentifier")
                        && d.value() == Some("ledger-replica-euw1")
                })
        })
        .then_output(move || replica_lag(seconds));
    (
        mocked!(aws_sdk_cloudwatch, RuleMode::MatchAny, [&rule]),
        rule,
    )
}

/// AWS clears `ReadReplicaSourceDBInstanceIdentifier` when the promotion finishes (the
/// instance goes `modifying`, then `available`); moto never does.
#[tokio::test]
async fn a_replica_promotion_finishes_when_the_instance_is_available_and_standalone() {
    let source = Some("ledger-primary");
    let describe = mock!(aws_sdk_rds::Client::describe_db_instances)
        .match_requests(|r| r.db_instance_identifier() == Some("ledger-replica-euw1"))
        .sequence()
        .output(move || replica("available", source, Some(("replicating", true))))
        .times(2) // check, then apply's look before promoting
        .output(move || replica("modifying", source, Some(("replicating", true))))
        .output(|| replica("available", None, None))
        .repeatedly()
        .build();
    let promote = mock!(aws_sdk_rds::Client::promote_read_replica)
        .match_requests(|r| r.db_instance_identifier() == Some("ledger-replica-euw1"))
        .then_output(promoted);
    let client = mocked!(aws_sdk_rds, RuleMode::MatchAny, [&describe, &promote]);
    let (cw, lag) = cloudwatch(&[9.0, 30.0, 0.8]);
    let step = PromoteReplica::new(client, cw, "ledger-replica-euw1", "eu-west-1", "ledger-db");
    let c = ctx("promote-replica", SECONDARY);
    let ran = drive(&step, &c).await.expect("promote");
    let Ran::Applied(applied, verified) = &ran else {
        panic!("{ran:?}")
    };
    assert_eq!(
        applied,
        "PromoteReadReplica accepted for RDS instance `ledger-replica-euw1` in eu-west-1 (replication replicating, lag 800ms)"
    );
    assert_eq!(lag.num_calls(), 1);
    assert_eq!(
        verified,
        "RDS instance `ledger-replica-euw1` in eu-west-1 is available and no longer a replica"
    );
    assert_eq!(promote.num_calls(), 1);
    let again = drive(&step, &c).await.expect("again");
    assert!(matches!(again, Ran::AlreadyDone(_)), "{again:?}");
    assert_eq!(
        promote.num_calls(),
        1,
        "a promoted instance is not promoted again"
    );
}

#[tokio::test]
async fn a_replica_whose_replication_stopped_is_promoted_only_once_data_loss_is_accepted() {
    let describe = mock!(aws_sdk_rds::Client::describe_db_instances)
        .then_output(|| replica("available", Some("ledger-primary"), Some(("error", false))));
    let promote = mock!(aws_sdk_rds::Client::promote_read_replica).then_output(promoted);
    let client = mocked!(aws_sdk_rds, RuleMode::MatchAny, [&describe, &promote]);
    // RDS reports -1 while replication is broken.
    let (cw, _) = cloudwatch(&[-1.0]);
    let step = PromoteReplica::new(client, cw, "ledger-replica-euw1", "eu-west-1", "ledger-db");
    let mut c = ctx("promote-replica", SECONDARY);
    let e = step.apply(&c).await.expect_err("needs approval");
    assert_eq!(e.class, ErrorClass::NeedsApproval);
    assert_eq!(
        e.message,
        "replication of RDS instance `ledger-replica-euw1` in eu-west-1 is `error`, so its lag is unknown and writes may be lost — approve with --allow-data-loss to accept"
    );
    assert_eq!(promote.num_calls(), 0);
    c.allow_data_loss = true;
    let applied = step.apply(&c).await.expect("accepted");
    assert!(
        applied
            .detail
            .ends_with("(replication error, data loss accepted, lag unknown: ReplicaLag is -1)"),
        "{}",
        applied.detail
    );
    assert_eq!(promote.num_calls(), 1);
}

#[tokio::test]
async fn a_replica_lagging_past_the_rpo_budget_waits_for_approval() {
    let describe = mock!(aws_sdk_rds::Client::describe_db_instances).then_output(|| {
        replica(
            "available",
            Some("ledger-primary"),
            Some(("replicating", true)),
        )
    });
    let promote = mock!(aws_sdk_rds::Client::promote_read_replica).then_output(promoted);
    let client = mocked!(aws_sdk_rds, RuleMode::MatchAny, [&describe, &promote]);
    let (cw, _) = cloudwatch(&[2.0, 42.0]);
    let step = PromoteReplica::new(client, cw, "ledger-replica-euw1", "eu-west-1", "ledger-db");
    let mut c = ctx("promote-replica", SECONDARY);
    let e = step.apply(&c).await.expect_err("over budget");
    assert_eq!(e.class, ErrorClass::NeedsApproval);
    assert_eq!(
        e.message,
        "replica lag 42s on RDS instance `ledger-replica-euw1` in eu-west-1 exceeds the RPO budget 5s — approve with --allow-data-loss to accept losing the writes not yet replicated"
    );
    assert_eq!(promote.num_calls(), 0);
    c.allow_data_loss = true;
    let applied = step.apply(&c).await.expect("accepted");
    assert!(
        applied
            .detail
            .ends_with("(replication replicating, lag 42s)"),
        "{}",
        applied.detail
    );
}

// ---------------------------------------------------------------- Aurora global

const EAST: &str = "arn:aws:rds:us-east-1:111122223333:cluster:checkout-use1";
const WEST: &str = "arn:aws:rds:us-west-2:111122223333:cluster:checkout-usw2";

/// DescribeGlobalClusters' `GlobalCluster`: `Status` and `GlobalClusterMembers`, each
/// with `DBClusterArn` and `IsWriter`; during a failover, `FailoverState`.
fn global(status: &str, west_writes: bool) -> DescribeGlobalClustersOutput {
    let member = |arn: &str, writer: bool| {
        GlobalClusterMember::builder()
            .db_cluster_arn(arn)
            .is_writer(writer)
            .build()
    };
    DescribeGlobalClustersOutput::builder()
        .global_clusters(
            GlobalCluster::builder()
                .global_cluster_identifier("checkout-global")
                .status(status)
                .engine("aurora-postgresql")
                .global_cluster_members(member(EAST, !west_writes))
                .global_cluster_members(member(WEST, west_writes))
                .build(),
        )
        .build()
}

/// FailoverGlobalCluster's answer: the `GlobalCluster` with `Status` `failing-over` and
/// a `FailoverState` (`Status` pending, from and to cluster ARNs, `IsDataLossAllowed`).
fn failing_over(loss: bool) -> GlobalCluster {
    GlobalCluster::builder()
        .global_cluster_identifier("checkout-global")
        .status("failing-over")
        .failover_state(
            FailoverState::builder()
                .status(FailoverStatus::Pending)
                .from_db_cluster_arn(EAST)
                .to_db_cluster_arn(WEST)
                .is_data_loss_allowed(loss)
                .build(),
        )
        .build()
}

fn aurora(client: aws_sdk_rds::Client, switchover: bool) -> AuroraGlobal {
    let ep = AuroraEndpoint {
        cluster_id: WEST.into(),
        global_cluster_id: "checkout-global".into(),
        aws_region: SECONDARY.into(),
    };
    AuroraGlobal::new(client, ep, "checkout-db", switchover)
}

/// The RDS query protocol's error document, as AWS sends it with HTTP 400.
const INVALID_STATE: &str = r#"<ErrorResponse xmlns="http://rds.amazonaws.com/doc/2014-10-31/">
  <Error>
    <Type>Sender</Type>
    <Code>InvalidGlobalClusterStateFault</Code>
    <Message>The primary cluster of the global cluster checkout-global is unavailable; use AllowDataLoss to fail over</Message>
  </Error>
  <RequestId>6c3e8f4b-2f1a-4c2e-9a57-7d0f2b9e1c11</RequestId>
</ErrorResponse>"#;

/// moto does not implement FailoverGlobalCluster (it answers an HTML 500): scripted.
#[tokio::test]
async fn an_aurora_failover_without_accepted_loss_asks_for_approval_then_makes_the_cluster_the_writer()
 {
    let describe = mock!(aws_sdk_rds::Client::describe_global_clusters)
        .sequence()
        .output(|| global("available", false)) // check
        .output(|| global("failing-over", false)) // first observation
        .output(|| global("available", true))
        .repeatedly()
        .build();
    // Without AllowDataLoss AWS runs it as a switchover, which the dead primary
    // region refuses.
    let refused = mock!(aws_sdk_rds::Client::failover_global_cluster)
        .match_requests(|r| r.allow_data_loss().is_none())
        .sequence()
        .http_status(400, Some(INVALID_STATE.to_string()))
        .repeatedly()
        .build();
    let with_loss = mock!(aws_sdk_rds::Client::failover_global_cluster)
        .match_requests(|r| {
            r.allow_data_loss() == Some(true)
                && r.global_cluster_identifier() == Some("checkout-global")
                && r.target_db_cluster_identifier() == Some(WEST)
        })
        .then_output(|| {
            FailoverGlobalClusterOutput::builder()
                .global_cluster(failing_over(true))
                .build()
        });
    let client = mocked!(
        aws_sdk_rds,
        RuleMode::MatchAny,
        [&describe, &refused, &with_loss]
    );
    let step = aurora(client, false);
    let mut c = ctx("promote-aurora", SECONDARY);
    let e = step.apply(&c).await.expect_err("needs approval");
    assert_eq!(e.class, ErrorClass::NeedsApproval);
    assert!(
        e.message.starts_with("Aurora cluster `arn:aws:rds:us-west-2:111122223333:cluster:checkout-usw2` of global database `checkout-global` in us-west-2 cannot take over without losing writes")
            && e.message.contains("InvalidGlobalClusterStateFault")
            && e.message.ends_with("approve with --allow-data-loss to fail over anyway"),
        "{}",
        e.message
    );
    c.allow_data_loss = true;
    let ran = drive(&step, &c).await.expect("failover");
    let Ran::Applied(applied, verified) = &ran else {
        panic!("{ran:?}")
    };
    assert!(
        applied.starts_with("FailoverGlobalCluster with AllowDataLoss"),
        "{applied}"
    );
    assert!(
        verified.ends_with("is the writer and the global database is available"),
        "{verified}"
    );
    assert_eq!((refused.num_calls(), with_loss.num_calls()), (1, 1));
    let again = drive(&step, &c).await.expect("again");
    assert!(matches!(again, Ran::AlreadyDone(_)), "{again:?}");
    assert_eq!(with_loss.num_calls(), 1);
}

/// moto does not implement SwitchoverGlobalCluster: scripted.
#[tokio::test]
async fn an_aurora_switchover_loses_nothing_and_waits_until_the_cluster_writes() {
    let describe = mock!(aws_sdk_rds::Client::describe_global_clusters)
        .sequence()
        .output(|| global("available", false))
        .output(|| global("switching-over", false))
        .output(|| global("switching-over", true))
        .output(|| global("available", true))
        .repeatedly()
        .build();
    let switch = mock!(aws_sdk_rds::Client::switchover_global_cluster)
        .match_requests(|r| {
            r.global_cluster_identifier() == Some("checkout-global")
                && r.target_db_cluster_identifier() == Some(WEST)
        })
        .then_output(|| {
            SwitchoverGlobalClusterOutput::builder()
                .global_cluster(
                    GlobalCluster::builder()
                        .global_cluster_identifier("checkout-global")
                        .status("switching-over")
                        .build(),
                )
                .build()
        });
    let client = mocked!(aws_sdk_rds, RuleMode::MatchAny, [&describe, &switch]);
    let step = aurora(client, true);
    let c = ctx("switch-aurora-back", SECONDARY);
    let ran = drive(&step, &c).await.expect("switchover");
    let Ran::Applied(applied, _) = &ran else {
        panic!("{ran:?}")
    };
    assert!(
        applied.starts_with("SwitchoverGlobalCluster (no data loss) accepted"),
        "{applied}"
    );
    assert_eq!(switch.num_calls(), 1);

    let gone = mock!(aws_sdk_rds::Client::describe_global_clusters)
        .then_output(|| DescribeGlobalClustersOutput::builder().build());
    let step = aurora(mocked!(aws_sdk_rds, RuleMode::MatchAny, [&gone]), true);
    let e = step.check(&c).await.expect_err("missing");
    assert_eq!(e.class, ErrorClass::Fatal);
    assert_eq!(
        e.message,
        "Aurora global database `checkout-global` does not exist: check [targets.checkout-db] in the policy"
    );
}

// ---------------------------------------------------------------- ECS

/// DescribeServices' `Service`: `status` ACTIVE, `desiredCount`, `runningCount`.
fn service(
    desired: i32,
    running: i32,
) -> aws_sdk_ecs::operation::describe_services::DescribeServicesOutput {
    aws_sdk_ecs::operation::describe_services::DescribeServicesOutput::builder()
        .services(
            aws_sdk_ecs::types::Service::builder()
                .service_name("ledger-workers")
                .status("ACTIVE")
                .desired_count(desired)
                .running_count(running)
                .pending_count(desired - running)
                .build(),
        )
        .build()
}

/// moto reports new tasks running the moment UpdateService returns; ECS starts them
/// over seconds to minutes. Scripted: one poll sees 1 of 2 running, the next 2 of 2.
#[tokio::test]
async fn an_ecs_scale_waits_until_the_running_count_reaches_the_target() {
    let describe = mock!(aws_sdk_ecs::Client::describe_services)
        .sequence()
        .output(|| service(1, 1))
        .output(|| service(2, 1))
        .output(|| service(2, 2))
        .repeatedly()
        .build();
    let update = mock!(aws_sdk_ecs::Client::update_service)
        .match_requests(|r| r.desired_count() == Some(2) && r.cluster() == Some("ledger-euw1"))
        .then_output(|| {
            aws_sdk_ecs::operation::update_service::UpdateServiceOutput::builder().build()
        });
    let client = mocked!(aws_sdk_ecs, RuleMode::MatchAny, [&describe, &update]);
    let step = Ecs::new(
        client,
        "ledger-euw1",
        "ledger-workers",
        "eu-west-1",
        "workers",
        2,
    );
    let c = ctx("scale-workers", SECONDARY);
    let ran = drive(&step, &c).await.expect("scale");
    let Ran::Applied(applied, verified) = &ran else {
        panic!("{ran:?}")
    };
    assert!(applied.starts_with("UpdateService accepted"), "{applied}");
    assert_eq!(
        verified,
        "ECS service `ledger-workers` of cluster `ledger-euw1` in eu-west-1: 2 of 2 tasks running (desired count 2)"
    );
    assert_eq!(
        describe.num_calls(),
        3,
        "check, one poll at 1 of 2, one at 2 of 2"
    );
    let again = drive(&step, &c).await.expect("again");
    assert!(matches!(again, Ran::AlreadyDone(_)), "{again:?}");
    assert_eq!(update.num_calls(), 1);
}

// ---------------------------------------------------------------- CloudFront

/// CreateInvalidation's `Invalidation`: `Id`, `Status` (`InProgress`, then
/// `Completed`), `CreateTime` and the `InvalidationBatch` sent. CloudFront answers a
/// request whose `CallerReference` it has seen with the invalidation it made then.
fn invalidation(
    id: &str,
    status: &str,
    reference: &str,
) -> aws_sdk_cloudfront::types::Invalidation {
    aws_sdk_cloudfront::types::Invalidation::builder()
        .id(id)
        .status(status)
        .create_time(aws_sdk_cloudfront::primitives::DateTime::from_secs(
            1_795_437_296,
        ))
        .invalidation_batch(
            aws_sdk_cloudfront::types::InvalidationBatch::builder()
                .caller_reference(reference)
                .paths(
                    aws_sdk_cloudfront::types::Paths::builder()
                        .quantity(1)
                        .items("/api/*")
                        .build()
                        .expect("paths"),
                )
                .build()
                .expect("batch"),
        )
        .build()
        .expect("invalidation")
}

#[tokio::test]
async fn a_repeated_cloudfront_invalidation_returns_the_one_already_made() {
    use std::collections::HashMap;
    use std::sync::Mutex;
    let made: std::sync::Arc<Mutex<HashMap<String, String>>> = Default::default();
    let seen = made.clone();
    let create = mock!(aws_sdk_cloudfront::Client::create_invalidation)
        .match_requests(|r| r.distribution_id() == Some("E2QWRUHAPOMQZL"))
        .then_compute_output(move |r| {
            let reference = r
                .invalidation_batch()
                .map(|b| b.caller_reference().to_string())
                .unwrap_or_default();
            let mut made = seen.lock().expect("lock");
            let n = made.len();
            let id = made
                .entry(reference.clone())
                .or_insert_with(|| format!("I2J0I21PCUYOIK{n}"))
                .clone();
            aws_sdk_cloudfront::operation::create_invalidation::CreateInvalidationOutput::builder()
                .invalidation(invalidation(&id, "InProgress", &reference))
                .build()
        });
    let get = mock!(aws_sdk_cloudfront::Client::get_invalidation)
        .sequence()
        .output(|| {
            aws_sdk_cloudfront::operation::get_invalidation::GetInvalidationOutput::builder()
                .invalidation(invalidation("I2J0I21PCUYOIK0", "InProgress", "r"))
                .build()
        })
        .output(|| {
            aws_sdk_cloudfront::operation::get_invalidation::GetInvalidationOutput::builder()
                .invalidation(invalidation("I2J0I21PCUYOIK0", "Completed", "r"))
                .build()
        })
        .repeatedly()
        .build();
    let client = mocked!(aws_sdk_cloudfront, RuleMode::MatchAny, [&create, &get]);
    let step = CloudfrontInvalidate::new(client, "E2QWRUHAPOMQZL", vec!["/api/*".into()], "cdn");
    let c = ctx("purge-cdn", SECONDARY);
    let ran = drive(&step, &c).await.expect("invalidate");
    let Ran::Applied(first, verified) = &ran else {
        panic!("{ran:?}")
    };
    assert!(
        first.starts_with("invalidation I2J0I21PCUYOIK0 of /api/*"),
        "{first}"
    );
    assert!(verified.ends_with("is Completed"), "{verified}");
    // A resume (or a retry after a lost answer) sends the same caller reference and
    // gets the same invalidation back: nothing is invalidated twice.
    let again = step.apply(&c).await.expect("again");
    assert!(
        again.detail.starts_with("invalidation I2J0I21PCUYOIK0 "),
        "{}",
        again.detail
    );
    assert_eq!(made.lock().expect("lock").len(), 1);
    // Another step (or run) is another invalidation.
    let other = step
        .apply(&ctx("purge-cdn-again", SECONDARY))
        .await
        .expect("other");
    assert!(
        other.detail.starts_with("invalidation I2J0I21PCUYOIK1 "),
        "{}",
        other.detail
    );
}
