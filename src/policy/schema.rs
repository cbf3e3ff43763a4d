//! The policy file's JSON Schema (`lifeboat schema`), for editors (taplo, Even Better
//! TOML) and CI, built with schemars from the loader's own raw structs so the two cannot
//! drift apart.
//!
//! The loader reads a policy piece by piece (a section per raw struct; a target, probe
//! or step as its common fields plus the fields of its `kind`), so the schema is put
//! together the same way: each section from its struct, and each target, probe, step and
//! channel as one `oneOf` variant per kind, from the struct that kind deserializes into.
//!
//! Two things the schema says differently from the loader, on purpose:
//! - `${name}` variables. A value that is exactly `"${name}"` takes the variable's value
//!   and type, so `port = "${pg_port}"` is an integer once loaded. Every scalar that is
//!   not a plain string (integers, booleans, enumerations, durations) therefore also
//!   accepts a string containing `${…}`; the loader checks the substituted value.
//! - A target's fields may sit in its table or in each `regions.REGION` table, merged
//!   before loading; so none of a target's fields is required by the schema.
//!
//! The schema checks shape; semantic rules (names that must exist, promote before DNS,
//! timeout below interval) stay with `lifeboat validate`.

use schemars::generate::SchemaSettings;
use schemars::{JsonSchema, SchemaGenerator};
use serde_json::{Map, Value, json};

use super::raw::{self, probe as rp, step as rs, target as rt};
use crate::core::model::TargetKind;

/// A field list: the inline object schema of one raw struct.
type Fields = fn(&mut SchemaGenerator) -> Value;

fn of<T: JsonSchema>(g: &mut SchemaGenerator) -> Value {
    g.subschema_for::<T>().to_value()
}

/// The struct each target kind's settings deserialize into (`targets::endpoint`).
fn target_fields(kind: TargetKind) -> (Fields, &'static str) {
    match kind {
        TargetKind::Postgres => (of::<rt::Postgres>, "A PostgreSQL server."),
        TargetKind::Http => (of::<rt::Http>, "An HTTP endpoint."),
        TargetKind::Tcp => (of::<rt::Tcp>, "A TCP port."),
        TargetKind::Redis => (of::<rt::Redis>, "A Redis server."),
        TargetKind::S3 => (of::<rt::S3>, "An S3 bucket."),
        TargetKind::RdsInstance => (of::<rt::RdsInstance>, "An RDS DB instance."),
        TargetKind::AuroraCluster => (
            of::<rt::AuroraCluster>,
            "An Aurora cluster in a global database.",
        ),
        TargetKind::Route53 => (of::<rt::Route53>, "A Route 53 record (or record pair)."),
        TargetKind::Asg => (of::<rt::Asg>, "An EC2 Auto Scaling group."),
        TargetKind::Ecs => (of::<rt::Ecs>, "An ECS service."),
        TargetKind::Cloudfront => (of::<rt::Cloudfront>, "A CloudFront distribution."),
    }
}

/// The probe kinds and the struct of each one's own settings (`probes::check`).
pub(super) const PROBE_KINDS: &[(&str, Fields, &str)] = &[
    (
        "http",
        of::<rp::Http>,
        "GET the target's URL: status, body, JSON field, latency.",
    ),
    (
        "postgres",
        of::<rp::Plain>,
        "Connect and query; reports role and replica lag.",
    ),
    ("tcp", of::<rp::Plain>, "Open a TCP connection."),
    ("redis", of::<rp::Plain>, "Redis PING."),
    (
        "s3",
        of::<rp::Plain>,
        "Put, read back and delete a canary object.",
    ),
    (
        "rds",
        of::<rp::Plain>,
        "Describe the RDS instance or Aurora cluster: available, role.",
    ),
    (
        "heartbeat",
        of::<rp::Heartbeat>,
        "The newest heartbeat is young enough, or enough instances are in service.",
    ),
    (
        "command",
        of::<rp::Command>,
        "Run a command; exit status 0 passes.",
    ),
];

