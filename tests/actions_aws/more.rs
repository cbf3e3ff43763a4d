//! RDS, CloudFront, SNS and S3 steps against moto's server (part of `actions_aws`).

use super::helpers::{PRIMARY, Ran, SECONDARY, ctx, drive};
use super::support;
use lifeboat::action::cache::CloudfrontInvalidate;
use lifeboat::action::notify::{Notify, Via};
use lifeboat::action::rds::PromoteReplica;
use lifeboat::action::storage::SyncCheck;
use lifeboat::clients::aws::AwsClients;
use lifeboat::core::binding::S3Bucket;
use lifeboat::core::model::RegionName;
use lifeboat::core::step::ErrorClass;
use lifeboat::runbook::{Check, Step, Verify};

/// moto's PromoteReadReplica is accepted but leaves `ReadReplicaSourceDBInstanceIdentifier`
/// set, so `verify` never sees the instance standalone here: this test stops at "accepted,
/// still a replica". AWS clears the source once the promotion finishes; that path is
/// covered with scripted responses in actions_aws_mocks.rs.
#[tokio::test]
async fn a_read_replica_promotion_is_accepted_and_a_missing_instance_is_named() {
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
    let step = PromoteReplica::new(
        aws.rds(SECONDARY),
        aws.cloudwatch(SECONDARY),
        &replica,
        SECONDARY,
        "ledger-db",
    );
    let c = ctx("promote-replica", SECONDARY);
    match step.check(&c).await.expect("check") {
        Check::NotDone(d) => assert!(
            d.contains(&format!("is a read replica of {primary}")),
            "{d}"
        ),
        other => panic!("{other:?}"),
    }
    let applied = step.apply(&c).await.expect("promote");
    assert!(
        applied.detail.starts_with(&format!(
            "PromoteReadReplica accepted for RDS instance `{replica}`"
        )),
        "{}",
        applied.detail
    );
    match step.verify(&c).await.expect("verify") {
        Verify::NotYet(d) => assert!(d.contains("still a replica"), "{d}"),
        other => panic!("moto keeps the replica source: {other:?}"),
    }
    // The primary is standalone already: a second "promotion" of it is a no-op.
    let already = PromoteReplica::new(
        aws.rds(SECONDARY),
        aws.cloudwatch(SECONDARY),
        &primary,
        SECONDARY,
        "ledger-db",
    );
    let ran = drive(&already, &c).await.expect("no-op");
    assert!(
        matches!(ran, Ran::AlreadyDone(ref d) if d.contains("is a standalone instance")),
        "{ran:?}"
    );

    let none = PromoteReplica::new(
        aws.rds(SECONDARY),
        aws.cloudwatch(SECONDARY),
        "no-such-db",
        SECONDARY,
        "ledger-db",
    );
    let e = none.check(&c).await.expect_err("missing");
    assert_eq!(e.class, ErrorClass::Fatal);
    assert!(
        e.message.starts_with(
            "RDS instance `no-such-db` in us-west-2 does not exist (DBInstanceNotFound"
        ) && e
            .message
            .ends_with("check [targets.ledger-db] in the policy"),
        "{}",
        e.message
    );
}

/// moto creates a new invalidation for every request, whatever its caller reference
/// (CloudFront returns the existing one): this test checks the caller reference is the
/// same per run and step; the repeat answered with the same invalidation is covered with
/// scripted responses in actions_aws_mocks.rs.
#[tokio::test]
async fn a_cloudfront_invalidation_completes_and_carries_a_caller_reference_fixed_per_step() {
    let moto = support::moto();
    let aws = AwsClients::for_emulator(&moto.url());
    let id = support::cloudfront_distribution(&aws).await;
    let paths = vec!["/api/*".to_string(), "/config.json".to_string()];
    let step = CloudfrontInvalidate::new(aws.cloudfront(), &id, paths, "cdn");
    let c = ctx("purge-cdn", SECONDARY);
    let ran = drive(&step, &c).await.expect("invalidate");
    let Ran::Applied(applied, verified) = &ran else {
        panic!("{ran:?}")
    };
    assert!(
        applied.starts_with("invalidation ") && applied.contains("/api/*, /config.json"),
        "{applied}"
    );
    assert!(verified.ends_with("is Completed"), "{verified}");
    let inv_id = applied.split_whitespace().nth(1).expect("id").to_string();
    let got = aws
        .cloudfront()
        .get_invalidation()
        .distribution_id(&id)
        .id(&inv_id)
        .send()
        .await
        .expect("get invalidation");
    let reference = got
        .invalidation()
        .and_then(|i| i.invalidation_batch())
        .map(|b| b.caller_reference().to_string());
    assert_eq!(reference.as_deref(), Some("lifeboat-fo-test-1-purge-cdn"));
    assert_eq!(
        step.batch(&c).expect("batch").caller_reference(),
        "lifeboat-fo-test-1-purge-cdn",
        "the same on every attempt and resume"
    );

    let none = CloudfrontInvalidate::new(aws.cloudfront(), "ENOSUCHDIST", vec!["/*".into()], "cdn");
    let e = none.apply(&c).await.expect_err("missing");
    assert_eq!(e.class, ErrorClass::Fatal);
    assert!(
        e.message.starts_with(
            "CloudFront distribution `ENOSUCHDIST` does not exist (NoSuchDistribution"
        ) && e.message.ends_with("check [targets.cdn] in the policy"),
        "{}",
        e.message
    );
}

