//! Why the controller did, or did not, act. Three closed sets:
//! - `Trigger`: what started a run (an outage, a person, a recovered primary);
//! - `Hold`: what keeps the controller from acting, or refuses an operator's command;
//! - `Note`: the other things worth recording (a run's end, a recovery, a notice).
//!
//! `Reason` is one of the three. Each `Display` is the sentence that `status`, the
//! journal and alerts show; `Hold::label` is the stable label metrics carry.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::ids::{Epoch, RunId};
use super::model::{Direction, RegionName};
use super::readiness::ReadyState;
use super::time::{Ts, fmt_duration};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    Trigger(Trigger),
    Hold(Hold),
    Note(Note),
}

/// What started a run.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Trigger {
    /// The serving region's critical probes failed `failures` rounds in a row.
    RegionDown {
        region: RegionName,
        since: Ts,
        failures: u32,
    },
    /// A person asked for it (the CLI or the API), or approved a held failover.
    Operator { by: String, note: String },
    /// The policy allows automatic failback, and the primary has been healthy and
    /// resynced long enough.
    PrimaryRecovered {
        region: RegionName,
        healthy_for: Duration,
    },
}

/// What keeps the controller from acting, or stops an operator's command.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Hold {
    /// Every region looked down at once: more likely the controller's own network.
    ObserverIsolated,
    /// No secondary is healthy enough to take over.
    NoHealthyTarget { candidates: Vec<RegionName> },
    /// The target's replica lag exceeds the RPO budget.
    ReplicaLag {
        region: RegionName,
        lag: Duration,
        budget: Duration,
    },
    /// Too soon after the last switch.
    Cooldown { until: Ts },
    /// The automatic failovers allowed per window are used up.
    WindowLimit {
        count: u32,
        max: u32,
        window: Duration,
    },
    /// Fewer observers agree than the quorum needs.
    NoQuorum { votes: u32, quorum: u32 },
    /// Detect and alert only: an operator must start the run.
    ModeManual,
    /// Shadow mode: the decision is logged, never acted on.
    ModeShadow,
    /// Automatic decisions are frozen after the controller distrusted itself.
    Frozen { until: Ts, cause: FreezeCause },
    /// An operator paused automation.
    Paused { by: String, reason: String },
    /// A run failed and needs a human.
    RunFailed { run: RunId, error: String },
    /// An operator aborted a run.
    RunAborted {
        run: RunId,
        by: String,
        reason: String,
    },
    /// The primary has not been healthy long enough to move back.
    NotHealthyLongEnough {
        region: RegionName,
        healthy_for: Duration,
        needed: Duration,
    },
    /// The primary's data has not caught up with the serving region.
    NotResynced { region: RegionName, detail: String },
    /// The serving region is down while already failed over; a human decides.
    ActiveRegionDown { region: RegionName },
    /// Starting a run failed before any side effect (e.g. the journal refused it).
    StartRefused { error: String },
    /// The request does not fit the current state.
    NotNow { state: String, wanted: Direction },
    /// A run is paused until someone approves.
    AwaitingApproval { run: RunId, why: String },
    /// Another controller leads this service (or none does yet): this one watches and
    /// votes, and acts only once it is elected.
    NotLeader { leader: Option<String> },
}

