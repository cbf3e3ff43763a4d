//! Readiness of the steps that act on local services, against real ones: the PostgreSQL
//! steps (promote, fence, catch-up) on a primary with a streaming standby, Redis,
//! `command` and `manual_approval` (`wait_healthy`, over a real probe, is in
//! `tests/daemon_api.rs`). Each check is shown ready on a healthy world and not ready,
//! naming the fix, once the world drifts.

#[path = "support/action_helpers.rs"]
mod helpers;
mod support;

use std::time::Duration;

use helpers::{PRIMARY, SECONDARY, pg_endpoint};
use lifeboat::action::approval::Gate;
use lifeboat::action::cache::RedisInvalidate;
use lifeboat::action::command::Command;
use lifeboat::action::postgres::Promote;
use lifeboat::action::postgres_fence::{CatchUp, Fence};
use lifeboat::core::model::{CacheScope, Direction, PostgresEndpoint, RegionName};
use lifeboat::core::readiness::{Readiness, ReadyState};
use lifeboat::runbook::{ReadyCtx, Step};
use lifeboat::sandbox::postgres::StopMode;

fn region(r: &str) -> RegionName {
    RegionName::new(r)
}

/// The readiness context of a failover step from us-east-1 to us-west-2, with
/// us-east-1 serving: the failover is the runbook that runs next when `next`.
fn ready_ctx(step: &str, at: &str, next: bool, writer: Option<PostgresEndpoint>) -> ReadyCtx {
    ReadyCtx {
        service: "orders".into(),
        direction: Direction::Failover,
        from: region(PRIMARY),
        to: region(SECONDARY),
        step: step.into(),
        region: region(at),
        serving: region(PRIMARY),
        next,
        rpo_budget: Duration::from_secs(5),
        writer,
        deadline: tokio::time::Instant::now() + Duration::from_secs(15),
    }
}

fn ctx_now(writer: &PostgresEndpoint) -> ReadyCtx {
    ready_ctx("promote-standby", SECONDARY, true, Some(writer.clone()))
}

fn password_file(dir: &tempfile::TempDir) -> std::path::PathBuf {
    let pw = dir.path().join("pw");
    std::fs::write(&pw, support::PG_PASSWORD).expect("write the password file");
    pw
}

