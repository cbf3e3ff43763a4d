//! Every probe kind against real local services: PostgreSQL (a primary and a streaming
//! standby), Redis, the fault-switchable HTTP endpoint, moto's server for S3, RDS, Auto
//! Scaling and ECS, and real programs for command probes.

mod support;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use lifeboat::clients::aws::AwsClients;
use lifeboat::core::health::{Observation, Role};
use lifeboat::core::model::{
    Component, Endpoint, PostgresEndpoint, ProbeCheck, ProbeSpec, RegionName, SecretRef, Target,
    TargetKind,
};
use lifeboat::probe::{self, Clock, Context};
use lifeboat::sandbox::endpoint::{self, Faults, Mode};
use lifeboat::sandbox::postgres::StopMode;
use lifeboat::sandbox::process::free_port;

const REGION: &str = "us-east-1";

fn region() -> RegionName {
    RegionName::new(REGION)
}

fn ctx(timeout: Duration, aws: Option<AwsClients>) -> Context {
    Context::new(aws, timeout, Duration::from_secs(1))
}

/// Runs one round of a `check` probe on `endpoint` (no target for `None`).
async fn round(check: ProbeCheck, endpoint: Option<Endpoint>, ctx: &Context) -> Observation {
    let spec = ProbeSpec {
        name: "p".into(),
        component: Component::Api,
        critical: true,
        target: endpoint.as_ref().map(|_| "t".to_string()),
        regions: vec![region()],
        check,
    };
    let target = endpoint.map(|e| Target {
        name: "t".into(),
        kind: TargetKind::Http,
        regions: BTreeMap::from([(region(), e)]),
    });
    let p = probe::build(&spec, target.as_ref(), &region(), ctx).expect("build the probe");
    p.run(&Clock::system()).await
}

fn ok(obs: &Observation) -> &Observation {
    assert!(obs.is_ok(), "expected a pass, got {obs:?}");
    obs
}

fn failed(obs: &Observation) -> &str {
    obs.reason()
        .unwrap_or_else(|| panic!("expected a failure, got {obs:?}"))
}

// ---------------------------------------------------------------- postgres

