//! One round of readiness: both runbooks planned from the serving region, every step
//! built by the same factory a run uses (so the check looks at exactly what a run would
//! act on) and asked `Step::readiness`, a few at a time, each within a budget; then the IAM
//! permissions of lifeboat's identity simulated against the actions the planned steps
//! and the probes call. `lifeboat readiness` runs one round; the daemon runs one on its
//! `[readiness] every` schedule.

pub mod permissions;
pub mod render;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::clients::aws::AwsClients;
use crate::core::binding::Binding;
use crate::core::iam;
use crate::core::ids::{Epoch, RunId};
use crate::core::model::{Endpoint, Policy, RegionName};
use crate::core::plan::{self, Plan, PlanRequest};
use crate::core::readiness::{self, Readiness, ReadinessReport, RunbookReadiness, StepReadiness};
use crate::core::reason::Trigger;
use crate::core::time::Ts;
use crate::runbook::{ReadyCtx, StepFactory};

/// How long one step's check may take: connecting, a few reads, and a second for a
/// standby just behind its writer to catch up.
pub const STEP_BUDGET: Duration = Duration::from_secs(15);

/// How many checks run at once. A round's checks all at once (both runbooks, some twenty
/// reads) are a burst of calls to the APIs the probes also use: in the HA sandbox, three
/// daemons' bursts against one moto held its S3 canary past a 250 ms probe timeout, and
/// two controllers saw a region down that was not.
pub const CHECKS_AT_ONCE: usize = 4;

/// What a round needs.
pub struct Round {
    pub policy: Arc<Policy>,
    /// The factory runs use; its adapters answer the checks.
    pub factory: Arc<dyn StepFactory>,
    /// For the permission simulation (`None`: lifeboat runs without AWS).
    pub aws: Option<AwsClients>,
    pub serving: RegionName,
}

