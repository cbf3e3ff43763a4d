//! One sandbox region as a process: its API and worker endpoints (with fault switches),
//! an order-writing endpoint that commits to the region's own database, and the fault
//! proxies the controller reaches the region's services through.
//!
//! Clients (a drill's write load) talk to the API directly; the controller's probes and
//! steps go through the proxies. That split is what lets a drill cut the controller off
//! from a primary that clients can still reach.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use tokio::sync::Mutex;

use super::endpoint::{self, Faults};
use super::proxy::{Peers, Proxy, ProxyMode};

/// How one region server is wired, written by `sandbox up` and read by the process.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RegionConfig {
    pub region: String,
    /// The API, as clients reach it (writes and fault switches).
    pub api_port: u16,
    /// The workers' heartbeat endpoint.
    pub workers_port: u16,
    /// The region's PostgreSQL, as clients reach it.
    pub db_port: u16,
    pub db_password_file: PathBuf,
    /// Proxies: name → (port the controller uses, port of the real service).
    pub proxies: BTreeMap<String, ProxyPorts>,
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
pub struct ProxyPorts {
    pub listen: u16,
    pub upstream: u16,
}

struct Region {
    config: RegionConfig,
    proxies: BTreeMap<String, Proxy>,
    db: Mutex<Option<tokio_postgres::Client>>,
    password: String,
}

/// Serves the region until the process is stopped.
pub async fn serve(config: RegionConfig) -> anyhow::Result<()> {
    let password = std::fs::read_to_string(&config.db_password_file)
        .with_context(|| format!("read {}", config.db_password_file.display()))?
        .trim()
        .to_string();
    // The proxies record their upstream connections, so the endpoints can tell the
    // controller's requests (through a proxy) from the witness's and the clients'.
    let peers = Peers::default();
    let faults = Faults::with_peers(&config.region, peers.clone());
    let mut proxies = BTreeMap::new();
    for (name, ports) in &config.proxies {
        let p = Proxy::start_with(name, ports.listen, ports.upstream, peers.clone())
            .await
            .with_context(|| format!("start the {name} proxy on port {}", ports.listen))?;
        proxies.insert(name.clone(), p);
    }
    let region = Arc::new(Region {
        config: config.clone(),
        proxies,
        db: Mutex::new(None),
        password,
    });
    let api = endpoint::router(faults.clone()).merge(
        Router::new()
            .route("/orders", post(write_order))
            .route("/proxies", get(list_proxies))
            .route("/proxies/{name}", post(set_proxy))
            .with_state(region.clone()),
    );
    let api_listener = tokio::net::TcpListener::bind(("127.0.0.1", config.api_port)).await?;
    let workers_listener =
        tokio::net::TcpListener::bind(("127.0.0.1", config.workers_port)).await?;
    let workers = endpoint::router(faults);
    let api = api.into_make_service_with_connect_info::<std::net::SocketAddr>();
    let workers = workers.into_make_service_with_connect_info::<std::net::SocketAddr>();
    tokio::select! {
        r = axum::serve(api_listener, api) => r?,
        r = axum::serve(workers_listener, workers) => r?,
    }
    Ok(())
}

#[derive(Deserialize)]
struct Order {
    n: i64,
}

/// Inserts order `n` into this region's database; 201 only once it committed, so a
/// client can count exactly which writes were acknowledged.
async fn write_order(State(r): State<Arc<Region>>, Json(order): Json<Order>) -> Response {
    let mut db = r.db.lock().await;
    if db.as_ref().is_none_or(|c| c.is_closed()) {
        *db = connect(&r.config, &r.password).await.ok();
    }
    let Some(client) = db.as_ref() else {
        return (StatusCode::SERVICE_UNAVAILABLE, "database unreachable").into_response();
    };
    let params: [&(dyn tokio_postgres::types::ToSql + Sync); 2] = [&order.n, &r.config.region];
    let insert = client.execute("INSERT INTO orders (n, region) VALUES ($1, $2)", &params);
    match tokio::time::timeout(Duration::from_secs(2), insert).await {
        Ok(Ok(_)) => (
            StatusCode::CREATED,
            Json(serde_json::json!({"n": order.n, "region": r.config.region})),
        )
            .into_response(),
        Ok(Err(e)) => {
            let msg = crate::clients::pg::describe(&e);
            if e.is_closed() {
                *db = None;
            }
            (StatusCode::SERVICE_UNAVAILABLE, msg).into_response()
        }
        Err(_) => {
            *db = None;
            (StatusCode::GATEWAY_TIMEOUT, "database write timed out").into_response()
        }
    }
}

async fn connect(c: &RegionConfig, password: &str) -> anyhow::Result<tokio_postgres::Client> {
    let mut config = tokio_postgres::Config::new();
    config
        .host("127.0.0.1")
        .port(c.db_port)
        .user(super::postgres::APP_USER)
        .dbname(super::postgres::APP_DATABASE)
        .password(password)
        .connect_timeout(Duration::from_secs(1));
    let (client, conn) = tokio::time::timeout(
        Duration::from_secs(2),
        config.connect(tokio_postgres::NoTls),
    )
    .await??;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(client)
}

async fn list_proxies(State(r): State<Arc<Region>>) -> Json<BTreeMap<String, ProxyMode>> {
    Json(
        r.proxies
            .iter()
            .map(|(n, p)| (n.clone(), p.mode()))
            .collect(),
    )
}

async fn set_proxy(
    State(r): State<Arc<Region>>,
    Path(name): Path<String>,
    Json(mode): Json<ProxyMode>,
) -> Response {
    match r.proxies.get(&name) {
        Some(p) => {
            p.set_mode(mode);
            Json(mode).into_response()
        }
        None => {
            let names: Vec<&str> = r.proxies.keys().map(String::as_str).collect();
            (
                StatusCode::NOT_FOUND,
                format!("no proxy `{name}`; this region has: {}", names.join(", ")),
            )
                .into_response()
        }
    }
}
