//! The step contract: what every runbook step (promote a database, move DNS, scale
//! workers, notify…) implements, and what the executor promises in return.
//!
//! A step is idempotent by construction: `check` asks whether the effect is already in
//! place, `apply` causes it, `verify` observes it. The executor journals before and after
//! each side effect and, after a crash, runs `check` again before re-applying anything.
//! Retries, backoff, deadlines and polling live in the executor, not in the adapters, so
//! they are the same everywhere and tested once on a paused clock.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use thiserror::Error;

use super::cancel::Cancel;
use crate::core::ids::{Epoch, RunId};
use crate::core::model::{Direction, RegionName};
use crate::core::plan::{Plan, PlannedStep};
use crate::core::reason::Notice;
use crate::core::step::{ErrorClass, TimelineEntry};

/// One runbook step, bound to its target (built by a `StepFactory`).
///
/// Guarantees (what the executor promises the adapter):
/// - `check` is called first, in every executor session that takes the step up, and
///   again after a crash; `apply` is only called when `check` said `NotDone`.
/// - The executor journals an apply attempt before calling `apply` and its outcome
///   after; `verify` is called only after an `apply` that succeeded (or a `check` that
///   found the effect in place), repeatedly, until it says `Done` or the deadline passes.
/// - Calls on one step never overlap. Retryable errors are retried with exponential
///   backoff and jitter within the step's deadline (`ctx.deadline`).
///
/// Assumptions (what the adapter promises):
/// - `apply` is safe to call again when its effect is partly or wholly in place (a crash
///   can land between the effect and the journal write). `check` is how it avoids
///   repeating work; where the target supports it, pass `ctx.epoch` as a fencing token.
/// - `check` and `verify` have no side effects.
/// - Each call returns by `ctx.deadline` or soon after; the executor abandons a call
///   still running at the deadline (the future is dropped).
/// - Messages never contain secret values (passwords, tokens, webhook URLs).
///
/// Errors: every error carries its `ErrorClass` and a message that names the resource
/// and says what the operator should do (see `StepError`).
#[async_trait]
pub trait Step: Send + Sync {
    /// Is the effect already in place? No side effects.
    async fn check(&self, ctx: &StepCtx) -> Result<Check, StepError>;

    /// Cause the effect. Returns once the request is accepted; `verify` waits for it.
    async fn apply(&self, ctx: &StepCtx) -> Result<Applied, StepError>;

    /// One observation: is the effect visible yet? The executor polls.
    async fn verify(&self, ctx: &StepCtx) -> Result<Verify, StepError>;

    /// Undo what a failed `apply` may have left half done, where undoing is safe (e.g.
    /// scale a group back). Called at most once, after the step failed (fatal error or
    /// deadline) and `apply` had been attempted, before the run stops. Must be safe when
    /// nothing was applied. Its outcome is journaled; its failure changes nothing else.
    /// Default: nothing to undo.
    async fn compensate(&self, ctx: &StepCtx) -> Result<(), StepError> {
        let _ = ctx;
        Ok(())
    }
}

/// Builds the step that performs one planned step. The real factory maps each
/// `core::model::Action` to its adapter (`src/action/`); tests use fakes.
///
/// Guarantees: called once per step per executor session, for the steps still to do,
/// before the session's first side effect.
/// Assumptions: no I/O beyond reading configuration and secrets; cheap.
/// Errors: a `StepError` saying what is missing (a secret, a target setting). Building
/// is not retried: `NeedsApproval` pauses the run; any other class fails the step.
pub trait StepFactory: Send + Sync {
    fn build(&self, plan: &Plan, step: &PlannedStep) -> Result<Arc<dyn Step>, StepError>;
}

/// What `check` found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Check {
    /// The effect is in place; the detail says what was seen ("replica already promoted").
    Done(String),
    /// Not in place; the detail says what was seen instead.
    NotDone(String),
}

/// What `apply` did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Applied {
    /// E.g. "PromoteReadReplica accepted for orders-usw2".
    pub detail: String,
    /// Something a person must act on, which the executor passes to the controller
    /// (e.g. an old primary that could not be fenced).
    pub notice: Option<Notice>,
}

impl Applied {
    pub fn new(detail: impl Into<String>) -> Applied {
        Applied {
            detail: detail.into(),
            notice: None,
        }
    }

    pub fn with_notice(mut self, notice: Notice) -> Applied {
        self.notice = Some(notice);
        self
    }
}

/// One observation by `verify`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verify {
    /// The effect is observable; done.
    Done(String),
    /// Not yet; the detail says what was seen ("2 of 4 instances InService").
    NotYet(String),
}

/// A step's error: its class decides what the executor does, its message is shown to
/// the operator and journaled.
///
/// The message names the resource and says what to do next, e.g. "AccessDenied on
/// rds:PromoteReadReplica for orders-usw2: grant it to the lifeboat role (terraform/iam.tf)".
/// It never contains a secret value.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[error("{message}")]
pub struct StepError {
    pub class: ErrorClass,
    pub message: String,
}

impl StepError {
    /// Throttling, timeouts, 5xx, connection refused: tried again.
    pub fn retryable(message: impl Into<String>) -> StepError {
        StepError {
            class: ErrorClass::Retryable,
            message: message.into(),
        }
    }

    /// Access denied, not found, invalid state: stops the step.
    pub fn fatal(message: impl Into<String>) -> StepError {
        StepError {
            class: ErrorClass::Fatal,
            message: message.into(),
        }
    }

    /// A guardrail wants a human (replica lag over the RPO budget, a manual gate): the
    /// run pauses until `lifeboat approve RUN_ID`.
    pub fn needs_approval(message: impl Into<String>) -> StepError {
        StepError {
            class: ErrorClass::NeedsApproval,
            message: message.into(),
        }
    }
}

/// What a step knows about the run it is part of.
#[derive(Clone, Debug)]
pub struct StepCtx {
    pub run_id: RunId,
    /// The fencing epoch of this executor session. Raised before the run's first side
    /// effect and again whenever another executor takes the run over; pass it to targets
    /// that accept a fencing token so a stale executor's late call is refused there too.
    pub epoch: Epoch,
    pub service: String,
    pub direction: Direction,
    /// The region the run moves the service away from.
    pub from: RegionName,
    /// The region the run moves the service to.
    pub to: RegionName,
    /// This step's name (unique in the runbook).
    pub step: String,
    /// The region this step acts in (`@to`/`@from` resolved).
    pub region: RegionName,
    /// The operator accepted losing writes not yet replicated (at start, or when
    /// approving with `--allow-data-loss`). An RPO-gated promotion proceeds only then, or
    /// when the lag is within `rpo_budget`.
    pub allow_data_loss: bool,
    /// The policy's RPO budget when the run was planned.
    pub rpo_budget: Duration,
    /// Who approved this step, when it paused for approval and an operator let it go on.
    pub approved_by: Option<String>,
    /// The run's story so far (run events and every ended attempt), oldest first; for
    /// notifications.
    pub timeline: Vec<TimelineEntry>,
    /// When the executor gives up on the step (tokio's clock, so tests can pause it).
    pub deadline: tokio::time::Instant,
    /// Fires when the executor is told to shut down. Long calls may watch it and return
    /// early with a retryable error; the step is then resumed at the next start.
    pub cancel: Cancel,
}
