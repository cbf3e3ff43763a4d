//! Redis connections from a policy endpoint (URL plus an optional password reference).

use std::time::Duration;

use redis::aio::MultiplexedConnection;
use thiserror::Error;

use super::secret::{self, SecretError};

#[derive(Debug, Error)]
pub enum RedisError {
    #[error("Redis {url}: {source}")]
    Secret { url: String, source: SecretError },
    #[error("Redis {url}: no connection within {}ms", timeout.as_millis())]
    Timeout { url: String, timeout: Duration },
    #[error("Redis {url}: {reason}")]
    Connect { url: String, reason: String },
}

/// Connects to `url`, authenticating with the password reference when there is one.
pub async fn connect(
    url: &str,
    password: Option<&crate::core::model::SecretRef>,
    timeout: Duration,
) -> Result<MultiplexedConnection, RedisError> {
    let mut info: redis::ConnectionInfo = redis::IntoConnectionInfo::into_connection_info(url)
        .map_err(|e| RedisError::Connect {
            url: url.to_string(),
            reason: e.to_string(),
        })?;
    if let Some(r) = password {
        let pw = secret::resolve(r).map_err(|source| RedisError::Secret {
            url: url.to_string(),
            source,
        })?;
        let settings = info.redis_settings().clone().set_password(pw.expose());
        info = info.set_redis_settings(settings);
    }
    let client = redis::Client::open(info).map_err(|e| RedisError::Connect {
        url: url.to_string(),
        reason: e.to_string(),
    })?;
    match tokio::time::timeout(timeout, client.get_multiplexed_async_connection()).await {
        Err(_) => Err(RedisError::Timeout {
            url: url.to_string(),
            timeout,
        }),
        Ok(Err(e)) => Err(RedisError::Connect {
            url: url.to_string(),
            reason: e.to_string(),
        }),
        Ok(Ok(c)) => Ok(c),
    }
}
