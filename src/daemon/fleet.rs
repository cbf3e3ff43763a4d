//! The services a daemon runs and the one HTTP API in front of them.
//!
//! Each service has its own loop, journal and routes (`super::service`); this module keeps
//! the table of running services, serves what spans them (`/healthz`, `/metrics`,
//! `/v1/services`, `/v1/reload`), hands `/v1/services/NAME/…` to that service's routes,
//! and, while exactly one service runs, the single-service routes (`/v1/status`, …) to it.
//!
//! Reload (SIGHUP, `POST /v1/reload`) reads every policy again through the `Loader`:
//! a new file starts its service; a changed one restarts it on the new policy; a file
//! that no longer validates is refused with `validate`'s diagnostics and its service keeps
//! running on its last good policy; a file that went away stops its service. Nothing is
//! stopped or replaced under a run in flight: that change waits for the next reload.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use tower::ServiceExt;
use tracing::{error, info, warn};

use super::api;
use super::auth::Access;
use super::discovery;
use super::openapi::ViewRefusals;
use super::service::{self, Running, ServiceSpec, Shared};
use crate::contract::{Refusal, ReloadReport, ServiceLine};

/// Reads the daemon's policies (again): `run --policies DIR` reads the directory,
/// `run --policy FILE` the one file.
#[async_trait::async_trait]
pub trait Loader: Send + Sync {
    /// Every policy file, each read and validated. Errors: the set of files itself cannot
    /// be read (a directory gone or unreadable); the reload then changes nothing, rather
    /// than stopping every service as if its file had been removed.
    async fn load(&self) -> Result<Vec<Loaded>, String>;
}

/// One policy file, read and validated: the service to run, or what is wrong with it
/// (in `validate`'s words).
pub struct Loaded {
    pub file: PathBuf,
    pub spec: Result<ServiceSpec, String>,
}

/// What the HTTP layer reads on every request: a snapshot, replaced whole on a change.
#[derive(Clone, Default)]
struct Table {
    entries: BTreeMap<String, Entry>,
}

#[derive(Clone)]
struct Entry {
    router: Router,
    api: api::ApiState,
    file: Option<PathBuf>,
    /// Set while the service's policy file is refused by the last reload.
    policy_error: Option<String>,
}

pub struct Fleet {
    shared: Shared,
    loader: Arc<dyn Loader>,
    /// Where a daemon started with `--policies` publishes itself (`None`: one policy).
    state_dir: Option<PathBuf>,
    token_file: Option<PathBuf>,
    running: tokio::sync::Mutex<BTreeMap<String, Running>>,
    table: RwLock<Arc<Table>>,
}

impl Fleet {
    pub fn new(
        shared: Shared,
        loader: Arc<dyn Loader>,
        state_dir: Option<PathBuf>,
        token_file: Option<PathBuf>,
    ) -> Arc<Fleet> {
        Arc::new(Fleet {
            shared,
            loader,
            state_dir,
            token_file,
            running: tokio::sync::Mutex::new(BTreeMap::new()),
            table: RwLock::new(Arc::new(Table::default())),
        })
    }

