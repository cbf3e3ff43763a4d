//! The daemon's event loop: one owner of the controller state, fed by a closed set of
//! events (ticks, probe observations, run progress and results, operator requests,
//! shutdown). Every trigger of every decision passes through `handle`.

use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};
use tracing::{error, info};

use super::metrics::Metrics;
use super::status::{self, StatusView};
use crate::core::controller::{
    self, Clock, Command, Input, OperatorCommand, Pause, RunOutcome as CtlOutcome, RunRequest,
    State,
};
use crate::core::health::{HealthTracker, Observation, Verdict};
use crate::core::ids::{Epoch, RunId};
use crate::core::model::{Direction, Policy, RegionName};
use crate::core::plan::{self, PlanRequest};
use crate::core::reason::Reason;
use crate::core::step::RunStatus;
use crate::core::summary::{LinkMemory, summarize};
use crate::core::time::Ts;
use crate::journal::{Journal, JournalError};
use crate::runbook::{Cancel, Executor, Progress, ProgressKind, RunOutcome};

/// Everything that can make the controller do something.
#[derive(Debug)]
pub enum Event {
    Tick,
    Observed(Observation),
    Progress(Progress),
    RunEnded {
        run: RunId,
        direction: Direction,
        result: Result<RunOutcome, JournalError>,
    },
    Request(Request, oneshot::Sender<Reply>),
    /// A witness's answer, or why it gave none.
    Witness(super::witness::Poll),
    Shutdown,
}

/// An operator's request through the API.
#[derive(Debug)]
pub enum Request {
    Operator(OperatorCommand),
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

/// The answer to a request.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum Reply {
    Accepted {
        message: String,
        run_id: Option<RunId>,
    },
    Refused {
        message: String,
        next_step: Option<String>,
    },
}

pub struct Engine {
    pub policy: Arc<Policy>,
    pub journal: Arc<Journal>,
    pub executor: Executor,
    pub cancel: Cancel,
    pub tracker: HealthTracker,
    pub links: LinkMemory,
    pub witnesses: super::witness::Witnesses,
    pub state: State,
    pub status: Arc<RwLock<StatusView>>,
    pub metrics: Arc<Metrics>,
    pub alerter: Arc<super::alerts::Alerter>,
    pub events: mpsc::Sender<Event>,
    pub started: Instant,
    pub source: String,
    /// The run this process drives, if any.
    pub running: Option<tokio::task::JoinHandle<()>>,
    /// A "no quorum" alert held back briefly: the witnesses are being asked and usually
    /// agree within a poll, and a page saying "blocked" a moment before "failing over"
    /// is noise. Sent if the block still stands when the grace ends.
    pub held_alert: Option<(Instant, controller::Decision)>,
}

pub fn now() -> Ts {
    crate::runbook::system_clock()()
}

impl Engine {
    /// Restores what the journal knows: the serving region, pause, cooldown history, and
    /// an unfinished run (resumed here, or reported when it waits for an approval).
    pub fn restore(&mut self) -> Result<(), JournalError> {
        let service = self.policy.service.clone();
        let t = now();
        self.state = restored_state(&self.policy, &self.journal, t)?;
        if let Some(run) = self.journal.unfinished(&service)?.into_iter().next() {
            let (state, _) = controller::step(
                &self.policy,
                &self.state,
                Input::RunStarted {
                    run: run.run_id.clone(),
                    epoch: run.epoch,
                    direction: run.direction,
                    to: run.to.clone(),
                },
                t,
            );
            self.state = state;
            if run.status == RunStatus::AwaitingApproval {
                let steps = self.journal.steps(&run.run_id)?;
                let why = steps
                    .into_iter()
                    .find(|s| s.state == crate::core::step::StepState::AwaitingApproval)
                    .and_then(|s| s.detail)
                    .unwrap_or_default();
                self.feed(Input::RunWaiting {
                    run: run.run_id,
                    why,
                });
            } else {
                info!(run_id = %run.run_id, "resuming the unfinished run left by a previous process");
                self.spawn_resume(run.run_id, run.direction);
            }
        }
        self.publish();
        Ok(())
    }

