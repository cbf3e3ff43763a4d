//! The HTTP API's OpenAPI 3.1 document (`GET /v1/openapi.json`, `lifeboat schema
//! --openapi`, kept in `deploy/openapi.json`). utoipa builds the operations from the
//! handlers' `#[utoipa::path]` attributes; the bodies' schemas come from schemars, derived
//! from the very types the handlers read and write, so neither can drift from the code.
//!
//! Why two crates: the `--json` outputs' schemas (`crate::cli::outputs`) and the API's
//! bodies are mostly the same types (`StatusView`, the journal's records, `Decision`), and
//! an OpenAPI 3.1 schema object is a JSON Schema 2020-12 one. schemars already derives
//! them, so the body types tell utoipa only their names (`by_reference!`), and
//! `document` puts schemars' definitions under `components.schemas`.

use std::borrow::Cow;
use std::collections::BTreeMap;

use schemars::generate::{Contract, SchemaSettings};
use schemars::{JsonSchema, SchemaGenerator};
use serde_json::{Map, Value};
use utoipa::OpenApi;
use utoipa::openapi::response::{Response, ResponseBuilder};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ContentBuilder, Ref, RefOr, schema::Schema};

use super::status::StatusView;
use super::vote::Vote;
use super::{api, fleet};
use crate::contract::{
    AbortBody, ApproveBody, ErrorBody, FailbackBody, FailoverBody, PauseBody, ReloadReport, Reply,
    ResumeBody, ServiceLine,
};
use crate::core::controller::Decision;
use crate::journal::{RunDetail, RunRecord};

/// Lets a `#[utoipa::path]` attribute name a body type: utoipa writes a `$ref` to
/// `#/components/schemas/NAME` (the name schemars gives the type), which `document` fills.
macro_rules! by_reference {
    ($($t:ty),* $(,)?) => {$(
        impl utoipa::PartialSchema for $t {
            fn schema() -> RefOr<Schema> {
                RefOr::Ref(utoipa::openapi::Ref::from_schema_name(<$t as JsonSchema>::schema_name()))
            }
        }
        impl utoipa::ToSchema for $t {
            fn name() -> Cow<'static, str> {
                <$t as JsonSchema>::schema_name()
            }
        }
    )*};
}

by_reference!(
    FailoverBody,
    FailbackBody,
    PauseBody,
    ResumeBody,
    ApproveBody,
    AbortBody,
    Reply,
    ErrorBody,
    StatusView,
    RunRecord,
    RunDetail,
    Decision,
    Vote,
    ServiceLine,
    ReloadReport,
);

/// The bodies the API reads: their schemas say what a client may send (fields with
/// defaults are optional).
const REQUESTS: &[fn(&mut SchemaGenerator)] = &[
    add::<FailoverBody>,
    add::<FailbackBody>,
    add::<PauseBody>,
    add::<ResumeBody>,
    add::<ApproveBody>,
    add::<AbortBody>,
];

/// The bodies the API writes: their schemas say what a client gets (every field that is
/// always written is required).
const REPLIES: &[fn(&mut SchemaGenerator)] = &[
    add::<Reply>,
    add::<ErrorBody>,
    add::<StatusView>,
    add::<RunRecord>,
    add::<RunDetail>,
    add::<Decision>,
    add::<Vote>,
    add::<ServiceLine>,
    add::<ReloadReport>,
];

