//! The shared connection layer against real servers: errors name the endpoint, never the
//! secret, and come back within the timeout.

mod support;

use std::time::{Duration, Instant};

use lifeboat::clients::{aws::AwsClients, pg, redis};
use lifeboat::core::model::{PostgresEndpoint, SecretRef, SslMode};

fn endpoint(port: u16, password_file: &std::path::Path) -> PostgresEndpoint {
    PostgresEndpoint {
        host: "127.0.0.1".into(),
        port,
        user: "lifeboat".into(),
        database: "orders".into(),
        password: Some(SecretRef::File(password_file.to_path_buf())),
        sslmode: SslMode::Disable,
        ca_file: None,
    }
}

#[tokio::test]
async fn postgres_connects_with_a_referenced_password_and_bad_ones_fail_without_leaking() {
    let dir = support::tempdir();
    let pair = support::pg_pair(dir.path());
    let good = dir.path().join("pw");
    std::fs::write(&good, format!("{}\n", support::PG_PASSWORD)).expect("write");
    let client = pg::connect(&endpoint(pair.primary.port, &good), Duration::from_secs(3))
        .await
        .expect("connect");
    let row = client
        .query_one("SELECT 1::int4", &[])
        .await
        .expect("query");
    assert_eq!(row.get::<_, i32>(0), 1);

    let bad = dir.path().join("bad");
    std::fs::write(&bad, "not-the-password-xyzzy").expect("write");
    let err = pg::connect(&endpoint(pair.primary.port, &bad), Duration::from_secs(3))
        .await
        .expect_err("wrong password");
    let msg = err.to_string();
    assert!(
        msg.contains(&format!("lifeboat@127.0.0.1:{}/orders", pair.primary.port)),
        "{msg}"
    );
    assert!(msg.contains("password authentication failed"), "{msg}");
    assert!(!msg.contains("xyzzy"), "{msg}");
}

#[tokio::test]
async fn an_unreachable_postgres_fails_fast_naming_the_endpoint() {
    let port = lifeboat::sandbox::process::free_port().expect("port");
    let dir = support::tempdir();
    let pw = dir.path().join("pw");
    std::fs::write(&pw, "x").expect("write");
    let started = Instant::now();
    let err = pg::connect(&endpoint(port, &pw), Duration::from_secs(2))
        .await
        .expect_err("nothing listens");
    assert!(started.elapsed() < Duration::from_secs(3));
    assert!(
        err.to_string().contains(&format!("127.0.0.1:{port}")),
        "{err}"
    );
}

#[tokio::test]
async fn redis_connects() {
    let dir = support::tempdir();
    let server = support::redis(dir.path());
    let mut conn = redis::connect(
        &format!("redis://127.0.0.1:{}/0", server.port),
        None,
        None,
        Duration::from_secs(2),
    )
    .await
    .expect("connect");
    let pong: String = ::redis::cmd("PING")
        .query_async(&mut conn)
        .await
        .expect("ping");
    assert_eq!(pong, "PONG");
}

#[tokio::test]
async fn aws_clients_reach_the_emulator() {
    let moto = support::moto();
    let clients = AwsClients::for_emulator(&moto.url());
    let bucket = support::unique("clients");
    let s3 = clients.s3("us-east-1");
    s3.create_bucket()
        .bucket(&bucket)
        .send()
        .await
        .expect("create bucket");
    let listed = s3.list_buckets().send().await.expect("list");
    assert!(
        listed
            .buckets()
            .iter()
            .any(|b| b.name() == Some(bucket.as_str()))
    );
    let missing = s3
        .head_bucket()
        .bucket("lifeboat-no-such-bucket")
        .send()
        .await
        .expect_err("no bucket");
    assert!(
        !lifeboat::clients::aws::is_retryable(&missing),
        "404 is not retryable"
    );
}
