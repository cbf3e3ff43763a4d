//! `postgres_fence` (make a reachable old primary refuse writes) and `postgres_catch_up`
//! (wait until a standby has replayed everything the fenced writer wrote): together the
//! part of a switchover that keeps "never two writable primaries" and loses no write.

use std::sync::Mutex;

use async_trait::async_trait;
use tokio_postgres::Client;

use super::postgres::{Writable, connect, fmt_lsn, parse_lsn, status, write_check};
use super::{connect_bound, pg_connect_error, pg_query_error};
use crate::clients::pg;
use crate::core::model::{PostgresEndpoint, RegionName};
use crate::core::readiness::Readiness;
use crate::core::reason::Notice;
use crate::runbook::{Applied, Check, ReadyCtx, Step, StepCtx, StepError, Verify};

/// How a fence step's detail starts when the old primary could not be fenced because
/// nothing answered: the run records it, and the daemon alerts on it.
pub const NOT_FENCED: &str = "NOT FENCED";

/// The client sessions a fence ends: every other session that has a role, except
/// replication connections and, unless lifeboat's role is a superuser, superusers'
/// sessions (which it may not signal). Sessions without a role are the server's own
/// processes (autovacuum, checkpointer…).
const SESSIONS: &str = "\
SELECT a.pid FROM pg_stat_activity a JOIN pg_roles r ON r.oid = a.usesysid
 WHERE a.pid <> pg_backend_pid()
   AND coalesce(a.backend_type, 'client backend') = 'client backend'
   AND NOT r.rolreplication
   AND (NOT r.rolsuper OR (SELECT rolsuper FROM pg_roles WHERE rolname = current_user))";

/// Makes the old primary refuse writes when it answers, and says so when it does not.
///
/// Guarantees: when the server answers, `apply` returns only after
/// `default_transaction_read_only = on` is persisted (ALTER SYSTEM, so it survives a
/// restart), loaded, seen by new sessions, and every client session from before the
/// fence was ended (their open transactions roll back). When nothing answers, the
/// step succeeds with a detail starting `NOT FENCED` that names the server.
/// Assumptions: the target's role has the privileges listed in `postgres.rs`. The
/// fence is the standard soft one: a client that runs `SET default_transaction_read_only
/// = off` itself can still write; moving DNS and ending sessions is what stops the
/// application from doing so.
/// Errors: fatal when the server answers but refuses (authentication, privileges),
/// since promoting the standby beside a writable primary is what the step prevents.
pub struct Fence {
    ep: PostgresEndpoint,
    region: RegionName,
    what: String,
    /// Whether this instance's `apply` fenced the server, for verify's wording.
    fenced: Mutex<bool>,
}

enum Seen {
    Unreachable(String),
    Standby,
    Fenced { stale_sessions: i64 },
    Writable,
}

impl Fence {
    pub fn new(ep: PostgresEndpoint, region: RegionName) -> Fence {
        let what = format!("old primary {ep} in {region}");
        Fence {
            ep,
            region,
            what,
            fenced: Mutex::new(false),
        }
    }

    fn unreachable(&self, why: &str) -> String {
        format!(
            "{NOT_FENCED}: {} is unreachable ({why}) — not fenced; it must not come back as a writer: \
             keep it down, or fence it by hand (ALTER SYSTEM SET default_transaction_read_only = on) before it rejoins",
            self.what
        )
    }

    /// Connects, or says that nothing answered. A connection refused or reset at once is
    /// tried again (`pg::connect_retrying`): on a lossy link one reset must not make a
    /// live primary count as gone and be left unfenced.
    async fn client(&self, ctx: &StepCtx) -> Result<Result<Client, String>, StepError> {
        match pg::connect_retrying(&self.ep, connect_bound(ctx.deadline)).await {
            Ok((c, _)) => Ok(Ok(c)),
            Err((e, 1)) if e.is_unreachable() => Ok(Err(e.to_string())),
            Err((e, attempts)) if e.is_unreachable() => {
                Ok(Err(format!("{e}; {attempts} attempts")))
            }
            Err((e, _)) => Err(pg_connect_error(&e, &format!("connect to {}", self.what))),
        }
    }

