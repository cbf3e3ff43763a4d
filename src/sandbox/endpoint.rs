//! A region's API and worker endpoints with fault switches: healthy, failing (500), slow,
//! hanging, answering garbage, flapping, or with stopped heartbeats. Tests drive it
//! in-process; the sandbox runs it as a server and drills flip the switches over HTTP.
//!
//! Routes: `GET /health` (the API's health, shaped like a real service's report),
//! `GET /heartbeat` (the workers' newest heartbeat), `GET /fault` and `POST /fault`
//! (read or set the switches: `{"mode": "healthy|error|slow|hang|garbage|flap",
//! "delay_ms": 800, "heartbeats": false}`).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::extract::{ConnectInfo, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

use super::proxy::Peers;

/// How the API answers `/health`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    #[default]
    Healthy,
    /// 500 with an error body.
    Error,
    /// Healthy, after `delay_ms`.
    Slow,
    /// Never answers.
    Hang,
    /// 200 with a body that is not JSON.
    Garbage,
    /// Fails two requests, passes the third, and again: by each caller's own request
    /// count, so no caller ever sees three failures in a row. Requests that come through
    /// the sandbox's proxies (the controller's) are counted apart from the others (the
    /// witness's, a client's), and a runbook step's or readiness check's look (user agent
    /// `(runbook)`) apart from the probe rounds (`(probe)`).
    Flap,
}

/// Which of the two flap counters a request advances.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Caller {
    /// Through one of the region's fault proxies: the controller.
    Proxied,
    /// Straight to the endpoint: the witness, clients, tests.
    Direct,
}

/// The switches, as `GET /fault` shows them and `POST /fault` sets them (fields left out
/// of a POST keep their value).
#[derive(Clone, Debug, Serialize, Deserialize, Default)]
pub struct Switches {
    #[serde(default)]
    pub mode: Option<Mode>,
    #[serde(default)]
    pub delay_ms: Option<u64>,
    #[serde(default)]
    pub heartbeats: Option<bool>,
}

#[derive(Debug)]
struct Inner {
    mode: Mode,
    delay: Duration,
    heartbeats: bool,
    /// When heartbeats stopped; the newest heartbeat then stays at this time.
    stopped_at: f64,
    /// `/health` requests seen in `Flap` mode, per caller (proxied, direct) and per
    /// kind (probe rounds, other looks: a runbook step's or a readiness check's), so each
    /// probe loop sees exactly fail, fail, ok whatever else asks in between.
    flap_counts: [[u64; 2]; 2],
}

/// Whether a request is a lifeboat probe round (its user agent ends `(probe)`), not a
/// runbook step's or readiness check's look (`(runbook)`) or anyone else's.
fn probe_round(headers: &axum::http::HeaderMap) -> bool {
    headers
        .get(axum::http::header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ua| ua.starts_with("lifeboat/") && ua.ends_with("(probe)"))
}

/// The shared state behind one region's endpoint.
#[derive(Debug)]
pub struct Faults {
    region: String,
    inner: Mutex<Inner>,
    /// The proxies' upstream connections, to tell the controller's requests apart.
    peers: Peers,
}

fn now_secs() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

impl Faults {
    pub fn new(region: &str) -> Arc<Faults> {
        Faults::with_peers(region, Peers::default())
    }

    /// Knowing which connections come through the region's proxies (`Peers` they fill).
    pub fn with_peers(region: &str, peers: Peers) -> Arc<Faults> {
        Arc::new(Faults {
            region: region.to_string(),
            inner: Mutex::new(Inner {
                mode: Mode::Healthy,
                delay: Duration::from_millis(800),
                heartbeats: true,
                stopped_at: 0.0,
                flap_counts: [[0; 2]; 2],
            }),
            peers,
        })
    }

    /// Who is calling, from the connection's peer address.
    pub fn caller(&self, peer: Option<SocketAddr>) -> Caller {
        match peer {
            Some(p) if self.peers.proxied(&p) => Caller::Proxied,
            _ => Caller::Direct,
        }
    }

