//! The AWS steps against moto's server: Route 53 (failover pair, weighted, simple),
//! Auto Scaling, ECS, RDS, CloudFront, SNS and S3. Each runs its happy path, a second
//! run that finds the effect in place, and an error path that names the resource.
//! Where moto falls short (ECS reports tasks running the moment UpdateService returns,
//! PromoteReadReplica leaves the replica source set, CloudFront ignores caller
//! references) the test says so and `tests/actions_aws_mocks.rs` covers the rest with
//! scripted responses.

#[path = "support/action_helpers.rs"]
mod helpers;
mod support;

use aws_sdk_route53::types::{
    Change, ChangeAction, ChangeBatch, ResourceRecord, ResourceRecordSet, RrType,
};
use helpers::{PRIMARY, Ran, SECONDARY, ctx, drive};
use lifeboat::action::route53::Switch;
use lifeboat::action::scale::{Asg, Ecs, Sizes};
use lifeboat::clients::aws::AwsClients;
use lifeboat::core::model::{DnsRecord, DnsStyle, Route53Endpoint};
use lifeboat::core::step::ErrorClass;
use lifeboat::runbook::Step;
use lifeboat::sandbox::aws::{Names, active_region, provision};

fn r53(
    zone_id: &str,
    record: &str,
    style: DnsStyle,
    set: Option<&str>,
    value: Option<&str>,
) -> Route53Endpoint {
    let record_of = match (style, set, value) {
        (DnsStyle::FailoverPair, Some(set), _) => DnsRecord::FailoverPair {
            set_identifier: set.into(),
            health_check_id: None,
        },
        (DnsStyle::Weighted, Some(set), _) => DnsRecord::Weighted {
            set_identifier: set.into(),
        },
        (DnsStyle::Simple, _, Some(value)) => DnsRecord::Simple {
            value: value.into(),
        },
        other => panic!("a test endpoint needs its style's field: {other:?}"),
    };
    Route53Endpoint {
        zone_id: zone_id.into(),
        record_name: record.into(),
        record_type: "A".into(),
        ttl: 30,
        record: record_of,
    }
}

