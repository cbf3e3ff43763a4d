//! The daemon's HTTP API: read-only views (health, metrics, status, runs) open to anyone
//! who can reach the loopback port, and control calls (failover, failback, pause, resume,
//! approve, abort) that need the bearer token.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use tokio::sync::{mpsc, oneshot};

use super::engine::{Event, Reply, Request};
use super::metrics::Metrics;
use super::status::StatusView;
use crate::clients::secret::Secret;
use crate::core::controller::OperatorCommand;
use crate::core::ids::RunId;
use crate::core::model::RegionName;
use crate::journal::Journal;

#[derive(Clone)]
pub struct ApiState {
    pub status: Arc<RwLock<StatusView>>,
    pub metrics: Arc<Metrics>,
    pub journal: Arc<Journal>,
    pub events: mpsc::Sender<Event>,
    pub token: Secret,
    /// Milliseconds since start at the loop's last turn, for `/healthz`.
    pub heartbeat: Arc<AtomicU64>,
    pub started: std::time::Instant,
    /// How stale the loop may be before `/healthz` fails.
    pub stale_after: Duration,
}

pub fn router(state: ApiState) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .route("/v1/status", get(status))
        .route("/v1/runs", get(runs))
        .route("/v1/runs/{id}", get(run))
        .route("/v1/failover", post(failover))
        .route("/v1/failback", post(failback))
        .route("/v1/pause", post(pause))
        .route("/v1/resume", post(resume))
        .route("/v1/approve", post(approve_hold))
        .route("/v1/runs/{id}/approve", post(approve_run))
        .route("/v1/runs/{id}/abort", post(abort_run))
        .with_state(state)
}

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(serde_json::json!({"error": message.into()}))).into_response()
}

async fn healthz(State(s): State<ApiState>) -> Response {
    let last = Duration::from_millis(s.heartbeat.load(Ordering::Relaxed));
    let age = s.started.elapsed().saturating_sub(last);
    if age > s.stale_after {
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("the control loop has not turned for {}ms", age.as_millis()),
        );
    }
    (StatusCode::OK, "ok\n").into_response()
}

async fn metrics(State(s): State<ApiState>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        s.metrics.encode(),
    )
        .into_response()
}

async fn status(State(s): State<ApiState>) -> Response {
    match s.status.read() {
        Ok(v) => Json(v.clone()).into_response(),
        Err(_) => error(StatusCode::INTERNAL_SERVER_ERROR, "status unavailable"),
    }
}

