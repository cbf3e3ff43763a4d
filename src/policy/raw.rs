//! Stage one of loading: serde structs that mirror the TOML and check its shape.
//!
//! Every struct denies unknown fields. Fields that a later semantic check points at are
//! `Spanned`, so its diagnostic can underline them. Kind-specific settings (a target's,
//! a probe's, a step's) have one struct per kind, chosen by `kind`, so an unknown or
//! misplaced field is reported by serde with the list of fields that kind accepts.

use std::time::Duration;

use schemars::JsonSchema;
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

impl JsonSchema for RawDuration {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Duration".into()
    }

    // A pattern, not humantime's full grammar: a number and a unit, repeated. It catches
    // bare numbers and words ("ten seconds"); the loader still has the last word.
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "pattern": DURATION_PATTERN,
            "description": "A duration: a number and a unit, e.g. \"250ms\", \"30s\", \"5m\", \"1h30m\".",
            "examples": ["30s", "5m", "1h30m"]
        })
    }
}

/// What a name may be (`build::check_name`), for the schema.
pub const NAME_PATTERN: &str = "^[a-z0-9][a-z0-9_-]{0,62}$";

/// What [`RawDuration`]'s schema accepts: one or more number-and-unit pairs.
pub const DURATION_PATTERN: &str = r"^\s*([0-9]+(\.[0-9]+)?\s*[a-zA-Zµ]+\s*)+$";

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

impl JsonSchema for RawSecret {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "SecretRef".into()
    }

    // Only the references: an inline string is what the loader refuses, so the editor
    // should flag it too.
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "description": "A secret, by reference only: { env = \"VAR\" } or { file = \"/path\" }. Never the secret itself.",
            "oneOf": [
                {
                    "type": "object",
                    "properties": { "env": { "type": "string", "description": "The environment variable that holds the secret." } },
                    "required": ["env"],
                    "additionalProperties": false
                },
                {
                    "type": "object",
                    "properties": { "file": { "type": "string", "description": "The file that holds the secret (relative to the policy)." } },
                    "required": ["file"],
                    "additionalProperties": false
                }
            ]
        })
    }
}

#[derive(Deserialize, JsonSchema, Debug, Clone, Copy, PartialEq)]
#[serde(rename_all = "snake_case")]
pub enum RawMode {
    Auto,
    Manual,
    Shadow,
}

#[derive(Deserialize, JsonSchema, Debug, Clone, Copy, PartialEq)]
#[serde(rename_all = "snake_case")]
pub enum RawComponent {
    Database,
    Api,
    Workers,
    Storage,
}

#[derive(Deserialize, JsonSchema, Debug)]
#[serde(deny_unknown_fields)]
pub struct RawService {
    /// The service's name: 1 to 63 lowercase letters, digits, `-` or `_`. Names the journal, metrics and run ids.
    #[schemars(with = "String", pattern(NAME_PATTERN))]
    pub name: Spanned<String>,
    /// What the service is, for people reading `status` and reports.
    pub description: Option<String>,
}

#[derive(Deserialize, JsonSchema, Debug)]
#[serde(deny_unknown_fields)]
pub struct RawRegions {
    /// The region that serves when everything is healthy, e.g. `us-east-1`.
    #[schemars(with = "String")]
    pub primary: Spanned<String>,
    /// The regions to fail over to, in order of preference.
    #[schemars(with = "Vec<String>")]
    pub secondaries: Spanned<Vec<Spanned<String>>>,
    /// A third region that only observes.
    #[schemars(with = "Option<String>")]
    pub witness: Option<Spanned<String>>,
}

#[derive(Deserialize, JsonSchema, Debug)]
#[serde(deny_unknown_fields)]
pub struct RawDetection {
    /// How often every probe runs (default 30s).
    #[schemars(with = "Option<RawDuration>")]
    pub interval: Option<Spanned<RawDuration>>,
    /// How long one probe round may take; must be below the interval (default the smaller of 5s and half the interval).
    #[schemars(with = "Option<RawDuration>")]
    pub timeout: Option<Spanned<RawDuration>>,
    /// Consecutive failed rounds of a critical probe that declare a region down (default 3).
    #[schemars(with = "Option<i64>", range(min = 1))]
    pub failure_threshold: Option<Spanned<i64>>,
    /// Consecutive passed rounds that declare it recovered (default 3).
    #[schemars(with = "Option<i64>", range(min = 1))]
    pub recovery_threshold: Option<Spanned<i64>>,
    /// `auto` fails over by itself, `manual` detects and alerts, `shadow` logs what it would do and never acts.
    pub mode: RawMode,
}

