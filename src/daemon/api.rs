//! The daemon's HTTP API: read-only views (health, metrics, status, runs, decisions, the
//! OpenAPI document) open to anyone who can reach the loopback port, and control calls
//! (failover, failback, pause, resume, approve, abort) that need the bearer token. The
//! request and reply bodies are `crate::contract`'s; each handler's `#[utoipa::path]`
//! describes it for `super::openapi`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{FromRequest, Path, Query, Request as HttpRequest, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get, post};
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
use crate::core::controller::{Decision, OperatorCommand};
use crate::core::ids::RunId;
use crate::driver::Request;
use crate::journal::{Journal, RunDetail, RunRecord};

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

/// Every route: the router is built from this list alone, so the test that compares it
/// with the OpenAPI document (`super::openapi`) sees every route the daemon serves.
fn routes() -> Vec<(Method, &'static str, MethodRouter<ApiState>)> {
    vec![
        (Method::GET, "/healthz", get(healthz)),
        (Method::GET, "/metrics", get(metrics)),
        (Method::GET, "/v1/openapi.json", get(openapi)),
        (Method::GET, "/v1/status", get(status)),
        (Method::GET, "/v1/runs", get(runs)),
        (Method::GET, "/v1/runs/{id}", get(run)),
        (Method::GET, "/v1/decisions", get(decisions)),
        (Method::POST, "/v1/failover", post(failover)),
        (Method::POST, "/v1/failback", post(failback)),
        (Method::POST, "/v1/pause", post(pause)),
        (Method::POST, "/v1/resume", post(resume)),
        (Method::POST, "/v1/approve", post(approve_hold)),
        (Method::POST, "/v1/runs/{id}/approve", post(approve_run)),
        (Method::POST, "/v1/runs/{id}/abort", post(abort_run)),
    ]
}

/// The method and path of every route the router serves.
pub fn endpoints() -> Vec<(Method, &'static str)> {
    routes().into_iter().map(|(m, p, _)| (m, p)).collect()
}

pub fn router(state: ApiState) -> Router {
    routes()
        .into_iter()
        .fold(Router::new(), |r, (_, path, handler)| {
            r.route(path, handler)
        })
        .with_state(state)
}

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    let body = ErrorBody {
        error: message.into(),
    };
    (status, Json(body)).into_response()
}

/// Liveness: whether the control loop turned recently.
#[utoipa::path(get, path = "/healthz", tag = "views", responses(
    (status = 200, description = "The control loop turned recently: `ok`.", body = String, content_type = "text/plain"),
    (status = 503, description = "The control loop has not turned for longer than allowed.", body = ErrorBody),
))]
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

/// Prometheus metrics: the controller's state, the regions' verdicts, the probes, the runs.
#[utoipa::path(get, path = "/metrics", tag = "views", responses(
    (status = 200, description = "Prometheus text exposition format 0.0.4.", body = String, content_type = "text/plain; version=0.0.4; charset=utf-8"),
))]
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

/// This API's OpenAPI 3.1 document.
#[utoipa::path(get, path = "/v1/openapi.json", tag = "views", responses(
    (status = 200, description = "This document, as `deploy/openapi.json` keeps it (`lifeboat schema --openapi`).", body = Object),
))]
async fn openapi() -> Response {
    Json(super::openapi::document()).into_response()
}

/// The controller's state and why, each region's and probe's health, the current and last run.
#[utoipa::path(get, path = "/v1/status", tag = "views", responses(
    (status = 200, description = "What `lifeboat status --json` prints.", body = StatusView),
    (status = 500, description = "The status could not be read.", body = ErrorBody),
))]
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

/// The last 100 runs, newest first.
#[utoipa::path(get, path = "/v1/runs", tag = "views", responses(
    (status = 200, description = "What `lifeboat history --json` prints.", body = [RunRecord]),
    (status = 500, description = "The journal could not be read.", body = ErrorBody),
))]
async fn runs(State(s): State<ApiState>) -> Response {
    read(&s, StatusCode::INTERNAL_SERVER_ERROR, |j| j.runs(100)).await
}

