#![allow(dead_code)]

//! A `lifeboat run` process under test: stopped when dropped, and found, as the CLI finds
//! it, through the file it publishes beside its journal.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use lifeboat::daemon::status::StatusView;

pub struct Daemon {
    pub child: Child,
    pub url: String,
    /// The token the daemon generated, when it did (empty when it was given one).
    pub token: String,
    pub journal: PathBuf,
    pub log: PathBuf,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Daemon {
    /// Starts `run` (a `lifeboat run …` command) with its stderr in `log`, and waits, at
    /// most 30 s, until it publishes its API beside `journal`. A daemon that does not is
    /// a failed test showing its log.
    pub fn start(mut run: Command, journal: &Path, log: &Path) -> Daemon {
        run.stdout(Stdio::null())
            .stderr(std::fs::File::create(log).expect("create the daemon's log"));
        // Owned by a `Daemon` at once, so a failed assertion below still stops it.
        let mut d = Daemon {
            child: run.spawn().expect("start lifeboat run"),
            url: String::new(),
            token: String::new(),
            journal: journal.to_path_buf(),
            log: log.to_path_buf(),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(p) = lifeboat::daemon::discovery::find(journal) {
                d.url = p.url;
                if let Some(f) = p.token_file {
                    d.token = std::fs::read_to_string(f)
                        .expect("read the generated token")
                        .trim()
                        .to_string();
                }
                return d;
            }
            assert!(
                Instant::now() < deadline,
                "the daemon did not publish its API beside {}; its log:\n{}",
                journal.display(),
                d.log_tail()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The end of its log, for a failure message.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let start = text.len().saturating_sub(6000);
        text[text.ceil_char_boundary(start)..].to_string()
    }
}

impl Daemon {
    /// Its `GET /v1/status`.
    pub async fn status(&self) -> StatusView {
        fetch(&self.url).await
    }

    /// Polls its status until `ok` holds, at most `within`; a test that times out shows
    /// the last status and the end of the daemon's log.
    pub async fn until(
        &self,
        what: &str,
        within: Duration,
        ok: impl Fn(&StatusView) -> bool,
    ) -> StatusView {
        poll(&self.url, what, within, ok, || {
            format!("\nits log:\n{}", self.log_tail())
        })
        .await
    }
}

/// `GET URL/v1/status` as JSON, for tests that poke at single fields.
pub async fn status_json(url: &str) -> serde_json::Value {
    fetch(url).await
}

/// Polls `URL/v1/status` until `ok` holds, at most `within`.
pub async fn until_json(
    url: &str,
    what: &str,
    within: Duration,
    ok: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    poll(url, what, within, ok, String::new).await
}

async fn fetch<T: serde::de::DeserializeOwned>(url: &str) -> T {
    reqwest::get(format!("{url}/v1/status"))
        .await
        .expect("GET /v1/status")
        .json()
        .await
        .expect("a status view")
}

async fn poll<T: serde::de::DeserializeOwned + std::fmt::Debug>(
    url: &str,
    what: &str,
    within: Duration,
    ok: impl Fn(&T) -> bool,
    context: impl Fn() -> String,
) -> T {
    let deadline = Instant::now() + within;
    loop {
        let v: T = fetch(url).await;
        if ok(&v) {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: not within {within:?}; status {v:#?}{}",
            context()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
