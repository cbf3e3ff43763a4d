//! Leadership per service: campaign with a txn that creates the leader key under the
//! candidate's lease only if it does not exist; the epoch is the key's
//! `create_revision`. A [`Leadership`] writes only through the fence and stops acting as
//! soon as its lease is unconfirmed for too long or a write finds it deposed.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use etcd_client::{
    Compare, CompareOp, EventType, PutOptions, Txn, TxnOp, TxnOpResponse, WatchOptions,
};
use tokio::time::Instant;

use super::fenced::{Fence, FencedWrite, leader_info};
use super::{Etcd, Session, Stored};
use crate::coord::error::CoordError;
use crate::coord::keys::ServiceKeys;
use crate::coord::records::{Candidate, LeaderInfo};
use crate::core::ids::Epoch;

/// The outcome of one campaign.
#[derive(Debug)]
pub enum Campaign {
    Won(Leadership),
    /// Someone else leads (or led: a key whose lease is expiring still counts).
    Lost(LeaderInfo),
}

/// This controller leads a service at an epoch.
#[derive(Clone)]
pub struct Leadership {
    etcd: Etcd,
    session: Session,
    fence: Fence,
    me: Candidate,
    deposed: Arc<AtomicBool>,
}

impl std::fmt::Debug for Leadership {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Leadership")
            .field("service", &self.fence.service.service())
            .field("epoch", &self.fence.epoch)
            .field("node", &self.me.node)
            .finish()
    }
}

impl Etcd {
    /// Tries once to become `service`'s leader under `session`'s lease.
    ///
    /// Guarantees: at most one candidate wins per leader-key lifetime; the epoch it gets
    /// (the key's `create_revision`) is larger than every earlier epoch of the service.
    /// A retry after a lost answer finds the key under this session's lease and wins.
    /// Errors: `Unavailable`, `LeaseLost` (the session's lease is gone).
    pub async fn campaign(
        &self,
        session: &Session,
        service: &ServiceKeys,
        me: &Candidate,
    ) -> Result<Campaign, CoordError> {
        let key = service.leader();
        let value = serde_json::to_vec(me).map_err(|e| CoordError::Decode {
            key: key.clone(),
            detail: e.to_string(),
        })?;
        let lease = session.lease();
        let txn = Txn::new()
            .when([Compare::create_revision(key.clone(), CompareOp::Equal, 0)])
            .and_then([TxnOp::put(
                key.clone(),
                value,
                Some(PutOptions::new().with_lease(lease)),
            )])
            .or_else([TxnOp::get(key.clone(), None)]);
        let resp = self
            .pool
            .call("campaign", |mut c| {
                let txn = txn.clone();
                async move { c.txn(txn).await }
            })
            .await
            .map_err(|e| e.for_lease(lease))?;
        let won = |epoch: i64| {
            Campaign::Won(Leadership {
                etcd: self.clone(),
                session: session.clone(),
                fence: Fence {
                    service: service.clone(),
                    epoch: Epoch(u64::try_from(epoch).unwrap_or(0)),
                },
                me: me.clone(),
                deposed: Arc::new(AtomicBool::new(false)),
            })
        };
        if resp.succeeded() {
            // The put is the txn's only write, so the txn's revision is the key's
            // create_revision.
            return Ok(won(resp.header().map_or(0, |h| h.revision())));
        }
        let current = resp.op_responses().into_iter().find_map(|r| match r {
            TxnOpResponse::Get(g) => g.kvs().first().map(Stored::from_kv),
            _ => None,
        });
        match current {
            Some(s) if s.lease == lease => Ok(won(s.create_revision)),
            Some(s) => Ok(Campaign::Lost(leader_info(&s)?)),
            // Deleted between the compare and the read: cannot happen inside one txn.
            None => Err(CoordError::Decode {
                key,
                detail: "campaign failed but the leader key is absent".to_string(),
            }),
        }
    }

    /// Who leads `service` now, if anyone.
    pub async fn leader(&self, service: &ServiceKeys) -> Result<Option<LeaderInfo>, CoordError> {
        match self.get(&service.leader()).await? {
            Some(s) => Ok(Some(leader_info(&s)?)),
            None => Ok(None),
        }
    }

