//! The PostgreSQL steps against a real primary and streaming standby: fence, promote
//! (with its RPO gate) and catch-up, each run twice (the second run finds its effect in
//! place), and their error paths.

#[path = "support/action_helpers.rs"]
mod helpers;
mod support;

use std::time::Duration;

use helpers::{PRIMARY, Ran, SECONDARY, ctx, drive, pg_endpoint};
use lifeboat::action::NOT_FENCED;
use lifeboat::action::postgres::Promote;
use lifeboat::action::postgres_fence::{CatchUp, Fence};
use lifeboat::core::model::RegionName;
use lifeboat::core::step::ErrorClass;
use lifeboat::runbook::{Check, Step};
use lifeboat::sandbox::postgres::StopMode;
use lifeboat::sandbox::process::free_port;
use tokio_postgres::NoTls;

fn region(r: &str) -> RegionName {
    RegionName::new(r)
}

/// A connection as the application makes it (the `lifeboat` role, over TCP).
async fn app_session(port: u16) -> tokio_postgres::Client {
    let dsn = format!(
        "host=127.0.0.1 port={port} user=lifeboat password={} dbname=orders",
        support::PG_PASSWORD
    );
    let (client, conn) = tokio_postgres::connect(&dsn, NoTls)
        .await
        .expect("application session");
    tokio::spawn(async move {
        let _ = conn.await;
    });
    client
}

/// Writes one order as the application would; the error's SQLSTATE when refused.
async fn write_order(port: u16, n: i64) -> Result<(), String> {
    let c = app_session(port).await;
    c.execute("INSERT INTO orders (n) VALUES ($1)", &[&n])
        .await
        .map(|_| ())
        .map_err(|e| {
            e.code()
                .map(|c| c.code().to_string())
                .unwrap_or(e.to_string())
        })
}

fn password_file(dir: &tempfile::TempDir) -> std::path::PathBuf {
    let pw = dir.path().join("pw");
    std::fs::write(&pw, support::PG_PASSWORD).expect("write the password file");
    pw
}

fn create_orders_table(pair: &lifeboat::sandbox::postgres::PgPair) {
    pair.primary
        .sql_in(
            "orders",
            "CREATE TABLE orders (n bigint PRIMARY KEY); ALTER TABLE orders OWNER TO lifeboat",
        )
        .expect("create the orders table");
    pair.standby
        .wait_caught_up(&pair.primary, Duration::from_secs(10))
        .expect("replicate");
}