    fn table(&self) -> Arc<Table> {
        match self.table.read() {
            Ok(t) => t.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    /// How many services run.
    pub fn len(&self) -> usize {
        self.table().entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Reads every policy and brings the running services in line with them (see the
    /// module's comment). The first call starts the daemon's services.
    pub async fn reload(&self) -> ReloadReport {
        let mut report = ReloadReport::default();
        let loaded = match self.loader.load().await {
            Ok(l) => l,
            Err(reason) => {
                error!("reload refused: {reason}");
                report.refused.push(Refusal {
                    file: None,
                    service: None,
                    reason,
                });
                return report;
            }
        };
        let mut running = self.running.lock().await;
        let mut errors: BTreeMap<String, String> = BTreeMap::new();
        let mut seen: BTreeMap<String, PathBuf> = BTreeMap::new();
        for l in loaded {
            let file = l.file.display().to_string();
            let spec = match l.spec {
                Ok(spec) => spec,
                Err(reason) => {
                    let owner = running
                        .values()
                        .find(|r| r.spec.file.as_ref() == Some(&l.file))
                        .map(|r| r.name().to_string());
                    if let Some(name) = &owner {
                        seen.insert(name.clone(), l.file.clone());
                        errors.insert(name.clone(), reason.clone());
                        error!(service = %name, "the policy file {file} is refused; the service keeps running on its last good policy:\n{reason}");
                    } else {
                        error!("the policy file {file} is refused:\n{reason}");
                    }
                    report.refused.push(Refusal {
                        file: Some(file),
                        service: owner,
                        reason,
                    });
                    continue;
                }
            };
            let name = spec.policy.service.clone();
            if let Some(first) = seen.get(&name) {
                report.refused.push(Refusal {
                    file: Some(file),
                    service: Some(name.clone()),
                    reason: format!(
                        "service `{name}` is already defined by {}; give each policy its own `service` name",
                        first.display()
                    ),
                });
                continue;
            }
            seen.insert(name.clone(), l.file.clone());
            match running.remove(&name) {
                None => match service::start(spec, &self.shared).await {
                    Ok(r) => {
                        running.insert(name.clone(), r);
                        report.started.push(name);
                    }
                    Err(e) => {
                        error!(service = %name, "could not start the service: {e:#}");
                        report.refused.push(Refusal {
                            file: Some(file),
                            service: Some(name),
                            reason: format!("{e:#}"),
                        });
                    }
                },
                Some(mut r) if same(&r.spec, &spec) => {
                    r.spec.file = spec.file;
                    running.insert(name.clone(), r);
                    report.unchanged.push(name);
                }
                Some(r) => {
                    if let Some(run) = r.run_in_flight() {
                        running.insert(name.clone(), r);
                        warn!(service = %name, "its policy changed, but run {run} is in flight; it keeps the current policy until a reload after the run ends");
                        report.deferred.push(Refusal {
                            file: Some(file),
                            service: Some(name),
                            reason: format!(
                                "run {run} is in flight; the service keeps its current policy until it ends: reload again then"
                            ),
                        });
                        continue;
                    }
                    let old = r.spec.clone();
                    r.stop().await;
                    match service::start(spec, &self.shared).await {
                        Ok(r) => {
                            info!(service = %name, "restarted on the changed policy {file}");
                            running.insert(name.clone(), r);
                            report.restarted.push(name);
                        }
                        Err(e) => {
                            error!(service = %name, "could not start the service on the changed policy; keeping the last good one: {e:#}");
                            let reason = format!("{e:#}");
                            match service::start(old, &self.shared).await {
                                Ok(r) => {
                                    running.insert(name.clone(), r);
                                    errors.insert(name.clone(), reason.clone());
                                }
                                Err(e2) => {
                                    error!(service = %name, "the last good policy does not start either; the service is stopped: {e2:#}");
                                }
                            }
                            report.refused.push(Refusal {
                                file: Some(file),
                                service: Some(name),
                                reason,
                            });
                        }
                    }
                }
            }
        }
        let gone: Vec<String> = running
            .keys()
            .filter(|n| !seen.contains_key(*n))
            .cloned()
            .collect();
        for name in gone {
            let Some(r) = running.remove(&name) else {
                continue;
            };
            if let Some(run) = r.run_in_flight() {
                warn!(service = %name, "its policy file is gone, but run {run} is in flight; it keeps running until a reload after the run ends");
                report.deferred.push(Refusal {
                    file: r.spec.file.as_ref().map(|f| f.display().to_string()),
                    service: Some(name.clone()),
                    reason: format!(
                        "its policy file is gone, but run {run} is in flight; the service stops at the first reload after the run ends"
                    ),
                });
                running.insert(name, r);
                continue;
            }
            info!(service = %name, "its policy file is gone: stopping the service");
            r.stop().await;
            report.stopped.push(name);
        }
        self.set_table(&running, errors);
        let list = |v: &[String]| v.join(", ");
        if !report.started.is_empty() {
            info!("started: {}", list(&report.started));
        }
        if !report.restarted.is_empty() {
            info!("restarted on a changed policy: {}", list(&report.restarted));
        }
        if !report.stopped.is_empty() {
            info!("stopped (policy file gone): {}", list(&report.stopped));
        }
        report
    }

    /// Publishes the running services to the HTTP layer and, for `--policies`, to the
    /// fleet discovery file.
    fn set_table(&self, running: &BTreeMap<String, Running>, errors: BTreeMap<String, String>) {
        let table = Table {
            entries: running
                .iter()
                .map(|(name, r)| {
                    (
                        name.clone(),
                        Entry {
                            router: r.router.clone(),
                            api: r.api.clone(),
                            file: r.spec.file.clone(),
                            policy_error: errors.get(name).cloned(),
                        },
                    )
                })
                .collect(),
        };
        match self.table.write() {
            Ok(mut t) => *t = Arc::new(table),
            Err(p) => *p.into_inner() = Arc::new(table),
        }
        if let Some(dir) = &self.state_dir {
            let info = discovery::FleetPublished {
                url: self.shared.url.clone(),
                pid: std::process::id(),
                token_file: self.token_file.clone(),
                services: running
                    .values()
                    .map(|r| discovery::FleetMember {
                        name: r.name().to_string(),
                        policy: r.spec.file.clone(),
                        journal: r.spec.journal_path.clone(),
                    })
                    .collect(),
            };
            if let Err(e) = discovery::publish_fleet(dir, &info) {
                warn!("the CLI will not find this daemon without --policy: {e:#}");
            }
        }
    }

    /// Asks every service for a readiness round now.
    pub async fn check_readiness(&self) {
        for r in self.running.lock().await.values() {
            if let Some(n) = &r.readiness_now {
                n.notify_one();
            }
        }
    }

    /// Stops every service (each as `SIGTERM` stops a daemon) and withdraws the fleet's
    /// discovery file.
    pub async fn stop(&self) {
        let all = std::mem::take(&mut *self.running.lock().await);
        let stops: Vec<_> = all.into_values().map(|r| tokio::spawn(r.stop())).collect();
        for s in stops {
            let _ = s.await;
        }
        if let Some(dir) = &self.state_dir {
            let _ = std::fs::remove_file(discovery::fleet_path(dir));
        }
    }
}

fn line(name: &str, e: &Entry) -> ServiceLine {
    let s = match e.api.status.read() {
        Ok(s) => s.clone(),
        Err(p) => p.into_inner().clone(),
    };
    ServiceLine {
        name: name.to_string(),
        state: s.state.clone(),
        active: s.active.to_string(),
        why: s.why.clone(),
        healthy: s.healthy(),
        run: s.current_run.as_ref().map(|r| r.run_id.to_string()),
        policy: e.file.as_ref().map(|f| f.display().to_string()),
        policy_error: e.policy_error.clone(),
    }
}

/// Whether a reloaded spec is the one running: the same policy, journal and node name.
fn same(a: &ServiceSpec, b: &ServiceSpec) -> bool {
    a.journal_path == b.journal_path
        && a.node == b.node
        && format!("{:?}", a.policy) == format!("{:?}", b.policy)
}

/// The daemon's one router: what spans the services, then each service's own.
pub fn router(fleet: Arc<Fleet>) -> Router {
    Router::new().fallback(dispatch).with_state(fleet)
}

/// Routes a request by its path (see the module's comment).
async fn dispatch(State(fleet): State<Arc<Fleet>>, req: Request) -> Response {
    let path = req.uri().path().to_string();
    let method = req.method().clone();
    let table = fleet.table();
    match path.as_str() {
        "/healthz" if method == axum::http::Method::GET => return healthz(&table),
        "/metrics" if method == axum::http::Method::GET => {
            if let Err(refused) = api::admit(&fleet.shared.tokens, &req, Access::Read) {
                return *refused;
            }
            return metrics(&table);
        }
        "/v1/services" if method == axum::http::Method::GET => {
            if let Err(refused) = api::admit(&fleet.shared.tokens, &req, Access::Read) {
                return *refused;
            }
            return services(&table);
        }
        "/v1/reload" if method == axum::http::Method::POST => {
            if let Err(refused) = api::admit(&fleet.shared.tokens, &req, Access::Control) {
                return *refused;
            }
            return reload(&fleet).await;
        }
        _ => {}
    }
    if let Some(rest) = path.strip_prefix("/v1/services/") {
        let (name, tail) = rest.split_once('/').unwrap_or((rest, ""));
        let Some(e) = table.entries.get(name) else {
            return api::error(
                StatusCode::NOT_FOUND,
                format!(
                    "this daemon runs no service `{}`; GET /v1/services (or `lifeboat status`) lists those it runs",
                    crate::clients::http::sanitize(name, 80)
                ),
            );
        };
        let inner = match tail {
            "healthz" | "metrics" => format!("/{tail}"),
            _ => format!("/v1/{tail}"),
        };
        return forward(e, req, &inner).await;
    }
    match table.entries.len() {
        1 => {
            let e = table.entries.values().next().expect("one entry");
            forward(e, req, &path).await
        }
        0 => api::error(
            StatusCode::SERVICE_UNAVAILABLE,
            "this daemon runs no service yet: every policy was refused; fix them and reload (POST /v1/reload, or SIGHUP)",
        ),
        n => api::error(
            StatusCode::NOT_FOUND,
            format!(
                "this daemon runs {n} services: address one as /v1/services/NAME{} (the CLI: -s NAME); GET /v1/services lists them",
                path.strip_prefix("/v1").unwrap_or(&path)
            ),
        ),
    }
}

/// The method and path of each route this module serves itself (`api::endpoints` adds
/// them to the single-service ones, for the OpenAPI document's test).
pub fn endpoints() -> Vec<(axum::http::Method, &'static str)> {
    vec![
        (axum::http::Method::GET, "/v1/services"),
        (axum::http::Method::POST, "/v1/reload"),
    ]
}

/// Every service this daemon runs, one line each.
#[utoipa::path(get, path = "/v1/services", tag = "views", security((), ("bearer" = [])), responses(
    (status = 200, description = "One line per service: state, serving region, why, and whether the last reload refused its policy file. Each service's own routes are under `/v1/services/{name}/…` (`status`, `runs`, `decisions`, `failover`, …, and `metrics`, `healthz`).", body = Vec<ServiceLine>),
    ViewRefusals,
))]
fn services(table: &Table) -> Response {
    let lines: Vec<ServiceLine> = table
        .entries
        .iter()
        .map(|(name, e)| line(name, e))
        .collect();
    axum::Json(lines).into_response()
}

/// Reads every policy again, as SIGHUP does (no body needed).
#[utoipa::path(post, path = "/v1/reload", tag = "control", security(("bearer" = [])), responses(
    (status = 200, description = "What the reload did: services started, restarted, stopped, unchanged; files refused (with `lifeboat validate`'s diagnostics; their services keep their last good policy); changes put off until a run in flight ends.", body = ReloadReport),
    (status = 401, description = "No token, or one this daemon does not accept.", body = crate::contract::ErrorBody),
    (status = 403, description = "A read token: a reload needs a control token.", body = crate::contract::ErrorBody),
))]
async fn reload(fleet: &Fleet) -> Response {
    info!("reload asked for through the API");
    axum::Json(fleet.reload().await).into_response()
}

