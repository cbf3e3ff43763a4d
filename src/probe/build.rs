//! The factory: a probe of the policy, in one region, becomes a runnable `RegionProbe`
//! over the right adapter.

use std::sync::Arc;
use std::time::Duration;

use thiserror::Error;

use super::command::CommandProbe;
use super::heartbeat::{Alive, HeartbeatProbe, Source};
use super::http::{HttpExpect, HttpProbe};
use super::postgres::PostgresProbe;
use super::rds::{RdsProbe, RdsTarget};
use super::redis::RedisProbe;
use super::s3::S3Canary;
use super::tcp::TcpProbe;
use super::{Probe, RegionProbe};
use crate::clients::aws::AwsClients;
use crate::clients::tls;
use crate::core::model::{Endpoint, Policy, ProbeCheck, ProbeSpec, RegionName, Target};

/// What adapters share: one HTTP client (connection reuse), the AWS clients, and the
/// policy's timing.
#[derive(Clone, Debug)]
pub struct Context {
    pub http: reqwest::Client,
    /// Needed only by probes that call AWS (see `needs_aws`).
    pub aws: Option<AwsClients>,
    /// The policy's `detection.timeout`: the bound of every round.
    pub timeout: Duration,
    /// The policy's `detection.interval`; heartbeats default to three of them.
    pub interval: Duration,
    /// The policy's `[commands] pass_env`: what command probes see of lifeboat's
    /// environment beyond the basics. Set from the policy by `build_all`.
    pub pass_env: Vec<String>,
}

impl Context {
    /// A context with the process's HTTP client for probes (`shared_client("probe")`).
    pub fn new(aws: Option<AwsClients>, timeout: Duration, interval: Duration) -> Context {
        Context {
            http: shared_client("probe"),
            aws,
            timeout,
            interval,
            pass_env: Vec::new(),
        }
    }

    /// This context with the policy's settings that shape single probes.
    pub fn for_policy(&self, policy: &Policy) -> Context {
        Context {
            pass_env: policy.commands.pass_env.clone(),
            ..self.clone()
        }
    }
}

/// The HTTP client all HTTP probes share. Rounds are bounded by the probe timeout, so
/// the client has none of its own; idle connections are kept for reuse between rounds.
/// Its user agent ends `(probe)`.
pub fn http_client() -> reqwest::Client {
    http_client_for("probe")
}

/// The process's one HTTP client for `purpose`: every service of a daemon shares its
/// connection pool and TLS configuration (a fleet of 200 services is one pool, not 200).
pub fn shared_client(purpose: &'static str) -> reqwest::Client {
    static CLIENTS: std::sync::Mutex<std::collections::BTreeMap<&'static str, reqwest::Client>> =
        std::sync::Mutex::new(std::collections::BTreeMap::new());
    let mut clients = CLIENTS.lock().unwrap_or_else(|p| p.into_inner());
    clients
        .entry(purpose)
        .or_insert_with(|| http_client_for(purpose))
        .clone()
}

/// An HTTP client like `http_client` whose user agent names `purpose` instead: a
/// runbook step's look at a probe (`wait_healthy`, and readiness) says `(runbook)`, so a
/// server's log tells it from the probe rounds.
pub fn http_client_for(purpose: &str) -> reqwest::Client {
    crate::clients::http::build(
        crate::clients::http::builder(purpose).pool_idle_timeout(Duration::from_secs(90)),
    )
}

#[derive(Debug, Error)]
pub enum BuildError {
    #[error("probe `{probe}` calls AWS, but no AWS clients were configured")]
    NoAws { probe: String },
    #[error("probe `{probe}` cannot watch a {endpoint} endpoint in {region}")]
    Mismatch {
        probe: String,
        endpoint: &'static str,
        region: RegionName,
    },
    #[error("probe `{probe}` in {region}: {reason}")]
    Tls {
        probe: String,
        region: RegionName,
        reason: String,
    },
    #[error("probe `{probe}` has no target settings for {region}")]
    NoEndpoint { probe: String, region: RegionName },
}

