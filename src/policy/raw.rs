//! Stage one of loading: serde structs that mirror the TOML and check its shape.
//!
//! Every struct denies unknown fields. Fields that a later semantic check points at are
//! `Spanned`, so its diagnostic can underline them. Kind-specific settings (a target's,
//! a probe's, a step's) have one struct per kind, chosen by `kind`, so an unknown or
//! misplaced field is reported by serde with the list of fields that kind accepts.

use std::time::Duration;

use serde::Deserialize;
use serde::de::{self, Deserializer, Visitor};
use toml::Spanned;

/// A human duration: `30s`, `5m`, `1h30m`, `250ms`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RawDuration(pub Duration);

impl<'de> Deserialize<'de> for RawDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = RawDuration;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a duration such as \"30s\", \"5m\" or \"1h30m\"")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<RawDuration, E> {
                humantime::parse_duration(s.trim()).map(RawDuration).map_err(|e| {
                    E::custom(format!(
                        "invalid duration \"{s}\": {e}; write durations like \"30s\", \"5m\" or \"1h30m\""
                    ))
                })
            }
            fn visit_i64<E: de::Error>(self, n: i64) -> Result<RawDuration, E> {
                Err(E::custom(format!(
                    "a bare number ({n}) is not a duration; add a unit, e.g. \"{n}s\""
                )))
            }
            fn visit_u64<E: de::Error>(self, n: u64) -> Result<RawDuration, E> {
                Err(E::custom(format!(
                    "a bare number ({n}) is not a duration; add a unit, e.g. \"{n}s\""
                )))
            }
            fn visit_f64<E: de::Error>(self, n: f64) -> Result<RawDuration, E> {
                Err(E::custom(format!(
                    "a bare number ({n}) is not a duration; add a unit, e.g. \"{n}s\""
                )))
            }
        }
        d.deserialize_any(V)
    }
}

/// A secret as written: a reference (`{ env = "…" }` or `{ file = "…" }`), or an inline
/// string, which stage two refuses with a diagnostic that points at it.
#[derive(Clone, Debug, PartialEq)]
pub enum RawSecret {
    Inline,
    Env(String),
    File(String),
}

impl<'de> Deserialize<'de> for RawSecret {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Ref {
            env: Option<String>,
            file: Option<String>,
        }
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RawSecret;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a secret reference: { env = \"VAR\" } or { file = \"/path\" }")
            }
            // The value is dropped here, unread: an inline secret must not travel further.
            fn visit_str<E: de::Error>(self, _: &str) -> Result<RawSecret, E> {
                Ok(RawSecret::Inline)
            }
            fn visit_map<A: de::MapAccess<'de>>(self, map: A) -> Result<RawSecret, A::Error> {
                let r = Ref::deserialize(de::value::MapAccessDeserializer::new(map))?;
                match (r.env, r.file) {
                    (Some(e), None) => Ok(RawSecret::Env(e)),
                    (None, Some(f)) => Ok(RawSecret::File(f)),
                    _ => Err(de::Error::custom(
                        "a secret reference names exactly one of `env` or `file`",
                    )),
                }
            }
        }
        d.deserialize_any(V)
    }
}

#[derive(Deserialize, Debug, Clone, Copy, PartialEq)]
#[serde(rename_all = "snake_case")]
pub enum RawMode {
    Auto,
    Manual,
    Shadow,
}

