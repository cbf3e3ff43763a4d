//! Talking to a running daemon: found through the file it publishes beside the journal,
//! authenticated with the token it keeps there (or `$LIFEBOAT_API_TOKEN`). The one HTTP
//! client of the API, used by the operator's CLI and by the drills.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, bail};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::discovery;
use super::status::StatusView;
use crate::contract::{
    AbortBody, ApproveBody, FailbackBody, FailoverBody, PauseBody, Reply, ResumeBody,
};
use crate::core::controller::Decision;
use crate::core::ids::RunId;
use crate::journal::{RunDetail, RunRecord};

pub struct Client {
    pub url: String,
    pub pid: u32,
    /// On a daemon that runs several services: which one (its routes are under
    /// `/v1/services/NAME`).
    pub service: Option<String>,
    token: Option<String>,
    http: reqwest::Client,
    /// How long a call may take in all, trying again included.
    timeout: Duration,
}

/// The token to send: `$LIFEBOAT_API_TOKEN`, else the file the daemon wrote.
fn token_from(file: Option<&Path>) -> Option<String> {
    std::env::var("LIFEBOAT_API_TOKEN")
        .ok()
        .filter(|t| !t.trim().is_empty())
        .or_else(|| file.and_then(|f| std::fs::read_to_string(f).ok()))
        .map(|t| t.trim().to_string())
}

impl Client {
    /// The daemon acting on `journal`, if one runs.
    pub fn find(journal: &Path) -> Option<Client> {
        let info = discovery::find(journal)?;
        let token = token_from(info.token_file.as_deref());
        let mut c = Client::new(&info.url, info.pid, token).ok()?;
        c.service = info.service;
        Some(c)
    }

    /// The daemon running a fleet from `state_dir` (`run --policies`), if one runs.
    pub fn find_fleet(state_dir: &Path) -> Option<(Client, discovery::FleetPublished)> {
        let info = discovery::find_fleet(state_dir)?;
        let token = token_from(info.token_file.as_deref());
        let c = Client::new(&info.url, info.pid, token).ok()?;
        Some((c, info))
    }

    /// This client, addressing one service of a daemon that runs several.
    pub fn for_service(mut self, name: &str) -> Client {
        self.service = Some(name.to_string());
        self
    }

    /// Where a route of the single-service API is for this client's service.
    fn path(&self, path: &str) -> String {
        match (&self.service, path.strip_prefix("/v1/")) {
            (Some(s), Some(rest)) => format!("{}/v1/services/{s}/{rest}", self.url),
            _ => format!("{}{path}", self.url),
        }
    }

    /// Every service the daemon runs, one line each.
    pub async fn services(&self) -> anyhow::Result<Vec<crate::contract::ServiceLine>> {
        self.get_raw(&format!("{}/v1/services", self.url)).await
    }

    /// Asks the daemon to read its policies again.
    pub async fn reload(&self) -> anyhow::Result<crate::contract::ReloadReport> {
        self.post_raw(&format!("{}/v1/reload", self.url), &serde_json::json!({}))
            .await
    }

    /// A client of the daemon at `url` (pid for messages), with its control token.
    pub fn new(url: &str, pid: u32, token: Option<String>) -> anyhow::Result<Client> {
        let timeout = Duration::from_secs(35);
        let http = http(timeout)?;
        Ok(Client {
            url: url.trim_end_matches('/').to_string(),
            pid,
            service: None,
            token,
            http,
            timeout,
        })
    }

    /// The same client, giving up on any call after `timeout` (a stopped daemon must not
    /// hold its caller for the default 35 s).
    pub fn with_timeout(mut self, timeout: Duration) -> Client {
        if let Ok(http) = http(timeout) {
            self.http = http;
            self.timeout = timeout;
        }
        self
    }

    async fn get<T: DeserializeOwned>(&self, path: &str) -> anyhow::Result<T> {
        self.get_raw(&self.path(path)).await
    }

    async fn get_raw<T: DeserializeOwned>(&self, url: &str) -> anyhow::Result<T> {
        let mut req = self.http.get(url);
        // Beyond loopback the views need a token; on loopback it is ignored.
        if let Some(token) = &self.token {
            req = req.bearer_auth(token);
        }
        let r = send(req, self.timeout)
            .await
            .with_context(|| format!("reach the daemon at {}", self.url))?;
        let status = r.status();
        let path = url.strip_prefix(&self.url).unwrap_or(url);
        if !status.is_success() {
            let text = r.text().await.unwrap_or_default();
            let why = serde_json::from_str::<crate::contract::ErrorBody>(&text)
                .map(|e| e.error)
                .unwrap_or(text);
            bail!("the daemon answered {status} to GET {path}: {why}");
        }
        r.json()
            .await
            .with_context(|| format!("read the daemon's answer to GET {path}"))
    }

