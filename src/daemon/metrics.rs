//! The daemon's Prometheus metrics: what the probes see, what the controller decided and
//! why, how runs and steps went. Served as text on `GET /metrics`.

use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::core::controller::State;
use crate::core::health::{HealthTracker, Observation, Verdict};
use crate::core::model::Policy;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ProbeLabels {
    pub probe: String,
    pub region: String,
    pub component: String,
    pub kind: String,
    pub critical: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RegionLabels {
    pub region: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct VerdictLabels {
    pub region: String,
    pub verdict: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StateLabels {
    pub state: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabels {
    pub reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RunLabels {
    pub direction: String,
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StepLabels {
    pub step: String,
    pub kind: String,
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FailoverLabels {
    pub trigger: String,
}

/// Every metric the daemon keeps, registered once.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    probe_up: Family<ProbeLabels, Gauge>,
    probe_latency: Family<ProbeLabels, Histogram>,
    probe_failures: Family<ProbeLabels, Gauge>,
    region_verdict: Family<VerdictLabels, Gauge>,
    replica_lag: Family<RegionLabels, Gauge<f64, AtomicU64>>,
    state: Family<StateLabels, Gauge>,
    blocked: Family<ReasonLabels, Gauge>,
    runs: Family<RunLabels, Counter>,
    step_duration: Family<StepLabels, Histogram>,
    failovers: Family<FailoverLabels, Counter>,
    detection_to_decision: Histogram,
    readiness: super::metrics_readiness::ReadinessMetrics,
}

const VERDICTS: [&str; 6] = [
    "unknown",
    "healthy",
    "suspect",
    "down",
    "recovering",
    "observer_isolated",
];
const STATES: [&str; 8] = [
    "primary",
    "suspect",
    "starting",
    "failing_over",
    "on_secondary",
    "failing_back",
    "blocked",
    "paused",
];

fn verdict_name(v: Verdict) -> &'static str {
    match v {
        Verdict::Unknown => "unknown",
        Verdict::Healthy => "healthy",
        Verdict::Suspect { .. } => "suspect",
        Verdict::Down { .. } => "down",
        Verdict::Recovering { .. } => "recovering",
        Verdict::ObserverIsolated { .. } => "observer_isolated",
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("lifeboat");
        let probe_up = Family::<ProbeLabels, Gauge>::default();
        let probe_latency = Family::<ProbeLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.001, 2.0, 14))
        });
        let probe_failures = Family::<ProbeLabels, Gauge>::default();
        let region_verdict = Family::<VerdictLabels, Gauge>::default();
        let replica_lag = Family::<RegionLabels, Gauge<f64, AtomicU64>>::default();
        let state = Family::<StateLabels, Gauge>::default();
        let blocked = Family::<ReasonLabels, Gauge>::default();
        let runs = Family::<RunLabels, Counter>::default();
        let step_duration = Family::<StepLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.01, 2.0, 16))
        });
        let failovers = Family::<FailoverLabels, Counter>::default();
        let detection_to_decision = Histogram::new(exponential_buckets(0.01, 2.0, 14));
        registry.register(
            "probe_up",
            "1 when the probe's latest round passed, 0 when it failed",
            probe_up.clone(),
        );
        registry.register(
            "probe_latency_seconds",
            "How long probe rounds took",
            probe_latency.clone(),
        );
        registry.register(
            "probe_consecutive_failures",
            "Failed rounds in a row",
            probe_failures.clone(),
        );
        registry.register(
            "region_verdict",
            "1 for the region's current verdict, 0 for the others",
            region_verdict.clone(),
        );
        registry.register(
            "replica_lag_seconds",
            "The replica lag the RPO guardrail reads, per region",
            replica_lag.clone(),
        );
        registry.register(
            "controller_state",
            "1 for the controller's current state, 0 for the others",
            state.clone(),
        );
        registry.register(
            "blocked",
            "1 while a guardrail holds an action, labelled with its reason",
            blocked.clone(),
        );
        registry.register(
            "runs",
            "Runs that ended, by direction and outcome",
            runs.clone(),
        );
        registry.register(
            "step_duration_seconds",
            "How long steps took, by outcome",
            step_duration.clone(),
        );
        registry.register(
            "failovers",
            "Failovers started, automatically or by an operator",
            failovers.clone(),
        );
        registry.register(
            "detection_to_decision_seconds",
            "From the outage being detected to the failover being started",
            detection_to_decision.clone(),
        );
        let readiness = super::metrics_readiness::ReadinessMetrics::register(&mut registry);
        Metrics {
            readiness,
            registry,
            probe_up,
            probe_latency,
            probe_failures,
            region_verdict,
            replica_lag,
            state,
            blocked,
            runs,
            step_duration,
            failovers,
            detection_to_decision,
        }
    }

    fn probe_labels(policy: &Policy, obs: &Observation) -> ProbeLabels {
        let spec = policy.probe(&obs.probe);
        ProbeLabels {
            probe: obs.probe.clone(),
            region: obs.region.to_string(),
            component: spec
                .map(|p| p.component.as_str())
                .unwrap_or("unknown")
                .to_string(),
            kind: spec.map(|p| p.kind()).unwrap_or("unknown").to_string(),
            critical: spec.is_some_and(|p| p.critical).to_string(),
        }
    }

    /// A probe round came in.
    pub fn observed(&self, policy: &Policy, obs: &Observation, tracker: &HealthTracker) {
        let labels = Metrics::probe_labels(policy, obs);
        self.probe_up
            .get_or_create(&labels)
            .set(i64::from(obs.is_ok()));
        self.probe_latency
            .get_or_create(&labels)
            .observe(obs.latency.as_secs_f64());
        let failures = tracker
            .probe(&obs.probe, &obs.region)
            .map_or(0, |p| p.consecutive_failures);
        self.probe_failures
            .get_or_create(&labels)
            .set(i64::from(failures));
        for (region, verdict) in tracker.verdicts() {
            let current = verdict_name(verdict);
            for v in VERDICTS {
                let l = VerdictLabels {
                    region: region.to_string(),
                    verdict: v.to_string(),
                };
                self.region_verdict
                    .get_or_create(&l)
                    .set(i64::from(v == current));
            }
            let lag = tracker
                .replica_lag(&region)
                .and_then(|r| r.lag.duration())
                .map_or(0.0, |d| d.as_secs_f64());
            self.replica_lag
                .get_or_create(&RegionLabels {
                    region: region.to_string(),
                })
                .set(lag);
        }
    }

    /// The controller stepped.
    pub fn controller(&self, state: &State) {
        let current = state.display_name();
        for s in STATES {
            self.state
                .get_or_create(&StateLabels {
                    state: s.to_string(),
                })
                .set(i64::from(s == current));
        }
        self.blocked.clear();
        if let crate::core::controller::Phase::Blocked { hold, .. } = &state.phase {
            self.blocked
                .get_or_create(&ReasonLabels {
                    reason: hold.label().to_string(),
                })
                .set(1);
        }
    }

    pub fn failover_started(
        &self,
        automatic: bool,
        detection_to_decision: Option<std::time::Duration>,
    ) {
        let trigger = if automatic { "automatic" } else { "operator" };
        self.failovers
            .get_or_create(&FailoverLabels {
                trigger: trigger.to_string(),
            })
            .inc();
        if let Some(d) = detection_to_decision {
            self.detection_to_decision.observe(d.as_secs_f64());
        }
    }

    pub fn run_ended(&self, direction: &str, outcome: &str) {
        self.runs
            .get_or_create(&RunLabels {
                direction: direction.to_string(),
                outcome: outcome.to_string(),
            })
            .inc();
    }

    pub fn step_ended(&self, step: &str, kind: &str, outcome: &str, seconds: f64) {
        let l = StepLabels {
            step: step.to_string(),
            kind: kind.to_string(),
            outcome: outcome.to_string(),
        };
        self.step_duration.get_or_create(&l).observe(seconds);
    }

    /// The Prometheus text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

/// The driver reports to the metrics as it goes.
impl crate::driver::Observer for Metrics {
    fn decided(&self, state: &State) {
        self.controller(state);
    }

    fn run_started(
        &self,
        request: &crate::core::controller::RunRequest,
        detection_to_decision: Option<std::time::Duration>,
    ) {
        if request.direction == crate::core::model::Direction::Failover {
            self.failover_started(request.automatic(), detection_to_decision);
        }
    }

    fn run_ended(&self, direction: crate::core::model::Direction, outcome: &str) {
        Metrics::run_ended(self, direction.as_str(), outcome);
    }

    fn step_ended(
        &self,
        step: &str,
        kind: crate::core::kind::StepKind,
        outcome: &str,
        seconds: f64,
    ) {
        Metrics::step_ended(self, step, kind.name(), outcome, seconds);
    }

    fn readiness(&self, report: &crate::core::readiness::ReadinessReport) {
        self.readiness.round(report);
    }
}
