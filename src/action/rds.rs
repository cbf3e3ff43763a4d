//! `rds_promote_replica` (a cross-region RDS read replica becomes a standalone,
//! writable instance) and `aurora_global_failover` / `aurora_global_switchover` (a
//! secondary cluster of an Aurora global database becomes its writer).

use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use aws_sdk_rds::types::{DbInstance, GlobalCluster};

use super::{aws_error, target_section};
use crate::core::model::AuroraEndpoint;
use crate::core::rpo;
use crate::core::time::fmt_duration;
use crate::runbook::{Applied, Check, Step, StepCtx, StepError, Verify};

/// Promotes an RDS read replica.
///
/// Guarantees: `apply` calls PromoteReadReplica only on an instance that is still a
/// replica, and only when its replication is running and its last `ReplicaLag` is
/// within the run's RPO budget, or the run accepted data loss; `verify` waits for
/// `available` and no replica source.
/// Assumptions: the instance is a read replica of the primary being left.
/// Errors: fatal when the instance does not exist or the call is denied;
/// NeedsApproval when replication has stopped or the lag is over budget.
pub struct PromoteReplica {
    client: aws_sdk_rds::Client,
    cloudwatch: aws_sdk_cloudwatch::Client,
    instance_id: String,
    what: String,
    section: String,
}

impl PromoteReplica {
    /// `cloudwatch` is a client in the replica's region, where RDS publishes its lag.
    pub fn new(
        client: aws_sdk_rds::Client,
        cloudwatch: aws_sdk_cloudwatch::Client,
        instance_id: &str,
        aws_region: &str,
        target: &str,
    ) -> PromoteReplica {
        PromoteReplica {
            client,
            cloudwatch,
            instance_id: instance_id.to_string(),
            what: format!("RDS instance `{instance_id}` in {aws_region}"),
            section: target_section(target),
        }
    }

    async fn describe(&self) -> Result<DbInstance, StepError> {
        let out = self
            .client
            .describe_db_instances()
            .db_instance_identifier(&self.instance_id)
            .send()
            .await
            .map_err(|e| aws_error("rds:DescribeDBInstances", &self.what, &self.section, &e))?;
        out.db_instances().first().cloned().ok_or_else(|| {
            StepError::fatal(format!(
                "{} does not exist: check {} in the policy",
                self.what, self.section
            ))
        })
    }
}

/// The instance's replica source, if it still has one.
fn replica_source(db: &DbInstance) -> Option<&str> {
    db.read_replica_source_db_instance_identifier()
        .or(db.read_replica_source_db_cluster_identifier())
}

/// The replica's replication state from DescribeDBInstances (`replicating`, `error`,
/// `stopped`…), with AWS's message when it has one.
fn replication(db: &DbInstance) -> Option<(bool, String)> {
    let info = db
        .status_infos()
        .iter()
        .find(|i| i.status_type() == Some("read replication"))?;
    let ok = info.normal() == Some(true) && info.status() == Some("replicating");
    let mut s = info.status().unwrap_or("unknown").to_string();
    if let Some(m) = info.message() {
        s.push_str(&format!(": {m}"));
    }
    Some((ok, s))
}

/// The first RPO input: whether replication is running (DescribeDBInstances). A replica
/// whose replication stopped or failed cannot say how far behind it is, so promoting
/// it may lose writes: that takes an operator's approval.
fn replication_gate(db: &DbInstance, ctx: &StepCtx, what: &str) -> Result<String, StepError> {
    match replication(db) {
        Some((true, s)) => Ok(format!("replication {s}")),
        Some((false, s)) if !ctx.allow_data_loss => Err(StepError::needs_approval(format!(
            "replication of {what} is `{s}`, so its lag is unknown and writes may be lost — approve with --allow-data-loss to accept"
        ))),
        Some((false, s)) => Ok(format!("replication {s}, data loss accepted")),
        None => Ok("replication status not reported".to_string()),
    }
}

/// How far behind the replica was, by CloudWatch.
#[derive(Clone, Debug, PartialEq)]
enum ReplicaLag {
    Seconds(f64),
    /// No datapoint, a negative one (RDS reports -1 while replication is broken), or
    /// CloudWatch could not be read; the words say which.
    Unknown(String),
}

/// How far back to look for the newest `ReplicaLag` datapoint: RDS publishes it every
/// minute, so five minutes tolerates a late one without trusting a stale one.
const LAG_WINDOW: Duration = Duration::from_secs(300);

