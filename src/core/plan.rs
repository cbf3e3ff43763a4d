//! Planning: policy + direction + regions → a `Plan`, the ordered stages a run will execute.
//!
//! A plan is data. `lifeboat plan` prints it, the executor runs it, the journal stores it,
//! so a resumed run executes exactly the plan it started with even if the policy file
//! changed in between.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use thiserror::Error;

use super::binding::{self, BindError, Binding};
use super::ids::{Epoch, RunId};
use super::kind::StepKind;
use super::model::{
    CacheScope, ChannelKind, Direction, DnsRecord, Mode, Policy, RegionName, RegionRef, StepSpec,
};
use super::reason::Trigger;
use super::time::fmt_duration;

/// What the caller wants planned.
#[derive(Clone, Debug)]
pub struct PlanRequest {
    pub direction: Direction,
    /// The region serving now.
    pub from: RegionName,
    /// The region the run moves the service to.
    pub to: RegionName,
    pub run_id: RunId,
    pub epoch: Epoch,
    /// Why the run starts (shown in the journal, notifications and `status`).
    pub trigger: Trigger,
    /// The operator accepted losing writes not yet replicated.
    pub allow_data_loss: bool,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Plan {
    pub run_id: RunId,
    pub service: String,
    pub direction: Direction,
    pub from: RegionName,
    pub to: RegionName,
    pub epoch: Epoch,
    /// Why the run started.
    pub trigger: Trigger,
    pub allow_data_loss: bool,
    /// The policy's RPO budget when the run was planned: a promotion step whose replica
    /// lag exceeds it asks for approval unless the run accepts data loss. Kept in the plan
    /// so a resumed run applies the budget it started with.
    #[serde(default)]
    pub rpo_budget: Duration,
    pub stages: Vec<Stage>,
    /// The guardrails that apply to this run, as sentences.
    pub guardrails: Vec<String>,
    pub detection: DetectionBound,
}

/// How long an outage can go unnoticed: interval + max((failure_threshold − 1) ×
/// confirm_interval, min_failure_span) + timeout, and the rule behind it in words.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct DetectionBound {
    pub interval: Duration,
    pub failure_threshold: u32,
    pub timeout: Duration,
    /// Plans journaled before fast confirmation existed have none: the interval.
    #[serde(default)]
    pub confirm_interval: Option<Duration>,
    #[serde(default)]
    pub min_failure_span: Option<Duration>,
    pub worst_case: Duration,
    /// The detection rule as a sentence.
    #[serde(default)]
    pub rule: String,
}

impl Plan {
    /// Why the run started, in words.
    pub fn reason(&self) -> String {
        self.trigger.to_string()
    }

    pub fn steps(&self) -> impl Iterator<Item = &PlannedStep> {
        self.stages.iter().flat_map(|s| s.steps.iter())
    }
    pub fn step(&self, name: &str) -> Option<&PlannedStep> {
        self.steps().find(|s| s.name == name)
    }
}

/// Steps that run at the same time. The next stage starts when all of them are done.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Stage {
    pub label: Option<String>,
    pub steps: Vec<PlannedStep>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct PlannedStep {
    /// Unique within the runbook; the journal keys step records by it.
    pub name: String,
    /// `@to` and `@from` resolved.
    pub region: RegionName,
    /// What the step acts on, resolved from the policy when the run was planned.
    pub binding: Binding,
    pub timeout: Duration,
    pub continue_on_error: bool,
    /// What the step will do, in one sentence.
    pub description: String,
}