#[tokio::test]
async fn an_sns_notification_is_published_and_an_unknown_topic_is_named() {
    let moto = support::moto();
    let aws = AwsClients::for_emulator(&moto.url());
    let sns = aws.sns(PRIMARY);
    let topic = sns
        .create_topic()
        .name(support::unique("ops"))
        .send()
        .await
        .expect("topic");
    let arn = topic.topic_arn().expect("arn").to_string();
    let notify = Notify::new(
        "ops",
        Via::Sns {
            client: sns.clone(),
            topic_arn: arn.clone(),
        },
        None,
        "primary region down: 3 failed rounds of db".into(),
    );
    let c = ctx("tell-ops", SECONDARY);
    let ran = drive(&notify, &c).await.expect("publish");
    let Ran::Applied(applied, _) = &ran else {
        panic!("{ran:?}")
    };
    assert!(
        applied.starts_with(&format!(
            "published to SNS topic `{arn}` (channel `ops`): message "
        )),
        "{applied}"
    );
    // Notifications are sent every time: the second run publishes again.
    assert!(matches!(drive(&notify, &c).await, Ok(Ran::Applied(..))));

    let missing = format!("{arn}-gone");
    let lost = Notify::new(
        "ops",
        Via::Sns {
            client: sns,
            topic_arn: missing.clone(),
        },
        None,
        "test".into(),
    );
    let e = lost.apply(&c).await.expect_err("no such topic");
    assert_eq!(e.class, ErrorClass::Fatal);
    assert!(
        e.message.starts_with(&format!(
            "SNS topic `{missing}` (channel `ops`) does not exist"
        )) && e.message.ends_with("check [channels.ops] in the policy"),
        "{}",
        e.message
    );
}

fn bucket(name: &str, region: &str) -> S3Bucket {
    S3Bucket {
        bucket: name.into(),
        canary_prefix: "lifeboat-canary/".into(),
        aws_region: region.into(),
        region: RegionName::new(region),
    }
}

async fn put(aws: &AwsClients, region: &str, bucket: &str, key: &str, body: &str) {
    aws.s3(region)
        .put_object()
        .bucket(bucket)
        .key(key)
        .body(body.as_bytes().to_vec().into())
        .send()
        .await
        .expect("put");
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

/// A failback from us-west-2 (which served, the source) to us-east-1 (the destination).
#[tokio::test]
async fn storage_differences_stop_a_failback_or_are_copied_when_the_policy_says_so() {
    let moto = support::moto();
    let aws = AwsClients::for_emulator(&moto.url());
    let (src, dst) = (support::unique("src"), support::unique("dst"));
    create_bucket(&aws, SECONDARY, &src).await;
    create_bucket(&aws, PRIMARY, &dst).await;
    for (k, v) in [
        ("data/a", "1"),
        ("data/b", "2"),
        ("data/c", "3"),
        ("other/x", "x"),
    ] {
        put(&aws, SECONDARY, &src, k, v).await;
    }
    put(&aws, PRIMARY, &dst, "data/a", "1").await;
    put(&aws, PRIMARY, &dst, "data/b", "stale").await;
    // The s3 probe's canary objects come and go: never compared.
    put(
        &aws,
        SECONDARY,
        &src,
        "lifeboat-canary/canary-us-west-2-1",
        "c",
    )
    .await;
    let step = |copy: bool| {
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
    let mut c = ctx("storage-in-sync", PRIMARY);
    c.from = RegionName::new(SECONDARY);
    c.to = RegionName::new(PRIMARY);

    let report = step(false);
    match report.check(&c).await.expect("check") {
        Check::NotDone(d) => assert!(
            d.ends_with("1 missing (data/c); 1 different (data/b)"),
            "{d}"
        ),
        other => panic!("{other:?}"),
    }
    let e = report.apply(&c).await.expect_err("differences remain");
    assert_eq!(e.class, ErrorClass::Fatal);
    assert!(
        e.message.starts_with(&format!(
            "bucket `{dst}` (us-east-1) lacks what bucket `{src}` (us-west-2) has under `data/`"
        )) && e.message.contains("set copy_missing = true"),
        "{}",
        e.message
    );

    let copy = step(true);
    let ran = drive(&copy, &c).await.expect("copy");
    let Ran::Applied(applied, verified) = &ran else {
        panic!("{ran:?}")
    };
    assert!(applied.starts_with("copied 2 object(s)"), "{applied}");
    assert!(verified.contains("holds every object"), "{verified}");
    let body = aws
        .s3(PRIMARY)
        .get_object()
        .bucket(&dst)
        .key("data/b")
        .send()
        .await
        .expect("get");
    let bytes = body.body.collect().await.expect("read").into_bytes();
    assert_eq!(&bytes[..], b"2");
    let again = drive(&step(false), &c).await.expect("in sync");
    assert!(matches!(again, Ran::AlreadyDone(_)), "{again:?}");

    let gone = SyncCheck::new(
        aws.s3(SECONDARY),
        aws.s3(PRIMARY),
        bucket("no-such-bucket-lifeboat", SECONDARY),
        bucket(&dst, PRIMARY),
        "data/".into(),
        false,
        "assets",
    );
    let e = gone.check(&c).await.expect_err("missing bucket");
    assert_eq!(e.class, ErrorClass::Fatal);
    assert!(
        e.message.starts_with(
            "bucket `no-such-bucket-lifeboat` (us-west-2) does not exist (NoSuchBucket"
        ),
        "{}",
        e.message
    );
}
