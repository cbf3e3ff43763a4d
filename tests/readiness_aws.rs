//! Readiness of the AWS steps against moto's server: the Route 53 failover pair and its
//! switch, Auto Scaling, ECS, RDS read replicas, Aurora global databases, CloudFront,
//! SNS and S3; each ready on a world as the Terraform module makes it, and not ready,
//! with the fix, once it drifts. And the permission check, which moto cannot answer
//! (it does not implement iam:SimulatePrincipalPolicy): it says so.

#[path = "support/action_helpers.rs"]
mod helpers;
mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use helpers::{PRIMARY, SECONDARY};
use lifeboat::action::cache::CloudfrontInvalidate;
use lifeboat::action::notify::{Notify, Via};
use lifeboat::action::rds::{AuroraGlobal, PromoteReplica};
use lifeboat::action::route53::Switch;
use lifeboat::action::scale::{Asg, Ecs, Sizes};
use lifeboat::action::storage::SyncCheck;
use lifeboat::clients::aws::AwsClients;
use lifeboat::core::binding::S3Bucket;
use lifeboat::core::model::{AuroraEndpoint, Direction, DnsRecord, RegionName, Route53Endpoint};
use lifeboat::core::readiness::{Readiness, ReadyState};
use lifeboat::runbook::{ReadyCtx, Step};
use lifeboat::sandbox::aws::{Names, Provisioned, provision};

/// A failover step's readiness context, us-east-1 serving.
fn ready_ctx(step: &str, at: &str, next: bool) -> ReadyCtx {
    ReadyCtx {
        service: "orders".into(),
        direction: Direction::Failover,
        from: RegionName::new(PRIMARY),
        to: RegionName::new(SECONDARY),
        step: step.into(),
        region: RegionName::new(at),
        serving: RegionName::new(PRIMARY),
        next,
        rpo_budget: Duration::from_secs(5),
        writer: None,
        deadline: tokio::time::Instant::now() + Duration::from_secs(15),
    }
}

fn not_ready(r: &Readiness) -> (&str, &str) {
    match r {
        Readiness::NotReady { why, fix } => (why, fix),
        other => panic!("expected not ready, got {other:?}"),
    }
}

async fn world(aws: &AwsClients) -> (Names, Provisioned) {
    let zone = format!("{}.lifeboat.test.", support::unique("z"));
    let names = Names {
        record: format!("orders.{zone}"),
        zone,
        regions: vec![
            (PRIMARY.into(), PRIMARY.into(), "192.0.2.10".into()),
            (SECONDARY.into(), SECONDARY.into(), "198.51.100.10".into()),
        ],
        buckets: vec![
            (PRIMARY.into(), support::unique("assets-use1")),
            (SECONDARY.into(), support::unique("assets-usw2")),
        ],
        groups: vec![
            (PRIMARY.into(), support::unique("workers-use1"), 2),
            (SECONDARY.into(), support::unique("workers-usw2"), 1),
        ],
        topic: support::unique("ops"),
    };
    let p = provision(aws, &names).await.expect("provision in moto");
    (names, p)
}

fn switch(aws: &AwsClients, zone: &str, record: &str, region: &str) -> Switch {
    Switch::new(
        aws.route53(),
        Route53Endpoint {
            zone_id: zone.into(),
            record_name: record.into(),
            record_type: "A".into(),
            ttl: 30,
            record: DnsRecord::FailoverPair {
                set_identifier: region.into(),
                health_check_id: None,
            },
        },
        vec![],
        "dns",
    )
}