/// Hands a request to one service's routes under the path they know it by.
async fn forward(e: &Entry, mut req: Request, path: &str) -> Response {
    let pq = match req.uri().query() {
        Some(q) => format!("{path}?{q}"),
        None => path.to_string(),
    };
    match pq.parse::<Uri>() {
        Ok(uri) => *req.uri_mut() = uri,
        Err(_) => {
            return api::error(
                StatusCode::BAD_REQUEST,
                "this path is not one a daemon serves",
            );
        }
    }
    match e.router.clone().oneshot(req).await {
        Ok(r) => r,
        Err(never) => match never {},
    }
}

/// Every service's loop turned recently.
fn healthz(table: &Table) -> Response {
    let stale: Vec<String> = table
        .entries
        .iter()
        .filter(|(_, e)| e.api.loop_age() > e.api.stale_after)
        .map(|(name, e)| format!("{name} ({}ms)", e.api.loop_age().as_millis()))
        .collect();
    if stale.is_empty() {
        return (StatusCode::OK, "ok\n").into_response();
    }
    api::error(
        StatusCode::SERVICE_UNAVAILABLE,
        format!(
            "the control loop of {} has not turned for longer than allowed",
            stale.join(", ")
        ),
    )
}

/// Every service's metrics in one exposition, plus whether each policy was refused.
fn metrics(table: &Table) -> Response {
    let mut parts: Vec<String> = table
        .entries
        .values()
        .map(|e| e.api.metrics.encode())
        .chain(std::iter::once(super::metrics::process()))
        .collect();
    let mut refused = String::from(
        "# HELP lifeboat_policy_refused Whether the last reload refused the service's policy file (the service keeps running on its last good policy).\n# TYPE lifeboat_policy_refused gauge\n",
    );
    for (name, e) in &table.entries {
        refused.push_str(&format!(
            "lifeboat_policy_refused{{service=\"{}\"}} {}\n",
            super::metrics::escape_label(name),
            u8::from(e.policy_error.is_some())
        ));
    }
    parts.push(refused);
    let chunks = super::metrics::merge_chunks(parts);
    let body =
        futures_util::stream::iter(chunks.into_iter().map(Ok::<_, std::convert::Infallible>));
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        Body::from_stream(body),
    )
        .into_response()
}
