//! Readiness of the AWS steps: the resource each acts on exists, with the values the
//! step needs (a failover pair with a dedicated switch that points at the serving
//! region, a group whose max fits the step, replication where the step relies on it),
//! and, for the runbook that would run next, the state a run would find.
//!
//! Read-only: every call here is listed in the kind's `readiness_iam` (`core::kind`)
//! and is a `Describe…`, `Get…` or `List…`.

use aws_sdk_autoscaling::types::AutoScalingGroup;
use aws_sdk_route53::types::{HealthCheckType, ResourceRecordSetFailover};

use super::aws_readiness;
use super::cache::CloudfrontInvalidate;
use super::notify::{Notify, Via};
use super::rds::{AuroraGlobal, PromoteReplica};
use super::route53::{Switch, record_changes};
use super::scale::{Asg, Ecs};
use super::storage::SyncCheck;
use crate::core::binding::S3Bucket;
use crate::core::model::DnsRecord;
use crate::core::readiness::Readiness;
use crate::core::step::ErrorClass;
use crate::core::time::fmt_duration;
use crate::runbook::{ReadyCtx, StepError};

/// A step's own error, met while checking readiness: what the step could not read
/// would stop it too. Retryable errors (AWS did not answer) leave it unable to tell.
fn from_step(e: StepError, fix: &str) -> Readiness {
    match e.class {
        ErrorClass::Retryable => Readiness::cannot_tell(e.message),
        _ => Readiness::not_ready(e.message, fix),
    }
}

impl Switch {
    pub(super) async fn ready(&self, ctx: &ReadyCtx) -> Readiness {
        let DnsRecord::FailoverPair {
            set_identifier,
            health_check_id,
        } = &self.goal.record
        else {
            // Weighted and simple records: the zone answers and the goal's record is
            // there to edit.
            let live = match self.records().await {
                Ok(l) => l,
                Err(e) => return from_step(e, &format!("fix {} in the policy", self.section)),
            };
            return match record_changes(&self.goal, &self.others, &live) {
                Ok(c) => Readiness::ready(format!(
                    "{} is readable; {} change(s) would move it to {}",
                    self.what,
                    c.len(),
                    ctx.region
                )),
                Err(m) => Readiness::not_ready(
                    format!("{}: {m}", self.what),
                    format!(
                        "create the record (terraform/route53.tf) or fix {}",
                        self.section
                    ),
                ),
            };
        };
        let fix_pair = format!(
            "recreate the failover record pair and its switch health check (terraform apply of terraform/route53.tf), or fix {}",
            self.section
        );
        let records = match self.records().await {
            Ok(r) => r,
            Err(e) => return from_step(e, &fix_pair),
        };
        for role in [
            ResourceRecordSetFailover::Primary,
            ResourceRecordSetFailover::Secondary,
        ] {
            if !records.iter().any(|r| r.failover() == Some(&role)) {
                return Readiness::not_ready(
                    format!(
                        "{} has no {} record: the pair is broken",
                        self.what,
                        role.as_str()
                    ),
                    fix_pair,
                );
            }
        }
        let (hc, invert, record) = match self
            .pair_goal(set_identifier, health_check_id.as_deref())
            .await
        {
            Ok(g) => g,
            Err(e) => return from_step(e, &fix_pair),
        };
        let subject = format!("Route 53 health check `{hc}`");
        let out = match self
            .client
            .get_health_check()
            .health_check_id(&hc)
            .send()
            .await
        {
            Ok(o) => o,
            Err(e) => {
                let r = aws_readiness("route53:GetHealthCheck", &subject, &self.section, &e);
                return match r {
                    Readiness::NotReady { why, .. } => Readiness::not_ready(
                        format!(
                            "the switch health check `{hc}` that {} relies on: {why}; the {} cannot move DNS without it",
                            self.goal.record_name, ctx.direction
                        ),
                        format!(
                            "recreate the switch (a CALCULATED health check, terraform/route53.tf) and attach it to the PRIMARY record, or set health_check_id in {}",
                            self.section
                        ),
                    ),
                    other => other,
                };
            }
        };
        let Some(config) = out.health_check().and_then(|h| h.health_check_config()) else {
            return Readiness::not_ready(format!("{subject} has no configuration"), fix_pair);
        };
        // Inverting a check that measures the primary would report a dead primary
        // healthy: only a dedicated switch may be flipped.
        if config.r#type() != &HealthCheckType::Calculated {
            return Readiness::not_ready(
                format!(
                    "{subject} is a {} check, not a dedicated switch: inverting a check that measures the primary would send traffic to it while it is down",
                    config.r#type().as_str()
                ),
                "attach a CALCULATED health check with no children (terraform/route53.tf's switch) to the PRIMARY record",
            );
        }
        let inverted = config.inverted().unwrap_or(false);
        // The switch must point at the region serving now: the step's region is reached
        // when the flag equals `invert`.
        let points_here = inverted == invert;
        let should = ctx.region == ctx.serving;
        if points_here != should {
            let now_at = if points_here {
                &ctx.region
            } else {
                &ctx.serving
            };
            let other = if points_here {
                &ctx.serving
            } else {
                &ctx.region
            };
            return Readiness::not_ready(
                format!(
                    "{} already answers with {now_at}'s record (health check `{hc}` is {}inverted) while lifeboat's journal says {} serves",
                    self.goal.record_name,
                    if inverted { "" } else { "not " },
                    ctx.serving
                ),
                format!(
                    "someone moved DNS by hand: move it back to {other} (invert the health check back), or record the move with lifeboat failover/failback"
                ),
            );
        }
        Readiness::ready(format!(
            "failover pair and switch `{hc}` in place; {} answers with {}'s record; the step would {}invert the switch for the {record}",
            self.goal.record_name,
            ctx.serving,
            if invert { "" } else { "un-" }
        ))
    }
}

