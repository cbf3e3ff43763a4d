//! What a planned step acts on, resolved once from the policy when the run is planned:
//! the endpoints, record set, group, cluster, channel or probes, in the step's region.
//!
//! The binding is serialized with the plan in the journal, so a run resumed after the
//! policy file changed still acts on what it started with, and the step factory needs no
//! second look at the policy: it turns each binding into its adapter and nothing else.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use thiserror::Error;

use super::kind::StepKind;
use super::model::{
    Action, AuroraEndpoint, CacheScope, Channel, Endpoint, Policy, PostgresEndpoint, ProbeSpec,
    RegionName, Route53Endpoint, SecretRef, Target, TargetKind,
};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Binding {
    RdsPromoteReplica {
        target: String,
        instance_id: String,
        aws_region: String,
    },
    AuroraGlobalFailover {
        target: String,
        cluster: AuroraEndpoint,
    },
    AuroraGlobalSwitchover {
        target: String,
        cluster: AuroraEndpoint,
    },
    PostgresPromote {
        target: String,
        db: PostgresEndpoint,
    },
    PostgresFence {
        target: String,
        db: PostgresEndpoint,
    },
    /// `db` is the standby in the step's region; `writer` the fenced writer in the region
    /// the run leaves, whose WAL position the standby must reach.
    PostgresCatchUp {
        target: String,
        db: PostgresEndpoint,
        writer: PostgresEndpoint,
        writer_region: RegionName,
    },
    /// `others`: the set identifiers of the other regions' records (weighted switches
    /// zero them).
    Route53Switch {
        target: String,
        record: Route53Endpoint,
        others: Vec<String>,
    },
    AsgScale {
        target: String,
        group: String,
        aws_region: String,
        min: u32,
        desired: u32,
        max: u32,
    },
    EcsScale {
        target: String,
        cluster: String,
        service: String,
        aws_region: String,
        desired: u32,
    },
    RedisInvalidate {
        target: String,
        url: String,
        password: Option<SecretRef>,
        /// The CA that signs a `rediss://` server's certificate.
        ca_file: Option<PathBuf>,
        scope: CacheScope,
    },
    CloudfrontInvalidate {
        target: String,
        distribution_id: String,
        paths: Vec<String>,
    },
    Notify {
        channel: Channel,
        message: Option<String>,
    },
    /// `source` is the bucket of the region the run leaves, `dest` the step's region's.
    S3SyncCheck {
        target: String,
        source: S3Bucket,
        dest: S3Bucket,
        prefix: String,
        copy_missing: bool,
    },
    /// `pass_env`: the policy's `[commands] pass_env`, for command probes.
    WaitHealthy {
        probes: Vec<BoundProbe>,
        successes: u32,
        pass_env: Vec<String>,
    },
    ManualApproval {
        prompt: String,
    },
    /// `pass_env`: the policy's `[commands] pass_env`.
    Command {
        run: Vec<String>,
        pass_env: Vec<String>,
    },
}

/// One bucket of an S3 sync check.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct S3Bucket {
    pub bucket: String,
    /// The s3 probe's canary prefix, whose short-lived objects are not compared.
    pub canary_prefix: String,
    pub aws_region: String,
    pub region: RegionName,
}

/// A probe a `wait_healthy` step runs: its spec, and its target with the settings of the
/// step's region only.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct BoundProbe {
    pub spec: ProbeSpec,
    pub target: Option<Target>,
}

impl Binding {
    pub fn kind(&self) -> StepKind {
        match self {
            Binding::RdsPromoteReplica { .. } => StepKind::RdsPromoteReplica,
            Binding::AuroraGlobalFailover { .. } => StepKind::AuroraGlobalFailover,
            Binding::AuroraGlobalSwitchover { .. } => StepKind::AuroraGlobalSwitchover,
            Binding::PostgresPromote { .. } => StepKind::PostgresPromote,
            Binding::PostgresFence { .. } => StepKind::PostgresFence,
            Binding::PostgresCatchUp { .. } => StepKind::PostgresCatchUp,
            Binding::Route53Switch { .. } => StepKind::Route53Switch,
            Binding::AsgScale { .. } => StepKind::AsgScale,
            Binding::EcsScale { .. } => StepKind::EcsScale,
            Binding::RedisInvalidate { .. } => StepKind::RedisInvalidate,
            Binding::CloudfrontInvalidate { .. } => StepKind::CloudfrontInvalidate,
            Binding::Notify { .. } => StepKind::Notify,
            Binding::S3SyncCheck { .. } => StepKind::S3SyncCheck,
            Binding::WaitHealthy { .. } => StepKind::WaitHealthy,
            Binding::ManualApproval { .. } => StepKind::ManualApproval,
            Binding::Command { .. } => StepKind::Command,
        }
    }
}