#[derive(Deserialize, JsonSchema, Debug, Default)]
#[serde(deny_unknown_fields)]
pub struct RawGuardrails {
    /// The largest replica lag an automatic promotion accepts; above it the failover waits for `lifeboat approve --allow-data-loss`.
    #[schemars(with = "Option<RawDuration>")]
    pub rpo_budget: Option<Spanned<RawDuration>>,
    /// No automatic failover this long after the last switch.
    #[schemars(with = "Option<RawDuration>")]
    pub cooldown: Option<Spanned<RawDuration>>,
    /// Automatic failovers allowed per `failover_window`.
    #[schemars(with = "Option<i64>")]
    pub max_failovers: Option<Spanned<i64>>,
    /// The window `max_failovers` counts in (default 24h).
    #[schemars(with = "Option<RawDuration>")]
    pub failover_window: Option<Spanned<RawDuration>>,
    /// Whether the controller may fail back by itself (default false: a person starts failbacks).
    #[schemars(with = "Option<bool>")]
    pub auto_failback: Option<Spanned<bool>>,
    /// How long the primary must have been healthy before a failback.
    #[schemars(with = "Option<RawDuration>")]
    pub failback_healthy_for: Option<Spanned<RawDuration>>,
    /// A wall-clock jump larger than this freezes automatic decisions.
    #[schemars(with = "Option<RawDuration>")]
    pub clock_jump_tolerance: Option<Spanned<RawDuration>>,
    /// How long a stalled loop or a clock jump freezes automatic decisions.
    #[schemars(with = "Option<RawDuration>")]
    pub freeze_for: Option<Spanned<RawDuration>>,
    /// Observers (this controller and its witnesses) that must see the outage (default 1).
    #[schemars(with = "Option<i64>")]
    pub quorum: Option<Spanned<i64>>,
    /// URLs of `lifeboat run --witness` daemons asked before an automatic failover.
    #[schemars(with = "Option<Vec<String>>")]
    pub witnesses: Option<Spanned<Vec<Spanned<String>>>>,
    /// The secret witness votes are signed with (HMAC-SHA256), as `{ env = … }` or
    /// `{ file = … }`; required with `witnesses`, at least 32 characters.
    #[schemars(with = "Option<RawSecret>")]
    pub witness_key: Option<Spanned<RawSecret>>,
}

#[derive(Deserialize, JsonSchema, Debug, Default)]
#[serde(deny_unknown_fields)]
pub struct RawJournal {
    /// The journal's SQLite file, relative to the policy (default `<state-dir>/<service>.db`).
    #[schemars(with = "Option<String>")]
    pub path: Option<Spanned<String>>,
}

#[derive(Deserialize, JsonSchema, Debug, Default)]
#[serde(deny_unknown_fields)]
pub struct RawCommands {
    /// Environment variables command probes and steps may see, by name (never `AWS_*`,
    /// `LIFEBOAT_*` or one a secret reference reads).
    #[schemars(with = "Option<Vec<String>>")]
    pub pass_env: Option<Vec<Spanned<String>>>,
}

#[derive(Deserialize, JsonSchema, Debug, Default)]
#[serde(deny_unknown_fields)]
pub struct RawAws {
    /// The AWS region for calls that name none.
    #[schemars(with = "Option<String>")]
    pub region: Option<Spanned<String>>,
    /// Send AWS calls here instead (moto's server in the sandbox).
    #[schemars(with = "Option<String>")]
    pub endpoint_url: Option<Spanned<String>>,
    /// The AWS profile to take credentials from.
    pub profile: Option<String>,
}

