//! The executor's writes. Each carries a `Fence` and runs in a transaction that first
//! checks the fence still holds: its epoch is not older than the service's current one
//! and the run is still running. A refused write is the executor's signal to stop.

use rusqlite::{OptionalExtension, Transaction, params};

use super::read::current_epoch;
use super::runs::audit;
use super::{Journal, JournalError};
use crate::core::ids::{Epoch, RunId};
use crate::core::step::{AttemptOutcome, AttemptPhase, ErrorClass, RunStatus, StepState};
use crate::core::time::Ts;

/// The right to write for one run: its service, the run, the epoch the executor was
/// given by `begin_run` or `take_over`, and who the executor is (for the audit trail).
/// Only the journal issues fences, so a writer cannot claim an epoch it was not given.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fence {
    pub(crate) service: String,
    pub(crate) run_id: RunId,
    pub(crate) epoch: Epoch,
    pub(crate) actor: String,
}

impl Fence {
    pub fn service(&self) -> &str {
        &self.service
    }
    pub fn run_id(&self) -> &RunId {
        &self.run_id
    }
    pub fn epoch(&self) -> Epoch {
        self.epoch
    }
    /// The executor's writes are audited under its own name, not the run's starter.
    pub fn acting_as(mut self, actor: &str) -> Fence {
        self.actor = actor.to_string();
        self
    }
}

/// Identifies an attempt row between its beginning and its end.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AttemptId(i64);

