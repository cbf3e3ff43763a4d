//! One step, from the journal's record to its end: `check` → `apply` (retried) →
//! `verify` (polled), with a journal write before and after each side effect.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::{Instant, timeout_at};
use tracing::{error, info, warn};

use super::failpoint::{self, Point};
use super::progress::{Progress, ProgressKind as Event, ProgressSink};
use super::{
    Authority, AuthorityError, Cancel, Check, RetrySettings, SharedOutcome, Step, StepCtx,
    StepError, Verify,
};
use crate::clock::WallClock;
use crate::core::plan::{Plan, PlannedStep};
use crate::core::reason::Notice;
use crate::core::step::{
    self, AttemptOutcome, AttemptPhase, ErrorClass, Resume, StepEnd, StepState,
    when_already_in_place,
};
use crate::core::time::fmt_duration;
use crate::journal::{AttemptId, Fence, Journal, JournalError};

/// What the steps of one executor session share.
pub(super) struct Session {
    pub journal: Arc<Journal>,
    pub clock: WallClock,
    pub retry: RetrySettings,
    pub cancel: Cancel,
    pub progress: ProgressSink,
    pub authority: Arc<dyn Authority>,
    pub plan: Plan,
    pub fence: Fence,
}

/// Why a step stops early. The step's end travels on the error path so `?` can carry
/// it out of the phases; a refused write (stale epoch) becomes `Superseded`.
enum Halt {
    End(StepEnd),
    Journal(JournalError),
}

impl From<JournalError> for Halt {
    fn from(e: JournalError) -> Halt {
        match e {
            JournalError::StaleEpoch { .. } => Halt::End(StepEnd::Superseded),
            e => Halt::Journal(e),
        }
    }
}

/// Runs one planned step as far as it goes in this session.
///
/// Guarantees: the journal knows every apply attempt before it is made and every
/// outcome right after; a step found started or applied goes through `check` first.
/// Errors: journal failures other than a stale epoch (those end the step `Superseded`).
pub(super) async fn run_step(
    s: Arc<Session>,
    ps: PlannedStep,
    built: Result<Arc<dyn Step>, StepError>,
) -> Result<StepEnd, JournalError> {
    match StepRun::begin(&s, &ps, built).await {
        Ok(end) | Err(Halt::End(end)) => Ok(end),
        Err(Halt::Journal(e)) => Err(e),
    }
}

struct StepRun<'a> {
    s: &'a Session,
    ps: &'a PlannedStep,
    /// The adapter, once the factory's result is known to be usable.
    step: Option<Arc<dyn Step>>,
    started: Instant,
    deadline: Instant,
    /// Apply attempts journaled for this step, in every session so far.
    apply_attempts: u32,
}

