//! The daemon's Prometheus metrics: what the probes see, what the controller decided and
//! why, how runs and steps went. Served as text on `GET /metrics`.
//!
//! Every series carries the policy's `service` label (as Patroni's carry `scope`), so
//! one Prometheus can watch several services. The alert rules and the dashboard in
//! `deploy/` are written against these names; `tests/deploy.rs` holds them to it.

use std::sync::Mutex;
use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::core::controller::{Phase, State};
use crate::core::health::{HealthTracker, Observation, Role, Verdict};
use crate::core::model::{Policy, RegionName};
use crate::core::time::Ts;
use crate::daemon::witness::WitnessView;

mod extra;
#[cfg(test)]
mod tests;

use extra::{InfoLabels, More, RoleLabels, WitnessLabels, redact};

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

/// What the metrics remember between calls, to label what comes next.
#[derive(Debug, Default)]
struct Memory {
    regions: Vec<String>,
    active: Option<String>,
    /// When the run in progress started, for its duration when it ends.
    run_started: Option<Ts>,
    /// The region whose old primary a failover could not fence.
    unfenced: Option<String>,
    /// The reasons `blocked` has a series for: kept at 0 once over, so a dashboard and
    /// `absent()` see the series rather than a gap.
    block_reasons: Vec<String>,
    /// Each (probe, region)'s series, looked up once: a fleet records thousands of
    /// rounds a second, and a family lookup hashes and compares five label strings.
    probes: Vec<ProbeSeries>,
    /// The region verdicts and lags last set, so a round that changes neither sets
    /// nothing.
    verdicts: Vec<(String, &'static str, f64)>,
    /// The state and blocking reason last set (the serving region is `active`).
    shown: Option<(&'static str, Option<&'static str>)>,
}

/// The series one (probe, region) sets on every round (handles to the family's own).
#[derive(Debug)]
struct ProbeSeries {
    probe: String,
    region: String,
    up: Gauge,
    latency: Histogram,
    failures: Gauge,
}

/// The reasons the alert rules name, given a series from the start.
const ALERTED_BLOCKS: [&str; 2] = ["no_quorum", "replica_lag"];

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
    more: More,
    memory: Mutex<Memory>,
}

