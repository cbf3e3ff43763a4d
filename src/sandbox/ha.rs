//! The sandbox's controllers on etcd, for a policy with `[coordination] backend = "etcd"`
//! (policies/sandbox-ha.toml): a three-member etcd cluster on loopback, a controller in
//! each of the service's two regions and an observer in a third, each its own
//! `lifeboat run --node NAME` with its own journal and its own way to the services.
//!
//! Who reaches what, and through which fault proxy (hosted by the region servers, so a
//! drill switches them as it does the controller's):
//!
//! | node | the services | etcd |
//! |---|---|---|
//! | the controller in the secondary region (the leader while all is well: the placement rule keeps the leader away from the primary) | the controller proxies (`db`, `api`, …), as in the embedded sandbox | proxies `etcd-0..2` in its region |
//! | the controller in the primary region | directly | proxies `etcd-0..2` in its region |
//! | the observer | proxies `obs-db`, `obs-api`, … | directly |

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::Context;
use serde::{Deserialize, Serialize};

use super::etcd::{ClusterOptions, DetachedMember, EtcdCluster};
use super::moto;
use super::process::{self, Server, free_port};
use super::region::ProxyPorts;
use crate::core::model::{Coordination, Policy};

/// The services a controller reaches through proxies; the observer has its own set.
pub const SERVICE_PROXIES: [&str; 4] = ["db", "api", "workers", "cache"];

/// The observer's proxy in front of a service: `obs-db`, `obs-api`, ….
pub fn observer_proxy(service: &str) -> String {
    format!("obs-{service}")
}

/// A controller's proxy in front of etcd member `i`, in the controller's region.
pub fn etcd_proxy(i: usize) -> String {
    format!("etcd-{i}")
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Campaigns, acts while it leads, and votes.
    Controller,
    /// Probes and votes only (`run --observer`).
    Observer,
}

/// One `lifeboat run --node` of the sandbox.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Node {
    pub name: String,
    pub region: String,
    pub role: Role,
    pub pid: u32,
    /// Its API (`--listen`).
    pub port: u16,
    pub journal: PathBuf,
    pub log: PathBuf,
    /// The vars file it reads the ports from: its own view of the world.
    pub vars: PathBuf,
}

/// The HA part of a sandbox, as recorded in `sandbox.json`.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Ha {
    pub etcd: Vec<DetachedMember>,
    pub nodes: Vec<Node>,
}

impl Ha {
    /// etcd's client URLs, directly.
    pub fn endpoints(&self) -> Vec<String> {
        self.etcd
            .iter()
            .map(|m| format!("http://127.0.0.1:{}", m.client_port))
            .collect()
    }

    /// The member etcd has as raft leader, as the first running member that answers
    /// sees it.
    pub async fn raft_leader(&self) -> Option<usize> {
        let mut clients = Vec::new();
        for (m, url) in self.etcd.iter().zip(self.endpoints()) {
            let connect = etcd_client::Client::connect([url], None);
            let client = if process::alive(m.pid) {
                tokio::time::timeout(Duration::from_secs(1), connect)
                    .await
                    .ok()
                    .and_then(Result::ok)
            } else {
                None
            };
            clients.push(client);
        }
        super::etcd::raft_leader_of(clients).await.map(|(i, _)| i)
    }
}

/// Who runs where, from the policy: every observer it lists in one of the service's
/// regions is a controller there, any other is an observer. `None` for the embedded
/// backend.
pub fn layout(policy: &Policy) -> Option<Vec<(String, String, Role)>> {
    let Coordination::Etcd(etcd) = &policy.coordination else {
        return None;
    };
    let service_regions: Vec<&str> = policy.regions.serving().map(|r| r.as_str()).collect();
    Some(
        etcd.observers
            .iter()
            .map(|o| {
                let role = if service_regions.contains(&o.region.as_str()) {
                    Role::Controller
                } else {
                    Role::Observer
                };
                (o.name.clone(), o.region.clone(), role)
            })
            .collect(),
    )
}