/// The step kinds and the struct of each one's parameters (`runbooks::action`).
pub(super) const STEP_KINDS: &[(&str, Fields, &str)] = &[
    (
        "rds_promote_replica",
        of::<rs::OnTarget>,
        "Promote an RDS read replica (behind the RPO gate).",
    ),
    (
        "aurora_global_failover",
        of::<rs::OnTarget>,
        "Fail an Aurora global database over to this region (unplanned).",
    ),
    (
        "aurora_global_switchover",
        of::<rs::OnTarget>,
        "Switch an Aurora global database over without data loss (planned).",
    ),
    (
        "postgres_promote",
        of::<rs::OnTarget>,
        "Promote a PostgreSQL standby (behind the RPO gate).",
    ),
    (
        "postgres_fence",
        of::<rs::OnTarget>,
        "Make the old primary refuse writes and end its sessions.",
    ),
    (
        "postgres_catch_up",
        of::<rs::OnTarget>,
        "Wait until a standby has replayed everything the writer wrote.",
    ),
    (
        "route53_switch",
        of::<rs::OnTarget>,
        "Point the Route 53 record (pair) at this region.",
    ),
    (
        "asg_scale",
        of::<rs::AsgScale>,
        "Set an Auto Scaling group's min, desired and max.",
    ),
    (
        "ecs_scale",
        of::<rs::EcsScale>,
        "Set an ECS service's desired count.",
    ),
    (
        "redis_invalidate",
        of::<rs::RedisInvalidate>,
        "Delete keys matching a pattern, or flush the database.",
    ),
    (
        "cloudfront_invalidate",
        of::<rs::CloudfrontInvalidate>,
        "Invalidate CloudFront paths.",
    ),
    ("notify", of::<rs::Notify>, "Send a message to a channel."),
    (
        "s3_sync_check",
        of::<rs::S3SyncCheck>,
        "Compare the buckets' keys and ETags, optionally copying what is missing.",
    ),
    (
        "wait_healthy",
        of::<rs::WaitHealthy>,
        "Wait until the region's probes pass.",
    ),
    (
        "manual_approval",
        of::<rs::ManualApproval>,
        "Pause the run until a person runs `lifeboat approve`.",
    ),
    ("command", of::<rs::Command>, "Run a command."),
];

/// The channel kinds and their structs (`channels::build`).
const CHANNEL_KINDS: &[(&str, Fields, &str)] = &[
    ("sns", of::<raw::RawSnsChannel>, "An SNS topic."),
    (
        "webhook",
        of::<raw::RawWebhookChannel>,
        "A Slack-compatible webhook.",
    ),
];

/// What a `${name}` reference looks like, for the `variable` definition.
const VARIABLE_PATTERN: &str = r"\$\{[^}]+\}";