    /// Handles one event. Returns false when the loop should end.
    pub async fn handle(&mut self, event: Event) -> bool {
        match event {
            Event::Tick => {
                let clock = Clock {
                    wall: now(),
                    mono_ms: self.started.elapsed().as_millis() as u64,
                };
                self.feed(Input::Tick(clock));
                self.release_held_alert();
            }
            Event::Observed(obs) => {
                self.links.observe(&obs);
                self.metrics.observed(&self.policy, &obs, &self.tracker);
                let changes = self.tracker.observe(obs);
                for c in changes {
                    info!(region = %c.region, "region {} went from {} to {}", c.region, c.from, c.to);
                }
                let votes = self.votes();
                let summary =
                    summarize(&self.tracker, &self.links, &self.state.active, votes, now());
                let sees_down = summary.regions.iter().any(|r| {
                    r.region == self.state.active && matches!(r.verdict, Verdict::Down { .. })
                });
                if sees_down && votes < self.policy.guardrails.quorum {
                    self.witnesses.ask_now.notify_waiters();
                }
                self.feed(Input::Health(summary));
            }
            Event::Witness(poll) => {
                let before = self.votes();
                if let Err(e) = &poll.result {
                    tracing::debug!(witness = %poll.url, "witness did not answer: {e}");
                }
                self.witnesses.record(poll, Instant::now());
                self.metrics
                    .witnesses(&self.witnesses.views(Instant::now()));
                let votes = self.votes();
                if votes != before {
                    info!(
                        "{votes} of {} observer(s) now see {} down (quorum {})",
                        self.policy.guardrails.witnesses.len() + 1,
                        self.state.active,
                        self.policy.guardrails.quorum
                    );
                    let summary =
                        summarize(&self.tracker, &self.links, &self.state.active, votes, now());
                    self.feed(Input::Health(summary));
                }
            }
            Event::Progress(p) => self.progress(p),
            Event::RunEnded {
                run,
                direction,
                result,
            } => self.run_ended(run, direction, result),
            Event::Request(req, reply) => {
                let answer = self.request(req);
                // Refresh the view first, so a client reading status after the answer
                // sees what it just changed.
                self.publish();
                let _ = reply.send(answer);
                return true;
            }
            Event::Shutdown => return false,
        }
        self.publish();
        true
    }

    /// Steps the controller and carries out what it asks.
    fn feed(&mut self, input: Input) -> Vec<Command> {
        let (state, commands) = controller::step(&self.policy, &self.state, input, now());
        self.state = state;
        self.metrics.controller(&self.state);
        let mut refusals = Vec::new();
        for c in commands {
            match c {
                Command::StartRun(req) => self.start_run(req),
                Command::Record(d) => {
                    info!(reason = d.reason.label(), "{}: {}", d.summary, d.reason);
                    let detail = format!("{}: {}", d.summary, d.reason);
                    if let Err(e) = self.journal.record(
                        &self.policy.service,
                        "controller",
                        "decision",
                        &detail,
                        d.at,
                    ) {
                        error!("could not journal a decision: {e}");
                    }
                }
                Command::Alert(d) if matches!(d.reason, Reason::NoQuorum { .. }) => {
                    let grace = self.policy.detection.interval * 2;
                    self.held_alert = Some((Instant::now() + grace, d));
                }
                Command::Alert(d) => {
                    self.alerter
                        .send(&d.summary, &d.reason.to_string(), d.reason.next_step());
                }
                Command::Refuse(r) => refusals.push(Command::Refuse(r)),
            }
        }
        refusals
    }

    fn start_run(&mut self, req: RunRequest) {
        let t = now();
        let run_id = RunId::generate(req.direction, t, fastrand::u16(..));
        let planned = plan::build(
            &self.policy,
            PlanRequest {
                direction: req.direction,
                from: req.from.clone(),
                to: req.to.clone(),
                run_id: run_id.clone(),
                epoch: Epoch(0),
                reason: req.reason.to_string(),
                allow_data_loss: req.allow_data_loss,
            },
        );
        let plan = match planned {
            Ok(p) => p,
            Err(e) => {
                self.feed(Input::RunStartFailed {
                    error: e.to_string(),
                });
                return;
            }
        };
        if req.direction == Direction::Failover {
            let d2d = req.detected_at.map(|d| t.since(d));
            self.metrics.failover_started(req.automatic, d2d);
        }
        let by = if req.automatic {
            format!("{AUTO} ({})", self.source)
        } else {
            format!("operator via {}", self.source)
        };
        let executor = self.executor.clone();
        let events = self.events.clone();
        let direction = req.direction;
        self.running = Some(tokio::spawn(async move {
            let result = executor.start(plan, &by).await;
            let _ = events
                .send(Event::RunEnded {
                    run: run_id,
                    direction,
                    result,
                })
                .await;
        }));
    }

    fn spawn_resume(&mut self, run: RunId, direction: Direction) {
        let executor = self.executor.clone();
        let events = self.events.clone();
        self.running = Some(tokio::spawn(async move {
            let result = executor.resume(&run).await;
            let _ = events
                .send(Event::RunEnded {
                    run,
                    direction,
                    result,
                })
                .await;
        }));
    }

