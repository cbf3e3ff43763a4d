//! `rds` probes: describe the RDS instance, or the Aurora cluster and its global
//! database; healthy iff the status is `available`; report the role.
//!
//! Replica lag is not reported: `ReplicaLag` and `AuroraGlobalDBReplicationLag` are
//! CloudWatch metrics, not part of any Describe* answer, and the probe calls only the
//! APIs listed for `rds` in `core::iam`. What Describe does say is whether replication
//! is running (an instance's "read replication" status info, a global member's
//! synchronization status); that goes into `Lag::streaming` and the detail.

use async_trait::async_trait;

use super::{Facts, Failure, Probe};
use crate::clients::aws::describe_error;
use crate::core::health::{Lag, Role};

/// What an `rds` probe describes.
#[derive(Clone, Debug)]
pub enum RdsTarget {
    Instance {
        instance_id: String,
    },
    Aurora {
        cluster_id: String,
        global_cluster_id: String,
    },
}

pub struct RdsProbe {
    client: aws_sdk_rds::Client,
    target: RdsTarget,
}

impl RdsProbe {
    pub fn new(client: aws_sdk_rds::Client, target: RdsTarget) -> RdsProbe {
        RdsProbe { client, target }
    }

    async fn instance(&self, id: &str) -> Result<Facts, Failure> {
        let out = self
            .client
            .describe_db_instances()
            .db_instance_identifier(id)
            .send()
            .await
            .map_err(|e| Failure::new(format!("DescribeDBInstances: {}", describe_error(&e))))?;
        let Some(db) = out.db_instances().first() else {
            return Err(Failure::new("DescribeDBInstances returned no instance"));
        };
        let status = db.db_instance_status().unwrap_or("unknown");
        let source = db
            .read_replica_source_db_instance_identifier()
            .or(db.read_replica_source_db_cluster_identifier());
        let role = if source.is_some() {
            Role::Standby
        } else {
            Role::Primary
        };
        let replication = db
            .status_infos()
            .iter()
            .find(|i| i.status_type() == Some("read replication"));
        let lag = replication.map(|i| Lag {
            bytes: None,
            seconds: None,
            streaming: Some(i.normal() == Some(true) && i.status() == Some("replicating")),
        });
        let mut detail = match source {
            Some(src) => format!("{status}, replica of {src}"),
            None => format!("{status}, primary"),
        };
        if let Some(i) = replication {
            detail.push_str(&format!(
                ", replication {}",
                i.status().unwrap_or("unknown")
            ));
        }
        let facts = Facts {
            role: Some(role),
            lag,
            detail: Some(detail),
        };
        if status != "available" {
            return Err(
                Failure::new(format!("instance status is {status}, not available"))
                    .with_facts(facts),
            );
        }
        Ok(facts)
    }

    async fn aurora(&self, cluster_id: &str, global_id: &str) -> Result<Facts, Failure> {
        let out = self
            .client
            .describe_db_clusters()
            .db_cluster_identifier(cluster_id)
            .send()
            .await
            .map_err(|e| Failure::new(format!("DescribeDBClusters: {}", describe_error(&e))))?;
        let Some(cluster) = out.db_clusters().first() else {
            return Err(Failure::new("DescribeDBClusters returned no cluster"));
        };
        let status = cluster.status().unwrap_or("unknown").to_string();
        let arn = cluster.db_cluster_arn().unwrap_or_default().to_string();
        let global = self
            .client
            .describe_global_clusters()
            .global_cluster_identifier(global_id)
            .send()
            .await
            .map_err(|e| Failure::new(format!("DescribeGlobalClusters: {}", describe_error(&e))))?;
        let member = global
            .global_clusters()
            .first()
            .into_iter()
            .flat_map(|g| g.global_cluster_members())
            .find(|m| {
                m.db_cluster_arn()
                    .is_some_and(|a| a == arn || a.ends_with(&format!(":cluster:{cluster_id}")))
            });
        let (role, lag, detail) = match member {
            Some(m) if m.is_writer() == Some(true) => (
                Role::Primary,
                None,
                format!("{status}, writer of {global_id}"),
            ),
            Some(m) => {
                let sync = m.synchronization_status().map(|s| s.as_str().to_string());
                (
                    Role::Standby,
                    sync.as_ref().map(|s| Lag {
                        bytes: None,
                        seconds: None,
                        streaming: Some(s == "connected"),
                    }),
                    match sync {
                        Some(s) => format!("{status}, secondary of {global_id}, {s}"),
                        None => format!("{status}, secondary of {global_id}"),
                    },
                )
            }
            // Detached from the global database (after a failover that removed it): a
            // standalone cluster takes writes.
            None => (
                Role::Primary,
                None,
                format!("{status}, not a member of {global_id}"),
            ),
        };
        let facts = Facts {
            role: Some(role),
            lag,
            detail: Some(detail),
        };
        if status != "available" {
            return Err(
                Failure::new(format!("cluster status is {status}, not available"))
                    .with_facts(facts),
            );
        }
        Ok(facts)
    }
}

#[async_trait]
impl Probe for RdsProbe {
    fn endpoint(&self) -> String {
        match &self.target {
            RdsTarget::Instance { instance_id } => format!("rds instance {instance_id}"),
            RdsTarget::Aurora {
                cluster_id,
                global_cluster_id,
            } => format!("aurora cluster {cluster_id} (global {global_cluster_id})"),
        }
    }

    async fn check(&self) -> Result<Facts, Failure> {
        match &self.target {
            RdsTarget::Instance { instance_id } => self.instance(instance_id).await,
            RdsTarget::Aurora {
                cluster_id,
                global_cluster_id,
            } => self.aurora(cluster_id, global_cluster_id).await,
        }
    }
}