    async fn look(&self, ctx: &StepCtx) -> Result<Seen, StepError> {
        let client = match self.client(ctx).await? {
            Ok(c) => c,
            Err(why) => return Ok(Seen::Unreachable(why)),
        };
        if status(&client, &self.what).await?.standby {
            return Ok(Seen::Standby);
        }
        if !read_only(&client, &self.what).await? {
            return Ok(Seen::Writable);
        }
        // Sessions that started before the settings were last loaded may predate the
        // fence (and may have switched read-only off for themselves). Counting them
        // errs on the side of fencing again, which is harmless.
        let stale_sql = format!(
            "SELECT count(*) FROM ({SESSIONS}
               AND coalesce(a.backend_start < pg_conf_load_time(), true)) s"
        );
        let row = client
            .query_one(&stale_sql, &[])
            .await
            .map_err(|e| pg_query_error(&e, &format!("list the sessions of {}", self.what)))?;
        Ok(Seen::Fenced {
            stale_sessions: pg::get(&row, 0).map_err(|e| {
                StepError::fatal(format!("list the sessions of {}: {e}", self.what))
            })?,
        })
    }

    /// Waits until a new session sees the fence: `pg_reload_conf` only signals the
    /// server, and a session forked before the server re-read its settings would still
    /// be writable.
    async fn wait_loaded(&self, ctx: &StepCtx) -> Result<(), StepError> {
        for _ in 0..50 {
            let fresh = connect(&self.ep, ctx, &self.what).await?;
            if read_only(&fresh, &self.what).await? {
                return Ok(());
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        Err(StepError::retryable(format!(
            "{}: new sessions still see default_transaction_read_only = off 5s after the reload",
            self.what
        )))
    }
}

async fn read_only(client: &Client, what: &str) -> Result<bool, StepError> {
    let row = client
        .query_one(
            "SELECT current_setting('default_transaction_read_only')",
            &[],
        )
        .await
        .map_err(|e| pg_query_error(&e, &format!("read the settings of {what}")))?;
    let value: String = pg::get(&row, 0)
        .map_err(|e| StepError::fatal(format!("read the settings of {what}: {e}")))?;
    Ok(value == "on")
}

#[async_trait]
impl Step for Fence {
    async fn readiness(&self, ctx: &ReadyCtx) -> Readiness {
        super::ready_pg::fence(&self.ep, &self.what, ctx).await
    }

    async fn check(&self, ctx: &StepCtx) -> Result<Check, StepError> {
        Ok(match self.look(ctx).await? {
            // Not "done": the apply attempt records the unreachable server in the run.
            Seen::Unreachable(why) => {
                Check::NotDone(format!("{} is unreachable ({why})", self.what))
            }
            Seen::Standby => Check::Done(format!(
                "{} is in recovery (a standby): it takes no writes",
                self.what
            )),
            Seen::Fenced { stale_sessions: 0 } => Check::Done(format!(
                "{} is fenced: default_transaction_read_only = on and no session predates it",
                self.what
            )),
            Seen::Fenced { stale_sessions } => Check::NotDone(format!(
                "{} is read-only, but {stale_sessions} session(s) predate the fence",
                self.what
            )),
            Seen::Writable => Check::NotDone(format!("{} takes writes", self.what)),
        })
    }

    async fn apply(&self, ctx: &StepCtx) -> Result<Applied, StepError> {
        let client = match self.client(ctx).await? {
            Ok(c) => c,
            Err(why) => {
                let notice = Notice::OldPrimaryNotFenced {
                    step: ctx.step.clone(),
                    region: self.region.clone(),
                    server: self.ep.to_string(),
                    why: why.clone(),
                };
                return Ok(Applied::new(self.unreachable(&why)).with_notice(notice));
            }
        };
        if status(&client, &self.what).await?.standby {
            return Ok(Applied::new(format!(
                "{} is in recovery (a standby): nothing to fence",
                self.what
            )));
        }
        let fail = |what: &'static str| {
            let subject = self.what.clone();
            move |e: tokio_postgres::Error| pg_query_error(&e, &format!("{what} on {subject}"))
        };
        // Separate calls: ALTER SYSTEM cannot run inside a transaction block.
        client
            .batch_execute("ALTER SYSTEM SET default_transaction_read_only = on")
            .await
            .map_err(fail("ALTER SYSTEM SET default_transaction_read_only"))?;
        client
            .batch_execute("SELECT pg_reload_conf()")
            .await
            .map_err(fail("pg_reload_conf"))?;
        self.wait_loaded(ctx).await?;
        let pids: Vec<i32> = client
            .query(SESSIONS, &[])
            .await
            .map_err(fail("list the client sessions"))?
            .iter()
            .map(|r| pg::get(r, 0))
            .collect::<Result<_, _>>()
            .map_err(|e| {
                StepError::fatal(format!("list the client sessions on {}: {e}", self.what))
            })?;
        let mut ended = 0;
        let mut refused = Vec::new();
        for pid in &pids {
            // One call per session, so one that may not be signalled (or is already
            // gone) does not spare the others.
            match client
                .query_one("SELECT pg_terminate_backend($1)", &[pid])
                .await
            {
                Ok(row) => match pg::get::<_, bool>(&row, 0) {
                    Ok(true) => ended += 1,
                    Ok(false) => {}
                    Err(e) => refused.push(format!("pid {pid}: {e}")),
                },
                Err(e) => refused.push(format!("pid {pid}: {}", pg::describe(&e))),
            }
        }
        if let Ok(mut f) = self.fenced.lock() {
            *f = true;
        }
        let mut detail = format!(
            "fenced {}: default_transaction_read_only = on (persisted with ALTER SYSTEM), {ended} client session(s) ended",
            self.what
        );
        if !refused.is_empty() {
            detail.push_str(&format!("; could not end {}", refused.join(", ")));
        }
        Ok(Applied::new(detail))
    }

    async fn verify(&self, ctx: &StepCtx) -> Result<Verify, StepError> {
        // A new session, as the application's next connection would be.
        let client = match self.client(ctx).await? {
            Ok(c) => c,
            Err(why) => {
                let fenced = self.fenced.lock().map(|f| *f).unwrap_or(false);
                return Ok(Verify::Done(if fenced {
                    format!(
                        "fenced {}, which has since become unreachable ({why}); the fence is persisted and holds if it restarts",
                        self.what
                    )
                } else {
                    self.unreachable(&why)
                }));
            }
        };
        if status(&client, &self.what).await?.standby {
            return Ok(Verify::Done(format!(
                "{} is in recovery (a standby): it takes no writes",
                self.what
            )));
        }
        if !read_only(&client, &self.what).await? {
            return Ok(Verify::NotYet(format!(
                "a new session on {} still sees default_transaction_read_only = off",
                self.what
            )));
        }
        Ok(match write_check(&client, &self.what).await? {
            Writable::ReadOnly(why) => Verify::Done(format!(
                "{} is fenced: a new session's test write was refused ({why})",
                self.what
            )),
            Writable::Yes => {
                Verify::NotYet(format!("a new session on {} could still write", self.what))
            }
        })
    }
}

