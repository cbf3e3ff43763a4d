//! TLS to the data stores against real servers and certificates made by the test: a
//! PostgreSQL that refuses connections without TLS, and a Redis that speaks only TLS.
//! The right CA passes, a wrong one fails with an error naming the endpoint, a wrong
//! host name fails `verify-full` but passes `verify-ca`; probes and failover steps all
//! connect through the same TLS-aware code.

#[path = "support/action_helpers.rs"]
mod actions;
#[path = "support/probe_helpers.rs"]
mod probes;
mod support;
#[path = "support/tls.rs"]
mod tls_helpers;

use std::path::{Path, PathBuf};
use std::time::Duration;

use lifeboat::action::cache::RedisInvalidate;
use lifeboat::action::postgres::Promote;
use lifeboat::action::postgres_fence::{CatchUp, Fence};
use lifeboat::clients::{pg, redis as redis_client};
use lifeboat::core::health::Role;
use lifeboat::core::model::CacheScope;
use lifeboat::core::model::{
    Endpoint, PostgresEndpoint, ProbeCheck, RegionName, SecretRef, SslMode,
};
use lifeboat::core::step::ErrorClass;
use lifeboat::runbook::Step;
use lifeboat::sandbox::postgres::{PgServer, StopMode};
use lifeboat::sandbox::process::free_port;
use tls_helpers::TestCa;

/// A single PostgreSQL server, stopped when dropped.
struct Running(PgServer);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.stop(StopMode::Immediate);
    }
}

fn server(dir: &Path) -> Running {
    let port = free_port().expect("port");
    Running(
        PgServer::init_primary("tls", dir.join("pg/primary"), port, support::PG_PASSWORD)
            .unwrap_or_else(|e| {
                panic!("could not start PostgreSQL ({e:#}); install it with tests/setup/install-deps.sh")
            }),
    )
}

fn password_file(dir: &Path) -> PathBuf {
    let pw = dir.join("pw");
    std::fs::write(&pw, support::PG_PASSWORD).expect("write the password file");
    pw
}

fn endpoint(port: u16, pw: &Path, sslmode: SslMode, ca_file: Option<&Path>) -> PostgresEndpoint {
    PostgresEndpoint {
        host: "127.0.0.1".into(),
        port,
        user: "lifeboat".into(),
        database: "orders".into(),
        password: Some(SecretRef::File(pw.to_path_buf())),
        sslmode,
        ca_file: ca_file.map(Path::to_path_buf),
    }
}

const BOUND: Duration = Duration::from_secs(5);

