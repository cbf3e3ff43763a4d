//! The etcd side of coordination: [`Etcd`] (one client per endpoint, a deadline on every
//! call), [`Session`] (a lease and its keeper task), leadership and fenced writes
//! (`leader.rs`, `fenced.rs`), and the node registry and votes (`registry.rs`).

use std::sync::Arc;
use std::time::Duration;

use etcd_client::GetOptions;

use super::acting::ActingRule;
use super::error::CoordError;
use super::keys::Keys;
use crate::core::model::{EtcdAuth, EtcdTls};

mod access;
mod fenced;
mod leader;
mod pool;
mod registry;
mod session;

pub use fenced::{Fence, FencedWrite};
pub use leader::{Campaign, Leadership};
pub use pool::EndpointHealth;
pub use session::{LeaseStatus, Session};

/// How to reach etcd and the timing every call and lease follows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EtcdSettings {
    /// `https://host:port` or `http://host:port` of each member (or of a proxy in front
    /// of it).
    pub endpoints: Vec<String>,
    /// The CA and client certificate of https:// endpoints; `None`: the system's roots
    /// and no client certificate. Only for https:// endpoints.
    pub tls: Option<EtcdTls>,
    /// The etcd user to log in as, and where its password is (read when connecting).
    pub auth: Option<EtcdAuth>,
    /// The `<cluster>` segment of `/lifeboat/v1/<cluster>/`.
    pub cluster: String,
    pub lease_ttl: Duration,
    pub keep_alive: Duration,
    /// The deadline of every call, retries on other endpoints included.
    pub call_deadline: Duration,
    /// Acting stops this long before the lease could expire.
    pub safety_margin: Duration,
    /// How long an endpoint that failed is skipped (unless every endpoint has failed).
    pub endpoint_cooldown: Duration,
}

impl EtcdSettings {
    /// The production defaults (`coord/mod.rs`): TTL 5 s, keep-alive 1 s, deadline 1 s,
    /// margin 2 s.
    pub fn new(endpoints: Vec<String>, cluster: &str) -> EtcdSettings {
        EtcdSettings {
            endpoints,
            tls: None,
            auth: None,
            cluster: cluster.to_string(),
            lease_ttl: Duration::from_secs(5),
            keep_alive: Duration::from_secs(1),
            call_deadline: Duration::from_secs(1),
            safety_margin: Duration::from_secs(2),
            endpoint_cooldown: Duration::from_secs(3),
        }
    }

    /// Checks the settings against each other. Errors: `Config` naming the field.
    pub fn validate(&self) -> Result<ActingRule, CoordError> {
        let config = |field, problem: String| Err(CoordError::Config { field, problem });
        if self.endpoints.is_empty() {
            return config("endpoints", "list at least one etcd member".to_string());
        }
        for e in &self.endpoints {
            if !(e.starts_with("http://") || e.starts_with("https://")) {
                return config(
                    "endpoints",
                    format!("{e:?} is not an http:// or https:// URL"),
                );
            }
            if self.tls.is_some() && e.starts_with("http://") {
                return config(
                    "tls",
                    format!(
                        "TLS settings need https:// members; {e} is http://: write it as https:// (the member needs --cert-file and --key-file), or drop the TLS settings"
                    ),
                );
            }
        }
        if self.lease_ttl < Duration::from_secs(1) || self.lease_ttl.subsec_nanos() != 0 {
            return config(
                "lease_ttl",
                format!(
                    "etcd grants leases in whole seconds; got {} ms",
                    self.lease_ttl.as_millis()
                ),
            );
        }
        let rule = ActingRule::new(self.lease_ttl, self.safety_margin)?;
        if self.call_deadline.is_zero() || self.call_deadline >= self.lease_ttl {
            return config(
                "call_deadline",
                format!(
                    "must be above zero and below the lease TTL ({} ms), got {} ms",
                    self.lease_ttl.as_millis(),
                    self.call_deadline.as_millis()
                ),
            );
        }
        // A keep-alive must have time to fail and be retried on another member before
        // acting stops.
        if self.keep_alive.is_zero() || self.keep_alive + self.call_deadline > rule.window() {
            return config(
                "keep_alive",
                format!(
                    "keep_alive ({} ms) plus call_deadline ({} ms) must fit in lease_ttl − safety_margin ({} ms)",
                    self.keep_alive.as_millis(),
                    self.call_deadline.as_millis(),
                    rule.window().as_millis()
                ),
            );
        }
        Ok(rule)
    }
}

/// A key as stored in etcd.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stored {
    pub key: String,
    pub value: Vec<u8>,
    pub create_revision: i64,
    pub mod_revision: i64,
    pub lease: i64,
}

impl Stored {
    fn from_kv(kv: &etcd_client::KeyValue) -> Stored {
        Stored {
            key: String::from_utf8_lossy(kv.key()).into_owned(),
            value: kv.value().to_vec(),
            create_revision: kv.create_revision(),
            mod_revision: kv.mod_revision(),
            lease: kv.lease(),
        }
    }

    /// The value as JSON of type `T`. Errors: `Decode` naming the key.
    pub fn json<T: serde::de::DeserializeOwned>(&self) -> Result<T, CoordError> {
        serde_json::from_slice(&self.value).map_err(|e| CoordError::Decode {
            key: self.key.clone(),
            detail: e.to_string(),
        })
    }
}