/// Other things worth recording: how runs end, recoveries, notices from steps.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Note {
    /// The journal accepted a run and raised the fencing epoch for it.
    RunStarted {
        run: RunId,
        epoch: Epoch,
        direction: Direction,
        to: RegionName,
    },
    /// This controller took over an unfinished run and raised the epoch for it.
    RunResumed { run: RunId, epoch: Epoch },
    /// A run finished its last step.
    RunCompleted {
        run: RunId,
        direction: Direction,
        to: RegionName,
    },
    /// The serving region passes its probes again after a scare.
    Recovered { region: RegionName },
    /// The freeze after a clock jump or stall ran out.
    FreezeOver,
    /// An operator lifted a pause.
    Resumed { by: String },
    /// A result arrived for a run this controller is not running.
    StaleResult { run: RunId },
    /// Shadow mode: what the controller would have started.
    WouldStart {
        direction: Direction,
        to: RegionName,
        because: Trigger,
    },
    /// A step reported something a person must act on.
    Notice { run: RunId, notice: Notice },
    /// A readiness check of a step (or of the IAM permissions, `direction` none) changed
    /// state since the last round (`was` none: the first round, or a new step).
    ReadinessChanged {
        direction: Option<Direction>,
        step: String,
        was: Option<ReadyState>,
        now: ReadyState,
        /// What the check saw, or why it is not ready, or why it cannot tell.
        detail: String,
        fix: Option<String>,
    },
    /// This controller was elected to lead the service, under a new epoch.
    Elected { epoch: Epoch },
    /// This controller no longer leads; `leader` does, if known.
    Following { leader: Option<String> },
    /// Another controller took over the run this one was driving, and finishes it.
    HandedOver { run: RunId },
    /// The shared record refused a run before any step (a counted vote changed); the
    /// controller decides again.
    RunNotStarted { run: RunId, why: String },
    /// The coordination backend says `region` serves now (a run another controller
    /// completed).
    SharedActive { region: RegionName },
    /// A probe's loop crashed (a lifeboat bug) and was started again; its rounds count as
    /// failed meanwhile.
    ProbeRestarted {
        probe: String,
        region: RegionName,
        error: String,
        /// Crashes since the probe last finished a round.
        in_a_row: u32,
    },
}

/// What a step tells the controller beside its result.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Notice {
    /// The fence step could not reach the old primary: it was not fenced, and must not
    /// come back as a writer (safety invariant 1).
    OldPrimaryNotFenced {
        step: String,
        region: RegionName,
        /// The server, as `user@host:port/database` (never a password).
        server: String,
        why: String,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum FreezeCause {
    /// The wall clock moved differently from the monotonic clock.
    ClockJump,
    /// The control loop did not run for longer than the tolerance.
    LoopStall,
}

impl Reason {
    /// The hold, when this reason is one.
    pub fn hold(&self) -> Option<&Hold> {
        match self {
            Reason::Hold(h) => Some(h),
            _ => None,
        }
    }

    /// A short, stable label (`region_down`, `no_quorum`, `run_completed`…).
    pub fn label(&self) -> &'static str {
        match self {
            Reason::Trigger(t) => t.label(),
            Reason::Hold(h) => h.label(),
            Reason::Note(n) => n.label(),
        }
    }

    /// What an operator can do about it, when there is something to do.
    pub fn next_step(&self) -> Option<&'static str> {
        match self {
            Reason::Hold(h) => h.next_step(),
            Reason::Note(n) => n.next_step(),
            Reason::Trigger(_) => None,
        }
    }
}

impl Trigger {
    pub fn label(&self) -> &'static str {
        match self {
            Trigger::RegionDown { .. } => "region_down",
            Trigger::Operator { .. } => "operator",
            Trigger::PrimaryRecovered { .. } => "primary_recovered",
        }
    }

    /// Whether the controller started it by itself.
    pub fn automatic(&self) -> bool {
        !matches!(self, Trigger::Operator { .. })
    }
}