impl PlannedStep {
    pub fn kind(&self) -> StepKind {
        self.binding.kind()
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum PlanError {
    #[error("cannot move `{0}` to itself: it is already the serving region")]
    SameRegion(RegionName),
    #[error("`{region}` is not a region of this service (regions: {known})")]
    UnknownRegion { region: RegionName, known: String },
    #[error(
        "a failover must go to a secondary region; `{0}` is the primary (use `failback` to return to it)"
    )]
    FailoverToPrimary(RegionName),
    #[error("a failback returns to the primary region `{primary}`, not to `{to}`")]
    FailbackNotToPrimary { to: RegionName, primary: RegionName },
    #[error("the {0} runbook has no steps")]
    EmptyRunbook(Direction),
    #[error(transparent)]
    Bind(#[from] BindError),
}

/// Builds the plan for one run.
///
/// Pure: the run id and epoch come from the caller. Fails when the regions do not fit the
/// direction or a step's target has no settings for the region it resolves to.
pub fn build(policy: &Policy, req: PlanRequest) -> Result<Plan, PlanError> {
    let regions = &policy.regions;
    for r in [&req.from, &req.to] {
        if !regions.is_serving(r) {
            let known: Vec<&str> = regions.serving().map(|r| r.as_str()).collect();
            return Err(PlanError::UnknownRegion {
                region: r.clone(),
                known: known.join(", "),
            });
        }
    }
    if req.from == req.to {
        return Err(PlanError::SameRegion(req.to));
    }
    match req.direction {
        Direction::Failover if req.to == regions.primary => {
            return Err(PlanError::FailoverToPrimary(req.to));
        }
        Direction::Failback if req.to != regions.primary => {
            return Err(PlanError::FailbackNotToPrimary {
                to: req.to,
                primary: regions.primary.clone(),
            });
        }
        _ => {}
    }
    let runbook = policy.runbook(req.direction);
    if runbook.steps.is_empty() {
        return Err(PlanError::EmptyRunbook(req.direction));
    }

    let mut stages: Vec<Stage> = Vec::new();
    for spec in &runbook.steps {
        let region = match &spec.region {
            RegionRef::Named(r) => r.clone(),
            RegionRef::To => req.to.clone(),
            RegionRef::From => req.from.clone(),
        };
        let step = planned_step(policy, spec, region, &req)?;
        let joins_previous = match (&spec.stage, stages.last()) {
            (Some(label), Some(last)) => last.label.as_deref() == Some(label.as_str()),
            _ => false,
        };
        if joins_previous {
            if let Some(last) = stages.last_mut() {
                last.steps.push(step);
            }
        } else {
            stages.push(Stage {
                label: spec.stage.clone(),
                steps: vec![step],
            });
        }
    }

    Ok(Plan {
        guardrails: guardrails(policy, req.direction),
        detection: DetectionBound {
            interval: policy.detection.interval,
            failure_threshold: policy.detection.failure_threshold,
            timeout: policy.detection.timeout,
            confirm_interval: Some(policy.detection.confirm_interval),
            min_failure_span: Some(policy.detection.min_failure_span),
            worst_case: policy.detection.worst_case_detection(),
            rule: policy.detection.rule_in_words(),
        },
        service: policy.service.clone(),
        run_id: req.run_id,
        direction: req.direction,
        from: req.from,
        to: req.to,
        epoch: req.epoch,
        trigger: req.trigger,
        allow_data_loss: req.allow_data_loss,
        rpo_budget: policy.guardrails.rpo_budget,
        stages,
    })
}

fn planned_step(
    policy: &Policy,
    spec: &StepSpec,
    region: RegionName,
    req: &PlanRequest,
) -> Result<PlannedStep, PlanError> {
    let binding = binding::bind(policy, &spec.name, &spec.action, &region, &req.from)?;
    Ok(PlannedStep {
        description: describe(policy, &binding, &region, req),
        name: spec.name.clone(),
        region,
        binding,
        timeout: spec.timeout,
        continue_on_error: spec.continue_on_error,
    })
}

/// One sentence saying what a step will do, with the resource names it will touch.
fn describe(policy: &Policy, binding: &Binding, region: &RegionName, req: &PlanRequest) -> String {
    match binding {
        Binding::RdsPromoteReplica { instance_id, .. } => format!(
            "promote RDS read replica `{instance_id}` in {region} (PromoteReadReplica, once its replication runs and its ReplicaLag is within the RPO budget, or data loss is accepted); wait until it is available and no longer a replica"
        ),
        Binding::AuroraGlobalFailover { cluster: a, .. } => {
            let loss = if req.allow_data_loss {
                "data loss accepted by the operator"
            } else {
                "refused if it would lose data"
            };
            format!(
                "fail global database `{}` over to cluster `{}` in {region} (FailoverGlobalCluster, {loss}); wait until it is the writer",
                a.global_cluster_id, a.cluster_id
            )
        }
        Binding::AuroraGlobalSwitchover { cluster: a, .. } => format!(
            "switch global database `{}` over to cluster `{}` in {region} (SwitchoverGlobalCluster, no data loss); wait until it is the writer",
            a.global_cluster_id, a.cluster_id
        ),
        Binding::PostgresPromote { db, .. } => format!(
            "promote PostgreSQL standby {db} in {region} (pg_promote, once its lag is within the RPO budget or data loss is accepted) and lift any read-only fence; verify it is out of recovery and accepts a test write"
        ),
        Binding::PostgresFence { db, .. } => format!(
            "fence PostgreSQL {db} in {region}: make it read-only and end client sessions, so it cannot take writes (recorded as unreachable if it is down)"
        ),
        Binding::PostgresCatchUp {
            db, writer_region, ..
        } => format!(
            "wait until standby {db} in {region} has replayed every write of the fenced writer in {writer_region} (lag 0)"
        ),
        Binding::Route53Switch { record: r, .. } => match &r.record {
            DnsRecord::FailoverPair {
                health_check_id, ..
            } => {
                let hc = health_check_id.as_deref().unwrap_or("read from the record");
                if *region == policy.regions.primary {
                    format!(
                        "point {} back at {region}: restore the PRIMARY record's health check ({hc}) to normal so Route 53 answers with the PRIMARY record (UpdateHealthCheck; no record is edited)",
                        r.record_name
                    )
                } else {
                    format!(
                        "point {} at {region}: invert the PRIMARY record's health check ({hc}) so Route 53 answers with the SECONDARY record (UpdateHealthCheck; no record is edited)",
                        r.record_name
                    )
                }
            }
            DnsRecord::Weighted { set_identifier } => format!(
                "set weight 100 on record {} set `{set_identifier}` ({region}) and 0 on the others (ChangeResourceRecordSets); wait for INSYNC",
                r.record_name
            ),
            DnsRecord::Simple { value } => format!(
                "UPSERT {} {} → {value} (ChangeResourceRecordSets); wait for INSYNC",
                r.record_name, r.record_type
            ),
        },
        Binding::AsgScale {
            group,
            min,
            desired,
            max,
            ..
        } => format!(
            "scale Auto Scaling group `{group}` in {region} to min {min} / desired {desired} / max {max}; wait until {desired} instances are InService"
        ),
        Binding::EcsScale {
            cluster,
            service,
            desired,
            ..
        } => format!(
            "set ECS service `{service}` (cluster `{cluster}`) in {region} to {desired} tasks; wait until {desired} are running"
        ),
        Binding::RedisInvalidate { url, scope, .. } => match scope {
            CacheScope::FlushDb => format!("flush Redis database {url} in {region} (FLUSHDB)"),
            CacheScope::Pattern(p) => format!(
                "delete keys matching `{p}` in Redis {url} ({region}) with SCAN + UNLINK in batches"
            ),
        },
        Binding::CloudfrontInvalidate {
            distribution_id,
            paths,
            ..
        } => format!(
            "invalidate {} in CloudFront distribution `{distribution_id}` (CreateInvalidation); wait until Completed",
            paths.join(", ")
        ),
        Binding::S3SyncCheck {
            dest,
            source,
            prefix,
            copy_missing,
            ..
        } => {
            let what = if *copy_missing {
                "copy what is missing"
            } else {
                "report what differs"
            };
            format!(
                "compare objects under `{prefix}` in bucket `{}` ({region}) with the {} bucket `{}` (keys and ETags); {what}",
                dest.bucket, source.region, source.bucket
            )
        }
        Binding::Notify { channel, .. } => {
            let how = match &channel.kind {
                ChannelKind::Sns { topic_arn } => format!("SNS topic {topic_arn}"),
                ChannelKind::Webhook { .. } => "webhook".to_string(),
            };
            format!(
                "notify channel `{}` ({how}) with the run's timeline; a failure is reported, never blocking",
                channel.name
            )
        }
        Binding::WaitHealthy {
            probes, successes, ..
        } => {
            let names: Vec<&str> = probes.iter().map(|p| p.spec.name.as_str()).collect();
            format!(
                "wait until probes {} in {region} pass {successes} rounds in a row",
                names.join(", ")
            )
        }
        Binding::ManualApproval { prompt } => {
            format!("pause for an operator: \"{prompt}\" (lifeboat approve RUN_ID)")
        }
        Binding::Command { run, .. } => format!(
            "run `{}` in {region} (killed with its children at the step's timeout)",
            run.join(" ")
        ),
    }
}

/// The guardrails that apply to a run in this direction, as sentences for `plan` and
/// `status`.
fn guardrails(policy: &Policy, direction: Direction) -> Vec<String> {
    let d = &policy.detection;
    let g = &policy.guardrails;
    let mut out = Vec::new();
    match direction {
        Direction::Failover => {
            out.push(match d.mode {
                Mode::Auto => "mode auto: the controller starts this run by itself when the guardrails below pass".to_string(),
                Mode::Manual => "mode manual: the controller detects and alerts; an operator starts this run".to_string(),
                Mode::Shadow => "mode shadow: the controller logs that it would start this run and never acts".to_string(),
            });
            let confirm = if d.fast_confirmation() {
                format!(
                    "after a failed round that probe is re-checked every {} instead of every {}",
                    fmt_duration(d.confirm_interval),
                    fmt_duration(d.interval)
                )
            } else {
                format!(
                    "rounds every {} (no fast confirmation)",
                    fmt_duration(d.interval)
                )
            };
            out.push(format!(
                "automatic start needs a critical probe of the serving region to fail {} rounds in a row spanning at least {}, so rounds that bunch up never add up to an outage; {confirm}; a round fails after {}; worst-case detection {}",
                d.failure_threshold,
                fmt_duration(d.min_failure_span),
                fmt_duration(d.timeout),
                fmt_duration(d.worst_case_detection())
            ));
            out.push("the target region must be healthy, and an outage seen in every region at once is treated as the controller's own isolation, never as a failover".to_string());
            out.push(format!(
                "replica lag must be within the RPO budget of {}; otherwise the run waits for an operator to accept the data loss (--allow-data-loss)",
                fmt_duration(g.rpo_budget)
            ));
            out.push(format!(
                "cooldown {} after a failover; at most {} automatic failover(s) per {}",
                fmt_duration(g.cooldown),
                g.max_failovers,
                fmt_duration(g.failover_window)
            ));
            if g.quorum > 1 {
                out.push(format!(
                    "{} of {} observers must see the region down: this controller and the witness(es) {}",
                    g.quorum,
                    g.witnesses.len() + 1,
                    g.witnesses.join(", ")
                ));
            }
        }
        Direction::Failback => {
            out.push(if g.auto_failback {
                "automatic failback allowed by policy".to_string()
            } else {
                "never automatic: an operator starts it (lifeboat failback)".to_string()
            });
            out.push(format!(
                "refused until the primary region has been healthy for {} and its data is resynced (database a streaming standby with lag 0, storage sync clean)",
                fmt_duration(g.failback_healthy_for)
            ));
            out.push("zero data loss: the current writer is fenced and the standby catches up before promotion".to_string());
        }
    }
    out.push("a fencing epoch is raised before the first side effect; steps from an older epoch are refused".to_string());
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::model::{Action, RegionRef, StepSpec};
    use crate::core::testkit::{policy, step};

    fn req(direction: Direction, from: &str, to: &str) -> PlanRequest {
        PlanRequest {
            direction,
            from: RegionName::new(from),
            to: RegionName::new(to),
            run_id: RunId("r1".to_string()),
            epoch: Epoch(7),
            trigger: Trigger::Operator {
                by: "test".to_string(),
                note: String::new(),
            },
            allow_data_loss: false,
        }
    }

    #[test]
    fn adjacent_steps_with_one_label_form_one_parallel_stage() {
        let p = policy(vec![
            step("one", RegionRef::To, None),
            step("two", RegionRef::To, Some("x")),
            step("three", RegionRef::From, Some("x")),
            step("four", RegionRef::To, Some("y")),
            step("five", RegionRef::To, None),
        ]);
        let plan = build(&p, req(Direction::Failover, "east", "eu")).expect("plan");
        let shape: Vec<Vec<&str>> = plan
            .stages
            .iter()
            .map(|s| s.steps.iter().map(|st| st.name.as_str()).collect())
            .collect();
        assert_eq!(
            shape,
            vec![
                vec!["one"],
                vec!["two", "three"],
                vec!["four"],
                vec!["five"]
            ]
        );
        assert_eq!(
            plan.step("three").map(|s| s.region.as_str()),
            Some("east"),
            "@from resolves to the serving region"
        );
        assert_eq!(
            plan.step("two").map(|s| s.region.as_str()),
            Some("eu"),
            "@to resolves to the chosen secondary"
        );
        assert_eq!(plan.epoch, Epoch(7));
        assert_eq!(plan.detection.worst_case, Duration::from_secs(32));
    }

    #[test]
    fn plans_refuse_regions_that_do_not_fit_the_direction() {
        let p = policy(vec![step("one", RegionRef::To, None)]);
        assert_eq!(
            build(&p, req(Direction::Failover, "west", "east")),
            Err(PlanError::FailoverToPrimary(RegionName::new("east")))
        );
        assert!(matches!(
            build(&p, req(Direction::Failback, "west", "eu")),
            Err(PlanError::FailbackNotToPrimary { .. })
        ));
        assert_eq!(
            build(&p, req(Direction::Failover, "west", "west")),
            Err(PlanError::SameRegion(RegionName::new("west")))
        );
        assert!(matches!(
            build(&p, req(Direction::Failover, "east", "zz")),
            Err(PlanError::UnknownRegion { .. })
        ));
        assert!(build(&p, req(Direction::Failback, "eu", "east")).is_ok());
    }

    #[test]
    fn a_step_whose_target_lacks_the_resolved_region_cannot_be_planned() {
        let mut p = policy(vec![StepSpec {
            action: Action::PostgresPromote {
                target: "db".to_string(),
            },
            ..step("promote", RegionRef::To, None)
        }]);
        p.targets.push(crate::core::model::Target {
            name: "db".to_string(),
            kind: crate::core::model::TargetKind::Postgres,
            regions: Default::default(),
        });
        assert!(matches!(
            build(&p, req(Direction::Failover, "east", "west")),
            Err(PlanError::Bind(BindError::NoEndpoint { .. }))
        ));
    }
}
