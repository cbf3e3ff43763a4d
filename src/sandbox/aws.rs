//! The sandbox's AWS resources, created in moto at `sandbox up`: a hosted zone with the
//! PRIMARY/SECONDARY failover record pair and the health check the switch inverts, one
//! S3 bucket and one Auto Scaling group per region, and the SNS topic for notifications.
//! The same shapes the Terraform module creates for real accounts.

use anyhow::Context;
use aws_sdk_route53::types::{
    Change, ChangeAction, ChangeBatch, HealthCheckConfig, HealthCheckType, ResourceRecord,
    ResourceRecordSet, ResourceRecordSetFailover, RrType,
};
use serde::{Deserialize, Serialize};

use crate::clients::aws::{AwsClients, describe_error};

/// What the sandbox policy names, per region.
#[derive(Clone, Debug)]
pub struct Names {
    pub zone: String,
    pub record: String,
    /// (region, record set identifier, the address the record answers with)
    pub regions: Vec<(String, String, String)>,
    pub buckets: Vec<(String, String)>,
    /// (region, group name, desired size)
    pub groups: Vec<(String, String, i32)>,
    pub topic: String,
}

/// The identifiers moto chose, which the policy reads from the sandbox's vars file.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Provisioned {
    pub zone_id: String,
    pub health_check_id: String,
    pub topic_arn: String,
}

pub async fn provision(clients: &AwsClients, names: &Names) -> anyhow::Result<Provisioned> {
    let r53 = clients.route53();
    let reference = format!("lifeboat-sandbox-{}", std::process::id());
    let zone = r53
        .create_hosted_zone()
        .name(&names.zone)
        .caller_reference(format!("{reference}-zone"))
        .send()
        .await
        .map_err(|e| {
            anyhow::anyhow!("create hosted zone {}: {}", names.zone, describe_error(&e))
        })?;
    let zone_id = zone
        .hosted_zone()
        .map(|z| z.id().trim_start_matches("/hostedzone/").to_string())
        .context("moto returned no hosted zone")?;
    // A health check that is always healthy until lifeboat inverts it: the primary
    // record stays in service exactly as long as nobody flips the switch.
    let hc = r53
        .create_health_check()
        .caller_reference(format!("{reference}-switch"))
        .health_check_config(
            HealthCheckConfig::builder()
                .r#type(HealthCheckType::Calculated)
                .health_threshold(0)
                .set_child_health_checks(Some(vec![]))
                .build()
                .context("health check config")?,
        )
        .send()
        .await
        .map_err(|e| anyhow::anyhow!("create the switch health check: {}", describe_error(&e)))?;
    let health_check_id = hc
        .health_check()
        .map(|h| h.id().to_string())
        .context("moto returned no health check")?;

    let mut changes = Vec::new();
    for (i, (_, set_id, address)) in names.regions.iter().enumerate() {
        let failover = if i == 0 {
            ResourceRecordSetFailover::Primary
        } else {
            ResourceRecordSetFailover::Secondary
        };
        let mut rrs = ResourceRecordSet::builder()
            .name(&names.record)
            .r#type(RrType::A)
            .ttl(30)
            .set_identifier(set_id)
            .failover(failover)
            .resource_records(
                ResourceRecord::builder()
                    .value(address)
                    .build()
                    .context("record")?,
            );
        if i == 0 {
            rrs = rrs.health_check_id(&health_check_id);
        }
        changes.push(
            Change::builder()
                .action(ChangeAction::Create)
                .resource_record_set(rrs.build().context("record set")?)
                .build()
                .context("change")?,
        );
    }
    r53.change_resource_record_sets()
        .hosted_zone_id(&zone_id)
        .change_batch(
            ChangeBatch::builder()
                .set_changes(Some(changes))
                .build()
                .context("change batch")?,
        )
        .send()
        .await
        .map_err(|e| {
            anyhow::anyhow!(
                "create the failover record pair {}: {}",
                names.record,
                describe_error(&e)
            )
        })?;

    for (region, bucket) in &names.buckets {
        let s3 = clients.s3(region);
        let mut req = s3.create_bucket().bucket(bucket);
        if region != "us-east-1" {
            req = req.create_bucket_configuration(
                aws_sdk_s3::types::CreateBucketConfiguration::builder()
                    .location_constraint(aws_sdk_s3::types::BucketLocationConstraint::from(
                        region.as_str(),
                    ))
                    .build(),
            );
        }
        req.send()
            .await
            .map_err(|e| anyhow::anyhow!("create bucket {bucket}: {}", describe_error(&e)))?;
    }

    for (region, group, desired) in &names.groups {
        let asg = clients.autoscaling(region);
        let lc = format!("{group}-lc");
        asg.create_launch_configuration()
            .launch_configuration_name(&lc)
            .image_id("ami-12c6146b")
            .instance_type("t2.micro")
            .send()
            .await
            .map_err(|e| {
                anyhow::anyhow!("create launch configuration {lc}: {}", describe_error(&e))
            })?;
        asg.create_auto_scaling_group()
            .auto_scaling_group_name(group)
            .launch_configuration_name(&lc)
            .min_size(1)
            .max_size(4)
            .desired_capacity(*desired)
            .availability_zones(format!("{region}a"))
            .send()
            .await
            .map_err(|e| {
                anyhow::anyhow!("create Auto Scaling group {group}: {}", describe_error(&e))
            })?;
    }

    let topic = clients
        .sns("us-east-1")
        .create_topic()
        .name(&names.topic)
        .send()
        .await
        .map_err(|e| anyhow::anyhow!("create SNS topic {}: {}", names.topic, describe_error(&e)))?;
    let topic_arn = topic.topic_arn().unwrap_or_default().to_string();
    Ok(Provisioned {
        zone_id,
        health_check_id,
        topic_arn,
    })
}

/// Which region the failover record pair sends traffic to now: the SECONDARY's when the
/// PRIMARY record's health check is inverted (moto reports every check healthy, so the
/// inversion flag is the switch's whole state).
pub async fn active_region(
    clients: &AwsClients,
    zone_id: &str,
    record: &str,
    health_check_id: &str,
) -> anyhow::Result<String> {
    let r53 = clients.route53();
    let hc = r53
        .get_health_check()
        .health_check_id(health_check_id)
        .send()
        .await
        .map_err(|e| {
            anyhow::anyhow!(
                "read health check {health_check_id}: {}",
                describe_error(&e)
            )
        })?;
    let inverted = hc
        .health_check()
        .and_then(|h| h.health_check_config())
        .and_then(|c| c.inverted())
        .unwrap_or(false);
    let sets = r53
        .list_resource_record_sets()
        .hosted_zone_id(zone_id)
        .send()
        .await
        .map_err(|e| anyhow::anyhow!("list records of zone {zone_id}: {}", describe_error(&e)))?;
    let want = if inverted {
        ResourceRecordSetFailover::Secondary
    } else {
        ResourceRecordSetFailover::Primary
    };
    sets.resource_record_sets()
        .iter()
        .find(|r| {
            r.name().trim_end_matches('.') == record.trim_end_matches('.')
                && r.failover() == Some(&want)
        })
        .and_then(|r| r.set_identifier().map(str::to_string))
        .with_context(|| format!("no {want:?} record {record} in zone {zone_id}"))
}