/// Starts the three etcd members (etcd's default raft timing, pre-vote on), detached.
pub async fn start_etcd(dir: &Path) -> anyhow::Result<Vec<DetachedMember>> {
    let cluster = EtcdCluster::start(&dir.join("etcd"), ClusterOptions::sandbox())
        .await
        .context("start the sandbox's etcd cluster")?;
    Ok(cluster.detach())
}

/// The proxies the HA topology adds to `region`'s server: the observer's way to its
/// services (`upstreams`: service proxy name → the service's port) and, when a controller
/// lives in `region`, that controller's way to each etcd member.
pub fn extra_proxies(
    region: &str,
    nodes: &[(String, String, Role)],
    upstreams: &BTreeMap<String, u16>,
    etcd: &[DetachedMember],
) -> anyhow::Result<BTreeMap<String, ProxyPorts>> {
    let mut out = BTreeMap::new();
    for (service, upstream) in upstreams {
        out.insert(
            observer_proxy(service),
            ProxyPorts {
                listen: free_port()?,
                upstream: *upstream,
            },
        );
    }
    if nodes
        .iter()
        .any(|(_, r, role)| r == region && *role == Role::Controller)
    {
        for (i, m) in etcd.iter().enumerate() {
            out.insert(
                etcd_proxy(i),
                ProxyPorts {
                    listen: free_port()?,
                    upstream: m.client_port,
                },
            );
        }
    }
    Ok(out)
}

/// The `etcd_N_port` lines of a node's vars file: through its region's proxies for a
/// controller, directly for the observer.
pub fn etcd_vars(
    role: Role,
    proxies: Option<&BTreeMap<String, ProxyPorts>>,
    etcd: &[DetachedMember],
) -> String {
    let mut s = String::new();
    for (i, m) in etcd.iter().enumerate() {
        let port = match (role, proxies.and_then(|p| p.get(&etcd_proxy(i)))) {
            (Role::Controller, Some(p)) => p.listen,
            _ => m.client_port,
        };
        s.push_str(&format!("etcd_{i}_port = {port}\n"));
    }
    s
}

/// Starts one node and waits until its API answers.
pub fn start_node(
    dir: &Path,
    policy: &Path,
    name: &str,
    region: &str,
    role: Role,
    vars: PathBuf,
    journal: PathBuf,
) -> anyhow::Result<Node> {
    let port = free_port()?;
    let log = dir.join(format!("{name}.log"));
    let mut cmd = Command::new(std::env::current_exe().context("find the lifeboat binary")?);
    cmd.arg("run")
        .arg("--policy")
        .arg(policy)
        .args(["--node", name])
        .arg("--vars")
        .arg(&vars)
        .arg("--journal")
        .arg(&journal)
        .arg("--listen")
        .arg(format!("127.0.0.1:{port}"))
        .env("AWS_ACCESS_KEY_ID", moto::ACCESS_KEY_ID)
        .env("AWS_SECRET_ACCESS_KEY", moto::SECRET_ACCESS_KEY)
        .env("LIFEBOAT_API_TOKEN", "");
    if role == Role::Observer {
        cmd.arg("--observer");
    }
    let what = match role {
        Role::Controller => format!("controller {name} ({region})"),
        Role::Observer => format!("observer {name} ({region})"),
    };
    let server = Server::spawn(&what, cmd, port, log.clone(), Duration::from_secs(20))?;
    Ok(Node {
        name: name.to_string(),
        region: region.to_string(),
        role,
        pid: server.detach(),
        port,
        journal,
        log,
        vars,
    })
}

/// Stops the nodes, then the etcd members.
pub fn stop(ha: &Ha) {
    for n in &ha.nodes {
        process::stop_pid(n.pid, Duration::from_secs(5));
    }
    for m in &ha.etcd {
        process::stop_pid(m.pid, Duration::from_secs(3));
    }
}
