//! Coordination between controllers: who leads a service, fenced writes, observers'
//! votes and the node registry, on etcd's v3 API (see `/work/shared/HA.md` for the
//! background this follows).
//!
//! # Key layout
//! Everything lives under `/lifeboat/v1/<cluster>/` (`keys.rs` builds every key):
//!
//! | key | holds | lease | written by |
//! |---|---|---|---|
//! | `nodes/<node>` | region, version, last loop time | the node's | plain put |
//! | `svc/<s>/leader` | node, region | the leader's | txn `create_revision == 0` |
//! | `svc/<s>/votes/<observer>` | verdict per region, round, observed at, evidence digest | the observer's | plain put |
//! | `svc/<s>/state`, `pause`, `cooldown_until` | what the daemon keeps there | — | fenced txn, CAS on `mod_revision` where asked |
//! | `svc/<s>/run/current` | run intent, the counted votes' revisions | — | fenced txn + `create_revision == 0` + the votes' `mod_revision`s |
//! | `svc/<s>/run/<id>/step/<seq>/intent/<epoch>` | an epoch's intent, idempotency key | — | fenced txn + `create_revision == 0` (once per epoch) |
//! | `svc/<s>/run/<id>/step/<seq>/done` | done / adopted / failed, by which epoch | — | fenced txn + `create_revision == 0` (once per step) |
//!
//! # Fencing
//! A lease only decides who may *try* to lead. The leader key is created under the
//! candidate's lease by a txn that requires `create_revision == 0`; the **epoch** is the
//! key's `create_revision`, which etcd never hands out twice. Every authoritative write
//! is a txn whose first compare is `create_revision(leader) == epoch`, evaluated when
//! raft applies the entry, so a request that was delayed or sent by a process that was
//! paused past its lease is refused ([`CoordError::Deposed`]). The failure branch of
//! every fenced txn reads the leader key and each compared key back, so a refusal says
//! which compare failed without a second round trip.
//!
//! # The acting rule
//! etcd cannot fence AWS or PostgreSQL, so a leader *acts* on the outside world only
//! while the last confirmed keep-alive is younger than `TTL − safety margin`
//! ([`ActingRule`]). A keep-alive counts from the moment it was *sent* (the lease runs at
//! least TTL from when etcd processed it, which is later). A successful fenced write
//! proves leadership at apply time but not how much of the lease is left, so it does not
//! extend acting; a refused one ends it at once. Past the margin the controller stops
//! acting, does not resign, and re-reads the leader key.
//!
//! # Timing defaults
//! Lease TTL 5 s, keep-alive every 1 s, a deadline of 1 s on every call (below the TTL:
//! one un-timed `lease_grant` hung about 7 s during an etcd election), safety margin 2 s.
//! The tests use shorter values against a cluster with short raft timeouts.
//!
//! # The client
//! `etcd-client`'s balancer keeps sending calls to a dead member, and it never re-opens a
//! broken keep-alive stream. So [`etcd::Etcd`] holds one client per endpoint, skips an
//! endpoint for a cool-down after it failed, and the lease keeper ([`etcd::Session`])
//! runs on its own task and re-opens its stream on the next endpoint on any error.

pub mod acting;
pub mod authority;
pub mod error;
pub mod etcd;
pub mod keys;
pub mod placement;
pub mod records;

pub use acting::ActingRule;
pub use authority::{EtcdAuthority, NotLeading, Unfinished, unfinished};
pub use error::CoordError;
pub use keys::{Keys, ServiceKeys};

/// Where a daemon on the etcd backend stands for its service, as its coordinator task
/// learns it; the driver acts only while `Leading`, and only through that leadership.
#[derive(Clone, Debug)]
pub enum Standing {
    Leading {
        leadership: etcd::Leadership,
        node: String,
    },
    /// Another controller leads (`leader`), or none does yet, or this one's lease is not
    /// confirmed recently enough to act.
    Following { leader: Option<String> },
}

/// Refuses to act without a daemon on a policy that selects the etcd backend: only an
/// elected daemon acts for such a service, and a CLI acting alone on its own journal
/// could fail over beside it.
pub fn embedded_only(policy: &crate::core::model::Policy, what: &str) -> anyhow::Result<()> {
    if let crate::core::model::Coordination::Etcd(_) = policy.coordination {
        anyhow::bail!(
            "{what} cannot act for `{}` on its own: its policy selects [coordination] backend = \"etcd\", where only the elected controller acts. Start the controller (lifeboat run --node NAME) and send the command to the one that leads: `lifeboat status` names it",
            policy.service
        );
    }
    Ok(())
}