/// `[channels.NAME]`, split on `kind`.
#[derive(Deserialize, JsonSchema, Debug)]
#[serde(deny_unknown_fields)]
pub struct RawSnsChannel {
    #[schemars(with = "String")]
    pub topic_arn: Spanned<String>,
    #[serde(default)]
    pub alerts: bool,
}

#[derive(Deserialize, JsonSchema, Debug)]
#[serde(deny_unknown_fields)]
pub struct RawWebhookChannel {
    #[schemars(with = "RawSecret")]
    pub url: Spanned<RawSecret>,
    #[serde(default)]
    pub alerts: bool,
}

/// A target's settings in one region: its shared fields merged with the region's own.
pub mod target {
    use super::*;

    #[derive(Deserialize, JsonSchema, Debug)]
    #[serde(deny_unknown_fields)]
    pub struct Postgres {
        #[schemars(with = "String")]
        pub host: Spanned<String>,
        #[schemars(with = "Option<i64>", range(min = 1, max = 65535))]
        pub port: Option<Spanned<i64>>,
        #[schemars(with = "String")]
        pub user: Spanned<String>,
        #[schemars(with = "String")]
        pub database: Spanned<String>,
        #[schemars(with = "Option<RawSecret>")]
        pub password: Option<Spanned<RawSecret>>,
        /// disable | require | verify-ca | verify-full; checked in stage two so an
        /// unknown one gets a "did you mean".
        #[schemars(with = "Option<String>")]
        pub sslmode: Option<Spanned<String>>,
        /// The CA bundle (PEM) that signs the server's certificate.
        #[schemars(with = "Option<String>")]
        pub ca_file: Option<Spanned<String>>,
    }

    #[derive(Deserialize, JsonSchema, Debug)]
    #[serde(deny_unknown_fields)]
    pub struct Http {
        #[schemars(with = "String")]
        pub url: Spanned<String>,
    }

    #[derive(Deserialize, JsonSchema, Debug)]
    #[serde(deny_unknown_fields)]
    pub struct Tcp {
        #[schemars(with = "String")]
        pub host: Spanned<String>,
        #[schemars(with = "i64", range(min = 1, max = 65535))]
        pub port: Spanned<i64>,
    }

    #[derive(Deserialize, JsonSchema, Debug)]
    #[serde(deny_unknown_fields)]
    pub struct Redis {
        #[schemars(with = "String")]
        pub url: Spanned<String>,
        #[schemars(with = "Option<RawSecret>")]
        pub password: Option<Spanned<RawSecret>>,
        /// The CA bundle (PEM) that signs a `rediss://` server's certificate.
        #[schemars(with = "Option<String>")]
        pub ca_file: Option<Spanned<String>>,
    }

    #[derive(Deserialize, JsonSchema, Debug)]
    #[serde(deny_unknown_fields)]
    pub struct S3 {
        #[schemars(with = "String")]
        pub bucket: Spanned<String>,
        pub prefix: Option<String>,
        pub aws_region: Option<String>,
    }

    #[derive(Deserialize, JsonSchema, Debug)]
    #[serde(deny_unknown_fields)]
    pub struct RdsInstance {
        #[schemars(with = "String")]
        pub instance_id: Spanned<String>,
        pub aws_region: Option<String>,
    }

    #[derive(Deserialize, JsonSchema, Debug)]
    #[serde(deny_unknown_fields)]
    pub struct AuroraCluster {
        #[schemars(with = "String")]
        pub cluster_id: Spanned<String>,
        #[schemars(with = "String")]
        pub global_cluster_id: Spanned<String>,
        pub aws_region: Option<String>,
    }

    #[derive(Deserialize, JsonSchema, Debug, Clone, Copy, PartialEq)]
    #[serde(rename_all = "snake_case")]
    pub enum DnsStyle {
        FailoverPair,
        Weighted,
        Simple,
    }