impl<'a> StepRun<'a> {
    async fn begin(
        s: &'a Session,
        ps: &'a PlannedStep,
        built: Result<Arc<dyn Step>, StepError>,
    ) -> Result<StepEnd, Halt> {
        let run_id = &s.plan.run_id;
        let record = s.journal.step(run_id, &ps.name)?;
        let mark_started = match step::resume(record.state) {
            Resume::Done => {
                return Ok(match record.state {
                    StepState::Failed if ps.continue_on_error => StepEnd::FailedContinue,
                    StepState::Failed => StepEnd::Failed {
                        message: record.detail.unwrap_or_default(),
                    },
                    _ => StepEnd::Done,
                });
            }
            Resume::AwaitApproval => {
                return Ok(StepEnd::Paused {
                    reason: record.detail.unwrap_or_default(),
                });
            }
            Resume::Run { mark_started } => mark_started,
        };
        // Shutting down: start nothing new.
        if s.cancel.is_cancelled() {
            return Ok(StepEnd::Interrupted);
        }
        let started = Instant::now();
        let mut run = StepRun {
            s,
            ps,
            step: None,
            started,
            deadline: deadline_after(started, ps.timeout),
            apply_attempts: record.apply_attempts(),
        };
        if mark_started {
            run.mark(StepState::Started, None, None)?;
        }
        let resumed = if mark_started { "" } else { " (resumed)" };
        run.event(
            Event::StepStarted,
            0,
            format!("{}{resumed}", ps.description),
        );

        let approval = s.journal.approval(run_id, &ps.name)?;
        let step = match built {
            Ok(step) => {
                run.step = Some(step.clone());
                step
            }
            Err(e) if e.class == ErrorClass::NeedsApproval => return Err(run.pause(e.message)?),
            Err(e) => return Err(run.fail(None, &e.message, ErrorClass::Fatal).await?),
        };
        let run_record = s.journal.run(run_id)?;
        let ctx = StepCtx {
            run_id: run_id.clone(),
            epoch: s.fence.epoch,
            service: s.plan.service.clone(),
            direction: s.plan.direction,
            from: s.plan.from.clone(),
            to: s.plan.to.clone(),
            step: ps.name.clone(),
            region: ps.region.clone(),
            allow_data_loss: run_record.allow_data_loss,
            rpo_budget: s.plan.rpo_budget,
            approved_by: approval.map(|a| a.approved_by),
            timeline: s.journal.timeline(run_id)?,
            deadline: run.deadline,
            cancel: s.cancel.clone(),
        };

        let in_place = run.check(&*step, &ctx).await?;
        if in_place.is_none() {
            run.apply(&*step, &ctx).await?;
        }
        let observed = run.verify(&*step, &ctx).await?;
        let (state, event) = match in_place {
            Some(_) if when_already_in_place(run.apply_attempts) == StepState::Skipped => {
                (StepState::Skipped, Event::Skipped)
            }
            _ => (StepState::Verified, Event::Verified),
        };
        let detail = match (&in_place, state) {
            (Some(found), StepState::Skipped) => format!("already in place: {found}"),
            _ => observed,
        };
        run.mark(state, Some(&detail), None)?;
        info!("step {state}: {detail}");
        run.event(event, 0, detail);
        let shared = if in_place.is_some() {
            SharedOutcome::Adopted
        } else {
            SharedOutcome::Done
        };
        run.share(shared).await?;
        Ok(StepEnd::Done)
    }

    /// `check`, retrying retryable errors. `Some(detail)` when the effect is in place.
    async fn check(&mut self, step: &dyn Step, ctx: &StepCtx) -> Result<Option<String>, Halt> {
        let mut delays = self.s.retry.apply.delays();
        for n in 1u32.. {
            let id = self.begin_attempt(AttemptPhase::Check, n)?;
            let err = match timeout_at(self.deadline, step.check(ctx)).await {
                Ok(Ok(Check::Done(d))) => {
                    self.end_attempt(id, n, AttemptOutcome::Done, None, &d)?;
                    self.event(Event::Checked, n, format!("already in place: {d}"));
                    return Ok(Some(d));
                }
                Ok(Ok(Check::NotDone(d))) => {
                    self.end_attempt(id, n, AttemptOutcome::NotDone, None, &d)?;
                    self.event(Event::Checked, n, format!("not in place: {d}"));
                    return Ok(None);
                }
                Ok(Err(e)) => e,
                Err(_) => {
                    let msg = self.deadline_message("check", n, "the call did not return");
                    self.end_attempt(id, n, AttemptOutcome::TimedOut, None, &msg)?;
                    return Err(self.fail(None, &msg, ErrorClass::Retryable).await?);
                }
            };
            self.end_attempt(id, n, AttemptOutcome::Error, Some(err.class), &err.message)?;
            self.on_error("check", None, n, err, &mut delays).await?;
        }
        unreachable!("1u32.. ends only by overflow")
    }