/// The JSON Schema (draft 7) of a policy file.
pub fn policy() -> Value {
    let mut g = generator();
    let common_probe = without(of::<raw::RawProbeCommon>(&mut g), "kind");
    let common_step = without(of::<raw::RawStepCommon>(&mut g), "kind");
    let probe_variants: Vec<Value> = PROBE_KINDS
        .iter()
        .map(|(kind, own, about)| kinded(kind, about, &[&common_probe, &own(&mut g)], true))
        .collect();
    let step_variants: Vec<Value> = STEP_KINDS
        .iter()
        .map(|(kind, own, about)| kinded(kind, about, &[&common_step, &own(&mut g)], true))
        .collect();
    let channel_variants: Vec<Value> = CHANNEL_KINDS
        .iter()
        .map(|(kind, own, about)| kinded(kind, about, &[&own(&mut g)], true))
        .collect();
    let target_variants: Vec<Value> = TargetKind::ALL
        .iter()
        .map(|&k| {
            let (own, about) = target_fields(k);
            target_variant(k.as_str(), about, own(&mut g))
        })
        .collect();
    let runbook = |name: &str, about: &str| {
        json!({
            "type": "object",
            "description": about,
            "properties": {
                "steps": {
                    "type": "array",
                    "description": format!("The steps, in order, each a [[{name}.steps]] table."),
                    "minItems": 1,
                    "items": { "oneOf": step_variants },
                },
            },
            "required": ["steps"],
            "additionalProperties": false,
        })
    };
    let mut sections = Map::new();
    sections.insert("vars".into(), vars());
    sections.insert("service".into(), of::<raw::RawService>(&mut g));
    sections.insert("regions".into(), of::<raw::RawRegions>(&mut g));
    sections.insert("detection".into(), of::<raw::RawDetection>(&mut g));
    sections.insert("guardrails".into(), of::<raw::RawGuardrails>(&mut g));
    sections.insert("journal".into(), of::<raw::RawJournal>(&mut g));
    sections.insert("aws".into(), of::<raw::RawAws>(&mut g));
    sections.insert("commands".into(), of::<raw::RawCommands>(&mut g));
    sections.insert(
        "coordination".into(),
        of::<super::coordination::RawCoordination>(&mut g),
    );
    sections.insert(
        "channels".into(),
        json!({
            "type": "object",
            "description": "Where notifications and alerts go: [channels.NAME] tables.",
            "additionalProperties": { "oneOf": channel_variants },
        }),
    );
    sections.insert(
        "targets".into(),
        json!({
            "type": "object",
            "description": "Resources that exist once per region: [targets.NAME] tables; per-region fields in [targets.NAME.regions.REGION].",
            "additionalProperties": { "oneOf": target_variants },
        }),
    );
    sections.insert(
        "probes".into(),
        json!({
            "type": "array",
            "description": "What to watch in each region: [[probes]] tables.",
            "items": { "oneOf": probe_variants },
        }),
    );
    sections.insert(
        "failover".into(),
        runbook(
            "failover",
            "The runbook that moves the service to a secondary.",
        ),
    );
    sections.insert(
        "failback".into(),
        runbook("failback", "The runbook that brings the service home."),
    );
    let mut schema = json!({
        "$schema": "http://json-schema.org/draft-07/schema#",
        "title": "lifeboat policy",
        "description": "One protected service: its regions, how to detect an outage, the probes, targets, runbooks, guardrails and channels. Generated by `lifeboat schema`; `lifeboat validate` checks the semantic rules too.",
        "type": "object",
        "properties": sections,
        "required": ["service", "regions", "detection", "failover", "failback"],
        "additionalProperties": false,
    });
    strip_null(&mut schema);
    for (name, section) in sections_mut(&mut schema) {
        if name != "vars" {
            allow_variables(section);
        }
    }
    with_definitions(schema)
}

/// The JSON Schema of a type read whole by serde (a drill scenario), with the same
/// conventions as the policy's.
pub fn for_type<T: JsonSchema>(title: &str) -> Value {
    let mut g = generator();
    let mut body = of::<T>(&mut g);
    strip_null(&mut body);
    let mut schema = json!({
        "$schema": "http://json-schema.org/draft-07/schema#",
        "title": title,
    });
    if let (Some(o), Value::Object(rest)) = (schema.as_object_mut(), body) {
        o.extend(rest);
    }
    with_definitions(schema)
}

/// A duration as policies and drills write it (`"30s"`), for `#[schemars(with = …)]` on
/// fields parsed by a custom deserializer.
#[derive(Debug)]
pub struct DurationText;

impl JsonSchema for DurationText {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        raw::RawDuration::schema_name()
    }
    fn json_schema(g: &mut SchemaGenerator) -> schemars::Schema {
        raw::RawDuration::json_schema(g)
    }
}

fn generator() -> SchemaGenerator {
    let mut s = SchemaSettings::draft07();
    // Every struct inline: the kinds are merged from their fields, and editors show an
    // inline schema's description on hover without following references.
    s.inline_subschemas = true;
    s.into_generator()
}

fn sections_mut(schema: &mut Value) -> impl Iterator<Item = (&String, &mut Value)> {
    schema
        .get_mut("properties")
        .and_then(Value::as_object_mut)
        .into_iter()
        .flat_map(|m| m.iter_mut())
}

/// The `[vars]` section: the loader reads it before everything else (`vars::collect`).
fn vars() -> Value {
    json!({
        "type": "object",
        "description": "Values the policy takes from outside itself, written \"${name}\" in any string. A string that is exactly \"${name}\" takes the value's type.",
        "properties": {
            "file": {
                "type": "string",
                "description": "A file of name = value lines (relative to the policy) whose values override these defaults when it exists.",
            },
        },
        "additionalProperties": {
            "type": ["string", "integer", "number", "boolean"],
        },
    })
}