impl Hold {
    /// A short, stable label for metrics (`lifeboat_blocked{reason="replica_lag"}`).
    pub fn label(&self) -> &'static str {
        match self {
            Hold::ObserverIsolated => "observer_isolated",
            Hold::NoHealthyTarget { .. } => "no_healthy_target",
            Hold::ReplicaLag { .. } => "replica_lag",
            Hold::Cooldown { .. } => "cooldown",
            Hold::WindowLimit { .. } => "window_limit",
            Hold::NoQuorum { .. } => "no_quorum",
            Hold::ModeManual => "mode_manual",
            Hold::ModeShadow => "mode_shadow",
            Hold::Frozen { .. } => "frozen",
            Hold::Paused { .. } => "paused",
            Hold::RunFailed { .. } => "run_failed",
            Hold::RunAborted { .. } => "run_aborted",
            Hold::NotHealthyLongEnough { .. } => "not_healthy_long_enough",
            Hold::NotResynced { .. } => "not_resynced",
            Hold::ActiveRegionDown { .. } => "active_region_down",
            Hold::StartRefused { .. } => "start_refused",
            Hold::NotNow { .. } => "not_now",
            Hold::AwaitingApproval { .. } => "awaiting_approval",
            Hold::NotLeader { .. } => "not_leader",
        }
    }

    /// Blocks that only a person clears (`resume`, or a manual failover or failback).
    /// The others are re-evaluated at every health snapshot.
    pub fn sticky(&self) -> bool {
        matches!(
            self,
            Hold::RunFailed { .. } | Hold::RunAborted { .. } | Hold::StartRefused { .. }
        )
    }

    /// The guardrails an automatic failover passes, by label, for the evidence.
    pub fn is_guardrail(&self) -> bool {
        matches!(
            self,
            Hold::ObserverIsolated
                | Hold::NoHealthyTarget { .. }
                | Hold::ReplicaLag { .. }
                | Hold::Cooldown { .. }
                | Hold::WindowLimit { .. }
                | Hold::NoQuorum { .. }
                | Hold::ModeManual
                | Hold::ModeShadow
                | Hold::Frozen { .. }
                | Hold::Paused { .. }
        )
    }

    /// What an operator can do about it, when there is something to do.
    pub fn next_step(&self) -> Option<&'static str> {
        Some(match self {
            Hold::ReplicaLag { .. } => {
                "wait for the replica to catch up, or accept the loss: lifeboat approve --allow-data-loss (or lifeboat failover --allow-data-loss)"
            }
            Hold::ModeManual => "start it yourself if the outage is real: lifeboat failover",
            Hold::Cooldown { .. } | Hold::WindowLimit { .. } => {
                "an operator can still fail over by hand: lifeboat failover"
            }
            Hold::NoHealthyTarget { .. } => {
                "check the secondary's probes: lifeboat probe --policy …"
            }
            Hold::Frozen { .. } => {
                "check the host's clock and load; automation resumes by itself when the freeze ends"
            }
            Hold::Paused { .. } => "lifeboat resume",
            Hold::NoQuorum { .. } => {
                "the witnesses still reach the serving region: check this controller's own network to it (lifeboat status lists what each witness sees); if the region really is down, fail over by hand: lifeboat failover"
            }
            Hold::RunFailed { .. } => {
                "read the run (lifeboat show RUN_ID), fix the cause, then lifeboat failover or failback again"
            }
            Hold::RunAborted { .. } | Hold::StartRefused { .. } => {
                "lifeboat status shows the state; lifeboat resume re-arms automation"
            }
            Hold::NotHealthyLongEnough { .. } => {
                "wait, or check the primary's probes: lifeboat probe --policy …"
            }
            Hold::NotResynced { .. } => {
                "rejoin the primary's database as a standby of the serving one and let it catch up"
            }
            Hold::ActiveRegionDown { .. } => {
                "decide by hand: lifeboat status, then lifeboat failover --to REGION or lifeboat failback"
            }
            Hold::AwaitingApproval { .. } => {
                "lifeboat approve RUN_ID (or lifeboat abort RUN_ID --reason …)"
            }
            Hold::NotLeader { .. } => {
                "the leading controller acts: lifeboat status shows which one; ask it (lifeboat failover … talks to the leader)"
            }
            Hold::ObserverIsolated | Hold::ModeShadow | Hold::NotNow { .. } => return None,
        })
    }
}

