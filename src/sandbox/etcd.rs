//! A real etcd cluster on loopback for the coordination tests, benchmarks and (later)
//! the sandbox: N members (3 by default) on free ports, data in a directory the caller
//! owns, `--unsafe-no-fsync` (no test here is about durability) and `--pre-vote=true`
//! (etcd 3.4 defaults to false, and a healed partition then forces a needless election).
//! Members are killed when the value is dropped.
//!
//! With [`EtcdCluster::start_secure`] the members serve their client URLs over TLS and
//! ask every client for a certificate (`--client-cert-auth`); [`EtcdCluster::enable_auth`]
//! then turns on etcd's users and roles.
//!
//! Faults: [`EtcdCluster::kill`] (SIGKILL) and [`EtcdCluster::restart`] a member;
//! [`EtcdCluster::isolate`] cuts one member off from the others (a gate in front of each
//! peer port, `peer_gate.rs`); a [`ClientLink`] puts a fault proxy in front of each
//! member for one client, so one client can be partitioned from the whole cluster.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use tokio::time::Instant;

use super::peer_gate::{self, PeerNet};
use super::process::{find_program, free_port, tail};
use super::proxy::{Proxy, ProxyMode};

/// Raft timing of the members.
#[derive(Clone, Copy, Debug)]
pub struct ClusterOptions {
    pub members: usize,
    pub heartbeat: Duration,
    pub election: Duration,
    /// Peers reach each other through in-process gates, so [`EtcdCluster::isolate`]
    /// can cut one off. Without them the members outlive this process
    /// ([`EtcdCluster::detach`]), as the sandbox's do.
    pub gates: bool,
}

impl ClusterOptions {
    /// Short raft timeouts (heartbeat 50 ms, election 500 ms): healthy in about a second
    /// on an idle machine, but a busy one starves the members into needless elections,
    /// so the tests use [`Self::etcd_defaults`].
    pub fn fast() -> ClusterOptions {
        ClusterOptions {
            members: 3,
            heartbeat: Duration::from_millis(50),
            election: Duration::from_millis(500),
            gates: true,
        }
    }

    /// etcd's own defaults (heartbeat 100 ms, election 1 s), for measurements.
    pub fn etcd_defaults() -> ClusterOptions {
        ClusterOptions {
            members: 3,
            heartbeat: Duration::from_millis(100),
            election: Duration::from_millis(1000),
            gates: true,
        }
    }

    /// etcd's defaults, without gates: for the sandbox, whose members are detached.
    pub fn sandbox() -> ClusterOptions {
        ClusterOptions {
            gates: false,
            ..ClusterOptions::etcd_defaults()
        }
    }
}

/// A member left running by [`EtcdCluster::detach`].
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct DetachedMember {
    pub name: String,
    pub pid: u32,
    pub client_port: u16,
}

/// TLS on the members' client URLs (their peer URLs stay plain, behind the gates). The
/// files are the caller's: the tests make them with rcgen.
#[derive(Clone, Debug)]
pub struct Security {
    /// `--trusted-ca-file`: the CA every client certificate must be signed by.
    pub ca_file: PathBuf,
    /// `--cert-file` and `--key-file`: the members' certificate, for 127.0.0.1.
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
    /// The client certificate the cluster's own checks present. Its common name should be
    /// `root`: once authentication is on, etcd takes a token-less client for the user
    /// its certificate names.
    pub admin_cert_file: PathBuf,
    pub admin_key_file: PathBuf,
    /// `--auth-token-ttl`: how long a simple token lives unused (etcd's default 300 s).
    pub auth_token_ttl: Option<Duration>,
}

struct Member {
    name: String,
    client_port: u16,
    peer_port: u16,
    log: PathBuf,
    child: Option<Child>,
}

/// A running cluster.
pub struct EtcdCluster {
    dir: PathBuf,
    options: ClusterOptions,
    initial_cluster: String,
    token: String,
    gate_ports: Vec<u16>,
    net: Arc<PeerNet>,
    members: Vec<Member>,
    security: Option<Security>,
    /// From the first member's start until every member answered a linearizable read.
    pub healthy_after: Duration,
}

impl std::fmt::Debug for EtcdCluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EtcdCluster")
            .field("endpoints", &self.endpoints())
            .finish()
    }
}

/// The etcd binary: `$LIFEBOAT_ETCD`, else Debian's, else `etcd` on PATH.
pub fn etcd_program() -> PathBuf {
    find_program("LIFEBOAT_ETCD", &[PathBuf::from("/usr/bin/etcd")], "etcd")
}

