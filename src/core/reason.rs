//! Why the controller did, or did not, act: one enum whose `Display` is the sentence that
//! `status`, the journal, alerts and metric labels show.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::ids::RunId;
use super::model::{Direction, RegionName};
use super::time::{Ts, fmt_duration};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Reason {
    /// The serving region's critical probes failed `failures` rounds in a row.
    RegionDown {
        region: RegionName,
        since: Ts,
        failures: u32,
    },
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
    /// Too soon after the last failover.
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
    /// An operator asked for it.
    Operator { by: String, note: String },
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
    /// Failback is never automatic unless the policy says so.
    FailbackManual,
    /// The serving region is down while already failed over; a human decides.
    ActiveRegionDown { region: RegionName },
    /// Starting a run failed before any side effect (e.g. the journal refused it).
    StartRefused { error: String },
    /// The request does not fit the current state.
    NotNow { state: String, wanted: Direction },
    /// A run finished its last step.
    RunCompleted {
        run: RunId,
        direction: Direction,
        to: RegionName,
    },
    /// A run is paused until someone approves.
    AwaitingApproval { run: RunId, why: String },
    /// The serving region passes its probes again after a scare.
    Recovered { region: RegionName },
    /// The freeze after a clock jump or stall ran out.
    FreezeOver,
    /// A result arrived for a run this controller is not running.
    StaleResult { run: RunId },
    /// The operator named a region the run cannot go to.
    BadTarget { region: RegionName, why: String },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FreezeCause {
    /// The wall clock moved differently from the monotonic clock.
    ClockJump,
    /// The control loop did not run for longer than the tolerance.
    LoopStall,
}

impl Reason {
    /// A short, stable label for metrics (`lifeboat_blocked{reason="replica_lag"}`).
    pub fn label(&self) -> &'static str {
        match self {
            Reason::RegionDown { .. } => "region_down",
            Reason::ObserverIsolated => "observer_isolated",
            Reason::NoHealthyTarget { .. } => "no_healthy_target",
            Reason::ReplicaLag { .. } => "replica_lag",
            Reason::Cooldown { .. } => "cooldown",
            Reason::WindowLimit { .. } => "window_limit",
            Reason::NoQuorum { .. } => "no_quorum",
            Reason::ModeManual => "mode_manual",
            Reason::ModeShadow => "mode_shadow",
            Reason::Frozen { .. } => "frozen",
            Reason::Paused { .. } => "paused",
            Reason::Operator { .. } => "operator",
            Reason::RunFailed { .. } => "run_failed",
            Reason::RunAborted { .. } => "run_aborted",
            Reason::NotHealthyLongEnough { .. } => "not_healthy_long_enough",
            Reason::NotResynced { .. } => "not_resynced",
            Reason::FailbackManual => "failback_manual",
            Reason::ActiveRegionDown { .. } => "active_region_down",
            Reason::StartRefused { .. } => "start_refused",
            Reason::NotNow { .. } => "not_now",
            Reason::RunCompleted { .. } => "run_completed",
            Reason::AwaitingApproval { .. } => "awaiting_approval",
            Reason::Recovered { .. } => "recovered",
            Reason::FreezeOver => "freeze_over",
            Reason::StaleResult { .. } => "stale_result",
            Reason::BadTarget { .. } => "bad_target",
        }
    }

    /// What an operator can do about it, when there is something to do.
    pub fn next_step(&self) -> Option<&'static str> {
        Some(match self {
            Reason::ReplicaLag { .. } => {
                "wait for the replica to catch up, or accept the loss: lifeboat approve --allow-data-loss (or lifeboat failover --allow-data-loss)"
            }
            Reason::ModeManual => "start it yourself if the outage is real: lifeboat failover",
            Reason::Cooldown { .. } | Reason::WindowLimit { .. } => {
                "an operator can still fail over by hand: lifeboat failover"
            }
            Reason::NoHealthyTarget { .. } => {
                "check the secondary's probes: lifeboat probe --policy …"
            }
            Reason::Frozen { .. } => {
                "check the host's clock and load; automation resumes by itself when the freeze ends"
            }
            Reason::Paused { .. } => "lifeboat resume",
            Reason::NoQuorum { .. } => {
                "the witnesses still reach the serving region: check this controller's own network to it (lifeboat status lists what each witness sees); if the region really is down, fail over by hand: lifeboat failover"
            }
            Reason::RunFailed { .. } => {
                "read the run (lifeboat show RUN_ID), fix the cause, then lifeboat failover or failback again"
            }
            Reason::RunAborted { .. } | Reason::StartRefused { .. } => {
                "lifeboat status shows the state; lifeboat resume re-arms automation"
            }
            Reason::NotHealthyLongEnough { .. } => {
                "wait, or check the primary's probes: lifeboat probe --policy …"
            }
            Reason::NotResynced { .. } => {
                "rejoin the primary's database as a standby of the serving one and let it catch up"
            }
            Reason::FailbackManual => "lifeboat failback",
            Reason::ActiveRegionDown { .. } => {
                "decide by hand: lifeboat status, then lifeboat failover --to REGION or lifeboat failback"
            }
            Reason::AwaitingApproval { .. } => {
                "lifeboat approve RUN_ID (or lifeboat abort RUN_ID --reason …)"
            }
            _ => return None,
        })
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::RegionDown { region, since, failures } => {
                write!(f, "{region} is down: its critical probes failed {failures} rounds in a row (since {since})")
            }
            Reason::ObserverIsolated => f.write_str(
                "every region looks down at once, which more likely means this controller is cut off; not failing over",
            ),
            Reason::NoHealthyTarget { candidates } => {
                let names: Vec<&str> = candidates.iter().map(|r| r.as_str()).collect();
                write!(f, "no healthy region to fail over to (checked {})", names.join(", "))
            }
            Reason::ReplicaLag { region, lag, budget } => write!(
                f,
                "replica lag in {region} is {}, over the RPO budget of {}",
                fmt_duration(*lag),
                fmt_duration(*budget)
            ),
            Reason::Cooldown { until } => write!(f, "in the cooldown after the last failover or failback, until {until}"),
            Reason::WindowLimit { count, max, window } => write!(
                f,
                "{count} automatic failover(s) in the last {}, the most the policy allows is {max}",
                fmt_duration(*window)
            ),
            Reason::NoQuorum { votes, quorum } => {
                write!(f, "only {votes} observer(s) see the outage, the quorum is {quorum}")
            }
            Reason::ModeManual => f.write_str("mode is manual: lifeboat detects and alerts, an operator starts the failover"),
            Reason::ModeShadow => f.write_str("mode is shadow: the decision is logged, never acted on"),
            Reason::Frozen { until, cause } => {
                let what = match cause {
                    FreezeCause::ClockJump => "the wall clock jumped",
                    FreezeCause::LoopStall => "the control loop stalled",
                };
                write!(f, "automatic decisions are frozen until {until} because {what}")
            }
            Reason::Paused { by, reason } => write!(f, "paused by {by}: {reason}"),
            Reason::Operator { by, note } if note.is_empty() => write!(f, "requested by {by}"),
            Reason::Operator { by, note } => write!(f, "requested by {by}: {note}"),
            Reason::RunFailed { run, error } => write!(f, "run {run} failed: {error}"),
            Reason::RunAborted { run, by, reason } => write!(f, "run {run} was aborted by {by}: {reason}"),
            Reason::NotHealthyLongEnough { region, healthy_for, needed } => write!(
                f,
                "{region} has been healthy for {}, failback needs {}",
                fmt_duration(*healthy_for),
                fmt_duration(*needed)
            ),
            Reason::NotResynced { region, detail } => write!(f, "{region}'s data is not resynced: {detail}"),
            Reason::FailbackManual => f.write_str("failback is never automatic under this policy"),
            Reason::ActiveRegionDown { region } => {
                write!(f, "{region}, which serves now, is down; lifeboat does not chain failovers by itself")
            }
            Reason::StartRefused { error } => write!(f, "the run could not start: {error}"),
            Reason::NotNow { state, wanted } => write!(f, "a {wanted} cannot start while {state}"),
            Reason::RunCompleted { run, direction, to } => write!(f, "{direction} run {run} completed; {to} serves now"),
            Reason::AwaitingApproval { run, why } => {
                write!(f, "run {run} waits for an approval: {why}")
            }
            Reason::Recovered { region } => write!(f, "{region} passes its probes again"),
            Reason::FreezeOver => f.write_str("the freeze is over; automatic decisions resume"),
            Reason::StaleResult { run } => write!(f, "a result for run {run}, which this controller is not running, was ignored"),
            Reason::BadTarget { region, why } => write!(f, "cannot fail over to {region}: {why}"),
        }
    }
}