async fn runs(State(s): State<ApiState>) -> Response {
    match s.journal.runs(100) {
        Ok(r) => Json(r).into_response(),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

async fn run(State(s): State<ApiState>, Path(id): Path<String>) -> Response {
    match s.journal.detail(&RunId(id.clone())) {
        Ok(d) => Json(d).into_response(),
        Err(e) => error(StatusCode::NOT_FOUND, format!("no run {id}: {e}")),
    }
}

/// The refusal when the bearer token is missing or wrong, checked in constant time (no
/// early exit on the first differing byte); `None` when the call may go on.
fn unauthorized(s: &ApiState, headers: &HeaderMap) -> Option<Response> {
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    let want = s.token.expose().as_bytes();
    let given = given.as_bytes();
    let mut diff = u8::from(given.len() != want.len());
    for (i, w) in want.iter().enumerate() {
        diff |= w ^ given.get(i).copied().unwrap_or(0);
    }
    if diff != 0 {
        return Some(error(
            StatusCode::UNAUTHORIZED,
            "control calls need `Authorization: Bearer <token>`; the lifeboat CLI sends it for you (it reads the token file beside the journal, or $LIFEBOAT_API_TOKEN)",
        ));
    }
    None
}

async fn send(s: &ApiState, req: Request) -> Response {
    let (tx, rx) = oneshot::channel();
    if s.events.send(Event::Request(req, tx)).await.is_err() {
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            "the daemon is shutting down",
        );
    }
    match tokio::time::timeout(Duration::from_secs(30), rx).await {
        Ok(Ok(reply @ Reply::Accepted { .. })) => (StatusCode::OK, Json(reply)).into_response(),
        Ok(Ok(reply @ Reply::Refused { .. })) => {
            (StatusCode::CONFLICT, Json(reply)).into_response()
        }
        _ => error(
            StatusCode::SERVICE_UNAVAILABLE,
            "the control loop did not answer",
        ),
    }
}

fn default_by() -> String {
    "api".to_string()
}

#[derive(Deserialize)]
struct FailoverBody {
    to: Option<String>,
    #[serde(default)]
    allow_data_loss: bool,
    #[serde(default = "default_by")]
    by: String,
    #[serde(default)]
    note: String,
}

#[derive(Deserialize)]
struct ByBody {
    #[serde(default = "default_by")]
    by: String,
    #[serde(default)]
    note: String,
    #[serde(default)]
    reason: String,
    #[serde(default)]
    allow_data_loss: bool,
}

async fn failover(
    State(s): State<ApiState>,
    headers: HeaderMap,
    Json(b): Json<FailoverBody>,
) -> Response {
    if let Some(r) = unauthorized(&s, &headers) {
        return r;
    }
    let cmd = OperatorCommand::Failover {
        to: b.to.map(RegionName),
        allow_data_loss: b.allow_data_loss,
        by: b.by,
        note: b.note,
    };
    send(&s, Request::Operator(cmd)).await
}

async fn failback(
    State(s): State<ApiState>,
    headers: HeaderMap,
    Json(b): Json<ByBody>,
) -> Response {
    if let Some(r) = unauthorized(&s, &headers) {
        return r;
    }
    send(
        &s,
        Request::Operator(OperatorCommand::Failback {
            by: b.by,
            note: b.note,
        }),
    )
    .await
}

async fn pause(State(s): State<ApiState>, headers: HeaderMap, Json(b): Json<ByBody>) -> Response {
    if let Some(r) = unauthorized(&s, &headers) {
        return r;
    }
    let reason = if b.reason.is_empty() {
        "no reason given".to_string()
    } else {
        b.reason
    };
    send(
        &s,
        Request::Operator(OperatorCommand::Pause { by: b.by, reason }),
    )
    .await
}

async fn resume(State(s): State<ApiState>, headers: HeaderMap, Json(b): Json<ByBody>) -> Response {
    if let Some(r) = unauthorized(&s, &headers) {
        return r;
    }
    send(&s, Request::Operator(OperatorCommand::Resume { by: b.by })).await
}

async fn approve_hold(
    State(s): State<ApiState>,
    headers: HeaderMap,
    Json(b): Json<ByBody>,
) -> Response {
    if let Some(r) = unauthorized(&s, &headers) {
        return r;
    }
    send(
        &s,
        Request::Operator(OperatorCommand::Approve {
            allow_data_loss: b.allow_data_loss,
            by: b.by,
        }),
    )
    .await
}

async fn approve_run(
    State(s): State<ApiState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Json(b): Json<ByBody>,
) -> Response {
    if let Some(r) = unauthorized(&s, &headers) {
        return r;
    }
    send(
        &s,
        Request::ApproveRun {
            run: RunId(id),
            by: b.by,
            allow_data_loss: b.allow_data_loss,
        },
    )
    .await
}

async fn abort_run(
    State(s): State<ApiState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Json(b): Json<ByBody>,
) -> Response {
    if let Some(r) = unauthorized(&s, &headers) {
        return r;
    }
    if b.reason.trim().is_empty() {
        return error(
            StatusCode::BAD_REQUEST,
            "an abort needs a reason: it is recorded in the journal",
        );
    }
    send(
        &s,
        Request::AbortRun {
            run: RunId(id),
            by: b.by,
            reason: b.reason,
        },
    )
    .await
}