fn not_ready(r: &Readiness) -> (&str, &str) {
    match r {
        Readiness::NotReady { why, fix } => (why, fix),
        other => panic!("expected not ready, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_streaming_standby_within_the_rpo_is_ready_to_promote_until_replication_stops() {
    let dir = support::tempdir();
    let pair = support::pg_pair(dir.path());
    let pw = password_file(&dir);
    let primary = pg_endpoint(pair.primary.port, &pw);
    let standby = pg_endpoint(pair.standby.port, &pw);
    let promote = Promote::new(standby.clone(), region(SECONDARY));

    let ctx = ready_ctx("promote-standby", SECONDARY, true, Some(primary.clone()));
    let r = promote.readiness(&ctx).await;
    assert_eq!(r.state(), ReadyState::Ready, "{r:?}");
    assert!(r.detail().contains("streams"), "{r:?}");
    assert!(r.detail().contains("holds EXECUTE on pg_promote"), "{r:?}");

    // Replay paused: the standby still streams, but falls behind what the primary wrote.
    pair.standby
        .sql("SELECT pg_wal_replay_pause()")
        .expect("pause replay");
    pair.primary
        .sql_in(
            "orders",
            "CREATE TABLE lagging (n int); INSERT INTO lagging VALUES (1)",
        )
        .expect("a write on the primary");
    tokio::time::sleep(Duration::from_secs(6)).await;
    let r = promote.readiness(&ctx_now(&primary)).await;
    let (why, fix) = not_ready(&r);
    assert!(
        why.contains("behind the writer") && why.contains("over the RPO budget 5s"),
        "{why}"
    );
    assert!(fix.contains("pg_stat_replication"), "{fix}");
    pair.standby
        .sql("SELECT pg_wal_replay_resume()")
        .expect("resume replay");
    let r = promote.readiness(&ctx_now(&primary)).await;
    assert_eq!(r.state(), ReadyState::Ready, "{r:?}");

    // Replication switched off on the standby, writes going on at the primary.
    pair.standby
        .sql("ALTER SYSTEM SET primary_conninfo = ''")
        .expect("empty primary_conninfo");
    pair.standby.sql("SELECT pg_reload_conf()").expect("reload");
    pair.primary
        .sql_in(
            "orders",
            "CREATE TABLE drift (n int); INSERT INTO drift VALUES (1)",
        )
        .expect("a write on the primary");
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let r = loop {
        let r = promote
            .readiness(&ready_ctx(
                "promote-standby",
                SECONDARY,
                true,
                Some(primary.clone()),
            ))
            .await;
        if r.state() == ReadyState::NotReady || std::time::Instant::now() > deadline {
            break r;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let (why, fix) = not_ready(&r);
    assert!(why.contains("not streaming"), "{why}");
    assert!(fix.contains("primary_conninfo"), "{fix}");

    // The runbook that runs later only needs the server to answer with the privileges.
    let later = promote
        .readiness(&ready_ctx(
            "promote-standby",
            SECONDARY,
            false,
            Some(primary),
        ))
        .await;
    assert_eq!(later.state(), ReadyState::Ready, "{later:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_primary_is_no_standby_to_promote_and_a_role_without_grants_is_named_with_the_grant() {
    let dir = support::tempdir();
    let pair = support::pg_pair(dir.path());
    let pw = password_file(&dir);
    let primary = pg_endpoint(pair.primary.port, &pw);
    // Promoting the serving primary in the next runbook: no standby there.
    let r = Promote::new(primary.clone(), region(PRIMARY))
        .readiness(&ready_ctx("promote", PRIMARY, true, None))
        .await;
    let (why, fix) = not_ready(&r);
    assert!(why.contains("not in recovery"), "{why}");
    assert!(fix.contains("standby"), "{fix}");

    let fence = Fence::new(primary.clone(), region(PRIMARY));
    let ok = fence
        .readiness(&ready_ctx("fence-old-primary", PRIMARY, true, None))
        .await;
    assert_eq!(ok.state(), ReadyState::Ready, "{ok:?}");

    pair.primary
        .sql("REVOKE pg_signal_backend FROM lifeboat")
        .expect("revoke");
    pair.primary
        .sql("REVOKE ALTER SYSTEM ON PARAMETER default_transaction_read_only FROM lifeboat")
        .expect("revoke");
    let r = fence
        .readiness(&ready_ctx("fence-old-primary", PRIMARY, true, None))
        .await;
    let (why, fix) = not_ready(&r);
    assert!(
        why.contains("lacks ALTER SYSTEM on default_transaction_read_only"),
        "{why}"
    );
    assert!(why.contains("membership of pg_signal_backend"), "{why}");
    assert!(
        fix.contains("GRANT ALTER SYSTEM ON PARAMETER default_transaction_read_only TO lifeboat;")
            && fix.contains("GRANT pg_signal_backend TO lifeboat;"),
        "{fix}"
    );

    // A stopped old primary: the fence would record NOT FENCED.
    pair.primary.stop(StopMode::Immediate).expect("stop");
    let r = fence
        .readiness(&ready_ctx("fence-old-primary", PRIMARY, true, None))
        .await;
    let (why, _) = not_ready(&r);
    assert!(why.contains("NOT FENCED"), "{why}");
}

#[tokio::test(flavor = "multi_thread")]
async fn catch_up_is_ready_when_both_answer_and_the_standby_streams() {
    let dir = support::tempdir();
    let pair = support::pg_pair(dir.path());
    let pw = password_file(&dir);
    let primary = pg_endpoint(pair.primary.port, &pw);
    let standby = pg_endpoint(pair.standby.port, &pw);
    // A failback's catch-up in the runbook that runs next: the standby is us-west-2 here.
    let step = CatchUp::new(
        standby.clone(),
        primary.clone(),
        region(SECONDARY),
        region(PRIMARY),
    );
    let ctx = ReadyCtx {
        direction: Direction::Failback,
        ..ready_ctx("primary-caught-up", SECONDARY, true, None)
    };
    let r = step.readiness(&ctx).await;
    assert_eq!(r.state(), ReadyState::Ready, "{r:?}");
    // Swapped, the "standby" is the primary: it cannot replay anything.
    let wrong = CatchUp::new(primary, standby, region(PRIMARY), region(SECONDARY));
    let r = wrong.readiness(&ctx).await;
    let (why, _) = not_ready(&r);
    assert!(why.contains("not in recovery"), "{why}");
}

#[tokio::test(flavor = "multi_thread")]
async fn redis_is_ready_while_it_answers_ping() {
    let dir = support::tempdir();
    let redis = support::redis(dir.path());
    let url = format!("redis://127.0.0.1:{}/0", redis.port);
    let step = RedisInvalidate::new(
        &url,
        None,
        None,
        CacheScope::Pattern("orders:*".into()),
        region(SECONDARY),
    );
    let r = step
        .readiness(&ready_ctx("flush-cache", SECONDARY, true, None))
        .await;
    assert_eq!(r.state(), ReadyState::Ready, "{r:?}");
    drop(redis);
    let r = step
        .readiness(&ready_ctx("flush-cache", SECONDARY, true, None))
        .await;
    let (why, fix) = not_ready(&r);
    assert!(why.contains("127.0.0.1"), "{why}");
    assert!(fix.contains("Redis"), "{fix}");
}

#[tokio::test]
async fn a_command_that_is_not_installed_is_not_ready_and_one_that_is_cannot_be_told() {
    let ctx = ready_ctx("run-script", SECONDARY, true, None);
    let missing = Command::new(vec!["lifeboat-no-such-program".into()], vec![]);
    let r = missing.readiness(&ctx).await;
    let (why, fix) = not_ready(&r);
    assert!(
        why.contains("no executable `lifeboat-no-such-program`"),
        "{why}"
    );
    assert!(fix.contains("install"), "{fix}");
    let present = Command::new(vec!["true".into()], vec![]);
    let r = present.readiness(&ctx).await;
    assert_eq!(r.state(), ReadyState::CannotTell, "{r:?}");
    assert_eq!(
        Gate::new("ok?".into()).readiness(&ctx).await.state(),
        ReadyState::Ready
    );
}
