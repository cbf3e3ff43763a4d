//! Talking to a running daemon: found through the file it publishes beside the journal,
//! authenticated with the token it keeps there (or `$LIFEBOAT_API_TOKEN`).

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, bail};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::daemon::discovery;
use crate::daemon::engine::Reply;
use crate::daemon::status::StatusView;
use crate::journal::{RunDetail, RunRecord};

pub struct Client {
    pub url: String,
    pub pid: u32,
    token: Option<String>,
    http: reqwest::Client,
}

impl Client {
    /// The daemon acting on `journal`, if one runs.
    pub fn find(journal: &Path) -> Option<Client> {
        let info = discovery::find(journal)?;
        let token = std::env::var("LIFEBOAT_API_TOKEN")
            .ok()
            .or_else(|| {
                info.token_file
                    .as_ref()
                    .and_then(|f| std::fs::read_to_string(f).ok())
            })
            .map(|t| t.trim().to_string());
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(35))
            .build()
            .ok()?;
        Some(Client {
            url: info.url,
            pid: info.pid,
            token,
            http,
        })
    }

    async fn get<T: DeserializeOwned>(&self, path: &str) -> anyhow::Result<T> {
        let r = self
            .http
            .get(format!("{}{path}", self.url))
            .send()
            .await
            .with_context(|| format!("reach the daemon at {}", self.url))?;
        let status = r.status();
        if !status.is_success() {
            bail!(
                "the daemon answered {status}: {}",
                r.text().await.unwrap_or_default()
            );
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

    pub async fn run(&self, id: &str) -> anyhow::Result<RunDetail> {
        self.get(&format!("/v1/runs/{id}")).await
    }

    /// A control call. A refusal is a normal answer (`Reply::Refused`), not an error.
    pub async fn post(&self, path: &str, body: &impl Serialize) -> anyhow::Result<Reply> {
        let Some(token) = &self.token else {
            bail!(
                "the daemon's API token is not readable here; set LIFEBOAT_API_TOKEN (the daemon's --token-file) and try again"
            );
        };
        let r = self
            .http
            .post(format!("{}{path}", self.url))
            .bearer_auth(token)
            .json(body)
            .send()
            .await
            .with_context(|| format!("reach the daemon at {}", self.url))?;
        let status = r.status();
        if status == reqwest::StatusCode::UNAUTHORIZED {
            bail!(
                "the daemon refused the token (HTTP 401); use the token it was started with (LIFEBOAT_API_TOKEN)"
            );
        }
        let text = r.text().await.unwrap_or_default();
        serde_json::from_str(&text).with_context(|| format!("the daemon answered {status}: {text}"))
    }
}
