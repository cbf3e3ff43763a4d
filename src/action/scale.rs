//! `asg_scale` (UpdateAutoScalingGroup min/desired/max; wait for InService instances)
//! and `ecs_scale` (UpdateService desiredCount; wait for running tasks). A failback uses
//! the same steps to return the secondary to its standby size.
//!
//! Neither compensates after a failure: the capacity asked for is what the region
//! taking the traffic needs, and shrinking it back would make a failed step worse.

use async_trait::async_trait;
use aws_sdk_autoscaling::types::{AutoScalingGroup, LifecycleState};
use aws_sdk_ecs::types::Service;

use super::{aws_error, target_section};
use crate::runbook::{Applied, Check, Step, StepCtx, StepError, Verify};

/// The sizes an Auto Scaling group should have.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sizes {
    pub min: u32,
    pub desired: u32,
    pub max: u32,
}

/// Resizes an Auto Scaling group.
///
/// Guarantees: one UpdateAutoScalingGroup with all three sizes (repeating it is
/// harmless); done when the sizes match and at least `desired` instances are InService.
/// Errors: fatal when the group does not exist or the call is denied.
pub struct Asg {
    client: aws_sdk_autoscaling::Client,
    group: String,
    sizes: Sizes,
    what: String,
    section: String,
}

impl Asg {
    pub fn new(
        client: aws_sdk_autoscaling::Client,
        group: &str,
        aws_region: &str,
        target: &str,
        sizes: Sizes,
    ) -> Asg {
        Asg {
            client,
            group: group.to_string(),
            sizes,
            what: format!("Auto Scaling group `{group}` in {aws_region}"),
            section: target_section(target),
        }
    }

    async fn describe(&self) -> Result<AutoScalingGroup, StepError> {
        let out = self
            .client
            .describe_auto_scaling_groups()
            .auto_scaling_group_names(&self.group)
            .send()
            .await
            .map_err(|e| {
                aws_error(
                    "autoscaling:DescribeAutoScalingGroups",
                    &self.what,
                    &self.section,
                    &e,
                )
            })?;
        // An unknown name is not an error to this API: the answer is just empty.
        out.auto_scaling_groups().first().cloned().ok_or_else(|| {
            StepError::fatal(format!(
                "{} does not exist: check {} in the policy",
                self.what, self.section
            ))
        })
    }

    /// (sizes as they are, instances InService)
    async fn observe(&self) -> Result<(Sizes, u32), StepError> {
        let g = self.describe().await?;
        let in_service = g
            .instances()
            .iter()
            .filter(|i| i.lifecycle_state() == Some(&LifecycleState::InService))
            .count();
        // Checked conversions: a negative size (never valid) reads as 0, not a wrap.
        let size = |n: Option<i32>| u32::try_from(n.unwrap_or(0)).unwrap_or(0);
        let sizes = Sizes {
            min: size(g.min_size()),
            desired: size(g.desired_capacity()),
            max: size(g.max_size()),
        };
        let in_service = u32::try_from(in_service).unwrap_or(u32::MAX);
        Ok((sizes, in_service))
    }

    fn fmt(&self, s: Sizes, in_service: u32) -> String {
        format!(
            "{} is min {} / desired {} / max {} with {in_service} InService",
            self.what, s.min, s.desired, s.max
        )
    }
}

#[async_trait]
impl Step for Asg {
    async fn check(&self, _ctx: &StepCtx) -> Result<Check, StepError> {
        let (sizes, in_service) = self.observe().await?;
        let now = self.fmt(sizes, in_service);
        Ok(if sizes == self.sizes && in_service >= self.sizes.desired {
            Check::Done(now)
        } else {
            Check::NotDone(now)
        })
    }

    async fn apply(&self, _ctx: &StepCtx) -> Result<Applied, StepError> {
        let Sizes { min, desired, max } = self.sizes;
        let int = |n: u32| i32::try_from(n).unwrap_or(i32::MAX);
        self.client
            .update_auto_scaling_group()
            .auto_scaling_group_name(&self.group)
            .min_size(int(min))
            .desired_capacity(int(desired))
            .max_size(int(max))
            .send()
            .await
            .map_err(|e| {
                aws_error(
                    "autoscaling:UpdateAutoScalingGroup",
                    &self.what,
                    &self.section,
                    &e,
                )
            })?;
        Ok(Applied::new(format!(
            "UpdateAutoScalingGroup accepted: {} to min {min} / desired {desired} / max {max}",
            self.what
        )))
    }