#[tokio::test]
async fn the_failover_pair_is_ready_until_its_switch_is_deleted_or_flipped_by_hand() {
    let moto = support::moto();
    let aws = AwsClients::for_emulator(&moto.url());
    let (names, p) = world(&aws).await;
    let to_west = switch(&aws, &p.zone_id, &names.record, SECONDARY);
    let back_east = switch(&aws, &p.zone_id, &names.record, PRIMARY);
    let r = to_west
        .readiness(&ready_ctx("move-dns", SECONDARY, true))
        .await;
    assert_eq!(r.state(), ReadyState::Ready, "{r:?}");
    assert!(r.detail().contains(&p.health_check_id), "{r:?}");
    let r = back_east
        .readiness(&ready_ctx("dns-back", PRIMARY, false))
        .await;
    assert_eq!(r.state(), ReadyState::Ready, "{r:?}");

    // Flipped by hand: DNS already answers with the secondary while the primary serves.
    aws.route53()
        .update_health_check()
        .health_check_id(&p.health_check_id)
        .inverted(true)
        .send()
        .await
        .expect("invert");
    let r = to_west
        .readiness(&ready_ctx("move-dns", SECONDARY, true))
        .await;
    let (why, fix) = not_ready(&r);
    assert!(
        why.contains("already answers with us-west-2's record"),
        "{why}"
    );
    assert!(fix.contains("move it back to us-east-1"), "{fix}");
    aws.route53()
        .update_health_check()
        .health_check_id(&p.health_check_id)
        .inverted(false)
        .send()
        .await
        .expect("uninvert");

    aws.route53()
        .delete_health_check()
        .health_check_id(&p.health_check_id)
        .send()
        .await
        .expect("delete the switch");
    let r = to_west
        .readiness(&ready_ctx("move-dns", SECONDARY, true))
        .await;
    let (why, fix) = not_ready(&r);
    assert!(
        why.contains(&format!("the switch health check `{}`", p.health_check_id)),
        "{why}"
    );
    assert!(fix.contains("recreate the switch"), "{fix}");
}

#[tokio::test]
async fn an_auto_scaling_group_capped_below_the_target_or_missing_is_not_ready() {
    let moto = support::moto();
    let aws = AwsClients::for_emulator(&moto.url());
    let (names, _) = world(&aws).await;
    let group = &names.groups[1].1;
    let sizes = Sizes {
        min: 2,
        desired: 2,
        max: 4,
    };
    let asg = Asg::new(
        aws.autoscaling(SECONDARY),
        group,
        SECONDARY,
        "workers",
        sizes,
    );
    let ctx = ready_ctx("scale-up-workers", SECONDARY, true);
    let r = asg.readiness(&ctx).await;
    assert_eq!(r.state(), ReadyState::Ready, "{r:?}");

    aws.autoscaling(SECONDARY)
        .update_auto_scaling_group()
        .auto_scaling_group_name(group)
        .min_size(1)
        .desired_capacity(1)
        .max_size(1)
        .send()
        .await
        .expect("cap");
    let r = asg.readiness(&ctx).await;
    let (why, fix) = not_ready(&r);
    assert!(
        why.contains("allows at most 1 instance(s), fewer than the 2"),
        "{why}"
    );
    assert!(fix.contains("raise the group's max to at least 2"), "{fix}");

    aws.autoscaling(SECONDARY)
        .update_auto_scaling_group()
        .auto_scaling_group_name(group)
        .max_size(4)
        .send()
        .await
        .expect("uncap");
    aws.autoscaling(SECONDARY)
        .suspend_processes()
        .auto_scaling_group_name(group)
        .scaling_processes("Launch")
        .send()
        .await
        .expect("suspend");
    let r = asg.readiness(&ctx).await;
    let (why, _) = not_ready(&r);
    assert!(why.contains("Launch process suspended"), "{why}");

    let none = Asg::new(
        aws.autoscaling(SECONDARY),
        "no-such-group",
        SECONDARY,
        "workers",
        sizes,
    );
    let r = none.readiness(&ctx).await;
    let (why, fix) = not_ready(&r);
    assert!(
        why.contains("`no-such-group` in us-west-2 does not exist"),
        "{why}"
    );
    assert!(fix.contains("[targets.workers]"), "{fix}");
}