/// An object schema without one property.
fn without(mut object: Value, field: &str) -> Value {
    if let Some(p) = object.get_mut("properties").and_then(Value::as_object_mut) {
        p.remove(field);
    }
    if let Some(r) = object.get_mut("required").and_then(Value::as_array_mut) {
        r.retain(|f| f != field);
    }
    object
}

/// One variant of a kinded table: the fields of `parts` merged, plus `kind = "<kind>"`.
fn kinded(kind: &str, about: &str, parts: &[&Value], keep_required: bool) -> Value {
    let mut properties = Map::new();
    let mut required = vec![json!("kind")];
    properties.insert(
        "kind".into(),
        json!({ "const": kind, "description": about }),
    );
    for part in parts {
        if let Some(p) = part.get("properties").and_then(Value::as_object) {
            properties.extend(p.iter().map(|(k, v)| (k.clone(), v.clone())));
        }
        if keep_required && let Some(r) = part.get("required").and_then(Value::as_array) {
            required.extend(r.iter().cloned());
        }
    }
    json!({
        "type": "object",
        "title": kind,
        "description": about,
        "properties": properties,
        "required": required,
        "additionalProperties": false,
    })
}

/// A target kind: its fields, none required (they may be per region), and a `regions`
/// table whose entries take the same fields.
fn target_variant(kind: &str, about: &str, fields: Value) -> Value {
    let mut variant = kinded(kind, about, &[&fields], false);
    let per_region = json!({
        "type": "object",
        "description": "Settings per region ([targets.NAME.regions.REGION]), merged over the shared ones.",
        "additionalProperties": {
            "type": "object",
            "properties": fields.get("properties").cloned().unwrap_or_else(|| json!({})),
            "additionalProperties": false,
        },
    });
    if let Some(p) = variant.get_mut("properties").and_then(Value::as_object_mut) {
        p.insert("regions".into(), per_region);
    }
    variant
}

/// Lets every scalar that is not a free string also be a `${name}` reference.
fn allow_variables(schema: &mut Value) {
    let Some(o) = schema.as_object_mut() else {
        return;
    };
    for key in ["properties"] {
        if let Some(p) = o.get_mut(key).and_then(Value::as_object_mut) {
            for (name, v) in p.iter_mut() {
                // `kind` chooses the variant; the loader reads it before substituting
                // nothing else, and a variable there would make the schema meaningless.
                if name != "kind" {
                    allow_variables(v);
                }
            }
        }
    }
    for key in ["items", "additionalProperties"] {
        if let Some(v) = o.get_mut(key) {
            allow_variables(v);
        }
    }
    for key in ["oneOf", "anyOf", "allOf"] {
        if let Some(Value::Array(a)) = o.get_mut(key) {
            a.iter_mut().for_each(allow_variables);
        }
    }
    let scalar = match o.get("type") {
        Some(Value::String(t)) => match t.as_str() {
            "integer" | "number" | "boolean" => true,
            "string" => o.contains_key("pattern") || o.contains_key("enum"),
            _ => false,
        },
        // A field-less enum (`oneOf` of `const`s).
        None => o
            .get("oneOf")
            .and_then(Value::as_array)
            .is_some_and(|a| a.iter().all(|v| v.get("const").is_some())),
        _ => false,
    };
    if scalar {
        let description = o.remove("description");
        let inner = Value::Object(std::mem::take(o));
        o.insert(
            "anyOf".into(),
            json!([inner, { "$ref": "#/definitions/variable" }]),
        );
        if let Some(d) = description {
            o.insert("description".into(), d);
        }
    }
}

/// Adds the definitions the variants refer to.
fn with_definitions(mut schema: Value) -> Value {
    if let Some(o) = schema.as_object_mut() {
        o.insert(
            "definitions".into(),
            json!({
                "variable": {
                    "type": "string",
                    "pattern": VARIABLE_PATTERN,
                    "description": "A ${name} reference to a [vars] value, replaced (with its type) before the policy is checked.",
                },
            }),
        );
    }
    schema
}

