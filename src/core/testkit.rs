//! Test fixtures for `core`: a small policy built in code, so core's tests need nothing
//! outside core.

use std::time::Duration;

use super::model::{
    Action, AwsSettings, Detection, Guardrails, JournalSettings, Mode, Policy, RegionName,
    RegionRef, Regions, Runbook, StepSpec,
};

pub fn step(name: &str, region: RegionRef, stage: Option<&str>) -> StepSpec {
    StepSpec {
        name: name.to_string(),
        region,
        stage: stage.map(str::to_string),
        timeout: Duration::from_secs(60),
        continue_on_error: false,
        action: Action::Command {
            run: vec!["true".to_string()],
        },
    }
}

/// A policy with primary `east` and secondaries `west`, `eu` (in that order), probing
/// every 10 s, threshold 3, mode auto, RPO budget 5 s, cooldown 10 min, at most 1
/// automatic failover per day, failback after 10 min of health.
pub fn policy(failover: Vec<StepSpec>) -> Policy {
    Policy {
        service: "svc".to_string(),
        description: None,
        regions: Regions {
            primary: RegionName::new("east"),
            secondaries: vec![RegionName::new("west"), RegionName::new("eu")],
            witness: None,
        },
        detection: Detection {
            interval: Duration::from_secs(10),
            timeout: Duration::from_secs(2),
            failure_threshold: 3,
            recovery_threshold: 3,
            mode: Mode::Auto,
        },
        guardrails: Guardrails {
            rpo_budget: Duration::from_secs(5),
            cooldown: Duration::from_secs(600),
            max_failovers: 1,
            failover_window: Duration::from_secs(86_400),
            auto_failback: false,
            failback_healthy_for: Duration::from_secs(600),
            clock_jump_tolerance: Duration::from_secs(20),
            freeze_for: Duration::from_secs(120),
            quorum: 1,
            witnesses: vec![],
            witness_key: None,
        },
        journal: JournalSettings::default(),
        aws: AwsSettings::default(),
        commands: Default::default(),
        coordination: Default::default(),
        channels: vec![],
        targets: vec![],
        probes: vec![],
        failover: Runbook { steps: failover },
        failback: Runbook {
            steps: vec![step("back", RegionRef::To, None)],
        },
    }
}