fn add<T: JsonSchema>(g: &mut SchemaGenerator) {
    g.subschema_for::<T>();
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "lifeboat",
        description = "The API `lifeboat run` serves (`--listen`; by default a free port on \
loopback, published with the token file's path in `<journal>.api` beside the journal). \
`/healthz` is open. The views (`GET`) are open on loopback and need a read or control \
token beyond it. Control calls (`POST`) need `Authorization: Bearer <token>` with a control \
token; the lifeboat CLI sends it for you. A witness or shadow daemon serves no control call. \
Errors are `{\"error\": \"...\"}`; a control call the controller refuses is a 409 with the \
reason and the next step. A daemon started with `--policies` runs several services: \
`GET /v1/services` lists them, each one's routes are under `/v1/services/{name}/…` \
(`/v1/services/{name}/status` for `/v1/status`, and so on), and the single-service routes \
answer only while exactly one service runs.",
    ),
    paths(
        api::healthz,
        api::metrics,
        api::openapi,
        api::status,
        api::runs,
        api::run,
        api::decisions,
        api::failover,
        api::failback,
        api::pause,
        api::resume,
        api::approve_hold,
        api::approve_run,
        api::abort_run,
        api::answer_vote,
        fleet::services,
        fleet::reload,
    ),
    modifiers(&BearerToken),
    tags(
        (name = "views", description = "Read-only; no token needed."),
        (name = "control", description = "Act on the controller; each needs a control token and is recorded in the journal's audit trail."),
        (name = "witness", description = "Served by a witness to its controller, signed with the policy's witness key."),
    ),
)]
struct ApiDoc;

struct BearerToken;

impl utoipa::Modify for BearerToken {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let scheme = HttpBuilder::new()
            .scheme(HttpAuthScheme::Bearer)
            .description(Some(
                "A control token (the daemon's `--token-file` or `$LIFEBOAT_API_TOKEN`, or the one it generated into `<journal>.token`, readable only by its user), or for the views a read token (`--read-token-file`).",
            ))
            .build();
        doc.components
            .get_or_insert_with(Default::default)
            .add_security_scheme("bearer", SecurityScheme::Http(scheme));
        // utoipa names the crate's licence, and the crate declares none (it is not
        // published); an empty name says nothing.
        doc.info.license = None;
    }
}

fn json(description: &str, schema: &str) -> RefOr<Response> {
    let content = ContentBuilder::new()
        .schema(Some(Ref::from_schema_name(schema)))
        .build();
    let response = ResponseBuilder::new()
        .description(description)
        .content("application/json", content)
        .build();
    RefOr::T(response)
}

fn answers(list: &[(&str, &str, &str)]) -> BTreeMap<String, RefOr<Response>> {
    list.iter()
        .map(|(code, description, schema)| (code.to_string(), json(description, schema)))
        .collect()
}

/// What every control call may answer (`responses(ControlReplies)` on each).
pub struct ControlReplies;

impl utoipa::IntoResponses for ControlReplies {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        answers(&[
            (
                "200",
                "Accepted (`result` is `accepted`), or a dry run's plan (`preview`).",
                "Reply",
            ),
            (
                "400",
                "The body is not a valid request (or an abort gives no reason).",
                "ErrorBody",
            ),
            (
                "401",
                "No token, or one this daemon does not accept.",
                "ErrorBody",
            ),
            (
                "403",
                "A read token: control calls need a control token.",
                "ErrorBody",
            ),
            (
                "405",
                "A witness or shadow daemon: it never acts.",
                "ErrorBody",
            ),
            ("408", "The body did not arrive within 5 s.", "ErrorBody"),
            ("413", "The body is over 64 KiB.", "ErrorBody"),
            (
                "409",
                "Refused (`result` is `refused`): why, the guardrail's typed reason (`hold`) and the next step.",
                "Reply",
            ),
            (
                "503",
                "The daemon is shutting down, or its control loop did not answer in 30 s.",
                "ErrorBody",
            ),
        ])
    }
}

/// How a view refuses a caller (`ViewRefusals` among each view's responses).
pub struct ViewRefusals;

impl utoipa::IntoResponses for ViewRefusals {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        answers(&[
            (
                "401",
                "Beyond loopback without a read or control token, or with a token this daemon does not accept.",
                "ErrorBody",
            ),
            (
                "421",
                "No token, and the request names a host this daemon does not answer to (DNS rebinding).",
                "ErrorBody",
            ),
        ])
    }
}

