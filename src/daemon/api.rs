//! The daemon's HTTP API: read-only views (health, metrics, status, runs, decisions),
//! control calls (failover, failback, pause, resume, approve, abort) that need a control
//! token, and on a witness the signed vote its controller asks for. The request and reply
//! bodies are `crate::contract`'s.
//!
//! Who may call what (`auth`): `/healthz` is open; the views are open on loopback and
//! need a read or control token elsewhere; control calls need a control token, checked
//! before the body is read; a request without a token must name this host (DNS
//! rebinding). A daemon that does not act (a witness, a shadow) mounts no control route.
//!
//! Each handler's `#[utoipa::path]` describes it for `super::openapi`, which serves the
//! OpenAPI document at `/v1/openapi.json`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, FromRequest, Path, Query, Request as HttpRequest, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use tokio::sync::{Semaphore, mpsc, oneshot};
use tokio::time::Instant;

use super::auth::{self, Access, Denied, Token, Tokens};
use super::engine::Event;
use super::metrics::Metrics;
use super::openapi::{ControlReplies, ViewRefusals};
use super::role::Role;
use super::status::StatusView;
use super::vote::{self, RegionVote, Vote, VoteKey};
use crate::clock::WallClock;
use crate::contract::{
    AbortBody, ApproveBody, Claimed, ErrorBody, FailbackBody, FailoverBody, PauseBody, Reply,
    ResumeBody,
};
use crate::core::controller::{Decision, OperatorCommand};
use crate::core::health::Verdict;
use crate::core::ids::RunId;
use crate::driver::Request;
use crate::journal::{Journal, RunDetail, RunRecord};

/// A control call's body is a few hundred bytes; anything near this is not one.
pub const MAX_BODY: usize = 64 * 1024;
/// How long a control call's body may take to arrive once its token was accepted.
const BODY_TIMEOUT: Duration = Duration::from_secs(5);
/// Journal reads at once: each holds the journal's lock, which the control loop needs
/// for its own writes.
const JOURNAL_READERS: usize = 2;

#[derive(Clone)]
pub struct ApiState {
    pub status: Arc<RwLock<StatusView>>,
    pub metrics: Arc<Metrics>,
    pub journal: Arc<Journal>,
    pub service: String,
    pub events: mpsc::Sender<Event>,
    pub role: Role,
    pub tokens: Arc<Tokens>,
    /// A witness signs its votes with it; `None` elsewhere.
    pub vote_key: Option<VoteKey>,
    pub clock: WallClock,
    /// Milliseconds since `started` at the loop's last turn, for `/healthz`.
    pub heartbeat: Arc<AtomicU64>,
    pub started: Instant,
    /// How stale the loop may be before `/healthz` fails.
    pub stale_after: Duration,
    pub readers: Arc<Semaphore>,
}

impl ApiState {
    /// How long ago the control loop last turned.
    pub fn loop_age(&self) -> Duration {
        let last = Duration::from_millis(self.heartbeat.load(Ordering::Relaxed));
        self.started.elapsed().saturating_sub(last)
    }
}

/// The bound on concurrent journal reads `ApiState::readers` starts with.
pub fn journal_readers() -> Arc<Semaphore> {
    Arc::new(Semaphore::new(JOURNAL_READERS))
}

