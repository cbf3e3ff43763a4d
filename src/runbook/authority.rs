//! Who may act on a run beyond the local journal. With one controller (the embedded
//! backend) the journal's own fencing is the whole story. With several (etcd), each
//! step's intent and outcome also go to a shared record under the leader's epoch, so a
//! controller that took over knows what was done, and a deposed one is refused there; and
//! the acting rule stops a controller whose lease may have run out before it touches
//! anything.

use async_trait::async_trait;
use thiserror::Error;

use crate::core::ids::RunId;
use crate::core::plan::Plan;
use crate::core::time::Ts;

/// How a step ended, as the shared record keeps it (once per step, whatever the epoch).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SharedOutcome {
    /// Applied and verified by this epoch.
    Done,
    /// Found already in place by this epoch's `check` (a takeover, or a repeat).
    Adopted,
    /// Gave up.
    Failed(String),
}

#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum AuthorityError {
    /// A newer leader exists, or the step's outcome was already recorded by another
    /// epoch: this executor must not act on the run any more.
    #[error("{0}")]
    Deposed(String),
    /// The shared record could not be reached in time; nothing was recorded, so nothing
    /// may be applied.
    #[error("{0}")]
    Unavailable(String),
    /// `begin` only: the shared record did not take the run (a vote the decision counted
    /// changed or lapsed, or another run is current); nothing was recorded, nothing acts,
    /// and the decision is to be taken again.
    #[error("{0}")]
    NotRecorded(String),
}

/// The executor asks it before each side effect and tells it after each step.
///
/// Guarantees the executor gives: `intent` is recorded before every `apply` of the step
/// in this session, `done` once after the step's end is journaled locally.
#[async_trait]
pub trait Authority: Send + Sync {
    /// Records that this epoch starts `plan` (at `at`), after the local journal has and
    /// before any step acts: the record another controller resumes the run from. Refused
    /// (`NotRecorded`) when another run is current or a counted vote changed.
    async fn begin(&self, _plan: &Plan, _started_by: &str, _at: Ts) -> Result<(), AuthorityError> {
        Ok(())
    }

    /// Records that the run ended (`completed` or `failed`), so no controller resumes it.
    async fn end(&self, _run: &RunId, _status: &str) -> Result<(), AuthorityError> {
        Ok(())
    }

    /// Whether this executor may cause side effects now. `Err(why)`: stop before the next
    /// apply, leaving the run resumable (the acting rule: do not resign, re-check).
    fn may_act(&self) -> Result<(), String>;

    /// Records that this epoch is about to apply step `seq` (1-based, plan order).
    async fn intent(&self, run: &RunId, seq: u32, step: &str) -> Result<(), AuthorityError>;

    /// Records how step `seq` ended; refused when another epoch already recorded it.
    async fn done(
        &self,
        run: &RunId,
        seq: u32,
        step: &str,
        outcome: SharedOutcome,
    ) -> Result<(), AuthorityError>;
}

/// The embedded backend: the local journal is the only record, and its fencing epoch
/// the only fence; there is no lease to run out.
#[derive(Debug, Default)]
pub struct Local;

#[async_trait]
impl Authority for Local {
    fn may_act(&self) -> Result<(), String> {
        Ok(())
    }

    async fn intent(&self, _run: &RunId, _seq: u32, _step: &str) -> Result<(), AuthorityError> {
        Ok(())
    }

    async fn done(
        &self,
        _run: &RunId,
        _seq: u32,
        _step: &str,
        _outcome: SharedOutcome,
    ) -> Result<(), AuthorityError> {
        Ok(())
    }
}
