//! `postgres_promote` on a self-managed PostgreSQL standby, behind an RPO gate, and the
//! pieces the PostgreSQL steps share: the status query, the test write, LSNs.
//!
//! Privileges: promotion and fencing need more than an application role. A role that is
//! not a superuser needs (PostgreSQL 15+):
//! `GRANT EXECUTE ON FUNCTION pg_promote(boolean, integer), pg_reload_conf() TO r;`
//! `GRANT ALTER SYSTEM ON PARAMETER default_transaction_read_only TO r;`
//! `GRANT pg_signal_backend TO r;` (the sandbox grants exactly these).

use std::time::Duration;

use async_trait::async_trait;
use tokio_postgres::Client;

use super::{connect_bound, pg_connect_error, pg_query_error};
use crate::clients::pg;
use crate::core::health::Lag;
use crate::core::model::{PostgresEndpoint, RegionName};
use crate::core::readiness::Readiness;
use crate::core::rpo;
use crate::core::time::fmt_duration;
use crate::runbook::{Applied, Check, ReadyCtx, Step, StepCtx, StepError, Verify};

/// What the status query says about a server.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Status {
    /// In recovery: a standby (or a server still replaying after a crash).
    pub standby: bool,
    /// On a standby: its lag behind the WAL it received, and whether it streams.
    pub lag: Option<Lag>,
}

pub(crate) async fn status(client: &Client, what: &str) -> Result<Status, StepError> {
    let row = client
        .query_one(pg::STATUS_QUERY, &[])
        .await
        .map_err(|e| pg_query_error(&e, &format!("read the status of {what}")))?;
    let column = |e: String| StepError::fatal(format!("read the status of {what}: {e}"));
    let standby: bool = pg::get(&row, "standby").map_err(column)?;
    let lag = if standby {
        Some(Lag::from_query(
            pg::get(&row, "lag_bytes").map_err(column)?,
            pg::get(&row, "lag_seconds").map_err(column)?,
            Some(pg::get(&row, "streaming").map_err(column)?),
        ))
    } else {
        None
    };
    Ok(Status { standby, lag })
}

/// Whether a session can write.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Writable {
    Yes,
    /// Refused with SQLSTATE 25006 (read-only transaction): a standby, or a fenced
    /// server whose `default_transaction_read_only` is on. The server's words.
    ReadOnly(String),
}

/// The test write: create a temporary table, insert a row, roll back.
///
/// Why this one: a read-only transaction refuses every `CREATE`, temporary tables
/// included (SQLSTATE 25006), and so does a standby; it needs no privilege beyond the
/// default `TEMPORARY` on the database, touches no application table, and the rollback
/// leaves nothing behind. Creating the table writes the system catalogs, so it proves
/// the transaction could write, not only that it could read. Checked against
/// PostgreSQL 15 by `tests/actions_postgres.rs`.
pub(crate) async fn write_check(client: &Client, what: &str) -> Result<Writable, StepError> {
    let sql = "BEGIN; \
               CREATE TEMPORARY TABLE lifeboat_write_check (at timestamptz) ON COMMIT DROP; \
               INSERT INTO lifeboat_write_check VALUES (now()); \
               ROLLBACK";
    match client.batch_execute(sql).await {
        Ok(()) => Ok(Writable::Yes),
        Err(e) if e.code().map(|c| c.code()) == Some("25006") => {
            // The session's transaction is aborted; the caller drops the connection.
            Ok(Writable::ReadOnly(pg::describe(&e)))
        }
        Err(e) => Err(pg_query_error(&e, &format!("test write on {what}"))),
    }
}

/// Connects within the step's deadline; an error is classified for the executor.
pub(crate) async fn connect(
    ep: &PostgresEndpoint,
    ctx: &StepCtx,
    what: &str,
) -> Result<Client, StepError> {
    pg::connect(ep, connect_bound(ctx.deadline))
        .await
        .map_err(|e| pg_connect_error(&e, &format!("connect to {what}")))
}