/// One run: its plan, steps, attempts, approvals and audit trail.
#[utoipa::path(get, path = "/v1/runs/{id}", tag = "views",
    params(("id" = String, Path, description = "The run's id, e.g. `fo-20261123-153012-7f3a`.")),
    responses(
        (status = 200, description = "What `lifeboat show RUN --json` prints.", body = RunDetail),
        (status = 404, description = "No run has this id.", body = ErrorBody),
    ),
)]
async fn run(State(s): State<ApiState>, Path(id): Path<String>) -> Response {
    read(&s, StatusCode::NOT_FOUND, move |j| j.detail(&RunId(id))).await
}

#[derive(Deserialize)]
struct Limit {
    limit: Option<usize>,
}

/// The controller's decisions, newest first, each with its reason and evidence.
#[utoipa::path(get, path = "/v1/decisions", tag = "views",
    params(("limit" = Option<u32>, Query, description = "How many decisions (default 50, at most 1000).")),
    responses(
        (status = 200, description = "What `lifeboat history --decisions --json` prints.", body = [Decision]),
        (status = 400, description = "`limit` is not a number.", body = String, content_type = "text/plain"),
        (status = 500, description = "The journal could not be read.", body = ErrorBody),
    ),
)]
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

/// Fail over to a secondary, or (`dry_run`) preview the plan the controller would run.
#[utoipa::path(post, path = "/v1/failover", tag = "control", security(("bearer" = [])),
    request_body(content = FailoverBody, description = "Every field may be left out (an empty body means every field's default)."),
    responses(
        (status = 200, description = "Accepted (`result` is `accepted`), or a dry run's plan (`preview`).", body = Reply),
        (status = 400, description = "The body is not a valid request.", body = ErrorBody),
        (status = 401, description = "The bearer token is missing or wrong.", body = ErrorBody),
        (status = 409, description = "Refused (`result` is `refused`): why, the guardrail's typed reason (`hold`) and the next step.", body = Reply),
        (status = 503, description = "The daemon is shutting down or its control loop did not answer in 30 s.", body = ErrorBody),
    ),
)]
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

/// Fail back to the primary, or (`dry_run`) preview the plan.
#[utoipa::path(post, path = "/v1/failback", tag = "control", security(("bearer" = [])),
    request_body(content = FailbackBody, description = "Every field may be left out (an empty body means every field's default)."),
    responses(
        (status = 200, description = "Accepted (`result` is `accepted`), or a dry run's plan (`preview`).", body = Reply),
        (status = 400, description = "The body is not a valid request.", body = ErrorBody),
        (status = 401, description = "The bearer token is missing or wrong.", body = ErrorBody),
        (status = 409, description = "Refused (`result` is `refused`): why, the guardrail's typed reason (`hold`) and the next step.", body = Reply),
        (status = 503, description = "The daemon is shutting down or its control loop did not answer in 30 s.", body = ErrorBody),
    ),
)]
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

/// Pause the controller: it keeps probing and reporting but starts nothing by itself.
#[utoipa::path(post, path = "/v1/pause", tag = "control", security(("bearer" = [])),
    request_body(content = PauseBody, description = "Every field may be left out (an empty body means every field's default)."),
    responses(
        (status = 200, description = "Accepted (`result` is `accepted`), or a dry run's plan (`preview`).", body = Reply),
        (status = 400, description = "The body is not a valid request.", body = ErrorBody),
        (status = 401, description = "The bearer token is missing or wrong.", body = ErrorBody),
        (status = 409, description = "Refused (`result` is `refused`): why, the guardrail's typed reason (`hold`) and the next step.", body = Reply),
        (status = 503, description = "The daemon is shutting down or its control loop did not answer in 30 s.", body = ErrorBody),
    ),
)]
async fn pause(State(s): State<ApiState>, Authed(b): Authed<PauseBody>) -> Response {
    let reason = if b.reason.trim().is_empty() {
        "no reason given".to_string()
    } else {
        b.reason
    };
    send(&s, operator(OperatorCommand::Pause { by: b.by, reason })).await
}