impl Journal {
    /// Runs `f` in a write transaction after checking `fence`.
    /// Errors: `StaleEpoch` when a newer epoch exists (another executor took over, or
    /// the run was aborted); `WrongStatus` when the run is no longer running.
    fn fenced<T>(
        &self,
        fence: &Fence,
        f: impl FnOnce(&Transaction<'_>) -> Result<T, JournalError>,
    ) -> Result<T, JournalError> {
        self.write(|tx| {
            let current = current_epoch(tx, &fence.service).map_err(|e| self.err(e))?;
            // Older: someone took over. Newer cannot be issued by this journal, so it is
            // refused too rather than trusted.
            if fence.epoch != current {
                return Err(JournalError::StaleEpoch {
                    service: fence.service.clone(),
                    run_id: fence.run_id.clone(),
                    ours: fence.epoch,
                    current,
                });
            }
            let status = self.status_in(tx, &fence.run_id)?;
            if status != RunStatus::Running {
                return Err(JournalError::WrongStatus {
                    run_id: fence.run_id.clone(),
                    status,
                    what: "an executor may only write to a running run".to_string(),
                });
            }
            f(tx)
        })
    }

    /// Moves a step to a new state, recording the detail (what check, apply or verify
    /// said, or the error) and its class.
    ///
    /// Errors: fence errors; `UnknownStep`; `IllegalTransition` when `core::step` does not
    /// allow the move (an executor bug: refused, never recorded).
    pub fn mark_step(
        &self,
        fence: &Fence,
        step: &str,
        to: StepState,
        detail: Option<&str>,
        class: Option<ErrorClass>,
        now: Ts,
    ) -> Result<(), JournalError> {
        self.fenced(fence, |tx| {
            let from: StepState = tx
                .query_row(
                    "SELECT state FROM steps WHERE run_id = ?1 AND name = ?2",
                    params![fence.run_id, step],
                    |r| r.get(0),
                )
                .optional()
                .map_err(|e| self.err(e))?
                .ok_or_else(|| JournalError::UnknownStep {
                    run_id: fence.run_id.clone(),
                    step: step.to_string(),
                })?;
            if !from.can_become(to) {
                return Err(JournalError::IllegalTransition {
                    run_id: fence.run_id.clone(),
                    step: step.to_string(),
                    from,
                    to,
                });
            }
            let started = to == StepState::Started;
            let finished = to.is_terminal();
            tx.execute(
                "UPDATE steps SET state = ?3, detail = ?4, error_class = ?5, updated_at = ?6,
                     started_at = CASE WHEN ?7 THEN COALESCE(started_at, ?6) ELSE started_at END,
                     finished_at = CASE WHEN ?8 THEN ?6 ELSE finished_at END
                 WHERE run_id = ?1 AND name = ?2",
                params![
                    fence.run_id,
                    step,
                    to,
                    detail,
                    class,
                    now,
                    started,
                    finished
                ],
            )
            .map_err(|e| self.err(e))?;
            Ok(())
        })
    }

    /// Journals that an attempt is about to be made (write-ahead). For `apply` this is
    /// the last write before the side effect; a crash leaves the row open.
    pub fn begin_attempt(
        &self,
        fence: &Fence,
        step: &str,
        phase: AttemptPhase,
        attempt: u32,
        now: Ts,
    ) -> Result<AttemptId, JournalError> {
        self.fenced(fence, |tx| {
            tx.execute(
                "INSERT INTO attempts (run_id, step, phase, attempt, epoch, started_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![fence.run_id, step, phase, attempt, fence.epoch, now],
            )
            .map_err(|e| self.err(e))?;
            Ok(AttemptId(tx.last_insert_rowid()))
        })
    }

    /// Journals how an attempt ended. `attempt` overwrites the number recorded when it
    /// began (a verification counts its observations).
    #[allow(clippy::too_many_arguments)]
    pub fn end_attempt(
        &self,
        fence: &Fence,
        id: AttemptId,
        attempt: u32,
        outcome: AttemptOutcome,
        class: Option<ErrorClass>,
        detail: &str,
        now: Ts,
    ) -> Result<(), JournalError> {
        self.fenced(fence, |tx| {
            tx.execute(
                "UPDATE attempts SET finished_at = ?2, outcome = ?3, error_class = ?4,
                     detail = ?5, attempt = ?6
                 WHERE id = ?1",
                params![id.0, now, outcome, class, detail, attempt],
            )
            .map_err(|e| self.err(e))?;
            Ok(())
        })
    }

    /// Marks the run as waiting for an operator (its waiting steps are already marked).
    pub fn pause_run(
        &self,
        fence: &Fence,
        waiting: &[(String, String)],
        now: Ts,
    ) -> Result<(), JournalError> {
        let detail = waiting
            .iter()
            .map(|(s, why)| format!("step `{s}`: {why}"))
            .collect::<Vec<_>>()
            .join("; ");
        self.finish(
            fence,
            RunStatus::AwaitingApproval,
            "run_paused",
            &detail,
            now,
        )
    }

    /// Marks the run failed; `failures` are (step, message) in plan order.
    pub fn fail_run(
        &self,
        fence: &Fence,
        failures: &[(String, String)],
        now: Ts,
    ) -> Result<(), JournalError> {
        let detail = failures
            .iter()
            .map(|(s, m)| format!("step `{s}` failed: {m}"))
            .collect::<Vec<_>>()
            .join("; ");
        self.finish(fence, RunStatus::Failed, "run_failed", &detail, now)
    }

    /// Marks the run completed and, in the same transaction, records its `to` region as
    /// the service's active region.
    pub fn complete_run(&self, fence: &Fence, now: Ts) -> Result<(), JournalError> {
        self.fenced(fence, |tx| {
            let run = self.run_in(tx, &fence.run_id)?;
            tx.execute(
                "INSERT INTO service_state (service, active_region, run_id, updated_at)
                 VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (service) DO UPDATE SET active_region = excluded.active_region,
                     run_id = excluded.run_id, updated_at = excluded.updated_at",
                params![run.service, run.to, run.run_id, now],
            )
            .map_err(|e| self.err(e))?;
            self.set_status(
                tx,
                fence,
                RunStatus::Completed,
                "run_completed",
                &format!("every step done; `{}` now runs in {}", run.service, run.to),
                now,
            )
        })
    }

    /// Adds a run-level entry to the audit trail (e.g. `run_interrupted`).
    pub fn note(
        &self,
        fence: &Fence,
        action: &str,
        detail: &str,
        now: Ts,
    ) -> Result<(), JournalError> {
        self.fenced(fence, |tx| {
            audit(
                tx,
                now,
                &fence.service,
                &fence.run_id,
                fence.epoch,
                &fence.actor,
                action,
                detail,
            )
            .map_err(|e| self.err(e))
        })
    }

    fn finish(
        &self,
        fence: &Fence,
        to: RunStatus,
        action: &str,
        detail: &str,
        now: Ts,
    ) -> Result<(), JournalError> {
        self.fenced(fence, |tx| {
            self.set_status(tx, fence, to, action, detail, now)
        })
    }

    fn set_status(
        &self,
        tx: &Transaction<'_>,
        fence: &Fence,
        to: RunStatus,
        action: &str,
        detail: &str,
        now: Ts,
    ) -> Result<(), JournalError> {
        debug_assert!(RunStatus::Running.can_become(to));
        let finished = to.is_finished();
        let outcome = (to == RunStatus::Failed).then_some(detail);
        tx.execute(
            "UPDATE runs SET status = ?2, updated_at = ?3,
                 finished_at = CASE WHEN ?4 THEN ?3 ELSE finished_at END,
                 outcome = COALESCE(?5, outcome)
             WHERE run_id = ?1",
            params![fence.run_id, to, now, finished, outcome],
        )
        .map_err(|e| self.err(e))?;
        audit(
            tx,
            now,
            &fence.service,
            &fence.run_id,
            fence.epoch,
            &fence.actor,
            action,
            detail,
        )
        .map_err(|e| self.err(e))
    }
}