impl EtcdCluster {
    /// Starts the members under `dir` and waits until all of them serve linearizable
    /// reads (at most 30 s). Must run inside a tokio runtime: the peer gates are tasks
    /// on it.
    ///
    /// Errors: etcd missing (with how to install it), a member that exits or never
    /// becomes healthy (with the tail of its log).
    pub async fn start(dir: &Path, options: ClusterOptions) -> anyhow::Result<EtcdCluster> {
        Self::launch(dir, options, None).await
    }

    /// [`Self::start`] with TLS and client certificates on the client URLs.
    pub async fn start_secure(
        dir: &Path,
        options: ClusterOptions,
        security: Security,
    ) -> anyhow::Result<EtcdCluster> {
        Self::launch(dir, options, Some(security)).await
    }

    /// Starts the cluster, on new ports again (at most three times) when a member found
    /// one of its ports taken: the ports are picked free, and another process (a
    /// concurrent test starting its own cluster) may bind the same one before the member
    /// does.
    async fn launch(
        dir: &Path,
        options: ClusterOptions,
        security: Option<Security>,
    ) -> anyhow::Result<EtcdCluster> {
        let mut attempt = 1;
        loop {
            match Self::launch_once(dir, options, security.clone()).await {
                Err(e) if attempt < 3 && format!("{e:#}").contains("address already in use") => {
                    tracing::warn!(
                        "etcd: a member's port was taken before it bound it; starting the cluster again on new ports"
                    );
                    for i in 0..options.members {
                        let _ = std::fs::remove_dir_all(dir.join(format!("m{i}")));
                    }
                    attempt += 1;
                }
                other => return other,
            }
        }
    }

    async fn launch_once(
        dir: &Path,
        options: ClusterOptions,
        security: Option<Security>,
    ) -> anyhow::Result<EtcdCluster> {
        let program = etcd_program();
        let installed = Command::new(&program)
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !installed {
            bail!(
                "etcd is not installed ({} does not run): install it with tests/setup/install-deps.sh (Debian: apt-get install etcd-server), or point LIFEBOAT_ETCD at an etcd binary",
                program.display()
            );
        }
        std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
        let net = PeerNet::new(options.members);
        let mut members = Vec::new();
        let mut gate_ports = Vec::new();
        for i in 0..options.members {
            let peer_port = free_port()?;
            gate_ports.push(if options.gates {
                peer_gate::start(net.clone(), i, peer_port).await?
            } else {
                peer_port
            });
            members.push(Member {
                name: format!("m{i}"),
                client_port: free_port()?,
                peer_port,
                log: dir.join(format!("m{i}.log")),
                child: None,
            });
        }
        let initial_cluster = members
            .iter()
            .zip(&gate_ports)
            .map(|(m, g)| format!("{}=http://127.0.0.1:{g}", m.name))
            .collect::<Vec<_>>()
            .join(",");
        let mut cluster = EtcdCluster {
            dir: dir.to_path_buf(),
            options,
            initial_cluster,
            token: format!("lifeboat-{:08x}", fastrand::u32(..)),
            gate_ports,
            net,
            members,
            security,
            healthy_after: Duration::ZERO,
        };
        let started = Instant::now();
        for i in 0..options.members {
            cluster.spawn(i)?;
        }
        cluster.wait_healthy(Duration::from_secs(30)).await?;
        cluster.healthy_after = started.elapsed();
        Ok(cluster)
    }

