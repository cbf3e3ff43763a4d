//! Action adapters: one `runbook::Step` per step kind (promote a database, move DNS,
//! scale workers, invalidate caches, notify…), and the `Factory` that binds a planned
//! step to its adapter and its target's settings in the step's region.
//!
//! Every adapter follows the step contract (`src/runbook/step.rs`): `check` looks
//! without touching, `apply` is safe to repeat, `verify` is one observation. Errors
//! carry their class (retryable, fatal, needs approval) and a message that names the
//! resource and says what to do; no message carries a secret.
//!
//! Invariant: an adapter calls only the AWS APIs listed for its kind in `core::iam`.

pub mod cache;
pub mod command;
mod errors;
pub mod notify;
pub mod postgres;
pub mod postgres_fence;
pub mod rds;
pub mod route53;
pub mod scale;
pub mod storage;
pub mod wait;

use std::sync::Arc;
use std::time::Duration;

use crate::clients::aws::AwsClients;
use crate::clients::secret;
use crate::core::model::{Action, Endpoint, Policy, PostgresEndpoint, RegionName, SecretRef};
use crate::core::plan::{Plan, PlannedStep};
use crate::probe;
use crate::runbook::{Step, StepError, StepFactory};

pub(crate) use errors::{aws_error, is_invalid_state, pg_connect_error, pg_query_error};
pub use notify::{Message, render_text};
pub use postgres_fence::NOT_FENCED;

/// Builds the adapter of every step kind except `manual_approval` (the executor handles
/// that one itself).
///
/// ```no_run
/// # async fn demo(policy: lifeboat::core::model::Policy) {
/// use std::sync::Arc;
/// use std::time::Duration;
/// use lifeboat::clients::aws::AwsClients;
/// use lifeboat::{action, probe};
/// let aws = AwsClients::from_settings(&policy.aws, Duration::from_secs(20)).await;
/// let probes = probe::Context::new(Some(aws.clone()), policy.detection.timeout,
///                                  policy.detection.interval);
/// let factory = action::Factory::new(Arc::new(policy), Some(aws), probes);
/// # let _ = factory; }
/// ```
pub struct Factory {
    policy: Arc<Policy>,
    aws: Option<AwsClients>,
    probes: probe::Context,
    http: reqwest::Client,
}

impl std::fmt::Debug for Factory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Factory")
            .field("service", &self.policy.service)
            .field("aws", &self.aws.is_some())
            .finish_non_exhaustive()
    }
}

impl Factory {
    /// `policy` is the validated policy the plans come from. `aws` is needed by the
    /// steps that call AWS (a step that needs it and finds `None` fails to build, before
    /// the run's first action). `probes` is what `wait_healthy` builds its probes with
    /// (its timeout bounds each probe round).
    pub fn new(policy: Arc<Policy>, aws: Option<AwsClients>, probes: probe::Context) -> Factory {
        Factory {
            policy,
            aws,
            probes,
            http: notify::http_client(),
        }
    }
}

/// Where a step's settings are in the policy, for messages: `[targets.workers]`.
fn target_section(target: &str) -> String {
    format!("[targets.{target}]")
}