impl PromoteReplica {
    /// The newest `ReplicaLag` (AWS/RDS, seconds) of the last few minutes. A failure to
    /// read it does not stop a failover: it is reported, and the replication status
    /// still gates the promotion.
    async fn replica_lag(&self) -> ReplicaLag {
        use aws_sdk_cloudwatch::primitives::DateTime;
        use aws_sdk_cloudwatch::types::{Dimension, Statistic};
        let now = SystemTime::now();
        let out = self
            .cloudwatch
            .get_metric_statistics()
            .namespace("AWS/RDS")
            .metric_name("ReplicaLag")
            .dimensions(
                Dimension::builder()
                    .name("DBInstanceIdentifier")
                    .value(&self.instance_id)
                    .build(),
            )
            .start_time(DateTime::from(now - LAG_WINDOW))
            .end_time(DateTime::from(now))
            .period(60)
            .statistics(Statistic::Maximum)
            .send()
            .await;
        let out = match out {
            Ok(o) => o,
            Err(e) => {
                return ReplicaLag::Unknown(format!(
                    "CloudWatch GetMetricStatistics failed: {}",
                    crate::clients::aws::describe_error(&e)
                ));
            }
        };
        let newest = out
            .datapoints()
            .iter()
            .filter_map(|d| Some((d.timestamp()?.as_secs_f64(), d.maximum()?)))
            .max_by(|a, b| a.0.total_cmp(&b.0));
        match newest {
            Some((_, lag)) if lag >= 0.0 => ReplicaLag::Seconds(lag),
            Some((_, lag)) => ReplicaLag::Unknown(format!("ReplicaLag is {lag}")),
            None => ReplicaLag::Unknown("no ReplicaLag datapoint in the last 5 minutes".into()),
        }
    }
}

/// The second RPO input: the replica's lag against the run's budget.
fn lag_gate(lag: &ReplicaLag, ctx: &StepCtx, what: &str) -> Result<String, StepError> {
    match lag {
        ReplicaLag::Seconds(s) => {
            // CloudWatch's figure is only checked to be non-negative; an absurd one must
            // read as "far over budget", not panic the step.
            let lag = Duration::try_from_secs_f64(*s).unwrap_or(Duration::MAX);
            rpo::check(Some(lag), ctx.rpo_budget, ctx.allow_data_loss)
                .map_err(|over| super::postgres::over_budget(over, what))?;
            Ok(format!("lag {}", fmt_duration(lag)))
        }
        ReplicaLag::Unknown(why) => Ok(format!("lag unknown: {why}")),
    }
}

#[async_trait]
impl Step for PromoteReplica {
    async fn check(&self, _ctx: &StepCtx) -> Result<Check, StepError> {
        let db = self.describe().await?;
        let status = db.db_instance_status().unwrap_or("unknown");
        Ok(match replica_source(&db) {
            None => Check::Done(format!("{} is a standalone instance ({status})", self.what)),
            Some(src) => Check::NotDone(format!(
                "{} is a read replica of {src} ({status})",
                self.what
            )),
        })
    }

    async fn apply(&self, ctx: &StepCtx) -> Result<Applied, StepError> {
        let db = self.describe().await?;
        if replica_source(&db).is_none() {
            return Ok(Applied::new(format!(
                "{} is already standalone (a promotion is under way or done)",
                self.what
            )));
        }
        let replication = replication_gate(&db, ctx, &self.what)?;
        let lag = lag_gate(&self.replica_lag().await, ctx, &self.what)?;
        self.client
            .promote_read_replica()
            .db_instance_identifier(&self.instance_id)
            .send()
            .await
            .map_err(|e| aws_error("rds:PromoteReadReplica", &self.what, &self.section, &e))?;
        Ok(Applied::new(format!(
            "PromoteReadReplica accepted for {} ({replication}, {lag})",
            self.what
        )))
    }

    async fn verify(&self, _ctx: &StepCtx) -> Result<Verify, StepError> {
        let db = self.describe().await?;
        let status = db.db_instance_status().unwrap_or("unknown");
        Ok(match (status, replica_source(&db)) {
            ("available", None) => Verify::Done(format!(
                "{} is available and no longer a replica",
                self.what
            )),
            (_, Some(src)) => Verify::NotYet(format!(
                "{} is {status}, still a replica of {src}",
                self.what
            )),
            _ => Verify::NotYet(format!("{} is {status}", self.what)),
        })
    }
}

/// Makes a secondary cluster of an Aurora global database its writer.
///
/// Guarantees: a switchover (planned) never loses data. A failover (unplanned) sends
/// `AllowDataLoss` only when the run accepted data loss; otherwise AWS performs it as
/// a switchover, and when AWS refuses that (the writer region is down) the step asks
/// for approval instead of losing writes silently.
/// Assumptions: the cluster is a member of the global database.
/// Errors: fatal when the global database or cluster does not exist, the cluster is
/// not a member, or the call is denied.
pub struct AuroraGlobal {
    client: aws_sdk_rds::Client,
    ep: AuroraEndpoint,
    what: String,
    section: String,
    /// SwitchoverGlobalCluster rather than FailoverGlobalCluster.
    switchover: bool,
}

impl AuroraGlobal {
    pub fn new(
        client: aws_sdk_rds::Client,
        ep: AuroraEndpoint,
        target: &str,
        switchover: bool,
    ) -> AuroraGlobal {
        AuroraGlobal {
            what: format!(
                "Aurora cluster `{}` of global database `{}` in {}",
                ep.cluster_id, ep.global_cluster_id, ep.aws_region
            ),
            client,
            ep,
            section: target_section(target),
            switchover,
        }
    }

