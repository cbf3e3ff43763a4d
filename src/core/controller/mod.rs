//! The failover state machine of one protected service: `step(policy, state, input, now)
//! -> (state, commands)`. Pure; the daemon feeds it health snapshots, ticks, run results
//! and operator commands, and carries out the commands it returns.
//!
//! Every decision, including "not failing over", carries a `Reason`, recorded when the
//! state changes, so `lifeboat status` and the journal can always say why.

use serde::{Deserialize, Serialize};

mod guard;
mod io;
mod operator;

pub use io::*;
#[cfg(test)]
mod tests;

use guard::{automatic_failover, failback_ready, pick_target};
use operator::operator;

use super::ids::{Epoch, RunId};
use super::model::{Direction, Mode, Policy, RegionName};
use super::reason::{FreezeCause, Reason};
use super::time::Ts;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
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
    Blocked { reason: Reason, since: Ts },
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
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Pause {
    pub by: String,
    pub reason: String,
    pub since: Ts,
}

/// Everything the controller remembers between inputs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
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
    pub last_tick: Option<Clock>,
    /// Set by an operator: observe, decide nothing automatically.
    pub paused: Option<Pause>,
    /// The newest decision, for `status`.
    pub last_decision: Option<Decision>,
    /// The newest health snapshot; operator commands are judged against it.
    pub health: Option<HealthSummary>,
}

impl State {
    /// The state at startup, given the serving region the journal recorded.
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

/// Blocks that only a person clears (`resume`, or a manual failover/failback). The
/// others are re-evaluated at every health snapshot.
fn sticky(reason: &Reason) -> bool {
    matches!(
        reason,
        Reason::RunFailed { .. } | Reason::RunAborted { .. } | Reason::StartRefused { .. }
    )
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
            let reason = match &s.phase {
                Phase::Starting { request, .. } => request.reason.clone(),
                // At startup the journal hands back a run begun before a restart.
                _ => Reason::Operator {
                    by: "a previous controller".into(),
                    note: "resumed after a restart".into(),
                },
            };
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
            record(
                &mut s,
                &mut out,
                now,
                format!("{direction} run {run} started (epoch {epoch}) toward {to}"),
                reason,
                false,
            );
        }
        Input::RunStartFailed { error } => {
            block(&mut s, &mut out, now, Reason::StartRefused { error });
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
            let summary = "waiting for an approval".to_string();
            record(
                &mut s,
                &mut out,
                now,
                summary,
                Reason::AwaitingApproval { run, why },
                true,
            );
        }
        Input::RunFinished { run, outcome } => {
            finished(policy, &mut s, run, outcome, now, &mut out)
        }
        Input::Operator(cmd) => operator(policy, &mut s, cmd, now, &mut out),
    }
    (s, out)
}

pub(super) fn record(
    s: &mut State,
    out: &mut Vec<Command>,
    at: Ts,
    summary: String,
    reason: Reason,
    alert: bool,
) {
    let d = Decision {
        at,
        summary,
        reason,
    };
    if alert {
        out.push(Command::Alert(d.clone()));
    }
    out.push(Command::Record(d.clone()));
    s.last_decision = Some(d);
}

/// Enters `Blocked`, recording and alerting only when the reason changed, so a guardrail
/// that holds for an hour is one line in the journal, not thousands.
fn block(s: &mut State, out: &mut Vec<Command>, now: Ts, reason: Reason) {
    if let Phase::Blocked {
        reason: current, ..
    } = &s.phase
        && same_kind(current, &reason)
    {
        s.phase = Phase::Blocked {
            reason: reason.clone(),
            since: blocked_since(&s.phase, now),
        };
        return;
    }
    let quiet = matches!(reason, Reason::Paused { .. } | Reason::ModeShadow);
    let summary = "blocked".to_string();
    s.phase = Phase::Blocked {
        reason: reason.clone(),
        since: now,
    };
    record(s, out, now, summary, reason, !quiet);
}

fn blocked_since(p: &Phase, now: Ts) -> Ts {
    match p {
        Phase::Blocked { since, .. } => *since,
        _ => now,
    }
}

fn same_kind(a: &Reason, b: &Reason) -> bool {
    std::mem::discriminant(a) == std::mem::discriminant(b)
}

fn tick(policy: &Policy, s: &mut State, clock: Clock, now: Ts, out: &mut Vec<Command>) {
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
            record(
                s,
                out,
                now,
                "froze automatic decisions".to_string(),
                Reason::Frozen { until, cause },
                true,
            );
        }
    }
    s.last_tick = Some(clock);
    if let Some((until, _)) = s.frozen_until
        && now >= until
    {
        s.frozen_until = None;
        if let Phase::Blocked {
            reason: Reason::Frozen { .. },
            ..
        } = s.phase
        {
            s.phase = s.resting(policy, now);
        }
        record(
            s,
            out,
            now,
            "automatic decisions resumed after the freeze".to_string(),
            Reason::FreezeOver,
            false,
        );
    }
}

