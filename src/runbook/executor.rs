//! The executor: starts or resumes a run and drives its stages in order, the steps of a
//! stage concurrently, then turns the stage's outcome into the run's next move.

use std::collections::HashMap;
use std::sync::Arc;

use tokio::task::JoinSet;
use tracing::{Instrument, error, info, info_span, warn};

use super::progress::{Progress, ProgressKind, ProgressSink};
use super::run_step::{Session, run_step};
use super::{
    Authority, AuthorityError, Cancel, Local, RetrySettings, RunOutcome, Step, StepError,
    StepFactory,
};
use crate::clock::WallClock;
use crate::core::ids::RunId;
use crate::core::plan::Plan;
use crate::core::step::{self, ErrorClass, Resume, StageVerdict, StepEnd, StepState};
use crate::core::time::Ts;
use crate::journal::{Fence, Journal, JournalError};

/// Runs and resumes runbooks against one journal.
///
/// ```no_run
/// # async fn demo(journal: std::sync::Arc<lifeboat::journal::Journal>,
/// #               factory: std::sync::Arc<dyn lifeboat::runbook::StepFactory>,
/// #               plan: lifeboat::core::plan::Plan) -> anyhow::Result<()> {
/// use lifeboat::runbook::{Executor, RunOutcome};
/// let exec = Executor::new(journal, factory).actor("lifeboat daemon on host-a");
/// // At startup: finish what a previous process left unfinished.
/// exec.resume_unfinished(&plan.service).await?;
/// // Then, when the controller decides to fail over:
/// match exec.start(plan, "controller (auto)").await? {
///     RunOutcome::Completed => {}
///     other => println!("{other:?}"),
/// }
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Executor {
    journal: Arc<Journal>,
    factory: Arc<dyn StepFactory>,
    clock: WallClock,
    actor: String,
    retry: RetrySettings,
    cancel: Cancel,
    progress: ProgressSink,
    authority: Arc<dyn Authority>,
}

impl Executor {
    pub fn new(journal: Arc<Journal>, factory: Arc<dyn StepFactory>) -> Executor {
        Executor {
            journal,
            factory,
            clock: WallClock::system(),
            actor: format!("lifeboat (pid {})", std::process::id()),
            retry: RetrySettings::default(),
            cancel: Cancel::new(),
            progress: ProgressSink::default(),
            authority: Arc::new(Local),
        }
    }

    /// Who else must agree before a step acts (default: nobody; the journal's fence is
    /// the whole story with one controller).
    pub fn authority(mut self, authority: Arc<dyn Authority>) -> Executor {
        self.authority = authority;
        self
    }

    /// Where journal timestamps come from (default: the system clock).
    pub fn clock(mut self, clock: WallClock) -> Executor {
        self.clock = clock;
        self
    }

    /// Who this executor is, for the audit trail (default: `lifeboat (pid N)`).
    pub fn actor(mut self, actor: impl Into<String>) -> Executor {
        self.actor = actor.into();
        self
    }

    pub fn retry(mut self, retry: RetrySettings) -> Executor {
        self.retry = retry;
        self
    }

    /// Shut down cooperatively when `cancel` fires: no new step starts, running steps
    /// stop at their next journaled point, and the run stays resumable.
    pub fn cancel_on(mut self, cancel: Cancel) -> Executor {
        self.cancel = cancel;
        self
    }

    pub fn progress(mut self, sink: ProgressSink) -> Executor {
        self.progress = sink;
        self
    }

    pub fn journal(&self) -> &Arc<Journal> {
        &self.journal
    }

    /// Starts a new run of `plan` and drives it as far as it goes: `begin`, then
    /// `drive_new` (the shared record, then the steps), as the driver does.
    ///
    /// Errors: the journal's (`RunInProgress`, I/O, damage). Step failures are not
    /// errors: they come back as `RunOutcome::Failed`.
    pub async fn start(&self, plan: Plan, started_by: &str) -> Result<RunOutcome, JournalError> {
        let (plan, fence) = self.begin(plan, started_by)?;
        self.drive_new(plan, fence, started_by).await
    }