/// Runs one round. Never fails: what could not be checked is in the report as "cannot
/// tell" or "not ready", with why.
///
/// Guarantees: read-only (every check is); at most `CHECKS_AT_ONCE` checks at a time;
/// returns within about `STEP_BUDGET` per `CHECKS_AT_ONCE` steps plus the permission
/// check's own timeout, whatever the endpoints do.
pub async fn round(r: Round, now: Ts) -> ReadinessReport {
    let started = tokio::time::Instant::now();
    let mut runbooks = Vec::new();
    let mut tasks = JoinSet::new();
    let mut plans: Vec<Plan> = Vec::new();
    let slots = Arc::new(Semaphore::new(CHECKS_AT_ONCE));
    for (i, (direction, from, to, next)) in readiness::runbooks(&r.policy, &r.serving)
        .into_iter()
        .enumerate()
    {
        let planned = plan::build(
            &r.policy,
            PlanRequest {
                direction,
                from: from.clone(),
                to: to.clone(),
                run_id: RunId("readiness".into()),
                epoch: Epoch(0),
                trigger: Trigger::Operator {
                    by: "readiness".into(),
                    note: String::new(),
                },
                allow_data_loss: false,
            },
        );
        let mut rb = RunbookReadiness {
            direction,
            from: from.clone(),
            to: to.clone(),
            next,
            steps: Vec::new(),
            plan_error: None,
        };
        match planned {
            Err(e) => {
                rb.plan_error = Some(Readiness::not_ready(
                    format!("the {direction} runbook cannot be planned from {from} to {to}: {e}"),
                    "fix the policy (lifeboat validate, lifeboat plan)",
                ));
            }
            Ok(plan) => {
                for (j, step) in plan.steps().enumerate() {
                    rb.steps.push(StepReadiness {
                        step: step.name.clone(),
                        kind: step.kind(),
                        region: step.region.clone(),
                        readiness: Readiness::cannot_tell("not checked"),
                    });
                    let mut ctx = ReadyCtx {
                        service: r.policy.service.clone(),
                        direction,
                        from: from.clone(),
                        to: to.clone(),
                        step: step.name.clone(),
                        region: step.region.clone(),
                        serving: r.serving.clone(),
                        next,
                        rpo_budget: r.policy.guardrails.rpo_budget,
                        writer: writer(&r.policy, &step.binding, &from),
                        deadline: tokio::time::Instant::now() + STEP_BUDGET,
                    };
                    let built = r.factory.build(&plan, step);
                    let slots = slots.clone();
                    tasks.spawn(async move {
                        // The budget counts from the check's start, not from its turn.
                        let _slot = slots.acquire_owned().await;
                        ctx.deadline = tokio::time::Instant::now() + STEP_BUDGET;
                        let found = match built {
                            Err(e) => Readiness::not_ready(
                                format!("the step cannot be built: {}", e.message),
                                "fix what the message names (a secret, the AWS configuration) — a run would stop here before acting",
                            ),
                            Ok(adapter) => {
                                match tokio::time::timeout_at(ctx.deadline, adapter.readiness(&ctx))
                                    .await
                                {
                                    Ok(found) => found,
                                    Err(_) => Readiness::cannot_tell(format!(
                                        "the check did not finish within {}s",
                                        STEP_BUDGET.as_secs()
                                    )),
                                }
                            }
                        };
                        (i, j, found)
                    });
                }
                plans.push(plan);
            }
        }
        runbooks.push(rb);
    }
    let actions = actions_of(&r.policy, &plans);
    let perms = tokio::spawn({
        let aws = r.aws.clone();
        let role = r.policy.readiness.role_arn.clone();
        async move { permissions::check(aws.as_ref(), role.as_deref(), &actions).await }
    });
    while let Some(done) = tasks.join_next().await {
        if let Ok((i, j, found)) = done {
            runbooks[i].steps[j].readiness = found;
        }
    }
    let perms = perms.await.unwrap_or_else(|e| permissions::Permissions {
        overall: Readiness::cannot_tell(format!("the permission check stopped: {e}")),
        denied: BTreeSet::new(),
    });
    // A step whose own actions are denied would fail at its first call.
    for rb in &mut runbooks {
        for s in &mut rb.steps {
            let denied: Vec<&str> = iam::step_actions(s.kind)
                .iter()
                .chain(iam::readiness_actions(s.kind))
                .copied()
                .filter(|a| perms.denied.contains(*a))
                .collect::<BTreeSet<_>>()
                .into_iter()
                .collect();
            if !denied.is_empty() {
                let found = std::mem::replace(&mut s.readiness, Readiness::cannot_tell(""));
                s.readiness = found.and(Readiness::not_ready(
                    format!("lifeboat's role may not call {}", denied.join(", ")),
                    format!(
                        "grant {} to the lifeboat role (terraform/iam.tf)",
                        denied.join(", ")
                    ),
                ));
            }
        }
    }
    ReadinessReport {
        service: r.policy.service.clone(),
        at: now,
        serving: r.serving,
        runbooks,
        permissions: perms.overall,
        took_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
    }
}

/// For a PostgreSQL promotion: the same target in the region the run leaves, whose WAL
/// position the standby's lag is measured against.
fn writer(
    policy: &Policy,
    binding: &Binding,
    from: &RegionName,
) -> Option<crate::core::model::PostgresEndpoint> {
    let Binding::PostgresPromote { target, .. } = binding else {
        return None;
    };
    match policy.target(target)?.endpoint(from)? {
        Endpoint::Postgres(p) => Some(p.clone()),
        _ => None,
    }
}

/// Every AWS action lifeboat would call for this policy: the planned steps' (their
/// runs and their readiness checks), the probes', and the simulation itself, each
/// with what calls it.
fn actions_of(policy: &Policy, plans: &[Plan]) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    fn add(out: &mut BTreeMap<String, Vec<String>>, action: &str, who: String) {
        let v = out.entry(action.to_string()).or_default();
        if !v.contains(&who) {
            v.push(who);
        }
    }
    for plan in plans {
        for s in plan.steps() {
            for a in iam::step_actions(s.kind())
                .iter()
                .chain(iam::readiness_actions(s.kind()))
            {
                add(&mut out, a, format!("step {}", s.name));
            }
        }
    }
    for p in &policy.probes {
        for a in iam::probe_actions(p.kind()) {
            add(&mut out, a, format!("probe {}", p.name));
        }
    }
    if !out.is_empty() {
        for a in iam::READINESS_ACTIONS {
            add(&mut out, a, "readiness".to_string());
        }
    }
    out
}