#[tokio::test]
async fn an_ecs_service_is_ready_while_it_exists() {
    let moto = support::moto();
    let aws = AwsClients::for_emulator(&moto.url());
    let ecs = aws.ecs(SECONDARY);
    let cluster = support::unique("cluster");
    ecs.create_cluster()
        .cluster_name(&cluster)
        .send()
        .await
        .expect("cluster");
    let family = support::unique("worker");
    ecs.register_task_definition()
        .family(&family)
        .container_definitions(
            aws_sdk_ecs::types::ContainerDefinition::builder()
                .name("worker")
                .image("example/worker:1")
                .memory(128)
                .build(),
        )
        .send()
        .await
        .expect("task definition");
    ecs.create_service()
        .cluster(&cluster)
        .service_name("workers")
        .task_definition(&family)
        .desired_count(0)
        .send()
        .await
        .expect("service");
    let ctx = ready_ctx("scale-up-workers", SECONDARY, true);
    let ok = Ecs::new(
        aws.ecs(SECONDARY),
        &cluster,
        "workers",
        SECONDARY,
        "workers",
        2,
    );
    let r = ok.readiness(&ctx).await;
    assert_eq!(r.state(), ReadyState::Ready, "{r:?}");
    let gone = Ecs::new(
        aws.ecs(SECONDARY),
        &cluster,
        "gone",
        SECONDARY,
        "workers",
        2,
    );
    let r = gone.readiness(&ctx).await;
    let (why, _) = not_ready(&r);
    assert!(why.contains("does not exist"), "{why}");
}

#[tokio::test]
async fn a_read_replica_is_ready_to_promote_and_a_standalone_instance_is_not() {
    let moto = support::moto();
    let aws = AwsClients::for_emulator(&moto.url());
    let rds = aws.rds(SECONDARY);
    let primary = support::unique("ledger");
    rds.create_db_instance()
        .db_instance_identifier(&primary)
        .db_instance_class("db.t3.micro")
        .engine("postgres")
        .allocated_storage(20)
        .master_username("lifeboat")
        .master_user_password("not-a-secret-moto-only")
        .send()
        .await
        .expect("create instance");
    let replica = format!("{primary}-replica");
    rds.create_db_instance_read_replica()
        .db_instance_identifier(&replica)
        .source_db_instance_identifier(&primary)
        .send()
        .await
        .expect("create read replica");
    let ctx = ready_ctx("promote-replica", SECONDARY, true);
    let step = PromoteReplica::new(
        rds.clone(),
        aws.cloudwatch(SECONDARY),
        &replica,
        SECONDARY,
        "ledger-db",
    );
    let r = step.readiness(&ctx).await;
    // moto publishes no ReplicaLag: the replica is there, its lag cannot be told.
    assert_eq!(r.state(), ReadyState::CannotTell, "{r:?}");
    assert!(r.detail().contains("lag is unknown"), "{r:?}");
    let standalone = PromoteReplica::new(
        rds.clone(),
        aws.cloudwatch(SECONDARY),
        &primary,
        SECONDARY,
        "ledger-db",
    );
    let r = standalone.readiness(&ctx).await;
    let (why, _) = not_ready(&r);
    assert!(why.contains("is not a read replica"), "{why}");
    let none = PromoteReplica::new(
        rds,
        aws.cloudwatch(SECONDARY),
        "no-such-db",
        SECONDARY,
        "ledger-db",
    );
    let (why, fix) = {
        let r = none.readiness(&ctx).await;
        let (w, f) = not_ready(&r);
        (w.to_string(), f.to_string())
    };
    assert!(
        why.contains("`no-such-db` in us-west-2 does not exist"),
        "{why}"
    );
    assert!(fix.contains("[targets.ledger-db]"), "{fix}");
}