    async fn verify(&self, _ctx: &StepCtx) -> Result<Verify, StepError> {
        let (sizes, in_service) = self.observe().await?;
        let want = self.sizes.desired;
        Ok(if in_service >= want && sizes.desired == want {
            Verify::Done(format!(
                "{}: {in_service} of {want} instances InService",
                self.what
            ))
        } else {
            Verify::NotYet(format!(
                "{}: {in_service} of {want} instances InService",
                self.what
            ))
        })
    }
}

/// Sets an ECS service's desired task count.
///
/// Guarantees: one UpdateService with the desired count (repeating it is harmless);
/// done when the desired count matches and at least that many tasks run.
/// Errors: fatal when the cluster or service does not exist, the service is not
/// ACTIVE, or the call is denied.
pub struct Ecs {
    client: aws_sdk_ecs::Client,
    cluster: String,
    service: String,
    desired: u32,
    what: String,
    section: String,
}

impl Ecs {
    pub fn new(
        client: aws_sdk_ecs::Client,
        cluster: &str,
        service: &str,
        aws_region: &str,
        target: &str,
        desired: u32,
    ) -> Ecs {
        Ecs {
            client,
            cluster: cluster.to_string(),
            service: service.to_string(),
            desired,
            what: format!("ECS service `{service}` of cluster `{cluster}` in {aws_region}"),
            section: target_section(target),
        }
    }

    async fn describe(&self) -> Result<Service, StepError> {
        let out = self
            .client
            .describe_services()
            .cluster(&self.cluster)
            .services(&self.service)
            .send()
            .await
            .map_err(|e| aws_error("ecs:DescribeServices", &self.what, &self.section, &e))?;
        // A missing service comes back as a failure entry ("MISSING"), not an error.
        if let Some(f) = out.failures().first() {
            return Err(StepError::fatal(format!(
                "{} does not exist ({}): check {} in the policy",
                self.what,
                f.reason().unwrap_or("MISSING"),
                self.section
            )));
        }
        let svc = out.services().first().cloned().ok_or_else(|| {
            StepError::fatal(format!(
                "{} does not exist: check {} in the policy",
                self.what, self.section
            ))
        })?;
        match svc.status() {
            Some("ACTIVE") | None => Ok(svc),
            Some(s) => Err(StepError::fatal(format!(
                "{} is {s}, not ACTIVE: it cannot be scaled; recreate it or fix {}",
                self.what, self.section
            ))),
        }
    }

    /// (desired count, running count)
    async fn observe(&self) -> Result<(u32, u32), StepError> {
        let s = self.describe().await?;
        Ok((
            u32::try_from(s.desired_count()).unwrap_or(0),
            u32::try_from(s.running_count()).unwrap_or(0),
        ))
    }
}

#[async_trait]
impl Step for Ecs {
    async fn check(&self, _ctx: &StepCtx) -> Result<Check, StepError> {
        let (desired, running) = self.observe().await?;
        let now = format!("{} wants {desired} tasks, runs {running}", self.what);
        Ok(if desired == self.desired && running >= self.desired {
            Check::Done(now)
        } else {
            Check::NotDone(now)
        })
    }

    async fn apply(&self, _ctx: &StepCtx) -> Result<Applied, StepError> {
        self.client
            .update_service()
            .cluster(&self.cluster)
            .service(&self.service)
            .desired_count(i32::try_from(self.desired).unwrap_or(i32::MAX))
            .send()
            .await
            .map_err(|e| aws_error("ecs:UpdateService", &self.what, &self.section, &e))?;
        Ok(Applied::new(format!(
            "UpdateService accepted: {} to {} tasks",
            self.what, self.desired
        )))
    }

    async fn verify(&self, _ctx: &StepCtx) -> Result<Verify, StepError> {
        let (desired, running) = self.observe().await?;
        let now = format!(
            "{}: {running} of {} tasks running (desired count {desired})",
            self.what, self.desired
        );
        Ok(if desired == self.desired && running >= self.desired {
            Verify::Done(now)
        } else {
            Verify::NotYet(now)
        })
    }
}