impl Asg {
    pub(super) async fn ready(&self, ctx: &ReadyCtx) -> Readiness {
        let g: AutoScalingGroup = match self.describe().await {
            Ok(g) => g,
            Err(e) => {
                return from_step(
                    e,
                    &format!(
                        "create the group (terraform) or fix {} in the policy",
                        self.section
                    ),
                );
            }
        };
        let max = u32::try_from(g.max_size().unwrap_or(0)).unwrap_or(0);
        let want = self.sizes.desired;
        if let Some(status) = g.status() {
            return Readiness::not_ready(
                format!("{} is `{status}`", self.what),
                format!(
                    "recreate the group or point {} at one that exists",
                    self.section
                ),
            );
        }
        let suspended: Vec<&str> = g
            .suspended_processes()
            .iter()
            .filter_map(|p| p.process_name())
            .collect();
        if suspended.contains(&"Launch") {
            return Readiness::not_ready(
                format!(
                    "{} has its Launch process suspended: scaling it to {want} would start no instance",
                    self.what
                ),
                "resume it: aws autoscaling resume-processes --scaling-processes Launch --auto-scaling-group-name …",
            );
        }
        if max < want {
            return Readiness::not_ready(
                format!(
                    "{} allows at most {max} instance(s), fewer than the {want} the step scales it to: the group was capped since the runbook was written (the step would raise the max to {}, but a cap is usually deliberate, a budget or a quota, and the capacity may not be there)",
                    self.what, self.sizes.max
                ),
                format!(
                    "raise the group's max to at least {want} (Terraform, or aws autoscaling update-auto-scaling-group --max-size {}), or change the step's sizes to what {} can run",
                    self.sizes.max, ctx.region
                ),
            );
        }
        Readiness::ready(format!(
            "{} exists (min {} / desired {} / max {max}); the step sets {} / {want} / {}",
            self.what,
            g.min_size().unwrap_or(0),
            g.desired_capacity().unwrap_or(0),
            self.sizes.min,
            self.sizes.max
        ))
    }
}

impl Ecs {
    pub(super) async fn ready(&self, _ctx: &ReadyCtx) -> Readiness {
        match self.describe().await {
            Ok(s) => Readiness::ready(format!(
                "{} is ACTIVE (desired {}, running {}); the step sets {}",
                self.what,
                s.desired_count(),
                s.running_count(),
                self.desired
            )),
            Err(e) => from_step(
                e,
                &format!("create the service or fix {} in the policy", self.section),
            ),
        }
    }
}

