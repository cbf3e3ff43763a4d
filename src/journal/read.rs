//! Reading the journal: runs, their steps and attempts, approvals, the audit trail, the
//! current epoch and the active region. Each call reads one consistent snapshot.

use rusqlite::{OptionalExtension, Transaction, params};

use super::records::{ATTEMPT_COLUMNS, RUN_COLUMNS, STEP_COLUMNS};
use super::{
    ApprovalRecord, AttemptRecord, AuditRecord, Journal, JournalError, RunDetail, RunRecord,
    ServiceState, StepRecord,
};
use crate::core::ids::{Epoch, RunId};
use crate::core::plan::Plan;
use crate::core::step::{AttemptOutcome, AttemptPhase, RunStatus, TimelineEntry};

impl Journal {
    /// One run. Errors: `UnknownRun` when the journal has no such run.
    pub fn run(&self, run_id: &RunId) -> Result<RunRecord, JournalError> {
        self.read(|tx| self.run_in(tx, run_id))
    }

    /// A value that changes whenever what the journal holds may have changed: a write
    /// through this handle (SQLite's count of changed rows on its connection) or a
    /// commit by any other connection, in this process or another (`PRAGMA
    /// data_version`). Equal values mean a read would return what it returned before.
    pub fn version(&self) -> Result<(u64, i64), JournalError> {
        let conn = self.conn();
        let other: i64 = conn
            .prepare_cached("PRAGMA data_version")
            .and_then(|mut s| s.query_row([], |r| r.get(0)))
            .map_err(|e| self.err(e))?;
        Ok((conn.total_changes(), other))
    }

