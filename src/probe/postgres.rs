//! `postgres` probes: connect, run one query, and report the role and, on a standby,
//! the replica lag the RPO guardrail reads.

use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::watch;

use super::{Facts, Failure, Probe};
use crate::clients::pg::{self, PgError};
use crate::core::health::{Lag, Role};
use crate::core::model::PostgresEndpoint;

pub struct PostgresProbe {
    endpoint: PostgresEndpoint,
    /// The connect timeout; the whole round is also bounded by the caller.
    timeout: Duration,
    /// One idle connection held between rounds, and whether it has ended: a server that
    /// stops, crashes or restarts closes it, and the scheduler looks at once
    /// (`Probe::dropped`) instead of at the next round.
    tripwire: Mutex<Option<(tokio_postgres::Client, watch::Receiver<bool>)>>,
}

impl PostgresProbe {
    pub fn new(endpoint: PostgresEndpoint, timeout: Duration) -> PostgresProbe {
        PostgresProbe {
            endpoint,
            timeout,
            tripwire: Mutex::new(None),
        }
    }

    fn held(
        &self,
    ) -> std::sync::MutexGuard<'_, Option<(tokio_postgres::Client, watch::Receiver<bool>)>> {
        self.tripwire.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[async_trait]
impl Probe for PostgresProbe {
    fn endpoint(&self) -> String {
        format!("postgres {}", self.endpoint)
    }

    /// Holds one idle connection (opened on the first call, again after it ends) and
    /// returns when it ends. A server that cannot be reached leaves nothing held: the
    /// rounds report it, and the next call tries again.
    async fn dropped(&self) {
        let armed = self.held().as_ref().map(|(_, ended)| ended.clone());
        let mut ended = match armed {
            Some(ended) => ended,
            None => match pg::connect_watched(&self.endpoint, self.timeout).await {
                Ok((client, ended)) => {
                    *self.held() = Some((client, ended.clone()));
                    ended
                }
                Err(_) => return std::future::pending().await,
            },
        };
        let _ = ended.wait_for(|ended| *ended).await;
        *self.held() = None;
    }

    async fn check(&self) -> Result<Facts, Failure> {
        // A fresh connection every round: a pooled one would hide a server that no
        // longer accepts connections (max_connections reached, pg_hba changed).
        // Retried when refused or reset at once: on a lossy link one reset must not fail
        // a round; a stopped server refuses every attempt within a millisecond.
        let client = pg::connect_retrying(&self.endpoint, self.timeout)
            .await
            .map(|(client, _)| client)
            .map_err(|(e, _)| Failure::new(connect_reason(e)))?;
        let row = client
            .query_one(pg::STATUS_QUERY, &[])
            .await
            .map_err(|e| Failure::new(format!("query failed: {}", pg::describe(&e))))?;
        let standby: bool = pg::get(&row, "standby")?;
        let read_only: bool = pg::get(&row, "read_only")?;
        if !standby && read_only {
            return Ok(Facts {
                role: Some(Role::Fenced),
                lag: None,
                detail: Some("fenced: not in recovery, but refuses writes".to_string()),
            });
        }
        if !standby {
            return Ok(Facts {
                role: Some(Role::Primary),
                lag: None,
                detail: Some("primary".to_string()),
            });
        }
        let bytes: Option<f64> = pg::get(&row, "lag_bytes")?;
        let seconds: Option<f64> = pg::get(&row, "lag_seconds")?;
        let streaming: bool = pg::get(&row, "streaming")?;
        let lag = Lag::from_query(bytes, seconds, Some(streaming));
        let detail = if streaming {
            format!("standby, lag {lag}")
        } else {
            format!("standby, lag {lag} (so it covers only WAL already received)")
        };
        Ok(Facts {
            role: Some(Role::Standby),
            lag: Some(lag),
            detail: Some(detail),
        })
    }
}

/// The connection error without the endpoint, which the probe's reason already names.
fn connect_reason(e: PgError) -> String {
    match e {
        PgError::Secret { source, .. } => format!("password: {source}"),
        PgError::Timeout { timeout, .. } => {
            format!("no connection within {}ms", timeout.as_millis())
        }
        PgError::Tls { source, .. } => source.to_string(),
        PgError::Handshake { reason, .. } => reason,
        PgError::Connect { reason, .. } => format!("could not connect: {reason}"),
    }
}
