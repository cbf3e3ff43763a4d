//! Starting, taking over, approving and aborting runs: the writes that raise or check the
//! fencing epoch themselves rather than carry one.

use rusqlite::{OptionalExtension, Transaction, params};

use super::read::current_epoch;
use super::{Fence, Journal, JournalError};
use crate::core::ids::{Epoch, RunId};
use crate::core::plan::Plan;
use crate::core::step::{RunStatus, StepState};
use crate::core::time::Ts;

impl Journal {
    /// Records a new run and raises the service's fencing epoch, in one transaction.
    ///
    /// Guarantees: when this returns, the run, its planned steps, the audit entry (who
    /// started it and why) and the raised epoch are durable; the returned plan carries
    /// that epoch, and the `Fence` is what the executor's writes must carry.
    /// Assumptions: `plan.epoch` is ignored (the journal assigns it); the plan's run id
    /// is new.
    /// Errors: `RunInProgress` when the service has an unfinished run (resume or abort it
    /// first); `DuplicateRun` when the run id exists.
    pub fn begin_run(
        &self,
        mut plan: Plan,
        started_by: &str,
        now: Ts,
    ) -> Result<(Plan, Fence), JournalError> {
        self.write(|tx| {
            let unfinished: Option<(RunId, RunStatus)> = tx
                .query_row(
                    "SELECT run_id, status FROM runs
                     WHERE service = ?1 AND status IN ('running', 'awaiting_approval')
                     ORDER BY created_at LIMIT 1",
                    [&plan.service],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()
                .map_err(|e| self.err(e))?;
            if let Some((run_id, status)) = unfinished {
                return Err(JournalError::RunInProgress {
                    service: plan.service.clone(),
                    run_id,
                    status,
                });
            }
            let exists: bool = tx
                .query_row(
                    "SELECT EXISTS (SELECT 1 FROM runs WHERE run_id = ?1)",
                    [&plan.run_id],
                    |r| r.get(0),
                )
                .map_err(|e| self.err(e))?;
            if exists {
                return Err(JournalError::DuplicateRun {
                    run_id: plan.run_id.clone(),
                });
            }
            let epoch = raise_epoch(tx, &plan.service, plan.run_id.as_str(), now)
                .map_err(|e| self.err(e))?;
            plan.epoch = epoch;
            let json = serde_json::to_string(&plan).map_err(|e| JournalError::Io {
                path: self.path.clone(),
                source: std::io::Error::other(e),
            })?;
            tx.execute(
                "INSERT INTO runs (run_id, service, direction, from_region, to_region, status,
                     epoch, allow_data_loss, started_by, reason, plan_json, created_at, updated_at,
                     automatic, plan_version)
                 VALUES (?1, ?2, ?3, ?4, ?5, 'running', ?6, ?7, ?8, ?9, ?10, ?11, ?11, ?12, ?13)",
                params![
                    plan.run_id,
                    plan.service,
                    plan.direction,
                    plan.from,
                    plan.to,
                    epoch,
                    plan.allow_data_loss,
                    started_by,
                    plan.reason(),
                    json,
                    now,
                    plan.trigger.automatic(),
                    super::schema::PLAN_VERSION
                ],
            )
            .map_err(|e| self.err(e))?;
            let mut position = 0u32;
            for (stage_no, stage) in (1u32..).zip(&plan.stages) {
                for step in &stage.steps {
                    position += 1;
                    tx.execute(
                        "INSERT INTO steps (run_id, name, stage, position, kind, region, state, updated_at)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'planned', ?7)",
                        params![
                            plan.run_id,
                            step.name,
                            stage_no,
                            position,
                            step.kind().name(),
                            step.region,
                            now
                        ],
                    )
                    .map_err(|e| self.err(e))?;
                }
            }
            audit(
                tx,
                now,
                &plan.service,
                &plan.run_id,
                epoch,
                started_by,
                "run_started",
                &format!(
                    "{} {} → {} because: {}; fencing epoch raised to {epoch}",
                    plan.direction,
                    plan.from,
                    plan.to,
                    plan.reason()
                ),
            )
            .map_err(|e| self.err(e))?;
            let fence = Fence {
                service: plan.service.clone(),
                run_id: plan.run_id.clone(),
                epoch,
                actor: started_by.to_string(),
            };
            Ok((plan.clone(), fence))
        })
    }