fn pg_endpoint(port: u16, password: &std::path::Path) -> Endpoint {
    Endpoint::Postgres(PostgresEndpoint {
        host: "127.0.0.1".into(),
        port,
        user: "lifeboat".into(),
        database: "orders".into(),
        password: Some(SecretRef::File(password.to_path_buf())),
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn postgres_reports_roles_and_lag_and_a_stopped_primary_fails_clearly_within_the_timeout() {
    let dir = support::tempdir();
    let pair = support::pg_pair(dir.path());
    let pw = dir.path().join("pw");
    std::fs::write(&pw, support::PG_PASSWORD).expect("write the password file");
    let timeout = Duration::from_secs(2);
    let c = ctx(timeout, None);
    let (primary, standby) = (&pair.primary, &pair.standby);
    let probe_primary = || {
        round(
            ProbeCheck::Postgres,
            Some(pg_endpoint(primary.port, &pw)),
            &c,
        )
    };
    let probe_standby = || {
        round(
            ProbeCheck::Postgres,
            Some(pg_endpoint(standby.port, &pw)),
            &c,
        )
    };

    let p = probe_primary().await;
    assert_eq!(ok(&p).role, Some(Role::Primary));
    assert_eq!(p.lag, None);
    assert_eq!(p.detail.as_deref(), Some("primary"));

    // A replayed transaction gives the standby a replay timestamp to measure from.
    primary
        .sql_in(
            "orders",
            "CREATE TABLE t (n int, pad text); INSERT INTO t VALUES (0, '')",
        )
        .expect("write");
    standby
        .wait_caught_up(primary, Duration::from_secs(10))
        .expect("replicate");
    let s = probe_standby().await;
    assert_eq!(ok(&s).role, Some(Role::Standby));
    let lag = s.lag.expect("a standby reports lag");
    assert_eq!(
        (lag.bytes, lag.seconds, lag.streaming),
        (Some(0), Some(0.0), Some(true))
    );

    // Replay paused while WAL keeps arriving: received but not replayed is real lag.
    standby
        .sql("SELECT pg_wal_replay_pause()")
        .expect("pause replay");
    primary
        .sql_in(
            "orders",
            "INSERT INTO t SELECT g, repeat('x', 100) FROM generate_series(1, 20000) g",
        )
        .expect("write more");
    let target = primary.sql("SELECT pg_current_wal_lsn()").expect("lsn");
    let deadline = Instant::now() + Duration::from_secs(10);
    while standby
        .sql(&format!(
            "SELECT pg_last_wal_receive_lsn() >= '{target}'::pg_lsn"
        ))
        .expect("receive lsn")
        != "t"
    {
        assert!(
            Instant::now() < deadline,
            "the standby never received the WAL"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let behind = probe_standby().await;
    let lag = ok(&behind).lag.expect("lag");
    assert!(lag.bytes.is_some_and(|b| b > 1_000_000), "{lag:?}");
    assert!(lag.seconds.is_some_and(|s| s > 0.0), "{lag:?}");
    assert!(
        behind
            .detail
            .as_deref()
            .is_some_and(|d| d.starts_with("standby, lag "))
    );

    standby
        .sql("SELECT pg_wal_replay_resume()")
        .expect("resume replay");
    standby
        .wait_caught_up(primary, Duration::from_secs(10))
        .expect("catch up");
    let lag = ok(&probe_standby().await).lag.expect("lag");
    assert_eq!((lag.bytes, lag.seconds), (Some(0), Some(0.0)));

    // The primary dies like a machine would.
    primary.stop(StopMode::Immediate).expect("stop the primary");
    let started = Instant::now();
    let down = probe_primary().await;
    let reason = failed(&down);
    assert!(started.elapsed() < timeout + Duration::from_millis(500));
    let who = format!("postgres lifeboat@127.0.0.1:{}/orders", primary.port);
    assert!(
        reason.starts_with(&format!("{who}: could not connect")),
        "{reason}"
    );
    assert!(reason.contains("refused"), "{reason}");
    assert!(reason.contains("(after "), "{reason}");
    assert!(!reason.contains(support::PG_PASSWORD), "{reason}");

    // The orphaned standby still answers, and says its lag covers only what it received.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let s = probe_standby().await;
        let lag = ok(&s).lag.expect("lag");
        if lag.streaming == Some(false) {
            assert!(
                s.detail
                    .as_deref()
                    .is_some_and(|d| d.contains("only WAL already received"))
            );
            break;
        }
        assert!(Instant::now() < deadline, "the WAL receiver never stopped");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_server_that_accepts_but_never_answers_times_out_instead_of_hanging() {
    // The kernel completes the handshake from the backlog; nothing ever reads.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let dir = support::tempdir();
    let pw = dir.path().join("pw");
    std::fs::write(&pw, "x").expect("write");
    let started = Instant::now();
    let obs = round(
        ProbeCheck::Postgres,
        Some(pg_endpoint(port, &pw)),
        &ctx(Duration::from_millis(500), None),
    )
    .await;
    let reason = failed(&obs);
    assert!(started.elapsed() < Duration::from_millis(900));
    assert!(reason.contains(&format!("127.0.0.1:{port}")), "{reason}");
    assert!(reason.contains("500ms"), "{reason}");
}

// ---------------------------------------------------------------- redis and tcp

#[tokio::test]
async fn redis_answers_ping_and_a_stopped_server_fails() {
    let dir = support::tempdir();
    let mut server = support::redis(dir.path());
    let ep = Endpoint::Redis {
        url: format!("redis://127.0.0.1:{}/0", server.port),
        password: None,
    };
    let c = ctx(Duration::from_secs(1), None);
    let up = round(ProbeCheck::Redis, Some(ep.clone()), &c).await;
    assert_eq!(ok(&up).detail.as_deref(), Some("PONG"));

    server.kill();
    let down = round(ProbeCheck::Redis, Some(ep), &c).await;
    let reason = failed(&down);
    assert!(
        reason.starts_with(&format!(
            "redis redis://127.0.0.1:{}/0: could not connect",
            server.port
        )),
        "{reason}"
    );
}

#[tokio::test]
async fn tcp_passes_when_a_port_accepts_and_fails_when_nothing_listens() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let c = ctx(Duration::from_secs(1), None);
    let tcp = |port| Endpoint::Tcp {
        host: "127.0.0.1".into(),
        port,
    };
    ok(&round(ProbeCheck::Tcp, Some(tcp(port)), &c).await);
    let closed = free_port().expect("port");
    let obs = round(ProbeCheck::Tcp, Some(tcp(closed)), &c).await;
    assert!(failed(&obs).contains("Connection refused"), "{obs:?}");
}

// ---------------------------------------------------------------- http

fn http_check(json: Option<(&str, &str)>, max_latency: Option<Duration>) -> ProbeCheck {
    ProbeCheck::Http {
        expect_status: vec![200],
        body_contains: None,
        json_field: json.map(|(f, _)| f.to_string()),
        json_equals: json.map(|(_, v)| v.to_string()),
        max_latency,
    }
}

#[tokio::test]
async fn http_judges_status_body_json_field_and_latency_and_times_out_a_hang() {
    let faults = Faults::new(REGION);
    let (port, task) = endpoint::spawn(faults.clone(), 0).await.expect("serve");
    let url = format!("http://127.0.0.1:{port}/health");
    let ep = Endpoint::Http { url: url.clone() };
    let timeout = Duration::from_millis(500);
    let c = ctx(timeout, None);
    let status_ok = || http_check(Some(("status", "ok")), Some(Duration::from_millis(200)));

    let healthy = round(status_ok(), Some(ep.clone()), &c).await;
    assert_eq!(ok(&healthy).detail.as_deref(), Some("HTTP 200"));
    let contains = ProbeCheck::Http {
        expect_status: vec![200],
        body_contains: Some("\"cache\":\"ok\"".into()),
        json_field: None,
        json_equals: None,
        max_latency: None,
    };
    ok(&round(contains, Some(ep.clone()), &c).await);

    // A component the report names, with the wrong value.
    let db = round(
        http_check(Some(("database", "healthy")), None),
        Some(ep.clone()),
        &c,
    )
    .await;
    assert!(
        failed(&db).contains("JSON field `database` is \"ok\", expected \"healthy\""),
        "{db:?}"
    );

    faults.set_mode(Mode::Error);
    let error = round(status_ok(), Some(ep.clone()), &c).await;
    let reason = failed(&error);
    assert!(
        reason.starts_with(&format!("GET {url}: HTTP 500, expected 200: {{")),
        "{reason}"
    );

    faults.set_mode(Mode::Slow);
    faults.set_delay(Duration::from_millis(300));
    let slow = round(status_ok(), Some(ep.clone()), &c).await;
    assert!(
        failed(&slow).contains("HTTP 200, but slower than the 200ms latency budget (after 3"),
        "{slow:?}"
    );

    faults.set_mode(Mode::Garbage);
    let garbage = round(status_ok(), Some(ep.clone()), &c).await;
    assert!(
        failed(&garbage).contains("the body is not JSON"),
        "{garbage:?}"
    );

    faults.set_mode(Mode::Hang);
    let started = Instant::now();
    let hang = round(status_ok(), Some(ep.clone()), &c).await;
    assert_eq!(failed(&hang), format!("GET {url}: timed out after 500ms"));
    assert!(started.elapsed() < timeout + Duration::from_millis(300));

    task.abort();
    let refused = round(
        status_ok(),
        Some(Endpoint::Http {
            url: format!("http://127.0.0.1:{}/health", free_port().expect("port")),
        }),
        &c,
    )
    .await;
    assert!(
        failed(&refused).contains("could not connect"),
        "{refused:?}"
    );
}

// ---------------------------------------------------------------- command

fn command(args: &[&str]) -> ProbeCheck {
    ProbeCheck::Command {
        run: args.iter().map(|s| s.to_string()).collect(),
    }
}

#[tokio::test]
async fn commands_pass_on_exit_zero_fail_otherwise_and_are_killed_at_the_timeout() {
    let c = ctx(Duration::from_millis(500), None);
    let env = round(
        command(&[
            "sh",
            "-c",
            r#"test "$LIFEBOAT_REGION/$LIFEBOAT_PROBE" = us-east-1/p && echo fine"#,
        ]),
        None,
        &c,
    )
    .await;
    assert_eq!(ok(&env).detail.as_deref(), Some("exit status 0: fine"));

    let bad = round(
        command(&["sh", "-c", "echo replica is behind >&2; exit 3"]),
        None,
        &c,
    )
    .await;
    assert_eq!(
        failed(&bad).split(" (after").next(),
        Some(
            "command `sh -c echo replica is behind >&2; exit 3`: exit status 3: replica is behind"
        )
    );

    let missing = round(command(&["/nonexistent/check"]), None, &c).await;
    assert!(failed(&missing).contains("could not start /nonexistent/check"));

    // A hung check and the child it started are both killed, not left to pile up.
    let dir = support::tempdir();
    let pidfile = dir.path().join("pid");
    let script = format!("sleep 60 & echo $! > {}; wait", pidfile.display());
    let started = Instant::now();
    let hung = round(command(&["sh", "-c", &script]), None, &c).await;
    assert!(failed(&hung).ends_with("timed out after 500ms"), "{hung:?}");
    assert!(started.elapsed() < Duration::from_millis(800));
    let pid = std::fs::read_to_string(&pidfile).expect("the script wrote its child's pid");
    let stat = format!("/proc/{}/stat", pid.trim());
    let deadline = Instant::now() + Duration::from_secs(2);
    // Gone, or a zombie waiting for a reaper: either way no longer running.
    while std::fs::read_to_string(&stat).is_ok_and(|s| !s.contains(") Z ")) {
        assert!(
            Instant::now() < deadline,
            "the check's child survived the timeout"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

// ---------------------------------------------------------------- heartbeats

fn heartbeat(max_age: Option<Duration>, key: Option<&str>, min_count: Option<u32>) -> ProbeCheck {
    ProbeCheck::Heartbeat {
        max_age,
        key: key.map(str::to_string),
        min_count,
    }
}

#[tokio::test]
async fn an_http_heartbeat_fails_once_heartbeats_stop_for_longer_than_max_age() {
    let faults = Faults::new(REGION);
    let (port, task) = endpoint::spawn(faults.clone(), 0).await.expect("serve");
    let ep = Endpoint::Http {
        url: format!("http://127.0.0.1:{port}/heartbeat"),
    };
    let c = ctx(Duration::from_millis(500), None);
    let check = || heartbeat(Some(Duration::from_millis(400)), None, None);
    let beating = round(check(), Some(ep.clone()), &c).await;
    assert!(
        ok(&beating)
            .detail
            .as_deref()
            .is_some_and(|d| d.starts_with("last heartbeat 0."))
    );

    faults.set_heartbeats(false);
    ok(&round(check(), Some(ep.clone()), &c).await);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let stale = round(check(), Some(ep), &c).await;
    assert!(
        failed(&stale).contains("ago, older than 400ms"),
        "{stale:?}"
    );
    task.abort();
}

#[tokio::test]
async fn a_redis_heartbeat_reads_unix_seconds_from_a_key() {
    let dir = support::tempdir();
    let server = support::redis(dir.path());
    let url = format!("redis://127.0.0.1:{}/0", server.port);
    let ep = Endpoint::Redis {
        url: url.clone(),
        password: None,
    };
    let c = ctx(Duration::from_secs(1), None);
    let check = || heartbeat(Some(Duration::from_secs(30)), Some("workers:beat"), None);

    let missing = round(check(), Some(ep.clone()), &c).await;
    assert!(
        failed(&missing).contains("key workers:beat does not exist"),
        "{missing:?}"
    );

    let client = redis::Client::open(url.as_str()).expect("client");
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .expect("connect");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs_f64();
    for (value, fresh) in [(now - 2.0, true), (now - 120.0, false)] {
        let _: () = redis::cmd("SET")
            .arg("workers:beat")
            .arg(value.to_string())
            .query_async(&mut conn)
            .await
            .expect("set");
        let obs = round(check(), Some(ep.clone()), &c).await;
        assert_eq!(obs.is_ok(), fresh, "{obs:?}");
    }
}

// ---------------------------------------------------------------- AWS on moto

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