    #[derive(Deserialize, JsonSchema, Debug)]
    #[serde(deny_unknown_fields)]
    pub struct Route53 {
        #[schemars(with = "String")]
        pub zone_id: Spanned<String>,
        #[schemars(with = "String")]
        pub record_name: Spanned<String>,
        #[schemars(with = "Option<String>")]
        pub record_type: Option<Spanned<String>>,
        #[schemars(with = "DnsStyle")]
        pub style: Spanned<DnsStyle>,
        #[schemars(with = "Option<String>")]
        pub set_identifier: Option<Spanned<String>>,
        #[schemars(with = "Option<String>")]
        pub health_check_id: Option<Spanned<String>>,
        #[schemars(with = "Option<String>")]
        pub value: Option<Spanned<String>>,
        #[schemars(with = "Option<i64>")]
        pub ttl: Option<Spanned<i64>>,
    }

    #[derive(Deserialize, JsonSchema, Debug)]
    #[serde(deny_unknown_fields)]
    pub struct Asg {
        #[schemars(with = "String")]
        pub group: Spanned<String>,
        pub aws_region: Option<String>,
    }

    #[derive(Deserialize, JsonSchema, Debug)]
    #[serde(deny_unknown_fields)]
    pub struct Ecs {
        #[schemars(with = "String")]
        pub cluster: Spanned<String>,
        #[schemars(with = "String")]
        pub service: Spanned<String>,
        pub aws_region: Option<String>,
    }

    #[derive(Deserialize, JsonSchema, Debug)]
    #[serde(deny_unknown_fields)]
    pub struct Cloudfront {
        #[schemars(with = "String")]
        pub distribution_id: Spanned<String>,
    }
}

/// The fields every probe has; kind-specific checks are in [`probe`].
#[derive(Deserialize, JsonSchema, Debug)]
#[serde(deny_unknown_fields)]
pub struct RawProbeCommon {
    /// The probe's name, unique in the policy.
    #[schemars(with = "String")]
    pub name: Spanned<String>,
    /// What part of the service the probe watches.
    pub component: RawComponent,
    /// How it probes: http, postgres, tcp, redis, s3, rds, heartbeat or command.
    #[schemars(with = "String")]
    pub kind: Spanned<String>,
    /// The `[targets.NAME]` it watches (every kind but `command`).
    #[schemars(with = "Option<String>")]
    pub target: Option<Spanned<String>>,
    /// Only critical probes can take a region down (default true).
    pub critical: Option<bool>,
    /// The regions to probe (default every region the target is in).
    #[schemars(with = "Option<Vec<String>>")]
    pub regions: Option<Spanned<Vec<Spanned<String>>>>,
}

pub const PROBE_COMMON_FIELDS: &[&str] =
    &["name", "component", "kind", "target", "critical", "regions"];

pub mod probe {
    use super::*;

    #[derive(Deserialize, JsonSchema, Debug, Default)]
    #[serde(deny_unknown_fields)]
    pub struct Http {
        #[schemars(with = "Option<Vec<i64>>")]
        pub expect_status: Option<Spanned<Vec<Spanned<i64>>>>,
        pub body_contains: Option<String>,
        #[schemars(with = "Option<String>")]
        pub json_field: Option<Spanned<String>>,
        #[schemars(with = "Option<String>")]
        pub json_equals: Option<Spanned<String>>,
        #[schemars(with = "Option<RawDuration>")]
        pub max_latency: Option<Spanned<RawDuration>>,
    }

    #[derive(Deserialize, JsonSchema, Debug, Default)]
    #[serde(deny_unknown_fields)]
    pub struct Heartbeat {
        #[schemars(with = "Option<RawDuration>")]
        pub max_age: Option<Spanned<RawDuration>>,
        #[schemars(with = "Option<String>")]
        pub key: Option<Spanned<String>>,
        #[schemars(with = "Option<i64>")]
        pub min_count: Option<Spanned<i64>>,
    }

    #[derive(Deserialize, JsonSchema, Debug)]
    #[serde(deny_unknown_fields)]
    pub struct Command {
        #[schemars(with = "Vec<String>")]
        pub run: Spanned<Vec<String>>,
    }

    /// Kinds whose only settings are the common ones.
    #[derive(Deserialize, JsonSchema, Debug, Default)]
    #[serde(deny_unknown_fields)]
    pub struct Plain {}
}

