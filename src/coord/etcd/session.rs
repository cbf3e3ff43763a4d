//! A lease and the task that keeps it alive. `etcd-client` never re-opens a broken
//! keep-alive stream, and a stream that broke silently costs a needless handover, so the
//! keeper re-opens it on the next endpoint on any error or missed answer.

use std::sync::Arc;
use std::time::Duration;

use etcd_client::{LeaseKeepAliveStream, LeaseKeeper};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::Etcd;
use super::pool::{Fault, Pool};
use crate::coord::acting::ActingRule;
use crate::coord::error::CoordError;

/// What the keeper knows about its lease.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaseStatus {
    pub lease: i64,
    /// When the last keep-alive (or the grant) that etcd confirmed was sent.
    pub confirmed_at: Option<Instant>,
    /// The TTL etcd reported in its last answer.
    pub granted: Duration,
    /// etcd said the lease is gone; nothing held under it survives.
    pub lost: bool,
    /// The endpoint carrying the keep-alive stream, while one is open.
    pub endpoint: Option<String>,
    /// How many times the stream was re-opened after breaking.
    pub reopened: u32,
    pub confirmations: u64,
}

/// A lease kept alive by its own task. Clones share the lease; the keeper stops when the
/// last clone is dropped (the lease then expires after its TTL) or on [`Session::revoke`].
#[derive(Clone)]
pub struct Session {
    inner: Arc<Inner>,
}

struct Inner {
    lease: i64,
    rule: ActingRule,
    status: watch::Receiver<LeaseStatus>,
    task: JoinHandle<()>,
    /// Set by [`Session::revoke`]: the keeper is gone, so the status stops changing, and
    /// nothing may act under this lease any more.
    revoked: std::sync::atomic::AtomicBool,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("lease", &format_args!("{:x}", self.inner.lease))
            .finish()
    }
}

impl Etcd {
    /// Grants a lease of the configured TTL and starts its keeper.
    /// Errors: `Unavailable` when no member granted it within the deadline.
    pub async fn session(&self) -> Result<Session, CoordError> {
        let ttl = i64::try_from(self.settings.lease_ttl.as_secs()).unwrap_or(i64::MAX);
        let sent = Instant::now();
        let resp = self
            .pool
            .call("lease grant", |mut c| async move {
                c.lease_grant(ttl, None).await
            })
            .await?;
        let lease = resp.id();
        let (tx, rx) = watch::channel(LeaseStatus {
            lease,
            confirmed_at: Some(sent),
            granted: Duration::from_secs(u64::try_from(resp.ttl()).unwrap_or(0)),
            lost: false,
            endpoint: None,
            reopened: 0,
            confirmations: 1,
        });
        let task = tokio::spawn(keep(self.pool.clone(), lease, self.settings.keep_alive, tx));
        Ok(Session {
            inner: Arc::new(Inner {
                lease,
                rule: self.rule,
                status: rx,
                task,
                revoked: std::sync::atomic::AtomicBool::new(false),
            }),
        })
    }
}

impl Session {
    pub fn lease(&self) -> i64 {
        self.inner.lease
    }

    pub fn status(&self) -> LeaseStatus {
        self.inner.status.borrow().clone()
    }

    /// Changes of the status, for waiting on a confirmation or the loss of the lease.
    pub fn subscribe(&self) -> watch::Receiver<LeaseStatus> {
        self.inner.status.clone()
    }

    /// The acting rule on tokio's clock (a paused clock in tests).
    pub fn acting(&self) -> bool {
        self.acting_at(Instant::now())
    }

    pub fn acting_at(&self, now: Instant) -> bool {
        if self.inner.revoked.load(std::sync::atomic::Ordering::SeqCst) {
            return false;
        }
        let s = self.inner.status.borrow();
        !s.lost && self.inner.rule.acting(s.confirmed_at, s.granted, now)
    }

    /// When acting ends unless another keep-alive is confirmed first.
    pub fn acting_until(&self) -> Option<Instant> {
        let s = self.inner.status.borrow();
        if s.lost || self.inner.revoked.load(std::sync::atomic::Ordering::SeqCst) {
            return None;
        }
        s.confirmed_at
            .map(|at| self.inner.rule.acting_until(at, s.granted))
    }