/// The sandbox's AWS world under unique names: zone, switch health check and failover
/// record pair, a bucket and an Auto Scaling group per region, an SNS topic.
async fn world(aws: &AwsClients) -> (Names, lifeboat::sandbox::aws::Provisioned) {
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

#[tokio::test]
async fn a_failover_pair_moves_by_inverting_the_primary_records_health_check_and_back() {
    let moto = support::moto();
    let aws = AwsClients::for_emulator(&moto.url());
    let (names, p) = world(&aws).await;
    let switch = |region: &str| {
        Switch::new(
            aws.route53(),
            r53(
                &p.zone_id,
                &names.record,
                DnsStyle::FailoverPair,
                Some(region),
                None,
            ),
            vec![],
            "dns",
        )
    };
    let active = || active_region(&aws, &p.zone_id, &names.record, &p.health_check_id);
    assert_eq!(active().await.expect("active"), PRIMARY);

    let to_west = switch(SECONDARY);
    let c = ctx("move-dns", SECONDARY);
    let ran = drive(&to_west, &c).await.expect("switch");
    let Ran::Applied(applied, verified) = &ran else {
        panic!("{ran:?}")
    };
    assert!(
        applied.starts_with("UpdateHealthCheck accepted"),
        "{applied}"
    );
    assert!(
        verified.contains(&format!("`{}` is inverted", p.health_check_id))
            && verified.contains("SECONDARY record `us-west-2`"),
        "{verified}"
    );
    assert_eq!(active().await.expect("active"), SECONDARY);
    let again = drive(&to_west, &c).await.expect("again");
    assert!(matches!(again, Ran::AlreadyDone(_)), "{again:?}");

    let back = switch(PRIMARY);
    drive(&back, &ctx("dns-back", PRIMARY)).await.expect("back");
    assert_eq!(active().await.expect("active"), PRIMARY);

    let lost = Switch::new(
        aws.route53(),
        r53(
            "ZNOSUCHZONE0000",
            &names.record,
            DnsStyle::FailoverPair,
            Some(SECONDARY),
            None,
        ),
        vec![],
        "dns",
    );
    let e = lost.check(&c).await.expect_err("no such zone");
    assert_eq!(e.class, ErrorClass::Fatal);
    assert!(
        e.message
            .starts_with("hosted zone `ZNOSUCHZONE0000` does not exist")
            && e.message.contains("check [targets.dns] in the policy"),
        "{}",
        e.message
    );
}

fn a_record(name: &str, set: Option<(&str, i64)>, value: &str) -> ResourceRecordSet {
    let mut b = ResourceRecordSet::builder()
        .name(name)
        .r#type(RrType::A)
        .ttl(30)
        .resource_records(ResourceRecord::builder().value(value).build().expect("rr"));
    if let Some((id, weight)) = set {
        b = b.set_identifier(id).weight(weight);
    }
    b.build().expect("record")
}

/// A new hosted zone `zone` holding `records`; its id.
async fn zone_with(aws: &AwsClients, zone: &str, records: Vec<ResourceRecordSet>) -> String {
    let r53 = aws.route53();
    let out = r53
        .create_hosted_zone()
        .name(zone)
        .caller_reference(support::unique("ref"))
        .send()
        .await
        .expect("zone");
    let id = out
        .hosted_zone()
        .expect("zone")
        .id()
        .trim_start_matches("/hostedzone/")
        .to_string();
    let changes = records
        .into_iter()
        .map(|r| {
            Change::builder()
                .action(ChangeAction::Create)
                .resource_record_set(r)
                .build()
                .expect("change")
        })
        .collect();
    r53.change_resource_record_sets()
        .hosted_zone_id(&id)
        .change_batch(
            ChangeBatch::builder()
                .set_changes(Some(changes))
                .build()
                .expect("batch"),
        )
        .send()
        .await
        .expect("records");
    id
}

async fn live(aws: &AwsClients, zone_id: &str) -> Vec<(Option<String>, Option<i64>, String)> {
    let out = aws
        .route53()
        .list_resource_record_sets()
        .hosted_zone_id(zone_id)
        .send()
        .await
        .expect("list");
    out.resource_record_sets()
        .iter()
        .filter(|r| r.r#type() == &RrType::A)
        .map(|r| {
            (
                r.set_identifier().map(str::to_string),
                r.weight(),
                r.resource_records()
                    .first()
                    .map(|v| v.value().to_string())
                    .unwrap_or_default(),
            )
        })
        .collect()
}

#[tokio::test]
async fn weighted_records_go_100_0_and_a_simple_record_takes_the_goal_value_each_once() {
    let moto = support::moto();
    let aws = AwsClients::for_emulator(&moto.url());
    let name = |zone: &str| format!("api.{zone}");

    // Weighted: us-east-1 100, us-west-2 0 → the reverse.
    let zone = format!("{}.lifeboat.test.", support::unique("w"));
    let zone_id = zone_with(
        &aws,
        &zone,
        vec![
            a_record(&name(&zone), Some((PRIMARY, 100)), "192.0.2.10"),
            a_record(&name(&zone), Some((SECONDARY, 0)), "198.51.100.10"),
        ],
    )
    .await;
    let weighted = Switch::new(
        aws.route53(),
        r53(
            &zone_id,
            &name(&zone),
            DnsStyle::Weighted,
            Some(SECONDARY),
            None,
        ),
        vec![PRIMARY.into()],
        "dns",
    );
    let c = ctx("move-dns", SECONDARY);
    let ran = drive(&weighted, &c).await.expect("weighted");
    let Ran::Applied(applied, verified) = &ran else {
        panic!("{ran:?}")
    };
    assert!(applied.contains("2 UPSERT(s)"), "{applied}");
    assert!(
        verified.ends_with("is INSYNC"),
        "moto reports changes INSYNC at once: {verified}"
    );
    let mut got = live(&aws, &zone_id).await;
    got.sort();
    assert_eq!(
        got,
        vec![
            (Some(PRIMARY.into()), Some(0), "192.0.2.10".into()),
            (Some(SECONDARY.into()), Some(100), "198.51.100.10".into()),
        ]
    );
    let again = drive(&weighted, &c).await.expect("again");
    assert!(matches!(again, Ran::AlreadyDone(_)), "{again:?}");

    // Simple: UPSERT the goal's value.
    let zone = format!("{}.lifeboat.test.", support::unique("s"));
    let zone_id = zone_with(
        &aws,
        &zone,
        vec![a_record(&name(&zone), None, "192.0.2.10")],
    )
    .await;
    let simple = Switch::new(
        aws.route53(),
        r53(
            &zone_id,
            &name(&zone),
            DnsStyle::Simple,
            None,
            Some("198.51.100.10"),
        ),
        vec![],
        "dns",
    );
    drive(&simple, &c).await.expect("simple");
    assert_eq!(
        live(&aws, &zone_id).await,
        vec![(None, None, "198.51.100.10".into())]
    );
    let again = drive(&simple, &c).await.expect("again");
    assert!(matches!(again, Ran::AlreadyDone(_)), "{again:?}");

    let missing = Switch::new(
        aws.route53(),
        r53(
            &zone_id,
            &name(&zone),
            DnsStyle::Weighted,
            Some("nowhere"),
            None,
        ),
        vec![],
        "dns",
    );
    let e = missing.check(&c).await.expect_err("no such set");
    assert_eq!(e.class, ErrorClass::Fatal);
    assert!(
        e.message
            .contains("no weighted record with set identifier `nowhere`"),
        "{}",
        e.message
    );
}

#[tokio::test]
async fn an_auto_scaling_group_is_resized_until_enough_instances_are_in_service() {
    let moto = support::moto();
    let aws = AwsClients::for_emulator(&moto.url());
    let (names, _) = world(&aws).await;
    let group = &names.groups[1].1;
    let sizes = Sizes {
        min: 2,
        desired: 3,
        max: 4,
    };
    let asg = Asg::new(
        aws.autoscaling(SECONDARY),
        group,
        SECONDARY,
        "workers",
        sizes,
    );
    let c = ctx("scale-up-workers", SECONDARY);
    let ran = drive(&asg, &c).await.expect("scale");
    let Ran::Applied(_, verified) = &ran else {
        panic!("{ran:?}")
    };
    assert!(
        verified.ends_with("3 of 3 instances InService"),
        "{verified}"
    );
    let again = drive(&asg, &c).await.expect("again");
    assert!(
        matches!(again, Ran::AlreadyDone(ref d) if d.ends_with("min 2 / desired 3 / max 4 with 3 InService")),
        "{again:?}"
    );

    let none = Asg::new(
        aws.autoscaling(SECONDARY),
        "no-such-group",
        SECONDARY,
        "workers",
        sizes,
    );
    let e = none.check(&c).await.expect_err("missing");
    assert_eq!(e.class, ErrorClass::Fatal);
    assert_eq!(
        e.message,
        "Auto Scaling group `no-such-group` in us-west-2 does not exist: check [targets.workers] in the policy"
    );
}

/// moto 5 answers UpdateService by setting the running count to the new desired count
/// at once (it runs no task), so the wait for tasks to start is not exercised here:
/// actions_aws_mocks.rs scripts a service whose tasks start one poll later.
#[tokio::test]
async fn an_ecs_service_gets_its_desired_count_and_waits_for_running_tasks() {
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
    let step = Ecs::new(
        aws.ecs(SECONDARY),
        &cluster,
        "workers",
        SECONDARY,
        "workers",
        2,
    );
    let c = ctx("scale-up-workers", SECONDARY);
    let ran = drive(&step, &c).await.expect("scale");
    let Ran::Applied(applied, verified) = &ran else {
        panic!("{ran:?}")
    };
    assert!(applied.starts_with("UpdateService accepted"), "{applied}");
    assert!(verified.contains("2 of 2 tasks running"), "{verified}");
    let desired = ecs
        .describe_services()
        .cluster(&cluster)
        .services("workers")
        .send()
        .await
        .expect("describe")
        .services()[0]
        .desired_count();
    assert_eq!(desired, 2);
    let again = drive(&step, &c).await.expect("again");
    assert!(matches!(again, Ran::AlreadyDone(_)), "{again:?}");

    let none = Ecs::new(
        aws.ecs(SECONDARY),
        &cluster,
        "no-such-service",
        SECONDARY,
        "workers",
        2,
    );
    let e = none.check(&c).await.expect_err("missing");
    assert_eq!(e.class, ErrorClass::Fatal);
    assert!(
        e.message.starts_with(&format!(
            "ECS service `no-such-service` of cluster `{cluster}` in us-west-2 does not exist"
        )) && e.message.ends_with("check [targets.workers] in the policy"),
        "{}",
        e.message
    );
}

#[path = "actions_aws/more.rs"]
mod more;