#[tokio::test]
async fn an_aurora_cluster_outside_its_global_database_is_not_ready() {
    let moto = support::moto();
    let aws = AwsClients::for_emulator(&moto.url());
    let rds = aws.rds(SECONDARY);
    let global = support::unique("global");
    rds.create_global_cluster()
        .global_cluster_identifier(&global)
        .engine("aurora-postgresql")
        .send()
        .await
        .expect("global cluster");
    let ctx = ready_ctx("aurora-failover", SECONDARY, true);
    let step = AuroraGlobal::new(
        rds.clone(),
        AuroraEndpoint {
            global_cluster_id: global.clone(),
            cluster_id: "not-a-member".into(),
            aws_region: SECONDARY.into(),
        },
        "ledger",
        false,
    );
    let r = step.readiness(&ctx).await;
    let (why, _) = not_ready(&r);
    assert!(
        why.contains("is not a member of its global database"),
        "{why}"
    );
    let missing = AuroraGlobal::new(
        rds,
        AuroraEndpoint {
            global_cluster_id: "no-such-global".into(),
            cluster_id: "c".into(),
            aws_region: SECONDARY.into(),
        },
        "ledger",
        false,
    );
    let r = missing.readiness(&ctx).await;
    let (why, _) = not_ready(&r);
    assert!(why.contains("no-such-global"), "{why}");
}

#[tokio::test]
async fn a_cloudfront_distribution_and_an_sns_topic_are_ready_while_they_exist() {
    let moto = support::moto();
    let aws = AwsClients::for_emulator(&moto.url());
    let id = support::cloudfront_distribution(&aws).await;
    let ctx = ready_ctx("purge-cdn", SECONDARY, true);
    let cdn = CloudfrontInvalidate::new(aws.cloudfront(), &id, vec!["/*".into()], "cdn");
    let r = cdn.readiness(&ctx).await;
    assert_eq!(r.state(), ReadyState::Ready, "{r:?}");
    assert!(r.detail().contains("enabled"), "{r:?}");
    let gone = CloudfrontInvalidate::new(aws.cloudfront(), "ENOSUCHDIST", vec!["/*".into()], "cdn");
    let r = gone.readiness(&ctx).await;
    let (why, fix) = not_ready(&r);
    assert!(why.contains("`ENOSUCHDIST` does not exist"), "{why}");
    assert!(fix.contains("[targets.cdn]"), "{fix}");

    let sns = aws.sns(PRIMARY);
    let arn = sns
        .create_topic()
        .name(support::unique("ops"))
        .send()
        .await
        .expect("topic")
        .topic_arn()
        .expect("arn")
        .to_string();
    let tell = |arn: &str| {
        Notify::new(
            "ops",
            Via::Sns {
                client: sns.clone(),
                topic_arn: arn.into(),
            },
            None,
            "test".into(),
        )
    };
    assert_eq!(tell(&arn).readiness(&ctx).await.state(), ReadyState::Ready);
    let r = tell(&format!("{arn}-gone")).readiness(&ctx).await;
    let (why, fix) = not_ready(&r);
    assert!(why.contains("does not exist"), "{why}");
    assert!(fix.contains("[channels.ops]"), "{fix}");
}

fn bucket(name: &str, region: &str) -> S3Bucket {
    S3Bucket {
        bucket: name.into(),
        canary_prefix: "lifeboat-canary/".into(),
        aws_region: region.into(),
        region: RegionName::new(region),
    }
}

async fn create_bucket(aws: &AwsClients, region: &str, name: &str) {
    let mut req = aws.s3(region).create_bucket().bucket(name);
    if region != "us-east-1" {
        req = req.create_bucket_configuration(
            aws_sdk_s3::types::CreateBucketConfiguration::builder()
                .location_constraint(aws_sdk_s3::types::BucketLocationConstraint::from(region))
                .build(),
        );
    }
    req.send().await.expect("create bucket");
}

async fn version(aws: &AwsClients, region: &str, name: &str) {
    aws.s3(region)
        .put_bucket_versioning()
        .bucket(name)
        .versioning_configuration(
            aws_sdk_s3::types::VersioningConfiguration::builder()
                .status(aws_sdk_s3::types::BucketVersioningStatus::Enabled)
                .build(),
        )
        .send()
        .await
        .expect("versioning");
}

