//! Redis connections from a policy endpoint: a URL, an optional password reference, and
//! for `rediss://` the CA file the server's certificate must chain to (the system's
//! roots without one). Probes, heartbeats and the cache step all connect here.

use std::path::Path;
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use thiserror::Error;

use super::secret::{self, SecretError};
use super::tls::{self, TlsError};
use crate::core::model::{SecretRef, SslMode};

#[derive(Debug, Error)]
pub enum RedisError {
    #[error("Redis {url}: {source}")]
    Secret { url: String, source: SecretError },
    #[error("Redis {url}: {source}")]
    Tls { url: String, source: TlsError },
    /// The server's certificate was refused: not "unreachable", and not worth a retry.
    #[error("Redis {url}: {reason}")]
    Handshake { url: String, reason: String },
    #[error("Redis {url}: no connection within {}ms", timeout.as_millis())]
    Timeout { url: String, timeout: Duration },
    #[error("Redis {url}: {reason}")]
    Connect { url: String, reason: String },
}

/// Connects to `url`, authenticating with the password reference when there is one,
/// and for `rediss://` checking the server's certificate and name against `ca_file`
/// (or the system's roots).
///
/// Errors name the URL (without credentials) and, for a refused certificate, what to
/// change.
pub async fn connect(
    url: &str,
    password: Option<&SecretRef>,
    ca_file: Option<&Path>,
    timeout: Duration,
) -> Result<MultiplexedConnection, RedisError> {
    // Policies refuse credentials in URLs, so the URL itself is fit to print.
    let shown = url.to_string();
    let connect_error = |reason: String| RedisError::Connect {
        url: shown.clone(),
        reason,
    };
    let mut info: redis::ConnectionInfo = redis::IntoConnectionInfo::into_connection_info(url)
        .map_err(|e| connect_error(e.to_string()))?;
    if let Some(r) = password {
        let pw = secret::resolve(r).map_err(|source| RedisError::Secret {
            url: shown.clone(),
            source,
        })?;
        let settings = info.redis_settings().clone().set_password(pw.expose());
        info = info.set_redis_settings(settings);
    }
    let over_tls = url.starts_with("rediss://");
    let client = match (over_tls, ca_file) {
        (true, Some(path)) => {
            // Read and checked here so a bad file is reported as such, not as a
            // handshake failure.
            tls::roots(Some(path)).map_err(|source| RedisError::Tls {
                url: shown.clone(),
                source,
            })?;
            let pem = std::fs::read(path).map_err(|e| RedisError::Tls {
                url: shown.clone(),
                source: TlsError::CaFile {
                    path: path.display().to_string(),
                    reason: e.kind().to_string(),
                },
            })?;
            let certs = redis::TlsCertificates {
                client_tls: None,
                root_cert: Some(pem),
            };
            redis::Client::build_with_tls(info, certs)
        }
        (true, None) => {
            tls::roots(None).map_err(|source| RedisError::Tls {
                url: shown.clone(),
                source,
            })?;
            redis::Client::open(info)
        }
        (false, _) => redis::Client::open(info),
    }
    .map_err(|e| connect_error(e.to_string()))?;
    match tokio::time::timeout(timeout, client.get_multiplexed_async_connection()).await {
        Err(_) => Err(RedisError::Timeout {
            url: shown,
            timeout,
        }),
        Ok(Err(e)) => {
            let refused = over_tls
                .then(|| tls::find_rustls_error(&e as &(dyn std::error::Error + 'static)))
                .flatten()
                .and_then(|r| tls::explain(r, SslMode::VerifyFull, ca_file));
            Err(match refused {
                Some(reason) => RedisError::Handshake { url: shown, reason },
                None => connect_error(e.to_string()),
            })
        }
        Ok(Ok(c)) => Ok(c),
    }
}