/// The fields every step has; kind-specific parameters are in [`step`].
#[derive(Deserialize, JsonSchema, Debug)]
#[serde(deny_unknown_fields)]
pub struct RawStepCommon {
    /// The step's name, unique in its runbook.
    #[schemars(with = "String")]
    pub name: Spanned<String>,
    /// What the step does.
    #[schemars(with = "String")]
    pub kind: Spanned<String>,
    /// Where it acts: `@to`, `@from` or a region name (default `@to`; `@from` for `postgres_fence`).
    #[schemars(with = "Option<String>")]
    pub region: Option<Spanned<String>>,
    /// Adjacent steps with the same stage label run in parallel.
    #[schemars(with = "Option<String>")]
    pub stage: Option<Spanned<String>>,
    /// How long the step may take, retries included (default per kind).
    #[schemars(with = "Option<RawDuration>")]
    pub timeout: Option<Spanned<RawDuration>>,
    /// Go on with the runbook when this step fails (default false).
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
    #[derive(Deserialize, JsonSchema, Debug)]
    #[serde(deny_unknown_fields)]
    pub struct OnTarget {
        #[schemars(with = "String")]
        pub target: Spanned<String>,
    }

    #[derive(Deserialize, JsonSchema, Debug)]
    #[serde(deny_unknown_fields)]
    pub struct AsgScale {
        #[schemars(with = "String")]
        pub target: Spanned<String>,
        #[schemars(with = "i64")]
        pub min: Spanned<i64>,
        #[schemars(with = "i64")]
        pub desired: Spanned<i64>,
        #[schemars(with = "i64")]
        pub max: Spanned<i64>,
    }

    #[derive(Deserialize, JsonSchema, Debug)]
    #[serde(deny_unknown_fields)]
    pub struct EcsScale {
        #[schemars(with = "String")]
        pub target: Spanned<String>,
        #[schemars(with = "i64")]
        pub desired: Spanned<i64>,
    }

    #[derive(Deserialize, JsonSchema, Debug)]
    #[serde(deny_unknown_fields)]
    pub struct RedisInvalidate {
        #[schemars(with = "String")]
        pub target: Spanned<String>,
        #[schemars(with = "Option<String>")]
        pub pattern: Option<Spanned<String>>,
        #[schemars(with = "Option<bool>")]
        pub flush: Option<Spanned<bool>>,
    }

    #[derive(Deserialize, JsonSchema, Debug)]
    #[serde(deny_unknown_fields)]
    pub struct CloudfrontInvalidate {
        #[schemars(with = "String")]
        pub target: Spanned<String>,
        #[schemars(with = "Option<Vec<String>>")]
        pub paths: Option<Spanned<Vec<String>>>,
    }

    #[derive(Deserialize, JsonSchema, Debug)]
    #[serde(deny_unknown_fields)]
    pub struct Notify {
        #[schemars(with = "String")]
        pub channel: Spanned<String>,
        pub message: Option<String>,
    }

    #[derive(Deserialize, JsonSchema, Debug)]
    #[serde(deny_unknown_fields)]
    pub struct S3SyncCheck {
        #[schemars(with = "String")]
        pub target: Spanned<String>,
        pub copy_missing: Option<bool>,
        pub prefix: Option<String>,
    }

    #[derive(Deserialize, JsonSchema, Debug)]
    #[serde(deny_unknown_fields)]
    pub struct WaitHealthy {
        #[schemars(with = "Option<Vec<String>>")]
        pub probes: Option<Vec<Spanned<String>>>,
        #[schemars(with = "Option<i64>")]
        pub successes: Option<Spanned<i64>>,
    }

    #[derive(Deserialize, JsonSchema, Debug)]
    #[serde(deny_unknown_fields)]
    pub struct ManualApproval {
        #[schemars(with = "String")]
        pub prompt: Spanned<String>,
    }

    #[derive(Deserialize, JsonSchema, Debug)]
    #[serde(deny_unknown_fields)]
    pub struct Command {
        #[schemars(with = "Vec<String>")]
        pub run: Spanned<Vec<String>>,
    }
}
