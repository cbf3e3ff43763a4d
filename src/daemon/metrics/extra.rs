//! The series added for the alert rules and the dashboard (`deploy/`): the policy's
//! settings the alerts compare against, the serving region, database roles, an unfenced
//! old primary, approvals, quorum votes, witnesses and run durations.

use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use super::{RegionLabels, RunLabels};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RoleLabels {
    pub region: String,
    pub role: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct WitnessLabels {
    pub witness: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct InfoLabels {
    pub version: String,
    pub mode: String,
}

/// The series added for the alert rules and the dashboard.
#[derive(Debug)]
pub(super) struct More {
    pub info: Family<InfoLabels, Gauge>,
    pub interval: Gauge<f64, AtomicU64>,
    pub timeout: Gauge<f64, AtomicU64>,
    pub rpo_budget: Gauge<f64, AtomicU64>,
    pub quorum: Gauge,
    pub observers: Gauge,
    pub quorum_votes: Gauge,
    pub active_region: Family<RegionLabels, Gauge>,
    pub database_role: Family<RoleLabels, Gauge>,
    pub unfenced_primary: Family<RegionLabels, Gauge>,
    pub awaiting_approval: Gauge,
    pub witness_up: Family<WitnessLabels, Gauge>,
    pub run_duration: Family<RunLabels, Histogram>,
}

/// A URL as a label: without any `user:password@`.
pub(super) fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            format!("{}{}", &url[..scheme + 3], &url[at + 1..])
        }
        _ => url.to_string(),
    }
}

impl More {
    /// Creates the series and registers them.
    pub fn register(registry: &mut Registry) -> More {
        let m = More {
            info: Family::default(),
            interval: Gauge::default(),
            timeout: Gauge::default(),
            rpo_budget: Gauge::default(),
            quorum: Gauge::default(),
            observers: Gauge::default(),
            quorum_votes: Gauge::default(),
            active_region: Family::default(),
            database_role: Family::default(),
            unfenced_primary: Family::default(),
            awaiting_approval: Gauge::default(),
            witness_up: Family::default(),
            // Runs take from a second (the sandbox) to an hour (an Aurora failover).
            run_duration: Family::new_with_constructor(|| {
                Histogram::new(exponential_buckets(0.25, 2.0, 16))
            }),
        };
        let r = registry;
        let info = "1, labelled with the daemon's version and the policy's mode";
        r.register("info", info, m.info.clone());
        r.register(
            "detection_interval_seconds",
            "How often the probes run (detection.interval)",
            m.interval.clone(),
        );
        r.register(
            "detection_timeout_seconds",
            "How long a probe round may take (detection.timeout)",
            m.timeout.clone(),
        );
        r.register(
            "rpo_budget_seconds",
            "The largest replica lag an automatic promotion accepts (guardrails.rpo_budget)",
            m.rpo_budget.clone(),
        );
        r.register(
            "quorum_required",
            "Observers that must see an outage before an automatic failover (guardrails.quorum)",
            m.quorum.clone(),
        );
        r.register(
            "observers",
            "Observers that can vote: this daemon and its witnesses",
            m.observers.clone(),
        );
        r.register(
            "quorum_votes",
            "Observers (this one included) that see the serving region down, while this one does (else 0)",
            m.quorum_votes.clone(),
        );
        r.register(
            "active_region",
            "1 for the region serving traffic, 0 for the others",
            m.active_region.clone(),
        );
        r.register(
            "database_role",
            "1 for the role each region's database last reported (primary, standby, fenced)",
            m.database_role.clone(),
        );
        r.register(
            "unfenced_primary",
            "1 while an old primary a failover could not fence has not been seen fenced or rejoined",
            m.unfenced_primary.clone(),
        );
        r.register(
            "awaiting_approval",
            "1 while a run is paused for an approval (lifeboat approve)",
            m.awaiting_approval.clone(),
        );
        r.register(
            "witness_up",
            "1 while the witness's latest answer is recent enough to vote",
            m.witness_up.clone(),
        );
        r.register(
            "run_duration_seconds",
            "How long runs took, from start to end, by direction and outcome",
            m.run_duration.clone(),
        );
        m
    }
}