    /// Takes over a run another controller (`from`, in words) started (at `started_at`,
    /// when the record says) and recorded in the shared record: records it in this journal
    /// with the plan it started with and its start time, notes the
    /// takeover in its audit trail, marks the steps the
    /// shared record says ended (`ended`: step name and who ended it) as done, and
    /// drives the rest. Steps with an intent but no outcome go through `check` first, as
    /// in any resume: an effect already in place is adopted, not applied again.
    pub async fn adopt(
        &self,
        plan: Plan,
        started_by: &str,
        started_at: Option<Ts>,
        ended: &[(String, String)],
        from: &str,
    ) -> Result<RunOutcome, JournalError> {
        let now = self.clock.now();
        let run_id = plan.run_id.clone();
        let began = started_at.filter(|t| *t <= now).unwrap_or(now);
        let (plan, fence) = match self.journal.begin_run(plan, started_by, began) {
            Ok(b) => b,
            // This controller drove the run before (and restarted since): its own record
            // of the run goes on.
            Err(JournalError::RunInProgress { run_id: local, .. }) if local == run_id => {
                self.journal.take_over(&run_id, &self.actor, now)?
            }
            Err(e) => return Err(e),
        };
        let fence = fence.acting_as(&self.actor);
        for (step, who) in ended {
            for to in [StepState::Started, StepState::Skipped] {
                let detail = (to == StepState::Skipped).then_some(who.as_str());
                match self.journal.mark_step(&fence, step, to, detail, None, now) {
                    // Already there in this journal's own record of the run.
                    Ok(()) | Err(JournalError::IllegalTransition { .. }) => {}
                    Err(e) => return Err(e),
                }
            }
        }
        // The audit trail says whose run this was, for `show` on this controller's host.
        let detail = format!(
            "taken over from {from} by {}; {} step(s) already done there",
            self.actor,
            ended.len()
        );
        self.journal.note(&fence, "run_taken_over", &detail, now)?;
        info!(service = %plan.service, run_id = %plan.run_id, epoch = %fence.epoch,
              "taking over a run another controller started ({} step(s) already done)", ended.len());
        self.run_event(
            &plan.run_id,
            ProgressKind::RunResumed,
            "taking over a run another controller started",
        );
        self.drive(plan, fence).await
    }

    /// Records a new run and raises the fencing epoch for it, before any side effect.
    ///
    /// Guarantees: when this returns, the run and its raised epoch are durable; the
    /// returned plan carries the epoch, and the fence is what `drive` writes with.
    /// Assumptions: `plan.epoch` is ignored (the journal assigns it).
    /// Errors: the journal's (`RunInProgress`, `DuplicateRun`, I/O, damage).
    pub fn begin(&self, plan: Plan, started_by: &str) -> Result<(Plan, Fence), JournalError> {
        let (plan, fence) = self.journal.begin_run(plan, started_by, self.clock.now())?;
        let fence = fence.acting_as(&self.actor);
        info!(service = %plan.service, run_id = %plan.run_id, epoch = %fence.epoch,
              "run started by {started_by}: {}", plan.reason());
        self.run_event(&plan.run_id, ProgressKind::RunStarted, &plan.reason());
        Ok((plan, fence))
    }

    /// Takes over an unfinished run and drives it as far as it goes (`take_over`, then
    /// `drive`).
    ///
    /// Errors: `UnknownRun`; `WrongStatus` when the run waits for approval or finished.
    pub async fn resume(&self, run_id: &RunId) -> Result<RunOutcome, JournalError> {
        let (plan, fence) = self.take_over(run_id)?;
        self.drive(plan, fence).await
    }

    /// Takes over an unfinished run, raising the epoch, which fences out any executor
    /// still driving it.
    ///
    /// Guarantees: the raised epoch is durable when this returns; the plan is the one
    /// the run started with.
    /// Errors: `UnknownRun`; `WrongStatus` when the run waits for approval or finished;
    /// `OldPlan` when an older lifeboat planned it.
    pub fn take_over(&self, run_id: &RunId) -> Result<(Plan, Fence), JournalError> {
        let (plan, fence) = self
            .journal
            .take_over(run_id, &self.actor, self.clock.now())?;
        info!(service = %plan.service, run_id = %run_id, epoch = %fence.epoch, "resuming unfinished run");
        self.run_event(
            run_id,
            ProgressKind::RunResumed,
            "resuming an unfinished run",
        );
        Ok((plan, fence))
    }

    /// What to do at startup: resume the service's unfinished run, if there is one. A
    /// run waiting for approval is reported, not touched.
    pub async fn resume_unfinished(
        &self,
        service: &str,
    ) -> Result<Option<(RunId, RunOutcome)>, JournalError> {
        let Some(run) = self.journal.unfinished(service)?.into_iter().next() else {
            return Ok(None);
        };
        if run.status == crate::core::step::RunStatus::AwaitingApproval {
            let waiting = self
                .journal
                .steps(&run.run_id)?
                .into_iter()
                .filter(|s| s.state == StepState::AwaitingApproval)
                .map(|s| (s.name, s.detail.unwrap_or_default()))
                .collect();
            return Ok(Some((run.run_id, RunOutcome::AwaitingApproval(waiting))));
        }
        let outcome = self.resume(&run.run_id).await?;
        Ok(Some((run.run_id, outcome)))
    }

