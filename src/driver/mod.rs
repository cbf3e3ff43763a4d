//! The one owner of a service's run lifecycle: operator request → controller decision →
//! plan → executor start or resume → progress → controller inputs → commands (journaled
//! decisions, alerts). The daemon's event loop and the standalone CLI both drive runs
//! through it, so a decision, its evidence and its alerts are the same whichever path
//! started the run, and a new leader (controller HA) resumes a run the same way.
//!
//! Invariant: run ids are minted, and a run's first fencing epoch raised, only here (the
//! epoch through `Executor::begin`, before the run's first side effect).

pub mod alerts;
mod memory;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tracing::{debug, error, info, warn};

pub use alerts::{Alerter, Alerts};
pub use memory::{remember, restored_state};

use crate::clock::WallClock;
use crate::contract::Reply;
use crate::coord::records::{CountedVote, SharedState};
use crate::coord::{EtcdAuthority, NotLeading, Standing, Unfinished};
use crate::core::controller::{
    self, Command, Decision, Input, OperatorCommand, RunEnd, RunRequest, State,
};
use crate::core::ids::{Epoch, RunId};
use crate::core::kind::StepKind;
use crate::core::model::{Direction, Policy, RegionName};
use crate::core::plan::{self, Plan, PlanRequest};
use crate::core::readiness::ReadinessReport;
use crate::core::reason::{Hold, Note, Notice, Reason};
use crate::journal::{Journal, JournalError, RunRecord};
use crate::probe::scheduler::Restart;
use crate::runbook::{
    Authority, Cancel, Executor, Progress, ProgressKind, ProgressSink, RetrySettings, RunOutcome,
    StepFactory,
};

/// What the driver tells whoever watches it (the daemon's metrics). Every method has a
/// default that does nothing.
pub trait Observer: Send + Sync {
    /// The controller stepped; `state` is its new state.
    fn decided(&self, state: &State) {
        let _ = state;
    }
    /// A run started; for a failover, how long after detection it was decided.
    fn run_started(&self, request: &RunRequest, detection_to_decision: Option<Duration>) {
        let _ = (request, detection_to_decision);
    }
    fn run_ended(&self, direction: Direction, outcome: &str) {
        let _ = (direction, outcome);
    }
    fn step_ended(&self, step: &str, kind: StepKind, outcome: &str, seconds: f64) {
        let _ = (step, kind, outcome, seconds);
    }
    /// A readiness round finished.
    fn readiness(&self, report: &ReadinessReport) {
        let _ = report;
    }
    /// A step reported a notice (an old primary left unfenced).
    fn noticed(&self, notice: &Notice) {
        let _ = notice;
    }
    /// A run is over and its record final: completed, failed or aborted (not one that
    /// waits for an approval or was interrupted, which goes on later). The archive
    /// writes its report and backs the journal up here; it must return at once.
    fn run_over(&self, run: &RunId) {
        let _ = run;
    }
}

/// An observer that watches nothing.
pub struct Unobserved;
impl Observer for Unobserved {}

/// Several observers, each told everything in turn (the daemon's metrics and its
/// archive).
pub struct Observers(pub Vec<Arc<dyn Observer>>);

impl Observer for Observers {
    fn decided(&self, state: &State) {
        self.0.iter().for_each(|o| o.decided(state));
    }
    fn run_started(&self, request: &RunRequest, detection_to_decision: Option<Duration>) {
        self.0
            .iter()
            .for_each(|o| o.run_started(request, detection_to_decision));
    }
    fn run_ended(&self, direction: Direction, outcome: &str) {
        self.0.iter().for_each(|o| o.run_ended(direction, outcome));
    }
    fn step_ended(&self, step: &str, kind: StepKind, outcome: &str, seconds: f64) {
        self.0
            .iter()
            .for_each(|o| o.step_ended(step, kind, outcome, seconds));
    }
    fn readiness(&self, report: &ReadinessReport) {
        self.0.iter().for_each(|o| o.readiness(report));
    }
    fn noticed(&self, notice: &Notice) {
        self.0.iter().for_each(|o| o.noticed(notice));
    }
    fn run_over(&self, run: &RunId) {
        self.0.iter().for_each(|o| o.run_over(run));
    }
}

