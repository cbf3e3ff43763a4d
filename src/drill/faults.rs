//! Breaking the sandbox on purpose, and mending it: each fault a drill can inject, with
//! the heal that the drill's rollback always runs.

use std::time::Duration;

use anyhow::Context;
use tokio::task::JoinHandle;

use super::scenario::{FaultKind, Side};
use crate::clients::aws::{AwsClients, describe_error};
use crate::sandbox::postgres::StopMode;
use crate::sandbox::world::{PRIMARY, SECONDARY, World};

pub fn region(side: Side) -> &'static str {
    match side {
        Side::Primary => PRIMARY,
        Side::Secondary => SECONDARY,
    }
}

/// The region API's own client (direct, not through the controller's proxies).
fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(3))
        .build()
        .unwrap_or_default()
}

async fn post(url: String, body: serde_json::Value) -> anyhow::Result<()> {
    let r = http()
        .post(&url)
        .json(&body)
        .send()
        .await
        .with_context(|| format!("POST {url}"))?;
    anyhow::ensure!(r.status().is_success(), "POST {url}: {}", r.status());
    Ok(())
}

/// A fault in place, and what it needs to be undone.
pub struct Injected {
    pub kind: FaultKind,
    pub region: String,
    flapper: Option<JoinHandle<()>>,
}

/// Breaks `region` of the sandbox the way `kind` says.
pub async fn inject(
    world: &World,
    kind: FaultKind,
    region: &str,
    period: Duration,
) -> anyhow::Result<Injected> {
    let api = world
        .api_url(region)
        .context("no such region in the sandbox")?;
    let mut flapper = None;
    match kind {
        FaultKind::StopDatabase => {
            let pg = world.pg(region)?;
            tokio::task::spawn_blocking(move || pg.stop(StopMode::Immediate)).await??;
        }
        FaultKind::ApiError => {
            post(format!("{api}/fault"), serde_json::json!({"mode": "error"})).await?
        }
        FaultKind::StopHeartbeats => {
            post(
                format!("{api}/fault"),
                serde_json::json!({"heartbeats": false}),
            )
            .await?
        }
        FaultKind::StorageFail => {
            let clients = AwsClients::for_emulator(&world.moto_url());
            let bucket = bucket(region);
            let s3 = clients.s3(region);
            // Empty it first: a bucket with objects cannot be deleted.
            let listed = s3
                .list_objects_v2()
                .bucket(bucket)
                .send()
                .await
                .map_err(|e| anyhow::anyhow!("list {bucket}: {}", describe_error(&e)))?;
            for o in listed.contents() {
                if let Some(k) = o.key() {
                    let _ = s3.delete_object().bucket(bucket).key(k).send().await;
                }
            }
            s3.delete_bucket()
                .bucket(bucket)
                .send()
                .await
                .map_err(|e| anyhow::anyhow!("delete bucket {bucket}: {}", describe_error(&e)))?;
        }
        FaultKind::FlapApi => {
            let url = format!("{api}/fault");
            flapper = Some(tokio::spawn(async move {
                // fail, fail, ok — never three failures in a row.
                for mode in ["error", "error", "healthy"].iter().cycle() {
                    let _ = post(url.clone(), serde_json::json!({"mode": mode})).await;
                    tokio::time::sleep(period).await;
                }
            }));
        }
        FaultKind::CutController => {
            for proxy in ["db", "api", "workers", "cache"] {
                post(
                    format!("{api}/proxies/{proxy}"),
                    serde_json::json!({"mode": "blackhole"}),
                )
                .await?;
            }
        }
        FaultKind::DegradeReplication => {
            let primary_api = world.api_url(PRIMARY).context("primary API")?;
            post(
                format!("{primary_api}/proxies/replication"),
                serde_json::json!({"mode": "blackhole"}),
            )
            .await?;
        }
    }
    Ok(Injected {
        kind,
        region: region.to_string(),
        flapper,
    })
}

/// Undoes a fault. Database faults are healed by the drill's rejoin (the stopped primary
/// comes back as a standby of the new one), not here.
pub async fn heal(world: &World, f: Injected) -> anyhow::Result<()> {
    if let Some(task) = f.flapper {
        task.abort();
    }
    let api = world.api_url(&f.region).context("no such region")?;
    match f.kind {
        FaultKind::StopDatabase => {}
        FaultKind::ApiError | FaultKind::FlapApi => {
            post(
                format!("{api}/fault"),
                serde_json::json!({"mode": "healthy"}),
            )
            .await?
        }
        FaultKind::StopHeartbeats => {
            post(
                format!("{api}/fault"),
                serde_json::json!({"heartbeats": true}),
            )
            .await?
        }
        FaultKind::StorageFail => {
            let clients = AwsClients::for_emulator(&world.moto_url());
            let mut req = clients
                .s3(&f.region)
                .create_bucket()
                .bucket(bucket(&f.region));
            if f.region != "us-east-1" {
                req = req.create_bucket_configuration(
                    aws_sdk_s3::types::CreateBucketConfiguration::builder()
                        .location_constraint(aws_sdk_s3::types::BucketLocationConstraint::from(
                            f.region.as_str(),
                        ))
                        .build(),
                );
            }
            req.send()
                .await
                .map_err(|e| anyhow::anyhow!("recreate the bucket: {}", describe_error(&e)))?;
        }
        FaultKind::CutController => {
            for proxy in ["db", "api", "workers", "cache"] {
                post(
                    format!("{api}/proxies/{proxy}"),
                    serde_json::json!({"mode": "pass"}),
                )
                .await?;
            }
        }
        FaultKind::DegradeReplication => {
            let primary_api = world.api_url(PRIMARY).context("primary API")?;
            post(
                format!("{primary_api}/proxies/replication"),
                serde_json::json!({"mode": "pass"}),
            )
            .await?;
        }
    }
    Ok(())
}

fn bucket(region: &str) -> &'static str {
    if region == PRIMARY {
        "sandbox-orders-assets-use1"
    } else {
        "sandbox-orders-assets-usw2"
    }
}
