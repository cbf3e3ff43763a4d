//! Readiness of the self-managed PostgreSQL steps (`postgres_promote`, `postgres_fence`,
//! `postgres_catch_up`): the server answers, the role holds the privileges the step uses
//! (`src/action/postgres.rs` lists them), and, for the runbook that would run next, the
//! standby streams and is within the RPO budget measured against the writer.
//!
//! Read-only: the queries read settings, privileges and WAL positions; nothing is
//! written, not even the test write the steps use.

use std::time::Duration;

use tokio_postgres::Client;

use super::connect_bound;
use super::postgres::{fmt_lsn, parse_lsn};
use crate::clients::pg::{self, PgError};
use crate::core::model::PostgresEndpoint;
use crate::core::readiness::Readiness;
use crate::core::time::fmt_duration;
use crate::runbook::ReadyCtx;

/// What a step needs of the role it logs in as.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Privilege {
    /// `EXECUTE` on `pg_promote(boolean, integer)`.
    Promote,
    /// `EXECUTE` on `pg_reload_conf()`.
    ReloadConf,
    /// `ALTER SYSTEM` on `default_transaction_read_only` (superuser before PostgreSQL 15).
    AlterReadOnly,
    /// Membership of `pg_signal_backend`, to end client sessions.
    SignalBackend,
}

impl Privilege {
    fn what(self) -> &'static str {
        match self {
            Privilege::Promote => "EXECUTE on pg_promote(boolean, integer)",
            Privilege::ReloadConf => "EXECUTE on pg_reload_conf()",
            Privilege::AlterReadOnly => "ALTER SYSTEM on default_transaction_read_only",
            Privilege::SignalBackend => "membership of pg_signal_backend",
        }
    }

    fn grant(self, role: &str) -> String {
        match self {
            Privilege::Promote => {
                format!("GRANT EXECUTE ON FUNCTION pg_promote(boolean, integer) TO {role};")
            }
            Privilege::ReloadConf => {
                format!("GRANT EXECUTE ON FUNCTION pg_reload_conf() TO {role};")
            }
            Privilege::AlterReadOnly => {
                format!("GRANT ALTER SYSTEM ON PARAMETER default_transaction_read_only TO {role};")
            }
            Privilege::SignalBackend => format!("GRANT pg_signal_backend TO {role};"),
        }
    }
}

/// Connects within the check's deadline, or says why a run could not either.
pub(crate) async fn connect(
    ep: &PostgresEndpoint,
    ctx: &ReadyCtx,
    what: &str,
) -> Result<Client, Readiness> {
    pg::connect(ep, connect_bound(ctx.deadline))
        .await
        .map_err(|e| unreachable(&e, what))
}

fn unreachable(e: &PgError, what: &str) -> Readiness {
    let fix = match e {
        PgError::Secret { .. } => "make the password reference readable by lifeboat".to_string(),
        PgError::Tls { .. } | PgError::Handshake { .. } => {
            "fix the target's sslmode or ca_file (README: TLS to the data stores)".to_string()
        }
        PgError::Connect {
            sqlstate: Some(_), ..
        } => "check the target's user, password and database in the policy".to_string(),
        _ => format!(
            "start {what}, or fix the network between lifeboat and it (lifeboat probe shows the same connection)"
        ),
    };
    Readiness::not_ready(format!("cannot connect to {what}: {e}"), fix)
}