    /// `apply`, retrying retryable errors; each attempt journaled before it is made.
    async fn apply(&mut self, step: &dyn Step, ctx: &StepCtx) -> Result<(), Halt> {
        let mut delays = self.s.retry.apply.delays();
        loop {
            if self.s.cancel.is_cancelled() {
                return Err(Halt::End(StepEnd::Interrupted));
            }
            self.apply_attempts += 1;
            let n = self.apply_attempts;
            let id = self.begin_attempt(AttemptPhase::Apply, n)?;
            self.event(Event::Applying, n, format!("apply attempt {n}"));
            self.authorize(id, n).await?;
            failpoint::hit(&self.ps.name, Point::BeforeApply);
            let err = match timeout_at(self.deadline, step.apply(ctx)).await {
                Ok(Ok(applied)) => {
                    failpoint::hit(&self.ps.name, Point::AfterApply);
                    self.end_attempt(id, n, AttemptOutcome::Done, None, &applied.detail)?;
                    self.mark(StepState::Applied, Some(&applied.detail), None)?;
                    self.event_with(Event::Applied, n, applied.detail, applied.notice);
                    return Ok(());
                }
                Ok(Err(e)) => e,
                Err(_) => {
                    let msg = self.deadline_message("apply", n, "the call did not return");
                    self.end_attempt(id, n, AttemptOutcome::TimedOut, None, &msg)?;
                    return Err(self.fail(Some(ctx), &msg, ErrorClass::Retryable).await?);
                }
            };
            self.end_attempt(id, n, AttemptOutcome::Error, Some(err.class), &err.message)?;
            self.on_error("apply", Some(ctx), n, err, &mut delays)
                .await?;
        }
    }

    /// Polls `verify` until it observes the effect or the deadline passes. The whole
    /// polling is one journaled attempt that counts its observations.
    async fn verify(&mut self, step: &dyn Step, ctx: &StepCtx) -> Result<String, Halt> {
        failpoint::hit(&self.ps.name, Point::BeforeVerify);
        let mut delays = self.s.retry.verify.delays();
        let id = self.begin_attempt(AttemptPhase::Verify, 0)?;
        let mut last: String;
        for n in 1u32.. {
            match timeout_at(self.deadline, step.verify(ctx)).await {
                Ok(Ok(Verify::Done(d))) => {
                    failpoint::hit(&self.ps.name, Point::AfterVerify);
                    self.end_attempt(id, n, AttemptOutcome::Done, None, &d)?;
                    return Ok(d);
                }
                Ok(Ok(Verify::NotYet(d))) => last = d,
                Ok(Err(e)) if e.class == ErrorClass::Retryable => {
                    warn!("verify observation {n} failed (retrying): {}", e.message);
                    last = e.message;
                }
                Ok(Err(e)) => {
                    self.end_attempt(id, n, AttemptOutcome::Error, Some(e.class), &e.message)?;
                    return Err(match e.class {
                        ErrorClass::NeedsApproval => self.pause(e.message)?,
                        _ => self.fail(Some(ctx), &e.message, e.class).await?,
                    });
                }
                Err(_) => {
                    let msg = self.deadline_message("verify", n, "the call did not return");
                    self.end_attempt(id, n, AttemptOutcome::TimedOut, None, &msg)?;
                    return Err(self.fail(Some(ctx), &msg, ErrorClass::Retryable).await?);
                }
            }
            self.event(Event::Verifying, n, last.clone());
            match self.wait_for_retry(&mut delays).await {
                Wait::Again => {}
                Wait::Deadline => {
                    let msg = format!(
                        "the effect was not observed within the step's {} timeout ({n} observations); last: {last}",
                        fmt_duration(self.ps.timeout)
                    );
                    self.end_attempt(id, n, AttemptOutcome::TimedOut, None, &msg)?;
                    return Err(self.fail(Some(ctx), &msg, ErrorClass::Retryable).await?);
                }
                Wait::Cancelled => {
                    self.end_attempt(id, n, AttemptOutcome::Cancelled, None, &last)?;
                    return Err(Halt::End(StepEnd::Interrupted));
                }
            }
        }
        unreachable!("1u32.. ends only by overflow")
    }

    /// After a failed call: retry, pause or fail according to the error's class. `ctx`
    /// is given when a failure should compensate (after an apply was attempted).
    async fn on_error(
        &mut self,
        what: &str,
        ctx: Option<&StepCtx>,
        n: u32,
        err: StepError,
        delays: &mut (impl Iterator<Item = Duration> + Send),
    ) -> Result<(), Halt> {
        match err.class {
            ErrorClass::NeedsApproval => Err(self.pause(err.message)?),
            ErrorClass::Fatal => Err(self.fail(ctx, &err.message, err.class).await?),
            ErrorClass::Retryable => {
                warn!("{what} attempt {n} failed (retrying): {}", err.message);
                self.event(Event::Retrying, n, err.message.clone());
                match self.wait_for_retry(delays).await {
                    Wait::Again => Ok(()),
                    Wait::Cancelled => Err(Halt::End(StepEnd::Interrupted)),
                    Wait::Deadline => {
                        let msg = self.deadline_message(what, n, &err.message);
                        Err(self.fail(ctx, &msg, err.class).await?)
                    }
                }
            }
        }
    }

