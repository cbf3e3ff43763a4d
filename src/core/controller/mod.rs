//! The failover state machine of one protected service: `step(policy, state, input, now)
//! -> (state, commands)`. Pure; the driver feeds it health snapshots, ticks, run results,
//! notices and operator commands, and carries out the commands it returns.
//!
//! Every decision, including "not failing over", carries a `Reason` and the `Evidence`
//! behind it, recorded when the state changes, so `lifeboat status` and the journal can
//! always say why.

use serde::{Deserialize, Serialize};

mod guard;
mod io;
mod operator;
mod restore;

pub use io::*;
pub use restore::{Memory, RunFact, restore};
#[cfg(test)]
mod tests;

use guard::{automatic_failover, failback_ready, pick_target};
use operator::operator;
pub use operator::preview;

use super::ids::{Epoch, RunId};
use super::model::{Direction, Mode, Policy, RegionName};
use super::reason::{FreezeCause, Hold, Note, Notice, Reason, Trigger};
use super::step::RunStatus;
use super::time::Ts;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case", tag = "phase")]
pub enum Phase {
    /// Serving from the primary region, which is healthy.
    Primary,
    /// Serving from the primary; some critical probe is failing, below the threshold.
    Suspect { failures: u32, since: Ts },
    /// A run was requested; waiting for the journal to accept it.
    Starting { request: RunRequest, at: Ts },
    FailingOver {
        run: RunId,
        epoch: Epoch,
        to: RegionName,
        started: Ts,
        waiting: Option<String>,
    },
    /// Serving from a secondary; watching the primary for recovery.
    OnSecondary { since: Ts },
    FailingBack {
        run: RunId,
        epoch: Epoch,
        started: Ts,
        waiting: Option<String>,
    },
    /// A guardrail or a failed run stopped the controller from acting.
    Blocked { hold: Hold, since: Ts },
}

impl Phase {
    pub fn name(&self) -> &'static str {
        match self {
            Phase::Primary => "primary",
            Phase::Suspect { .. } => "suspect",
            Phase::Starting { .. } => "starting",
            Phase::FailingOver { .. } => "failing_over",
            Phase::OnSecondary { .. } => "on_secondary",
            Phase::FailingBack { .. } => "failing_back",
            Phase::Blocked { .. } => "blocked",
        }
    }

    pub fn run_in_progress(&self) -> bool {
        matches!(
            self,
            Phase::Starting { .. } | Phase::FailingOver { .. } | Phase::FailingBack { .. }
        )
    }

    /// The run the controller is driving, if any.
    pub fn run(&self) -> Option<&RunId> {
        match self {
            Phase::FailingOver { run, .. } | Phase::FailingBack { run, .. } => Some(run),
            _ => None,
        }
    }

    fn blocked_by(&self, f: impl Fn(&Hold) -> bool) -> bool {
        matches!(self, Phase::Blocked { hold, .. } if f(hold))
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Pause {
    pub by: String,
    pub reason: String,
    pub since: Ts,
}

/// An alert kept back until `until`, sent then if its hold still stands (see `block`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct HeldAlert {
    pub until: Ts,
    pub decision: Decision,
}

/// Everything the controller remembers between inputs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct State {
    pub phase: Phase,
    /// The region serving traffic now.
    pub active: RegionName,
    /// Automatic failovers started, for the per-window limit.
    pub auto_failovers: Vec<Ts>,
    /// When the last run (either direction) completed: the cooldown starts there, since
    /// a quick failback followed by another failover is flapping too.
    pub last_switch: Option<Ts>,
    pub frozen_until: Option<(Ts, FreezeCause)>,
    pub last_tick: Option<ClockReading>,
    /// Set by an operator: observe, decide nothing automatically.
    pub paused: Option<Pause>,
    /// The newest decision, for `status`.
    pub last_decision: Option<Decision>,
    /// The newest health snapshot; operator commands are judged against it.
    pub health: Option<HealthSummary>,
    /// Whether this controller may act (the coordination backend's word).
    #[serde(default)]
    pub leadership: Leadership,
    /// A "no quorum" alert kept back for two intervals: the witnesses are being asked
    /// and usually agree within a poll, and a page saying "blocked" a moment before
    /// "failing over" is noise. A tick releases it if the hold still stands.
    #[serde(default)]
    pub held_alert: Option<HeldAlert>,
}

