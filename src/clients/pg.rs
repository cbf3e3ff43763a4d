//! PostgreSQL connections from a policy endpoint: TLS as its `sslmode` says, a connect
//! timeout, and errors that name `user@host:port/database` but never the password.
//!
//! Every probe and step that talks to PostgreSQL connects here, so they all get the same
//! TLS checks.

use std::time::Duration;

use thiserror::Error;
use tokio::sync::watch;
use tokio_postgres::{Client, NoTls};

use super::secret::{self, SecretError};
use super::tls::{self, PgTls, TlsError};
use crate::core::model::{PostgresEndpoint, SslMode};

#[derive(Debug, Error)]
pub enum PgError {
    #[error("PostgreSQL {endpoint}: {source}")]
    Secret {
        endpoint: String,
        source: SecretError,
    },
    /// The TLS setup could not be built (an unreadable or empty CA file, no CA at all).
    #[error("PostgreSQL {endpoint}: {source}")]
    Tls { endpoint: String, source: TlsError },
    /// Something answered, but not as a server lifeboat may trust: its certificate was
    /// refused, or it does not speak TLS although the target requires it. Never
    /// "unreachable": a man in the middle must not pass for a dead primary.
    #[error("PostgreSQL {endpoint}: {reason}")]
    Handshake { endpoint: String, reason: String },
    #[error("PostgreSQL {endpoint}: no connection within {}ms", timeout.as_millis())]
    Timeout { endpoint: String, timeout: Duration },
    #[error("PostgreSQL {endpoint}: {reason}")]
    Connect {
        endpoint: String,
        reason: String,
        /// The SQLSTATE when the server answered with an error (a wrong password, a
        /// missing database, too many connections); `None` when it could not be reached.
        sqlstate: Option<String>,
    },
}

impl PgError {
    /// Nothing answered at the address: refused, reset or timed out before the server
    /// said anything. A server that answered with an error (even "shutting down") was
    /// reachable.
    pub fn is_unreachable(&self) -> bool {
        matches!(
            self,
            PgError::Timeout { .. } | PgError::Connect { sqlstate: None, .. }
        )
    }
}

/// The status query the `postgres` probe and the promotion step share: one round trip
/// that proves the server answers queries (`SELECT 1` plus what it knows about
/// replication).
///
/// Lag is measured on the standby against the WAL it has received:
/// - bytes: received but not yet replayed;
/// - seconds: while replay is behind, the age of the last replayed transaction; when
///   everything received is replayed, zero. The age alone would be wrong on an idle
///   primary: with no new transactions it grows forever although nothing is missing.
///   The age is an upper bound on how far replay is behind while it is behind.
/// - streaming: whether a WAL receiver process is running. When the standby loses its
///   primary, the received position stops advancing, replay catches up, and both
///   figures fall to zero although the standby may lack the primary's last writes;
///   `streaming = false` is what tells that case apart. (Unprivileged roles see only the
///   receiver's pid in `pg_stat_wal_receiver`, which is all this needs.)
pub const STATUS_QUERY: &str = "\
SELECT 1::int4 AS alive,
       pg_is_in_recovery() AS standby,
       CASE WHEN pg_is_in_recovery()
            THEN pg_wal_lsn_diff(pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn())::float8
       END AS lag_bytes,
       CASE WHEN NOT pg_is_in_recovery() THEN NULL
            WHEN pg_last_wal_receive_lsn() IS NOT DISTINCT FROM pg_last_wal_replay_lsn() THEN 0::float8
            ELSE extract(epoch FROM now() - pg_last_xact_replay_timestamp())::float8
       END AS lag_seconds,
       EXISTS (SELECT 1 FROM pg_stat_wal_receiver) AS streaming,
       current_setting('default_transaction_read_only') = 'on' AS read_only";

/// Connects (over TLS unless the endpoint's `sslmode` is `disable`) and spawns the
/// connection's driver task. The connection closes when the returned client is dropped.
///
/// Errors: an unreadable password or CA file; no answer within `timeout`; the server
/// refusing (its SQLSTATE kept); a TLS handshake that failed, explained (which check,
/// and what to change).
pub async fn connect(ep: &PostgresEndpoint, timeout: Duration) -> Result<Client, PgError> {
    connect_watched(ep, timeout).await.map(|(client, _)| client)
}

/// Connection attempts when the connection itself is refused or reset at once.
pub const CONNECT_ATTEMPTS: u32 = 3;

