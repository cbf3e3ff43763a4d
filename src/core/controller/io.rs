//! What goes into the state machine (health snapshots, ticks, run results, notices,
//! operator commands) and what comes out of it (runs to start, alerts, records,
//! refusals), and the evidence every decision carries.

use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use crate::core::health::Verdict;
use crate::core::ids::{Epoch, RunId};
use crate::core::model::{Direction, RegionName};
use crate::core::reason::{Hold, Notice, Reason, Trigger};
use crate::core::step::RunStatus;
use crate::core::time::Ts;

/// A region's health as the controller sees it, summarised from the probes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct RegionSummary {
    pub region: RegionName,
    pub verdict: Verdict,
    /// Since when every critical probe of the region has passed without a break.
    pub healthy_since: Option<Ts>,
    /// The region's database replica lag, when it is a replica and the lag is known.
    pub replica_lag: Option<Duration>,
    /// Whether the region's data is in sync with the serving region (its database a
    /// streaming standby at lag 0). `None` when there is nothing to check.
    pub in_sync: Option<bool>,
    /// Its critical probes whose latest round failed, with what they said.
    #[serde(default)]
    pub failing: Vec<FailingProbe>,
}

/// A critical probe whose latest round failed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct FailingProbe {
    pub probe: String,
    pub region: RegionName,
    /// Consecutive failed rounds.
    pub failures: u32,
    /// The latest failure's reason (names the endpoint; never a secret).
    pub error: String,
}

/// One observer's word on the serving region: this controller, or a witness.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ObserverVote {
    /// `this controller`, or the witness's URL.
    pub observer: String,
    /// Whether it sees the serving region down, as of its last fresh answer.
    pub sees_down: bool,
}

impl ObserverVote {
    /// How many of `votes` see the serving region down, and each vote in words
    /// ("ctl-b says not down"), for the evidence and `status`.
    pub fn tally(votes: &[ObserverVote]) -> (usize, Vec<String>) {
        let down = votes.iter().filter(|o| o.sees_down).count();
        let who = votes
            .iter()
            .map(|o| {
                let says = if o.sees_down { "down" } else { "not down" };
                format!("{} says {says}", o.observer)
            })
            .collect();
        (down, who)
    }
}

/// One evaluation of every region, summarised from the health tracker, with the
/// observers' votes on the serving region.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct HealthSummary {
    pub regions: Vec<RegionSummary>,
    pub observers: Vec<ObserverVote>,
}

impl HealthSummary {
    pub fn get(&self, r: &RegionName) -> Option<&RegionSummary> {
        self.regions.iter().find(|h| h.region == *r)
    }