impl State {
    /// The state at startup with nothing remembered but the serving region.
    pub fn new(policy: &Policy, active: RegionName, now: Ts) -> State {
        let phase = if active == policy.regions.primary {
            Phase::Primary
        } else {
            Phase::OnSecondary { since: now }
        };
        State {
            phase,
            active,
            auto_failovers: Vec::new(),
            last_switch: None,
            frozen_until: None,
            last_tick: None,
            paused: None,
            last_decision: None,
            health: None,
            leadership: Leadership::Sole,
            held_alert: None,
        }
    }

    /// What `status` shows as the state: `paused` overrides the phase's name.
    pub fn display_name(&self) -> &'static str {
        if self.paused.is_some() {
            "paused"
        } else {
            self.phase.name()
        }
    }

    /// The phase to return to when nothing is in progress or blocked.
    fn resting(&self, policy: &Policy, now: Ts) -> Phase {
        if self.active == policy.regions.primary {
            Phase::Primary
        } else {
            Phase::OnSecondary { since: now }
        }
    }
}

/// Advances the state machine by one input. Never panics; unexpected inputs (a result
/// for an unknown run) are recorded and otherwise ignored.
pub fn step(policy: &Policy, state: &State, input: Input, now: Ts) -> (State, Vec<Command>) {
    let mut s = state.clone();
    let mut out = Vec::new();
    match input {
        Input::Tick(clock) => tick(policy, &mut s, clock, now, &mut out),
        Input::Health(snap) => health(policy, &mut s, &snap, now, &mut out),
        Input::RunStarted {
            run,
            epoch,
            direction,
            to,
        } => {
            s.phase = match direction {
                Direction::Failover => Phase::FailingOver {
                    run: run.clone(),
                    epoch,
                    to: to.clone(),
                    started: now,
                    waiting: None,
                },
                Direction::Failback => Phase::FailingBack {
                    run: run.clone(),
                    epoch,
                    started: now,
                    waiting: None,
                },
            };
            let summary = "run started".to_string();
            let ev = Evidence {
                target: Some(to.clone()),
                ..Evidence::default()
            };
            let note = Note::RunStarted {
                run,
                epoch,
                direction,
                to,
            };
            record(
                &mut s,
                &mut out,
                now,
                summary,
                Reason::Note(note),
                ev,
                false,
            );
        }
        Input::RunResumed { run, epoch } => {
            match &mut s.phase {
                Phase::FailingOver {
                    run: r,
                    epoch: e,
                    waiting,
                    ..
                }
                | Phase::FailingBack {
                    run: r,
                    epoch: e,
                    waiting,
                    ..
                } if *r == run => {
                    *e = epoch;
                    *waiting = None;
                }
                _ => {}
            }
            let summary = "run resumed".to_string();
            let note = Reason::Note(Note::RunResumed { run, epoch });
            record(
                &mut s,
                &mut out,
                now,
                summary,
                note,
                Evidence::default(),
                false,
            );
        }
        Input::RunStartFailed { error } => {
            let ev = evidence(policy, &s, None, None);
            block(
                policy,
                &mut s,
                &mut out,
                now,
                Hold::StartRefused { error },
                ev,
            );
        }
        Input::RunNotStarted {
            run,
            why,
            automatic,
        } => {
            let failover = matches!(&s.phase, Phase::FailingOver { run: r, .. } if *r == run);
            let ours =
                failover || matches!(&s.phase, Phase::FailingBack { run: r, .. } if *r == run);
            if ours {
                s.phase = s.resting(policy, now);
            }
            if failover && automatic {
                // One run at a time: the newest automatic failover is this attempt.
                s.auto_failovers.pop();
            }
            let summary = "run not started; deciding again".to_string();
            let note = Reason::Note(Note::RunNotStarted { run, why });
            record(
                &mut s,
                &mut out,
                now,
                summary,
                note,
                Evidence::default(),
                false,
            );
        }
        Input::RunWaiting { run, why } => {
            let waiting_on = match &mut s.phase {
                Phase::FailingOver {
                    run: r, waiting, ..
                }
                | Phase::FailingBack {
                    run: r, waiting, ..
                } if *r == run => waiting,
                _ => return (s, out),
            };
            *waiting_on = Some(why.clone());
            let hold = Hold::AwaitingApproval { run, why };
            let summary = "waiting for an approval".to_string();
            record(
                &mut s,
                &mut out,
                now,
                summary,
                Reason::Hold(hold),
                Evidence::default(),
                true,
            );
        }
        Input::RunFinished { run, end } => finished(policy, &mut s, run, end, now, &mut out),
        Input::Notice { run, notice } => {
            let summary = match &notice {
                Notice::OldPrimaryNotFenced { .. } => "the old primary could not be fenced",
            };
            let note = Note::Notice { run, notice };
            let summary = summary.to_string();
            let ev = Evidence::default();
            record(&mut s, &mut out, now, summary, Reason::Note(note), ev, true);
        }
        Input::Operator(cmd) => operator(policy, &mut s, cmd, now, &mut out),
        Input::Leadership(l) => leadership(policy, &mut s, l, now, &mut out),
        Input::Shared { active } => shared(policy, &mut s, active, now, &mut out),
    }
    (s, out)
}