impl CloudfrontInvalidate {
    pub(super) async fn ready(&self, _ctx: &ReadyCtx) -> Readiness {
        match self
            .client
            .get_distribution()
            .id(&self.distribution_id)
            .send()
            .await
        {
            Ok(out) => {
                let d = out.distribution();
                let status = d.map(|d| d.status()).unwrap_or("unknown");
                let enabled = d
                    .and_then(|d| d.distribution_config())
                    .map(|c| c.enabled())
                    .unwrap_or(true);
                Readiness::ready(format!(
                    "{} exists ({status}{})",
                    self.what,
                    if enabled { ", enabled" } else { ", disabled" }
                ))
            }
            Err(e) => aws_readiness("cloudfront:GetDistribution", &self.what, &self.section, &e),
        }
    }
}

impl Notify {
    pub(super) async fn ready(&self, _ctx: &ReadyCtx) -> Readiness {
        let section = format!("[channels.{}]", self.channel);
        match &self.via {
            Via::Sns { client, topic_arn } => {
                let subject = format!("SNS topic `{topic_arn}`");
                match client
                    .get_topic_attributes()
                    .topic_arn(topic_arn)
                    .send()
                    .await
                {
                    Ok(_) => Readiness::ready(format!("{subject} exists")),
                    Err(e) => aws_readiness("sns:GetTopicAttributes", &subject, &section, &e),
                }
            }
            // Its URL was read when the step was built; only a post would tell more.
            Via::Webhook { .. } => Readiness::cannot_tell(format!(
                "the webhook of channel `{}` is configured, but only posting to it would show it works, and that would notify people",
                self.channel
            )),
        }
    }
}

impl SyncCheck {
    pub(super) async fn ready(&self, _ctx: &ReadyCtx) -> Readiness {
        for (client, b) in [
            (&self.source_client, &self.source),
            (&self.dest_client, &self.dest),
        ] {
            if let Err(r) = self.bucket_readable(client, b).await {
                return r;
            }
        }
        let (s, d) = (&self.source.bucket, &self.dest.bucket);
        if self.copy_missing {
            return Readiness::ready(format!(
                "buckets `{s}` and `{d}` exist; the step copies what is missing (copy_missing = true)"
            ));
        }
        // Without copy_missing, something else must bring the objects written during
        // the failover back: bucket replication, which needs versioning on both.
        let rules = match self
            .source_client
            .get_bucket_replication()
            .bucket(s)
            .send()
            .await
        {
            Ok(out) => out
                .replication_configuration()
                .map(|c| c.rules().to_vec())
                .unwrap_or_default(),
            Err(e) => match aws_readiness(
                "s3:GetReplicationConfiguration",
                &format!("bucket `{s}`"),
                &self.section,
                &e,
            ) {
                // No configuration at all reads as "not found".
                Readiness::NotReady { why, .. } if why.contains("does not exist") => Vec::new(),
                other => return other,
            },
        };
        let replicates = rules.iter().any(|r| {
            r.status().as_str() == "Enabled"
                && r.destination()
                    .is_some_and(|dst| dst.bucket().trim_start_matches("arn:aws:s3:::") == d)
        });
        if !replicates {
            return Readiness::not_ready(
                format!(
                    "nothing copies objects from `{s}` to `{d}`: `{s}` has no enabled replication rule to `{d}`, and the step does not copy (copy_missing = false), so a failback stops at the first object written during the failover"
                ),
                format!(
                    "enable replication from `{s}` to `{d}` (versioning on both), or set copy_missing = true on the step"
                ),
            );
        }
        for (client, b) in [
            (&self.source_client, &self.source),
            (&self.dest_client, &self.dest),
        ] {
            match client
                .get_bucket_versioning()
                .bucket(&b.bucket)
                .send()
                .await
            {
                Ok(v) if v.status().map(|s| s.as_str()) == Some("Enabled") => {}
                Ok(_) => {
                    return Readiness::not_ready(
                        format!(
                            "bucket `{}` is not versioned, so replication from `{s}` to `{d}` does not run",
                            b.bucket
                        ),
                        format!("enable versioning on `{}`", b.bucket),
                    );
                }
                Err(e) => {
                    return aws_readiness(
                        "s3:GetBucketVersioning",
                        &format!("bucket `{}`", b.bucket),
                        &self.section,
                        &e,
                    );
                }
            }
        }
        Readiness::ready(format!(
            "buckets `{s}` and `{d}` exist, both versioned, and `{s}` replicates to `{d}`"
        ))
    }