/// An operator's request, from the API or the CLI.
#[derive(Clone, Debug)]
pub enum Request {
    Operator {
        cmd: OperatorCommand,
        /// Answer with the plan the controller would run; start nothing.
        dry_run: bool,
        /// Refuse unless a failover would still go to this region.
        expect_to: Option<RegionName>,
    },
    ApproveRun {
        run: RunId,
        by: String,
        allow_data_loss: bool,
    },
    AbortRun {
        run: RunId,
        by: String,
        reason: String,
    },
}

/// A run's executor session ended.
#[derive(Debug)]
pub struct RunEnded {
    pub run: RunId,
    pub direction: Direction,
    pub result: Result<RunOutcome, JournalError>,
}

/// What the driver is built from.
pub struct Parts {
    pub policy: Arc<Policy>,
    pub journal: Arc<Journal>,
    pub factory: Arc<dyn StepFactory>,
    pub alerts: Arc<dyn Alerts>,
    pub observer: Arc<dyn Observer>,
    pub clock: WallClock,
    /// Who this process is, for the journal: `daemon pid 41`, `lifeboat CLI (pid 7)`.
    pub source: String,
    pub retry: RetrySettings,
    pub cancel: Cancel,
}

/// The channels the driver's runs report on; the owner's loop receives them and hands
/// each back (`Driver::progress`, `Driver::run_ended`).
pub struct Events {
    pub progress: mpsc::UnboundedReceiver<Progress>,
    pub ended: mpsc::UnboundedReceiver<RunEnded>,
}

pub struct Driver {
    policy: Arc<Policy>,
    journal: Arc<Journal>,
    executor: Executor,
    alerts: Arc<dyn Alerts>,
    observer: Arc<dyn Observer>,
    clock: WallClock,
    source: String,
    state: State,
    /// The run this process drives, and its plan.
    running: Option<(tokio::task::JoinHandle<()>, Plan)>,
    ended: mpsc::UnboundedSender<RunEnded>,
    /// Set while handling one request: the run it started, or why the start failed.
    started: Option<Result<RunId, String>>,
    /// The latest readiness round.
    readiness: Option<ReadinessReport>,
    /// While leading on etcd: the authority runs start through, which keeps the counted
    /// votes.
    etcd_authority: Option<Arc<EtcdAuthority>>,
}

impl Driver {
    pub fn new(p: Parts) -> (Driver, Events) {
        let (sink, progress) = ProgressSink::channel();
        let (ended_tx, ended) = mpsc::unbounded_channel();
        let executor = Executor::new(p.journal.clone(), p.factory)
            .actor(p.source.clone())
            .clock(p.clock.clone())
            .retry(p.retry)
            .cancel_on(p.cancel)
            .progress(sink);
        let state = State::new(&p.policy, p.policy.regions.primary.clone(), p.clock.now());
        let driver = Driver {
            policy: p.policy,
            journal: p.journal,
            executor,
            alerts: p.alerts,
            observer: p.observer,
            clock: p.clock,
            source: p.source,
            state,
            running: None,
            ended: ended_tx,
            started: None,
            readiness: None,
            etcd_authority: None,
        };
        (driver, Events { progress, ended })
    }

    pub fn state(&self) -> &State {
        &self.state
    }

    /// The latest readiness round, if one ran.
    pub fn readiness(&self) -> Option<&ReadinessReport> {
        self.readiness.as_ref()
    }

    /// A readiness round finished: every change since the last one is alerted (with its
    /// reason and fix) and kept in the audit trail; the observer and `status` get it.
    pub fn readiness_round(&mut self, report: ReadinessReport) {
        let now = self.clock.now();
        for d in crate::core::readiness::changes(self.readiness.as_ref(), &report, now) {
            info!(reason = d.reason.label(), "{}: {}", d.summary, d.reason);
            if let Err(e) = self.journal.record(
                &self.policy.service,
                &self.source,
                "readiness_changed",
                &format!("{}: {}", d.summary, d.reason),
                now,
            ) {
                error!("could not journal a readiness change: {e}");
            }
            self.alerts.send(&d);
        }
        self.observer.readiness(&report);
        self.readiness = Some(report);
    }