/// The shared record says another region serves (a run another controller completed):
/// follow it, unless this controller is driving a run, whose end moves it anyway.
fn shared(policy: &Policy, s: &mut State, active: RegionName, now: Ts, out: &mut Vec<Command>) {
    if s.active == active
        || s.phase.run_in_progress()
        || !policy.regions.serving().any(|r| *r == active)
    {
        return;
    }
    let from = std::mem::replace(&mut s.active, active.clone());
    if !s.phase.blocked_by(Hold::sticky) {
        s.phase = s.resting(policy, now);
    }
    let summary = format!("serving region {active} (was {from}), from the shared record");
    let note = Reason::Note(Note::SharedActive { region: active });
    record(s, out, now, summary, note, Evidence::default(), false);
}

/// The coordination backend changed who leads. A newly elected controller acts from
/// its next health snapshot on; one that lost the lead stops starting anything (a run it
/// was driving is finished by the new leader).
fn leadership(policy: &Policy, s: &mut State, l: Leadership, now: Ts, out: &mut Vec<Command>) {
    if s.leadership == l {
        return;
    }
    let note = match &l {
        Leadership::Leading { epoch } => Some(Note::Elected { epoch: *epoch }),
        Leadership::Following { leader } => Some(Note::Following {
            leader: leader.clone(),
        }),
        Leadership::Sole => None,
    };
    let was_leading = s.leadership.leads();
    s.leadership = l;
    if let Some(n) = note {
        let summary = match &n {
            Note::Elected { .. } => "elected leader",
            _ => "following",
        };
        record(
            s,
            out,
            now,
            summary.to_string(),
            Reason::Note(n),
            Evidence::default(),
            false,
        );
    }
    if s.leadership.leads() && s.phase.blocked_by(|h| matches!(h, Hold::NotLeader { .. })) {
        s.phase = s.resting(policy, now);
    }
    if was_leading && !s.leadership.leads() && !s.phase.run_in_progress() {
        let leader = match &s.leadership {
            Leadership::Following { leader } => leader.clone(),
            _ => None,
        };
        s.phase = Phase::Blocked {
            hold: Hold::NotLeader { leader },
            since: now,
        };
    }
}

pub(super) fn record(
    s: &mut State,
    out: &mut Vec<Command>,
    at: Ts,
    summary: String,
    reason: Reason,
    evidence: Evidence,
    alert: bool,
) {
    let d = Decision {
        at,
        summary,
        reason,
        evidence,
    };
    if alert {
        out.push(Command::Alert(d.clone()));
    }
    out.push(Command::Record(d.clone()));
    s.last_decision = Some(d);
}