    /// Runs, newest first, at most `limit`.
    pub fn runs(&self, limit: usize) -> Result<Vec<RunRecord>, JournalError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.read(|tx| {
            let mut stmt = tx
                .prepare(&format!(
                    "SELECT {RUN_COLUMNS} FROM runs ORDER BY created_at DESC, rowid DESC LIMIT ?1"
                ))
                .map_err(|e| self.err(e))?;
            stmt.query_map([limit], RunRecord::from_row)
                .and_then(|r| r.collect())
                .map_err(|e| self.err(e))
        })
    }

    /// The service's runs that have not finished (running or awaiting approval), oldest
    /// first. At most one exists while `begin_run` is the only way in.
    pub fn unfinished(&self, service: &str) -> Result<Vec<RunRecord>, JournalError> {
        self.read(|tx| {
            let mut stmt = tx
                .prepare(&format!(
                    "SELECT {RUN_COLUMNS} FROM runs
                     WHERE service = ?1 AND status IN ('running', 'awaiting_approval')
                     ORDER BY created_at, rowid"
                ))
                .map_err(|e| self.err(e))?;
            stmt.query_map([service], RunRecord::from_row)
                .and_then(|r| r.collect())
                .map_err(|e| self.err(e))
        })
    }

    /// The plan the run started with, stamped with the run's current epoch.
    pub fn plan(&self, run_id: &RunId) -> Result<Plan, JournalError> {
        self.read(|tx| self.plan_in(tx, run_id))
    }

    /// The run's steps in plan order, each with its attempts in the order they began.
    pub fn steps(&self, run_id: &RunId) -> Result<Vec<StepRecord>, JournalError> {
        self.read(|tx| self.steps_in(tx, run_id))
    }

    /// One step of a run. Errors: `UnknownStep`.
    pub fn step(&self, run_id: &RunId, name: &str) -> Result<StepRecord, JournalError> {
        self.steps(run_id)?
            .into_iter()
            .find(|s| s.name == name)
            .ok_or_else(|| JournalError::UnknownStep {
                run_id: run_id.clone(),
                step: name.to_string(),
            })
    }

    /// The latest approval recorded for a step of a run.
    pub fn approval(
        &self,
        run_id: &RunId,
        step: &str,
    ) -> Result<Option<ApprovalRecord>, JournalError> {
        self.read(|tx| {
            tx.query_row(
                "SELECT step, approved_by, allow_data_loss, at FROM approvals
                 WHERE run_id = ?1 AND step = ?2 ORDER BY id DESC LIMIT 1",
                params![run_id, step],
                ApprovalRecord::from_row,
            )
            .optional()
            .map_err(|e| self.err(e))
        })
    }

    /// Everything about one run, for `lifeboat show`.
    pub fn detail(&self, run_id: &RunId) -> Result<RunDetail, JournalError> {
        self.read(|tx| {
            let run = self.run_in(tx, run_id)?;
            // A plan from an older version is not shown; the steps still are.
            let plan = match self.plan_in(tx, run_id) {
                Ok(p) => Some(p),
                Err(JournalError::OldPlan { .. }) => None,
                Err(e) => return Err(e),
            };
            let steps = self.steps_in(tx, run_id)?;
            let approvals = {
                let mut stmt = tx
                    .prepare(
                        "SELECT step, approved_by, allow_data_loss, at FROM approvals
                         WHERE run_id = ?1 ORDER BY id",
                    )
                    .map_err(|e| self.err(e))?;
                stmt.query_map([run_id], ApprovalRecord::from_row)
                    .and_then(|r| r.collect::<Result<Vec<_>, _>>())
                    .map_err(|e| self.err(e))?
            };
            let audit = self.audit_in(tx, run_id)?;
            Ok(RunDetail {
                run,
                plan,
                steps,
                approvals,
                audit,
            })
        })
    }

    /// The service's current fencing epoch (0 before its first run).
    pub fn epoch(&self, service: &str) -> Result<Epoch, JournalError> {
        self.read(|tx| current_epoch(tx, service).map_err(|e| self.err(e)))
    }

    /// Which region serves the service, per the last completed run; `None` before any.
    pub fn service_state(&self, service: &str) -> Result<Option<ServiceState>, JournalError> {
        self.read(|tx| {
            tx.query_row(
                "SELECT service, active_region, run_id, updated_at FROM service_state
                 WHERE service = ?1",
                [service],
                |r| {
                    Ok(ServiceState {
                        service: r.get(0)?,
                        active_region: r.get(1)?,
                        run_id: r.get(2)?,
                        updated_at: r.get(3)?,
                    })
                },
            )
            .optional()
            .map_err(|e| self.err(e))
        })
    }

    /// The run's story so far, oldest first: run-level audit entries and every ended
    /// attempt. Steps get it (for notifications) through their context.
    pub fn timeline(&self, run_id: &RunId) -> Result<Vec<TimelineEntry>, JournalError> {
        self.read(|tx| {
            let mut out: Vec<(crate::core::time::Ts, u8, TimelineEntry)> = Vec::new();
            for a in self.audit_in(tx, run_id)? {
                let what = format!("{}: {}", a.action.replace('_', " "), a.detail);
                out.push((
                    a.at,
                    0,
                    TimelineEntry {
                        at: a.at,
                        step: None,
                        what,
                    },
                ));
            }
            for s in self.steps_in(tx, run_id)? {
                for a in s.attempts {
                    let (Some(at), Some(outcome)) = (a.finished_at, a.outcome) else {
                        continue;
                    };
                    out.push((
                        at,
                        1,
                        TimelineEntry {
                            at,
                            step: Some(s.name.clone()),
                            what: describe_attempt(a.phase, outcome, a.detail.as_deref()),
                        },
                    ));
                }
            }
            out.sort_by_key(|(at, order, _)| (*at, *order));
            Ok(out.into_iter().map(|(_, _, e)| e).collect())
        })
    }

    pub(super) fn run_in(
        &self,
        tx: &Transaction<'_>,
        run_id: &RunId,
    ) -> Result<RunRecord, JournalError> {
        tx.query_row(
            &format!("SELECT {RUN_COLUMNS} FROM runs WHERE run_id = ?1"),
            [run_id],
            RunRecord::from_row,
        )
        .optional()
        .map_err(|e| self.err(e))?
        .ok_or_else(|| JournalError::UnknownRun {
            path: self.path.clone(),
            run_id: run_id.clone(),
        })
    }

    pub(super) fn plan_in(
        &self,
        tx: &Transaction<'_>,
        run_id: &RunId,
    ) -> Result<Plan, JournalError> {
        let (json, epoch, version): (String, Epoch, i64) = tx
            .query_row(
                "SELECT plan_json, epoch, plan_version FROM runs WHERE run_id = ?1",
                [run_id],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .optional()
            .map_err(|e| self.err(e))?
            .ok_or_else(|| JournalError::UnknownRun {
                path: self.path.clone(),
                run_id: run_id.clone(),
            })?;
        if version != super::schema::PLAN_VERSION {
            return Err(JournalError::OldPlan {
                run_id: run_id.clone(),
                version,
            });
        }
        let mut plan: Plan = serde_json::from_str(&json).map_err(|e| {
            JournalError::corrupt(
                &self.path,
                format!("the stored plan of run {run_id} does not parse: {e}"),
            )
        })?;
        plan.epoch = epoch;
        Ok(plan)
    }

    pub(super) fn steps_in(
        &self,
        tx: &Transaction<'_>,
        run_id: &RunId,
    ) -> Result<Vec<StepRecord>, JournalError> {
        let mut steps: Vec<StepRecord> = {
            let mut stmt = tx
                .prepare(&format!(
                    "SELECT {STEP_COLUMNS} FROM steps WHERE run_id = ?1 ORDER BY position"
                ))
                .map_err(|e| self.err(e))?;
            stmt.query_map([run_id], StepRecord::from_row)
                .and_then(|r| r.collect::<Result<_, _>>())
                .map_err(|e| self.err(e))?
        };
        let attempts: Vec<AttemptRecord> = {
            let mut stmt = tx
                .prepare(&format!(
                    "SELECT {ATTEMPT_COLUMNS} FROM attempts WHERE run_id = ?1 ORDER BY id"
                ))
                .map_err(|e| self.err(e))?;
            stmt.query_map([run_id], AttemptRecord::from_row)
                .and_then(|r| r.collect::<Result<_, _>>())
                .map_err(|e| self.err(e))?
        };
        for a in attempts {
            if let Some(s) = steps.iter_mut().find(|s| s.name == a.step) {
                s.attempts.push(a);
            }
        }
        Ok(steps)
    }

    fn audit_in(
        &self,
        tx: &Transaction<'_>,
        run_id: &RunId,
    ) -> Result<Vec<AuditRecord>, JournalError> {
        let mut stmt = tx
            .prepare(
                "SELECT at, run_id, epoch, actor, action, detail FROM audit
                 WHERE run_id = ?1 ORDER BY id",
            )
            .map_err(|e| self.err(e))?;
        stmt.query_map([run_id], AuditRecord::from_row)
            .and_then(|r| r.collect())
            .map_err(|e| self.err(e))
    }

    /// The run's status, for guards inside write transactions.
    pub(super) fn status_in(
        &self,
        tx: &Transaction<'_>,
        run_id: &RunId,
    ) -> Result<RunStatus, JournalError> {
        Ok(self.run_in(tx, run_id)?.status)
    }
}