    /// A probe's loop crashed and was restarted: logged each time; journaled and alerted
    /// at the first crash in a row, then at the 10th, 100th… so that a probe crashing
    /// every round neither floods the channels nor fills the journal.
    pub fn probe_restarted(&mut self, r: &Restart) {
        let now = self.clock.now();
        let d = Decision {
            at: now,
            summary: format!(
                "probe `{}` in {} crashed and was restarted",
                r.probe, r.region
            ),
            reason: Reason::Note(Note::ProbeRestarted {
                probe: r.probe.clone(),
                region: r.region.clone(),
                error: r.error.clone(),
                in_a_row: r.in_a_row,
            }),
            evidence: Default::default(),
        };
        // 1, 10, 100…
        let tell = r.in_a_row > 0 && 10u32.pow(r.in_a_row.ilog10()) == r.in_a_row;
        if !tell {
            warn!(reason = d.reason.label(), "{}: {}", d.summary, d.reason);
            return;
        }
        if let Err(e) = self.journal.record(
            &self.policy.service,
            &self.source,
            "probe_restarted",
            &format!("{}: {}", d.summary, d.reason),
            now,
        ) {
            error!("could not journal a probe's restart: {e}");
        }
        self.alerts.send(&d);
    }

    fn archive(&self, run: &RunId) {
        self.observer.run_over(run);
    }

    pub fn policy(&self) -> &Arc<Policy> {
        &self.policy
    }

    pub fn journal(&self) -> &Arc<Journal> {
        &self.journal
    }

    /// Whether a run's executor session is going on in this process.
    pub fn running(&self) -> bool {
        self.running.is_some()
    }

    /// Rebuilds the controller's state from the journal (serving region, pause, runs,
    /// last decision). Returns the unfinished run, if there is one: the daemon resumes
    /// it (`resume`), the standalone CLI refuses to start another.
    ///
    /// Errors: the journal's.
    pub fn restore(&mut self) -> Result<Option<RunRecord>, JournalError> {
        self.state = restored_state(&self.policy, &self.journal, self.clock.now())?;
        Ok(self
            .journal
            .unfinished(&self.policy.service)?
            .into_iter()
            .next())
    }

    /// Steps the controller and carries out what it asks. Returns the first refusal.
    pub fn feed(&mut self, input: Input) -> Option<Hold> {
        let now = self.clock.now();
        let (state, commands) = controller::step(&self.policy, &self.state, input, now);
        self.state = state;
        self.observer.decided(&self.state);
        let mut refusal = None;
        for c in commands {
            match c {
                Command::StartRun(req) => self.start_run(req),
                Command::Record(d) => {
                    info!(reason = d.reason.label(), "{}: {}", d.summary, d.reason);
                    if let Err(e) = self.journal.record_decision(&self.policy.service, &d) {
                        error!("could not journal a decision: {e}");
                    }
                }
                Command::Alert(d) => self.alerts.send(&d),
                Command::Refuse(h) => refusal = refusal.or(Some(h)),
            }
        }
        refusal
    }

    /// Plans and starts the run the controller asked for: mints its id, records it and
    /// raises the epoch (durable before the first side effect), then drives it on a task.
    fn start_run(&mut self, req: RunRequest) {
        let t = self.clock.now();
        let run_id = RunId::generate(req.direction, t, fastrand::u16(..));
        let planned = plan::build(
            &self.policy,
            PlanRequest {
                direction: req.direction,
                from: req.from.clone(),
                to: req.to.clone(),
                run_id: run_id.clone(),
                epoch: Epoch(0),
                trigger: req.trigger.clone(),
                allow_data_loss: req.allow_data_loss,
            },
        );
        let by = if req.automatic() {
            format!("the controller ({})", self.source)
        } else {
            format!("{} via {}", operator_name(&req), self.source)
        };
        let begun = planned
            .map_err(|e| e.to_string())
            .and_then(|p| self.executor.begin(p, &by).map_err(|e| e.to_string()));
        let (plan, fence) = match begun {
            Ok(b) => b,
            Err(error) => {
                self.started = Some(Err(error.clone()));
                self.feed(Input::RunStartFailed { error });
                return;
            }
        };
        let d2d = req.detected_at.map(|d| t.since(d));
        self.observer.run_started(&req, d2d);
        self.started = Some(Ok(run_id.clone()));
        self.feed(Input::RunStarted {
            run: run_id,
            epoch: fence.epoch,
            direction: req.direction,
            to: req.to,
        });
        let executor = self.executor.clone();
        let task_plan = plan.clone();
        self.spawn(plan, async move {
            executor.drive_new(task_plan, fence, &by).await
        });
    }

