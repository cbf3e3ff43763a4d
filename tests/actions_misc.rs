//! The steps that need no AWS: Redis invalidation against a real Redis, webhooks against
//! a local receiver, commands as real processes, wait_healthy over real HTTP probes,
//! and the factory's refusals.

#[path = "support/action_helpers.rs"]
mod helpers;
mod support;

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use helpers::{PRIMARY, Ran, SECONDARY, ctx, drive};
use lifeboat::action::cache::RedisInvalidate;
use lifeboat::action::command::Command;
use lifeboat::action::notify::{Notify, Via};
use lifeboat::action::wait::WaitHealthy;
use lifeboat::clients::secret::Secret;
use lifeboat::core::binding::{self, Binding};
use lifeboat::core::model::CacheScope;
use lifeboat::core::model::{Action, RegionName};
use lifeboat::core::step::{ErrorClass, TimelineEntry};
use lifeboat::core::time::Ts;
use lifeboat::runbook::{Check, Step, Verify};

// ---------------------------------------------------------------- redis

async fn redis_conn(url: &str) -> redis::aio::MultiplexedConnection {
    redis::Client::open(url)
        .expect("url")
        .get_multiplexed_async_connection()
        .await
        .expect("connect")
}

async fn count(conn: &mut redis::aio::MultiplexedConnection, pattern: &str) -> usize {
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(pattern)
        .query_async(conn)
        .await
        .expect("keys");
    keys.len()
}

#[tokio::test]
async fn redis_keys_matching_a_pattern_are_unlinked_in_batches_and_others_kept() {
    let dir = support::tempdir();
    let server = support::redis(dir.path());
    let url = format!("redis://127.0.0.1:{}/0", server.port);
    let mut conn = redis_conn(&url).await;
    let mut pipe = redis::pipe();
    for i in 0..1200 {
        pipe.set(format!("orders:{i}"), i).ignore();
    }
    for i in 0..5 {
        pipe.set(format!("sessions:{i}"), i).ignore();
    }
    let () = pipe.query_async(&mut conn).await.expect("fill");
    let region = RegionName::new(SECONDARY);
    let step = RedisInvalidate::new(
        &url,
        None,
        None,
        CacheScope::Pattern("orders:*".into()),
        region.clone(),
    );
    let c = ctx("flush-cache", SECONDARY);
    let ran = drive(&step, &c).await.expect("invalidate");
    let Ran::Applied(applied, _) = &ran else {
        panic!("{ran:?}")
    };
    assert!(
        applied.starts_with(
            "deleted 1200 key(s): keys matching `orders:*` in Redis redis://127.0.0.1:"
        ),
        "{applied}"
    );
    assert_eq!(count(&mut conn, "orders:*").await, 0);
    assert_eq!(
        count(&mut conn, "sessions:*").await,
        5,
        "other keys are kept"
    );
    let again = drive(&step, &c).await.expect("again");
    assert!(matches!(again, Ran::AlreadyDone(_)), "{again:?}");

    // A live application writes its cache again right away: that is not a failure.
    let _: () = redis::cmd("SET")
        .arg("orders:1")
        .arg("x")
        .query_async(&mut conn)
        .await
        .expect("set");
    let fresh = RedisInvalidate::new(
        &url,
        None,
        None,
        CacheScope::Pattern("orders:*".into()),
        region.clone(),
    );
    fresh.apply(&c).await.expect("apply");
    let _: () = redis::cmd("SET")
        .arg("orders:2")
        .arg("y")
        .query_async(&mut conn)
        .await
        .expect("set");
    match fresh.verify(&c).await.expect("verify") {
        Verify::Done(d) => assert!(d.contains("written since"), "{d}"),
        other => panic!("{other:?}"),
    }

    let flush = RedisInvalidate::new(&url, None, None, CacheScope::FlushDb, region.clone());
    drive(&flush, &c).await.expect("flush");
    assert_eq!(count(&mut conn, "*").await, 0);
    assert!(matches!(drive(&flush, &c).await, Ok(Ran::AlreadyDone(_))));

    let port = lifeboat::sandbox::process::free_port().expect("port");
    let nowhere = format!("redis://127.0.0.1:{port}/0");
    let gone = RedisInvalidate::new(&nowhere, None, None, CacheScope::FlushDb, region);
    let e = gone.check(&c).await.expect_err("nothing listens");
    assert_eq!(e.class, ErrorClass::Retryable);
    assert!(
        e.message.contains(&format!("127.0.0.1:{port}")),
        "{}",
        e.message
    );
}

// ---------------------------------------------------------------- webhook