/// The evidence of a decision taken on the latest snapshot: the serving region's failing
/// probes, the observers' votes, the candidate target's lag, and the deciding guardrail.
fn evidence(
    policy: &Policy,
    s: &State,
    target: Option<&RegionName>,
    hold: Option<&Hold>,
) -> Evidence {
    let snap = s.health.as_ref();
    Evidence {
        failing: snap
            .and_then(|h| h.get(&s.active))
            .map(|r| r.failing.clone())
            .unwrap_or_default(),
        observers: snap.map(|h| h.observers.clone()).unwrap_or_default(),
        quorum: Some(policy.guardrails.quorum),
        lag: target.map(|t| io::LagEvidence {
            region: t.clone(),
            lag: snap.and_then(|h| h.get(t)).and_then(|r| r.replica_lag),
            budget: policy.guardrails.rpo_budget,
        }),
        guardrail: hold
            .filter(|h| h.is_guardrail())
            .map(|h| h.label().to_string()),
        target: target.cloned(),
    }
}

/// Enters `Blocked`, recording and alerting only when the hold changed, so a guardrail
/// that holds for an hour is one line in the journal, not thousands.
///
/// The "no quorum" alert is held back two intervals (see `State::held_alert`).
fn block(
    policy: &Policy,
    s: &mut State,
    out: &mut Vec<Command>,
    now: Ts,
    hold: Hold,
    ev: Evidence,
) {
    if let Phase::Blocked { hold: current, .. } = &s.phase
        && std::mem::discriminant(current) == std::mem::discriminant(&hold)
    {
        let since = match &s.phase {
            Phase::Blocked { since, .. } => *since,
            _ => now,
        };
        s.phase = Phase::Blocked { hold, since };
        return;
    }
    let quiet = matches!(hold, Hold::Paused { .. } | Hold::ModeShadow);
    let deferred = matches!(hold, Hold::NoQuorum { .. });
    s.phase = Phase::Blocked {
        hold: hold.clone(),
        since: now,
    };
    let summary = "blocked".to_string();
    record(
        s,
        out,
        now,
        summary,
        Reason::Hold(hold),
        ev,
        !quiet && !deferred,
    );
    if deferred && let Some(d) = s.last_decision.clone() {
        s.held_alert = Some(HeldAlert {
            until: now.plus(policy.detection.interval * 2),
            decision: d,
        });
    }
}

fn tick(policy: &Policy, s: &mut State, clock: ClockReading, now: Ts, out: &mut Vec<Command>) {
    let tolerance = policy.guardrails.clock_jump_tolerance;
    if let Some(prev) = s.last_tick {
        let mono = clock.mono_ms.saturating_sub(prev.mono_ms) as i128;
        let wall = clock.wall.as_millis() as i128 - prev.wall.as_millis() as i128;
        let cause = if (wall - mono).unsigned_abs() > tolerance.as_millis() {
            Some(FreezeCause::ClockJump)
        } else if mono as u128 > tolerance.as_millis() {
            Some(FreezeCause::LoopStall)
        } else {
            None
        };
        if let Some(cause) = cause {
            let until = now.plus(policy.guardrails.freeze_for);
            s.frozen_until = Some((until, cause));
            let hold = Hold::Frozen { until, cause };
            let ev = evidence(policy, s, None, Some(&hold));
            let summary = "froze automatic decisions".to_string();
            record(s, out, now, summary, Reason::Hold(hold), ev, true);
        }
    }
    s.last_tick = Some(clock);
    if let Some((until, _)) = s.frozen_until
        && now >= until
    {
        s.frozen_until = None;
        if s.phase.blocked_by(|h| matches!(h, Hold::Frozen { .. })) {
            s.phase = s.resting(policy, now);
        }
        let summary = "automatic decisions resumed after the freeze".to_string();
        let note = Reason::Note(Note::FreezeOver);
        record(s, out, now, summary, note, Evidence::default(), false);
    }
    release_held_alert(s, now, out);
}

/// Sends the held "no quorum" alert once its time comes, if the controller is still
/// blocked for want of a quorum; drops it if the block ended meanwhile.
fn release_held_alert(s: &mut State, now: Ts, out: &mut Vec<Command>) {
    let Some(held) = &s.held_alert else { return };
    let still = s.phase.blocked_by(|h| matches!(h, Hold::NoQuorum { .. }));
    if !still {
        s.held_alert = None;
    } else if now >= held.until
        && let Some(h) = s.held_alert.take()
    {
        out.push(Command::Alert(h.decision));
    }
}

