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
    /// most 30 s, until it publishes its API beside `journal` and answers there. A daemon
    /// that does not is a failed test showing its log.
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
            if let Some(p) = lifeboat::daemon::discovery::find(journal)
                && answers(&p.url)
            {
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

/// Whether the daemon at `url` accepts a connection: it publishes its address as it
/// starts each service and listens once every one has started.
fn answers(url: &str) -> bool {
    url.strip_prefix("http://")
        .and_then(|a| a.parse::<std::net::SocketAddr>().ok())
        .is_some_and(|a| {
            std::net::TcpStream::connect_timeout(&a, Duration::from_millis(200)).is_ok()
        })
}

impl Daemon {
    /// Its `GET /v1/status`.
    pub async fn status(&self) -> StatusView {
        fetch(&format!("{}/v1/status", self.url)).await
    }

    /// Polls its status until `ok` holds, at most `within`; a test that times out shows
    /// the last status and the end of the daemon's log.
    pub async fn until(
        &self,
        what: &str,
        within: Duration,
        ok: impl Fn(&StatusView) -> bool,
    ) -> StatusView {
        self.until_at(&format!("{}/v1/status", self.url), what, within, ok)
            .await
    }

    /// `until` for one service of a daemon started with `--policies`.
    pub async fn until_service(
        &self,
        service: &str,
        what: &str,
        within: Duration,
        ok: impl Fn(&StatusView) -> bool,
    ) -> StatusView {
        let url = format!("{}/v1/services/{service}/status", self.url);
        self.until_at(&url, what, within, ok).await
    }

    async fn until_at(
        &self,
        status_url: &str,
        what: &str,
        within: Duration,
        ok: impl Fn(&StatusView) -> bool,
    ) -> StatusView {
        poll(status_url, what, within, ok, || {
            format!("\nits log:\n{}", self.log_tail())
        })
        .await
    }
}

/// `GET URL/v1/status` as JSON, for tests that poke at single fields.
pub async fn status_json(url: &str) -> serde_json::Value {
    fetch(&format!("{url}/v1/status")).await
}

/// Polls `URL/v1/status` until `ok` holds, at most `within`.
pub async fn until_json(
    url: &str,
    what: &str,
    within: Duration,
    ok: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    poll(&format!("{url}/v1/status"), what, within, ok, String::new).await
}

/// `GET` a status URL, as JSON.
async fn fetch<T: serde::de::DeserializeOwned>(status_url: &str) -> T {
    reqwest::get(status_url)
        .await
        .expect("GET the status")
        .json()
        .await
        .expect("a status view")
}

/// Polls a status URL until `ok` holds, at most `within`.
async fn poll<T: serde::de::DeserializeOwned + std::fmt::Debug>(
    status_url: &str,
    what: &str,
    within: Duration,
    ok: impl Fn(&T) -> bool,
    context: impl Fn() -> String,
) -> T {
    let deadline = Instant::now() + within;
    loop {
        let v: T = fetch(status_url).await;
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

/// A policy for `service` on an etcd cluster at `endpoints` (members in three regions,
/// the observers ctl-a, ctl-b and obs-c), with `access` (TLS and login fields, or
/// nothing) in its `[coordination]` and `rest` (detection, targets, probes, runbooks)
/// after it. Command steps may write `{effects}`, a file in `dir`.
pub fn etcd_policy(
    dir: &Path,
    service: &str,
    endpoints: &[String],
    access: &str,
    rest: &str,
) -> PathBuf {
    let regions = ["us-east-1", "us-west-2", "eu-west-1"];
    let members: Vec<String> = endpoints
        .iter()
        .zip(regions)
        .map(|(url, region)| format!("{{ url = \"{url}\", region = \"{region}\" }}"))
        .collect();
    let effects = dir.join("effects");
    let text = format!(
        r#"
[service]
name = "{service}"

[regions]
primary = "us-east-1"
secondaries = ["us-west-2"]

[coordination]
backend = "etcd"
cluster = "test"
lease_ttl = "3s"
safety_margin = "1s"
members = [{members}]
{access}
observers = [
  {{ name = "ctl-a", region = "us-west-2" }},
  {{ name = "ctl-b", region = "eu-west-1" }},
  {{ name = "obs-c", region = "us-east-1" }},
]
{rest}"#,
        members = members.join(", "),
        rest = rest.replace("{effects}", &effects.display().to_string()),
    );
    let path = dir.join("policy.toml");
    std::fs::write(&path, text).expect("write policy");
    path
}

/// Manual mode, one command probe, and three command steps: the first and the last
/// leave a line in `{effects}`, the second takes 3 s (long enough to kill a leader in).
pub const THREE_STEPS: &str = r#"
[detection]
interval = "500ms"
timeout = "200ms"
mode = "manual"

[readiness]
every = "1d"

[[probes]]
name = "alive"
component = "api"
kind = "command"
run = ["true"]
regions = ["us-east-1", "us-west-2"]

[[failover.steps]]
name = "first"
kind = "command"
run = ["sh", "-c", "echo first >> {effects}"]

[[failover.steps]]
name = "wait"
kind = "command"
run = ["sleep", "3"]

[[failover.steps]]
name = "third"
kind = "command"
run = ["sh", "-c", "echo third >> {effects}"]

[[failback.steps]]
name = "healthy"
kind = "wait_healthy"
region = "@to"
successes = 1
"#;

/// `lifeboat run --policy POLICY --node NODE` with its own journal and log in `dir`, as
/// on its own host, and `extra` arguments.
pub fn run_node(policy: &Path, node: &str, dir: &Path, extra: &[&std::ffi::OsStr]) -> Daemon {
    let journal = dir.join(format!("{node}.db"));
    let mut c = Command::new(env!("CARGO_BIN_EXE_lifeboat"));
    c.args(["run", "--policy"])
        .arg(policy)
        .args(["--node", node, "--journal"])
        .arg(&journal)
        .args(extra)
        .env("LIFEBOAT_API_TOKEN", "");
    Daemon::start(c, &journal, &dir.join(format!("{node}.log")))
}