/// A failback's storage check: us-west-2 (which served) is the source.
#[tokio::test]
async fn a_storage_check_without_copying_needs_replication_from_the_source_bucket() {
    use aws_sdk_s3::types::{
        Destination, ReplicationConfiguration, ReplicationRule, ReplicationRuleStatus,
    };
    let moto = support::moto();
    let aws = AwsClients::for_emulator(&moto.url());
    let (src, dst) = (support::unique("src"), support::unique("dst"));
    create_bucket(&aws, SECONDARY, &src).await;
    create_bucket(&aws, PRIMARY, &dst).await;
    let check = |copy: bool| {
        SyncCheck::new(
            aws.s3(SECONDARY),
            aws.s3(PRIMARY),
            bucket(&src, SECONDARY),
            bucket(&dst, PRIMARY),
            "data/".into(),
            copy,
            "assets",
        )
    };
    let ctx = ReadyCtx {
        direction: Direction::Failback,
        ..ready_ctx("storage-in-sync", PRIMARY, false)
    };
    assert_eq!(check(true).readiness(&ctx).await.state(), ReadyState::Ready);
    let r = check(false).readiness(&ctx).await;
    let (why, fix) = not_ready(&r);
    assert!(
        why.contains(&format!(
            "`{src}` has no enabled replication rule to `{dst}`"
        )),
        "{why}"
    );
    assert!(fix.contains("copy_missing = true"), "{fix}");

    version(&aws, SECONDARY, &src).await;
    version(&aws, PRIMARY, &dst).await;
    aws.s3(SECONDARY)
        .put_bucket_replication()
        .bucket(&src)
        .replication_configuration(
            ReplicationConfiguration::builder()
                .role("arn:aws:iam::123456789012:role/replication")
                .rules(
                    ReplicationRule::builder()
                        .id("back-home")
                        .status(ReplicationRuleStatus::Enabled)
                        .filter(
                            aws_sdk_s3::types::ReplicationRuleFilter::builder()
                                .prefix("")
                                .build(),
                        )
                        .destination(
                            Destination::builder()
                                .bucket(format!("arn:aws:s3:::{dst}"))
                                .build()
                                .expect("destination"),
                        )
                        .build()
                        .expect("rule"),
                )
                .build()
                .expect("replication"),
        )
        .send()
        .await
        .expect("put replication");
    // The replication rule is found. moto 5.2 answers GetBucketVersioning with a root
    // element AWS does not use (GetBucketVersioningResponse), which the SDK refuses to
    // read: the versioning half is "cannot tell" here, never "ready" by guess.
    let r = check(false).readiness(&ctx).await;
    assert_eq!(r.state(), ReadyState::CannotTell, "{r:?}");
    assert!(
        r.detail().contains("GetBucketVersioning") && r.detail().contains("cannot read"),
        "{r:?}"
    );

    let gone = SyncCheck::new(
        aws.s3(SECONDARY),
        aws.s3(PRIMARY),
        bucket(&src, SECONDARY),
        bucket("lifeboat-no-such-bucket", PRIMARY),
        "data/".into(),
        true,
        "assets",
    );
    let r = gone.readiness(&ctx).await;
    let (why, _) = not_ready(&r);
    assert!(why.contains("lifeboat-no-such-bucket"), "{why}");
}

#[tokio::test]
async fn the_permission_check_says_moto_cannot_simulate_instead_of_pretending() {
    let moto = support::moto();
    let aws = AwsClients::for_emulator(&moto.url());
    let mut actions = BTreeMap::new();
    actions.insert(
        "route53:UpdateHealthCheck".to_string(),
        vec!["step move-dns".to_string()],
    );
    let p = lifeboat::readiness::permissions::check(Some(&aws), None, &actions).await;
    assert_eq!(p.overall.state(), ReadyState::CannotTell, "{:?}", p.overall);
    assert!(
        p.overall.detail().contains("iam:SimulatePrincipalPolicy"),
        "{:?}",
        p.overall
    );
    assert!(p.denied.is_empty());
    // Without AWS configuration, steps that call AWS cannot work at all.
    let none = lifeboat::readiness::permissions::check(None, None, &actions).await;
    assert_eq!(none.overall.state(), ReadyState::NotReady);
}