    /// Sleeps the next backoff delay, unless that would pass the deadline or the
    /// executor is told to shut down first.
    async fn wait_for_retry(&self, delays: &mut (impl Iterator<Item = Duration> + Send)) -> Wait {
        let Some(delay) = delays.next() else {
            return Wait::Deadline;
        };
        if deadline_after(Instant::now(), delay) >= self.deadline {
            return Wait::Deadline;
        }
        tokio::select! {
            () = tokio::time::sleep(delay) => Wait::Again,
            () = self.s.cancel.cancelled() => Wait::Cancelled,
        }
    }

    /// Marks the step failed (after compensating, when apply was attempted and a
    /// context exists) and returns how the step ended.
    async fn fail(
        &mut self,
        ctx: Option<&StepCtx>,
        message: &str,
        class: ErrorClass,
    ) -> Result<Halt, Halt> {
        if let Some(ctx) = ctx.filter(|_| self.apply_attempts > 0) {
            self.compensate(ctx).await?;
        }
        self.mark(StepState::Failed, Some(message), Some(class))?;
        self.event(Event::StepFailed, 0, message.to_string());
        self.share(SharedOutcome::Failed(message.to_string()))
            .await?;
        Ok(Halt::End(if self.ps.continue_on_error {
            warn!("step failed (the run goes on): {message}");
            StepEnd::FailedContinue
        } else {
            error!("step failed: {message}");
            StepEnd::Failed {
                message: message.to_string(),
            }
        }))
    }

    /// Calls the step's `compensate` once and journals how it went; its failure is
    /// recorded and changes nothing else. It gets a fresh budget of the step's timeout,
    /// since the step's own deadline has often passed by now.
    async fn compensate(&mut self, ctx: &StepCtx) -> Result<(), Halt> {
        let Some(step) = self.step.clone() else {
            return Ok(());
        };
        let mut ctx = ctx.clone();
        ctx.deadline = deadline_after(Instant::now(), self.ps.timeout);
        let id = self.begin_attempt(AttemptPhase::Compensate, 1)?;
        match timeout_at(ctx.deadline, step.compensate(&ctx)).await {
            Ok(Ok(())) => self.end_attempt(id, 1, AttemptOutcome::Done, None, "compensated")?,
            Ok(Err(e)) => {
                warn!("compensation failed: {}", e.message);
                self.end_attempt(id, 1, AttemptOutcome::Error, Some(e.class), &e.message)?
            }
            Err(_) => {
                warn!("compensation did not return within the step's timeout");
                let msg = "compensate did not return within the step's timeout";
                self.end_attempt(id, 1, AttemptOutcome::TimedOut, None, msg)?
            }
        }
        Ok(())
    }

    /// Marks the step waiting for an operator and returns how the step ended.
    fn pause(&mut self, reason: String) -> Result<Halt, Halt> {
        self.mark(
            StepState::AwaitingApproval,
            Some(&reason),
            Some(ErrorClass::NeedsApproval),
        )?;
        info!("step waits for approval: {reason}");
        self.event(Event::AwaitingApproval, 0, reason.clone());
        Ok(Halt::End(StepEnd::Paused { reason }))
    }

    /// The step's position in the plan, 1-based: its key in the shared record.
    fn seq(&self) -> u32 {
        let at = self.s.plan.steps().position(|p| p.name == self.ps.name);
        at.map_or(0, |i| u32::try_from(i + 1).unwrap_or(u32::MAX))
    }