type Routes = Vec<(Method, &'static str, MethodRouter<ApiState>)>;

/// Open to anyone.
fn open_routes() -> Routes {
    vec![(Method::GET, "/healthz", get(healthz))]
}

/// The views: open on loopback, a read or control token elsewhere (`need_read`).
fn view_routes() -> Routes {
    vec![
        (Method::GET, "/metrics", get(metrics)),
        (Method::GET, "/v1/openapi.json", get(openapi)),
        (Method::GET, "/v1/status", get(status)),
        (Method::GET, "/v1/runs", get(runs)),
        (Method::GET, "/v1/runs/{id}", get(run)),
        (Method::GET, "/v1/decisions", get(decisions)),
    ]
}

/// A witness's signed vote, on a witness given the policy's witness key.
fn witness_routes() -> Routes {
    vec![(Method::GET, vote::PATH, get(answer_vote))]
}

/// The control calls, on a daemon that acts, with a control token (`need_control`).
fn control_routes() -> Routes {
    vec![
        (Method::POST, "/v1/failover", post(failover)),
        (Method::POST, "/v1/failback", post(failback)),
        (Method::POST, "/v1/pause", post(pause)),
        (Method::POST, "/v1/resume", post(resume)),
        (Method::POST, "/v1/approve", post(approve_hold)),
        (Method::POST, "/v1/runs/{id}/approve", post(approve_run)),
        (Method::POST, "/v1/runs/{id}/abort", post(abort_run)),
    ]
}

/// The method and path of every route some daemon serves: the router is built from these
/// tables alone, so the test that compares them with the OpenAPI document
/// (`super::openapi`) sees every route.
pub fn endpoints() -> Vec<(Method, &'static str)> {
    [
        open_routes(),
        view_routes(),
        witness_routes(),
        control_routes(),
    ]
    .into_iter()
    .flatten()
    .map(|(m, p, _)| (m, p))
    .chain(super::fleet::endpoints())
    .collect()
}

fn table(routes: Routes) -> Router<ApiState> {
    routes
        .into_iter()
        .fold(Router::new(), |r, (_, path, handler)| {
            r.route(path, handler)
        })
}

pub fn router(state: ApiState) -> Router {
    let views =
        table(view_routes()).route_layer(middleware::from_fn_with_state(state.clone(), need_read));
    let mut r = table(open_routes()).merge(views);
    if state.role == Role::Witness && state.vote_key.is_some() {
        r = r.merge(table(witness_routes()));
    }
    if state.role.acts() {
        let control = table(control_routes())
            .route_layer(middleware::from_fn_with_state(state.clone(), need_control));
        r = r.merge(control);
    }
    r.fallback(not_here)
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .layer(middleware::from_fn_with_state(state.clone(), guard))
        .with_state(state)
}

pub fn error(status: StatusCode, message: impl Into<String>) -> Response {
    let body = ErrorBody {
        error: message.into(),
    };
    (status, Json(body)).into_response()
}

/// The token a request presented and that was accepted (absent: none was presented).
#[derive(Clone)]
struct Caller(Option<Token>);

/// Runs before every route: a token, when one is presented, must be ours; a request
/// without one must name this host (`Tokens::host_allowed`), except `/healthz` and the
/// signed vote, which check their own way.
async fn guard(State(s): State<ApiState>, mut req: HttpRequest, next: Next) -> Response {
    let path = req.uri().path();
    let exempt = path == "/healthz" || path == vote::PATH;
    match identify(&s.tokens, &req, exempt) {
        Ok(caller) => {
            req.extensions_mut().insert(Caller(caller));
            next.run(req).await
        }
        Err(refused) => *refused,
    }
}

/// A refusal, boxed: a `Response` is large, and most requests are not refused.
type Refused = Box<Response>;

/// The token a request presented, checked (`None`: none, or an `exempt` route that
/// checks its own way); a request without one must name this host.
fn identify(tokens: &Tokens, req: &HttpRequest, exempt: bool) -> Result<Option<Token>, Refused> {
    let presented = req.headers().get(header::AUTHORIZATION);
    let caller = match presented {
        None => None,
        Some(_) if exempt => None,
        Some(v) => match tokens.identify(v.to_str().ok()) {
            Ok(t) => Some(t.clone()),
            Err(_) => {
                return Err(Box::new(error(
                    StatusCode::UNAUTHORIZED,
                    "the token is not one this daemon accepts; use a token from its --token-file (or the file beside its journal, or $LIFEBOAT_API_TOKEN)",
                )));
            }
        },
    };
    if caller.is_none() && !exempt {
        let host = req
            .headers()
            .get(header::HOST)
            .map(|h| h.to_str().unwrap_or("?"));
        if !tokens.host_allowed(host) {
            return Err(Box::new(error(
                StatusCode::MISDIRECTED_REQUEST,
                format!(
                    "this daemon does not answer to the host name `{}` without a token; use its address, or start it with --allow-host NAME",
                    crate::clients::http::sanitize(host.unwrap_or(""), 80)
                ),
            )));
        }
    }
    Ok(caller)
}

fn caller(req: &HttpRequest) -> Option<&Token> {
    req.extensions().get::<Caller>().and_then(|c| c.0.as_ref())
}

/// Whether `caller` may read, or control, as `need` says; the refusal otherwise.
fn allowed(tokens: &Tokens, caller: Option<&Token>, need: Access) -> Result<(), Refused> {
    let refused = match (tokens.allows(caller, need), need) {
        (Ok(()), _) => return Ok(()),
        (Err(_), Access::Read) => error(
            StatusCode::UNAUTHORIZED,
            "this daemon listens beyond loopback: reading needs `Authorization: Bearer <token>`, a read token (--read-token-file) or a control token",
        ),
        (Err(Denied::ReadOnly { name }), _) => error(
            StatusCode::FORBIDDEN,
            format!(
                "the token `{name}` may only read; control calls need a control token (--token-file)"
            ),
        ),
        (Err(Denied::Unknown), _) => error(
            StatusCode::UNAUTHORIZED,
            "control calls need `Authorization: Bearer <token>`; the lifeboat CLI sends it for you (it reads the token file beside the journal, or $LIFEBOAT_API_TOKEN)",
        ),
    };
    Err(Box::new(refused))
}

/// `guard` and then `need_read` or `need_control` in one, for the routes a daemon serves
/// beside its services' (`super::fleet`).
pub fn admit(tokens: &Tokens, req: &HttpRequest, need: Access) -> Result<(), Refused> {
    let caller = identify(tokens, req, false)?;
    allowed(tokens, caller.as_ref(), need)
}

async fn need_read(State(s): State<ApiState>, req: HttpRequest, next: Next) -> Response {
    match allowed(&s.tokens, caller(&req), Access::Read) {
        Ok(()) => next.run(req).await,
        Err(refused) => *refused,
    }
}

async fn need_control(State(s): State<ApiState>, req: HttpRequest, next: Next) -> Response {
    match allowed(&s.tokens, caller(&req), Access::Control) {
        Ok(()) => next.run(req).await,
        Err(refused) => *refused,
    }
}

/// Every path this daemon does not serve. On a witness or a shadow daemon that includes
/// every control call, and the answer says so.
async fn not_here(State(s): State<ApiState>, req: HttpRequest) -> Response {
    if req.method() == axum::http::Method::POST && !s.role.acts() {
        return error(
            StatusCode::METHOD_NOT_ALLOWED,
            format!(
                "this lifeboat is {} and never acts: it serves no control call; send it to the controller",
                s.role.describe()
            ),
        );
    }
    error(StatusCode::NOT_FOUND, "no such endpoint")
}

/// Liveness: whether the control loop turned recently. Open to anyone.
#[utoipa::path(get, path = "/healthz", tag = "views", responses(
    (status = 200, description = "The control loop turned recently: `ok`.", body = String, content_type = "text/plain"),
    (status = 503, description = "The control loop has not turned for longer than allowed.", body = ErrorBody),
))]
async fn healthz(State(s): State<ApiState>) -> Response {
    let age = s.loop_age();
    if age > s.stale_after {
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("the control loop has not turned for {}ms", age.as_millis()),
        );
    }
    (StatusCode::OK, "ok\n").into_response()
}