/// Waits until a standby has replayed everything the fenced writer wrote: the
/// zero-data-loss part of a failback.
///
/// Guarantees: `verify` says done only once the standby's replay position has reached
/// the writer's WAL position read after the fence (every commit the writer
/// acknowledged comes before it, since the fence ended all client sessions).
/// Assumptions: a `postgres_fence` step on the writer ran before this one.
/// Errors: fatal when the writer still takes writes (not fenced) or the standby is not
/// a standby; NeedsApproval when the writer is unreachable and the run has not
/// accepted data loss (promoting then keeps only what the standby already has).
pub struct CatchUp {
    standby: PostgresEndpoint,
    writer: PostgresEndpoint,
    what_standby: String,
    what_writer: String,
    /// The writer's WAL position, read once (`None` before; `Some(None)` when the writer
    /// is unreachable and the run accepted the loss).
    target: Mutex<Option<Option<u64>>>,
}

impl CatchUp {
    pub fn new(
        standby: PostgresEndpoint,
        writer: PostgresEndpoint,
        region: RegionName,
        from: RegionName,
    ) -> CatchUp {
        CatchUp {
            what_standby: format!("standby {standby} in {region}"),
            what_writer: format!("fenced writer {writer} in {from}"),
            standby,
            writer,
            target: Mutex::new(None),
        }
    }

    /// The writer's WAL position, read on first use.
    async fn target(&self, ctx: &StepCtx) -> Result<Option<u64>, StepError> {
        if let Some(t) = self.target.lock().ok().and_then(|t| *t) {
            return Ok(t);
        }
        let t = self.read_writer(ctx).await?;
        if let Ok(mut slot) = self.target.lock() {
            *slot = Some(t);
        }
        Ok(t)
    }