fn health(policy: &Policy, s: &mut State, snap: &HealthSummary, now: Ts, out: &mut Vec<Command>) {
    s.health = Some(snap.clone());
    if s.phase.run_in_progress() {
        return;
    }
    if s.phase.blocked_by(Hold::sticky) {
        return;
    }
    if let Leadership::Following { leader } = &s.leadership {
        // A follower watches; its own view still reaches `status` through `s.health`.
        let hold = Hold::NotLeader {
            leader: leader.clone(),
        };
        block(policy, s, out, now, hold, Evidence::default());
        return;
    }
    if snap.isolated() {
        let hold = Hold::ObserverIsolated;
        let ev = evidence(policy, s, None, Some(&hold));
        block(policy, s, out, now, hold, ev);
        return;
    }
    let Some(active) = snap.get(&s.active).cloned() else {
        return;
    };
    if s.active != policy.regions.primary {
        on_secondary(policy, s, snap, &active, now, out);
        return;
    }
    match active.verdict {
        // Isolation was handled above; the arm keeps the match total.
        Verdict::Healthy
        | Verdict::Recovering { .. }
        | Verdict::Unknown
        | Verdict::ObserverIsolated { .. } => {
            if matches!(s.phase, Phase::Blocked { .. }) {
                let summary = format!("{} is healthy again; nothing to do", s.active);
                let note = Note::Recovered {
                    region: s.active.clone(),
                };
                record(
                    s,
                    out,
                    now,
                    summary,
                    Reason::Note(note),
                    Evidence::default(),
                    false,
                );
            }
            s.phase = Phase::Primary;
        }
        Verdict::Suspect { failures } => {
            let since = match s.phase {
                Phase::Suspect { since, .. } => since,
                _ => now,
            };
            // A guardrail held a failover and the region is no longer down.
            s.phase = Phase::Suspect { failures, since };
        }
        Verdict::Down { since } => {
            let why = Trigger::RegionDown {
                region: s.active.clone(),
                since,
                failures: policy.detection.failure_threshold,
            };
            let candidate = pick_target(policy, s, snap, None).ok();
            match automatic_failover(policy, s, snap, now) {
                Ok(to) => {
                    let request = RunRequest {
                        direction: Direction::Failover,
                        from: s.active.clone(),
                        to,
                        trigger: why,
                        allow_data_loss: false,
                        detected_at: Some(since),
                    };
                    start(policy, s, out, request, now);
                }
                Err(Hold::ModeShadow) => {
                    if !s.phase.blocked_by(|h| *h == Hold::ModeShadow) {
                        s.phase = Phase::Blocked {
                            hold: Hold::ModeShadow,
                            since: now,
                        };
                        let to = candidate.clone().unwrap_or_else(|| s.active.clone());
                        let ev = evidence(policy, s, Some(&to), Some(&Hold::ModeShadow));
                        let summary = "shadow mode: not acting".to_string();
                        let note = Note::WouldStart {
                            direction: Direction::Failover,
                            to,
                            because: why,
                        };
                        record(s, out, now, summary, Reason::Note(note), ev, false);
                    }
                }
                Err(hold) => {
                    let ev = evidence(policy, s, candidate.as_ref(), Some(&hold));
                    block(policy, s, out, now, hold, ev);
                }
            }
        }
    }
}

pub(super) fn start(
    policy: &Policy,
    s: &mut State,
    out: &mut Vec<Command>,
    request: RunRequest,
    now: Ts,
) {
    let automatic = request.automatic();
    if automatic && request.direction == Direction::Failover {
        s.auto_failovers.push(now);
    }
    let how = if automatic {
        "automatically"
    } else {
        "on request"
    };
    let summary = format!(
        "starting {} {} → {} {how}",
        request.direction, request.from, request.to
    );
    let ev = evidence(policy, s, Some(&request.to), None);
    let reason = Reason::Trigger(request.trigger.clone());
    record(s, out, now, summary, reason, ev, automatic);
    s.held_alert = None;
    out.push(Command::StartRun(request.clone()));
    s.phase = Phase::Starting { request, at: now };
}