/// A WAL position (`16/B374D848`) as a number, for comparing and subtracting.
pub(crate) fn parse_lsn(s: &str) -> Option<u64> {
    let (hi, lo) = s.trim().split_once('/')?;
    let hi = u64::from_str_radix(hi, 16).ok()?;
    let lo = u64::from_str_radix(lo, 16).ok()?;
    (hi <= u32::MAX as u64 && lo <= u32::MAX as u64).then_some((hi << 32) | lo)
}

pub(crate) fn fmt_lsn(lsn: u64) -> String {
    format!("{:X}/{:X}", lsn >> 32, lsn & 0xFFFF_FFFF)
}

/// Makes a self-managed standby the writable primary.
///
/// Guarantees: promotes only when the standby's lag is within the run's RPO budget or
/// the run accepted data loss; after promoting, clears any fence left on this node (a
/// failback promotes a node that an earlier failover fenced), so the node takes writes.
/// Assumptions: the target's role may call `pg_promote`, `pg_reload_conf` and
/// `ALTER SYSTEM` on `default_transaction_read_only` (see the module docs).
/// Errors: retryable when the server cannot be reached; NeedsApproval when the lag is
/// over budget; fatal on missing privileges.
pub struct Promote {
    ep: PostgresEndpoint,
    what: String,
}

impl Promote {
    pub fn new(ep: PostgresEndpoint, region: RegionName) -> Promote {
        let what = format!("PostgreSQL {ep} in {region}");
        Promote { ep, what }
    }

    /// One look: role, and whether a test write works.
    async fn observe(&self, ctx: &StepCtx) -> Result<(Status, Option<Writable>), StepError> {
        let client = connect(&self.ep, ctx, &self.what).await?;
        let st = status(&client, &self.what).await?;
        if st.standby {
            return Ok((st, None));
        }
        let w = write_check(&client, &self.what).await?;
        Ok((st, Some(w)))
    }
}

/// The RPO gate: `Err(NeedsApproval)` when the lag is over the budget and the run has
/// not accepted losing writes. A standby that stopped streaming reports its lag against
/// the WAL it received only; the controller's own gate, which read the lag while the
/// standby still streamed, covers what it never received.
pub(crate) fn rpo_gate(lag: Option<&Lag>, ctx: &StepCtx, what: &str) -> Result<(), StepError> {
    rpo::check(
        lag.and_then(Lag::duration),
        ctx.rpo_budget,
        ctx.allow_data_loss,
    )
    .map_err(|over| over_budget(over, what))
}

/// The approval a promotion asks for when the lag is over the budget.
pub(crate) fn over_budget(over: rpo::OverBudget, what: &str) -> StepError {
    StepError::needs_approval(format!(
        "replica lag {} on {what} exceeds the RPO budget {} — approve with --allow-data-loss to accept losing the writes not yet replicated",
        fmt_duration(over.lag),
        fmt_duration(over.budget)
    ))
}

impl Promote {
    /// How often `wait_promoted` asks whether recovery has ended.
    const PROMOTED_EVERY: Duration = Duration::from_millis(10);

    /// Waits until the server is out of recovery, but not past the step's deadline (at
    /// most a minute).
    async fn wait_promoted(&self, client: &Client, ctx: &StepCtx) -> Result<(), StepError> {
        let now = tokio::time::Instant::now();
        let until = ctx.deadline.min(now + Duration::from_secs(60));
        loop {
            let row = client
                .query_one("SELECT pg_is_in_recovery()", &[])
                .await
                .map_err(|e| pg_query_error(&e, &format!("read the role of {}", self.what)))?;
            let recovering: bool = pg::get(&row, 0)
                .map_err(|e| StepError::fatal(format!("read the role of {}: {e}", self.what)))?;
            if !recovering {
                return Ok(());
            }
            if tokio::time::Instant::now() >= until {
                return Err(StepError::retryable(format!(
                    "{} was asked to promote but is still in recovery after {}",
                    self.what,
                    fmt_duration(now.elapsed())
                )));
            }
            tokio::time::sleep(Self::PROMOTED_EVERY).await;
        }
    }
}