/// Why a step could not be bound. Loading validates most of this, so these mean the
/// policy and the run disagree (a region the target has no settings for, say).
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum BindError {
    #[error(
        "step `{step}` acts on target `{target}` in `{region}`, but the target has no settings for that region"
    )]
    NoEndpoint {
        step: String,
        target: String,
        region: RegionName,
    },
    #[error("step `{step}` ({kind}) cannot act on target `{target}`, which is a {found} target")]
    WrongTarget {
        step: String,
        kind: StepKind,
        target: String,
        found: String,
    },
    #[error("step `{step}` names channel `{channel}`, which the policy does not define")]
    UnknownChannel { step: String, channel: String },
    #[error("step `{step}` waits for probe `{probe}`, which the policy does not define")]
    UnknownProbe { step: String, probe: String },
    #[error(
        "step `{step}` waits for probe `{probe}` in {region}, but that probe does not watch {region}"
    )]
    ProbeNotInRegion {
        step: String,
        probe: String,
        region: RegionName,
    },
    #[error(
        "step `{step}` has nothing to wait for: no critical probe watches {region}; name probes with `probes = [...]`"
    )]
    NothingToWait { step: String, region: RegionName },
}

/// Resolves one step's action in `region`, for a run leaving `from`.
pub fn bind(
    policy: &Policy,
    step: &str,
    action: &Action,
    region: &RegionName,
    from: &RegionName,
) -> Result<Binding, BindError> {
    let endpoint = |target: &str, r: &RegionName| -> Result<&Endpoint, BindError> {
        policy
            .target(target)
            .and_then(|t| t.endpoint(r))
            .ok_or_else(|| BindError::NoEndpoint {
                step: step.to_string(),
                target: target.to_string(),
                region: r.clone(),
            })
    };
    let wrong = |target: &str, found: &Endpoint| BindError::WrongTarget {
        step: step.to_string(),
        kind: action.kind(),
        target: target.to_string(),
        found: endpoint_kind(found).to_string(),
    };
    let postgres = |target: &str, r: &RegionName| match endpoint(target, r)? {
        Endpoint::Postgres(p) => Ok(p.clone()),
        other => Err(wrong(target, other)),
    };
    let s3 = |target: &str, r: &RegionName| match endpoint(target, r)? {
        Endpoint::S3 {
            bucket,
            prefix,
            aws_region,
        } => Ok(S3Bucket {
            bucket: bucket.clone(),
            canary_prefix: prefix.clone(),
            aws_region: aws_region.clone(),
            region: r.clone(),
        }),
        other => Err(wrong(target, other)),
    };
    let target = |t: &String| t.clone();
    Ok(match action {
        Action::RdsPromoteReplica { target: t } => match endpoint(t, region)? {
            Endpoint::RdsInstance {
                instance_id,
                aws_region,
            } => Binding::RdsPromoteReplica {
                target: target(t),
                instance_id: instance_id.clone(),
                aws_region: aws_region.clone(),
            },
            other => return Err(wrong(t, other)),
        },
        Action::AuroraGlobalFailover { target: t }
        | Action::AuroraGlobalSwitchover { target: t } => {
            let cluster = match endpoint(t, region)? {
                Endpoint::AuroraCluster(a) => a.clone(),
                other => return Err(wrong(t, other)),
            };
            if matches!(action, Action::AuroraGlobalSwitchover { .. }) {
                Binding::AuroraGlobalSwitchover {
                    target: target(t),
                    cluster,
                }
            } else {
                Binding::AuroraGlobalFailover {
                    target: target(t),
                    cluster,
                }
            }
        }
        Action::PostgresPromote { target: t } => Binding::PostgresPromote {
            target: target(t),
            db: postgres(t, region)?,
        },
        Action::PostgresFence { target: t } => Binding::PostgresFence {
            target: target(t),
            db: postgres(t, region)?,
        },
        Action::PostgresCatchUp { target: t } => Binding::PostgresCatchUp {
            target: target(t),
            db: postgres(t, region)?,
            writer: postgres(t, from)?,
            writer_region: from.clone(),
        },
        Action::Route53Switch { target: t } => {
            let record = match endpoint(t, region)? {
                Endpoint::Route53(r) => r.clone(),
                other => return Err(wrong(t, other)),
            };
            let others = policy
                .target(t)
                .map(|tg| {
                    tg.regions
                        .iter()
                        .filter(|(r, _)| *r != region)
                        .filter_map(|(_, e)| match e {
                            Endpoint::Route53(r) => r.set_identifier().map(str::to_string),
                            _ => None,
                        })
                        .collect()
                })
                .unwrap_or_default();
            Binding::Route53Switch {
                target: target(t),
                record,
                others,
            }
        }
        Action::AsgScale {
            target: t,
            min,
            desired,
            max,
        } => match endpoint(t, region)? {
            Endpoint::Asg { group, aws_region } => Binding::AsgScale {
                target: target(t),
                group: group.clone(),
                aws_region: aws_region.clone(),
                min: *min,
                desired: *desired,
                max: *max,
            },
            other => return Err(wrong(t, other)),
        },
        Action::EcsScale { target: t, desired } => match endpoint(t, region)? {
            Endpoint::Ecs {
                cluster,
                service,
                aws_region,
            } => Binding::EcsScale {
                target: target(t),
                cluster: cluster.clone(),
                service: service.clone(),
                aws_region: aws_region.clone(),
                desired: *desired,
            },
            other => return Err(wrong(t, other)),
        },
        Action::RedisInvalidate { target: t, scope } => match endpoint(t, region)? {
            Endpoint::Redis {
                url,
                password,
                ca_file,
            } => Binding::RedisInvalidate {
                target: target(t),
                url: url.clone(),
                password: password.clone(),
                ca_file: ca_file.clone(),
                scope: scope.clone(),
            },
            other => return Err(wrong(t, other)),
        },
        Action::CloudfrontInvalidate { target: t, paths } => match endpoint(t, region)? {
            Endpoint::Cloudfront { distribution_id } => Binding::CloudfrontInvalidate {
                target: target(t),
                distribution_id: distribution_id.clone(),
                paths: paths.clone(),
            },
            other => return Err(wrong(t, other)),
        },
        Action::Notify { channel, message } => Binding::Notify {
            channel: policy
                .channel(channel)
                .cloned()
                .ok_or_else(|| BindError::UnknownChannel {
                    step: step.to_string(),
                    channel: channel.clone(),
                })?,
            message: message.clone(),
        },
        Action::S3SyncCheck {
            target: t,
            copy_missing,
            prefix,
        } => Binding::S3SyncCheck {
            target: target(t),
            source: s3(t, from)?,
            dest: s3(t, region)?,
            prefix: prefix.clone(),
            copy_missing: *copy_missing,
        },
        Action::WaitHealthy { probes, successes } => Binding::WaitHealthy {
            probes: wait_probes(policy, step, region, probes)?,
            successes: (*successes).max(1),
            pass_env: policy.commands.pass_env.clone(),
        },
        Action::ManualApproval { prompt } => Binding::ManualApproval {
            prompt: prompt.clone(),
        },
        Action::Command { run } => Binding::Command {
            run: run.clone(),
            pass_env: policy.commands.pass_env.clone(),
        },
    })
}