/// Prometheus metrics: the controller's state, the regions' verdicts, the probes, the runs.
#[utoipa::path(get, path = "/metrics", tag = "views", security((), ("bearer" = [])), responses(
    (status = 200, description = "Prometheus text exposition format 0.0.4.", body = String, content_type = "text/plain; version=0.0.4; charset=utf-8"),
    ViewRefusals,
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
#[utoipa::path(get, path = "/v1/openapi.json", tag = "views", security((), ("bearer" = [])), responses(
    (status = 200, description = "This document, as `deploy/openapi.json` keeps it (`lifeboat schema --openapi`).", body = Object),
    ViewRefusals,
))]
async fn openapi() -> Response {
    Json(super::openapi::document()).into_response()
}

/// The controller's state and why, each region's and probe's health, the current and last run.
#[utoipa::path(get, path = "/v1/status", tag = "views", security((), ("bearer" = [])), responses(
    (status = 200, description = "What `lifeboat status --json` prints.", body = StatusView),
    (status = 500, description = "The status could not be read.", body = ErrorBody),
    ViewRefusals,
))]
async fn status(State(s): State<ApiState>) -> Response {
    match s.status.read() {
        Ok(v) => Json(v.clone()).into_response(),
        Err(_) => error(StatusCode::INTERNAL_SERVER_ERROR, "status unavailable"),
    }
}