/// Whether the role holds `needs`. A superuser holds everything.
pub(crate) async fn privileges(
    client: &Client,
    role: &str,
    what: &str,
    needs: &[Privilege],
) -> Readiness {
    let row = match client
        .query_one(
            "SELECT r.rolsuper,
                    has_function_privilege('pg_catalog.pg_promote(boolean, integer)', 'EXECUTE'),
                    has_function_privilege('pg_catalog.pg_reload_conf()', 'EXECUTE'),
                    pg_has_role('pg_signal_backend', 'MEMBER'),
                    current_setting('server_version_num')::int4
               FROM pg_roles r WHERE r.rolname = current_user",
            &[],
        )
        .await
    {
        Ok(r) => r,
        Err(e) => {
            return Readiness::cannot_tell(format!(
                "could not read the privileges of `{role}` on {what}: {}",
                pg::describe(&e)
            ));
        }
    };
    let flag = |i: usize| pg::get::<_, bool>(&row, i).unwrap_or(false);
    let (superuser, promote, reload, signal) = (flag(0), flag(1), flag(2), flag(3));
    if superuser {
        return Readiness::ready(format!("`{role}` is a superuser"));
    }
    let version: i32 = pg::get(&row, 4).unwrap_or(0);
    // ALTER SYSTEM on one parameter can be granted from PostgreSQL 15 on; before that
    // only a superuser may run it.
    let alter = if version >= 150_000 {
        match client
            .query_one(
                "SELECT has_parameter_privilege('default_transaction_read_only', 'ALTER SYSTEM')",
                &[],
            )
            .await
        {
            Ok(r) => pg::get::<_, bool>(&r, 0).unwrap_or(false),
            Err(e) => {
                return Readiness::cannot_tell(format!(
                    "could not read the ALTER SYSTEM privilege of `{role}` on {what}: {}",
                    pg::describe(&e)
                ));
            }
        }
    } else {
        false
    };
    let missing: Vec<Privilege> = needs
        .iter()
        .copied()
        .filter(|p| match p {
            Privilege::Promote => !promote,
            Privilege::ReloadConf => !reload,
            Privilege::AlterReadOnly => !alter,
            Privilege::SignalBackend => !signal,
        })
        .collect();
    if missing.is_empty() {
        let held: Vec<&str> = needs.iter().map(|p| p.what()).collect();
        return Readiness::ready(format!("`{role}` holds {}", held.join(", ")));
    }
    let what_missing: Vec<&str> = missing.iter().map(|p| p.what()).collect();
    let grants: Vec<String> = missing.iter().map(|p| p.grant(role)).collect();
    let fix = if version >= 150_000 {
        grants.join(" ")
    } else {
        format!(
            "before PostgreSQL 15 only a superuser may ALTER SYSTEM; {}",
            grants.join(" ")
        )
    };
    Readiness::not_ready(
        format!("role `{role}` on {what} lacks {}", what_missing.join(", ")),
        fix,
    )
}

/// Where a server stands: in recovery or not, and its replication as a standby.
struct Standby {
    in_recovery: bool,
    /// `pg_stat_wal_receiver.status` (`streaming`, `waiting`…), `None` with no receiver.
    receiver: Option<String>,
    replayed: Option<u64>,
    /// Seconds since the last replayed transaction committed on the writer.
    last_replay_age: Option<f64>,
}

async fn standby_state(client: &Client, what: &str) -> Result<Standby, Readiness> {
    let row = client
        .query_one(
            // A role without pg_read_all_stats sees only the receiver's pid: a row is
            // there while a receiver is connected, which is what `streaming` means to
            // the probes too; its status is read when visible.
            "SELECT pg_is_in_recovery(),
                    (SELECT coalesce(status, 'streaming') FROM pg_stat_wal_receiver),
                    pg_last_wal_replay_lsn()::text,
                    extract(epoch FROM now() - pg_last_xact_replay_timestamp())::float8",
            &[],
        )
        .await
        .map_err(|e| {
            Readiness::cannot_tell(format!(
                "could not read the replication state of {what}: {}",
                pg::describe(&e)
            ))
        })?;
    Ok(Standby {
        in_recovery: pg::get(&row, 0).unwrap_or(false),
        receiver: pg::get::<_, Option<String>>(&row, 1).unwrap_or(None),
        replayed: pg::get::<_, Option<String>>(&row, 2)
            .unwrap_or(None)
            .as_deref()
            .and_then(parse_lsn),
        last_replay_age: pg::get::<_, Option<f64>>(&row, 3).unwrap_or(None),
    })
}

