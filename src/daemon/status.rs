//! What `lifeboat status` shows and `GET /v1/status` returns: the controller's state and
//! why, where the service runs, each region's and each probe's health, the current and
//! last run. Built the same way by the daemon and by a standalone `status`.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::core::controller::{Decision, Pause, Phase, State};
use crate::core::health::{HealthTracker, Verdict};
use crate::core::ids::RunId;
use crate::core::model::{Direction, Mode, Policy, RegionName};
use crate::core::reason::Hold;
use crate::core::summary::{LinkMemory, summarize};
use crate::core::time::{Ts, fmt_duration};
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
    /// The detection rule in words: rounds, span, fast confirmation, timeout.
    #[serde(default)]
    pub detection_rule: String,
    pub observed_at: Ts,
    /// Where this view comes from: the daemon, or one probe round of a standalone command.
    pub source: String,
    /// Observers that must agree before an automatic failover, this one included.
    #[serde(default = "one")]
    pub quorum: u32,
    /// The other observers (`[guardrails] witnesses`) and what they last said.
    #[serde(default)]
    pub witnesses: Vec<super::witness::WitnessView>,
    /// The daemon's latest readiness round (`None` before the first, and for a
    /// standalone status).
    #[serde(default)]
    pub readiness: Option<crate::core::readiness::ReadinessReport>,
    /// Who may act: `sole` (the embedded backend), `leading` with the epoch, or
    /// `following` with the leader's name when known.
    #[serde(default)]
    pub leadership: crate::core::controller::Leadership,
    /// Every observer's vote on the serving region as the controller last counted them
    /// (this controller, the witnesses, or on etcd every fresh vote).
    #[serde(default)]
    pub observers: Vec<crate::core::controller::ObserverVote>,
}

fn one() -> u32 {
    1
}

impl StatusView {
    /// The serving region passes its probes and nothing holds the controller back: what
    /// makes `lifeboat status` exit 0.
    pub fn healthy(&self) -> bool {
        self.regions
            .iter()
            .any(|r| r.serving && r.verdict.is_healthy())
            && self.why.is_none()
    }

    /// Why the quorum is short and what to do, when the controller holds a failover for
    /// want of votes and some witness is silent: a witness that does not answer (stopped,
    /// or cut off) is a different story from one that answers and sees the region up, and
    /// calls for a different next step. `None` when the generic reason says it all.
    pub fn quorum_explanation(&self) -> Option<(String, String)> {
        let Phase::Blocked {
            hold: Hold::NoQuorum { votes, quorum },
            ..
        } = &self.phase
        else {
            return None;
        };
        let silent: Vec<String> = self
            .witnesses
            .iter()
            .filter(|w| !w.fresh)
            .map(|w| {
                let when = match w.answered_ago {
                    None => "has never answered".to_string(),
                    Some(ago) => format!("has not answered for {}", fmt_duration(ago)),
                };
                let err = w
                    .last_error
                    .as_ref()
                    .map(|e| format!(" (last poll: {e})"))
                    .unwrap_or_default();
                format!("the witness {} {when}{err}", w.url)
            })
            .collect();
        if silent.is_empty() {
            return None;
        }
        let why = format!(
            "only {votes} of the {quorum} observers the quorum needs see {} down, and {}: a silent witness never votes, so this controller will not fail over by itself",
            self.active,
            silent.join("; ")
        );
        let next = "if the region really is down, fail over by hand: lifeboat failover; then bring the witness back (lifeboat run --witness where it runs) so automatic failover can count its vote again".to_string();
        Some((why, next))
    }
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
        detection_rule: policy.detection.rule_in_words(),
        observed_at: now,
        source,
        quorum: policy.guardrails.quorum,
        witnesses: Vec::new(),
        readiness: None,
        leadership: state.leadership.clone(),
        observers: state
            .health
            .as_ref()
            .map(|h| h.observers.clone())
            .unwrap_or_default(),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::core::testkit;
    use crate::daemon::witness::WitnessView;

    fn blocked(hold: Hold, witnesses: Vec<WitnessView>) -> StatusView {
        let mut policy = testkit::policy(vec![]);
        policy.guardrails.quorum = 2;
        let t = Ts::from_secs(100);
        let state = State::new(&policy, RegionName::new("east"), t);
        let tracker = HealthTracker::for_policy(&policy);
        let v = build(
            &policy,
            &state,
            &tracker,
            &LinkMemory::default(),
            None,
            t,
            "test".into(),
        );
        StatusView {
            phase: Phase::Blocked { hold, since: t },
            witnesses,
            ..v
        }
    }

    fn witness(answered_ago: Option<u64>, fresh: bool, error: Option<&str>) -> WitnessView {
        WitnessView {
            url: "http://w:7300".into(),
            sees_down: vec![],
            answered_ago: answered_ago.map(Duration::from_secs),
            observed_ago: answered_ago.map(Duration::from_secs),
            fresh,
            last_error: error.map(str::to_string),
        }
    }

    #[test]
    fn a_silent_witness_is_named_as_why_the_quorum_is_short_with_what_to_do() {
        let v = blocked(
            Hold::NoQuorum {
                votes: 1,
                quorum: 2,
            },
            vec![witness(Some(12), false, Some("connection refused"))],
        );
        let (why, next) = v.quorum_explanation().expect("explained");
        assert_eq!(
            why,
            "only 1 of the 2 observers the quorum needs see east down, and the witness http://w:7300 has not answered for 12s (last poll: connection refused): a silent witness never votes, so this controller will not fail over by itself"
        );
        assert!(
            next.starts_with("if the region really is down, fail over by hand: lifeboat failover"),
            "{next}"
        );
        let text = crate::cli::status_text::render(&v, false);
        assert!(text.contains("has not answered for 12s"), "{text}");
        assert!(!text.contains("the witnesses still reach"), "{text}");
    }

    #[test]
    fn a_witness_that_answers_and_disagrees_keeps_the_generic_reason() {
        let reason = Hold::NoQuorum {
            votes: 1,
            quorum: 2,
        };
        let v = blocked(reason.clone(), vec![witness(Some(1), true, None)]);
        assert_eq!(v.quorum_explanation(), None);
        let v = blocked(
            Hold::ModeManual,
            vec![witness(None, false, Some("refused"))],
        );
        assert_eq!(
            v.quorum_explanation(),
            None,
            "only a quorum hold is explained"
        );
    }
}