    /// Drives the run from wherever the journal says it is.
    ///
    /// Guarantees: steps already verified or skipped are not touched; steps started but
    /// not verified go through `check` before anything is applied again; every step still
    /// to do is built before this session's first side effect.
    /// Drives a run `begin` just recorded here, after recording it in the shared record
    /// (where a controller that takes over finds it). A shared record that refuses the
    /// run (another run is current there, or a newer leader exists) fails it here before
    /// any step acts.
    pub async fn drive_new(
        &self,
        plan: Plan,
        fence: Fence,
        started_by: &str,
    ) -> Result<RunOutcome, JournalError> {
        // The start time the local record holds, so a controller that takes the run
        // over records the same.
        let started_at = self.journal.run(&plan.run_id)?.created_at;
        match self.authority.begin(&plan, started_by, started_at).await {
            Ok(()) => {}
            Err(AuthorityError::NotRecorded(e)) => {
                let why = format!("the shared record refused the run: {e}");
                warn!(run_id = %plan.run_id, "{why}");
                self.journal
                    .abort(&plan.run_id, &self.actor, &why, self.clock.now())?;
                return Ok(RunOutcome::NotStarted(why));
            }
            Err(e) => {
                let why = format!("the shared record refused the run: {e}");
                warn!(run_id = %plan.run_id, "{why}");
                let failures = vec![("start".to_string(), why.clone())];
                self.journal.fail_run(&fence, &failures, self.clock.now())?;
                self.run_event(&plan.run_id, ProgressKind::RunFailed, &why);
                return Ok(RunOutcome::Failed(failures));
            }
        }
        self.drive(plan, fence).await
    }

    pub async fn drive(&self, plan: Plan, fence: Fence) -> Result<RunOutcome, JournalError> {
        let span =
            info_span!("run", service = %plan.service, run_id = %plan.run_id, epoch = %fence.epoch);
        self.drive_inner(plan, fence).instrument(span).await
    }

    async fn drive_inner(&self, plan: Plan, fence: Fence) -> Result<RunOutcome, JournalError> {
        let session = Arc::new(Session {
            journal: self.journal.clone(),
            clock: self.clock.clone(),
            retry: self.retry,
            cancel: self.cancel.clone(),
            progress: self.progress.clone(),
            authority: self.authority.clone(),
            plan,
            fence,
        });
        let plan = &session.plan;

        // Build every step still to do before this session's first side effect, so a
        // misconfigured later step stops the run before it promotes anything.
        let records = self.journal.steps(&plan.run_id)?;
        let mut built: HashMap<String, Result<Arc<dyn Step>, StepError>> = HashMap::new();
        for ps in plan.steps() {
            let done = records
                .iter()
                .find(|r| r.name == ps.name)
                .is_some_and(|r| step::resume(r.state) == Resume::Done);
            if done {
                continue;
            }
            built.insert(ps.name.clone(), self.factory.build(plan, ps));
        }
        let unbuildable: Vec<(String, String)> = plan
            .steps()
            .filter(|ps| !ps.continue_on_error)
            .filter_map(|ps| match built.get(&ps.name) {
                Some(Err(e)) if e.class != ErrorClass::NeedsApproval => {
                    Some((ps.name.clone(), e.message.clone()))
                }
                _ => None,
            })
            .collect();
        if !unbuildable.is_empty() {
            return self.fail_unbuildable(&session, &unbuildable).await;
        }

        for stage in &plan.stages {
            let mut tasks = JoinSet::new();
            for (i, ps) in stage.steps.iter().enumerate() {
                let built = built
                    .get(&ps.name)
                    .cloned()
                    .unwrap_or_else(|| Err(StepError::fatal("not built")));
                let span = info_span!("step", step = %ps.name, region = %ps.region);
                let task = run_step(session.clone(), ps.clone(), built).instrument(span);
                tasks.spawn(async move { (i, task.await) });
            }
            let mut ends: Vec<Option<StepEnd>> = vec![None; stage.steps.len()];
            let mut journal_error = None;
            while let Some(joined) = tasks.join_next().await {
                match joined {
                    Ok((i, Ok(end))) => ends[i] = Some(end),
                    Ok((_, Err(e))) => journal_error = Some(e),
                    Err(panic) => {
                        // A panicking adapter is a bug; its step is reported failed below.
                        error!("a step task ended abnormally: {panic}");
                    }
                }
            }
            if let Some(e) = journal_error {
                // The journal cannot record what happens next, so nothing more happens.
                error!("journal write failed, stopping the run: {e:#}");
                return Err(e);
            }
            let ends: Vec<(String, StepEnd)> = stage
                .steps
                .iter()
                .zip(ends)
                .map(|(ps, end)| {
                    let end = end.unwrap_or_else(|| StepEnd::Failed {
                        message: "the step's adapter panicked (a bug in lifeboat; report it); \
                                  `lifeboat show` has its last journaled state"
                            .to_string(),
                    });
                    (ps.name.clone(), end)
                })
                .collect();
            match step::stage_verdict(&ends) {
                StageVerdict::Next => {}
                verdict => return self.conclude(&session, verdict).await,
            }
        }
        let now = self.clock.now();
        match self.journal.complete_run(&session.fence, now) {
            Ok(()) => {}
            Err(e) => return superseded_or(e),
        }
        if let Err(e) = self.authority.end(&plan.run_id, "completed").await {
            // Journaled here; the next leader finds every step done and ends it.
            warn!("the run's end could not be shared: {e}");
        }
        info!("run completed: `{}` now runs in {}", plan.service, plan.to);
        self.run_event(&plan.run_id, ProgressKind::RunCompleted, "every step done");
        Ok(RunOutcome::Completed)
    }

