//! What goes into the state machine (health snapshots, ticks, run results, operator
//! commands) and what comes out of it (runs to start, alerts, records, refusals).

use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use crate::core::health::Verdict;
use crate::core::ids::{Epoch, RunId};
use crate::core::model::{Direction, RegionName};
use crate::core::reason::Reason;
use crate::core::time::Ts;

/// A region's health as the controller sees it, summarised from the probes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RegionHealth {
    pub region: RegionName,
    pub verdict: Verdict,
    /// Since when every critical probe of the region has passed without a break.
    pub healthy_since: Option<Ts>,
    /// The region's database replica lag, when it is a replica and the lag is known.
    pub replica_lag: Option<Duration>,
    /// Whether the region's data is in sync with the serving region (its database a
    /// streaming standby at lag 0). `None` when there is nothing to check.
    pub in_sync: Option<bool>,
}

/// One evaluation of every region, summarised from the health tracker.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HealthSummary {
    pub regions: Vec<RegionHealth>,
    /// Observers (this one included) that see the serving region down.
    pub votes: u32,
}

impl HealthSummary {
    pub fn get(&self, r: &RegionName) -> Option<&RegionHealth> {
        self.regions.iter().find(|h| h.region == *r)
    }

    /// Every serving region failed at once: the controller's own network is suspect.
    pub fn isolated(&self) -> bool {
        self.regions
            .iter()
            .any(|h| matches!(h.verdict, Verdict::ObserverIsolated { .. }))
    }
}

/// The two clocks, read by the daemon at each tick. Comparing them exposes clock jumps
/// (wall moved differently from monotonic) and stalls (a long gap between ticks).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Clock {
    pub wall: Ts,
    pub mono_ms: u64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "outcome")]
pub enum RunOutcome {
    Completed,
    Failed { error: String },
    Aborted { by: String, reason: String },
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "command")]
pub enum OperatorCommand {
    Failover {
        to: Option<RegionName>,
        allow_data_loss: bool,
        by: String,
        note: String,
    },
    Failback {
        by: String,
        note: String,
    },
    Pause {
        by: String,
        reason: String,
    },
    Resume {
        by: String,
    },
    /// Approve a failover a guardrail is holding (e.g. replica lag over budget).
    Approve {
        allow_data_loss: bool,
        by: String,
    },
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "input")]
pub enum Input {
    Health(HealthSummary),
    Tick(Clock),
    /// The journal accepted a run (also fed at startup for an unfinished run).
    RunStarted {
        run: RunId,
        epoch: Epoch,
        direction: Direction,
        to: RegionName,
    },
    RunStartFailed {
        error: String,
    },
    /// The run is paused, waiting for an approval.
    RunWaiting {
        run: RunId,
        why: String,
    },
    RunFinished {
        run: RunId,
        outcome: RunOutcome,
    },
    Operator(OperatorCommand),
}

/// What the controller asks the daemon to start.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunRequest {
    pub direction: Direction,
    pub from: RegionName,
    pub to: RegionName,
    pub reason: Reason,
    pub allow_data_loss: bool,
    pub automatic: bool,
    /// When the outage was detected, for the detection-to-decision measurement.
    pub detected_at: Option<Ts>,
}

/// A decision worth keeping: recorded in the journal's audit trail and logged.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Decision {
    pub at: Ts,
    pub summary: String,
    pub reason: Reason,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "command")]
pub enum Command {
    StartRun(RunRequest),
    /// Tell the alert channels.
    Alert(Decision),
    /// Keep in the journal.
    Record(Decision),
    /// The operator's command cannot be carried out, and why.
    Refuse(Reason),
}