/// The named probes in `region` (each must watch it), or when `names` is empty every
/// critical probe that watches `region`; each with its target's settings there.
fn wait_probes(
    policy: &Policy,
    step: &str,
    region: &RegionName,
    names: &[String],
) -> Result<Vec<BoundProbe>, BindError> {
    let specs: Vec<&ProbeSpec> = if names.is_empty() {
        policy
            .probes
            .iter()
            .filter(|p| p.critical && p.regions.contains(region))
            .collect()
    } else {
        names
            .iter()
            .map(|n| {
                let p = policy.probe(n).ok_or_else(|| BindError::UnknownProbe {
                    step: step.to_string(),
                    probe: n.clone(),
                })?;
                if p.regions.contains(region) {
                    Ok(p)
                } else {
                    Err(BindError::ProbeNotInRegion {
                        step: step.to_string(),
                        probe: n.clone(),
                        region: region.clone(),
                    })
                }
            })
            .collect::<Result<_, _>>()?
    };
    if specs.is_empty() {
        return Err(BindError::NothingToWait {
            step: step.to_string(),
            region: region.clone(),
        });
    }
    Ok(specs
        .into_iter()
        .map(|spec| BoundProbe {
            spec: spec.clone(),
            target: spec
                .target
                .as_deref()
                .and_then(|t| policy.target(t))
                .map(|t| Target {
                    name: t.name.clone(),
                    kind: t.kind,
                    regions: t
                        .regions
                        .iter()
                        .filter(|(r, _)| *r == region)
                        .map(|(r, e)| (r.clone(), e.clone()))
                        .collect(),
                }),
        })
        .collect())
}

fn endpoint_kind(e: &Endpoint) -> TargetKind {
    match e {
        Endpoint::Postgres(_) => TargetKind::Postgres,
        Endpoint::Http { .. } => TargetKind::Http,
        Endpoint::Tcp { .. } => TargetKind::Tcp,
        Endpoint::Redis { .. } => TargetKind::Redis,
        Endpoint::S3 { .. } => TargetKind::S3,
        Endpoint::RdsInstance { .. } => TargetKind::RdsInstance,
        Endpoint::AuroraCluster(_) => TargetKind::AuroraCluster,
        Endpoint::Route53(_) => TargetKind::Route53,
        Endpoint::Asg { .. } => TargetKind::Asg,
        Endpoint::Ecs { .. } => TargetKind::Ecs,
        Endpoint::Cloudfront { .. } => TargetKind::Cloudfront,
    }
}