/// The writer's current WAL position, or why it cannot be had.
async fn writer_position(ep: &PostgresEndpoint, ctx: &ReadyCtx, what: &str) -> Result<u64, String> {
    let client = pg::connect(ep, connect_bound(ctx.deadline))
        .await
        .map_err(|e| format!("the writer {what} did not answer ({e})"))?;
    let row = client
        .query_one(
            "SELECT pg_is_in_recovery(), pg_current_wal_lsn()::text",
            &[],
        )
        .await;
    // pg_current_wal_lsn() fails on a server in recovery; ask the two apart.
    match row {
        Ok(r) => {
            let lsn: String = pg::get(&r, 1).map_err(|e| format!("{what}: {e}"))?;
            parse_lsn(&lsn).ok_or_else(|| format!("{what} reported WAL position `{lsn}`"))
        }
        Err(e) => Err(format!(
            "{what} did not give its WAL position (is it a standby too?): {}",
            pg::describe(&e)
        )),
    }
}

/// How long the check waits for a standby that is a little behind to catch up before
/// calling it lag: a busy writer moves between reading its position and the standby's.
const SETTLE: Duration = Duration::from_secs(1);

/// `postgres_promote`: reachable, privileged, and for the next runbook a streaming
/// standby within the RPO budget.
pub(crate) async fn promote(ep: &PostgresEndpoint, what: &str, ctx: &ReadyCtx) -> Readiness {
    let client = match connect(ep, ctx, what).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let privs = privileges(
        &client,
        &ep.user,
        what,
        &[
            Privilege::Promote,
            Privilege::ReloadConf,
            Privilege::AlterReadOnly,
        ],
    )
    .await;
    if !ctx.next {
        return Readiness::ready(format!(
            "{what} answers; it is promoted only after the {} runbook has run",
            other(ctx)
        ))
        .and(privs);
    }
    replication(&client, what, ctx).await.and(privs)
}

fn other(ctx: &ReadyCtx) -> &'static str {
    match ctx.direction {
        crate::core::model::Direction::Failover => "failback",
        crate::core::model::Direction::Failback => "failover",
    }
}

/// The standby streams, and its lag against the writer is within the RPO budget.
async fn replication(client: &Client, what: &str, ctx: &ReadyCtx) -> Readiness {
    let st = match standby_state(client, what).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    if !st.in_recovery {
        return Readiness::not_ready(
            format!(
                "{what} is not in recovery: it is no standby, so there is nothing to promote and it may already take writes beside the serving primary"
            ),
            "rebuild it as a streaming standby of the serving primary (pg_basebackup, or pg_rewind from the primary)",
        );
    }
    if st.receiver.as_deref() != Some("streaming") {
        let state = st.receiver.as_deref().unwrap_or("no WAL receiver running");
        return Readiness::not_ready(
            format!(
                "{what} is not streaming from its primary ({state}): every write from now on is missing from it"
            ),
            "check the standby's primary_conninfo and its log, the writer's pg_stat_replication, and the network between them",
        );
    }
    let Some(writer) = &ctx.writer else {
        return Readiness::ready(format!("{what} is a standby and streams")).and(
            Readiness::cannot_tell("no writer endpoint to measure its lag against"),
        );
    };
    let writer_what = format!("PostgreSQL {writer} in {}", ctx.from);
    let target = match writer_position(writer, ctx, &writer_what).await {
        Ok(t) => t,
        Err(why) => {
            return Readiness::ready(format!("{what} is a standby and streams"))
                .and(Readiness::cannot_tell(format!("its lag is unknown: {why}")));
        }
    };
    // Give a standby that is just behind a moment to replay what the writer had.
    let settle = tokio::time::Instant::now()
        + SETTLE.min(
            ctx.deadline
                .saturating_duration_since(tokio::time::Instant::now()),
        );
    let mut st = st;
    while st.replayed.is_some_and(|r| r < target) && tokio::time::Instant::now() < settle {
        tokio::time::sleep(Duration::from_millis(100)).await;
        match standby_state(client, what).await {
            Ok(s) => st = s,
            Err(r) => return r,
        }
    }
    let replayed = st.replayed.unwrap_or(0);
    if replayed >= target {
        return Readiness::ready(format!(
            "{what} streams and has replayed the writer's position {} (lag 0, RPO budget {})",
            fmt_lsn(target),
            fmt_duration(ctx.rpo_budget)
        ));
    }
    let behind = target - replayed;
    let lag = st
        .last_replay_age
        .filter(|s| *s >= 0.0)
        .map(|s| Duration::try_from_secs_f64(s).unwrap_or(Duration::MAX))
        .unwrap_or(Duration::MAX)
        .max(SETTLE);
    if lag > ctx.rpo_budget {
        let lag_words = if lag == Duration::MAX {
            "an unknown time".to_string()
        } else {
            fmt_duration(lag)
        };
        return Readiness::not_ready(
            format!(
                "{what} is {lag_words} ({behind} bytes) behind the writer {writer_what}, over the RPO budget {}: a failover now would stop for --allow-data-loss",
                fmt_duration(ctx.rpo_budget)
            ),
            "find why replay lags: the writer's pg_stat_replication (write/flush/replay lag), the standby's load and log, the network between them",
        );
    }
    Readiness::ready(format!(
        "{what} streams, {} ({behind} bytes) behind the writer, within the RPO budget {}",
        fmt_duration(lag),
        fmt_duration(ctx.rpo_budget)
    ))
}