impl Note {
    pub fn label(&self) -> &'static str {
        match self {
            Note::RunStarted { .. } => "run_started",
            Note::RunResumed { .. } => "run_resumed",
            Note::RunCompleted { .. } => "run_completed",
            Note::Recovered { .. } => "recovered",
            Note::FreezeOver => "freeze_over",
            Note::Resumed { .. } => "resumed",
            Note::StaleResult { .. } => "stale_result",
            Note::WouldStart { .. } => "would_start",
            Note::Notice {
                notice: Notice::OldPrimaryNotFenced { .. },
                ..
            } => "old_primary_not_fenced",
            Note::ReadinessChanged { .. } => "readiness_changed",
            Note::Elected { .. } => "elected",
            Note::Following { .. } => "following",
            Note::HandedOver { .. } => "handed_over",
            Note::ProbeRestarted { .. } => "probe_restarted",
            Note::SharedActive { .. } => "shared_active",
            Note::RunNotStarted { .. } => "run_not_started",
        }
    }

    pub fn next_step(&self) -> Option<&'static str> {
        match self {
            Note::Notice {
                notice: Notice::OldPrimaryNotFenced { .. },
                ..
            } => Some(
                "keep the old primary's database stopped, or fence it by hand (ALTER SYSTEM SET default_transaction_read_only = on), until it is rejoined as a standby",
            ),
            Note::ReadinessChanged { .. } => {
                Some("lifeboat readiness shows every step's check, why and the fix")
            }
            Note::ProbeRestarted { .. } => Some(
                "a crashing probe is a lifeboat bug: report it with the log lines around the crash; until it is fixed, its rounds count as failed (lifeboat status shows them)",
            ),
            _ => None,
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::Trigger(t) => t.fmt(f),
            Reason::Hold(h) => h.fmt(f),
            Reason::Note(n) => n.fmt(f),
        }
    }
}

impl fmt::Display for Trigger {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Trigger::RegionDown {
                region,
                since,
                failures,
            } => write!(
                f,
                "{region} is down: its critical probes failed {failures} rounds in a row (since {since})"
            ),
            Trigger::Operator { by, note } if note.is_empty() => write!(f, "requested by {by}"),
            Trigger::Operator { by, note } => write!(f, "requested by {by}: {note}"),
            Trigger::PrimaryRecovered {
                region,
                healthy_for,
            } => write!(
                f,
                "{region} has been healthy and resynced for {}, and the policy allows automatic failback",
                fmt_duration(*healthy_for)
            ),
        }
    }
}

impl fmt::Display for Hold {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Hold::ObserverIsolated => f.write_str(
                "every region looks down at once, which more likely means this controller is cut off; not failing over",
            ),
            Hold::NoHealthyTarget { candidates } => {
                let names: Vec<&str> = candidates.iter().map(|r| r.as_str()).collect();
                write!(
                    f,
                    "no healthy region to fail over to (checked {})",
                    names.join(", ")
                )
            }
            Hold::ReplicaLag {
                region,
                lag,
                budget,
            } => write!(
                f,
                "replica lag in {region} is {}, over the RPO budget of {}",
                fmt_duration(*lag),
                fmt_duration(*budget)
            ),
            Hold::Cooldown { until } => write!(
                f,
                "in the cooldown after the last failover or failback, until {until}"
            ),
            Hold::WindowLimit { count, max, window } => write!(
                f,
                "{count} automatic failover(s) in the last {}, the most the policy allows is {max}",
                fmt_duration(*window)
            ),
            Hold::NoQuorum { votes, quorum } => write!(
                f,
                "only {votes} observer(s) see the outage, the quorum is {quorum}"
            ),
            Hold::ModeManual => f.write_str(
                "mode is manual: lifeboat detects and alerts, an operator starts the failover",
            ),
            Hold::ModeShadow => {
                f.write_str("mode is shadow: the decision is logged, never acted on")
            }
            Hold::Frozen { until, cause } => {
                let what = match cause {
                    FreezeCause::ClockJump => "the wall clock jumped",
                    FreezeCause::LoopStall => "the control loop stalled",
                };
                write!(
                    f,
                    "automatic decisions are frozen until {until} because {what}"
                )
            }
            Hold::Paused { by, reason } => write!(f, "paused by {by}: {reason}"),
            Hold::RunFailed { run, error } => write!(f, "run {run} failed: {error}"),
            Hold::RunAborted { run, by, reason } => {
                write!(f, "run {run} was aborted by {by}: {reason}")
            }
            Hold::NotHealthyLongEnough {
                region,
                healthy_for,
                needed,
            } => write!(
                f,
                "{region} has been healthy for {}, failback needs {}",
                fmt_duration(*healthy_for),
                fmt_duration(*needed)
            ),
            Hold::NotResynced { region, detail } => {
                write!(f, "{region}'s data is not resynced: {detail}")
            }
            Hold::ActiveRegionDown { region } => write!(
                f,
                "{region}, which serves now, is down; lifeboat does not chain failovers by itself"
            ),
            Hold::StartRefused { error } => write!(f, "the run could not start: {error}"),
            Hold::NotNow { state, wanted } => write!(f, "a {wanted} cannot start while {state}"),
            Hold::AwaitingApproval { run, why } => {
                write!(f, "run {run} waits for an approval: {why}")
            }
            Hold::NotLeader { leader: Some(l) } => {
                write!(f, "controller {l} leads this service; this one only watches and votes")
            }
            Hold::NotLeader { leader: None } => f.write_str(
                "no controller leads this service yet; this one acts only once it is elected",
            ),
        }
    }
}