    async fn bucket_readable(
        &self,
        client: &aws_sdk_s3::Client,
        b: &S3Bucket,
    ) -> Result<(), Readiness> {
        client
            .list_objects_v2()
            .bucket(&b.bucket)
            .prefix(&self.prefix)
            .max_keys(1)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| {
                aws_readiness(
                    "s3:ListBucket",
                    &format!("bucket `{}` ({})", b.bucket, b.region),
                    &self.section,
                    &e,
                )
            })
    }
}

impl PromoteReplica {
    pub(super) async fn ready(&self, ctx: &ReadyCtx) -> Readiness {
        let fix = format!("create the replica or fix {} in the policy", self.section);
        let db = match self.describe().await {
            Ok(d) => d,
            Err(e) => return from_step(e, &fix),
        };
        let status = db.db_instance_status().unwrap_or("unknown").to_string();
        if !ctx.next {
            return Readiness::ready(format!("{} exists ({status})", self.what));
        }
        let Some(source) = super::rds::replica_source(&db) else {
            return Readiness::not_ready(
                format!(
                    "{} is not a read replica: there is nothing to promote, and it may take writes beside the primary",
                    self.what
                ),
                "recreate it as a read replica of the serving primary",
            );
        };
        if let Some((false, s)) = super::rds::replication(&db) {
            return Readiness::not_ready(
                format!("replication of {} from {source} is `{s}`", self.what),
                "look at the replica's events in the RDS console; restart replication or recreate the replica",
            );
        }
        match self.replica_lag().await {
            super::rds::ReplicaLag::Seconds(s) => {
                let lag =
                    std::time::Duration::try_from_secs_f64(s).unwrap_or(std::time::Duration::MAX);
                if lag > ctx.rpo_budget {
                    Readiness::not_ready(
                        format!(
                            "{} is {} behind {source}, over the RPO budget {}",
                            self.what,
                            fmt_duration(lag),
                            fmt_duration(ctx.rpo_budget)
                        ),
                        "find why the replica lags (its instance class, write load, network); a failover now would stop for --allow-data-loss",
                    )
                } else {
                    Readiness::ready(format!(
                        "{} replicates from {source}, {} behind (RPO budget {})",
                        self.what,
                        fmt_duration(lag),
                        fmt_duration(ctx.rpo_budget)
                    ))
                }
            }
            super::rds::ReplicaLag::Unknown(why) => Readiness::ready(format!(
                "{} is a read replica of {source} ({status})",
                self.what
            ))
            .and(Readiness::cannot_tell(format!("its lag is unknown: {why}"))),
        }
    }
}

impl AuroraGlobal {
    pub(super) async fn ready(&self, ctx: &ReadyCtx) -> Readiness {
        let fix = format!(
            "create the global database and its clusters (terraform) or fix {} in the policy",
            self.section
        );
        let (status, writer) = match self.observe().await {
            Ok(o) => o,
            Err(e) => return from_step(e, &fix),
        };
        match writer {
            None => Readiness::not_ready(
                format!("{} is not a member of its global database", self.what),
                fix,
            ),
            Some(true) if ctx.next => Readiness::not_ready(
                format!(
                    "{} is already the writer while lifeboat's journal says {} serves",
                    self.what, ctx.serving
                ),
                "find who moved the writer; record the move with lifeboat failover/failback, or move it back",
            ),
            Some(_) if ctx.next && status != "available" => Readiness::not_ready(
                format!("the global database of {} is `{status}`", self.what),
                "wait for the operation under way to finish; look at the global database in the RDS console",
            ),
            Some(is_writer) => Readiness::ready(format!(
                "{} is a {} member of its global database ({status})",
                self.what,
                if is_writer { "writer" } else { "secondary" }
            )),
        }
    }
}