#[derive(Deserialize, Debug, Clone, Copy, PartialEq)]
#[serde(rename_all = "snake_case")]
pub enum RawComponent {
    Database,
    Api,
    Workers,
    Storage,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct RawService {
    pub name: Spanned<String>,
    pub description: Option<String>,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct RawRegions {
    pub primary: Spanned<String>,
    pub secondaries: Spanned<Vec<Spanned<String>>>,
    pub witness: Option<Spanned<String>>,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct RawDetection {
    pub interval: Option<Spanned<RawDuration>>,
    pub timeout: Option<Spanned<RawDuration>>,
    pub failure_threshold: Option<Spanned<i64>>,
    pub recovery_threshold: Option<Spanned<i64>>,
    pub confirm_interval: Option<Spanned<RawDuration>>,
    pub min_failure_span: Option<Spanned<RawDuration>>,
    pub min_recovery_span: Option<Spanned<RawDuration>>,
    pub mode: RawMode,
}

#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
pub struct RawGuardrails {
    pub rpo_budget: Option<Spanned<RawDuration>>,
    pub cooldown: Option<Spanned<RawDuration>>,
    pub max_failovers: Option<Spanned<i64>>,
    pub failover_window: Option<Spanned<RawDuration>>,
    pub auto_failback: Option<Spanned<bool>>,
    pub failback_healthy_for: Option<Spanned<RawDuration>>,
    pub clock_jump_tolerance: Option<Spanned<RawDuration>>,
    pub freeze_for: Option<Spanned<RawDuration>>,
    pub quorum: Option<Spanned<i64>>,
    pub witnesses: Option<Spanned<Vec<Spanned<String>>>>,
}

#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
pub struct RawJournal {
    pub path: Option<Spanned<String>>,
}

#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
pub struct RawAws {
    pub region: Option<Spanned<String>>,
    pub endpoint_url: Option<Spanned<String>>,
    pub profile: Option<String>,
}

/// `[channels.NAME]`, split on `kind`.
#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct RawSnsChannel {
    pub topic_arn: Spanned<String>,
    #[serde(default)]
    pub alerts: bool,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct RawWebhookChannel {
    pub url: Spanned<RawSecret>,
    #[serde(default)]
    pub alerts: bool,
}

/// A target's settings in one region: its shared fields merged with the region's own.
pub mod target {
    use super::*;

    #[derive(Deserialize, Debug)]
    #[serde(deny_unknown_fields)]
    pub struct Postgres {
        pub host: Spanned<String>,
        pub port: Option<Spanned<i64>>,
        pub user: Spanned<String>,
        pub database: Spanned<String>,
        pub password: Option<Spanned<RawSecret>>,
    }

    #[derive(Deserialize, Debug)]
    #[serde(deny_unknown_fields)]
    pub struct Http {
        pub url: Spanned<String>,
    }

    #[derive(Deserialize, Debug)]
    #[serde(deny_unknown_fields)]
    pub struct Tcp {
        pub host: Spanned<String>,
        pub port: Spanned<i64>,
    }

    #[derive(Deserialize, Debug)]
    #[serde(deny_unknown_fields)]
    pub struct Redis {
        pub url: Spanned<String>,
        pub password: Option<Spanned<RawSecret>>,
    }

    #[derive(Deserialize, Debug)]
    #[serde(deny_unknown_fields)]
    pub struct S3 {
        pub bucket: Spanned<String>,
        pub prefix: Option<String>,
        pub aws_region: Option<String>,
    }

    #[derive(Deserialize, Debug)]
    #[serde(deny_unknown_fields)]
    pub struct RdsInstance {
        pub instance_id: Spanned<String>,
        pub aws_region: Option<String>,
    }

    #[derive(Deserialize, Debug)]
    #[serde(deny_unknown_fields)]
    pub struct AuroraCluster {
        pub cluster_id: Spanned<String>,
        pub global_cluster_id: Spanned<String>,
        pub aws_region: Option<String>,
    }

    #[derive(Deserialize, Debug, Clone, Copy, PartialEq)]
    #[serde(rename_all = "snake_case")]
    pub enum DnsStyle {
        FailoverPair,
        Weighted,
        Simple,
    }

    #[derive(Deserialize, Debug)]
    #[serde(deny_unknown_fields)]
    pub struct Route53 {
        pub zone_id: Spanned<String>,
        pub record_name: Spanned<String>,
        pub record_type: Option<Spanned<String>>,
        pub style: Spanned<DnsStyle>,
        pub set_identifier: Option<Spanned<String>>,
        pub health_check_id: Option<Spanned<String>>,
        pub value: Option<Spanned<String>>,
        pub ttl: Option<Spanned<i64>>,
    }

    #[derive(Deserialize, Debug)]
    #[serde(deny_unknown_fields)]
    pub struct Asg {
        pub group: Spanned<String>,
        pub aws_region: Option<String>,
    }

    #[derive(Deserialize, Debug)]
    #[serde(deny_unknown_fields)]
    pub struct Ecs {
        pub cluster: Spanned<String>,
        pub service: Spanned<String>,
        pub aws_region: Option<String>,
    }

    #[derive(Deserialize, Debug)]
    #[serde(deny_unknown_fields)]
    pub struct Cloudfront {
        pub distribution_id: Spanned<String>,
    }
}

/// The fields every probe has; kind-specific checks are in [`probe`].
#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct RawProbeCommon {
    pub name: Spanned<String>,
    pub component: RawComponent,
    pub kind: Spanned<String>,
    pub target: Option<Spanned<String>>,
    pub critical: Option<bool>,
    pub regions: Option<Spanned<Vec<Spanned<String>>>>,
}

pub const PROBE_COMMON_FIELDS: &[&str] =
    &["name", "component", "kind", "target", "critical", "regions"];

pub mod probe {
    use super::*;

    #[derive(Deserialize, Debug, Default)]
    #[serde(deny_unknown_fields)]
    pub struct Http {
        pub expect_status: Option<Spanned<Vec<Spanned<i64>>>>,
        pub body_contains: Option<String>,
        pub json_field: Option<Spanned<String>>,
        pub json_equals: Option<Spanned<String>>,
        pub max_latency: Option<Spanned<RawDuration>>,
    }

    #[derive(Deserialize, Debug, Default)]
    #[serde(deny_unknown_fields)]
    pub struct Heartbeat {
        pub max_age: Option<Spanned<RawDuration>>,
        pub key: Option<Spanned<String>>,
        pub min_count: Option<Spanned<i64>>,
    }

    #[derive(Deserialize, Debug)]
    #[serde(deny_unknown_fields)]
    pub struct Command {
        pub run: Spanned<Vec<String>>,
    }

    /// Kinds whose only settings are the common ones.
    #[derive(Deserialize, Debug, Default)]
    #[serde(deny_unknown_fields)]
    pub struct Plain {}
}

/// The fields every step has; kind-specific parameters are in [`step`].
#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct RawStepCommon {
    pub name: Spanned<String>,
    pub kind: Spanned<String>,
    pub region: Option<Spanned<String>>,
    pub stage: Option<Spanned<String>>,
    pub timeout: Option<Spanned<RawDuration>>,
    pub continue_on_error: Option<bool>,
}

pub const STEP_COMMON_FIELDS: &[&str] = &[
    "name",
    "kind",
    "region",
    "stage",
    "timeout",
    "continue_on_error",
];

pub mod step {
    use super::*;