    /// Waits until `service` has no leader key, at most `max_wait`. Returns whether it is
    /// vacant; `false` also when the watch broke (the caller campaigns anyway, which is
    /// always safe). Watching saves a candidate the poll interval after a lease expires.
    pub async fn wait_for_vacancy(
        &self,
        service: &ServiceKeys,
        max_wait: Duration,
    ) -> Result<bool, CoordError> {
        let give_up = Instant::now() + max_wait;
        let key = service.leader();
        let k = key.clone();
        let resp = self
            .pool
            .call("get leader", |mut c| {
                let k = k.clone();
                async move { c.get(k, None).await }
            })
            .await?;
        if resp.kvs().is_empty() {
            return Ok(true);
        }
        let from = resp.header().map_or(0, |h| h.revision()) + 1;
        let Some(&i) = self.pool.order().first() else {
            return Ok(false);
        };
        let options = WatchOptions::new().with_start_revision(from);
        let watch = async {
            let mut client = self.pool.client(i).await?;
            client.watch(key.clone(), Some(options)).await
        };
        let mut stream = match tokio::time::timeout(self.pool.deadline(), watch).await {
            Ok(Ok(s)) => s,
            _ => {
                self.pool.mark_failed(i);
                return Ok(false);
            }
        };
        loop {
            match tokio::time::timeout_at(give_up, stream.message()).await {
                Ok(Ok(Some(r))) => {
                    if r.canceled() {
                        return Ok(false);
                    }
                    if r.events()
                        .iter()
                        .any(|e| e.event_type() == EventType::Delete)
                    {
                        return Ok(true);
                    }
                }
                Ok(Ok(None)) | Ok(Err(_)) => {
                    self.pool.mark_failed(i);
                    return Ok(false);
                }
                Err(_) => return Ok(false),
            }
        }
    }
}

impl Leadership {
    pub fn epoch(&self) -> Epoch {
        self.fence.epoch
    }

    pub fn fence(&self) -> &Fence {
        &self.fence
    }

    pub fn service(&self) -> &ServiceKeys {
        &self.fence.service
    }

    pub fn session(&self) -> &Session {
        &self.session
    }

    /// The client this leadership writes through (reads need no fence).
    pub fn etcd(&self) -> &Etcd {
        &self.etcd
    }

    /// The acting rule: the lease confirmed recently enough, and no fenced write found
    /// this leadership deposed. Gates every action on the outside world.
    pub fn acting(&self) -> bool {
        !self.deposed.load(Ordering::SeqCst) && self.session.acting()
    }

    pub fn acting_at(&self, now: Instant) -> bool {
        !self.deposed.load(Ordering::SeqCst) && self.session.acting_at(now)
    }

    /// Whether a fenced write found another epoch leading.
    pub fn deposed(&self) -> bool {
        self.deposed.load(Ordering::SeqCst)
    }

    /// A fenced write (see [`Etcd::fenced`]). A `Deposed` refusal ends acting for good.
    /// It does not check [`Self::acting`]: the fence decides at apply time, and a write
    /// that goes through proves this epoch still led then. `acting` gates what etcd
    /// cannot fence (AWS, PostgreSQL), not the writes to etcd.
    pub async fn write(&self, write: &FencedWrite) -> Result<i64, CoordError> {
        let r = self.etcd.fenced(&self.fence, write).await;
        if let Err(CoordError::Deposed { current, .. }) = &r {
            self.deposed.store(true, Ordering::SeqCst);
            tracing::warn!(
                service = self.fence.service.service(),
                epoch = %self.fence.epoch,
                current = ?current.as_ref().map(|c| c.epoch),
                "a fenced write found this controller deposed; it stops acting"
            );
        }
        r
    }

    /// Gives leadership up: deletes the leader key if it is still this epoch's. The
    /// session (and everything else under its lease) stays.
    pub async fn resign(&self) -> Result<(), CoordError> {
        self.deposed.store(true, Ordering::SeqCst);
        let write = FencedWrite::new().delete(self.fence.service.leader());
        match self.etcd.fenced(&self.fence, &write).await {
            Ok(_) | Err(CoordError::Deposed { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lost_lease_error_names_the_session_lease() {
        let e = CoordError::LeaseLost { lease: 0 }.for_lease(0x2a);
        assert_eq!(e.to_string(), "etcd lease 2a has expired or was revoked");
    }
}