/// Whether any probe of the policy calls an AWS API (so the caller must load AWS
/// configuration and credentials).
pub fn needs_aws(policy: &Policy) -> bool {
    policy.probes.iter().any(|p| {
        let target = p.target.as_deref().and_then(|t| policy.target(t));
        match &p.check {
            ProbeCheck::S3 | ProbeCheck::Rds => true,
            ProbeCheck::Heartbeat { .. } => target.is_some_and(|t| {
                t.regions.values().any(|e| {
                    matches!(
                        e,
                        Endpoint::S3 { .. } | Endpoint::Asg { .. } | Endpoint::Ecs { .. }
                    )
                })
            }),
            _ => false,
        }
    })
}

/// Every probe of the policy in every region it lists (only `region` when given), in
/// policy order.
pub fn build_all(
    policy: &Policy,
    ctx: &Context,
    region: Option<&RegionName>,
) -> Result<Vec<RegionProbe>, BuildError> {
    let ctx = &ctx.for_policy(policy);
    let mut out = Vec::new();
    for spec in &policy.probes {
        let target = spec.target.as_deref().and_then(|t| policy.target(t));
        for r in &spec.regions {
            if region.is_some_and(|only| only != r) {
                continue;
            }
            out.push(build(spec, target, r, ctx)?);
        }
    }
    Ok(out)
}

/// One probe in one region. `target` is the probe's target (`None` for `command`).
pub fn build(
    spec: &ProbeSpec,
    target: Option<&Target>,
    region: &RegionName,
    ctx: &Context,
) -> Result<RegionProbe, BuildError> {
    let probe = adapter(spec, target, region, ctx)?;
    Ok(RegionProbe::new(spec, region.clone(), ctx.timeout, probe))
}