const ROLES: [(Role, &str); 3] = [
    (Role::Primary, "primary"),
    (Role::Standby, "standby"),
    (Role::Fenced, "fenced"),
];
const DIRECTIONS: [&str; 2] = ["failover", "failback"];
const OUTCOMES: [&str; 4] = ["completed", "failed", "refused", "aborted"];

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
        Metrics::with_registry(Registry::with_prefix("lifeboat"))
    }

    /// The daemon's metrics for one policy: every series labelled with its service, the
    /// settings alerts compare against exported, and the counters and per-region series
    /// created at zero so that `increase()` sees their first change.
    pub fn for_policy(policy: &Policy) -> Metrics {
        let service = (
            std::borrow::Cow::Borrowed("service"),
            std::borrow::Cow::Owned(policy.service.clone()),
        );
        let m = Metrics::with_registry(Registry::with_prefix_and_labels(
            "lifeboat",
            std::iter::once(service),
        ));
        let s = &m.more;
        s.info
            .get_or_create(&InfoLabels {
                version: env!("CARGO_PKG_VERSION").to_string(),
                mode: policy.detection.mode.as_str().to_string(),
            })
            .set(1);
        s.interval.set(policy.detection.interval.as_secs_f64());
        s.timeout.set(policy.detection.timeout.as_secs_f64());
        s.rpo_budget.set(policy.guardrails.rpo_budget.as_secs_f64());
        s.quorum.set(i64::from(policy.guardrails.quorum));
        s.observers
            .set(policy.guardrails.witnesses.len() as i64 + 1);
        for direction in DIRECTIONS {
            for outcome in OUTCOMES {
                m.runs
                    .get_or_create(&RunLabels {
                        direction: direction.to_string(),
                        outcome: outcome.to_string(),
                    })
                    .inc_by(0);
            }
        }
        for trigger in ["automatic", "operator"] {
            m.failovers
                .get_or_create(&FailoverLabels {
                    trigger: trigger.to_string(),
                })
                .inc_by(0);
        }
        for w in &policy.guardrails.witnesses {
            m.more
                .witness_up
                .get_or_create(&WitnessLabels { witness: redact(w) })
                .set(0);
        }
        for direction in DIRECTIONS {
            for outcome in OUTCOMES {
                let _ = m.more.run_duration.get_or_create(&RunLabels {
                    direction: direction.to_string(),
                    outcome: outcome.to_string(),
                });
            }
        }
        let regions: Vec<String> = policy.regions.serving().map(|r| r.to_string()).collect();
        for r in &regions {
            m.more
                .unfenced_primary
                .get_or_create(&RegionLabels { region: r.clone() })
                .set(0);
        }
        for reason in ALERTED_BLOCKS {
            m.blocked
                .get_or_create(&ReasonLabels {
                    reason: reason.to_string(),
                })
                .set(0);
        }
        if let Ok(mut mem) = m.memory.lock() {
            mem.regions = regions;
            mem.block_reasons = ALERTED_BLOCKS.iter().map(|r| r.to_string()).collect();
        }
        m
    }

    fn with_registry(mut registry: Registry) -> Metrics {
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
        let more = More::register(&mut registry);
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
            "1 while a guardrail holds an action, labelled with its reason (0 for reasons no longer holding)",
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
            more,
            memory: Mutex::new(Memory::default()),
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
        let failures = tracker
            .probe(&obs.probe, &obs.region)
            .map_or(0, |p| p.consecutive_failures);
        let verdicts: Vec<(RegionName, Verdict)> = tracker.verdicts();
        {
            let mut mem = match self.memory.lock() {
                Ok(m) => m,
                Err(p) => p.into_inner(),
            };
            let at = match mem
                .probes
                .iter()
                .position(|p| p.probe == obs.probe && p.region == obs.region.as_str())
            {
                Some(at) => at,
                None => {
                    let labels = Metrics::probe_labels(policy, obs);
                    mem.probes.push(ProbeSeries {
                        probe: obs.probe.clone(),
                        region: obs.region.to_string(),
                        up: self.probe_up.get_or_create(&labels).clone(),
                        latency: self.probe_latency.get_or_create(&labels).clone(),
                        failures: self.probe_failures.get_or_create(&labels).clone(),
                    });
                    mem.probes.len() - 1
                }
            };
            let series = &mem.probes[at];
            series.up.set(i64::from(obs.is_ok()));
            series.latency.observe(obs.latency.as_secs_f64());
            series.failures.set(i64::from(failures));
            let now: Vec<(&RegionName, &'static str, f64)> = verdicts
                .iter()
                .map(|(region, verdict)| {
                    let lag = tracker
                        .replica_lag(region)
                        .and_then(|r| r.lag.duration())
                        .map_or(0.0, |d| d.as_secs_f64());
                    (region, verdict_name(*verdict), lag)
                })
                .collect();
            let same = now.len() == mem.verdicts.len()
                && now.iter().zip(&mem.verdicts).all(|(a, b)| {
                    a.0.as_str() == b.0 && a.1 == b.1 && a.2.to_bits() == b.2.to_bits()
                });
            if !same {
                for (region, current, lag) in &now {
                    for v in VERDICTS {
                        let l = VerdictLabels {
                            region: region.to_string(),
                            verdict: v.to_string(),
                        };
                        self.region_verdict
                            .get_or_create(&l)
                            .set(i64::from(v == *current));
                    }
                    self.replica_lag
                        .get_or_create(&RegionLabels {
                            region: region.to_string(),
                        })
                        .set(*lag);
                }
                mem.verdicts = now
                    .into_iter()
                    .map(|(r, v, lag)| (r.to_string(), v, lag))
                    .collect();
            }
        }
        if let Some(role) = obs.role {
            self.database_role_seen(&obs.region.to_string(), role);
        }
    }

    /// A database reported its role. An old primary the failover could not fence stays
    /// flagged until it is seen refusing writes (fenced) or replaying (rejoined).
    fn database_role_seen(&self, region: &str, role: Role) {
        for (r, name) in ROLES {
            self.more
                .database_role
                .get_or_create(&RoleLabels {
                    region: region.to_string(),
                    role: name.to_string(),
                })
                .set(i64::from(r == role));
        }
        let Ok(mut mem) = self.memory.lock() else {
            return;
        };
        if mem.unfenced.as_deref() == Some(region) && role != Role::Primary {
            mem.unfenced = None;
            self.more
                .unfenced_primary
                .get_or_create(&RegionLabels {
                    region: region.to_string(),
                })
                .set(0);
        }
    }

    /// The controller stepped.
    pub fn controller(&self, state: &State) {
        let current = state.display_name();
        let (started, waiting) = match &state.phase {
            Phase::FailingOver {
                started, waiting, ..
            }
            | Phase::FailingBack {
                started, waiting, ..
            } => (Some(*started), waiting.is_some()),
            _ => (None, false),
        };
        self.more.awaiting_approval.set(i64::from(waiting));
        // Votes are counted for a failover only while this controller sees the serving
        // region down; otherwise none are cast.
        if let Some(h) = &state.health {
            let sees_down = h
                .get(&state.active)
                .is_some_and(|r| matches!(r.verdict, Verdict::Down { .. }));
            self.more
                .quorum_votes
                .set(if sees_down { i64::from(h.votes()) } else { 0 });
        }
        let Ok(mut mem) = self.memory.lock() else {
            return;
        };
        mem.run_started = started;
        let blocked = match &state.phase {
            Phase::Blocked { hold, .. } => Some(hold.label()),
            _ => None,
        };
        // Most steps change none of the labelled series: a fleet steps thousands of
        // times a second.
        if mem.shown == Some((current, blocked))
            && mem.active.as_deref() == Some(state.active.as_str())
        {
            return;
        }
        mem.shown = Some((current, blocked));
        for s in STATES {
            self.state
                .get_or_create(&StateLabels {
                    state: s.to_string(),
                })
                .set(i64::from(s == current));
        }
        if let Some(b) = blocked
            && !mem.block_reasons.iter().any(|r| r == b)
        {
            mem.block_reasons.push(b.to_string());
        }
        for r in &mem.block_reasons {
            self.blocked
                .get_or_create(&ReasonLabels { reason: r.clone() })
                .set(i64::from(Some(r.as_str()) == blocked));
        }
        let active = state.active.to_string();
        for r in &mem.regions {
            self.more
                .active_region
                .get_or_create(&RegionLabels { region: r.clone() })
                .set(i64::from(*r == active));
        }
        mem.active = Some(active);
    }

    /// The failover's fence step could not reach the old primary (`NOT FENCED`): it is
    /// flagged until it is seen fenced or rejoined as a standby.
    pub fn fence_failed(&self) {
        let Ok(mut mem) = self.memory.lock() else {
            return;
        };
        // The fence acts on the region being left, which is still the active one while
        // the failover runs.
        if let Some(region) = mem.active.clone() {
            self.more
                .unfenced_primary
                .get_or_create(&RegionLabels {
                    region: region.clone(),
                })
                .set(1);
            mem.unfenced = Some(region);
        }
    }

    /// The witnesses' latest answers: up while an answer is recent enough to vote.
    pub fn witnesses(&self, views: &[WitnessView]) {
        for v in views {
            self.more
                .witness_up
                .get_or_create(&WitnessLabels {
                    witness: redact(&v.url),
                })
                .set(i64::from(v.fresh));
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
        let labels = RunLabels {
            direction: direction.to_string(),
            outcome: outcome.to_string(),
        };
        self.runs.get_or_create(&labels).inc();
        let started = self.memory.lock().ok().and_then(|m| m.run_started);
        if let Some(started) = started {
            let now = crate::clock::WallClock::system().now();
            self.more
                .run_duration
                .get_or_create(&labels)
                .observe(now.since(started).as_secs_f64());
        }
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

    fn noticed(&self, notice: &crate::core::reason::Notice) {
        match notice {
            crate::core::reason::Notice::OldPrimaryNotFenced { .. } => self.fence_failed(),
        }
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

/// The series that belong to the process rather than to one service (the probe rounds'
/// lateness, across every service's scheduler).
pub fn process() -> String {
    let mut r = Registry::with_prefix("lifeboat");
    r.register(
        "probe_round_delay_seconds",
        "How late probe rounds started after they were due, every service together",
        crate::probe::scheduler::round_delay().clone(),
    );
    let mut out = String::new();
    let _ = prometheus_client::encoding::text::encode(&mut out, &r);
    out
}

/// Several expositions (one per service) as one: each metric family once, with its
/// `# HELP`, `# TYPE` and `# UNIT` lines, then every service's samples of it, and one
/// `# EOF` at the end. Prometheus refuses a family whose metadata comes twice.
pub fn merge(parts: Vec<String>) -> String {
    let chunks = merge_chunks(parts);
    let mut out = String::with_capacity(chunks.iter().map(|c| c.len()).sum());
    for c in &chunks {
        out.push_str(&String::from_utf8_lossy(c));
    }
    out
}

/// `merge`, as pieces of the parts themselves to send one after the other: a fleet's
/// page is megabytes, and a merged copy would hold it twice while it is sent.
pub fn merge_chunks(parts: Vec<String>) -> Vec<axum::body::Bytes> {
    use axum::body::Bytes;
    /// A family's description lines, and the runs of its samples in each part.
    #[derive(Default)]
    struct Family {
        meta: Vec<Bytes>,
        samples: Vec<Bytes>,
    }
    let mut order: Vec<String> = Vec::new();
    let mut families: std::collections::HashMap<String, Family> = std::collections::HashMap::new();
    fn family<'f>(
        order: &mut Vec<String>,
        families: &'f mut std::collections::HashMap<String, Family>,
        name: &str,
    ) -> &'f mut Family {
        if !families.contains_key(name) {
            order.push(name.to_string());
        }
        families.entry(name.to_string()).or_default()
    }
    for mut part in parts {
        if !part.ends_with('\n') {
            part.push('\n');
        }
        let part = Bytes::from(part);
        let text = std::str::from_utf8(&part).unwrap_or_default();
        let mut current = String::new();
        // The run of sample lines not yet handed out: (start, end) in `part`.
        let mut run: Option<(usize, usize)> = None;
        let mut at = 0;
        for line in text.split_inclusive('\n') {
            let (start, end) = (at, at + line.len());
            at = end;
            let bare = line.trim_end_matches('\n');
            if bare.starts_with("# ") || bare.is_empty() {
                if let Some((a, b)) = run.take() {
                    family(&mut order, &mut families, &current)
                        .samples
                        .push(part.slice(a..b));
                }
                let Some(meta) = bare.strip_prefix("# ") else {
                    continue;
                };
                if meta == "EOF" {
                    continue;
                }
                let mut words = meta.splitn(3, ' ');
                let (kind, name) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
                if kind == "HELP" || current != name {
                    current = name.to_string();
                }
                let f = family(&mut order, &mut families, name);
                let prefix = format!("# {kind} ");
                if !f.meta.iter().any(|m| m.starts_with(prefix.as_bytes())) {
                    f.meta.push(part.slice(start..end));
                }
                continue;
            }
            run = Some(run.map_or((start, end), |(a, _)| (a, end)));
        }
        if let Some((a, b)) = run.take() {
            family(&mut order, &mut families, &current)
                .samples
                .push(part.slice(a..b));
        }
    }
    let mut out = Vec::new();
    for name in order {
        if let Some(f) = families.remove(&name) {
            out.extend(f.meta);
            out.extend(f.samples);
        }
    }
    out.push(Bytes::from_static(b"# EOF\n"));
    out
}

/// A label value as the exposition format writes it.
pub fn escape_label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}
