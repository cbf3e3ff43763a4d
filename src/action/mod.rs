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

pub mod approval;
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
use crate::core::binding::Binding;
use crate::core::model::SecretRef;
use crate::core::plan::{Plan, PlannedStep};
use crate::probe;
use crate::runbook::{Step, StepError, StepFactory};

pub(crate) use errors::{aws_error, is_invalid_state, pg_connect_error, pg_query_error};
pub use notify::{Message, render_text};
pub use postgres_fence::NOT_FENCED;

/// Builds the adapter of every step kind from the step's binding.
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
/// let factory = action::Factory::new(Some(aws), probes);
/// # let _ = factory; }
/// ```
pub struct Factory {
    aws: Option<AwsClients>,
    probes: probe::Context,
    http: reqwest::Client,
}

impl std::fmt::Debug for Factory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Factory")
            .field("aws", &self.aws.is_some())
            .finish_non_exhaustive()
    }
}

impl Factory {
    /// `aws` is needed by the steps that call AWS (a step that needs it and finds `None`
    /// fails to build, before the run's first action). `probes` is what `wait_healthy`
    /// builds its probes with (its timeout bounds each probe round).
    pub fn new(aws: Option<AwsClients>, probes: probe::Context) -> Factory {
        Factory {
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
    /// Turns the step's binding (resolved when the run was planned) into its adapter;
    /// nothing is looked up in the policy again, so a resumed run acts on exactly what it
    /// planned.
    ///
    /// Guarantees: no I/O beyond resolving secret references (so a missing secret stops
    /// the run before its first action).
    /// Errors: Fatal when the step needs AWS and lifeboat runs without AWS configuration,
    /// or a secret reference cannot be read.
    fn build(&self, plan: &Plan, step: &PlannedStep) -> Result<Arc<dyn Step>, StepError> {
        let region = &step.region;
        let aws = || {
            self.aws.as_ref().ok_or_else(|| {
                StepError::fatal(format!(
                    "step `{}` ({}) calls AWS, but lifeboat was started without AWS configuration: \
                     set [aws] in the policy or the standard AWS environment",
                    step.name,
                    step.kind()
                ))
            })
        };
        let secret = |r: Option<&SecretRef>| check_secret(&step.name, r);
        Ok(match &step.binding {
            Binding::PostgresPromote { db, .. } => {
                secret(db.password.as_ref())?;
                Arc::new(postgres::Promote::new(db.clone(), region.clone()))
            }
            Binding::PostgresFence { db, .. } => {
                secret(db.password.as_ref())?;
                Arc::new(postgres_fence::Fence::new(db.clone(), region.clone()))
            }
            Binding::PostgresCatchUp {
                db,
                writer,
                writer_region,
                ..
            } => {
                secret(db.password.as_ref())?;
                secret(writer.password.as_ref())?;
                Arc::new(postgres_fence::CatchUp::new(
                    db.clone(),
                    writer.clone(),
                    region.clone(),
                    writer_region.clone(),
                ))
            }
            Binding::RdsPromoteReplica {
                target,
                instance_id,
                aws_region,
            } => Arc::new(rds::PromoteReplica::new(
                aws()?.rds(aws_region),
                aws()?.cloudwatch(aws_region),
                instance_id,
                aws_region,
                target,
            )),
            Binding::AuroraGlobalFailover { target, cluster } => Arc::new(rds::AuroraGlobal::new(
                aws()?.rds(&cluster.aws_region),
                cluster.clone(),
                target,
                false,
            )),
            Binding::AuroraGlobalSwitchover { target, cluster } => {
                Arc::new(rds::AuroraGlobal::new(
                    aws()?.rds(&cluster.aws_region),
                    cluster.clone(),
                    target,
                    true,
                ))
            }
            Binding::Route53Switch {
                target,
                record,
                others,
            } => Arc::new(route53::Switch::new(
                aws()?.route53(),
                record.clone(),
                others.clone(),
                target,
            )),
            Binding::AsgScale {
                target,
                group,
                aws_region,
                min,
                desired,
                max,
            } => Arc::new(scale::Asg::new(
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
            Binding::EcsScale {
                target,
                cluster,
                service,
                aws_region,
                desired,
            } => Arc::new(scale::Ecs::new(
                aws()?.ecs(aws_region),
                cluster,
                service,
                aws_region,
                target,
                *desired,
            )),
            Binding::RedisInvalidate {
                url,
                password,
                ca_file,
                scope,
                ..
            } => {
                secret(password.as_ref())?;
                Arc::new(cache::RedisInvalidate::new(
                    url,
                    password.clone(),
                    ca_file.clone(),
                    scope.clone(),
                    region.clone(),
                ))
            }
            Binding::CloudfrontInvalidate {
                target,
                distribution_id,
                paths,
            } => Arc::new(cache::CloudfrontInvalidate::new(
                aws()?.cloudfront(),
                distribution_id,
                paths.clone(),
                target,
            )),
            Binding::Notify { channel, message } => {
                let how = notify::Via::for_channel(channel, self.aws.as_ref(), &self.http)
                    .map_err(|e| StepError::fatal(format!("step `{}`: {e}", step.name)))?;
                Arc::new(notify::Notify::new(
                    &channel.name,
                    how,
                    message.clone(),
                    plan.reason(),
                ))
            }
            Binding::S3SyncCheck {
                target,
                source,
                dest,
                prefix,
                copy_missing,
            } => {
                let aws = aws()?;
                Arc::new(storage::SyncCheck::new(
                    aws.s3(&source.aws_region),
                    aws.s3(&dest.aws_region),
                    source.clone(),
                    dest.clone(),
                    prefix.clone(),
                    *copy_missing,
                    target,
                ))
            }
            Binding::WaitHealthy {
                probes,
                successes,
                pass_env,
            } => {
                let ctx = probe::Context {
                    pass_env: pass_env.clone(),
                    ..self.probes.clone()
                };
                Arc::new(wait::WaitHealthy::new(
                    &ctx, &step.name, region, probes, *successes,
                )?)
            }
            Binding::ManualApproval { prompt } => Arc::new(approval::Gate::new(prompt.clone())),
            Binding::Command { run, pass_env } => {
                Arc::new(command::Command::new(run.clone(), pass_env.clone()))
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