/// Reads the journal on the blocking pool (SQLite calls must not hold an async thread),
/// a bounded number at once, so readers cannot queue up on the journal's lock ahead of
/// the control loop.
async fn read<T: serde::Serialize + Send + 'static>(
    s: &ApiState,
    not_found: StatusCode,
    f: impl FnOnce(&Journal) -> Result<T, crate::journal::JournalError> + Send + 'static,
) -> Response {
    let Ok(Ok(_permit)) =
        tokio::time::timeout(Duration::from_secs(5), s.readers.clone().acquire_owned()).await
    else {
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            "too many journal reads at once; try again in a moment",
        );
    };
    let journal = s.journal.clone();
    match tokio::task::spawn_blocking(move || f(&journal)).await {
        Ok(Ok(v)) => Json(v).into_response(),
        Ok(Err(e)) => error(not_found, e.to_string()),
        Err(_) => error(StatusCode::INTERNAL_SERVER_ERROR, "the journal read failed"),
    }
}

/// The last 100 runs, newest first.
#[utoipa::path(get, path = "/v1/runs", tag = "views", security((), ("bearer" = [])), responses(
    (status = 200, description = "What `lifeboat history --json` prints.", body = [RunRecord]),
    (status = 500, description = "The journal could not be read.", body = ErrorBody),
    (status = 503, description = "Too many journal reads at once; try again.", body = ErrorBody),
    ViewRefusals,
))]
async fn runs(State(s): State<ApiState>) -> Response {
    read(&s, StatusCode::INTERNAL_SERVER_ERROR, |j| j.runs(100)).await
}