/// TOML has no null: drops the `null` schemars adds for optional fields.
fn strip_null(v: &mut Value) {
    match v {
        Value::Object(o) => {
            if let Some(Value::Array(values)) = o.get_mut("enum") {
                values.retain(|v| !v.is_null());
            }
            if let Some(Value::Array(types)) = o.get_mut("type") {
                types.retain(|t| t != "null");
                if types.len() == 1 {
                    let only = types.remove(0);
                    o.insert("type".into(), only);
                }
            }
            for key in ["anyOf", "oneOf"] {
                if let Some(Value::Array(a)) = o.get_mut(key) {
                    a.retain(|s| s.get("type").and_then(Value::as_str) != Some("null"));
                    if a.len() == 1 && key == "anyOf" {
                        let only = a.remove(0);
                        o.remove(key);
                        if let Value::Object(inner) = only {
                            for (k, v) in inner {
                                o.entry(k).or_insert(v);
                            }
                        }
                    }
                }
            }
            o.values_mut().for_each(strip_null);
        }
        Value::Array(a) => a.iter_mut().for_each(strip_null),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    #[test]
    fn the_schema_knows_the_probe_kinds_the_loader_knows() {
        let schema: Vec<&str> = PROBE_KINDS.iter().map(|(k, ..)| *k).collect();
        assert_eq!(schema, super::super::probes::KINDS);
    }

    #[test]
    fn the_schema_knows_the_step_kinds_the_loader_knows() {
        // The loader's list is private to the runbook builder; a kind far from every
        // real one makes it print the whole list in its help.
        let text = std::fs::read_to_string("tests/policies/good/minimal.toml")
            .expect("minimal policy")
            .replace("kind = \"notify\"", "kind = \"zzzzzzzzzzzzzzzz\"");
        let loaded = crate::policy::load_str(Path::new("kinds.toml"), text);
        let help = loaded
            .report
            .diagnostics
            .iter()
            .find(|d| d.code == "unknown-kind")
            .and_then(|d| d.help.clone())
            .expect("an unknown-kind diagnostic with help");
        let listed: Vec<&str> = help
            .strip_prefix("one of: ")
            .unwrap_or_else(|| panic!("{help}"))
            .split(", ")
            .collect();
        let schema: Vec<&str> = STEP_KINDS.iter().map(|(k, ..)| *k).collect();
        assert_eq!(schema, listed);
    }

    #[test]
    fn a_variable_may_stand_for_any_scalar_but_never_for_a_kind() {
        let s = policy();
        let threshold = &s["properties"]["detection"]["properties"]["failure_threshold"];
        assert_eq!(
            threshold["anyOf"][1]["$ref"], "#/definitions/variable",
            "{threshold}"
        );
        assert_eq!(threshold["anyOf"][0]["type"], "integer", "{threshold}");
        let mode = &s["properties"]["detection"]["properties"]["mode"];
        assert_eq!(mode["anyOf"][1]["$ref"], "#/definitions/variable", "{mode}");
        // A free string needs no alternative, and a kind must stay a constant.
        let about = &s["properties"]["service"]["properties"]["description"];
        assert_eq!(about["type"], "string", "{about}");
        let probe = &s["properties"]["probes"]["items"]["oneOf"][0];
        assert!(probe["properties"]["kind"]["const"].is_string(), "{probe}");
        // No `null` anywhere: TOML has none.
        assert!(!s.to_string().contains("\"null\""));
    }

    #[test]
    fn a_target_s_fields_may_be_shared_or_per_region() {
        let s = policy();
        let variants = s["properties"]["targets"]["additionalProperties"]["oneOf"]
            .as_array()
            .expect("target variants");
        assert_eq!(variants.len(), TargetKind::ALL.len());
        let postgres = variants
            .iter()
            .find(|v| v["properties"]["kind"]["const"] == "postgres")
            .expect("postgres");
        assert_eq!(postgres["required"], json!(["kind"]));
        let per_region = &postgres["properties"]["regions"]["additionalProperties"];
        assert!(per_region["properties"]["host"].is_object(), "{per_region}");
        assert_eq!(per_region["additionalProperties"], false);
    }
}