    /// Takes over an unfinished run (raising the epoch) and drives it on a task.
    pub fn resume(&mut self, run_id: &RunId) {
        let (plan, fence) = match self.executor.take_over(run_id) {
            Ok(b) => b,
            Err(e) => {
                error!(run_id = %run_id, "cannot resume the unfinished run: {e}");
                self.feed(Input::RunStartFailed {
                    error: e.to_string(),
                });
                return;
            }
        };
        self.feed(Input::RunResumed {
            run: run_id.clone(),
            epoch: fence.epoch,
        });
        let executor = self.executor.clone();
        let task_plan = plan.clone();
        self.spawn(plan, async move { executor.drive(task_plan, fence).await });
    }

    /// Drives `plan` on a task; its end comes back through `Events::ended`.
    fn spawn(
        &mut self,
        plan: Plan,
        drive: impl std::future::Future<Output = Result<RunOutcome, JournalError>> + Send + 'static,
    ) {
        let (ended, run, direction) = (self.ended.clone(), plan.run_id.clone(), plan.direction);
        let task = tokio::spawn(async move {
            let result = drive.await;
            let _ = ended.send(RunEnded {
                run,
                direction,
                result,
            });
        });
        self.running = Some((task, plan));
    }

    /// The coordination backend says where this controller stands. Leading: runs and
    /// steps go through this leadership's fenced authority from now on. Following:
    /// every run and step is refused (a run this controller was driving stops at its
    /// next step, refused by its own authority, and the new leader finishes it).
    pub fn standing(&mut self, standing: Standing) {
        self.etcd_authority = None;
        let (authority, leadership): (Arc<dyn Authority>, _) = match standing {
            Standing::Leading { leadership, node } => {
                let epoch = leadership.epoch();
                let authority = Arc::new(EtcdAuthority::new(leadership, &node));
                self.etcd_authority = Some(authority.clone());
                (authority, controller::Leadership::Leading { epoch })
            }
            Standing::Following { leader } => (
                Arc::new(NotLeading {
                    leader: leader.clone(),
                }),
                controller::Leadership::Following { leader },
            ),
        };
        self.executor = self.executor.clone().authority(authority);
        self.feed(Input::Leadership(leadership));
    }

    /// A run another controller started and did not end, found in the shared record by
    /// this newly elected leader: recorded here with the plan it started with, the steps
    /// the record says ended marked so, the rest driven (a step with an intent and no
    /// outcome is checked first, and adopted when its effect is in place).
    pub fn adopt(&mut self, left: Unfinished) {
        // Only a run actually driven here stops the adoption. A phase that says a run is
        // in progress with nothing driving it is this controller's own run, restored
        // from its journal after a restart: on etcd it resumes from the shared record,
        // here (the executor goes on with the run the journal already holds).
        if self.running.is_some() {
            info!(run_id = %left.intent.run_id, "the shared record's unfinished run is already being driven here");
            return;
        }
        let controller::Leadership::Leading { epoch } = self.state.leadership else {
            return;
        };
        let plan = left.intent.plan.clone();
        let ended = left.ended_steps();
        let by = left.intent.started_by.clone();
        let started_at = left.intent.started_at;
        let from = format!(
            "{} (etcd epoch {}), at etcd epoch {epoch}",
            left.intent.node, left.intent.epoch
        );
        info!(run_id = %plan.run_id, "taking over run {} that {} started (epoch {})", plan.run_id, left.intent.node, left.intent.epoch);
        self.feed(Input::RunStarted {
            run: plan.run_id.clone(),
            epoch,
            direction: plan.direction,
            to: plan.to.clone(),
        });
        let executor = self.executor.clone();
        let task_plan = plan.clone();
        self.spawn(plan, async move {
            executor
                .adopt(task_plan, &by, started_at, &ended, &from)
                .await
        });
    }

    /// The votes an automatic failover would count now: the run's start requires each
    /// unchanged in etcd, so a vote that flips or lapses in between refuses the run.
    pub fn counted(&mut self, votes: &[CountedVote]) {
        if let Some(a) = &self.etcd_authority {
            a.counted(votes);
        }
    }

    /// The shared record's serving region (see `Input::Shared`).
    pub fn shared(&mut self, state: &SharedState) {
        self.feed(Input::Shared {
            active: state.active.clone(),
        });
    }