/// One run: its plan, steps, attempts, approvals and audit trail.
#[utoipa::path(get, path = "/v1/runs/{id}", tag = "views", security((), ("bearer" = [])),
    params(("id" = String, Path, description = "The run's id, e.g. `fo-20261123-153012-7f3a`.")),
    responses(
        (status = 200, description = "What `lifeboat show RUN --json` prints.", body = RunDetail),
        (status = 404, description = "No run has this id.", body = ErrorBody),
        (status = 503, description = "Too many journal reads at once; try again.", body = ErrorBody),
        ViewRefusals,
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
#[utoipa::path(get, path = "/v1/decisions", tag = "views", security((), ("bearer" = [])),
    params(("limit" = Option<u32>, Query, description = "How many decisions (default 50, at most 1000).")),
    responses(
        (status = 200, description = "What `lifeboat history --decisions --json` prints.", body = [Decision]),
        (status = 400, description = "`limit` is not a number.", body = String, content_type = "text/plain"),
        (status = 500, description = "The journal could not be read.", body = ErrorBody),
        (status = 503, description = "Too many journal reads at once; try again.", body = ErrorBody),
        ViewRefusals,
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

/// A control call's body, read only after `need_control` accepted the token (an
/// unauthenticated call gets 401 whatever its body or content type), within
/// `BODY_TIMEOUT` and `MAX_BODY`; and who made the call, as the journal records it: the
/// claimed `by` and the token's name (`auth::attributed`). An empty body means every
/// field's default.
struct Authed<T>(T, String);

impl<T: DeserializeOwned + Claimed> FromRequest<ApiState> for Authed<T> {
    type Rejection = Response;

    async fn from_request(req: HttpRequest, state: &ApiState) -> Result<Self, Response> {
        let Some(token) = caller(&req).map(|t| t.name.clone()) else {
            return Err(error(
                StatusCode::UNAUTHORIZED,
                "control calls need a token",
            ));
        };
        let bytes = tokio::time::timeout(BODY_TIMEOUT, Bytes::from_request(req, state))
            .await
            .map_err(|_| {
                error(
                    StatusCode::REQUEST_TIMEOUT,
                    format!("the body did not arrive within {}s", BODY_TIMEOUT.as_secs()),
                )
            })?
            .map_err(|e| {
                let status = e.status();
                let why = if status == StatusCode::PAYLOAD_TOO_LARGE {
                    format!(
                        "the body is over the {} KiB a control call may send",
                        MAX_BODY / 1024
                    )
                } else {
                    format!("cannot read the body: {}", e.body_text())
                };
                error(status, why)
            })?;
        let body: T = parse_body(&bytes).map_err(|e| error(StatusCode::BAD_REQUEST, e))?;
        let by =
            auth::attributed(body.by(), &token).map_err(|e| error(StatusCode::BAD_REQUEST, e))?;
        Ok(Authed(body, by))
    }
}

/// A control call's body: JSON of the call's contract type; blank means all defaults.
///
/// Errors: a message for a 400 answer.
pub fn parse_body<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, String> {
    let bytes: &[u8] = if bytes.iter().all(u8::is_ascii_whitespace) {
        b"{}"
    } else {
        bytes
    };
    serde_json::from_slice(bytes).map_err(|e| format!("the body is not a valid request: {e}"))
}

/// A witness's answer to its controller: what it sees, signed (`vote`). The request must
/// be signed with the same key and name this witness's service.
/// A witness's signed vote: what it sees of each region, for its controller's quorum.
/// Served only by a witness (`lifeboat run --witness`) given the policy's witness key.
#[utoipa::path(get, path = "/v1/vote", tag = "witness",
    params(
        ("x-lifeboat-service" = String, Header, description = "The service the controller asks about."),
        ("x-lifeboat-nonce" = String, Header, description = "A fresh random nonce, hex; the answer echoes it."),
        ("x-lifeboat-signature" = String, Header, description = "HMAC-SHA256 of the request with the policy's `[guardrails] witness_key`, hex."),
    ),
    responses(
        (status = 200, description = "The vote; the answer's own `x-lifeboat-signature` header signs the body.", body = Vote),
        (status = 400, description = "No service or no hex nonce.", body = ErrorBody),
        (status = 401, description = "The request is not signed with the witness key.", body = ErrorBody),
        (status = 404, description = "This daemon is not a witness with a witness key.", body = ErrorBody),
        (status = 409, description = "This witness watches another service.", body = ErrorBody),
        (status = 500, description = "The status could not be read.", body = ErrorBody),
    ),
)]
async fn answer_vote(State(s): State<ApiState>, headers: HeaderMap) -> Response {
    let Some(key) = &s.vote_key else {
        return error(StatusCode::NOT_FOUND, "no such endpoint");
    };
    let h = |n: &str| headers.get(n).and_then(|v| v.to_str().ok()).unwrap_or("");
    let (service, nonce) = (h(vote::SERVICE_HEADER), h(vote::NONCE_HEADER));
    if !vote::valid_nonce(nonce) || service.len() > 256 {
        return error(
            StatusCode::BAD_REQUEST,
            "a vote request names its service and a hex nonce, and is signed",
        );
    }
    if !key.verify_request(service, nonce, h(vote::SIGNATURE_HEADER)) {
        return error(
            StatusCode::UNAUTHORIZED,
            "vote requests are signed with the policy's [guardrails] witness_key",
        );
    }
    if service != s.service {
        return error(
            StatusCode::CONFLICT,
            format!("this witness watches `{}`", s.service),
        );
    }
    let regions = match s.status.read() {
        Ok(v) => v
            .regions
            .iter()
            .map(|r| RegionVote {
                region: r.region.clone(),
                down: matches!(r.verdict, Verdict::Down { .. }),
                observed_at: r.observed_at,
            })
            .collect(),
        Err(_) => return error(StatusCode::INTERNAL_SERVER_ERROR, "status unavailable"),
    };
    let answer = Vote {
        service: s.service.clone(),
        nonce: nonce.to_string(),
        signed_at: s.clock.now(),
        loop_age_ms: crate::core::time::millis(s.loop_age()),
        regions,
    };
    let Ok(body) = serde_json::to_vec(&answer) else {
        return error(StatusCode::INTERNAL_SERVER_ERROR, "cannot encode the vote");
    };
    let signature = key.sign_answer(&body);
    (
        [
            (header::CONTENT_TYPE, "application/json".to_string()),
            (
                header::HeaderName::from_static(vote::SIGNATURE_HEADER),
                signature,
            ),
        ],
        body,
    )
        .into_response()
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
    responses(ControlReplies),
)]
async fn failover(State(s): State<ApiState>, Authed(b, by): Authed<FailoverBody>) -> Response {
    let cmd = OperatorCommand::Failover {
        to: b.to,
        allow_data_loss: b.allow_data_loss,
        by,
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
    responses(ControlReplies),
)]
async fn failback(State(s): State<ApiState>, Authed(b, by): Authed<FailbackBody>) -> Response {
    let cmd = OperatorCommand::Failback { by, note: b.note };
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
    responses(ControlReplies),
)]
async fn pause(State(s): State<ApiState>, Authed(b, by): Authed<PauseBody>) -> Response {
    let reason = if b.reason.trim().is_empty() {
        "no reason given".to_string()
    } else {
        b.reason
    };
    send(&s, operator(OperatorCommand::Pause { by, reason })).await
}