    /// Observers that see the serving region down.
    pub fn votes(&self) -> u32 {
        self.observers.iter().filter(|o| o.sees_down).count() as u32
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
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ClockReading {
    pub wall: Ts,
    pub mono_ms: u64,
}

/// How a run ended, as the driver reports it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case", tag = "end")]
pub enum RunEnd {
    Completed,
    Failed {
        error: String,
    },
    Aborted {
        by: String,
        reason: String,
    },
    /// The journal refused the executor's write: a newer epoch exists. `status` and
    /// `ended_by` are what the journal says of the run now.
    Superseded {
        status: RunStatus,
        ended_by: Option<String>,
        outcome: Option<String>,
    },
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
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

/// Whether this controller may act on the service.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case", tag = "role")]
pub enum Leadership {
    /// The embedded backend: this controller is the only one; its journal lock says so.
    #[default]
    Sole,
    /// Elected through the coordination backend; its fenced writes carry `epoch`.
    Leading { epoch: Epoch },
    /// Another controller leads (`leader`), or none does yet: watch and vote only.
    Following { leader: Option<String> },
}

impl Leadership {
    pub fn leads(&self) -> bool {
        !matches!(self, Leadership::Following { .. })
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case", tag = "input")]
pub enum Input {
    Health(HealthSummary),
    Tick(ClockReading),
    /// The journal accepted a run and raised the epoch for it.
    RunStarted {
        run: RunId,
        epoch: Epoch,
        direction: Direction,
        to: RegionName,
    },
    /// This controller took over an unfinished run (after a restart or an approval),
    /// raising the epoch to `epoch`.
    RunResumed {
        run: RunId,
        epoch: Epoch,
    },
    RunStartFailed {
        error: String,
    },
    /// The shared record refused the run before any step, because a vote the decision
    /// counted changed: nothing acted, and the decision is taken again.
    RunNotStarted {
        run: RunId,
        why: String,
        /// Whether the controller decided the run by itself: the attempt then does not
        /// count toward the window limit.
        automatic: bool,
    },
    /// The run is paused, waiting for an approval.
    RunWaiting {
        run: RunId,
        why: String,
    },
    RunFinished {
        run: RunId,
        end: RunEnd,
    },
    /// A step of a run reported something a person must act on.
    Notice {
        run: RunId,
        notice: Notice,
    },
    Operator(OperatorCommand),
    /// The coordination backend elected this controller, or another one.
    Leadership(Leadership),
    /// The coordination backend's record of the serving region, as the last completed
    /// run (maybe another controller's) left it.
    Shared {
        active: RegionName,
    },
}

/// What the controller asks the driver to start.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct RunRequest {
    pub direction: Direction,
    pub from: RegionName,
    pub to: RegionName,
    pub trigger: Trigger,
    pub allow_data_loss: bool,
    /// When the outage was detected, for the detection-to-decision measurement.
    pub detected_at: Option<Ts>,
}

impl RunRequest {
    /// Whether the controller started it by itself (counts toward the window limit).
    pub fn automatic(&self) -> bool {
        self.trigger.automatic()
    }
}

/// The facts behind a decision, as data: rendered into words only at the edge.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Evidence {
    /// The serving region's critical probes failing at the time, with their errors.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failing: Vec<FailingProbe>,
    /// Who was asked about the serving region and what each said.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub observers: Vec<ObserverVote>,
    /// Observers that must agree before an automatic failover.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quorum: Option<u32>,
    /// The candidate target's replica lag against the RPO budget.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lag: Option<LagEvidence>,
    /// The guardrail that decided, by label (`no_quorum`, `replica_lag`…).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub guardrail: Option<String>,
    /// The region a run would go to, or went to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<RegionName>,
}

impl Evidence {
    /// The evidence in words, a line per fact (the guardrail, each failing probe, the
    /// votes, the lag), for `history --decisions` and run reports. The target is left
    /// to the reader that wants it.
    pub fn lines(&self) -> Vec<String> {
        let mut out = Vec::new();
        if let Some(g) = &self.guardrail {
            out.push(format!("guardrail: {g}"));
        }
        for f in &self.failing {
            out.push(format!(
                "failing: {} in {} ({} in a row): {}",
                f.probe, f.region, f.failures, f.error
            ));
        }
        if !self.observers.is_empty() {
            let (down, who) = ObserverVote::tally(&self.observers);
            let quorum = self
                .quorum
                .map(|q| format!(", quorum {q}"))
                .unwrap_or_default();
            out.push(format!(
                "votes: {down} of {}{quorum}: {}",
                self.observers.len(),
                who.join("; ")
            ));
        }
        if let Some(l) = &self.lag {
            let lag = l
                .lag
                .map(crate::core::time::fmt_duration)
                .unwrap_or_else(|| "not measured".into());
            out.push(format!(
                "replica lag in {}: {lag} (RPO budget {})",
                l.region,
                crate::core::time::fmt_duration(l.budget)
            ));
        }
        out
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct LagEvidence {
    pub region: RegionName,
    /// `None` when nothing measures the region's replication.
    pub lag: Option<Duration>,
    pub budget: Duration,
}

/// A decision worth keeping: journaled with its evidence, logged, shown by `status`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Decision {
    pub at: Ts,
    pub summary: String,
    pub reason: Reason,
    #[serde(default)]
    pub evidence: Evidence,
}

impl Decision {
    pub fn hold(&self) -> Option<&Hold> {
        self.reason.hold()
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case", tag = "command")]
pub enum Command {
    StartRun(RunRequest),
    /// Tell the alert channels.
    Alert(Decision),
    /// Keep in the journal.
    Record(Decision),
    /// The operator's command cannot be carried out, and why.
    Refuse(Hold),
}