    pub async fn status(&self) -> anyhow::Result<StatusView> {
        self.get("/v1/status").await
    }

    pub async fn runs(&self) -> anyhow::Result<Vec<RunRecord>> {
        self.get("/v1/runs").await
    }

    pub async fn run(&self, id: &RunId) -> anyhow::Result<RunDetail> {
        self.get(&format!("/v1/runs/{id}")).await
    }

    pub async fn decisions(&self, limit: usize) -> anyhow::Result<Vec<Decision>> {
        self.get(&format!("/v1/decisions?limit={limit}")).await
    }

    pub async fn failover(&self, body: &FailoverBody) -> anyhow::Result<Reply> {
        self.post("/v1/failover", body).await
    }

    pub async fn failback(&self, body: &FailbackBody) -> anyhow::Result<Reply> {
        self.post("/v1/failback", body).await
    }

    pub async fn pause(&self, body: &PauseBody) -> anyhow::Result<Reply> {
        self.post("/v1/pause", body).await
    }

    pub async fn resume(&self, body: &ResumeBody) -> anyhow::Result<Reply> {
        self.post("/v1/resume", body).await
    }

    /// Approves the run, or with `None` a failover the daemon holds back.
    pub async fn approve(&self, run: Option<&RunId>, body: &ApproveBody) -> anyhow::Result<Reply> {
        match run {
            Some(id) => self.post(&format!("/v1/runs/{id}/approve"), body).await,
            None => self.post("/v1/approve", body).await,
        }
    }

    pub async fn abort(&self, run: &RunId, body: &AbortBody) -> anyhow::Result<Reply> {
        self.post(&format!("/v1/runs/{run}/abort"), body).await
    }

    /// A control call. A refusal is a normal answer (`Reply::Refused`), not an error.
    async fn post(&self, path: &str, body: &impl Serialize) -> anyhow::Result<Reply> {
        self.post_raw(&self.path(path), body).await
    }

    async fn post_raw<T: DeserializeOwned>(
        &self,
        url: &str,
        body: &impl Serialize,
    ) -> anyhow::Result<T> {
        let Some(token) = &self.token else {
            bail!(
                "the daemon's API token is not readable here; set LIFEBOAT_API_TOKEN (the daemon's --token-file) and try again"
            );
        };
        let path = url.strip_prefix(&self.url).unwrap_or(url);
        let r = send(
            self.http.post(url).bearer_auth(token).json(body),
            self.timeout,
        )
        .await
        .with_context(|| format!("reach the daemon at {}", self.url))?;
        let status = r.status();
        if status == reqwest::StatusCode::UNAUTHORIZED {
            bail!(
                "the daemon refused the token (HTTP 401); use the token it was started with (LIFEBOAT_API_TOKEN)"
            );
        }
        let text = r.text().await.unwrap_or_default();
        if (status == reqwest::StatusCode::METHOD_NOT_ALLOWED
            || status == reqwest::StatusCode::NOT_FOUND)
            && let Ok(e) = serde_json::from_str::<crate::contract::ErrorBody>(&text)
        {
            bail!("the daemon at {} refused: {}", self.url, e.error);
        }
        serde_json::from_str(&text)
            .with_context(|| format!("the daemon answered {status} to POST {path}: {text}"))
    }
}

/// How long a refused connection is tried again: a daemon publishes its address as it
/// starts each service and answers once every one has started (a fleet on etcd takes a
/// moment per service).
const STARTING: Duration = Duration::from_secs(15);

/// Sends `req`, trying again while the connection is refused (the daemon is starting; a
/// refused connection carried no request, so even a control call is safe to send again),
/// for at most `STARTING` or the client's `timeout`, whichever is shorter (a drill asking
/// a controller it killed must learn so within its own short timeout).
async fn send(
    req: reqwest::RequestBuilder,
    timeout: Duration,
) -> reqwest::Result<reqwest::Response> {
    let deadline = tokio::time::Instant::now() + STARTING.min(timeout);
    loop {
        let Some(attempt) = req.try_clone() else {
            return req.send().await;
        };
        match attempt.send().await {
            Err(e) if e.is_connect() && tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            other => return other,
        }
    }
}

/// The HTTP client of the API: no redirects followed (a token must not travel on).
fn http(timeout: Duration) -> reqwest::Result<reqwest::Client> {
    reqwest::Client::builder()
        .timeout(timeout)
        .redirect(reqwest::redirect::Policy::none())
        .build()
}