    fn spawn(&mut self, i: usize) -> anyhow::Result<()> {
        use std::os::unix::process::CommandExt;
        let m = &self.members[i];
        let data = self.dir.join(&m.name);
        let client = self.endpoint(i);
        let mut cmd = Command::new(etcd_program());
        if let Some(s) = &self.security {
            cmd.arg("--cert-file")
                .arg(&s.cert_file)
                .arg("--key-file")
                .arg(&s.key_file)
                .arg("--trusted-ca-file")
                .arg(&s.ca_file)
                .arg("--client-cert-auth");
            if let Some(ttl) = s.auth_token_ttl {
                cmd.arg(format!("--auth-token-ttl={}", ttl.as_secs().max(1)));
            }
        }
        cmd.arg("--name")
            .arg(&m.name)
            .arg("--data-dir")
            .arg(&data)
            .args([
                "--listen-client-urls",
                &client,
                "--advertise-client-urls",
                &client,
            ])
            .arg("--listen-peer-urls")
            .arg(format!("http://127.0.0.1:{}", m.peer_port))
            // Peers reach this member through its gate.
            .arg("--initial-advertise-peer-urls")
            .arg(format!("http://127.0.0.1:{}", self.gate_ports[i]))
            .args(["--initial-cluster", &self.initial_cluster])
            .args(["--initial-cluster-state", "new"])
            .args(["--initial-cluster-token", &self.token])
            .args(["--unsafe-no-fsync", "--pre-vote=true"])
            .arg(format!(
                "--heartbeat-interval={}",
                self.options.heartbeat.as_millis()
            ))
            .arg(format!(
                "--election-timeout={}",
                self.options.election.as_millis()
            ))
            .args([
                "--logger",
                "zap",
                "--log-outputs",
                "stderr",
                // Info: a member that never becomes healthy says why in its log's tail.
                "--log-level",
                "info",
            ]);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&m.log)
            .with_context(|| format!("open {}", m.log.display()))?;
        let child = cmd
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .process_group(0)
            .spawn()
            .with_context(|| format!("start etcd member {}", m.name))?;
        self.net.set_pid(i, Some(child.id()));
        self.members[i].child = Some(child);
        Ok(())
    }

    /// The client URL of each member.
    pub fn endpoints(&self) -> Vec<String> {
        (0..self.members.len()).map(|i| self.endpoint(i)).collect()
    }

    pub fn endpoint(&self, i: usize) -> String {
        format!(
            "{}://127.0.0.1:{}",
            self.scheme(),
            self.members[i].client_port
        )
    }

    fn scheme(&self) -> &'static str {
        if self.security.is_some() {
            "https"
        } else {
            "http"
        }
    }

    /// A client of member `i` for the cluster's own checks and set-up: over TLS with the
    /// admin certificate when the cluster is secure.
    pub async fn admin_client(&self, i: usize) -> anyhow::Result<etcd_client::Client> {
        let options = match &self.security {
            None => None,
            Some(s) => {
                let read =
                    |p: &Path| std::fs::read(p).with_context(|| format!("read {}", p.display()));
                let tls = etcd_client::TlsOptions::new()
                    .ca_certificate(etcd_client::Certificate::from_pem(read(&s.ca_file)?))
                    .identity(etcd_client::Identity::from_pem(
                        read(&s.admin_cert_file)?,
                        read(&s.admin_key_file)?,
                    ));
                Some(etcd_client::ConnectOptions::new().with_tls(tls))
            }
        };
        etcd_client::Client::connect([self.endpoint(i)], options)
            .await
            .with_context(|| format!("etcd client for member {i}"))
    }

    /// Turns on etcd's authentication: a `root` user (with the `root` role, which etcd
    /// requires) whose password is `root_password`, then `auth enable`. On a secure
    /// cluster the admin certificate (common name `root`) keeps the cluster's own checks
    /// working without a password.
    pub async fn enable_auth(&self, root_password: &str) -> anyhow::Result<()> {
        let mut c = self.admin_client(0).await?;
        c.user_add("root", root_password, None)
            .await
            .context("add the root user")?;
        c.user_grant_role("root", "root")
            .await
            .context("grant root the root role")?;
        c.auth_enable().await.context("auth enable")?;
        Ok(())
    }

    /// Adds `user` with a role of the same name that may read and write every key under
    /// `prefix`. Needs the admin certificate's `root` once authentication is on.
    pub async fn add_user(&self, user: &str, password: &str, prefix: &str) -> anyhow::Result<()> {
        let mut c = self.admin_client(0).await?;
        c.role_add(user).await.context("add the role")?;
        c.role_grant_permission(
            user,
            etcd_client::Permission::read_write(prefix).with_prefix(),
        )
        .await
        .context("grant the role readwrite on the prefix")?;
        c.user_add(user, password, None)
            .await
            .context("add the user")?;
        c.user_grant_role(user, user)
            .await
            .context("grant the user its role")?;
        Ok(())
    }

    /// The member an endpoint of [`Self::endpoints`] belongs to.
    pub fn member_of(&self, endpoint: &str) -> Option<usize> {
        (0..self.members.len()).find(|&i| self.endpoint(i) == endpoint)
    }

    pub fn pid(&self, i: usize) -> Option<u32> {
        self.members[i].child.as_ref().map(Child::id)
    }

    pub fn log(&self, i: usize) -> &Path {
        &self.members[i].log
    }

    /// Stops managing the members: they keep running after this value is dropped, and
    /// the caller stops them by PID.
    pub fn detach(mut self) -> Vec<DetachedMember> {
        self.members
            .iter_mut()
            .map(|m| DetachedMember {
                name: m.name.clone(),
                pid: m.child.take().map(|c| c.id()).unwrap_or(0),
                client_port: m.client_port,
            })
            .collect()
    }

    /// SIGKILL, then reap. The member's data stays for [`Self::restart`].
    pub fn kill(&mut self, i: usize) {
        if let Some(mut c) = self.members[i].child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        self.net.set_pid(i, None);
    }

    /// Starts a killed member again on its data and waits until the cluster is healthy.
    pub async fn restart(&mut self, i: usize) -> anyhow::Result<Duration> {
        self.kill(i);
        let started = Instant::now();
        self.spawn(i)?;
        self.wait_healthy(Duration::from_secs(30)).await?;
        Ok(started.elapsed())
    }

    /// Cuts member `i` off from the other members (raft traffic both ways). Its clients
    /// still reach it; it answers them "no leader".
    pub fn isolate(&self, i: usize) {
        self.net.isolate(i);
    }

    pub fn heal(&self, i: usize) {
        self.net.heal(i);
    }

    /// Waits until every running member serves a linearizable read.
    pub async fn wait_healthy(&self, timeout: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + timeout;
        let running: Vec<usize> = (0..self.members.len())
            .filter(|&i| self.members[i].child.is_some())
            .collect();
        let mut clients = Vec::new();
        for &i in &running {
            clients.push((i, self.admin_client(i).await?));
        }
        loop {
            let mut healthy = 0;
            for (_, c) in &mut clients {
                let read = c.get("health", None);
                if let Ok(Ok(_)) = tokio::time::timeout(Duration::from_millis(500), read).await {
                    healthy += 1;
                }
            }
            if healthy == clients.len() {
                return Ok(());
            }
            // A member that exited (a port taken, a bad flag) will not come back.
            let exited = running.iter().find(|&&i| {
                self.members[i]
                    .child
                    .as_ref()
                    .is_some_and(|c| !crate::process::alive(c.id()))
            });
            if let Some(&i) = exited {
                bail!(
                    "etcd member {} exited while the cluster started; its log {}:\n{}",
                    self.members[i].name,
                    self.members[i].log.display(),
                    tail(&self.members[i].log, 10)
                );
            }
            if Instant::now() > deadline {
                let logs: Vec<String> = running
                    .iter()
                    .map(|&i| {
                        format!(
                            "{}:\n{}",
                            self.members[i].log.display(),
                            tail(&self.members[i].log, 10)
                        )
                    })
                    .collect();
                bail!(
                    "the etcd cluster was not healthy within {} s ({healthy} of {} members answered); logs:\n{}",
                    timeout.as_secs(),
                    clients.len(),
                    logs.join("\n")
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The member etcd currently has as raft leader, as the first member that answers
    /// sees it, with the raft term.
    pub async fn raft_leader(&self) -> Option<(usize, u64)> {
        let mut clients = Vec::new();
        for i in 0..self.members.len() {
            clients.push(match self.members[i].child {
                Some(_) => self.admin_client(i).await.ok(),
                None => None,
            });
        }
        raft_leader_of(clients).await
    }

    /// Fault proxies in front of every member, for one client.
    pub async fn link(&self) -> anyhow::Result<ClientLink> {
        let mut proxies = Vec::new();
        for m in &self.members {
            proxies.push(Proxy::start(&format!("etcd-{}", m.name), 0, m.client_port).await?);
        }
        Ok(ClientLink {
            proxies,
            scheme: self.scheme(),
        })
    }
}

impl Drop for EtcdCluster {
    fn drop(&mut self) {
        for i in 0..self.members.len() {
            self.kill(i);
        }
    }
}

/// One client's path to the cluster: a fault proxy in front of each member.
#[derive(Debug, Clone)]
pub struct ClientLink {
    proxies: Vec<Proxy>,
    scheme: &'static str,
}

impl ClientLink {
    /// The proxies' URLs, in member order.
    pub fn endpoints(&self) -> Vec<String> {
        self.proxies
            .iter()
            .map(|p| format!("{}://127.0.0.1:{}", self.scheme, p.listen_port))
            .collect()
    }

    /// Cuts this client off from every member: connections open are cut, new ones hang.
    pub fn partition(&self) {
        for p in &self.proxies {
            p.set_mode(ProxyMode::Blackhole);
        }
    }

    pub fn heal(&self) {
        for p in &self.proxies {
            p.set_mode(ProxyMode::Pass);
        }
    }

    /// Cuts this client off from member `i` only.
    pub fn cut(&self, i: usize) {
        self.proxies[i].set_mode(ProxyMode::Blackhole);
    }
}

/// Which of the members (a client for each that runs, in member order) etcd has as raft
/// leader, as the first that answers its status sees it, with the raft term.
pub async fn raft_leader_of(clients: Vec<Option<etcd_client::Client>>) -> Option<(usize, u64)> {
    let mut ids = Vec::new();
    let mut leader = None;
    for c in clients {
        let status = async {
            let mut c = c?;
            c.status().await.ok()
        };
        match tokio::time::timeout(Duration::from_millis(500), status).await {
            Ok(Some(s)) => {
                ids.push(s.header().map(|h| h.member_id()));
                leader = leader.or(Some((s.leader(), s.raft_term())));
            }
            _ => ids.push(None),
        }
    }
    let (id, term) = leader?;
    ids.iter().position(|m| *m == Some(id)).map(|i| (i, term))
}
