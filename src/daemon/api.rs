//! The daemon's HTTP API: read-only views (health, metrics, status, runs, decisions) open
//! to anyone who can reach the loopback port, and control calls (failover, failback,
//! pause, resume, approve, abort) that need the bearer token. The request and reply
//! bodies are `crate::contract`'s.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{FromRequest, Path, Query, Request as HttpRequest, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use super::engine::Event;
use super::metrics::Metrics;
use super::status::StatusView;
use crate::clients::secret::Secret;
use crate::contract::{
    AbortBody, ApproveBody, ErrorBody, FailbackBody, FailoverBody, PauseBody, Reply, ResumeBody,
};
use crate::core::controller::OperatorCommand;
use crate::core::ids::RunId;
use crate::driver::Request;
use crate::journal::Journal;

#[derive(Clone)]
pub struct ApiState {
    pub status: Arc<RwLock<StatusView>>,
    pub metrics: Arc<Metrics>,
    pub journal: Arc<Journal>,
    pub service: String,
    pub events: mpsc::Sender<Event>,
    pub token: Secret,
    /// Milliseconds since `started` at the loop's last turn, for `/healthz`.
    pub heartbeat: Arc<AtomicU64>,
    pub started: Instant,
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
        .route("/v1/decisions", get(decisions))
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
    let body = ErrorBody {
        error: message.into(),
    };
    (status, Json(body)).into_response()
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

/// Reads the journal on the blocking pool: SQLite calls must not hold an async thread.
async fn read<T: serde::Serialize + Send + 'static>(
    s: &ApiState,
    not_found: StatusCode,
    f: impl FnOnce(&Journal) -> Result<T, crate::journal::JournalError> + Send + 'static,
) -> Response {
    let journal = s.journal.clone();
    match tokio::task::spawn_blocking(move || f(&journal)).await {
        Ok(Ok(v)) => Json(v).into_response(),
        Ok(Err(e)) => error(not_found, e.to_string()),
        Err(_) => error(StatusCode::INTERNAL_SERVER_ERROR, "the journal read failed"),
    }
}

async fn runs(State(s): State<ApiState>) -> Response {
    read(&s, StatusCode::INTERNAL_SERVER_ERROR, |j| j.runs(100)).await
}

async fn run(State(s): State<ApiState>, Path(id): Path<String>) -> Response {
    read(&s, StatusCode::NOT_FOUND, move |j| j.detail(&RunId(id))).await
}

#[derive(Deserialize)]
struct Limit {
    limit: Option<usize>,
}

async fn decisions(State(s): State<ApiState>, Query(q): Query<Limit>) -> Response {
    let limit = q.limit.unwrap_or(50).min(1000);
    let service = s.service.clone();
    read(&s, StatusCode::INTERNAL_SERVER_ERROR, move |j| {
        j.decisions(&service, limit)
    })
    .await
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

/// A control call's body, read only after the token was checked: an unauthenticated
/// call gets 401 whatever its body or content type. An empty body means every field's
/// default.
struct Authed<T>(T);

impl<T: DeserializeOwned> FromRequest<ApiState> for Authed<T> {
    type Rejection = Response;

    async fn from_request(req: HttpRequest, state: &ApiState) -> Result<Self, Response> {
        if let Some(r) = unauthorized(state, req.headers()) {
            return Err(r);
        }
        let bytes = Bytes::from_request(req, state).await.map_err(|e| {
            error(
                StatusCode::BAD_REQUEST,
                format!("cannot read the body: {e}"),
            )
        })?;
        let bytes: &[u8] = if bytes.iter().all(u8::is_ascii_whitespace) {
            b"{}"
        } else {
            &bytes
        };
        serde_json::from_slice(bytes).map(Authed).map_err(|e| {
            error(
                StatusCode::BAD_REQUEST,
                format!("the body is not a valid request: {e}"),
            )
        })
    }
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
        Ok(Ok(reply @ Reply::Refused { .. })) => {
            (StatusCode::CONFLICT, Json(reply)).into_response()
        }
        Ok(Ok(reply)) => (StatusCode::OK, Json(reply)).into_response(),
        _ => error(
            StatusCode::SERVICE_UNAVAILABLE,
            "the control loop did not answer",
        ),
    }
}

fn operator(cmd: OperatorCommand) -> Request {
    Request::Operator {
        cmd,
        dry_run: false,
        expect_to: None,
    }
}

async fn failover(State(s): State<ApiState>, Authed(b): Authed<FailoverBody>) -> Response {
    let cmd = OperatorCommand::Failover {
        to: b.to,
        allow_data_loss: b.allow_data_loss,
        by: b.by,
        note: b.note,
    };
    let req = Request::Operator {
        cmd,
        dry_run: b.dry_run,
        expect_to: b.expect_to,
    };
    send(&s, req).await
}

async fn failback(State(s): State<ApiState>, Authed(b): Authed<FailbackBody>) -> Response {
    let cmd = OperatorCommand::Failback {
        by: b.by,
        note: b.note,
    };
    let req = Request::Operator {
        cmd,
        dry_run: b.dry_run,
        expect_to: None,
    };
    send(&s, req).await
}

async fn pause(State(s): State<ApiState>, Authed(b): Authed<PauseBody>) -> Response {
    let reason = if b.reason.trim().is_empty() {
        "no reason given".to_string()
    } else {
        b.reason
    };
    send(&s, operator(OperatorCommand::Pause { by: b.by, reason })).await
}

async fn resume(State(s): State<ApiState>, Authed(b): Authed<ResumeBody>) -> Response {
    send(&s, operator(OperatorCommand::Resume { by: b.by })).await
}

async fn approve_hold(State(s): State<ApiState>, Authed(b): Authed<ApproveBody>) -> Response {
    let cmd = OperatorCommand::Approve {
        allow_data_loss: b.allow_data_loss,
        by: b.by,
    };
    send(&s, operator(cmd)).await
}

async fn approve_run(
    State(s): State<ApiState>,
    Path(id): Path<String>,
    Authed(b): Authed<ApproveBody>,
) -> Response {
    let req = Request::ApproveRun {
        run: RunId(id),
        by: b.by,
        allow_data_loss: b.allow_data_loss,
    };
    send(&s, req).await
}

async fn abort_run(
    State(s): State<ApiState>,
    Path(id): Path<String>,
    Authed(b): Authed<AbortBody>,
) -> Response {
    if b.reason.trim().is_empty() {
        return error(
            StatusCode::BAD_REQUEST,
            "an abort needs a reason: it is recorded in the journal",
        );
    }
    let req = Request::AbortRun {
        run: RunId(id),
        by: b.by,
        reason: b.reason,
    };
    send(&s, req).await
}