    fn call(&self) -> &'static str {
        if self.switchover {
            "rds:SwitchoverGlobalCluster"
        } else {
            "rds:FailoverGlobalCluster"
        }
    }

    async fn global(&self) -> Result<GlobalCluster, StepError> {
        let g = &self.ep.global_cluster_id;
        let subject = format!("Aurora global database `{g}`");
        let out = self
            .client
            .describe_global_clusters()
            .global_cluster_identifier(g)
            .send()
            .await
            .map_err(|e| aws_error("rds:DescribeGlobalClusters", &subject, &self.section, &e))?;
        out.global_clusters().first().cloned().ok_or_else(|| {
            StepError::fatal(format!(
                "{subject} does not exist: check {} in the policy",
                self.section
            ))
        })
    }

    /// The cluster's ARN: the policy may give it; otherwise DescribeDBClusters in its
    /// region says (the global APIs want the ARN to find a cluster in another region).
    async fn arn(&self) -> Result<String, StepError> {
        if self.ep.cluster_id.starts_with("arn:") {
            return Ok(self.ep.cluster_id.clone());
        }
        let out = self
            .client
            .describe_db_clusters()
            .db_cluster_identifier(&self.ep.cluster_id)
            .send()
            .await
            .map_err(|e| aws_error("rds:DescribeDBClusters", &self.what, &self.section, &e))?;
        out.db_clusters()
            .first()
            .and_then(|c| c.db_cluster_arn())
            .map(str::to_string)
            .ok_or_else(|| {
                StepError::fatal(format!(
                    "{} does not exist: check {} in the policy",
                    self.what, self.section
                ))
            })
    }

    /// Where the global database stands: its status, and whether our cluster writes.
    async fn observe(&self) -> Result<(String, Option<bool>), StepError> {
        let g = self.global().await?;
        let status = g.status().unwrap_or("unknown").to_string();
        let id = &self.ep.cluster_id;
        let member = g.global_cluster_members().iter().find(|m| {
            m.db_cluster_arn().is_some_and(|a| {
                a == id || a.ends_with(&format!(":cluster:{id}")) || id.ends_with(a)
            })
        });
        Ok((status, member.map(|m| m.is_writer() == Some(true))))
    }
}

#[async_trait]
impl Step for AuroraGlobal {
    async fn check(&self, _ctx: &StepCtx) -> Result<Check, StepError> {
        Ok(match self.observe().await? {
            (status, Some(true)) => Check::Done(format!("{} is the writer ({status})", self.what)),
            (status, Some(false)) => {
                Check::NotDone(format!("{} is a secondary ({status})", self.what))
            }
            (_, None) => {
                return Err(StepError::fatal(format!(
                    "{} is not a member of its global database: check {} in the policy",
                    self.what, self.section
                )));
            }
        })
    }

    async fn apply(&self, ctx: &StepCtx) -> Result<Applied, StepError> {
        let arn = self.arn().await?;
        let g = &self.ep.global_cluster_id;
        let sent = if self.switchover {
            self.client
                .switchover_global_cluster()
                .global_cluster_identifier(g)
                .target_db_cluster_identifier(&arn)
                .send()
                .await
                .map(|_| "SwitchoverGlobalCluster (no data loss)")
                .map_err(|e| aws_error(self.call(), &self.what, &self.section, &e))
        } else {
            let mut req = self
                .client
                .failover_global_cluster()
                .global_cluster_identifier(g)
                .target_db_cluster_identifier(&arn);
            // Without AllowDataLoss, AWS runs the failover as a switchover, which
            // needs the writer's region and loses nothing.
            if ctx.allow_data_loss {
                req = req.allow_data_loss(true);
            }
            match req.send().await {
                Ok(_) if ctx.allow_data_loss => {
                    Ok("FailoverGlobalCluster with AllowDataLoss (accepted by the operator)")
                }
                Ok(_) => Ok("FailoverGlobalCluster without data loss"),
                Err(e) if super::is_invalid_state(&e) => Err(StepError::needs_approval(format!(
                    "{} cannot take over without losing writes not yet replicated ({}) — approve with --allow-data-loss to fail over anyway",
                    self.what,
                    crate::clients::aws::describe_error(&e)
                ))),
                Err(e) => Err(aws_error(self.call(), &self.what, &self.section, &e)),
            }
        }?;
        Ok(Applied::new(format!("{sent} accepted for {}", self.what)))
    }

    async fn verify(&self, _ctx: &StepCtx) -> Result<Verify, StepError> {
        Ok(match self.observe().await? {
            (status, Some(true)) if status == "available" => Verify::Done(format!(
                "{} is the writer and the global database is available",
                self.what
            )),
            (status, Some(true)) => Verify::NotYet(format!(
                "{} is the writer; the global database is {status}",
                self.what
            )),
            (status, _) => Verify::NotYet(format!(
                "{} is not the writer yet; the global database is {status}",
                self.what
            )),
        })
    }
}