/// The test write the steps use (a temporary table in a transaction rolled back) is
/// refused by a standby and by a read-only session, as PostgreSQL 15 documents for
/// every CREATE, temporary tables included.
#[tokio::test(flavor = "multi_thread")]
async fn the_test_write_is_refused_by_a_standby_and_by_a_read_only_session() {
    let dir = support::tempdir();
    let pair = support::pg_pair(dir.path());
    let write = "BEGIN; CREATE TEMPORARY TABLE lifeboat_write_check (at timestamptz) ON COMMIT DROP; \
                 INSERT INTO lifeboat_write_check VALUES (now()); ROLLBACK";
    pair.primary
        .sql(write)
        .expect("a primary takes the test write");
    let on_standby = pair.standby.sql(write).expect_err("a standby refuses it");
    assert!(
        format!("{on_standby:#}").contains("read-only transaction"),
        "{on_standby:#}"
    );
    let read_only = pair
        .primary
        .sql(&write.replacen("BEGIN", "BEGIN TRANSACTION READ ONLY", 1))
        .expect_err("a read-only session refuses it");
    assert!(
        format!("{read_only:#}").contains("cannot execute CREATE TABLE in a read-only transaction"),
        "{read_only:#}"
    );
    assert_eq!(
        pair.primary
            .sql("SELECT count(*) FROM pg_class WHERE relname = 'lifeboat_write_check'")
            .expect("query"),
        "0",
        "the test write leaves nothing behind"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn after_fence_and_promote_the_old_primary_refuses_writes_and_the_new_one_takes_them() {
    let dir = support::tempdir();
    let pair = support::pg_pair(dir.path());
    let pw = password_file(&dir);
    create_orders_table(&pair);
    let (old, new) = (pair.primary.port, pair.standby.port);
    write_order(old, 1).await.expect("the primary takes writes");
    // An application session open across the fence: it must be ended.
    let open = app_session(old).await;

    let fence = Fence::new(pg_endpoint(old, &pw), region(PRIMARY));
    let c = ctx("fence-old-primary", PRIMARY);
    let ran = drive(&fence, &c).await.expect("fence");
    let Ran::Applied(applied, verified) = &ran else {
        panic!("expected the fence to be applied: {ran:?}")
    };
    assert!(
        applied.starts_with("fenced old primary lifeboat@127.0.0.1:"),
        "{applied}"
    );
    assert!(applied.contains("client session(s) ended"), "{applied}");
    assert!(
        verified.contains("a new session's test write was refused"),
        "{verified}"
    );
    assert!(
        open.simple_query("SELECT 1").await.is_err(),
        "a session from before the fence was ended"
    );
    assert_eq!(
        write_order(old, 2).await,
        Err("25006".to_string()),
        "the fenced old primary refuses writes"
    );
    // The fence is persisted: it holds after a restart.
    pair.primary.stop(StopMode::Fast).expect("stop");
    pair.primary.start().expect("start");
    assert_eq!(write_order(old, 3).await, Err("25006".to_string()));

    let promote = Promote::new(pg_endpoint(new, &pw), region(SECONDARY));
    let c = ctx("promote-standby", SECONDARY);
    match promote.check(&c).await.expect("check") {
        Check::NotDone(d) => assert!(d.contains("is a standby"), "{d}"),
        other => panic!("{other:?}"),
    }
    let ran = drive(&promote, &c).await.expect("promote");
    assert!(
        ran.detail()
            .ends_with("is out of recovery and a test write succeeded"),
        "{ran:?}"
    );
    write_order(new, 4)
        .await
        .expect("the new primary takes writes");
    assert_eq!(write_order(old, 5).await, Err("25006".to_string()));
    let on_new = pair
        .standby
        .sql_in(
            "orders",
            "SELECT string_agg(n::text, ',' ORDER BY n) FROM orders",
        )
        .expect("read");
    assert_eq!(
        on_new, "1,4",
        "the promoted standby has the old primary's write"
    );

    // Second runs: each finds its effect in place and applies nothing.
    let again = drive(&fence, &ctx("fence-old-primary", PRIMARY))
        .await
        .expect("fence again");
    assert!(
        matches!(again, Ran::AlreadyDone(ref d) if d.contains("is fenced")),
        "{again:?}"
    );
    let again = drive(&promote, &c).await.expect("promote again");
    assert!(matches!(again, Ran::AlreadyDone(_)), "{again:?}");

    // A failback promotes a node an earlier failover fenced: promotion lifts the fence.
    let back = Promote::new(pg_endpoint(old, &pw), region(PRIMARY));
    let c = ctx("promote-primary", PRIMARY);
    match back.check(&c).await.expect("check") {
        Check::NotDone(d) => assert!(d.contains("refuses writes"), "{d}"),
        other => panic!("{other:?}"),
    }
    drive(&back, &c).await.expect("promote the fenced node");
    write_order(old, 6)
        .await
        .expect("the unfenced node takes writes");
}

#[tokio::test(flavor = "multi_thread")]
async fn promotion_waits_for_approval_when_the_lag_exceeds_the_budget_unless_loss_is_accepted() {
    let dir = support::tempdir();
    let pair = support::pg_pair(dir.path());
    let pw = password_file(&dir);
    create_orders_table(&pair);
    // Replay stops while WAL keeps arriving: real lag.
    pair.standby
        .sql("SELECT pg_wal_replay_pause()")
        .expect("pause replay");
    pair.primary
        .sql_in(
            "orders",
            "INSERT INTO orders SELECT g FROM generate_series(1, 1000) g",
        )
        .expect("write");
    let target = pair
        .primary
        .sql("SELECT pg_current_wal_lsn()")
        .expect("lsn");
    for _ in 0..200 {
        let got = pair
            .standby
            .sql(&format!(
                "SELECT pg_last_wal_receive_lsn() >= '{target}'::pg_lsn"
            ))
            .expect("receive lsn");
        if got == "t" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(1100)).await;

    let promote = Promote::new(pg_endpoint(pair.standby.port, &pw), region(SECONDARY));
    let mut c = ctx("promote-standby", SECONDARY);
    c.rpo_budget = Duration::from_millis(500);
    let e = promote.apply(&c).await.expect_err("over budget");
    assert_eq!(e.class, ErrorClass::NeedsApproval);
    assert!(
        e.message.starts_with("replica lag ") && e.message.contains("exceeds the RPO budget 500ms"),
        "{}",
        e.message
    );
    assert!(
        e.message.contains("approve with --allow-data-loss"),
        "{}",
        e.message
    );
    assert!(
        pair.standby.in_recovery().expect("role"),
        "nothing was promoted"
    );

    c.allow_data_loss = true;
    c.approved_by = Some("alice".into());
    let ran = drive(&promote, &c).await.expect("promote");
    let Ran::Applied(applied, _) = ran else {
        panic!("{ran:?}")
    };
    assert!(applied.contains("data loss accepted by alice"), "{applied}");
    // Promotion replays what was received first: nothing received is lost.
    assert_eq!(
        pair.standby
            .sql_in("orders", "SELECT count(*) FROM orders")
            .expect("count"),
        "1000"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unreachable_old_primary_is_recorded_as_not_fenced_and_the_failover_goes_on() {
    let dir = support::tempdir();
    let pw = password_file(&dir);
    let port = free_port().expect("port");
    let fence = Fence::new(pg_endpoint(port, &pw), region(PRIMARY));
    let ran = drive(&fence, &ctx("fence-old-primary", PRIMARY))
        .await
        .expect("fence");
    let Ran::Applied(applied, verified) = &ran else {
        panic!("{ran:?}")
    };
    for d in [applied, verified] {
        assert!(d.starts_with(NOT_FENCED), "{d}");
        assert!(
            d.contains(&format!("lifeboat@127.0.0.1:{port}/orders")),
            "names the server: {d}"
        );
        assert!(d.contains("must not come back as a writer"), "{d}");
        // A refused connection is tried again before the server counts as gone: one
        // reset on a lossy link must not leave a live primary unfenced.
        assert!(d.contains("3 attempts"), "{d}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn catch_up_waits_until_the_standby_replayed_the_fenced_writers_last_write() {
    let dir = support::tempdir();
    let pair = support::pg_pair(dir.path());
    let pw = password_file(&dir);
    create_orders_table(&pair);
    let (writer, standby) = (
        pg_endpoint(pair.primary.port, &pw),
        pg_endpoint(pair.standby.port, &pw),
    );
    // A failback: the service runs on us-west-2's writer (here, the pair's primary) and
    // returns to us-east-1's standby.
    let mut c = ctx("primary-caught-up", PRIMARY);
    c.from = region(SECONDARY);
    c.to = region(PRIMARY);
    let catch_up = CatchUp::new(
        standby.clone(),
        writer.clone(),
        region(PRIMARY),
        region(SECONDARY),
    );

    // Not fenced yet: no position is final, so the step refuses.
    let e = catch_up.check(&c).await.expect_err("unfenced writer");
    assert_eq!(e.class, ErrorClass::Fatal);
    assert!(
        e.message.contains("still takes writes") && e.message.contains("fence it first"),
        "{}",
        e.message
    );

    pair.standby
        .sql("SELECT pg_wal_replay_pause()")
        .expect("pause replay");
    write_order(pair.primary.port, 42)
        .await
        .expect("last write before the fence");
    drive(
        &Fence::new(writer.clone(), region(SECONDARY)),
        &ctx("fence-secondary", SECONDARY),
    )
    .await
    .expect("fence");
    let catch_up = CatchUp::new(
        standby.clone(),
        writer.clone(),
        region(PRIMARY),
        region(SECONDARY),
    );
    match catch_up.check(&c).await.expect("check") {
        Check::NotDone(d) => assert!(d.contains("bytes short of"), "{d}"),
        other => panic!("replay is paused, so it cannot be caught up: {other:?}"),
    }
    let resume = {
        let standby = pair.standby.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(500)).await;
            standby
                .sql("SELECT pg_wal_replay_resume()")
                .expect("resume replay");
        })
    };
    let ran = drive(&catch_up, &c).await.expect("catch up");
    resume.await.expect("resumed");
    assert!(ran.detail().contains("(lag 0)"), "{ran:?}");
    assert_eq!(
        pair.standby
            .sql_in("orders", "SELECT count(*) FROM orders WHERE n = 42")
            .expect("read"),
        "1",
        "the write acknowledged before the fence reached the standby"
    );
    let again = drive(&catch_up, &c).await.expect("again");
    assert!(matches!(again, Ran::AlreadyDone(_)), "{again:?}");

    // Once the writer is gone, going on without it is a data-loss decision.
    pair.primary
        .stop(StopMode::Immediate)
        .expect("stop the writer");
    let fresh = CatchUp::new(standby, writer, region(PRIMARY), region(SECONDARY));
    let e = fresh.check(&c).await.expect_err("writer unreachable");
    assert_eq!(e.class, ErrorClass::NeedsApproval);
    assert!(e.message.contains("is unreachable"), "{}", e.message);
    c.allow_data_loss = true;
    assert!(matches!(fresh.check(&c).await, Ok(Check::Done(_))));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_wrong_password_is_fatal_and_names_the_server_and_nothing_listening_is_retried() {
    let dir = support::tempdir();
    let pair = support::pg_pair(dir.path());
    let bad = dir.path().join("bad-pw");
    std::fs::write(&bad, "not-the-password").expect("write");
    let promote = Promote::new(pg_endpoint(pair.standby.port, &bad), region(SECONDARY));
    let e = promote
        .check(&ctx("promote", SECONDARY))
        .await
        .expect_err("auth");
    assert_eq!(e.class, ErrorClass::Fatal);
    let server = format!("lifeboat@127.0.0.1:{}/orders", pair.standby.port);
    assert!(e.message.contains(&server), "{}", e.message);
    assert!(
        !e.message.contains("not-the-password"),
        "no secret in messages"
    );
    // A fence that cannot log in must not let the failover promote beside a writer.
    let fence = Fence::new(pg_endpoint(pair.primary.port, &bad), region(PRIMARY));
    let e = fence.apply(&ctx("fence", PRIMARY)).await.expect_err("auth");
    assert_eq!(e.class, ErrorClass::Fatal);

    let nowhere = Promote::new(
        pg_endpoint(free_port().expect("port"), &bad),
        region(SECONDARY),
    );
    let e = nowhere
        .check(&ctx("promote", SECONDARY))
        .await
        .expect_err("refused");
    assert_eq!(e.class, ErrorClass::Retryable);
    assert!(
        e.message
            .starts_with("connect to PostgreSQL lifeboat@127.0.0.1:"),
        "{}",
        e.message
    );
}

/// A server whose answer has another type than the step expects (here the role's
/// search_path puts a `current_setting` returning boolean before PostgreSQL's own; a
/// PostgreSQL look-alike or a proxy can do the same) fails the step with a clear error.
/// `Row::get` panicked there, and the step's task died with it.
#[tokio::test(flavor = "multi_thread")]
async fn an_answer_of_an_unexpected_type_fails_the_fence_clearly_instead_of_panicking() {
    let dir = support::tempdir();
    let pair = support::pg_pair(dir.path());
    let pw = password_file(&dir);
    pair.primary
        .sql_in(
            "orders",
            "CREATE SCHEMA trap;
             CREATE FUNCTION trap.current_setting(text) RETURNS boolean LANGUAGE sql
               AS $$ SELECT pg_catalog.current_setting($1)::boolean $$;
             GRANT USAGE ON SCHEMA trap TO lifeboat;
             ALTER ROLE lifeboat IN DATABASE orders SET search_path = trap, pg_catalog",
        )
        .expect("shadow current_setting for the lifeboat role");
    let fence = Fence::new(pg_endpoint(pair.primary.port, &pw), region(PRIMARY));
    let e = fence
        .check(&ctx("fence-old-primary", PRIMARY))
        .await
        .expect_err("a boolean where a setting's text was expected");
    assert_eq!(e.class, ErrorClass::Fatal, "{}", e.message);
    assert!(
        e.message
            .contains("read the settings of old primary lifeboat@127.0.0.1:")
            && e.message.contains("unexpected answer in column `0`")
            && e.message.contains("bool"),
        "{}",
        e.message
    );
}