/// Resume a paused controller.
#[utoipa::path(post, path = "/v1/resume", tag = "control", security(("bearer" = [])),
    request_body(content = ResumeBody, description = "Every field may be left out (an empty body means every field's default)."),
    responses(ControlReplies),
)]
async fn resume(State(s): State<ApiState>, Authed(_, by): Authed<ResumeBody>) -> Response {
    send(&s, operator(OperatorCommand::Resume { by })).await
}

/// Approve the failover the controller holds for an operator.
#[utoipa::path(post, path = "/v1/approve", tag = "control", security(("bearer" = [])),
    request_body(content = ApproveBody, description = "Every field may be left out (an empty body means every field's default)."),
    responses(ControlReplies),
)]
async fn approve_hold(State(s): State<ApiState>, Authed(b, by): Authed<ApproveBody>) -> Response {
    let cmd = OperatorCommand::Approve {
        allow_data_loss: b.allow_data_loss,
        by,
    };
    send(&s, operator(cmd)).await
}

/// Approve the manual step a run waits at.
#[utoipa::path(post, path = "/v1/runs/{id}/approve", tag = "control", security(("bearer" = [])),
    params(("id" = String, Path, description = "The run's id, e.g. `fo-20261123-153012-7f3a`.")),
    request_body(content = ApproveBody, description = "Every field may be left out (an empty body means every field's default)."),
    responses(ControlReplies),
)]
async fn approve_run(
    State(s): State<ApiState>,
    Path(id): Path<String>,
    Authed(b, by): Authed<ApproveBody>,
) -> Response {
    let req = Request::ApproveRun {
        run: RunId(id),
        by,
        allow_data_loss: b.allow_data_loss,
    };
    send(&s, req).await
}

/// Abort an unfinished run (a reason is required); it goes in the audit trail.
#[utoipa::path(post, path = "/v1/runs/{id}/abort", tag = "control", security(("bearer" = [])),
    params(("id" = String, Path, description = "The run's id, e.g. `fo-20261123-153012-7f3a`.")),
    request_body(content = AbortBody, description = "Every field may be left out (an empty body means every field's default)."),
    responses(ControlReplies),
)]
async fn abort_run(
    State(s): State<ApiState>,
    Path(id): Path<String>,
    Authed(b, by): Authed<AbortBody>,
) -> Response {
    if b.reason.trim().is_empty() {
        return error(
            StatusCode::BAD_REQUEST,
            "an abort needs a reason: it is recorded in the journal",
        );
    }
    let req = Request::AbortRun {
        run: RunId(id),
        by,
        reason: b.reason,
    };
    send(&s, req).await
}
