//! `redis` probes: connect (authenticating when the target has a password) and `PING`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use async_trait::async_trait;

use super::{Facts, Failure, Probe, redact_url};
use crate::clients::redis::{self as client, RedisError};
use crate::core::model::SecretRef;

pub struct RedisProbe {
    url: String,
    password: Option<SecretRef>,
    ca_file: Option<PathBuf>,
    timeout: Duration,
}

impl RedisProbe {
    pub fn new(
        url: &str,
        password: Option<SecretRef>,
        ca_file: Option<PathBuf>,
        timeout: Duration,
    ) -> RedisProbe {
        RedisProbe {
            url: url.to_string(),
            password,
            ca_file,
            timeout,
        }
    }
}

#[async_trait]
impl Probe for RedisProbe {
    fn endpoint(&self) -> String {
        format!("redis {}", redact_url(&self.url))
    }

    async fn check(&self) -> Result<Facts, Failure> {
        let mut conn = connect(
            &self.url,
            self.password.as_ref(),
            self.ca_file.as_deref(),
            self.timeout,
        )
        .await?;
        let pong: String = ::redis::cmd("PING")
            .query_async(&mut conn)
            .await
            .map_err(|e| Failure::new(format!("PING failed: {e}")))?;
        if pong != "PONG" {
            return Err(Failure::new(format!("PING answered {pong:?}")));
        }
        Ok(Facts::detail("PONG"))
    }
}

/// A connection, or a failure that does not repeat the URL (the endpoint names it).
pub(crate) async fn connect(
    url: &str,
    password: Option<&SecretRef>,
    ca_file: Option<&Path>,
    timeout: Duration,
) -> Result<::redis::aio::MultiplexedConnection, Failure> {
    client::connect(url, password, ca_file, timeout)
        .await
        .map_err(|e| {
            Failure::new(match e {
                RedisError::Secret { source, .. } => format!("password: {source}"),
                RedisError::Tls { source, .. } => source.to_string(),
                RedisError::Handshake { reason, .. } => reason,
                RedisError::Timeout { timeout, .. } => {
                    format!("no connection within {}ms", timeout.as_millis())
                }
                RedisError::Connect { reason, .. } => format!("could not connect: {reason}"),
            })
        })
}
