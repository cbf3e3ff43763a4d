//! What `lifeboat status` shows and `GET /v1/status` returns: the controller's state and
//! why, where the service runs, each region's and each probe's health, the current and
//! last run. Built the same way by the daemon and by a standalone `status`.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::core::controller::{Decision, Pause, Phase, State};
use crate::core::health::{HealthTracker, Verdict};
use crate::core::ids::RunId;
use crate::core::model::{Direction, Mode, Policy, RegionName};
use crate::core::summary::{LinkMemory, summarize};
use crate::core::time::Ts;
use crate::journal::RunRecord;

#[derive(Clone, Debug, Serialize, Deserialize, schemars::JsonSchema)]
pub struct StatusView {
    pub service: String,
    pub mode: Mode,
    /// `primary`, `suspect`, `starting`, `failing_over`, `on_secondary`, `failing_back`,
    /// `blocked` or `paused`.
    pub state: String,
    pub phase: Phase,
    /// The region serving now.
    pub active: RegionName,
    pub primary: RegionName,
    /// Why the controller is not acting (a guardrail, a failed run, an approval), in words.
    pub why: Option<String>,
    /// What an operator can do about it.
    pub next_step: Option<String>,
    pub paused: Option<Pause>,
    pub frozen_until: Option<Ts>,
    pub regions: Vec<RegionView>,
    pub probes: Vec<ProbeView>,
    pub last_decision: Option<Decision>,
    pub current_run: Option<CurrentRun>,
    pub last_run: Option<RunRecord>,
    pub worst_case_detection: Duration,
    pub observed_at: Ts,
    /// Where this view comes from: the daemon, or one probe round of a standalone command.
    pub source: String,
    /// Observers that must agree before an automatic failover, this one included.
    #[serde(default = "one")]
    pub quorum: u32,
    /// The other observers (`[guardrails] witnesses`) and what they last said.
    #[serde(default)]
    pub witnesses: Vec<super::witness::WitnessView>,
}

fn one() -> u32 {
    1
}

#[derive(Clone, Debug, Serialize, Deserialize, schemars::JsonSchema)]
pub struct RegionView {
    pub region: RegionName,
    pub verdict: Verdict,
    pub serving: bool,
    pub healthy_for: Option<Duration>,
    pub replica_lag: Option<Duration>,
    pub in_sync: Option<bool>,
    pub role: Option<String>,
    /// The newest observation of the region's critical probes (what a witness's vote
    /// about it is dated by).
    #[serde(default)]
    pub observed_at: Option<Ts>,
}

#[derive(Clone, Debug, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ProbeView {
    pub probe: String,
    pub region: RegionName,
    pub component: String,
    pub kind: String,
    pub critical: bool,
    pub ok: bool,
    pub latency: Duration,
    pub consecutive_failures: u32,
    pub detail: Option<String>,
    pub last_error: Option<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize, schemars::JsonSchema)]
pub struct CurrentRun {
    pub run_id: RunId,
    pub direction: Direction,
    pub to: RegionName,
    /// Set while the run waits for an approval.
    pub waiting: Option<String>,
}

/// Builds the view from the controller's state and the tracker.
pub fn build(
    policy: &Policy,
    state: &State,
    tracker: &HealthTracker,
    links: &LinkMemory,
    last_run: Option<RunRecord>,
    now: Ts,
    source: String,
) -> StatusView {
    let summary = summarize(tracker, links, &state.active, Vec::new(), now);
    let regions = summary
        .regions
        .iter()
        .map(|h| RegionView {
            region: h.region.clone(),
            verdict: h.verdict,
            serving: h.region == state.active,
            healthy_for: h.healthy_since.map(|t| now.since(t)),
            replica_lag: h.replica_lag,
            in_sync: h.in_sync,
            role: tracker.role(&h.region).map(|r| r.role.to_string()),
            observed_at: tracker
                .probes()
                .filter(|p| p.critical && p.region == h.region)
                .map(|p| p.latest.at)
                .max(),
        })
        .collect();
    let probes = tracker
        .probes()
        .map(|p| {
            let spec = policy.probe(&p.probe);
            ProbeView {
                probe: p.probe.clone(),
                region: p.region.clone(),
                component: spec
                    .map(|s| s.component.as_str())
                    .unwrap_or("?")
                    .to_string(),
                kind: spec.map(|s| s.kind()).unwrap_or("?").to_string(),
                critical: p.critical,
                ok: p.latest.is_ok(),
                latency: p.latest.latency,
                consecutive_failures: p.consecutive_failures,
                detail: p.latest.detail.clone(),
                last_error: p.last_failure.as_ref().map(|f| f.reason.clone()),
            }
        })
        .collect();
    let (why, next_step) = match &state.phase {
        Phase::Blocked { hold, .. } => {
            (Some(hold.to_string()), hold.next_step().map(str::to_string))
        }
        Phase::FailingOver {
            waiting: Some(w),
            run,
            ..
        }
        | Phase::FailingBack {
            waiting: Some(w),
            run,
            ..
        } => (
            Some(format!("run {run} waits for an approval: {w}")),
            Some(format!(
                "lifeboat approve {run} (or lifeboat abort {run} --reason …)"
            )),
        ),
        _ => match &state.paused {
            Some(p) => (
                Some(format!("paused by {}: {}", p.by, p.reason)),
                Some("lifeboat resume".to_string()),
            ),
            None => (None, None),
        },
    };
    let current_run = match &state.phase {
        Phase::FailingOver {
            run, to, waiting, ..
        } => Some(CurrentRun {
            run_id: run.clone(),
            direction: Direction::Failover,
            to: to.clone(),
            waiting: waiting.clone(),
        }),
        Phase::FailingBack { run, waiting, .. } => Some(CurrentRun {
            run_id: run.clone(),
            direction: Direction::Failback,
            to: policy.regions.primary.clone(),
            waiting: waiting.clone(),
        }),
        _ => None,
    };
    StatusView {
        service: policy.service.clone(),
        mode: policy.detection.mode,
        state: state.display_name().to_string(),
        phase: state.phase.clone(),
        active: state.active.clone(),
        primary: policy.regions.primary.clone(),
        why,
        next_step,
        paused: state.paused.clone(),
        frozen_until: state
            .frozen_until
            .filter(|(until, _)| now < *until)
            .map(|(until, _)| until),
        regions,
        probes,
        last_decision: state.last_decision.clone(),
        current_run,
        last_run,
        worst_case_detection: policy.detection.worst_case_detection(),
        observed_at: now,
        source,
        quorum: policy.guardrails.quorum,
        witnesses: Vec::new(),
    }
}