    /// Steps that act on one target and take no other parameter.
    #[derive(Deserialize, Debug)]
    #[serde(deny_unknown_fields)]
    pub struct OnTarget {
        pub target: Spanned<String>,
    }

    #[derive(Deserialize, Debug)]
    #[serde(deny_unknown_fields)]
    pub struct AsgScale {
        pub target: Spanned<String>,
        pub min: Spanned<i64>,
        pub desired: Spanned<i64>,
        pub max: Spanned<i64>,
    }

    #[derive(Deserialize, Debug)]
    #[serde(deny_unknown_fields)]
    pub struct EcsScale {
        pub target: Spanned<String>,
        pub desired: Spanned<i64>,
    }

    #[derive(Deserialize, Debug)]
    #[serde(deny_unknown_fields)]
    pub struct RedisInvalidate {
        pub target: Spanned<String>,
        pub pattern: Option<Spanned<String>>,
        pub flush: Option<Spanned<bool>>,
    }

    #[derive(Deserialize, Debug)]
    #[serde(deny_unknown_fields)]
    pub struct CloudfrontInvalidate {
        pub target: Spanned<String>,
        pub paths: Option<Spanned<Vec<String>>>,
    }

    #[derive(Deserialize, Debug)]
    #[serde(deny_unknown_fields)]
    pub struct Notify {
        pub channel: Spanned<String>,
        pub message: Option<String>,
    }

    #[derive(Deserialize, Debug)]
    #[serde(deny_unknown_fields)]
    pub struct S3SyncCheck {
        pub target: Spanned<String>,
        pub copy_missing: Option<bool>,
        pub prefix: Option<String>,
    }

    #[derive(Deserialize, Debug)]
    #[serde(deny_unknown_fields)]
    pub struct WaitHealthy {
        pub probes: Option<Vec<Spanned<String>>>,
        pub successes: Option<Spanned<i64>>,
    }

    #[derive(Deserialize, Debug)]
    #[serde(deny_unknown_fields)]
    pub struct ManualApproval {
        pub prompt: Spanned<String>,
    }

    #[derive(Deserialize, Debug)]
    #[serde(deny_unknown_fields)]
    pub struct Command {
        pub run: Spanned<Vec<String>>,
    }
}
