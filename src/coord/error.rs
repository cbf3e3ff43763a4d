//! What can go wrong when coordinating, split by what the caller does next: retry later
//! (`Unavailable`), stop acting (`Deposed`, `LeaseLost`), re-read and decide again
//! (`Conflict`), or fix the configuration (`Config`, `InvalidName`, `Rejected`).

use crate::core::ids::Epoch;

use super::records::LeaderInfo;

/// What a compared key was expected to be in a fenced write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expect {
    /// The key does not exist (`create_revision == 0`): append-once records.
    Absent,
    /// The key was last written at this revision (`mod_revision == r`): compare-and-set,
    /// and "the votes I counted have not changed".
    ModRevision(i64),
}

#[derive(Debug, thiserror::Error)]
pub enum CoordError {
    /// A setting is out of range or inconsistent with another one.
    #[error("coordination setting `{field}`: {problem}")]
    Config {
        field: &'static str,
        problem: String,
    },

    #[error(
        "invalid {what} name {name:?}: use 1–128 letters, digits, `.`, `_` or `-` (it becomes an etcd key segment)"
    )]
    InvalidName { what: &'static str, name: String },

    /// No endpoint answered within the call's deadline. For a write, the outcome is
    /// unknown: it may have been applied. Re-read before deciding.
    #[error("etcd {call}: no answer from {tried} within {deadline_ms} ms (last error: {detail})")]
    Unavailable {
        call: &'static str,
        tried: String,
        deadline_ms: u64,
        detail: String,
    },

    /// etcd answered, and refused the request itself (permissions, a malformed request,
    /// a compacted revision): trying another member would not help.
    #[error("etcd {call} at {endpoint} refused the request: {detail}")]
    Rejected {
        call: &'static str,
        endpoint: String,
        detail: String,
    },

    /// The fenced write was refused because the leader key is no longer ours: another
    /// controller leads (or nobody does). Stop acting; do not retry with this epoch.
    #[error("{}", deposed_message(service, *ours, current.as_ref()))]
    Deposed {
        service: String,
        ours: Epoch,
        current: Option<LeaderInfo>,
    },

    /// The fenced write was refused because a compared key changed: re-read and decide
    /// again. `same_value` says the key already holds exactly the bytes this write would
    /// have put, e.g. an append-once record whose first attempt's answer was lost.
    #[error(
        "fenced write to {key} refused: expected {expected:?}, found {}",
        found.map_or("no key".to_string(), |r| format!("mod_revision {r}"))
    )]
    Conflict {
        key: String,
        expected: Expect,
        found: Option<i64>,
        same_value: bool,
    },

    /// The lease is gone (expired or revoked): everything held under it is gone too.
    #[error("etcd lease {lease:x} has expired or was revoked")]
    LeaseLost { lease: i64 },

    /// A key held something this version of lifeboat cannot read.
    #[error("etcd key {key} holds an unreadable value: {detail}")]
    Decode { key: String, detail: String },

    /// A fenced write named a key outside the leader's service.
    #[error("fenced write for service {service} names {key}, which is not under its prefix")]
    OutsideService { service: String, key: String },
}

impl CoordError {
    /// Refusals by the fence: the write was evaluated and not applied.
    pub fn is_refusal(&self) -> bool {
        matches!(
            self,
            CoordError::Deposed { .. } | CoordError::Conflict { .. }
        )
    }

    /// Names the lease in a `LeaseLost` that came from a layer that did not know it.
    pub(crate) fn for_lease(self, lease: i64) -> CoordError {
        match self {
            CoordError::LeaseLost { .. } => CoordError::LeaseLost { lease },
            e => e,
        }
    }
}

fn deposed_message(service: &str, ours: Epoch, current: Option<&LeaderInfo>) -> String {
    match current {
        Some(l) => format!(
            "fenced write for {service} refused: epoch {ours} no longer leads; {} in {} leads at epoch {}",
            l.node, l.region, l.epoch
        ),
        None => {
            format!("fenced write for {service} refused: epoch {ours} no longer leads; nobody does")
        }
    }
}