#[derive(Clone, Default)]
struct Receiver {
    bodies: Arc<Mutex<Vec<serde_json::Value>>>,
    /// Statuses to answer with, in order; 200 once empty.
    script: Arc<Mutex<VecDeque<u16>>>,
}

async fn hook(State(r): State<Receiver>, body: axum::Json<serde_json::Value>) -> StatusCode {
    r.bodies.lock().expect("lock").push(body.0);
    let code = r.script.lock().expect("lock").pop_front().unwrap_or(200);
    StatusCode::from_u16(code).expect("status")
}

/// A local webhook receiver; its URL carries a token, as Slack's do.
async fn receiver() -> (Receiver, String) {
    let r = Receiver::default();
    let app = axum::Router::new()
        .route("/services/T000/B000/s3cr3t-token", post(hook))
        .with_state(r.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (r, format!("http://{addr}/services/T000/B000/s3cr3t-token"))
}

fn webhook(url: &str) -> Notify {
    Notify::new(
        "chat",
        Via::Webhook {
            client: reqwest::Client::new(),
            url: Secret::new(url),
        },
        Some("Status page: https://status.example.com".into()),
        "primary region down: 3 failed rounds of db".into(),
    )
}

#[tokio::test]
async fn a_webhook_gets_slack_text_and_the_runs_facts_and_failures_never_show_the_url() {
    let (r, url) = receiver().await;
    let step = webhook(&url);
    let mut c = ctx("chat", SECONDARY);
    c.timeline = vec![
        TimelineEntry {
            at: Ts::from_secs(1_795_437_296),
            step: None,
            what: "run started".into(),
        },
        TimelineEntry {
            at: Ts::from_secs(1_795_437_301),
            step: Some("promote-standby".into()),
            what: "verified: out of recovery".into(),
        },
    ];
    let ran = drive(&step, &c).await.expect("notify");
    assert!(
        matches!(&ran, Ran::Applied(a, _) if a == "posted to the webhook of channel `chat`: HTTP 200"),
        "{ran:?}"
    );
    let body = r.bodies.lock().expect("lock")[0].clone();
    let text = body["text"].as_str().expect("text");
    assert!(
        text.starts_with("lifeboat is running a failover of `orders` from us-east-1 to us-west-2 (run fo-test-1, epoch 3).\nWhy: primary region down: 3 failed rounds of db\nStatus page"),
        "{text}"
    );
    assert!(
        text.ends_with("• 12:35:01 promote-standby: verified: out of recovery"),
        "{text}"
    );
    let facts = &body["lifeboat"];
    assert_eq!(
        (
            facts["service"].as_str(),
            facts["direction"].as_str(),
            facts["from"].as_str(),
            facts["to"].as_str()
        ),
        (
            Some("orders"),
            Some("failover"),
            Some(PRIMARY),
            Some(SECONDARY)
        )
    );
    assert_eq!(
        (facts["run_id"].as_str(), facts["epoch"].as_u64()),
        (Some("fo-test-1"), Some(3))
    );
    assert_eq!(facts["timeline"].as_array().map(Vec::len), Some(2));
    // Notifications are sent every time: a second run sends again.
    assert!(matches!(step.check(&c).await, Ok(Check::NotDone(_))));

    r.script.lock().expect("lock").extend([503, 404]);
    let e = step.apply(&c).await.expect_err("503");
    assert_eq!(
        (e.class, e.message.as_str()),
        (
            ErrorClass::Retryable,
            "POST to the webhook of channel `chat`: HTTP 503"
        )
    );
    let e = step.apply(&c).await.expect_err("404");
    assert_eq!(e.class, ErrorClass::Fatal);
    assert!(!e.message.contains("s3cr3t"), "{}", e.message);

    let port = lifeboat::sandbox::process::free_port().expect("port");
    let gone = webhook(&format!(
        "http://127.0.0.1:{port}/services/T000/B000/s3cr3t-token"
    ));
    let e = gone.apply(&c).await.expect_err("refused");
    assert_eq!(e.class, ErrorClass::Retryable);
    assert_eq!(
        e.message,
        "POST to the webhook of channel `chat`: could not connect"
    );
}

// ---------------------------------------------------------------- command

fn sh(script: &str) -> Command {
    Command::new(vec!["sh".into(), "-c".into(), script.into()], vec![])
}

#[tokio::test]
async fn a_command_sees_the_run_in_its_environment_and_fails_with_its_last_words() {
    let c = ctx("run-hook", SECONDARY);
    let ok = sh(
        "echo \"$LIFEBOAT_RUN_ID $LIFEBOAT_EPOCH $LIFEBOAT_DIRECTION $LIFEBOAT_FROM $LIFEBOAT_TO $LIFEBOAT_REGION $LIFEBOAT_STEP\"",
    );
    assert!(
        matches!(ok.check(&c).await, Ok(Check::NotDone(_))),
        "commands run every time"
    );
    let ran = drive(&ok, &c).await.expect("run");
    let Ran::Applied(applied, _) = &ran else {
        panic!("{ran:?}")
    };
    assert!(
        applied.ends_with("exited 0: fo-test-1 3 failover us-east-1 us-west-2 us-west-2 run-hook"),
        "{applied}"
    );

    let e = sh("echo starting; echo one >&2; echo two >&2; exit 3")
        .apply(&c)
        .await
        .expect_err("exit 3");
    assert_eq!(e.class, ErrorClass::Fatal);
    assert!(
        e.message.ends_with("failed with exit status 3: one | two"),
        "{}",
        e.message
    );

    let e = Command::new(vec!["/nonexistent/lifeboat-hook".into()], vec![])
        .apply(&c)
        .await
        .expect_err("missing");
    assert!(
        e.message
            .starts_with("could not start `/nonexistent/lifeboat-hook`"),
        "{}",
        e.message
    );
}

#[tokio::test]
async fn a_command_is_killed_with_everything_it_started_at_the_step_deadline() {
    let dir = support::tempdir();
    let pidfile = dir.path().join("pid");
    let mut c = ctx("run-hook", SECONDARY);
    c.deadline = tokio::time::Instant::now() + Duration::from_millis(500);
    let slow = sh(&format!("sleep 30 & echo $! > {}; wait", pidfile.display()));
    let begun = std::time::Instant::now();
    let e = slow.apply(&c).await.expect_err("deadline");
    assert!(begun.elapsed() < Duration::from_secs(5));
    assert!(
        e.message
            .contains("did not finish before the step's deadline and was killed"),
        "{}",
        e.message
    );
    let pid = std::fs::read_to_string(&pidfile)
        .expect("pid")
        .trim()
        .to_string();
    let mut gone = false;
    for _ in 0..50 {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        // Gone, or a zombie waiting for init to reap it.
        if stat.is_empty() || stat.contains(") Z ") {
            gone = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        gone,
        "the command's background child {pid} outlived the deadline"
    );
}

// ---------------------------------------------------------------- wait_healthy

async fn health_server(up: Arc<AtomicBool>) -> u16 {
    let app = axum::Router::new().route(
        "/health",
        get(move || {
            let up = up.clone();
            async move {
                if up.load(Ordering::SeqCst) {
                    StatusCode::OK
                } else {
                    StatusCode::SERVICE_UNAVAILABLE
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    port
}

fn policy_with_api(dir: &std::path::Path, port: u16) -> lifeboat::core::model::Policy {
    let text = format!(
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
[targets.api]
kind = "http"
regions.us-east-1.url = "http://127.0.0.1:{port}/health"
regions.us-west-2.url = "http://127.0.0.1:{port}/health"
[[probes]]
name = "api"
component = "api"
kind = "http"
target = "api"
[[failover.steps]]
name = "hook"
kind = "command"
run = ["true"]
[[failback.steps]]
name = "healthy"
kind = "wait_healthy"
successes = 3
[[failback.steps]]
name = "hook"
kind = "command"
run = ["true"]
"#
    );
    let path = dir.join("policy.toml");
    std::fs::write(&path, text).expect("write policy");
    lifeboat::policy::load_valid(&path).expect("valid policy").0
}

#[tokio::test]
async fn wait_healthy_needs_n_passing_rounds_in_a_row_and_a_failure_starts_the_count_again() {
    let dir = support::tempdir();
    let up = Arc::new(AtomicBool::new(true));
    let port = health_server(up.clone()).await;
    let policy = policy_with_api(dir.path(), port);
    let probes =
        lifeboat::probe::Context::new(None, Duration::from_millis(500), Duration::from_secs(1));
    let region = RegionName::new(PRIMARY);
    let bind = |names: &[String]| {
        let action = Action::WaitHealthy {
            probes: names.to_vec(),
            successes: 3,
        };
        binding::bind(
            &policy,
            "healthy",
            &action,
            &region,
            &RegionName::new(SECONDARY),
        )
    };
    let Ok(Binding::WaitHealthy { probes: bound, .. }) = bind(&[]) else {
        panic!("every critical probe of the region binds")
    };
    let step = WaitHealthy::new(&probes, "healthy", &region, &bound, 3).expect("build");
    let c = ctx("healthy", PRIMARY);
    assert!(matches!(step.check(&c).await, Ok(Check::NotDone(_))));
    let seen = |v: Verify| match v {
        Verify::Done(d) | Verify::NotYet(d) => d,
    };
    assert_eq!(
        seen(step.verify(&c).await.expect("1")),
        "api in us-east-1 passed 1 of 3 round(s) in a row"
    );
    up.store(false, Ordering::SeqCst);
    let failed = seen(step.verify(&c).await.expect("fail"));
    assert!(
        failed.starts_with(
            "a probe in us-east-1 failed; the count starts again: api: GET http://127.0.0.1:"
        ),
        "{failed}"
    );
    up.store(true, Ordering::SeqCst);
    for n in 1..3 {
        assert!(
            matches!(step.verify(&c).await, Ok(Verify::NotYet(ref d)) if d.contains(&format!("passed {n} of 3")))
        );
    }
    match step.verify(&c).await.expect("3") {
        Verify::Done(d) => assert_eq!(d, "api in us-east-1 passed 3 round(s) in a row"),
        other => panic!("{other:?}"),
    }

    let e = bind(&["nope".into()]).expect_err("unknown probe");
    assert_eq!(
        e.to_string(),
        "step `healthy` waits for probe `nope`, which the policy does not define"
    );
}

// ---------------------------------------------------------------- the factory

#[test]
fn the_factory_refuses_what_it_cannot_bind_naming_what_is_missing() {
    use lifeboat::action::Factory;
    use lifeboat::core::ids::{Epoch, RunId};
    use lifeboat::core::model::Direction;
    use lifeboat::core::plan::{self, PlanRequest};
    use lifeboat::runbook::StepFactory;

    let dir = support::tempdir();
    let text = r#"
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
[channels.chat]
kind = "webhook"
url = { env = "LIFEBOAT_TEST_SURELY_UNSET_HOOK" }
[targets.db]
kind = "postgres"
user = "lifeboat"
database = "orders"
password = { file = "no-such-password-file" }
regions.us-east-1.host = "127.0.0.1"
regions.us-west-2.host = "127.0.0.1"
[targets.dns]
kind = "route53"
zone_id = "Z1"
record_name = "orders.example.com"
style = "failover_pair"
regions.us-east-1.set_identifier = "use1"
regions.us-west-2.set_identifier = "usw2"
[[probes]]
name = "db"
component = "database"
kind = "postgres"
target = "db"
[[failover.steps]]
name = "promote"
kind = "postgres_promote"
target = "db"
[[failover.steps]]
name = "dns"
kind = "route53_switch"
target = "dns"
[[failover.steps]]
name = "chat"
kind = "notify"
channel = "chat"
[[failover.steps]]
name = "hook"
kind = "command"
run = ["true"]
[[failback.steps]]
name = "healthy"
kind = "wait_healthy"
[[failback.steps]]
name = "dns"
kind = "route53_switch"
target = "dns"
"#;
    let path = dir.path().join("policy.toml");
    std::fs::write(&path, text).expect("write policy");
    let (policy, _) = lifeboat::policy::load_valid(&path).expect("valid policy");
    let plan = plan::build(
        &policy,
        PlanRequest {
            direction: Direction::Failover,
            from: policy.regions.primary.clone(),
            to: policy.regions.secondaries[0].clone(),
            run_id: RunId("fo-1".into()),
            epoch: Epoch(0),
            trigger: lifeboat::core::reason::Trigger::Operator {
                by: "test".into(),
                note: String::new(),
            },
            allow_data_loss: false,
        },
    )
    .expect("plan");
    let probes =
        lifeboat::probe::Context::new(None, Duration::from_millis(500), Duration::from_secs(1));
    let factory = Factory::new(None, probes);
    let build = |name: &str| factory.build(&plan, plan.step(name).expect("step")).err();

    let e = build("promote").expect("unreadable password");
    assert_eq!(e.class, ErrorClass::Fatal);
    assert!(
        e.message
            .starts_with("step `promote`: password: cannot read secret file"),
        "{}",
        e.message
    );
    let e = build("dns").expect("no AWS");
    assert_eq!(
        e.message,
        "step `dns` (route53_switch) calls AWS, but lifeboat was started without AWS configuration: set [aws] in the policy or the standard AWS environment"
    );
    let e = build("chat").expect("unset webhook secret");
    assert_eq!(
        e.message,
        "step `chat`: the webhook URL of channel `chat`: environment variable LIFEBOAT_TEST_SURELY_UNSET_HOOK is not set; export it in the environment lifeboat runs in"
    );
    assert!(
        build("hook").is_none(),
        "a command needs nothing but itself"
    );
}