#[async_trait]
impl Step for Promote {
    async fn readiness(&self, ctx: &ReadyCtx) -> Readiness {
        super::ready_pg::promote(&self.ep, &self.what, ctx).await
    }

    async fn check(&self, ctx: &StepCtx) -> Result<Check, StepError> {
        Ok(match self.observe(ctx).await? {
            (st, None) => Check::NotDone(format!(
                "{} is a standby (lag {})",
                self.what,
                st.lag.map(|l| l.to_string()).unwrap_or_default()
            )),
            (_, Some(Writable::Yes)) => Check::Done(format!(
                "{} is out of recovery and a test write succeeded",
                self.what
            )),
            (_, Some(Writable::ReadOnly(why))) => Check::NotDone(format!(
                "{} is out of recovery but refuses writes ({why}): promotion clears the fence",
                self.what
            )),
        })
    }

    async fn apply(&self, ctx: &StepCtx) -> Result<Applied, StepError> {
        let client = connect(&self.ep, ctx, &self.what).await?;
        let st = status(&client, &self.what).await?;
        let mut did = Vec::new();
        if st.standby {
            rpo_gate(st.lag.as_ref(), ctx, &self.what)?;
            // Signal the promotion and watch for its end here: pg_promote's own wait
            // looks only every 100 ms, a tenth of a second added to every failover.
            let row = client
                .query_one("SELECT pg_promote(false)", &[])
                .await
                .map_err(|e| pg_query_error(&e, &format!("pg_promote on {}", self.what)))?;
            let signalled: bool = pg::get(&row, 0)
                .map_err(|e| StepError::fatal(format!("pg_promote on {}: {e}", self.what)))?;
            if !signalled {
                return Err(StepError::retryable(format!(
                    "pg_promote on {} could not signal the server to promote",
                    self.what
                )));
            }
            self.wait_promoted(&client, ctx).await?;
            let lag = st.lag.map(|l| l.to_string()).unwrap_or_default();
            let accepted = match &ctx.approved_by {
                Some(by) if ctx.allow_data_loss => format!(", data loss accepted by {by}"),
                _ if ctx.allow_data_loss => ", data loss accepted".to_string(),
                _ => String::new(),
            };
            did.push(format!("promoted (lag was {lag}{accepted})"));
        }
        // A failback promotes the node an earlier failover fenced: lift that fence, or
        // the new primary would refuse every write. ALTER SYSTEM cannot run inside a
        // transaction block, hence two calls.
        client
            .batch_execute("ALTER SYSTEM RESET default_transaction_read_only")
            .await
            .map_err(|e| pg_query_error(&e, &format!("clear the fence on {}", self.what)))?;
        client
            .batch_execute("SELECT pg_reload_conf()")
            .await
            .map_err(|e| pg_query_error(&e, &format!("reload the settings of {}", self.what)))?;
        did.push("cleared any read-only fence".to_string());
        Ok(Applied::new(format!("{}: {}", self.what, did.join("; "))))
    }

    async fn verify(&self, ctx: &StepCtx) -> Result<Verify, StepError> {
        Ok(match self.observe(ctx).await? {
            (_, None) => Verify::NotYet(format!("{} is still in recovery", self.what)),
            (_, Some(Writable::Yes)) => Verify::Done(format!(
                "{} is out of recovery and a test write succeeded",
                self.what
            )),
            (_, Some(Writable::ReadOnly(why))) => Verify::NotYet(format!(
                "{} is out of recovery but still refuses writes ({why})",
                self.what
            )),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lsns_parse_compare_and_print_like_postgres() {
        assert_eq!(parse_lsn("0/3000148"), Some(0x0300_0148));
        assert_eq!(parse_lsn("16/B374D848"), Some((0x16 << 32) | 0xB374_D848));
        assert!(parse_lsn("16/B374D848") > parse_lsn("16/B374D847"));
        assert_eq!(
            fmt_lsn(parse_lsn("16/B374D848").expect("lsn")),
            "16/B374D848"
        );
        assert_eq!(parse_lsn("nonsense"), None);
        assert_eq!(parse_lsn("1/"), None);
    }
}