    /// An executor takes over an unfinished run (after a crash, a restart, or on another
    /// host): the service's epoch is raised so any executor still driving the run is
    /// refused from now on.
    ///
    /// Guarantees: the raised epoch is durable before this returns; the plan returned is
    /// the one the run started with, carrying the new epoch.
    /// Errors: `UnknownRun`; `WrongStatus` when the run waits for approval or finished.
    pub fn take_over(
        &self,
        run_id: &RunId,
        actor: &str,
        now: Ts,
    ) -> Result<(Plan, Fence), JournalError> {
        self.write(|tx| {
            let run = self.run_in(tx, run_id)?;
            match run.status {
                RunStatus::Running => {}
                RunStatus::AwaitingApproval => {
                    return Err(JournalError::WrongStatus {
                        run_id: run_id.clone(),
                        status: run.status,
                        what: format!(
                            "it waits for an operator; `lifeboat approve {run_id}` lets it go on"
                        ),
                    });
                }
                finished => {
                    return Err(JournalError::WrongStatus {
                        run_id: run_id.clone(),
                        status: finished,
                        what: "it has finished; there is nothing to resume".to_string(),
                    });
                }
            }
            let epoch =
                raise_epoch(tx, &run.service, run_id.as_str(), now).map_err(|e| self.err(e))?;
            tx.execute(
                "UPDATE runs SET epoch = ?2, updated_at = ?3 WHERE run_id = ?1",
                params![run_id, epoch, now],
            )
            .map_err(|e| self.err(e))?;
            audit(
                tx,
                now,
                &run.service,
                run_id,
                epoch,
                actor,
                "run_resumed",
                &format!(
                    "resumed the unfinished run; fencing epoch raised from {} to {epoch}",
                    run.epoch
                ),
            )
            .map_err(|e| self.err(e))?;
            let plan = self.plan_in(tx, run_id)?;
            Ok((
                plan,
                Fence {
                    service: run.service,
                    run_id: run_id.clone(),
                    epoch,
                    actor: actor.to_string(),
                },
            ))
        })
    }

    /// Records an operator's approval of every step the run waits on, and makes the run
    /// resumable. With `allow_data_loss`, the run accepts losing unreplicated writes from
    /// now on (an RPO-gated promotion reads it).
    ///
    /// Guarantees: the approval, who gave it and the run's new status are durable; the
    /// next executor start (`Executor::resume`) runs the approved steps again.
    /// Returns the approved steps' names.
    /// Errors: `UnknownRun`; `WrongStatus` when the run is not waiting for approval.
    pub fn approve(
        &self,
        run_id: &RunId,
        by: &str,
        allow_data_loss: bool,
        now: Ts,
    ) -> Result<Vec<String>, JournalError> {
        self.write(|tx| {
            let run = self.run_in(tx, run_id)?;
            if run.status != RunStatus::AwaitingApproval {
                let what = if run.status.is_finished() {
                    "it has finished; there is nothing to approve".to_string()
                } else {
                    format!(
                        "it is not waiting for an approval; `lifeboat show {run_id}` shows where it is"
                    )
                };
                return Err(JournalError::WrongStatus {
                    run_id: run_id.clone(),
                    status: run.status,
                    what,
                });
            }
            let waiting: Vec<String> = {
                let mut stmt = tx
                    .prepare(
                        "SELECT name FROM steps WHERE run_id = ?1 AND state = 'awaiting_approval'
                         ORDER BY position",
                    )
                    .map_err(|e| self.err(e))?;
                stmt.query_map([run_id], |r| r.get(0))
                    .and_then(|r| r.collect::<Result<_, _>>())
                    .map_err(|e| self.err(e))?
            };
            for step in &waiting {
                debug_assert!(StepState::AwaitingApproval.can_become(StepState::Approved));
                tx.execute(
                    "UPDATE steps SET state = 'approved', updated_at = ?3
                     WHERE run_id = ?1 AND name = ?2",
                    params![run_id, step, now],
                )
                .map_err(|e| self.err(e))?;
                tx.execute(
                    "INSERT INTO approvals (run_id, step, approved_by, allow_data_loss, at)
                     VALUES (?1, ?2, ?3, ?4, ?5)",
                    params![run_id, step, by, allow_data_loss, now],
                )
                .map_err(|e| self.err(e))?;
            }
            tx.execute(
                "UPDATE runs SET status = 'running', updated_at = ?2,
                     allow_data_loss = MAX(allow_data_loss, ?3)
                 WHERE run_id = ?1",
                params![run_id, now, allow_data_loss],
            )
            .map_err(|e| self.err(e))?;
            let loss = if allow_data_loss {
                "; data loss accepted"
            } else {
                ""
            };
            audit(
                tx,
                now,
                &run.service,
                run_id,
                run.epoch,
                by,
                "approved",
                &format!("approved step(s) {}{loss}", waiting.join(", ")),
            )
            .map_err(|e| self.err(e))?;
            Ok(waiting)
        })
    }