    /// What a run reported as it went: notices and approvals go to the controller, step
    /// ends to the observer.
    pub fn progress(&mut self, p: &Progress) {
        debug!(run_id = %p.run_id, step = p.step.as_deref().unwrap_or("-"), "{:?}: {}", p.kind, p.message);
        if let Some(notice) = &p.notice {
            self.observer.noticed(notice);
            self.feed(Input::Notice {
                run: p.run_id.clone(),
                notice: notice.clone(),
            });
        }
        match p.kind {
            ProgressKind::AwaitingApproval => {
                let why = match &p.step {
                    Some(s) => format!("step {s}: {}", p.message),
                    None => p.message.clone(),
                };
                self.feed(Input::RunWaiting {
                    run: p.run_id.clone(),
                    why,
                });
            }
            ProgressKind::Verified | ProgressKind::Skipped | ProgressKind::StepFailed => {
                let kind = self.running.as_ref().and_then(|(_, plan)| {
                    p.step
                        .as_deref()
                        .and_then(|s| plan.step(s))
                        .map(|s| s.kind())
                });
                if let (Some(step), Some(kind)) = (&p.step, kind) {
                    let outcome = match p.kind {
                        ProgressKind::Verified => "verified",
                        ProgressKind::Skipped => "skipped",
                        _ => "failed",
                    };
                    self.observer
                        .step_ended(step, kind, outcome, p.elapsed.as_secs_f64());
                }
            }
            _ => {}
        }
    }

    /// A run's executor session ended: tells the controller how.
    pub fn run_ended(&mut self, e: RunEnded) {
        let plan = self.running.take().map(|(_, plan)| plan);
        let (run, direction) = (e.run, e.direction);
        let (input, outcome) = match e.result {
            Err(err) => (
                Input::RunStartFailed {
                    error: err.to_string(),
                },
                "refused",
            ),
            Ok(RunOutcome::Completed) => {
                self.archive(&run);
                (
                    Input::RunFinished {
                        run,
                        end: RunEnd::Completed,
                    },
                    "completed",
                )
            }
            Ok(RunOutcome::Failed(steps)) => {
                self.archive(&run);
                (
                    Input::RunFinished {
                        run,
                        end: RunEnd::Failed {
                            error: joined(&steps),
                        },
                    },
                    "failed",
                )
            }
            Ok(RunOutcome::AwaitingApproval(steps)) => {
                // An approval or an abort that came while the executor was still pausing
                // found it running and left the rest to it; it has ended since without
                // seeing either. The journal says which came.
                match self.journal.run(&run).map(|r| r.status) {
                    Ok(status) if status.is_finished() => (self.ended_elsewhere(run), "superseded"),
                    Ok(crate::core::step::RunStatus::Running) => {
                        self.feed(Input::RunWaiting {
                            run: run.clone(),
                            why: joined(&steps),
                        });
                        self.resume(&run);
                        return;
                    }
                    _ => {
                        self.feed(Input::RunWaiting {
                            run,
                            why: joined(&steps),
                        });
                        return;
                    }
                }
            }
            Ok(RunOutcome::Interrupted) => return,
            Ok(RunOutcome::NotStarted(why)) => {
                let automatic = plan.as_ref().is_some_and(|p| p.trigger.automatic());
                (
                    Input::RunNotStarted {
                        run,
                        why,
                        automatic,
                    },
                    "not_started",
                )
            }
            Ok(RunOutcome::Superseded(_)) => (self.ended_elsewhere(run), "superseded"),
        };
        self.observer.run_ended(direction, outcome);
        self.feed(input);
    }

    /// The end of a run this executor stopped acting on because the journal says another
    /// executor owns it, or it was aborted: as the journal records it.
    fn ended_elsewhere(&mut self, run: RunId) -> Input {
        let rec = self.journal.run(&run).ok();
        if rec.as_ref().is_some_and(|r| r.status.is_finished()) {
            self.archive(&run);
        }
        let end = RunEnd::Superseded {
            status: rec
                .as_ref()
                .map(|r| r.status)
                .unwrap_or(crate::core::step::RunStatus::Running),
            ended_by: rec.as_ref().and_then(|r| r.ended_by.clone()),
            outcome: rec.and_then(|r| r.outcome),
        };
        Input::RunFinished { run, end }
    }