/// Resume a paused controller.
#[utoipa::path(post, path = "/v1/resume", tag = "control", security(("bearer" = [])),
    request_body(content = ResumeBody, description = "Every field may be left out (an empty body means every field's default)."),
    responses(
        (status = 200, description = "Accepted (`result` is `accepted`), or a dry run's plan (`preview`).", body = Reply),
        (status = 400, description = "The body is not a valid request.", body = ErrorBody),
        (status = 401, description = "The bearer token is missing or wrong.", body = ErrorBody),
        (status = 409, description = "Refused (`result` is `refused`): why, the guardrail's typed reason (`hold`) and the next step.", body = Reply),
        (status = 503, description = "The daemon is shutting down or its control loop did not answer in 30 s.", body = ErrorBody),
    ),
)]
async fn resume(State(s): State<ApiState>, Authed(b): Authed<ResumeBody>) -> Response {
    send(&s, operator(OperatorCommand::Resume { by: b.by })).await
}

/// Approve the failover the controller holds for an operator.
#[utoipa::path(post, path = "/v1/approve", tag = "control", security(("bearer" = [])),
    request_body(content = ApproveBody, description = "Every field may be left out (an empty body means every field's default)."),
    responses(
        (status = 200, description = "Accepted (`result` is `accepted`), or a dry run's plan (`preview`).", body = Reply),
        (status = 400, description = "The body is not a valid request.", body = ErrorBody),
        (status = 401, description = "The bearer token is missing or wrong.", body = ErrorBody),
        (status = 409, description = "Refused (`result` is `refused`): why, the guardrail's typed reason (`hold`) and the next step.", body = Reply),
        (status = 503, description = "The daemon is shutting down or its control loop did not answer in 30 s.", body = ErrorBody),
    ),
)]
async fn approve_hold(State(s): State<ApiState>, Authed(b): Authed<ApproveBody>) -> Response {
    let cmd = OperatorCommand::Approve {
        allow_data_loss: b.allow_data_loss,
        by: b.by,
    };
    send(&s, operator(cmd)).await
}

/// Approve the manual step a run waits at.
#[utoipa::path(post, path = "/v1/runs/{id}/approve", tag = "control", security(("bearer" = [])),
    params(("id" = String, Path, description = "The run's id, e.g. `fo-20261123-153012-7f3a`.")),
    request_body(content = ApproveBody, description = "Every field may be left out (an empty body means every field's default)."),
    responses(
        (status = 200, description = "Accepted (`result` is `accepted`), or a dry run's plan (`preview`).", body = Reply),
        (status = 400, description = "The body is not a valid request.", body = ErrorBody),
        (status = 401, description = "The bearer token is missing or wrong.", body = ErrorBody),
        (status = 409, description = "Refused (`result` is `refused`): why, the guardrail's typed reason (`hold`) and the next step.", body = Reply),
        (status = 503, description = "The daemon is shutting down or its control loop did not answer in 30 s.", body = ErrorBody),
    ),
)]
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

/// Abort an unfinished run; the reason goes in the audit trail.
#[utoipa::path(post, path = "/v1/runs/{id}/abort", tag = "control", security(("bearer" = [])),
    params(("id" = String, Path, description = "The run's id, e.g. `fo-20261123-153012-7f3a`.")),
    request_body(content = AbortBody, description = "Every field may be left out (an empty body means every field's default)."),
    responses(
        (status = 200, description = "Accepted (`result` is `accepted`), or a dry run's plan (`preview`).", body = Reply),
        (status = 400, description = "The body is not a valid request, or gives no reason.", body = ErrorBody),
        (status = 401, description = "The bearer token is missing or wrong.", body = ErrorBody),
        (status = 409, description = "Refused (`result` is `refused`): why, the guardrail's typed reason (`hold`) and the next step.", body = Reply),
        (status = 503, description = "The daemon is shutting down or its control loop did not answer in 30 s.", body = ErrorBody),
    ),
)]
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