/// `postgres_fence`: the server answers and the role may fence it. When it does not
/// answer, a run would record NOT FENCED rather than fail, but readiness says so: that
/// is the failover that risks two writers.
pub(crate) async fn fence(ep: &PostgresEndpoint, what: &str, ctx: &ReadyCtx) -> Readiness {
    let client = match pg::connect(ep, connect_bound(ctx.deadline)).await {
        Ok(c) => c,
        Err(e) if e.is_unreachable() => {
            return Readiness::not_ready(
                format!(
                    "{what} does not answer ({e}): a run now could not fence it and would record NOT FENCED"
                ),
                format!("start {what}, or fix the network between lifeboat and it"),
            );
        }
        Err(e) => return unreachable(&e, what),
    };
    let privs = privileges(
        &client,
        &ep.user,
        what,
        &[
            Privilege::AlterReadOnly,
            Privilege::ReloadConf,
            Privilege::SignalBackend,
        ],
    )
    .await;
    Readiness::ready(format!("{what} answers")).and(privs)
}

/// `postgres_catch_up`: both servers answer, and for the next runbook the one that must
/// catch up is a streaming standby.
pub(crate) async fn catch_up(
    standby: &PostgresEndpoint,
    writer: &PostgresEndpoint,
    what_standby: &str,
    what_writer: &str,
    ctx: &ReadyCtx,
) -> Readiness {
    let s = match connect(standby, ctx, what_standby).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let w = match connect(writer, ctx, what_writer).await {
        Ok(_) => Readiness::ready(format!("{what_writer} answers")),
        Err(r) => r,
    };
    if !ctx.next {
        return Readiness::ready(format!("{what_standby} answers")).and(w);
    }
    let st = match standby_state(&s, what_standby).await {
        Ok(st) => st,
        Err(r) => return r,
    };
    let mine = match (st.in_recovery, st.receiver.as_deref()) {
        (false, _) => Readiness::not_ready(
            format!("{what_standby} is not in recovery, so it cannot replay the writer's WAL"),
            "rebuild it as a standby of the serving primary (pg_rewind) before the failback",
        ),
        (true, Some("streaming")) => Readiness::ready(format!("{what_standby} streams")),
        (true, other) => Readiness::not_ready(
            format!(
                "{what_standby} is not streaming ({}): it cannot catch up",
                other.unwrap_or("no WAL receiver running")
            ),
            "check its primary_conninfo and the network to the serving primary",
        ),
    };
    mine.and(w)
}