    /// Carries out an operator's request and says how it went.
    pub fn request(&mut self, req: Request) -> Reply {
        let now = self.clock.now();
        match req {
            Request::Operator {
                cmd,
                dry_run,
                expect_to,
            } => self.operator(cmd, dry_run, expect_to),
            Request::ApproveRun {
                run,
                by,
                allow_data_loss,
            } => match self.journal.approve(&run, &by, allow_data_loss, now) {
                Ok(steps) => {
                    if self.running.is_none() {
                        self.resume(&run);
                    }
                    Reply::Accepted {
                        message: format!(
                            "approved {} for run {run}; it goes on now",
                            steps.join(", ")
                        ),
                        run_id: Some(run),
                    }
                }
                Err(e) => Reply::refused_because(
                    e.to_string(),
                    Some("lifeboat status shows what waits for an approval"),
                ),
            },
            Request::AbortRun { run, by, reason } => {
                match self.journal.abort(&run, &by, &reason, now) {
                    Ok(epoch) => {
                        if self.running.is_none() {
                            // A run waiting for approval has no executor; tell the
                            // controller now. A running one stops at its next write.
                            self.archive(&run);
                            self.feed(Input::RunFinished {
                                run: run.clone(),
                                end: RunEnd::Aborted {
                                    by: by.clone(),
                                    reason: reason.clone(),
                                },
                            });
                        }
                        Reply::Accepted {
                            message: format!(
                                "run {run} aborted (fencing epoch now {epoch}); nothing was undone"
                            ),
                            run_id: Some(run),
                        }
                    }
                    Err(e) => Reply::refused_because(e.to_string(), None),
                }
            }
        }
    }

    fn operator(
        &mut self,
        cmd: OperatorCommand,
        dry_run: bool,
        expect_to: Option<RegionName>,
    ) -> Reply {
        if dry_run || expect_to.is_some() {
            let plan = match self.preview(&cmd) {
                Ok(p) => p,
                Err(refused) => return refused,
            };
            if dry_run {
                return Reply::Preview {
                    plan: Box::new(plan),
                };
            }
            if let Some(want) = expect_to
                && want != plan.to
            {
                return Reply::refused_because(
                    format!(
                        "the controller would now move the service to {}, not to {want} as the preview showed",
                        plan.to
                    ),
                    Some("look again with --dry-run, then confirm the new target"),
                );
            }
        }
        let audit = match &cmd {
            OperatorCommand::Pause { by, reason } => Some((by.clone(), "paused", reason.clone())),
            OperatorCommand::Resume { by } => Some((by.clone(), "resumed", String::new())),
            _ => None,
        };
        self.started = None;
        if let Some(hold) = self.feed(Input::Operator(cmd)) {
            return Reply::refused(hold);
        }
        if let Some((by, action, detail)) = audit
            && let Err(e) =
                self.journal
                    .record(&self.policy.service, &by, action, &detail, self.clock.now())
        {
            return Reply::refused_because(
                format!("could not record it in the journal: {e}"),
                None,
            );
        }
        match self.started.take() {
            Some(Ok(run)) => Reply::Accepted {
                message: self
                    .state
                    .last_decision
                    .as_ref()
                    .map(|d| format!("{}: {}", d.summary, d.reason))
                    .unwrap_or_default(),
                run_id: Some(run),
            },
            Some(Err(error)) => Reply::refused(Hold::StartRefused { error }),
            None => Reply::Accepted {
                message: self
                    .state
                    .last_decision
                    .as_ref()
                    .map(|d| d.summary.clone())
                    .unwrap_or_else(|| "done".to_string()),
                run_id: None,
            },
        }
    }

    /// The plan an operator's failover or failback would run now, as the controller
    /// would choose it (target included), or the refusal. Changes nothing.
    pub fn preview(&self, cmd: &OperatorCommand) -> Result<Plan, Reply> {
        let now = self.clock.now();
        let req =
            controller::preview(&self.policy, &self.state, cmd, now).map_err(Reply::refused)?;
        plan::build(
            &self.policy,
            PlanRequest {
                direction: req.direction,
                from: req.from,
                to: req.to,
                run_id: RunId("preview".into()),
                epoch: Epoch(0),
                trigger: req.trigger,
                allow_data_loss: req.allow_data_loss,
            },
        )
        .map_err(|e| Reply::refused_because(e.to_string(), None))
    }

    /// Stops driving: the executor starts no new step and the running one ends at a
    /// journaled point; waits for it.
    pub async fn shutdown(&mut self, cancel: &Cancel) {
        cancel.cancel();
        if let Some((task, _)) = self.running.take() {
            info!("waiting for the running step to reach a journaled point");
            let _ = task.await;
        }
    }
}

fn operator_name(req: &RunRequest) -> String {
    match &req.trigger {
        crate::core::reason::Trigger::Operator { by, .. } => by.clone(),
        other => other.label().to_string(),
    }
}

fn joined(steps: &[(String, String)]) -> String {
    steps
        .iter()
        .map(|(s, m)| format!("step {s}: {m}"))
        .collect::<Vec<_>>()
        .join("; ")
}