/// `connect`, tried again (up to `CONNECT_ATTEMPTS` in all) when nothing answered and the
/// attempt failed at once (refused, reset): on a lossy link a new connection is now and
/// then reset, and one reset must not count as the server being gone. A server that
/// answered with an error, or a connection that timed out, is not tried again. Returns
/// the attempts made beside the client or the last error.
pub async fn connect_retrying(
    ep: &PostgresEndpoint,
    timeout: Duration,
) -> Result<(Client, u32), (PgError, u32)> {
    let mut attempt = 1;
    loop {
        match connect(ep, timeout).await {
            Ok(client) => return Ok((client, attempt)),
            Err(e @ PgError::Connect { sqlstate: None, .. }) if attempt < CONNECT_ATTEMPTS => {
                tracing::debug!(endpoint = %ep, "connection attempt {attempt} failed, trying again: {e}");
                attempt += 1;
            }
            Err(e) => return Err((e, attempt)),
        }
    }
}

/// `connect`, and a receiver that turns `true` when the connection has ended: the
/// server closed it (stopped, crashed, restarted, ended the session), the network reset
/// it, or the client was dropped.
pub async fn connect_watched(
    ep: &PostgresEndpoint,
    timeout: Duration,
) -> Result<(Client, watch::Receiver<bool>), PgError> {
    let (ended, on_end) = watch::channel(false);
    let endpoint = ep.to_string();
    let mut config = tokio_postgres::Config::new();
    config
        .host(&ep.host)
        .port(ep.port)
        .user(&ep.user)
        .dbname(&ep.database)
        .application_name("lifeboat")
        .connect_timeout(timeout);
    if let Some(r) = &ep.password {
        let pw = secret::resolve(r).map_err(|source| PgError::Secret {
            endpoint: endpoint.clone(),
            source,
        })?;
        config.password(pw.expose());
    }
    let tls =
        tls::client_config(ep.sslmode, ep.ca_file.as_deref()).map_err(|source| PgError::Tls {
            endpoint: endpoint.clone(),
            source,
        })?;
    let connected = match tls {
        None => {
            config.ssl_mode(tokio_postgres::config::SslMode::Disable);
            tokio::time::timeout(timeout, async {
                let (client, conn) = config.connect(NoTls).await?;
                tokio::spawn(async move {
                    // Errors surface on the client's next query; nothing to do here.
                    let _ = conn.await;
                    let _ = ended.send(true);
                });
                Ok::<_, tokio_postgres::Error>(client)
            })
            .await
        }
        Some(tls) => {
            // Require: a server without TLS is refused rather than talked to in clear.
            config.ssl_mode(tokio_postgres::config::SslMode::Require);
            tokio::time::timeout(timeout, async {
                let (client, conn) = config.connect(PgTls(tls)).await?;
                tokio::spawn(async move {
                    let _ = conn.await;
                    let _ = ended.send(true);
                });
                Ok::<_, tokio_postgres::Error>(client)
            })
            .await
        }
    };
    match connected {
        Err(_) => Err(PgError::Timeout { endpoint, timeout }),
        Ok(Err(e)) => match refused_handshake(&e, ep) {
            Some(reason) => Err(PgError::Handshake { endpoint, reason }),
            None => Err(PgError::Connect {
                reason: describe(&e),
                endpoint,
                sqlstate: e.code().map(|c| c.code().to_string()),
            }),
        },
        Ok(Ok(client)) => Ok((client, on_end)),
    }
}

/// Why the TLS handshake was refused, explained, when that is what failed: rustls's own
/// words ("UnknownIssuer") do not say what to change.
fn refused_handshake(e: &tokio_postgres::Error, ep: &PostgresEndpoint) -> Option<String> {
    if ep.sslmode == SslMode::Disable {
        return None;
    }
    if let Some(why) =
        tls::find_rustls_error(e).and_then(|r| tls::explain(r, ep.sslmode, ep.ca_file.as_deref()))
    {
        return Some(why);
    }
    let said = describe(e);
    said.contains("server does not support TLS").then(|| {
        format!(
            "{said}, but the target asks for sslmode = \"{}\": turn ssl on in the server, or set sslmode = \"disable\" if the connection never leaves a trusted network",
            ep.sslmode
        )
    })
}

/// A column of a row, or an error that names it: a server (or something posing as one)
/// answering with another type must fail the round or the step, never panic its task.
pub fn get<'a, I, T>(row: &'a tokio_postgres::Row, column: I) -> Result<T, String>
where
    I: tokio_postgres::row::RowIndex + std::fmt::Display,
    T: tokio_postgres::types::FromSql<'a>,
{
    row.try_get(&column)
        .map_err(|e| format!("unexpected answer in column `{column}`: {}", describe(&e)))
}

/// A tokio-postgres error in one line: the server's message (with its SQLSTATE) when it
/// sent one, the cause chain otherwise.
pub fn describe(e: &tokio_postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        return format!("{} ({}): {}", db.severity(), db.code().code(), db.message());
    }
    let mut s = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        s.push_str(": ");
        s.push_str(&cause.to_string());
        source = cause.source();
    }
    s
}
