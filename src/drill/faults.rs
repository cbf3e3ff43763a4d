//! Breaking the sandbox on purpose, and mending it: each fault a drill can inject, with
//! the heal that the drill's rollback always runs.

use std::time::Duration;

use anyhow::Context;
use aws_sdk_s3::error::ProvideErrorMetadata;
use rustix::process::{Pid, Signal, kill_process};

use super::run::Daemon;
use super::scenario::{Fault, FaultKind, Side};
use crate::clients::aws::{AwsClients, describe_error};
use crate::sandbox::ha;
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

/// The proxies the controller reaches a region's services through.
const CONTROLLER_PROXIES: [&str; 4] = ha::SERVICE_PROXIES;

/// A fault in place, and what it needs to be undone.
pub struct Injected {
    pub kind: FaultKind,
    /// The region whose servers hold the fault (for a controller's etcd link, the
    /// controller's own region).
    pub region: String,
    /// The stopped controller, to continue on heal if the fault's own timer has not.
    stopped: Option<u32>,
}

/// Breaks `region` of the sandbox the way `fault` says. Faults on "the controller" hit
/// the one acting now. A `pause_controller` fault returns once the controller runs again.
pub async fn inject(
    world: &World,
    fault: &Fault,
    region: &str,
    daemon: &Daemon,
) -> anyhow::Result<Injected> {
    let mut region = region.to_string();
    let api = world
        .api_url(&region)
        .context("no such region in the sandbox")?;
    let kind = fault.kind;
    let mut stopped = None;
    let acting = async || {
        daemon
            .leader()
            .await
            .map(|(n, _)| (n.name.clone(), n.region.clone(), n.pid))
            .context("no controller leads right now")
    };
    match kind {
        FaultKind::KillController => {
            let (_, _, pid) = acting().await?;
            signal(pid, Signal::KILL)?;
        }
        FaultKind::CutControllerFromEtcd => {
            let (name, at, _) = acting().await?;
            let ha = world.ha.as_ref().context("this sandbox runs no etcd")?;
            let api = world.api_url(&at).with_context(|| {
                format!("the controller {name} lives in {at}, which the sandbox does not run")
            })?;
            for i in 0..ha.etcd.len() {
                post(
                    format!("{api}/proxies/{}", ha::etcd_proxy(i)),
                    serde_json::json!({"mode": "blackhole"}),
                )
                .await?;
            }
            region = at;
        }
        FaultKind::KillEtcdMember => {
            let ha = world.ha.as_ref().context("this sandbox runs no etcd")?;
            let i = ha
                .raft_leader()
                .await
                .context("no etcd member says who the raft leader is")?;
            signal(ha.etcd[i].pid, Signal::KILL)?;
        }
        FaultKind::CutObserver => {
            for proxy in ha::SERVICE_PROXIES {
                post(
                    format!("{api}/proxies/{}", ha::observer_proxy(proxy)),
                    serde_json::json!({"mode": "blackhole"}),
                )
                .await?;
            }
        }
        FaultKind::StopDatabase => {
            let pg = world.pg(&region)?;
            tokio::task::spawn_blocking(move || pg.stop(StopMode::Immediate)).await??;
        }
        FaultKind::ApiError => {
            post(format!("{api}/fault"), serde_json::json!({"mode": "error"})).await?
        }
        FaultKind::SlowApi => {
            let ms = fault.delay.unwrap_or_default().as_millis() as u64;
            post(
                format!("{api}/fault"),
                serde_json::json!({"mode": "slow", "delay_ms": ms}),
            )
            .await?
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
            let bucket = bucket(&region);
            let s3 = clients.s3(&region);
            // Empty it first: a bucket with objects cannot be deleted. The probes' canaries
            // keep writing objects meanwhile, so a put can land between the listing and the
            // delete: empty it again and retry.
            let mut attempt = 0;
            loop {
                attempt += 1;
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
                match s3.delete_bucket().bucket(bucket).send().await {
                    Ok(_) => break,
                    Err(e) if attempt < 20 && e.code() == Some("BucketNotEmpty") => {}
                    Err(e) => anyhow::bail!("delete bucket {bucket}: {}", describe_error(&e)),
                }
            }
        }
        FaultKind::FlapApi => {
            // Counted per caller by the endpoint: fail, fail, ok for the controller's
            // probe and, separately, for the witness's.
            post(format!("{api}/fault"), serde_json::json!({"mode": "flap"})).await?
        }
        FaultKind::LossyLink => {
            let percent = fault.percent.unwrap_or(30);
            for proxy in CONTROLLER_PROXIES {
                post(
                    format!("{api}/proxies/{proxy}"),
                    serde_json::json!({"mode": "reset_some", "percent": percent}),
                )
                .await?;
            }
        }
        FaultKind::PauseController => {
            let (_, _, controller) = acting().await?;
            signal(controller, Signal::STOP)?;
            stopped = Some(controller);
            tokio::time::sleep(fault.duration).await;
            signal(controller, Signal::CONT)?;
        }
        FaultKind::KillWitness => {
            let pid = world
                .witness
                .as_ref()
                .map(|w| w.pid)
                .context("this sandbox runs no witness")?;
            signal(pid, Signal::KILL)?;
        }
        FaultKind::CutController => {
            for proxy in CONTROLLER_PROXIES {
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
        region,
        stopped,
    })
}

fn signal(pid: u32, sig: Signal) -> anyhow::Result<()> {
    let p = i32::try_from(pid)
        .ok()
        .and_then(Pid::from_raw)
        .with_context(|| format!("no such process {pid}"))?;
    kill_process(p, sig).with_context(|| format!("send {sig:?} to process {pid}"))
}

/// Undoes a fault. Database faults are healed by the drill's rejoin (the stopped primary
/// comes back as a standby of the new one), not here.
pub async fn heal(world: &World, f: Injected) -> anyhow::Result<()> {
    if let Some(pid) = f.stopped {
        // Already continued unless the drill was interrupted mid-pause; a second
        // SIGCONT is harmless.
        let _ = signal(pid, Signal::CONT);
    }
    let api = world.api_url(&f.region).context("no such region")?;
    match f.kind {
        FaultKind::StopDatabase
        | FaultKind::PauseController
        | FaultKind::KillWitness
        | FaultKind::KillController
        | FaultKind::KillEtcdMember => {}
        FaultKind::CutControllerFromEtcd => {
            let members = world.ha.as_ref().map(|h| h.etcd.len()).unwrap_or_default();
            for i in 0..members {
                post(
                    format!("{api}/proxies/{}", ha::etcd_proxy(i)),
                    serde_json::json!({"mode": "pass"}),
                )
                .await?;
            }
        }
        FaultKind::CutObserver => {
            for proxy in ha::SERVICE_PROXIES {
                post(
                    format!("{api}/proxies/{}", ha::observer_proxy(proxy)),
                    serde_json::json!({"mode": "pass"}),
                )
                .await?;
            }
        }
        FaultKind::ApiError | FaultKind::FlapApi | FaultKind::SlowApi => {
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
        FaultKind::CutController | FaultKind::LossyLink => {
            for proxy in CONTROLLER_PROXIES {
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