    /// Journals a stage's verdict on the run and returns the session's outcome.
    async fn conclude(
        &self,
        session: &Session,
        verdict: StageVerdict,
    ) -> Result<RunOutcome, JournalError> {
        let (fence, run_id, now) = (&session.fence, &session.plan.run_id, self.clock.now());
        let written = match &verdict {
            StageVerdict::Next | StageVerdict::Superseded => Ok(()),
            StageVerdict::Fail(f) => self.journal.fail_run(fence, f, now),
            StageVerdict::Pause(w) => self.journal.pause_run(fence, w, now),
            StageVerdict::Interrupt => self.journal.note(
                fence,
                "run_interrupted",
                "shutdown requested; the next executor start resumes the run",
                now,
            ),
        };
        if let Err(e) = written {
            return superseded_or(e);
        }
        if matches!(verdict, StageVerdict::Fail(_))
            && let Err(e) = self.authority.end(run_id, "failed").await
        {
            warn!("the run's end could not be shared: {e}");
        }
        Ok(match verdict {
            StageVerdict::Next => RunOutcome::Completed,
            StageVerdict::Superseded => {
                let msg = "a newer executor owns the run (or it was aborted); stopped acting";
                warn!("{msg}");
                self.run_event(run_id, ProgressKind::RunSuperseded, msg);
                RunOutcome::Superseded(msg.to_string())
            }
            StageVerdict::Fail(f) => {
                // Each failed step logged its own failure where it happened.
                info!("run failed");
                self.run_event(run_id, ProgressKind::RunFailed, &summary(&f));
                RunOutcome::Failed(f)
            }
            StageVerdict::Pause(w) => {
                info!("run paused for approval: {}", summary(&w));
                self.run_event(run_id, ProgressKind::RunPaused, &summary(&w));
                RunOutcome::AwaitingApproval(w)
            }
            StageVerdict::Interrupt => {
                info!("run interrupted by shutdown; it resumes at the next start");
                self.run_event(run_id, ProgressKind::RunInterrupted, "shutdown requested");
                RunOutcome::Interrupted
            }
        })
    }

    /// Fails the run before any side effect of this session because required steps
    /// cannot be built.
    async fn fail_unbuildable(
        &self,
        session: &Session,
        unbuildable: &[(String, String)],
    ) -> Result<RunOutcome, JournalError> {
        let now = self.clock.now();
        let fence = &session.fence;
        let failures: Vec<(String, String)> = unbuildable
            .iter()
            .map(|(s, m)| {
                (
                    s.clone(),
                    format!("{m} (nothing was done: the run stops before its first action)"),
                )
            })
            .collect();
        for (s, m) in &failures {
            let state = self.journal.step(&fence.run_id, s)?.state;
            let mut marks = Vec::new();
            if state.can_become(StepState::Started) {
                marks.push(StepState::Started);
            }
            marks.push(StepState::Failed);
            for to in marks {
                let detail = (to == StepState::Failed).then_some(m.as_str());
                let class = (to == StepState::Failed).then_some(ErrorClass::Fatal);
                if let Err(e) = self.journal.mark_step(fence, s, to, detail, class, now) {
                    return superseded_or(e);
                }
            }
        }
        self.conclude(session, StageVerdict::Fail(failures)).await
    }

    fn run_event(&self, run_id: &RunId, kind: ProgressKind, message: &str) {
        self.progress.send(Progress {
            run_id: run_id.clone(),
            step: None,
            kind,
            attempt: 0,
            elapsed: std::time::Duration::ZERO,
            message: message.to_string(),
            notice: None,
        });
    }
}

/// A refused write means another executor owns the run: an outcome, not an error.
fn superseded_or(e: JournalError) -> Result<RunOutcome, JournalError> {
    match e {
        JournalError::StaleEpoch { .. } => {
            warn!("{e}");
            Ok(RunOutcome::Superseded(e.to_string()))
        }
        e => Err(e),
    }
}

fn summary(list: &[(String, String)]) -> String {
    list.iter()
        .map(|(s, m)| format!("{s}: {m}"))
        .collect::<Vec<_>>()
        .join("; ")
}