    async fn read_writer(&self, ctx: &StepCtx) -> Result<Option<u64>, StepError> {
        let w = &self.what_writer;
        let client = match pg::connect(&self.writer, connect_bound(ctx.deadline)).await {
            Ok(c) => c,
            Err(e) if e.is_unreachable() && ctx.allow_data_loss => return Ok(None),
            Err(e) if e.is_unreachable() => {
                return Err(StepError::needs_approval(format!(
                    "the {w} is unreachable ({e}), so {} may lack its last writes — approve with --allow-data-loss to go on without them",
                    self.what_standby
                )));
            }
            Err(e) => return Err(pg_connect_error(&e, &format!("connect to the {w}"))),
        };
        if status(&client, w).await?.standby {
            return Err(StepError::fatal(format!(
                "the {w} is itself a standby, so there is no writer to catch up with: check which region serves (lifeboat status)"
            )));
        }
        if !read_only(&client, w).await? {
            return Err(StepError::fatal(format!(
                "the {w} still takes writes (default_transaction_read_only is off), so no position is final: \
                 fence it first (a postgres_fence step before this one)"
            )));
        }
        let row = client
            .query_one("SELECT pg_current_wal_lsn()::text", &[])
            .await
            .map_err(|e| pg_query_error(&e, &format!("read the WAL position of the {w}")))?;
        let text: String = pg::get(&row, 0)
            .map_err(|e| StepError::fatal(format!("read the WAL position of the {w}: {e}")))?;
        parse_lsn(&text)
            .map(Some)
            .ok_or_else(|| StepError::fatal(format!("the {w} reported WAL position `{text}`")))
    }

    /// The standby's replay position and whether it streams.
    async fn replayed(&self, ctx: &StepCtx) -> Result<(u64, bool), StepError> {
        let s = &self.what_standby;
        let client = connect(&self.standby, ctx, s).await?;
        let st = status(&client, s).await?;
        if !st.standby {
            return Err(StepError::fatal(format!(
                "{s} is not in recovery, so it cannot replay the writer's WAL: rebuild it as a standby of the writer (pg_rewind) first"
            )));
        }
        let row = client
            .query_one("SELECT pg_last_wal_replay_lsn()::text", &[])
            .await
            .map_err(|e| pg_query_error(&e, &format!("read the replay position of {s}")))?;
        let text: Option<String> = pg::get(&row, 0)
            .map_err(|e| StepError::fatal(format!("read the replay position of {s}: {e}")))?;
        let lsn = text.as_deref().and_then(parse_lsn).unwrap_or(0);
        let streaming = st.lag.and_then(|l| l.streaming).unwrap_or(false);
        Ok((lsn, streaming))
    }

    async fn observe(&self, ctx: &StepCtx) -> Result<Result<String, String>, StepError> {
        let target = self.target(ctx).await?;
        let (replayed, streaming) = self.replayed(ctx).await?;
        let Some(target) = target else {
            return Ok(Ok(format!(
                "the {} is unreachable and the run accepted data loss: {} goes on with what it replayed (up to {})",
                self.what_writer,
                self.what_standby,
                fmt_lsn(replayed)
            )));
        };
        if replayed >= target {
            return Ok(Ok(format!(
                "{} replayed up to {}, at or past the {}'s position {} (lag 0)",
                self.what_standby,
                fmt_lsn(replayed),
                self.what_writer,
                fmt_lsn(target)
            )));
        }
        let streams = if streaming {
            ""
        } else {
            "; it is not streaming: check its primary_conninfo"
        };
        Ok(Err(format!(
            "{} replayed up to {}, {} bytes short of {}{streams}",
            self.what_standby,
            fmt_lsn(replayed),
            target - replayed,
            fmt_lsn(target)
        )))
    }
}

#[async_trait]
impl Step for CatchUp {
    async fn readiness(&self, ctx: &ReadyCtx) -> Readiness {
        super::ready_pg::catch_up(
            &self.standby,
            &self.writer,
            &self.what_standby,
            &self.what_writer,
            ctx,
        )
        .await
    }

    async fn check(&self, ctx: &StepCtx) -> Result<Check, StepError> {
        Ok(match self.observe(ctx).await? {
            Ok(d) => Check::Done(d),
            Err(d) => Check::NotDone(d),
        })
    }

    /// Nothing to do but wait: streaming replication delivers the WAL. Reads the
    /// writer's position, which `verify` waits for.
    async fn apply(&self, ctx: &StepCtx) -> Result<Applied, StepError> {
        Ok(Applied::new(match self.target(ctx).await? {
            Some(t) => format!(
                "waiting for {} to replay up to {}, the {}'s position",
                self.what_standby,
                fmt_lsn(t),
                self.what_writer
            ),
            None => format!(
                "the {} is unreachable and the run accepted data loss",
                self.what_writer
            ),
        }))
    }

    async fn verify(&self, ctx: &StepCtx) -> Result<Verify, StepError> {
        Ok(match self.observe(ctx).await? {
            Ok(d) => Verify::Done(d),
            Err(d) => Verify::NotYet(d),
        })
    }
}