#[tokio::test(flavor = "multi_thread")]
async fn postgres_verify_full_passes_with_the_right_ca_and_names_the_endpoint_with_a_wrong_one() {
    let dir = support::tempdir();
    let pg = server(dir.path());
    let port = pg.0.port;
    let (ca, other) = (TestCa::new("right"), TestCa::new("wrong"));
    let cert = ca.server(&["127.0.0.1", "localhost"]);
    pg.0.enable_tls(&cert.cert_pem, &cert.key_pem, true)
        .expect("turn TLS on");
    let right = ca.write(dir.path(), "ca.pem");
    let wrong = other.write(dir.path(), "wrong-ca.pem");
    let pw = password_file(dir.path());

    let client = pg::connect(
        &endpoint(port, &pw, SslMode::VerifyFull, Some(&right)),
        BOUND,
    )
    .await
    .expect("verify-full with the CA that signed the server's certificate");
    let row = client
        .query_one(
            "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            &[],
        )
        .await
        .expect("query");
    assert!(row.get::<_, bool>(0), "the session is encrypted");

    let err = pg::connect(
        &endpoint(port, &pw, SslMode::VerifyFull, Some(&wrong)),
        BOUND,
    )
    .await
    .expect_err("a CA that did not sign the certificate");
    let msg = err.to_string();
    assert!(
        msg.starts_with(&format!("PostgreSQL lifeboat@127.0.0.1:{port}/orders: ")),
        "names the endpoint: {msg}"
    );
    assert!(
        msg.contains("not signed by a CA in") && msg.contains("wrong-ca.pem"),
        "says which check failed and against what: {msg}"
    );
    assert!(
        !err.is_unreachable(),
        "a refused certificate is not an unreachable server"
    );

    // The server takes nothing but TLS, so whatever connects above went through it.
    let plain = pg::connect(&endpoint(port, &pw, SslMode::Disable, None), BOUND)
        .await
        .expect_err("plain text is refused");
    assert!(plain.to_string().contains("no encryption"), "{plain}");
    // `require` encrypts without checking who answers, like libpq's.
    pg::connect(&endpoint(port, &pw, SslMode::Require, None), BOUND)
        .await
        .expect("require accepts any certificate");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_certificate_for_another_host_fails_verify_full_but_passes_verify_ca() {
    let dir = support::tempdir();
    let pg = server(dir.path());
    let port = pg.0.port;
    let ca = TestCa::new("names");
    let cert = ca.server(&["db.example.internal"]);
    pg.0.enable_tls(&cert.cert_pem, &cert.key_pem, true)
        .expect("turn TLS on");
    let ca_file = ca.write(dir.path(), "ca.pem");
    let pw = password_file(dir.path());

    let err = pg::connect(
        &endpoint(port, &pw, SslMode::VerifyFull, Some(&ca_file)),
        BOUND,
    )
    .await
    .expect_err("the certificate does not name 127.0.0.1");
    let msg = err.to_string();
    assert!(
        msg.contains("is for db.example.internal but lifeboat connected to 127.0.0.1"),
        "{msg}"
    );
    assert!(
        msg.contains("sslmode = \"verify-ca\""),
        "says the way out: {msg}"
    );

    pg::connect(
        &endpoint(port, &pw, SslMode::VerifyCa, Some(&ca_file)),
        BOUND,
    )
    .await
    .expect("verify-ca checks the chain only");
}

#[tokio::test(flavor = "multi_thread")]
async fn probes_and_the_fence_catch_up_and_promote_steps_reach_postgres_over_tls_only() {
    let dir = support::tempdir();
    let pair = support::pg_pair(dir.path());
    let (ca, other) = (TestCa::new("pair"), TestCa::new("impostor"));
    let cert = ca.server(&["127.0.0.1"]);
    for s in [&pair.primary, &pair.standby] {
        s.enable_tls(&cert.cert_pem, &cert.key_pem, true)
            .expect("turn TLS on");
    }
    let (ca_file, wrong) = (
        ca.write(dir.path(), "ca.pem"),
        other.write(dir.path(), "impostor-ca.pem"),
    );
    let pw = password_file(dir.path());
    let writer = endpoint(pair.primary.port, &pw, SslMode::VerifyFull, Some(&ca_file));
    let standby = endpoint(pair.standby.port, &pw, SslMode::VerifyFull, Some(&ca_file));

    let c = probes::ctx(BOUND, None);
    let seen = probes::round(
        ProbeCheck::Postgres,
        Some(Endpoint::Postgres(writer.clone())),
        &c,
    )
    .await;
    assert_eq!(probes::ok(&seen).role, Some(Role::Primary));
    let seen = probes::round(
        ProbeCheck::Postgres,
        Some(Endpoint::Postgres(standby.clone())),
        &c,
    )
    .await;
    assert_eq!(probes::ok(&seen).role, Some(Role::Standby));
    let mut impostor = writer.clone();
    impostor.ca_file = Some(wrong.clone());
    let refused = probes::round(
        ProbeCheck::Postgres,
        Some(Endpoint::Postgres(impostor.clone())),
        &c,
    )
    .await;
    assert!(
        probes::failed(&refused).contains("not signed by a CA in"),
        "{refused:?}"
    );

    // A server lifeboat cannot trust is not a dead one: the fence fails rather than
    // recording NOT FENCED and letting the failover promote beside a live writer.
    let e = actions::drive(
        &Fence::new(impostor, RegionName::new(actions::PRIMARY)),
        &actions::ctx("fence-old-primary", actions::PRIMARY),
    )
    .await
    .expect_err("an untrusted old primary");
    assert_eq!(e.class, ErrorClass::Fatal, "{}", e.message);
    assert!(e.message.contains("not signed by a CA in"), "{}", e.message);
    assert!(!pair.primary.in_recovery().expect("role"));

    let fenced = actions::drive(
        &Fence::new(writer.clone(), RegionName::new(actions::PRIMARY)),
        &actions::ctx("fence-old-primary", actions::PRIMARY),
    )
    .await
    .expect("fence over TLS");
    assert!(
        fenced.detail().contains("test write was refused"),
        "{fenced:?}"
    );
    let caught_up = CatchUp::new(
        standby.clone(),
        writer.clone(),
        RegionName::new(actions::SECONDARY),
        RegionName::new(actions::PRIMARY),
    );
    actions::drive(
        &caught_up,
        &actions::ctx("standby-caught-up", actions::SECONDARY),
    )
    .await
    .expect("catch-up over TLS");
    actions::drive(
        &Promote::new(standby, RegionName::new(actions::SECONDARY)),
        &actions::ctx("promote-standby", actions::SECONDARY),
    )
    .await
    .expect("promote over TLS");
    assert!(!pair.standby.in_recovery().expect("role"), "promoted");
}

#[tokio::test(flavor = "multi_thread")]
async fn rediss_checks_the_server_against_the_ca_file_in_the_probe_heartbeat_and_invalidation() {
    let dir = support::tempdir();
    let (ca, other) = (TestCa::new("redis"), TestCa::new("impostor"));
    let (cert, key) = ca
        .server(&["127.0.0.1", "localhost"])
        .write(dir.path(), "redis");
    let (ca_file, wrong) = (
        ca.write(dir.path(), "ca.pem"),
        other.write(dir.path(), "impostor-ca.pem"),
    );
    let port = free_port().expect("port");
    let _server = lifeboat::sandbox::redis::start_tls(
        &dir.path().join("redis"),
        "redis-tls",
        port,
        &cert,
        &key,
        &ca_file,
    )
    .unwrap_or_else(|e| {
        panic!(
            "could not start Redis with TLS ({e:#}); install it with tests/setup/install-deps.sh"
        )
    });
    let url = format!("rediss://127.0.0.1:{port}/0");
    let ep = |ca: &Path| Endpoint::Redis {
        url: url.clone(),
        password: None,
        ca_file: Some(ca.to_path_buf()),
    };
    let c = probes::ctx(BOUND, None);

    let pong = probes::round(ProbeCheck::Redis, Some(ep(&ca_file)), &c).await;
    assert_eq!(probes::ok(&pong).detail.as_deref(), Some("PONG"));
    let refused = probes::round(ProbeCheck::Redis, Some(ep(&wrong)), &c).await;
    let why = probes::failed(&refused);
    assert!(
        why.starts_with(&format!("redis rediss://127.0.0.1:{port}/0: ")),
        "names the endpoint: {why}"
    );
    assert!(
        why.contains("not signed by a CA in") && why.contains("impostor-ca.pem"),
        "{why}"
    );

    let mut conn = redis_client::connect(&url, None, Some(&ca_file), BOUND)
        .await
        .expect("connect over TLS");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    let () = ::redis::cmd("SET")
        .arg("workers:beat")
        .arg(now)
        .query_async(&mut conn)
        .await
        .expect("set");
    let beat = probes::round(
        probes::heartbeat(Some(Duration::from_secs(30)), Some("workers:beat"), None),
        Some(ep(&ca_file)),
        &c,
    )
    .await;
    probes::ok(&beat);

    let region = RegionName::new(actions::SECONDARY);
    let step_ctx = actions::ctx("flush-cache", actions::SECONDARY);
    let untrusted = RedisInvalidate::new(
        &url,
        None,
        Some(wrong.clone()),
        CacheScope::FlushDb,
        region.clone(),
    );
    let e = untrusted.check(&step_ctx).await.expect_err("untrusted");
    assert_eq!(e.class, ErrorClass::Fatal, "{}", e.message);
    let flush = RedisInvalidate::new(
        &url,
        None,
        Some(ca_file.clone()),
        CacheScope::FlushDb,
        region,
    );
    actions::drive(&flush, &step_ctx)
        .await
        .expect("flush over TLS");
    let keys: Vec<String> = ::redis::cmd("KEYS")
        .arg("*")
        .query_async(&mut conn)
        .await
        .expect("keys");
    assert!(keys.is_empty(), "{keys:?}");
}
