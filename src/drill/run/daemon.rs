//! The controllers under test and how the drill talks to them: the one daemon the drill
//! starts on an embedded policy, or, on an etcd policy, the sandbox's controllers and
//! observer, of which the drill always asks the one that leads.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::core::controller::Leadership;
use crate::core::ids::RunId;
use crate::daemon::client::Client;
use crate::daemon::status::StatusView;
use crate::journal::{RunDetail, RunRecord};
use crate::sandbox::ha::{Ha, Role};

/// One `lifeboat run` the drill watches.
pub struct Node {
    pub name: String,
    pub region: String,
    pub role: Role,
    pub pid: u32,
    pub api: Client,
    /// Only for the daemon the drill started itself (stopped when dropped).
    child: Option<Child>,
}

/// The daemon under test, or the HA sandbox's nodes; a daemon the drill started is
/// stopped (SIGTERM, then SIGKILL) when this is dropped.
pub struct Daemon {
    pub nodes: Vec<Node>,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        for n in &mut self.nodes {
            if let Some(mut c) = n.child.take() {
                crate::sandbox::process::stop_pid(c.id(), Duration::from_secs(10));
                let _ = c.wait();
            }
        }
    }
}

/// How long the drill waits for one node's answer: a stopped (SIGSTOP) node must not
/// hold up the questions to the others.
const ASK: Duration = Duration::from_secs(2);

impl Daemon {
    /// Starts `lifeboat run` on a fresh journal and waits until it publishes its API.
    pub async fn start(
        bin: &Path,
        policy: &Path,
        journal: &Path,
        log: &Path,
    ) -> anyhow::Result<Daemon> {
        let _ = std::fs::remove_file(journal);
        let out =
            std::fs::File::create(log).with_context(|| format!("create {}", log.display()))?;
        let child = Command::new(bin)
            .args(["run", "--policy"])
            .arg(policy)
            .env("AWS_ACCESS_KEY_ID", crate::sandbox::moto::ACCESS_KEY_ID)
            .env(
                "AWS_SECRET_ACCESS_KEY",
                crate::sandbox::moto::SECRET_ACCESS_KEY,
            )
            .env("LIFEBOAT_API_TOKEN", "")
            .stdout(Stdio::null())
            .stderr(out)
            .spawn()
            .context("start the daemon")?;
        let published = crate::daemon::discovery::api_path(journal);
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(api) = Client::find(journal) {
                return Ok(Daemon {
                    nodes: vec![Node {
                        name: "controller".into(),
                        region: String::new(),
                        role: Role::Controller,
                        pid: child.id(),
                        api,
                        child: Some(child),
                    }],
                });
            }
            if Instant::now() > deadline {
                bail!(
                    "the daemon did not publish {} within 20s; see {}",
                    published.display(),
                    log.display()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The HA sandbox's controllers and observer, which the sandbox started.
    pub fn of_sandbox(ha: &Ha) -> anyhow::Result<Daemon> {
        let mut nodes = Vec::new();
        for n in &ha.nodes {
            // Found through its journal, which also gives the control token it generated.
            let api = Client::find(&n.journal)
                .with_context(|| {
                    format!(
                        "{} published no API beside {}; see {}",
                        n.name,
                        n.journal.display(),
                        n.log.display()
                    )
                })?
                .with_timeout(ASK);
            nodes.push(Node {
                name: n.name.clone(),
                region: n.region.clone(),
                role: n.role,
                pid: n.pid,
                api,
                child: None,
            });
        }
        Ok(Daemon { nodes })
    }

    pub fn is_ha(&self) -> bool {
        self.nodes.len() > 1
    }

    pub fn controllers(&self) -> impl Iterator<Item = &Node> {
        self.nodes.iter().filter(|n| n.role == Role::Controller)
    }

    pub fn node(&self, name: &str) -> Option<&Node> {
        self.nodes.iter().find(|n| n.name == name)
    }

    /// The controller that acts now, with its status: the only one on an embedded
    /// policy; on etcd the one whose status says it leads (none during a handover).
    pub async fn leader(&self) -> Option<(&Node, StatusView)> {
        for n in self.controllers() {
            if let Ok(v) = n.api.status().await
                && (!self.is_ha() || matches!(v.leadership, Leadership::Leading { .. }))
            {
                return Some((n, v));
            }
        }
        None
    }

    /// The acting controller's client, or (while none leads) the first controller's.
    pub async fn api(&self) -> &Client {
        match self.leader().await {
            Some((n, _)) => &n.api,
            None => &self.nodes[0].api,
        }
    }

    /// The acting controller's status; while none leads, the first that answers (a
    /// follower's view of the world is as good for waiting on it).
    pub async fn status(&self) -> anyhow::Result<StatusView> {
        if let Some((_, v)) = self.leader().await {
            return Ok(v);
        }
        let mut last = None;
        for n in self.controllers() {
            match n.api.status().await {
                Ok(v) => return Ok(v),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| anyhow::anyhow!("no controller answers")))
    }

    pub async fn runs(&self) -> anyhow::Result<Vec<RunRecord>> {
        self.api().await.runs().await
    }

    pub async fn run(&self, id: &RunId) -> anyhow::Result<RunDetail> {
        self.api().await.run(id).await
    }

    /// The URLs of the controllers, for the status watcher.
    pub fn urls(&self) -> Vec<String> {
        self.controllers().map(|n| n.api.url.clone()).collect()
    }
}
