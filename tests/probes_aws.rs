//! AWS probe kinds against moto's server: the S3 canary, RDS instances and Aurora global
//! clusters, Auto Scaling and ECS heartbeats, and the factory over the sandbox policy.

#[path = "support/probe_helpers.rs"]
mod helpers;
mod support;

use std::time::Duration;

use helpers::{REGION, ctx, failed, heartbeat, ok, round};
use lifeboat::clients::aws::AwsClients;
use lifeboat::core::health::Role;
use lifeboat::core::model::{Endpoint, ProbeCheck, RegionName};
use lifeboat::probe;

#[tokio::test]
async fn the_s3_canary_round_trips_and_names_the_step_when_the_bucket_is_missing() {
    let moto = support::moto();
    let aws = AwsClients::for_emulator(&moto.url());
    let bucket = support::unique("canary");
    let s3 = aws.s3(REGION);
    s3.create_bucket()
        .bucket(&bucket)
        .send()
        .await
        .expect("create bucket");
    let c = ctx(Duration::from_secs(5), Some(aws.clone()));
    let ep = |bucket: &str| Endpoint::S3 {
        bucket: bucket.into(),
        prefix: "lifeboat-canary/".into(),
        aws_region: REGION.into(),
    };
    let obs = round(ProbeCheck::S3, Some(ep(&bucket)), &c).await;
    assert!(
        ok(&obs)
            .detail
            .as_deref()
            .is_some_and(|d| d.starts_with("put, read back, deleted"))
    );
    let left = s3
        .list_objects_v2()
        .bucket(&bucket)
        .send()
        .await
        .expect("list");
    assert_eq!(
        left.key_count(),
        Some(0),
        "the canary cleans up after itself"
    );

    let missing = round(ProbeCheck::S3, Some(ep("lifeboat-no-such-bucket")), &c).await;
    let reason = failed(&missing);
    assert!(
        reason.starts_with("s3://lifeboat-no-such-bucket/lifeboat-canary/: PutObject lifeboat-canary/canary-us-east-1-"),
        "{reason}"
    );
    assert!(reason.contains("NoSuchBucket"), "{reason}");

    // An S3 object's LastModified as a heartbeat.
    s3.put_object()
        .bucket(&bucket)
        .key("workers/heartbeat")
        .body(Vec::from(&b"beat"[..]).into())
        .send()
        .await
        .expect("put");
    let beat = round(
        heartbeat(
            Some(Duration::from_secs(60)),
            Some("workers/heartbeat"),
            None,
        ),
        Some(ep(&bucket)),
        &c,
    )
    .await;
    assert!(
        ok(&beat)
            .detail
            .as_deref()
            .is_some_and(|d| d.starts_with("last heartbeat"))
    );
}

#[tokio::test]
async fn rds_reports_available_instances_with_their_roles() {
    let moto = support::moto();
    let aws = AwsClients::for_emulator(&moto.url());
    let rds = aws.rds(REGION);
    let primary = support::unique("orders-db");
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
    let c = ctx(Duration::from_secs(5), Some(aws));
    let ep = |id: &str| Endpoint::RdsInstance {
        instance_id: id.into(),
        aws_region: REGION.into(),
    };
    let p = round(ProbeCheck::Rds, Some(ep(&primary)), &c).await;
    assert_eq!(ok(&p).role, Some(Role::Primary));
    assert_eq!(p.detail.as_deref(), Some("available, primary"));
    let r = round(ProbeCheck::Rds, Some(ep(&replica)), &c).await;
    assert_eq!(ok(&r).role, Some(Role::Standby));
    assert!(
        r.detail
            .as_deref()
            .is_some_and(|d| d.contains(&format!("replica of {primary}")))
    );

    let missing = round(ProbeCheck::Rds, Some(ep("no-such-db")), &c).await;
    assert!(
        failed(&missing).contains("DBInstanceNotFound"),
        "{missing:?}"
    );
}

#[tokio::test]
async fn an_auto_scaling_group_is_alive_with_enough_instances_in_service() {
    let moto = support::moto();
    let aws = AwsClients::for_emulator(&moto.url());
    let asg = aws.autoscaling(REGION);
    let name = support::unique("workers");
    asg.create_launch_configuration()
        .launch_configuration_name(&name)
        .image_id("ami-12c6146b")
        .instance_type("t3.micro")
        .send()
        .await
        .expect("launch configuration");
    asg.create_auto_scaling_group()
        .auto_scaling_group_name(&name)
        .launch_configuration_name(&name)
        .min_size(2)
        .max_size(4)
        .desired_capacity(2)
        .availability_zones("us-east-1a")
        .send()
        .await
        .expect("auto scaling group");
    let c = ctx(Duration::from_secs(5), Some(aws));
    let ep = Endpoint::Asg {
        group: name,
        aws_region: REGION.into(),
    };
    let alive = round(heartbeat(None, None, Some(2)), Some(ep.clone()), &c).await;
    assert_eq!(
        ok(&alive).detail.as_deref(),
        Some("in service 2 ≥ 2 (desired 2)")
    );
    let short = round(heartbeat(None, None, Some(3)), Some(ep), &c).await;
    assert!(
        failed(&short).contains("in service 2, fewer than 3 (desired 2)"),
        "{short:?}"
    );
}