fn adapter(
    spec: &ProbeSpec,
    target: Option<&Target>,
    region: &RegionName,
    ctx: &Context,
) -> Result<Arc<dyn Probe>, BuildError> {
    if let ProbeCheck::Command { run } = &spec.check {
        return Ok(Arc::new(CommandProbe::new(
            run.clone(),
            &spec.name,
            region.as_str(),
            ctx.pass_env.clone(),
        )));
    }
    let endpoint =
        target
            .and_then(|t| t.endpoint(region))
            .ok_or_else(|| BuildError::NoEndpoint {
                probe: spec.name.clone(),
                region: region.clone(),
            })?;
    let aws = || {
        ctx.aws.as_ref().ok_or_else(|| BuildError::NoAws {
            probe: spec.name.clone(),
        })
    };
    let mismatch = || BuildError::Mismatch {
        probe: spec.name.clone(),
        endpoint: endpoint_kind(endpoint),
        region: region.clone(),
    };
    let timeout = ctx.timeout;
    let tls_error = |e: tls::TlsError| BuildError::Tls {
        probe: spec.name.clone(),
        region: region.clone(),
        reason: e.to_string(),
    };
    Ok(match (&spec.check, endpoint) {
        (
            ProbeCheck::Http {
                expect_status,
                body_contains,
                json_field,
                json_equals,
                max_latency,
            },
            Endpoint::Http { url },
        ) => Arc::new(HttpProbe::new(
            ctx.http.clone(),
            url,
            HttpExpect {
                status: expect_status.clone(),
                body_contains: body_contains.clone(),
                json: json_field.clone().zip(json_equals.clone()),
                max_latency: *max_latency,
            },
        )),
        (ProbeCheck::Postgres, Endpoint::Postgres(ep)) => {
            // A CA file that cannot be read fails the build, so the daemon refuses to
            // start instead of failing every round.
            tls::client_config(ep.sslmode, ep.ca_file.as_deref()).map_err(tls_error)?;
            Arc::new(PostgresProbe::new(ep.clone(), timeout))
        }
        (ProbeCheck::Tcp, Endpoint::Tcp { host, port }) => Arc::new(TcpProbe::new(host, *port)),
        (
            ProbeCheck::Redis,
            Endpoint::Redis {
                url,
                password,
                ca_file,
            },
        ) => {
            redis_tls(url, ca_file.as_deref()).map_err(tls_error)?;
            Arc::new(RedisProbe::new(
                url,
                password.clone(),
                ca_file.clone(),
                timeout,
            ))
        }
        (
            ProbeCheck::S3,
            Endpoint::S3 {
                bucket,
                prefix,
                aws_region,
            },
        ) => Arc::new(S3Canary::new(
            aws()?.s3(aws_region),
            bucket,
            prefix,
            region.as_str(),
        )),
        (
            ProbeCheck::Rds,
            Endpoint::RdsInstance {
                instance_id,
                aws_region,
            },
        ) => Arc::new(RdsProbe::new(
            aws()?.rds(aws_region),
            RdsTarget::Instance {
                instance_id: instance_id.clone(),
            },
        )),
        (ProbeCheck::Rds, Endpoint::AuroraCluster(a)) => Arc::new(RdsProbe::new(
            aws()?.rds(&a.aws_region),
            RdsTarget::Aurora {
                cluster_id: a.cluster_id.clone(),
                global_cluster_id: a.global_cluster_id.clone(),
            },
        )),
        (
            ProbeCheck::Heartbeat {
                max_age,
                key,
                min_count,
            },
            ep,
        ) => {
            // A valid policy always sets these; the defaults only keep this total.
            let age = Alive::MaxAge(max_age.unwrap_or(ctx.interval.saturating_mul(3)));
            let count = Alive::MinCount(min_count.unwrap_or(1));
            let (source, alive) = match ep {
                Endpoint::Http { url } => (
                    Source::Http {
                        client: ctx.http.clone(),
                        url: url.clone(),
                        field: key.clone().unwrap_or_else(|| "last_heartbeat".into()),
                    },
                    age,
                ),
                Endpoint::Redis {
                    url,
                    password,
                    ca_file,
                } => (
                    Source::Redis {
                        url: url.clone(),
                        password: password.clone(),
                        ca_file: {
                            redis_tls(url, ca_file.as_deref()).map_err(tls_error)?;
                            ca_file.clone()
                        },
                        key: key.clone().ok_or_else(mismatch)?,
                        timeout,
                    },
                    age,
                ),
                Endpoint::S3 {
                    bucket, aws_region, ..
                } => (
                    Source::S3 {
                        client: aws()?.s3(aws_region),
                        bucket: bucket.clone(),
                        key: key.clone().ok_or_else(mismatch)?,
                    },
                    age,
                ),
                Endpoint::Asg { group, aws_region } => (
                    Source::Asg {
                        client: aws()?.autoscaling(aws_region),
                        group: group.clone(),
                    },
                    count,
                ),
                Endpoint::Ecs {
                    cluster,
                    service,
                    aws_region,
                } => (
                    Source::Ecs {
                        client: aws()?.ecs(aws_region),
                        cluster: cluster.clone(),
                        service: service.clone(),
                    },
                    count,
                ),
                _ => return Err(mismatch()),
            };
            Arc::new(HeartbeatProbe::new(source, alive))
        }
        _ => return Err(mismatch()),
    })
}

/// The trust store a `rediss://` endpoint will use, read now so a bad CA file is found
/// at start-up.
fn redis_tls(url: &str, ca_file: Option<&std::path::Path>) -> Result<(), tls::TlsError> {
    if url.starts_with("rediss://") {
        tls::roots(ca_file)?;
    }
    Ok(())
}

fn endpoint_kind(e: &Endpoint) -> &'static str {
    match e {
        Endpoint::Postgres(_) => "postgres",
        Endpoint::Http { .. } => "http",
        Endpoint::Tcp { .. } => "tcp",
        Endpoint::Redis { .. } => "redis",
        Endpoint::S3 { .. } => "s3",
        Endpoint::RdsInstance { .. } => "rds_instance",
        Endpoint::AuroraCluster(_) => "aurora_cluster",
        Endpoint::Route53(_) => "route53",
        Endpoint::Asg { .. } => "asg",
        Endpoint::Ecs { .. } => "ecs",
        Endpoint::Cloudfront { .. } => "cloudfront",
    }
}