    /// Before a side effect: the acting rule, then this epoch's intent in the shared
    /// record. Either refusing ends the attempt with nothing applied.
    async fn authorize(&mut self, id: AttemptId, n: u32) -> Result<(), Halt> {
        if let Err(why) = self.s.authority.may_act() {
            let msg = format!("not applied: this controller may not act now ({why})");
            self.end_attempt(id, n, AttemptOutcome::Cancelled, None, &msg)?;
            warn!("{msg}");
            return Err(Halt::End(StepEnd::Interrupted));
        }
        let (run, seq, name) = (&self.s.plan.run_id, self.seq(), &self.ps.name);
        match self.s.authority.intent(run, seq, name).await {
            Ok(()) => Ok(()),
            Err(e) => {
                let msg =
                    format!("not applied: the shared record refused this epoch's intent: {e}");
                self.end_attempt(id, n, AttemptOutcome::Cancelled, None, &msg)?;
                warn!("{msg}");
                Err(Halt::End(match e {
                    AuthorityError::Deposed(_) => StepEnd::Superseded,
                    AuthorityError::Unavailable(_) | AuthorityError::NotRecorded(_) => {
                        StepEnd::Interrupted
                    }
                }))
            }
        }
    }

    /// After the step's end is journaled here: its outcome in the shared record, once.
    async fn share(&self, outcome: SharedOutcome) -> Result<(), Halt> {
        let (run, seq, name) = (&self.s.plan.run_id, self.seq(), &self.ps.name);
        match self.s.authority.done(run, seq, name, outcome).await {
            Ok(()) => Ok(()),
            Err(AuthorityError::Deposed(why)) => {
                warn!("the shared record refused the step's outcome: {why}");
                Err(Halt::End(StepEnd::Superseded))
            }
            Err(AuthorityError::Unavailable(why)) | Err(AuthorityError::NotRecorded(why)) => {
                // The effect is in place and journaled here; a new leader's check finds it
                // and records it as adopted.
                warn!(
                    "the step's outcome could not be shared now ({why}); a resumed run adopts it"
                );
                Err(Halt::End(StepEnd::Interrupted))
            }
        }
    }

    fn deadline_message(&self, what: &str, attempts: u32, last: &str) -> String {
        format!(
            "{what} did not succeed within the step's {} timeout ({attempts} attempt(s)); last: {last}. \
             Fix the cause, then start the run again: steps already done are skipped",
            fmt_duration(self.ps.timeout)
        )
    }

    fn mark(
        &self,
        to: StepState,
        detail: Option<&str>,
        class: Option<ErrorClass>,
    ) -> Result<(), JournalError> {
        let now = self.s.clock.now();
        self.s
            .journal
            .mark_step(&self.s.fence, &self.ps.name, to, detail, class, now)
    }

    fn begin_attempt(&self, phase: AttemptPhase, n: u32) -> Result<AttemptId, JournalError> {
        let now = self.s.clock.now();
        self.s
            .journal
            .begin_attempt(&self.s.fence, &self.ps.name, phase, n, now)
    }

    fn end_attempt(
        &self,
        id: AttemptId,
        n: u32,
        outcome: AttemptOutcome,
        class: Option<ErrorClass>,
        detail: &str,
    ) -> Result<(), JournalError> {
        let now = self.s.clock.now();
        self.s
            .journal
            .end_attempt(&self.s.fence, id, n, outcome, class, detail, now)
    }

    fn event(&self, kind: Event, attempt: u32, message: String) {
        self.event_with(kind, attempt, message, None);
    }

    fn event_with(&self, kind: Event, attempt: u32, message: String, notice: Option<Notice>) {
        self.s.progress.send(Progress {
            run_id: self.s.plan.run_id.clone(),
            step: Some(self.ps.name.clone()),
            kind,
            attempt,
            elapsed: self.started.elapsed(),
            message,
            notice,
        });
    }
}

enum Wait {
    Again,
    Deadline,
    Cancelled,
}

/// `start + d`, saturating far in the future instead of panicking: `Instant + Duration`
/// panics on overflow, and a policy's timeout is operator input. (Validation caps step
/// timeouts; this keeps the executor total for plans journaled before the cap existed.)
fn deadline_after(start: Instant, d: Duration) -> Instant {
    const FAR: Duration = Duration::from_secs(100 * 365 * 86_400);
    start
        .checked_add(d.min(FAR))
        .or_else(|| start.checked_add(Duration::from_secs(86_400)))
        .unwrap_or(start)
}