impl StepFactory for Factory {
    /// Guarantees: no I/O beyond resolving secret references (so a missing secret stops
    /// the run before its first action).
    /// Errors: Fatal, naming what is missing (a target's region settings, AWS
    /// configuration, a secret, a probe).
    fn build(&self, plan: &Plan, step: &PlannedStep) -> Result<Arc<dyn Step>, StepError> {
        let region = &step.region;
        let ep = |target: &str, region: &RegionName| -> Result<&Endpoint, StepError> {
            self.policy
                .target(target)
                .and_then(|t| t.endpoint(region))
                .ok_or_else(|| {
                    StepError::fatal(format!(
                        "step `{}`: target `{target}` has no settings for {region}: add them under {}",
                        step.name,
                        target_section(target)
                    ))
                })
        };
        let mismatch = |target: &str| {
            StepError::fatal(format!(
                "step `{}` ({}) cannot act on target `{target}` of this kind: check {}",
                step.name,
                step.action.kind(),
                target_section(target)
            ))
        };
        let aws = || {
            self.aws.as_ref().ok_or_else(|| {
                StepError::fatal(format!(
                    "step `{}` ({}) calls AWS, but lifeboat was started without AWS configuration: \
                     set [aws] in the policy or the standard AWS environment",
                    step.name,
                    step.action.kind()
                ))
            })
        };
        let pg = |target: &str, region: &RegionName| -> Result<PostgresEndpoint, StepError> {
            match ep(target, region)? {
                Endpoint::Postgres(p) => {
                    check_secret(&step.name, p.password.as_ref())?;
                    Ok(p.clone())
                }
                _ => Err(mismatch(target)),
            }
        };
        Ok(match &step.action {
            Action::PostgresPromote { target } => {
                Arc::new(postgres::Promote::new(pg(target, region)?, region.clone()))
            }
            Action::PostgresFence { target } => Arc::new(postgres_fence::Fence::new(
                pg(target, region)?,
                region.clone(),
            )),
            Action::PostgresCatchUp { target } => Arc::new(postgres_fence::CatchUp::new(
                pg(target, region)?,
                pg(target, &plan.from)?,
                region.clone(),
                plan.from.clone(),
            )),
            Action::RdsPromoteReplica { target } => match ep(target, region)? {
                Endpoint::RdsInstance {
                    instance_id,
                    aws_region,
                } => Arc::new(rds::PromoteReplica::new(
                    aws()?.rds(aws_region),
                    aws()?.cloudwatch(aws_region),
                    instance_id,
                    aws_region,
                    target,
                )),
                _ => return Err(mismatch(target)),
            },
            Action::AuroraGlobalFailover { target } | Action::AuroraGlobalSwitchover { target } => {
                match ep(target, region)? {
                    Endpoint::AuroraCluster(a) => Arc::new(rds::AuroraGlobal::new(
                        aws()?.rds(&a.aws_region),
                        a.clone(),
                        target,
                        matches!(step.action, Action::AuroraGlobalSwitchover { .. }),
                    )),
                    _ => return Err(mismatch(target)),
                }
            }
            Action::Route53Switch { target } => {
                let t = self.policy.target(target).ok_or_else(|| mismatch(target))?;
                let goal = match ep(target, region)? {
                    Endpoint::Route53(r) => r.clone(),
                    _ => return Err(mismatch(target)),
                };
                let others = t
                    .regions
                    .iter()
                    .filter(|(r, _)| *r != region)
                    .filter_map(|(_, e)| match e {
                        Endpoint::Route53(r) => r.set_identifier.clone(),
                        _ => None,
                    })
                    .collect();
                Arc::new(route53::Switch::new(
                    aws()?.route53(),
                    goal,
                    others,
                    target,
                )?)
            }
            Action::AsgScale {
                target,
                min,
                desired,
                max,
            } => match ep(target, region)? {
                Endpoint::Asg { group, aws_region } => Arc::new(scale::Asg::new(
                    aws()?.autoscaling(aws_region),
                    group,
                    aws_region,
                    target,
                    scale::Sizes {
                        min: *min,
                        desired: *desired,
                        max: *max,
                    },
                )),
                _ => return Err(mismatch(target)),
            },
            Action::EcsScale { target, desired } => match ep(target, region)? {
                Endpoint::Ecs {
                    cluster,
                    service,
                    aws_region,
                } => Arc::new(scale::Ecs::new(
                    aws()?.ecs(aws_region),
                    cluster,
                    service,
                    aws_region,
                    target,
                    *desired,
                )),
                _ => return Err(mismatch(target)),
            },
            Action::RedisInvalidate {
                target,
                pattern,
                flush,
            } => match ep(target, region)? {
                Endpoint::Redis {
                    url,
                    password,
                    ca_file,
                } => {
                    check_secret(&step.name, password.as_ref())?;
                    let scope = match (flush, pattern) {
                        (true, _) => cache::Scope::FlushDb,
                        (false, Some(p)) => cache::Scope::Pattern(p.clone()),
                        // Validation requires one of them; keep this total anyway.
                        (false, None) => {
                            return Err(StepError::fatal(format!(
                                "step `{}` must give either `pattern` or `flush = true`",
                                step.name
                            )));
                        }
                    };
                    Arc::new(cache::RedisInvalidate::new(
                        url,
                        password.clone(),
                        ca_file.clone(),
                        scope,
                        region.clone(),
                    ))
                }
                _ => return Err(mismatch(target)),
            },
            Action::CloudfrontInvalidate { target, paths } => match ep(target, region)? {
                Endpoint::Cloudfront { distribution_id } => {
                    Arc::new(cache::CloudfrontInvalidate::new(
                        aws()?.cloudfront(),
                        distribution_id,
                        paths.clone(),
                        target,
                    ))
                }
                _ => return Err(mismatch(target)),
            },
            Action::Notify { channel, message } => {
                let c = self.policy.channel(channel).ok_or_else(|| {
                    StepError::fatal(format!(
                        "step `{}` names channel `{channel}`, which the policy does not define: add [channels.{channel}]",
                        step.name
                    ))
                })?;
                let how = notify::Via::for_channel(c, self.aws.as_ref(), &self.http)
                    .map_err(|e| StepError::fatal(format!("step `{}`: {e}", step.name)))?;
                Arc::new(notify::Notify::new(
                    channel,
                    how,
                    message.clone(),
                    plan.reason.clone(),
                ))
            }
            Action::S3SyncCheck {
                target,
                copy_missing,
                prefix,
            } => {
                let bucket = |r: &RegionName| match ep(target, r)? {
                    Endpoint::S3 {
                        bucket,
                        prefix,
                        aws_region,
                    } => Ok(storage::Bucket {
                        name: bucket.clone(),
                        canary_prefix: prefix.clone(),
                        aws_region: aws_region.clone(),
                        region: r.clone(),
                    }),
                    _ => Err(mismatch(target)),
                };
                let (source, dest) = (bucket(&plan.from)?, bucket(region)?);
                let aws = aws()?;
                Arc::new(storage::SyncCheck::new(
                    aws.s3(&source.aws_region),
                    aws.s3(&dest.aws_region),
                    source,
                    dest,
                    prefix.clone(),
                    *copy_missing,
                    target,
                ))
            }
            Action::WaitHealthy { probes, successes } => Arc::new(wait::WaitHealthy::build(
                &self.policy,
                &self.probes,
                &step.name,
                region,
                probes,
                *successes,
            )?),
            Action::Command { run } => Arc::new(command::Command::new(
                run.clone(),
                self.policy.commands.pass_env.clone(),
            )),
            Action::ManualApproval { .. } => {
                return Err(StepError::fatal(format!(
                    "step `{}` is a manual approval, which the executor handles itself (a bug: report it)",
                    step.name
                )));
            }
        })
    }
}