fn health(policy: &Policy, s: &mut State, snap: &HealthSummary, now: Ts, out: &mut Vec<Command>) {
    s.health = Some(snap.clone());
    if s.phase.run_in_progress() {
        return;
    }
    if let Phase::Blocked { reason, .. } = &s.phase
        && sticky(reason)
    {
        return;
    }
    if snap.isolated() {
        block(s, out, now, Reason::ObserverIsolated);
        return;
    }
    let Some(active) = snap.get(&s.active) else {
        return;
    };
    if s.active != policy.regions.primary {
        on_secondary(policy, s, snap, active, now, out);
        return;
    }
    match active.verdict {
        // Isolation was handled above; the arm keeps the match total.
        Verdict::Healthy
        | Verdict::Recovering { .. }
        | Verdict::Unknown
        | Verdict::ObserverIsolated { .. } => {
            if matches!(s.phase, Phase::Blocked { .. }) {
                let reason = Reason::Recovered {
                    region: s.active.clone(),
                };
                record(
                    s,
                    out,
                    now,
                    format!("{} is healthy again; nothing to do", s.active),
                    reason,
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
            if matches!(s.phase, Phase::Blocked { .. }) {
                // A guardrail held a failover and the region is no longer down.
                s.phase = Phase::Primary;
            }
            if !matches!(s.phase, Phase::Blocked { .. }) {
                s.phase = Phase::Suspect { failures, since };
            }
        }
        Verdict::Down { since } => {
            let why = Reason::RegionDown {
                region: s.active.clone(),
                since,
                failures: policy.detection.failure_threshold,
            };
            match automatic_failover(policy, s, snap, now) {
                Ok(to) => {
                    let request = RunRequest {
                        direction: Direction::Failover,
                        from: s.active.clone(),
                        to,
                        reason: why,
                        allow_data_loss: false,
                        automatic: true,
                        detected_at: Some(since),
                    };
                    start(s, out, request, now);
                }
                Err(Reason::ModeShadow) => {
                    let target =
                        pick_target(policy, s, snap, None).unwrap_or_else(|_| s.active.clone());
                    if !matches!(
                        &s.phase,
                        Phase::Blocked {
                            reason: Reason::ModeShadow,
                            ..
                        }
                    ) {
                        s.phase = Phase::Blocked {
                            reason: Reason::ModeShadow,
                            since: now,
                        };
                        record(
                            s,
                            out,
                            now,
                            format!(
                                "would fail over now to {target}, because {why} (shadow mode: not acting)"
                            ),
                            Reason::ModeShadow,
                            false,
                        );
                    }
                }
                Err(blocked) => block(s, out, now, blocked),
            }
        }
    }
}

pub(super) fn start(s: &mut State, out: &mut Vec<Command>, request: RunRequest, now: Ts) {
    if request.automatic && request.direction == Direction::Failover {
        s.auto_failovers.push(now);
    }
    let how = if request.automatic {
        "automatically"
    } else {
        "on request"
    };
    let summary = format!(
        "starting {} {} → {} {how}",
        request.direction, request.from, request.to
    );
    record(
        s,
        out,
        now,
        summary,
        request.reason.clone(),
        request.automatic,
    );
    out.push(Command::StartRun(request.clone()));
    s.phase = Phase::Starting { request, at: now };
}

fn on_secondary(
    policy: &Policy,
    s: &mut State,
    snap: &HealthSummary,
    active: &RegionHealth,
    now: Ts,
    out: &mut Vec<Command>,
) {
    if let Verdict::Down { .. } = active.verdict {
        block(
            s,
            out,
            now,
            Reason::ActiveRegionDown {
                region: s.active.clone(),
            },
        );
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
    if failback_ready(policy, snap, now).is_ok() {
        let request = RunRequest {
            direction: Direction::Failback,
            from: s.active.clone(),
            to: policy.regions.primary.clone(),
            reason: Reason::Operator {
                by: "controller".into(),
                note: "primary healthy and resynced; automatic failback allowed by policy".into(),
            },
            allow_data_loss: false,
            automatic: true,
            detected_at: None,
        };
        start(s, out, request, now);
    }
}

fn finished(
    policy: &Policy,
    s: &mut State,
    run: RunId,
    outcome: RunOutcome,
    now: Ts,
    out: &mut Vec<Command>,
) {
    let (direction, to) = match &s.phase {
        Phase::FailingOver { run: r, to, .. } if *r == run => (Direction::Failover, to.clone()),
        Phase::FailingBack { run: r, .. } if *r == run => {
            (Direction::Failback, policy.regions.primary.clone())
        }
        _ => {
            record(
                s,
                out,
                now,
                "ignored a run result".to_string(),
                Reason::StaleResult { run },
                false,
            );
            return;
        }
    };
    match outcome {
        RunOutcome::Completed => {
            s.active = to.clone();
            s.last_switch = Some(now);
            s.phase = s.resting(policy, now);
            let summary = format!("{direction} completed");
            record(
                s,
                out,
                now,
                summary,
                Reason::RunCompleted { run, direction, to },
                true,
            );
        }
        RunOutcome::Failed { error } => block(s, out, now, Reason::RunFailed { run, error }),
        RunOutcome::Aborted { by, reason } => {
            block(s, out, now, Reason::RunAborted { run, by, reason })
        }
    }
}
