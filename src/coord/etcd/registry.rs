//! Keys each node owns alone, under its own lease, written with plain puts: its entry in
//! the node registry and its vote per service. A node that dies or is cut off loses them
//! when its lease expires, which is the point: a silent observer stops voting.

use super::{Etcd, Session, Stored};
use crate::coord::error::CoordError;
use crate::coord::keys::ServiceKeys;
use crate::coord::records::{CountedVote, NodeRecord, Vote};

fn json<T: serde::Serialize>(key: &str, value: &T) -> Result<Vec<u8>, CoordError> {
    serde_json::to_vec(value).map_err(|e| CoordError::Decode {
        key: key.to_string(),
        detail: e.to_string(),
    })
}

impl Etcd {
    /// Puts `nodes/<node>` under the session's lease. Returns the revision.
    pub async fn register_node(
        &self,
        session: &Session,
        record: &NodeRecord,
    ) -> Result<i64, CoordError> {
        let key = self.keys.node(&record.node)?;
        let value = json(&key, record)?;
        self.put(&key, value, session.lease()).await
    }

    /// Every registered node (alive: their leases have not expired).
    pub async fn nodes(&self) -> Result<Vec<NodeRecord>, CoordError> {
        self.list(&self.keys.nodes_prefix())
            .await?
            .iter()
            .map(Stored::json)
            .collect()
    }

    /// Publishes this observer's vote for a service under the session's lease. Returns
    /// the vote's revision.
    pub async fn publish_vote(
        &self,
        session: &Session,
        service: &ServiceKeys,
        vote: &Vote,
    ) -> Result<i64, CoordError> {
        let key = service.vote(&vote.observer)?;
        let value = json(&key, vote)?;
        self.put(&key, value, session.lease()).await
    }

    /// Every live vote for a service with its `mod_revision`, in observer order. An
    /// observer whose lease expired has no vote here; [`crate::coord::records::fresh_votes`]
    /// also drops the votes that are alive but old.
    pub async fn votes(&self, service: &ServiceKeys) -> Result<Vec<CountedVote>, CoordError> {
        self.list(&service.votes_prefix())
            .await?
            .iter()
            .map(|s| {
                Ok(CountedVote {
                    key: s.key.clone(),
                    mod_revision: s.mod_revision,
                    vote: s.json()?,
                })
            })
            .collect()
    }
}
