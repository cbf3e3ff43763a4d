//! Probe kinds that need no AWS against real local services: PostgreSQL (a primary and a
//! streaming standby), Redis, the fault-switchable HTTP endpoint and real programs.

#[path = "support/probe_helpers.rs"]
mod helpers;
mod support;

use std::time::{Duration, Instant};

use helpers::{REGION, ctx, failed, heartbeat, ok, round};
use lifeboat::core::health::Role;
use lifeboat::core::model::{Endpoint, PostgresEndpoint, ProbeCheck, SecretRef, SslMode};
use lifeboat::sandbox::endpoint::{self, Faults, Mode};
use lifeboat::sandbox::postgres::StopMode;
use lifeboat::sandbox::process::free_port;

// ---------------------------------------------------------------- postgres

fn pg_endpoint(port: u16, password: &std::path::Path) -> Endpoint {
    Endpoint::Postgres(PostgresEndpoint {
        host: "127.0.0.1".into(),
        port,
        user: "lifeboat".into(),
        database: "orders".into(),
        password: Some(SecretRef::File(password.to_path_buf())),
        sslmode: SslMode::Disable,
        ca_file: None,
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

    // Fenced the way postgres_fence does it: still up, not a standby, refusing writes.
    for sql in [
        "ALTER SYSTEM SET default_transaction_read_only = on",
        "SELECT pg_reload_conf()",
    ] {
        primary.sql(sql).expect("fence");
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    let fenced = loop {
        let f = probe_primary().await;
        if ok(&f).role != Some(Role::Primary) || Instant::now() > deadline {
            break f;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(ok(&fenced).role, Some(Role::Fenced), "{fenced:?}");
    assert!(
        fenced
            .detail
            .as_deref()
            .is_some_and(|d| d.starts_with("fenced"))
    );
    for sql in [
        "ALTER SYSTEM RESET default_transaction_read_only",
        "SELECT pg_reload_conf()",
    ] {
        primary.sql(sql).expect("unfence");
    }

    // The probe holds one idle connection between rounds, which tells at once when the
    // server goes away.
    let held = std::sync::Arc::new(helpers::build(
        ProbeCheck::Postgres,
        Some(pg_endpoint(primary.port, &pw)),
        &c,
    ));
    let watch = {
        let held = held.clone();
        tokio::spawn(async move { held.dropped().await })
    };
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(
        !watch.is_finished(),
        "the held connection ended while the server was up"
    );

    // The primary dies like a machine would.
    primary.stop(StopMode::Immediate).expect("stop the primary");
    let stopped = Instant::now();
    tokio::time::timeout(Duration::from_secs(2), watch)
        .await
        .expect("the held connection's end was noticed within 2 s of the stop")
        .expect("the watch ran");
    eprintln!(
        "the held connection ended {:?} after the stop",
        stopped.elapsed()
    );
    // With the server down nothing is held, and nothing claims it went away again.
    let again = tokio::time::timeout(Duration::from_millis(500), held.dropped()).await;
    assert!(again.is_err(), "dropped() returned with nothing to hold");
    let started = Instant::now();
    let down = probe_primary().await;
    let reason = failed(&down);
    // The margin absorbs a loaded machine; a hang would blow through it by far.
    assert!(started.elapsed() < timeout + Duration::from_secs(1));
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

#[tokio::test(flavor = "multi_thread")]
async fn a_lossy_link_that_resets_a_third_of_connections_rarely_fails_a_postgres_round() {
    use lifeboat::sandbox::proxy::{Proxy, ProxyMode};
    let dir = support::tempdir();
    let pair = support::pg_pair(dir.path());
    let pw = dir.path().join("pw");
    std::fs::write(&pw, support::PG_PASSWORD).expect("write the password file");
    let proxy = Proxy::start("db", 0, pair.primary.port)
        .await
        .expect("proxy");
    proxy.set_mode(ProxyMode::ResetSome { percent: 30 });
    let c = ctx(Duration::from_secs(2), None);
    let mut failed_rounds = Vec::new();
    for _ in 0..40 {
        let o = round(
            ProbeCheck::Postgres,
            Some(pg_endpoint(proxy.listen_port, &pw)),
            &c,
        )
        .await;
        if let Some(r) = o.reason() {
            failed_rounds.push(r.to_string());
        }
    }
    // One connection per round: 12 of 40 rounds would fail on the first reset. Retrying a
    // reset connection within the round leaves 0.3³ ≈ 3 %, about one round in 40.
    assert!(
        failed_rounds.len() <= 5,
        "{} of 40 rounds failed: {failed_rounds:?}",
        failed_rounds.len()
    );
    // A stopped server still fails the round, and at once.
    proxy.set_mode(ProxyMode::Pass);
    pair.primary.stop(StopMode::Immediate).expect("stop");
    let started = Instant::now();
    let o = round(
        ProbeCheck::Postgres,
        Some(pg_endpoint(proxy.listen_port, &pw)),
        &c,
    )
    .await;
    assert!(failed(&o).contains("could not connect"), "{o:?}");
    assert!(
        started.elapsed() < Duration::from_millis(500),
        "{:?}",
        started.elapsed()
    );
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
    assert!(started.elapsed() < Duration::from_millis(1500));
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
        ca_file: None,
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
    // The round closed its connection with a reset, so it left no port in TIME_WAIT (a
    // fleet probing one server hundreds of times a second would run out of ports).
    let (mut accepted, _) = listener.accept().expect("accept");
    let mut buf = [0u8; 1];
    let read = std::io::Read::read(&mut accepted, &mut buf);
    assert_eq!(
        read.as_ref().map_err(std::io::Error::kind).err(),
        Some(std::io::ErrorKind::ConnectionReset),
        "the probe's connection should end with a reset, not a FIN: {read:?}"
    );
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
    // A roomy timeout, so only the latency budget can fail this round.
    let roomy = ctx(Duration::from_secs(3), None);
    let slow = round(status_ok(), Some(ep.clone()), &roomy).await;
    assert!(
        failed(&slow).contains("HTTP 200, but slower than the 200ms latency budget (after "),
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
    assert!(started.elapsed() < timeout + Duration::from_secs(1));

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
    assert!(started.elapsed() < Duration::from_millis(1500));
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

#[tokio::test]
async fn an_http_heartbeat_fails_once_heartbeats_stop_for_longer_than_max_age() {
    let faults = Faults::new(REGION);
    let (port, task) = endpoint::spawn(faults.clone(), 0).await.expect("serve");
    let ep = Endpoint::Http {
        url: format!("http://127.0.0.1:{port}/heartbeat"),
    };
    let c = ctx(Duration::from_millis(500), None);
    let check = || heartbeat(Some(Duration::from_secs(1)), None, None);
    let beating = round(check(), Some(ep.clone()), &c).await;
    assert!(
        ok(&beating)
            .detail
            .as_deref()
            .is_some_and(|d| d.starts_with("last heartbeat 0."))
    );

    faults.set_heartbeats(false);
    ok(&round(check(), Some(ep.clone()), &c).await);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let stale = round(check(), Some(ep), &c).await;
    assert!(failed(&stale).contains("ago, older than 1s"), "{stale:?}");
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
        ca_file: None,
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