    /// In `Flap` mode, whether this request of `caller` fails (its 1st and 2nd of every 3
    /// of its kind: a probe round, or another look).
    fn flap_fails(&self, caller: Caller, round: bool) -> bool {
        let mut i = self.lock();
        let n = &mut i.flap_counts[caller as usize][usize::from(!round)];
        let fails = *n % 3 != 2;
        *n += 1;
        fails
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves plain data behind; keep serving it.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn set_mode(&self, mode: Mode) {
        let mut i = self.lock();
        if mode == Mode::Flap && i.mode != Mode::Flap {
            i.flap_counts = [[0; 2]; 2];
        }
        i.mode = mode;
    }

    pub fn set_delay(&self, delay: Duration) {
        self.lock().delay = delay;
    }

    pub fn set_heartbeats(&self, on: bool) {
        let mut i = self.lock();
        if i.heartbeats && !on {
            i.stopped_at = now_secs();
        }
        i.heartbeats = on;
    }

    pub fn apply(&self, s: &Switches) {
        if let Some(m) = s.mode {
            self.set_mode(m);
        }
        if let Some(d) = s.delay_ms {
            self.set_delay(Duration::from_millis(d));
        }
        if let Some(h) = s.heartbeats {
            self.set_heartbeats(h);
        }
    }

    pub fn switches(&self) -> Switches {
        let i = self.lock();
        Switches {
            mode: Some(i.mode),
            delay_ms: Some(i.delay.as_millis() as u64),
            heartbeats: Some(i.heartbeats),
        }
    }
}

/// The routes, over `faults`.
pub fn router(faults: Arc<Faults>) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/heartbeat", get(heartbeat))
        .route("/fault", get(get_fault).post(post_fault))
        .with_state(faults)
}

async fn health(
    State(f): State<Arc<Faults>>,
    headers: axum::http::HeaderMap,
    ext: axum::http::Extensions,
) -> Response {
    let (mode, delay) = {
        let i = f.lock();
        (i.mode, i.delay)
    };
    let peer = ext.get::<ConnectInfo<SocketAddr>>().map(|c| c.0);
    match mode {
        Mode::Healthy => healthy(&f.region),
        Mode::Flap if f.flap_fails(f.caller(peer), probe_round(&headers)) => failing(&f.region),
        Mode::Flap => healthy(&f.region),
        Mode::Slow => {
            tokio::time::sleep(delay).await;
            healthy(&f.region)
        }
        Mode::Error => failing(&f.region),
        Mode::Hang => {
            std::future::pending::<()>().await;
            StatusCode::OK.into_response()
        }
        Mode::Garbage => (
            StatusCode::OK,
            [("content-type", "application/json")],
            "\u{1}<html>not json{{",
        )
            .into_response(),
    }
}

fn failing(region: &str) -> Response {
    (
        StatusCode::INTERNAL_SERVER_ERROR,
        Json(serde_json::json!({"status": "error", "region": region, "database": "unreachable"})),
    )
        .into_response()
}

fn healthy(region: &str) -> Response {
    Json(serde_json::json!({"status": "ok", "region": region, "database": "ok", "cache": "ok"}))
        .into_response()
}

async fn heartbeat(State(f): State<Arc<Faults>>) -> Response {
    let (beating, stopped_at) = {
        let i = f.lock();
        (i.heartbeats, i.stopped_at)
    };
    let last = if beating { now_secs() } else { stopped_at };
    Json(serde_json::json!({"region": f.region, "last_heartbeat": last, "workers": if beating { 2 } else { 0 }})).into_response()
}

async fn get_fault(State(f): State<Arc<Faults>>) -> Json<Switches> {
    Json(f.switches())
}

async fn post_fault(State(f): State<Arc<Faults>>, Json(s): Json<Switches>) -> Json<Switches> {
    f.apply(&s);
    Json(f.switches())
}

/// Serves `faults` on 127.0.0.1:`port` (0 picks a free port). Returns the bound port and
/// the task serving it; abort the task to stop.
pub async fn spawn(
    faults: Arc<Faults>,
    port: u16,
) -> anyhow::Result<(u16, tokio::task::JoinHandle<()>)> {
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    let port = listener.local_addr()?.port();
    let task = tokio::spawn(async move {
        let app = router(faults).into_make_service_with_connect_info::<SocketAddr>();
        let _ = axum::serve(listener, app).await;
    });
    Ok((port, task))
}
