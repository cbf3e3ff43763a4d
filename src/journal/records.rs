//! What the journal hands back: plain records, serializable for `--json`, and how each is
//! read from its row.

use rusqlite::Row;
use serde::{Deserialize, Serialize};

use crate::core::ids::{Epoch, RunId};
use crate::core::model::{Direction, RegionName};
use crate::core::plan::Plan;
use crate::core::step::{AttemptOutcome, AttemptPhase, ErrorClass, RunStatus, StepState};
use crate::core::time::Ts;

/// One run, without its steps.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct RunRecord {
    pub run_id: RunId,
    pub service: String,
    pub direction: Direction,
    pub from: RegionName,
    pub to: RegionName,
    pub status: RunStatus,
    /// The fencing epoch of the executor that owns (or last owned) the run.
    pub epoch: Epoch,
    pub allow_data_loss: bool,
    /// Who or what started it.
    pub started_by: String,
    /// Why.
    pub reason: String,
    pub created_at: Ts,
    pub updated_at: Ts,
    pub finished_at: Option<Ts>,
    /// How it ended: the failure, or the abort reason.
    pub outcome: Option<String>,
    /// Started by the controller itself (counts toward the per-window limit).
    #[serde(default)]
    pub automatic: bool,
    /// Who aborted it, when it was aborted.
    #[serde(default)]
    pub ended_by: Option<String>,
}

pub(super) const RUN_COLUMNS: &str = "run_id, service, direction, from_region, to_region, status, \
     epoch, allow_data_loss, started_by, reason, created_at, updated_at, finished_at, outcome, \
     automatic, ended_by";

impl RunRecord {
    pub(super) fn from_row(r: &Row<'_>) -> rusqlite::Result<RunRecord> {
        Ok(RunRecord {
            run_id: r.get(0)?,
            service: r.get(1)?,
            direction: r.get(2)?,
            from: r.get(3)?,
            to: r.get(4)?,
            status: r.get(5)?,
            epoch: r.get(6)?,
            allow_data_loss: r.get(7)?,
            started_by: r.get(8)?,
            reason: r.get(9)?,
            created_at: r.get(10)?,
            updated_at: r.get(11)?,
            finished_at: r.get(12)?,
            outcome: r.get(13)?,
            automatic: r.get(14)?,
            ended_by: r.get(15)?,
        })
    }

    /// Wall-clock time from start to finish (or to the last update while unfinished).
    pub fn duration(&self) -> std::time::Duration {
        self.finished_at
            .unwrap_or(self.updated_at)
            .since(self.created_at)
    }
}

/// One step of a run, with every attempt made at it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct StepRecord {
    pub name: String,
    /// 1-based; steps of the same stage ran in parallel.
    pub stage: u32,
    pub kind: String,
    pub region: RegionName,
    pub state: StepState,
    /// The latest word on it: what check, apply or verify said, or the error.
    pub detail: Option<String>,
    pub error_class: Option<ErrorClass>,
    pub started_at: Option<Ts>,
    pub finished_at: Option<Ts>,
    pub attempts: Vec<AttemptRecord>,
}

pub(super) const STEP_COLUMNS: &str =
    "name, stage, kind, region, state, detail, error_class, started_at, finished_at";

impl StepRecord {
    pub(super) fn from_row(r: &Row<'_>) -> rusqlite::Result<StepRecord> {
        Ok(StepRecord {
            name: r.get(0)?,
            stage: r.get(1)?,
            kind: r.get(2)?,
            region: r.get(3)?,
            state: r.get(4)?,
            detail: r.get(5)?,
            error_class: r.get(6)?,
            started_at: r.get(7)?,
            finished_at: r.get(8)?,
            attempts: Vec::new(),
        })
    }

    /// Apply attempts journaled as begun, including any a crash cut short.
    pub fn apply_attempts(&self) -> u32 {
        let n = self
            .attempts
            .iter()
            .filter(|a| a.phase == AttemptPhase::Apply)
            .count();
        u32::try_from(n).unwrap_or(u32::MAX)
    }
}

/// One check call, apply attempt, verification or compensation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct AttemptRecord {
    pub step: String,
    pub phase: AttemptPhase,
    /// apply: the attempt number; verify: how many observations were made.
    pub attempt: u32,
    pub epoch: Epoch,
    pub started_at: Ts,
    /// `None` with `outcome` `None`: the process stopped during the attempt.
    pub finished_at: Option<Ts>,
    pub outcome: Option<AttemptOutcome>,
    pub error_class: Option<ErrorClass>,
    pub detail: Option<String>,
}

pub(super) const ATTEMPT_COLUMNS: &str =
    "step, phase, attempt, epoch, started_at, finished_at, outcome, error_class, detail";

impl AttemptRecord {
    pub(super) fn from_row(r: &Row<'_>) -> rusqlite::Result<AttemptRecord> {
        Ok(AttemptRecord {
            step: r.get(0)?,
            phase: r.get(1)?,
            attempt: r.get(2)?,
            epoch: r.get(3)?,
            started_at: r.get(4)?,
            finished_at: r.get(5)?,
            outcome: r.get(6)?,
            error_class: r.get(7)?,
            detail: r.get(8)?,
        })
    }

    /// Begun and never ended: the process stopped while it was in flight.
    pub fn interrupted(&self) -> bool {
        self.finished_at.is_none()
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ApprovalRecord {
    pub step: String,
    pub approved_by: String,
    pub allow_data_loss: bool,
    pub at: Ts,
}

impl ApprovalRecord {
    pub(super) fn from_row(r: &Row<'_>) -> rusqlite::Result<ApprovalRecord> {
        Ok(ApprovalRecord {
            step: r.get(0)?,
            approved_by: r.get(1)?,
            allow_data_loss: r.get(2)?,
            at: r.get(3)?,
        })
    }
}

/// One entry of the append-only audit trail.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct AuditRecord {
    pub at: Ts,
    pub run_id: Option<RunId>,
    pub epoch: Option<Epoch>,
    pub actor: String,
    /// `run_started`, `run_resumed`, `run_paused`, `approved`, `run_aborted`,
    /// `run_failed`, `run_completed`, `run_interrupted`.
    pub action: String,
    pub detail: String,
}

impl AuditRecord {
    pub(super) fn from_row(r: &Row<'_>) -> rusqlite::Result<AuditRecord> {
        Ok(AuditRecord {
            at: r.get(0)?,
            run_id: r.get(1)?,
            epoch: r.get(2)?,
            actor: r.get(3)?,
            action: r.get(4)?,
            detail: r.get(5)?,
        })
    }
}

/// Everything the journal knows about one run: what `lifeboat show` prints.
#[derive(Clone, Debug, Serialize, Deserialize, schemars::JsonSchema)]
pub struct RunDetail {
    pub run: RunRecord,
    /// `None` for a run planned by an older lifeboat whose plan format this one does not
    /// read (its steps are still listed).
    pub plan: Option<Plan>,
    /// In plan order.
    pub steps: Vec<StepRecord>,
    pub approvals: Vec<ApprovalRecord>,
    pub audit: Vec<AuditRecord>,
}

/// Which region serves a service, as far as completed runs know.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ServiceState {
    pub service: String,
    pub active_region: RegionName,
    /// The run that made it so.
    pub run_id: RunId,
    pub updated_at: Ts,
}