    /// Ends an unfinished run and records why. The service's epoch is raised, so an
    /// executor still driving the run is refused at its next write and stops.
    ///
    /// Guarantees: nothing is undone: effects already applied stay (the run's steps show
    /// which). Returns the new epoch.
    /// Errors: `UnknownRun`; `WrongStatus` when the run already finished.
    pub fn abort(
        &self,
        run_id: &RunId,
        by: &str,
        reason: &str,
        now: Ts,
    ) -> Result<Epoch, JournalError> {
        self.write(|tx| {
            let run = self.run_in(tx, run_id)?;
            if run.status.is_finished() {
                let when = run
                    .finished_at
                    .map(|t| format!(" at {t}"))
                    .unwrap_or_default();
                return Err(JournalError::WrongStatus {
                    run_id: run_id.clone(),
                    status: run.status,
                    what: format!("it already ended{when}; there is nothing to abort"),
                });
            }
            let epoch = raise_epoch(tx, &run.service, &format!("abort of {run_id}"), now)
                .map_err(|e| self.err(e))?;
            tx.execute(
                "UPDATE runs SET status = 'aborted', updated_at = ?2, finished_at = ?2,
                     outcome = ?3, ended_by = ?4
                 WHERE run_id = ?1",
                params![run_id, now, reason, by],
            )
            .map_err(|e| self.err(e))?;
            audit(
                tx,
                now,
                &run.service,
                run_id,
                epoch,
                by,
                "run_aborted",
                &format!("{reason}; fencing epoch raised to {epoch} so no executor acts on it"),
            )
            .map_err(|e| self.err(e))?;
            Ok(epoch)
        })
    }
}

/// Raises the service's epoch by one and returns it.
fn raise_epoch(
    tx: &Transaction<'_>,
    service: &str,
    raised_for: &str,
    now: Ts,
) -> rusqlite::Result<Epoch> {
    let epoch = current_epoch(tx, service)?.next();
    tx.execute(
        "INSERT INTO epochs (service, epoch, raised_at, raised_for) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (service) DO UPDATE
             SET epoch = excluded.epoch, raised_at = excluded.raised_at,
                 raised_for = excluded.raised_for",
        params![service, epoch, now, raised_for],
    )?;
    Ok(epoch)
}

#[allow(clippy::too_many_arguments)]
pub(super) fn audit(
    tx: &Transaction<'_>,
    at: Ts,
    service: &str,
    run_id: &RunId,
    epoch: Epoch,
    actor: &str,
    action: &str,
    detail: &str,
) -> rusqlite::Result<()> {
    tx.execute(
        "INSERT INTO audit (at, service, run_id, epoch, actor, action, detail)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![at, service, run_id, epoch, actor, action, detail],
    )?;
    Ok(())
}