    /// Stops the keeper and revokes the lease, deleting every key held under it (the
    /// leader key among them: a graceful handover needs no TTL wait).
    pub async fn revoke(&self, etcd: &Etcd) -> Result<(), CoordError> {
        self.inner
            .revoked
            .store(true, std::sync::atomic::Ordering::SeqCst);
        self.inner.task.abort();
        let lease = self.inner.lease;
        match etcd
            .pool
            .call("lease revoke", |mut c| async move {
                c.lease_revoke(lease).await
            })
            .await
        {
            Ok(_) | Err(CoordError::LeaseLost { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }
}

/// Opening the stream sends the first keep-alive and waits for its answer.
enum Opened {
    Stream(LeaseKeeper, LeaseKeepAliveStream, usize),
    Lost,
    NoEndpoint,
}

async fn open(pool: &Pool, lease: i64, status: &watch::Sender<LeaseStatus>) -> Opened {
    for i in pool.order() {
        let sent = Instant::now();
        let open = async { pool.client(i).await?.lease_keep_alive(lease).await };
        match tokio::time::timeout(pool.deadline(), open).await {
            Ok(Ok((keeper, stream))) => {
                pool.mark_ok(i);
                status.send_modify(|s| {
                    s.confirmed_at = Some(sent);
                    s.confirmations += 1;
                    s.endpoint = Some(pool.endpoint(i).to_string());
                });
                return Opened::Stream(keeper, stream, i);
            }
            Ok(Err(e)) => match pool.classify(i, &e) {
                Fault::LeaseNotFound => return Opened::Lost,
                Fault::Endpoint(detail)
                | Fault::Access(detail)
                | Fault::Request(detail)
                | Fault::LoggedOut(detail) => {
                    tracing::warn!(lease = %format_args!("{lease:x}"), endpoint = pool.endpoint(i), %detail, "could not open the lease keep-alive stream; trying the next member");
                    pool.mark_failed(i);
                }
            },
            Err(_) => {
                tracing::warn!(lease = %format_args!("{lease:x}"), endpoint = pool.endpoint(i), "no answer opening the lease keep-alive stream; trying the next member");
                pool.mark_failed(i);
            }
        }
    }
    Opened::NoEndpoint
}

/// The keeper: one keep-alive per interval on an open stream; on any error or a missed
/// answer, the stream is dropped and re-opened at once on the next endpoint.
async fn keep(pool: Arc<Pool>, lease: i64, interval: Duration, status: watch::Sender<LeaseStatus>) {
    let mut first = true;
    let mut next = Instant::now() + interval;
    loop {
        let (mut keeper, mut stream, i) = match open(&pool, lease, &status).await {
            Opened::Stream(k, s, i) => (k, s, i),
            Opened::Lost => return lose(&status),
            Opened::NoEndpoint => {
                status.send_modify(|s| s.endpoint = None);
                tokio::time::sleep((interval / 4).max(Duration::from_millis(50))).await;
                continue;
            }
        };
        if !first {
            status.send_modify(|s| s.reopened += 1);
        }
        first = false;
        loop {
            tokio::time::sleep_until(next).await;
            next = (next + interval).max(Instant::now());
            let sent = Instant::now();
            if keeper.keep_alive().await.is_err() {
                pool.mark_failed(i);
                break;
            }
            match tokio::time::timeout(pool.deadline(), stream.message()).await {
                Ok(Ok(Some(r))) if r.ttl() > 0 => status.send_modify(|s| {
                    s.confirmed_at = Some(sent);
                    s.granted = Duration::from_secs(u64::try_from(r.ttl()).unwrap_or(0));
                    s.confirmations += 1;
                }),
                Ok(Ok(Some(_))) => return lose(&status),
                Ok(Ok(None)) | Ok(Err(_)) | Err(_) => {
                    tracing::warn!(lease = %format_args!("{lease:x}"), endpoint = pool.endpoint(i), "the lease keep-alive stream broke; re-opening it on the next member");
                    pool.mark_failed(i);
                    break;
                }
            }
        }
        status.send_modify(|s| s.endpoint = None);
    }
}

fn lose(status: &watch::Sender<LeaseStatus>) {
    status.send_modify(|s| {
        s.lost = true;
        s.endpoint = None;
    });
    let lease = status.borrow().lease;
    tracing::warn!(lease = %format_args!("{lease:x}"), "etcd says the lease has expired; this controller no longer leads anything it held under it");
}