impl fmt::Display for Note {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Note::RunStarted {
                run,
                epoch,
                direction,
                to,
            } => write!(
                f,
                "{direction} run {run} started (fencing epoch {epoch}) toward {to}"
            ),
            Note::RunResumed { run, epoch } => {
                write!(
                    f,
                    "took over the unfinished run {run} (fencing epoch {epoch})"
                )
            }
            Note::RunCompleted { run, direction, to } => {
                write!(f, "{direction} run {run} completed; {to} serves now")
            }
            Note::Recovered { region } => write!(f, "{region} passes its probes again"),
            Note::FreezeOver => f.write_str("the freeze is over; automatic decisions resume"),
            Note::Resumed { by } => write!(f, "at the request of {by}"),
            Note::StaleResult { run } => write!(
                f,
                "a result for run {run}, which this controller is not running, was ignored"
            ),
            Note::WouldStart {
                direction,
                to,
                because,
            } => write!(
                f,
                "would start a {direction} to {to} now, because {because} (shadow mode: not acting)"
            ),
            Note::Notice { run, notice } => write!(f, "run {run}: {notice}"),
            Note::ReadinessChanged {
                was,
                now,
                detail,
                fix,
                ..
            } => {
                match was {
                    Some(w) => write!(f, "was {w}, now {now}: {detail}")?,
                    None => write!(f, "{now}: {detail}")?,
                }
                match fix {
                    Some(fix) => write!(f, " — fix: {fix}"),
                    None => Ok(()),
                }
            }
            Note::Elected { epoch } => {
                write!(f, "this controller now leads the service (epoch {epoch})")
            }
            Note::Following { leader: Some(l) } => {
                write!(
                    f,
                    "controller {l} leads the service; this one watches and votes"
                )
            }
            Note::Following { leader: None } => f.write_str(
                "no controller leads the service yet; this one watches, votes and, unless it is an observer, campaigns",
            ),
            Note::HandedOver { run } => write!(
                f,
                "another controller took over run {run} and finishes it; this one stopped driving it"
            ),
            Note::RunNotStarted { run, why } => write!(
                f,
                "run {run} did not start: {why}; nothing acted, and the decision is taken again from the next votes"
            ),
            Note::SharedActive { region } => write!(
                f,
                "the shared record in etcd says {region} serves: a run another controller completed moved it"
            ),
            Note::ProbeRestarted {
                probe,
                region,
                error,
                in_a_row,
            } => {
                let times = match in_a_row {
                    1 => String::new(),
                    n => format!(", {n} times in a row"),
                };
                write!(
                    f,
                    "probe `{probe}` in {region} crashed ({error}){times}; lifeboat restarted it, and its rounds count as failed meanwhile"
                )
            }
        }
    }
}

impl fmt::Display for Notice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Notice::OldPrimaryNotFenced {
                step,
                region,
                server,
                why,
            } => write!(
                f,
                "step {step} could not fence the old primary {server} in {region} ({why}): it is NOT FENCED and must not come back as a writer"
            ),
        }
    }
}