pub(super) fn current_epoch(tx: &Transaction<'_>, service: &str) -> rusqlite::Result<Epoch> {
    Ok(tx
        .query_row(
            "SELECT epoch FROM epochs WHERE service = ?1",
            [service],
            |r| r.get(0),
        )
        .optional()?
        .unwrap_or_default())
}

/// One attempt in words, for the timeline steps see.
fn describe_attempt(phase: AttemptPhase, outcome: AttemptOutcome, detail: Option<&str>) -> String {
    let what = match (phase, outcome) {
        (AttemptPhase::Check, AttemptOutcome::Done) => "already in place",
        (AttemptPhase::Check, AttemptOutcome::NotDone) => "not in place yet",
        (AttemptPhase::Apply, AttemptOutcome::Done) => "applied",
        (AttemptPhase::Verify, AttemptOutcome::Done) => "verified",
        (AttemptPhase::Compensate, AttemptOutcome::Done) => "compensated",
        (_, AttemptOutcome::Error) => "error",
        (_, AttemptOutcome::TimedOut) => "timed out",
        (_, AttemptOutcome::Cancelled) => "cancelled",
        (_, AttemptOutcome::NotDone) => "not done",
    };
    match detail {
        Some(d) if !d.is_empty() => format!("{phase} {what}: {d}"),
        _ => format!("{phase} {what}"),
    }
}
