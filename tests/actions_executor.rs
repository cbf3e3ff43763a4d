//! The real factory under the real executor: a policy's failover runbook (fence,
//! promote, DNS, scale, notify) run against a PostgreSQL pair, moto and a local webhook
//! receiver, journaled in a temporary directory; then the same failover again, which
//! finds every effect in place.

mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::routing::post;
use lifeboat::action::Factory;
use lifeboat::clients::aws::AwsClients;
use lifeboat::core::ids::{Epoch, RunId};
use lifeboat::core::model::Direction;
use lifeboat::core::plan::{self, PlanRequest};
use lifeboat::core::step::StepState;
use lifeboat::runbook::{Executor, RunOutcome};
use lifeboat::sandbox::aws::{Names, active_region, provision};
use tokio_postgres::NoTls;

async fn receiver() -> (Arc<Mutex<Vec<serde_json::Value>>>, String) {
    let bodies: Arc<Mutex<Vec<serde_json::Value>>> = Arc::default();
    let app = axum::Router::new()
        .route(
            "/hook",
            post(
                |State(b): State<Arc<Mutex<Vec<serde_json::Value>>>>,
                 body: axum::Json<serde_json::Value>| async move {
                    b.lock().expect("lock").push(body.0);
                },
            ),
        )
        .with_state(bodies.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (bodies, format!("http://{addr}/hook"))
}

async fn write_order(port: u16, n: i64) -> Result<(), String> {
    let dsn = format!(
        "host=127.0.0.1 port={port} user=lifeboat password={} dbname=orders",
        support::PG_PASSWORD
    );
    let (c, conn) = tokio_postgres::connect(&dsn, NoTls)
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    c.execute("INSERT INTO orders (n) VALUES ($1)", &[&n])
        .await
        .map(|_| ())
        .map_err(|e| {
            e.code()
                .map(|c| c.code().to_string())
                .unwrap_or(e.to_string())
        })
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failover_runbook_runs_through_the_executor_and_a_second_run_finds_everything_in_place() {
    let dir = support::tempdir();
    let pair = support::pg_pair(dir.path());
    pair.primary
        .sql_in(
            "orders",
            "CREATE TABLE orders (n bigint PRIMARY KEY); ALTER TABLE orders OWNER TO lifeboat",
        )
        .expect("table");
    pair.standby
        .wait_caught_up(&pair.primary, Duration::from_secs(10))
        .expect("replicate");
    let moto = support::moto();
    let aws = AwsClients::for_emulator(&moto.url());
    let zone = format!("{}.lifeboat.test.", support::unique("x"));
    let names = Names {
        record: format!("orders.{zone}"),
        zone,
        regions: vec![
            ("us-east-1".into(), "us-east-1".into(), "192.0.2.10".into()),
            (
                "us-west-2".into(),
                "us-west-2".into(),
                "198.51.100.10".into(),
            ),
        ],
        buckets: vec![],
        groups: vec![
            ("us-east-1".into(), support::unique("workers-use1"), 2),
            ("us-west-2".into(), support::unique("workers-usw2"), 1),
        ],
        topic: support::unique("ops"),
    };
    let p = provision(&aws, &names).await.expect("provision");
    let (bodies, hook) = receiver().await;
    std::fs::write(dir.path().join("pw"), support::PG_PASSWORD).expect("pw");
    std::fs::write(dir.path().join("hook"), &hook).expect("hook");

    let policy_text = format!(
        r#"
[service]
name = "orders"
[regions]
primary = "us-east-1"
secondaries = ["us-west-2"]
[detection]
interval = "1s"
timeout = "500ms"
failure_threshold = 3
mode = "manual"
[aws]
region = "us-east-1"
endpoint_url = "{moto}"
[channels.chat]
kind = "webhook"
url = {{ file = "hook" }}
[targets.orders-db]
kind = "postgres"
user = "lifeboat"
database = "orders"
password = {{ file = "pw" }}
regions.us-east-1 = {{ host = "127.0.0.1", port = {pp} }}
regions.us-west-2 = {{ host = "127.0.0.1", port = {sp} }}
[targets.dns]
kind = "route53"
zone_id = "{zone_id}"
record_name = "{record}"
record_type = "A"
style = "failover_pair"
ttl = 30
regions.us-east-1.set_identifier = "us-east-1"
regions.us-west-2.set_identifier = "us-west-2"
[targets.workers]
kind = "asg"
regions.us-east-1.group = "{g1}"
regions.us-west-2.group = "{g2}"
[[probes]]
name = "db"
component = "database"
kind = "postgres"
target = "orders-db"
[[failover.steps]]
name = "fence-old-primary"
kind = "postgres_fence"
target = "orders-db"
region = "@from"
[[failover.steps]]
name = "promote-standby"
kind = "postgres_promote"
target = "orders-db"
region = "@to"
[[failover.steps]]
name = "move-dns"
kind = "route53_switch"
target = "dns"
region = "@to"
[[failover.steps]]
name = "scale-up-workers"
kind = "asg_scale"
target = "workers"
region = "@to"
min = 2
desired = 2
max = 4
[[failover.steps]]
name = "tell-chat"
kind = "notify"
channel = "chat"
[[failback.steps]]
name = "primary-healthy"
kind = "wait_healthy"
region = "@to"
successes = 2
[[failback.steps]]
name = "dns-back"
kind = "route53_switch"
target = "dns"
region = "@to"
"#,
        moto = moto.url(),
        pp = pair.primary.port,
        sp = pair.standby.port,
        zone_id = p.zone_id,
        record = names.record,
        g1 = names.groups[0].1,
        g2 = names.groups[1].1,
    );
    let path = dir.path().join("orders.toml");
    std::fs::write(&path, policy_text).expect("policy");
    let (policy, _) = lifeboat::policy::load_valid(&path).expect("a valid policy");
    let policy = Arc::new(policy);
    let probes = lifeboat::probe::Context::new(
        Some(aws.clone()),
        policy.detection.timeout,
        policy.detection.interval,
    );
    let factory = Arc::new(Factory::new(Some(aws.clone()), probes));
    let journal = Arc::new(
        lifeboat::journal::Journal::open_or_create(&dir.path().join("journal.db"))
            .expect("journal"),
    );
    let exec = Executor::new(journal.clone(), factory).actor("actions test");
    let plan_for = |run: &str| {
        plan::build(
            &policy,
            PlanRequest {
                direction: Direction::Failover,
                from: policy.regions.primary.clone(),
                to: policy.regions.secondaries[0].clone(),
                run_id: RunId(run.into()),
                epoch: Epoch(0),
                trigger: lifeboat::core::reason::Trigger::Operator {
                    by: "test".into(),
                    note: "primary region down: 3 failed rounds of db".into(),
                },
                allow_data_loss: false,
            },
        )
        .expect("plan")
    };

    write_order(pair.primary.port, 1).await.expect("before");
    let out = exec.start(plan_for("fo-1"), "test").await.expect("run");
    assert_eq!(out, RunOutcome::Completed);
    let states: Vec<(String, StepState)> = journal
        .steps(&RunId("fo-1".into()))
        .expect("steps")
        .into_iter()
        .map(|s| (s.name, s.state))
        .collect();
    assert!(
        states.iter().all(|(_, s)| *s == StepState::Verified),
        "{states:?}"
    );
    assert_eq!(
        write_order(pair.primary.port, 2).await,
        Err("25006".into()),
        "the old primary refuses writes"
    );
    write_order(pair.standby.port, 3)
        .await
        .expect("the new primary takes writes");
    assert_eq!(
        active_region(&aws, &p.zone_id, &names.record, &p.health_check_id)
            .await
            .expect("dns"),
        "us-west-2"
    );
    let group = aws
        .autoscaling("us-west-2")
        .describe_auto_scaling_groups()
        .auto_scaling_group_names(&names.groups[1].1)
        .send()
        .await
        .expect("describe");
    assert_eq!(group.auto_scaling_groups()[0].desired_capacity(), Some(2));
    {
        let bodies = bodies.lock().expect("lock");
        assert_eq!(bodies.len(), 1);
        let timeline = bodies[0]["lifeboat"]["timeline"]
            .as_array()
            .expect("timeline")
            .clone();
        assert!(
            timeline
                .iter()
                .any(|e| e["step"].as_str() == Some("move-dns")),
            "the notification carries the run so far: {timeline:?}"
        );
    }

    // The same failover again: every effect is in place, so nothing is applied; only
    // the notification goes out again.
    let out = exec.start(plan_for("fo-2"), "test").await.expect("run");
    assert_eq!(out, RunOutcome::Completed);
    let states: Vec<(String, StepState)> = journal
        .steps(&RunId("fo-2".into()))
        .expect("steps")
        .into_iter()
        .map(|s| (s.name, s.state))
        .collect();
    let expect = |n: &str, s: StepState| (n.to_string(), s);
    assert_eq!(
        states,
        vec![
            expect("fence-old-primary", StepState::Skipped),
            expect("promote-standby", StepState::Skipped),
            expect("move-dns", StepState::Skipped),
            expect("scale-up-workers", StepState::Skipped),
            expect("tell-chat", StepState::Verified),
        ]
    );
    assert_eq!(bodies.lock().expect("lock").len(), 2);
}
