//! PostgreSQL connections from a policy endpoint, with a connect timeout and errors that
//! name `user@host:port/database` but never the password.

use std::time::Duration;

use thiserror::Error;
use tokio_postgres::{Client, NoTls};

use super::secret::{self, SecretError};
use crate::core::model::PostgresEndpoint;

#[derive(Debug, Error)]
pub enum PgError {
    #[error("PostgreSQL {endpoint}: {source}")]
    Secret {
        endpoint: String,
        source: SecretError,
    },
    #[error("PostgreSQL {endpoint}: no connection within {}ms", timeout.as_millis())]
    Timeout { endpoint: String, timeout: Duration },
    #[error("PostgreSQL {endpoint}: {reason}")]
    Connect { endpoint: String, reason: String },
}

/// Connects and spawns the connection's driver task. The connection closes when the
/// returned client is dropped.
pub async fn connect(ep: &PostgresEndpoint, timeout: Duration) -> Result<Client, PgError> {
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
    let (client, connection) = match tokio::time::timeout(timeout, config.connect(NoTls)).await {
        Err(_) => return Err(PgError::Timeout { endpoint, timeout }),
        Ok(Err(e)) => {
            return Err(PgError::Connect {
                endpoint,
                reason: describe(&e),
            });
        }
        Ok(Ok(c)) => c,
    };
    tokio::spawn(async move {
        // Errors surface on the client's next query; nothing to do here.
        let _ = connection.await;
    });
    Ok(client)
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