/// Fails the build when a secret reference cannot be read, so the run stops before
/// its first action rather than halfway.
fn check_secret(step: &str, r: Option<&SecretRef>) -> Result<(), StepError> {
    match r.map(secret::resolve) {
        Some(Err(e)) => Err(StepError::fatal(format!("step `{step}`: password: {e}"))),
        _ => Ok(()),
    }
}

/// How long a PostgreSQL connection may take, within the step's deadline: short, so an
/// unreachable server is reported quickly and the executor's retries take over.
pub(crate) fn connect_bound(deadline: tokio::time::Instant) -> Duration {
    let left = deadline.saturating_duration_since(tokio::time::Instant::now());
    left.min(Duration::from_secs(5))
        .max(Duration::from_millis(100))
}

/// An idempotency token fixed for one step of one run: the same across retries and
/// resumes, different for every other run and step. AWS caller references accept it.
pub(crate) fn idempotency_token(run_id: &str, step: &str) -> String {
    let token: String = format!("lifeboat-{run_id}-{step}")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect();
    // CloudFront caller references may be up to 128 characters.
    token.chars().take(128).collect()
}

/// The first `n` items and how many more, for messages: "a, b, c and 7 more".
pub(crate) fn some_of(items: &[String], n: usize) -> String {
    let shown: Vec<&str> = items.iter().take(n).map(String::as_str).collect();
    let mut s = shown.join(", ");
    if items.len() > n {
        s.push_str(&format!(" and {} more", items.len() - n));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idempotency_tokens_are_stable_per_run_and_step_and_fit_caller_references() {
        let a = idempotency_token("fo-20261123-153012-7f3a", "purge cdn");
        assert_eq!(a, "lifeboat-fo-20261123-153012-7f3a-purge-cdn");
        assert_eq!(a, idempotency_token("fo-20261123-153012-7f3a", "purge cdn"));
        assert_ne!(a, idempotency_token("fo-20261123-153012-7f3a", "purge"));
        assert!(idempotency_token(&"x".repeat(300), "s").len() <= 128);
    }

    #[test]
    fn long_lists_in_messages_show_a_few_and_count_the_rest() {
        let keys: Vec<String> = (1..=7).map(|i| format!("k{i}")).collect();
        assert_eq!(some_of(&keys, 3), "k1, k2, k3 and 4 more");
        assert_eq!(some_of(&keys[..2], 3), "k1, k2");
    }
}
