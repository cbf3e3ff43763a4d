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

use schemars::generate::{Contract, SchemaSettings};
use schemars::{JsonSchema, SchemaGenerator};
use serde_json::{Map, Value};
use utoipa::OpenApi;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{RefOr, schema::Schema};

use super::api;
use super::status::StatusView;
use crate::contract::{
    AbortBody, ApproveBody, ErrorBody, FailbackBody, FailoverBody, PauseBody, Reply, ResumeBody,
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
];

fn add<T: JsonSchema>(g: &mut SchemaGenerator) {
    g.subschema_for::<T>();
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "lifeboat",
        description = "The API `lifeboat run` serves on loopback (`--listen`; by default a free \
port, published with the token file's path in `<journal>.api` beside the journal). Views \
(`GET`) are open to anyone who can reach the port. Control calls (`POST`) need \
`Authorization: Bearer <token>`; the lifeboat CLI sends it for you. Errors are \
`{\"error\": \"...\"}`; a control call the controller refuses is a 409 with the reason and \
the next step.",
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
    ),
    modifiers(&BearerToken),
    tags(
        (name = "views", description = "Read-only; no token needed."),
        (name = "control", description = "Act on the controller; each needs the bearer token and is recorded in the journal's audit trail."),
    ),
)]
struct ApiDoc;

struct BearerToken;

impl utoipa::Modify for BearerToken {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let scheme = HttpBuilder::new()
            .scheme(HttpAuthScheme::Bearer)
            .description(Some(
                "The daemon's API token: the one it was started with (`--token-file` or `$LIFEBOAT_API_TOKEN`), or the one it generated into `<journal>.token`, readable only by its user.",
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