/// A handle on an etcd cluster; cheap to clone.
#[derive(Clone)]
pub struct Etcd {
    pool: Arc<pool::Pool>,
    keys: Keys,
    rule: ActingRule,
    settings: Arc<EtcdSettings>,
}

impl std::fmt::Debug for Etcd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Etcd")
            .field("endpoints", &self.settings.endpoints)
            .field("root", &self.keys.root())
            .finish()
    }
}

impl Etcd {
    /// Builds one client per endpoint, reading the TLS files and the password. Connections
    /// open, and clients log in, lazily, so this succeeds while members are down.
    /// Errors: `Config` for bad settings or a file or secret that cannot be read.
    pub async fn connect(settings: EtcdSettings) -> Result<Etcd, CoordError> {
        let rule = settings.validate()?;
        let keys = Keys::new(&settings.cluster)?;
        let pool = pool::Pool::connect(&settings, keys.root()).await?;
        Ok(Etcd {
            pool: Arc::new(pool),
            keys,
            rule,
            settings: Arc::new(settings),
        })
    }

    pub fn keys(&self) -> &Keys {
        &self.keys
    }

    pub fn settings(&self) -> &EtcdSettings {
        &self.settings
    }

    pub fn acting_rule(&self) -> ActingRule {
        self.rule
    }

    /// Each endpoint and whether it is in its cool-down after a failure.
    pub fn endpoint_health(&self) -> Vec<EndpointHealth> {
        self.pool.health()
    }

    /// Reads one key (linearizable). `None` when it does not exist.
    pub async fn get(&self, key: &str) -> Result<Option<Stored>, CoordError> {
        let key = key.to_string();
        let resp = self
            .pool
            .call("get", |mut c| {
                let key = key.clone();
                async move { c.get(key, None).await }
            })
            .await?;
        Ok(resp.kvs().first().map(Stored::from_kv))
    }

    /// Reads every key under `prefix` (linearizable), in key order.
    pub async fn list(&self, prefix: &str) -> Result<Vec<Stored>, CoordError> {
        let prefix = prefix.to_string();
        let resp = self
            .pool
            .call("list", |mut c| {
                let prefix = prefix.clone();
                async move { c.get(prefix, Some(GetOptions::new().with_prefix())).await }
            })
            .await?;
        Ok(resp.kvs().iter().map(Stored::from_kv).collect())
    }

    /// A plain put, under `lease` when given (0 means none). Returns the new revision.
    /// Not fenced: for keys each node owns alone (its registry entry, its vote).
    /// Errors: `LeaseLost` when the lease is gone, `Unavailable`.
    pub async fn put(&self, key: &str, value: Vec<u8>, lease: i64) -> Result<i64, CoordError> {
        let key = key.to_string();
        let resp = self
            .pool
            .call("put", |mut c| {
                let (key, value) = (key.clone(), value.clone());
                let options =
                    (lease != 0).then(|| etcd_client::PutOptions::new().with_lease(lease));
                async move { c.put(key, value, options).await }
            })
            .await
            .map_err(|e| e.for_lease(lease))?;
        Ok(resp.header().map_or(0, |h| h.revision()))
    }

    /// Per member: its raft term and whom it sees as raft leader (for tests and `status`).
    pub async fn member_status(&self) -> Vec<(String, Result<(u64, u64), CoordError>)> {
        self.pool.member_status().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(e: CoordError) -> &'static str {
        match e {
            CoordError::Config { field, .. } => field,
            other => panic!("expected a configuration error, got {other:?}"),
        }
    }

    #[test]
    fn settings_that_cannot_keep_a_lease_are_refused_naming_the_field() {
        let ok = EtcdSettings::new(vec!["http://127.0.0.1:2379".into()], "prod");
        let rule = ok.validate().expect("the defaults are consistent");
        assert_eq!(rule.window(), Duration::from_secs(3));
        let bad = |f: fn(&mut EtcdSettings)| {
            let mut s = ok.clone();
            f(&mut s);
            field(s.validate().expect_err("refused"))
        };
        assert_eq!(bad(|s| s.endpoints.clear()), "endpoints");
        assert_eq!(
            bad(|s| s.endpoints = vec!["127.0.0.1:2379".into()]),
            "endpoints"
        );
        assert_eq!(
            bad(|s| s.lease_ttl = Duration::from_millis(2500)),
            "lease_ttl"
        );
        assert_eq!(
            bad(|s| s.safety_margin = Duration::from_secs(5)),
            "safety_margin"
        );
        assert_eq!(
            bad(|s| s.call_deadline = Duration::from_secs(5)),
            "call_deadline"
        );
        assert_eq!(
            bad(|s| s.keep_alive = Duration::from_millis(2500)),
            "keep_alive"
        );
        assert_eq!(bad(|s| s.tls = Some(EtcdTls::default())), "tls");
        let mut https = ok.clone();
        https.endpoints = vec!["https://127.0.0.1:2379".into()];
        https.tls = Some(EtcdTls::default());
        https
            .validate()
            .expect("TLS settings with https:// members");
    }
}
