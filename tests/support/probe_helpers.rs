//! Helpers shared by the probe integration tests: build one probe from a check and an
//! endpoint, run one round, and assert on the outcome.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::time::Duration;

use lifeboat::clients::aws::AwsClients;
use lifeboat::core::health::Observation;
use lifeboat::core::model::{
    Component, Endpoint, ProbeCheck, ProbeSpec, RegionName, Target, TargetKind,
};
use lifeboat::probe::{self, Clock, Context, RegionProbe};

pub const REGION: &str = "us-east-1";

pub fn region() -> RegionName {
    RegionName::new(REGION)
}

pub fn ctx(timeout: Duration, aws: Option<AwsClients>) -> Context {
    Context::new(aws, timeout, Duration::from_secs(1))
}

/// Runs one round of a `check` probe on `endpoint` (no target for `None`).
pub async fn round(check: ProbeCheck, endpoint: Option<Endpoint>, ctx: &Context) -> Observation {
    build(check, endpoint, ctx).run(&Clock::system()).await
}

/// A critical `check` probe on `endpoint` (no target for `None`).
pub fn build(check: ProbeCheck, endpoint: Option<Endpoint>, ctx: &Context) -> RegionProbe {
    let spec = ProbeSpec {
        name: "p".into(),
        component: Component::Api,
        critical: true,
        target: endpoint.as_ref().map(|_| "t".to_string()),
        regions: vec![region()],
        check,
    };
    let target = endpoint.map(|e| Target {
        name: "t".into(),
        kind: TargetKind::Http,
        regions: BTreeMap::from([(region(), e)]),
    });
    probe::build(&spec, target.as_ref(), &region(), ctx).expect("build the probe")
}

pub fn ok(obs: &Observation) -> &Observation {
    assert!(obs.is_ok(), "expected a pass, got {obs:?}");
    obs
}

pub fn failed(obs: &Observation) -> &str {
    obs.reason()
        .unwrap_or_else(|| panic!("expected a failure, got {obs:?}"))
}

pub fn heartbeat(
    max_age: Option<Duration>,
    key: Option<&str>,
    min_count: Option<u32>,
) -> ProbeCheck {
    ProbeCheck::Heartbeat {
        max_age,
        key: key.map(str::to_string),
        min_count,
    }
}