fn on_secondary(
    policy: &Policy,
    s: &mut State,
    snap: &HealthSummary,
    active: &RegionSummary,
    now: Ts,
    out: &mut Vec<Command>,
) {
    if let Verdict::Down { .. } = active.verdict {
        let hold = Hold::ActiveRegionDown {
            region: s.active.clone(),
        };
        let ev = evidence(policy, s, None, None);
        block(policy, s, out, now, hold, ev);
        return;
    }
    if matches!(s.phase, Phase::Blocked { .. }) {
        s.phase = Phase::OnSecondary { since: now };
    }
    if !policy.guardrails.auto_failback || s.paused.is_some() || policy.detection.mode != Mode::Auto
    {
        return;
    }
    if s.frozen_until.is_some_and(|(until, _)| now < until) {
        return;
    }
    if s.last_switch
        .is_some_and(|t| now < t.plus(policy.guardrails.cooldown))
    {
        return;
    }
    if let Ok(healthy_for) = failback_ready(policy, snap, now) {
        let request = RunRequest {
            direction: Direction::Failback,
            from: s.active.clone(),
            to: policy.regions.primary.clone(),
            trigger: Trigger::PrimaryRecovered {
                region: policy.regions.primary.clone(),
                healthy_for,
            },
            allow_data_loss: false,
            detected_at: None,
        };
        start(policy, s, out, request, now);
    }
}

fn finished(
    policy: &Policy,
    s: &mut State,
    run: RunId,
    end: RunEnd,
    now: Ts,
    out: &mut Vec<Command>,
) {
    let (direction, to) = match &s.phase {
        Phase::FailingOver { run: r, to, .. } if *r == run => (Direction::Failover, to.clone()),
        Phase::FailingBack { run: r, .. } if *r == run => {
            (Direction::Failback, policy.regions.primary.clone())
        }
        _ => {
            let summary = "ignored a run result".to_string();
            let note = Reason::Note(Note::StaleResult { run });
            record(s, out, now, summary, note, Evidence::default(), false);
            return;
        }
    };
    let ev = Evidence {
        target: Some(to.clone()),
        ..Evidence::default()
    };
    if matches!(end, RunEnd::Superseded { .. }) && s.leadership != Leadership::Sole {
        // With several controllers, a newer epoch is another controller that took the
        // run over: it finishes it. Nothing here needs a person.
        s.phase = Phase::Blocked {
            hold: Hold::NotLeader { leader: None },
            since: now,
        };
        let note = Reason::Note(Note::HandedOver { run });
        record(s, out, now, "run handed over".to_string(), note, ev, false);
        return;
    }
    match superseded(end) {
        RunEnd::Completed => {
            s.active = to.clone();
            s.last_switch = Some(now);
            s.phase = s.resting(policy, now);
            let summary = format!("{direction} completed");
            let note = Note::RunCompleted { run, direction, to };
            record(s, out, now, summary, Reason::Note(note), ev, true);
        }
        RunEnd::Failed { error } => block(policy, s, out, now, Hold::RunFailed { run, error }, ev),
        RunEnd::Aborted { by, reason } => block(
            policy,
            s,
            out,
            now,
            Hold::RunAborted { run, by, reason },
            ev,
        ),
        // `superseded` maps these away.
        RunEnd::Superseded { .. } => {}
    }
}

/// What a superseded run means: the journal refused the executor because a newer epoch
/// exists. If an operator aborted the run, it ended aborted; otherwise another executor
/// took it over, and this controller stopped driving it, which it must treat as a
/// failure a person looks at.
fn superseded(end: RunEnd) -> RunEnd {
    match end {
        RunEnd::Superseded {
            status: RunStatus::Aborted,
            ended_by,
            outcome,
        } => RunEnd::Aborted {
            by: ended_by.unwrap_or_else(|| "an operator".to_string()),
            reason: outcome.unwrap_or_else(|| "no reason recorded".to_string()),
        },
        RunEnd::Superseded { status, .. } => RunEnd::Failed {
            error: format!(
                "another executor took the run over (the journal shows it {status}); this controller stopped driving it"
            ),
        },
        other => other,
    }
}