#[tokio::test]
async fn the_sandbox_policy_builds_a_probe_per_probe_and_region() {
    let (policy, _) =
        lifeboat::policy::load_valid(std::path::Path::new("policies/sandbox.toml")).expect("valid");
    assert!(probe::needs_aws(&policy));
    let c = ctx(
        policy.detection.timeout,
        Some(AwsClients::for_emulator("http://127.0.0.1:1")),
    );
    let all = probe::build_all(&policy, &c, None).expect("build");
    let names: Vec<String> = all
        .iter()
        .map(|p| format!("{}@{}", p.name, p.region))
        .collect();
    assert_eq!(
        names,
        [
            "db@us-east-1",
            "db@us-west-2",
            "api@us-east-1",
            "api@us-west-2",
            "workers@us-east-1",
            "workers@us-west-2",
            "storage@us-east-1",
            "storage@us-west-2",
            "cache@us-east-1",
            "cache@us-west-2"
        ]
    );
    let west = probe::build_all(&policy, &c, Some(&RegionName::new("us-west-2"))).expect("build");
    assert_eq!(west.len(), 5);
    let no_aws = probe::build_all(&policy, &ctx(Duration::from_secs(1), None), None);
    assert!(no_aws.is_err(), "AWS probes need AWS clients");
}

#[tokio::test]
async fn aurora_clusters_report_writer_and_secondary_from_their_global_database() {
    let moto = support::moto();
    let aws = AwsClients::for_emulator(&moto.url());
    let global = support::unique("orders-global");
    let (east, west) = (format!("{global}-east"), format!("{global}-west"));
    aws.rds("us-east-1")
        .create_global_cluster()
        .global_cluster_identifier(&global)
        .engine("aurora-postgresql")
        .engine_version("15.4")
        .send()
        .await
        .expect("create global cluster");
    aws.rds("us-east-1")
        .create_db_cluster()
        .db_cluster_identifier(&east)
        .engine("aurora-postgresql")
        .engine_version("15.4")
        .global_cluster_identifier(&global)
        .master_username("lifeboat")
        .master_user_password("not-a-secret-moto-only")
        .send()
        .await
        .expect("create the writer cluster");
    aws.rds("us-west-2")
        .create_db_cluster()
        .db_cluster_identifier(&west)
        .engine("aurora-postgresql")
        .engine_version("15.4")
        .global_cluster_identifier(&global)
        .send()
        .await
        .expect("create the secondary cluster");
    let c = ctx(Duration::from_secs(5), Some(aws));
    let ep = |cluster: &str, aws_region: &str| {
        Endpoint::AuroraCluster(lifeboat::core::model::AuroraEndpoint {
            cluster_id: cluster.into(),
            global_cluster_id: global.clone(),
            aws_region: aws_region.into(),
        })
    };
    let w = round(ProbeCheck::Rds, Some(ep(&east, "us-east-1")), &c).await;
    assert_eq!(ok(&w).role, Some(Role::Primary));
    assert_eq!(w.detail, Some(format!("available, writer of {global}")));
    let s = round(ProbeCheck::Rds, Some(ep(&west, "us-west-2")), &c).await;
    assert_eq!(ok(&s).role, Some(Role::Standby));
    assert!(
        s.detail
            .as_deref()
            .is_some_and(|d| d.starts_with(&format!("available, secondary of {global}"))),
        "{s:?}"
    );
}

#[tokio::test]
async fn an_ecs_service_is_judged_by_its_running_count() {
    let moto = support::moto();
    let aws = AwsClients::for_emulator(&moto.url());
    let ecs = aws.ecs(REGION);
    let cluster = support::unique("workers");
    ecs.create_cluster()
        .cluster_name(&cluster)
        .send()
        .await
        .expect("cluster");
    let container = aws_sdk_ecs::types::ContainerDefinition::builder()
        .name("worker")
        .image("busybox")
        .memory(64)
        .build();
    ecs.register_task_definition()
        .family(&cluster)
        .container_definitions(container)
        .send()
        .await
        .expect("task definition");
    ecs.create_service()
        .cluster(&cluster)
        .service_name("worker")
        .task_definition(&cluster)
        .desired_count(2)
        .send()
        .await
        .expect("service");
    let c = ctx(Duration::from_secs(5), Some(aws));
    let ep = |service: &str| Endpoint::Ecs {
        cluster: cluster.clone(),
        service: service.into(),
        aws_region: REGION.into(),
    };
    // moto starts no tasks, so a service it reports always runs 0 of its desired count:
    // the unhealthy side of the check, which is the one that matters.
    let idle = round(heartbeat(None, None, Some(1)), Some(ep("worker")), &c).await;
    assert!(
        failed(&idle).contains("running 0, fewer than 1 (desired 2)"),
        "{idle:?}"
    );
    let missing = round(heartbeat(None, None, Some(1)), Some(ep("nope")), &c).await;
    assert!(
        failed(&missing).contains("no such ECS service (MISSING)"),
        "{missing:?}"
    );
}