    fn progress(&mut self, p: Progress) {
        match p.kind {
            ProgressKind::RunStarted | ProgressKind::RunResumed => {
                if let Ok(run) = self.journal.run(&p.run_id) {
                    self.feed(Input::RunStarted {
                        run: run.run_id,
                        epoch: run.epoch,
                        direction: run.direction,
                        to: run.to,
                    });
                }
            }
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
                if p.message.contains(crate::action::NOT_FENCED) {
                    self.metrics.fence_failed();
                    // Never two writable primaries: the old one must not come back as a
                    // writer, and only a human can make sure of that now.
                    self.alerter.send(
                        "the old primary could not be fenced",
                        &p.message,
                        Some("keep the old primary's database stopped, or fence it by hand, until it is rejoined as a standby"),
                    );
                }
                if let Some(step) = &p.step {
                    let kind = self
                        .journal
                        .plan(&p.run_id)
                        .ok()
                        .and_then(|pl| pl.step(step).map(|s| s.action.kind()))
                        .unwrap_or("?");
                    let outcome = match p.kind {
                        ProgressKind::Verified => "verified",
                        ProgressKind::Skipped => "skipped",
                        _ => "failed",
                    };
                    self.metrics
                        .step_ended(step, kind, outcome, p.elapsed.as_secs_f64());
                }
            }
            _ => {}
        }
        info!(run_id = %p.run_id, step = p.step.as_deref().unwrap_or("-"), "{:?}: {}", p.kind, p.message);
    }

    fn run_ended(
        &mut self,
        run: RunId,
        direction: Direction,
        result: Result<RunOutcome, JournalError>,
    ) {
        self.running = None;
        let input = match result {
            Err(e) => {
                self.metrics.run_ended(direction.as_str(), "refused");
                Input::RunStartFailed {
                    error: e.to_string(),
                }
            }
            Ok(RunOutcome::Completed) => {
                self.metrics.run_ended(direction.as_str(), "completed");
                Input::RunFinished {
                    run,
                    outcome: CtlOutcome::Completed,
                }
            }
            Ok(RunOutcome::Failed(steps)) => {
                self.metrics.run_ended(direction.as_str(), "failed");
                let error = steps
                    .iter()
                    .map(|(s, m)| format!("step {s}: {m}"))
                    .collect::<Vec<_>>()
                    .join("; ");
                Input::RunFinished {
                    run,
                    outcome: CtlOutcome::Failed { error },
                }
            }
            Ok(RunOutcome::AwaitingApproval(steps)) => {
                let why = steps
                    .iter()
                    .map(|(s, m)| format!("step {s}: {m}"))
                    .collect::<Vec<_>>()
                    .join("; ");
                Input::RunWaiting { run, why }
            }
            Ok(RunOutcome::Interrupted) => return,
            Ok(RunOutcome::Superseded(why)) => {
                self.metrics.run_ended(direction.as_str(), "aborted");
                let rec = self.journal.run(&run).ok();
                let aborted = rec.as_ref().is_some_and(|r| r.status == RunStatus::Aborted);
                let outcome = if aborted {
                    CtlOutcome::Aborted {
                        by: "an operator".into(),
                        reason: rec.and_then(|r| r.outcome).unwrap_or(why),
                    }
                } else {
                    CtlOutcome::Failed {
                        error: format!("another executor took the run over: {why}"),
                    }
                };
                Input::RunFinished { run, outcome }
            }
        };
        self.feed(input);
    }

    fn request(&mut self, req: Request) -> Reply {
        let t = now();
        match req {
            Request::Operator(cmd) => {
                let audit = match &cmd {
                    OperatorCommand::Pause { by, reason } => {
                        Some((by.clone(), "paused", reason.clone()))
                    }
                    OperatorCommand::Resume { by } => Some((by.clone(), "resumed", String::new())),
                    _ => None,
                };
                let before = self.state.phase.clone();
                let refusals = self.feed(Input::Operator(cmd));
                if let Some(Command::Refuse(r)) = refusals.into_iter().next() {
                    return Reply::Refused {
                        message: r.to_string(),
                        next_step: r.next_step().map(str::to_string),
                    };
                }
                if let Some((by, action, detail)) = audit
                    && let Err(e) =
                        self.journal
                            .record(&self.policy.service, &by, action, &detail, t)
                {
                    return Reply::Refused {
                        message: format!("could not record it in the journal: {e}"),
                        next_step: None,
                    };
                }
                let started = !matches!(before, controller::Phase::Starting { .. })
                    && matches!(self.state.phase, controller::Phase::Starting { .. });
                let message = if started {
                    match &self.state.phase {
                        controller::Phase::Starting { request, .. } => format!(
                            "{} {} → {} is starting",
                            request.direction, request.from, request.to
                        ),
                        _ => String::new(),
                    }
                } else {
                    self.state
                        .last_decision
                        .as_ref()
                        .map(|d| d.summary.clone())
                        .unwrap_or_else(|| "done".to_string())
                };
                Reply::Accepted {
                    message,
                    run_id: None,
                }
            }
            Request::ApproveRun {
                run,
                by,
                allow_data_loss,
            } => match self.journal.approve(&run, &by, allow_data_loss, t) {
                Ok(steps) => {
                    if self.running.is_none() {
                        let direction = self
                            .journal
                            .run(&run)
                            .map(|r| r.direction)
                            .unwrap_or(Direction::Failover);
                        self.spawn_resume(run.clone(), direction);
                    }
                    Reply::Accepted {
                        message: format!(
                            "approved {} for run {run}; it goes on now",
                            steps.join(", ")
                        ),
                        run_id: Some(run),
                    }
                }
                Err(e) => Reply::Refused {
                    message: e.to_string(),
                    next_step: Some("lifeboat status shows what waits for an approval".into()),
                },
            },
            Request::AbortRun { run, by, reason } => {
                match self.journal.abort(&run, &by, &reason, t) {
                    Ok(epoch) => {
                        if self.running.is_none() {
                            // A run waiting for approval has no executor; tell the controller now.
                            self.feed(Input::RunFinished {
                                run: run.clone(),
                                outcome: CtlOutcome::Aborted {
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
                    Err(e) => Reply::Refused {
                        message: e.to_string(),
                        next_step: None,
                    },
                }
            }
        }
    }

    /// Refreshes the shared status view the API serves.
    pub fn publish(&self) {
        let last_run = self.journal.runs(1).ok().and_then(|mut r| r.pop());
        let view = status::build(
            &self.policy,
            &self.state,
            &self.tracker,
            &self.links,
            last_run,
            now(),
            self.source.clone(),
        );
        let view = StatusView {
            witnesses: self.witnesses.views(Instant::now()),
            ..view
        };
        if let Ok(mut s) = self.status.write() {
            *s = view;
        }
    }

    /// Stops driving: no new step starts; the running one ends at a journaled point.
    pub async fn shutdown(&mut self) {
        self.cancel.cancel();
        if let Some(task) = self.running.take() {
            info!("waiting for the running step to reach a journaled point");
            let _ = task.await;
        }
    }

    /// Sends the held "no quorum" alert once its grace is over, if the controller is still
    /// blocked for want of a quorum; drops it if the block ended meanwhile.
    fn release_held_alert(&mut self) {
        let still_blocked = matches!(
            &self.state.phase,
            controller::Phase::Blocked {
                reason: Reason::NoQuorum { .. },
                ..
            }
        );
        match &self.held_alert {
            None => {}
            Some(_) if !still_blocked => self.held_alert = None,
            Some((until, _)) if Instant::now() < *until => {}
            Some(_) => {
                if let Some((_, d)) = self.held_alert.take() {
                    self.alerter
                        .send(&d.summary, &d.reason.to_string(), d.reason.next_step());
                }
            }
        }
    }

    /// The observers that see the serving region down: this one (the controller only
    /// counts votes when it sees the outage itself) and every witness that agrees.
    fn votes(&self) -> u32 {
        1 + self.witnesses.agreeing(&self.state.active, Instant::now())
    }

    pub fn active(&self) -> &RegionName {
        &self.state.active
    }
}

/// The controller's state as the journal remembers it: the serving region, an operator's
/// pause, and the switches that count toward the cooldown and the per-window limit.
pub fn restored_state(policy: &Policy, journal: &Journal, t: Ts) -> Result<State, JournalError> {
    let service = &policy.service;
    let active = journal
        .service_state(service)?
        .map(|s| s.active_region)
        .unwrap_or_else(|| policy.regions.primary.clone());
    let mut state = State::new(policy, active, t);
    if let Some(p) = journal.latest_record(service, &["paused", "resumed"])?
        && p.action == "paused"
    {
        state.paused = Some(Pause {
            by: p.actor,
            reason: p.detail,
            since: p.at,
        });
    }
    let window = policy.guardrails.failover_window;
    for run in journal.runs(200)? {
        if run.status == RunStatus::Completed
            && let Some(f) = run.finished_at
        {
            state.last_switch = Some(state.last_switch.map_or(f, |l| l.max(f)));
        }
        if run.direction == Direction::Failover
            && run.started_by.starts_with(AUTO)
            && t.since(run.created_at) < window
        {
            state.auto_failovers.push(run.created_at);
        }
    }
    Ok(state)
}

/// How automatic runs are marked in the journal's `started_by`, so the per-window limit
/// survives restarts.
pub const AUTO: &str = "lifeboat controller (automatic)";

/// How often the loop ticks: often enough to notice a stall well within the tolerance.
pub fn tick_every(policy: &Policy) -> Duration {
    (policy.detection.interval / 2).clamp(Duration::from_millis(200), Duration::from_secs(5))
}