/// The whole document, as `GET /v1/openapi.json` serves it.
pub fn document() -> Value {
    let mut doc = serde_json::to_value(ApiDoc::openapi())
        .expect("an OpenAPI document has string keys and serializes");
    if let Some(components) = doc.get_mut("components").and_then(Value::as_object_mut) {
        components.insert("schemas".into(), Value::Object(component_schemas()));
    }
    // A control call's body may be empty (every field has a default); utoipa marks every
    // body it is given as required.
    for item in doc["paths"]
        .as_object_mut()
        .into_iter()
        .flat_map(|p| p.values_mut())
    {
        for op in item
            .as_object_mut()
            .into_iter()
            .flat_map(|i| i.values_mut())
        {
            if let Some(body) = op.get_mut("requestBody").and_then(Value::as_object_mut) {
                body.insert("required".into(), Value::Bool(false));
            }
        }
    }
    doc
}

/// schemars' definitions of every body, with their `$ref`s pointing into
/// `#/components/schemas`. A type both read and written would get the reply's schema;
/// the unit test below checks no such type differs between the two.
fn component_schemas() -> Map<String, Value> {
    let mut out = Map::new();
    for (name, schema) in definitions(Contract::Serialize, REPLIES)
        .into_iter()
        .chain(definitions(Contract::Deserialize, REQUESTS))
    {
        out.entry(name).or_insert(schema);
    }
    out
}

fn definitions(contract: Contract, roots: &[fn(&mut SchemaGenerator)]) -> Map<String, Value> {
    let mut settings = SchemaSettings::draft2020_12();
    settings.definitions_path = "/components/schemas".into();
    settings.contract = contract;
    settings.meta_schema = None;
    let mut g = settings.into_generator();
    for add in roots {
        add(&mut g);
    }
    g.take_definitions(true)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    #[test]
    fn every_route_the_router_serves_is_documented_and_every_documented_route_is_served() {
        let routed: BTreeSet<(String, String)> = api::endpoints()
            .into_iter()
            .map(|(m, p)| (m.as_str().to_lowercase(), p.to_string()))
            .collect();
        let doc = document();
        let mut documented = BTreeSet::new();
        for (path, item) in doc["paths"].as_object().expect("paths") {
            for method in item.as_object().expect("path item").keys() {
                if ["get", "post", "put", "patch", "delete", "head", "options"]
                    .contains(&method.as_str())
                {
                    documented.insert((method.clone(), path.clone()));
                }
            }
        }
        let undocumented: Vec<_> = routed.difference(&documented).collect();
        let unrouted: Vec<_> = documented.difference(&routed).collect();
        assert!(
            undocumented.is_empty() && unrouted.is_empty(),
            "routed but not documented (add a #[utoipa::path] and list it in ApiDoc): {undocumented:?}\n\
             documented but not routed (add it to api::routes): {unrouted:?}"
        );
    }

    /// Every `$ref` in the document names a schema in `components.schemas`.
    #[test]
    fn every_reference_in_the_document_resolves() {
        fn refs(v: &Value, out: &mut Vec<String>) {
            match v {
                Value::Object(m) => {
                    if let Some(Value::String(r)) = m.get("$ref") {
                        out.push(r.clone());
                    }
                    m.values().for_each(|v| refs(v, out));
                }
                Value::Array(a) => a.iter().for_each(|v| refs(v, out)),
                _ => {}
            }
        }
        let doc = document();
        let mut all = Vec::new();
        refs(&doc, &mut all);
        assert!(all.len() > 20, "{all:?}");
        let schemas = doc["components"]["schemas"].as_object().expect("schemas");
        let dangling: Vec<_> = all
            .iter()
            .filter(|r| {
                r.strip_prefix("#/components/schemas/")
                    .is_none_or(|name| !schemas.contains_key(name))
            })
            .collect();
        assert!(dangling.is_empty(), "{dangling:?}");
    }

    #[test]
    fn a_type_both_read_and_written_has_one_schema() {
        let replies = definitions(Contract::Serialize, REPLIES);
        let requests = definitions(Contract::Deserialize, REQUESTS);
        for (name, schema) in &requests {
            if let Some(other) = replies.get(name) {
                assert_eq!(schema, other, "{name} differs between requests and replies");
            }
        }
    }
}
