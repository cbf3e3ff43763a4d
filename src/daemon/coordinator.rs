//! The daemon on the etcd backend: its session, its entry in the node registry and its
//! campaign for the service's leadership. It only learns; the engine hands what it
//! learns to the driver, which acts through the fenced authority alone.
//!
//! One task: connect, take a session (a lease kept alive on its own task), then loop:
//! register this node, ask the placement rule whether to campaign, campaign, and while
//! leading, watch the acting rule. A leadership that stops acting is reported at once
//! (`Standing::Following`); the task then campaigns again, which wins back the same
//! epoch if the leader key is still under this session's lease, and loses otherwise. A
//! lost lease means a new session and a new epoch.

use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tracing::{info, warn};

use anyhow::bail;

use super::engine::Event;
use super::role::Role;
use crate::clock::WallClock;
use crate::coord::etcd::{Campaign, Etcd, EtcdSettings, Session};
use crate::coord::placement::{Placement, placement};
use crate::coord::records::{Candidate, NodeRecord, SharedState};
use crate::coord::{CoordError, ServiceKeys, Standing};
use crate::core::model::{Coordination, EtcdCoordination, Mode, Policy, RegionName};

/// Who this daemon is in the coordination.
#[derive(Clone, Debug)]
pub struct Me {
    pub node: String,
    pub region: RegionName,
    /// False for `run --observer`: it registers and votes, never leads.
    pub campaigns: bool,
}

/// Who this daemon is on an etcd policy; `None` on the embedded backend.
///
/// Errors, each saying what to do: `--node` on an embedded policy; no `--node`, or one
/// the policy's observers do not list, on an etcd policy; `mode = "auto"` on etcd (the
/// observers' votes are not counted from etcd yet, and one vantage point must never
/// decide alone).
pub fn me(policy: &Policy, node: Option<&str>, role: Role) -> anyhow::Result<Option<Me>> {
    let Coordination::Etcd(c) = &policy.coordination else {
        if let Some(n) = node {
            bail!(
                "--node {n} names a controller among an etcd policy's observers, but the policy of `{}` has no [coordination] backend = \"etcd\"; drop --node",
                policy.service
            );
        }
        return Ok(None);
    };
    let names: Vec<&str> = c.observers.iter().map(|o| o.name.as_str()).collect();
    let names = names.join(", ");
    let Some(node) = node else {
        bail!(
            "the policy of `{}` selects the etcd backend: name this controller with --node NAME, one of the observers it lists ({names})",
            policy.service
        );
    };
    let Some(o) = c.observers.iter().find(|o| o.name == node) else {
        bail!(
            "--node {node} is not among the policy's observers ({names}); add it to [coordination] observers with its region, or use one of those names"
        );
    };
    if policy.detection.mode == Mode::Auto {
        bail!(
            "automatic failover on the etcd backend needs the observers' votes counted from etcd, which this version does not do yet: set [detection] mode = \"manual\" (an operator fails over through the elected controller, and any controller finishes a run another started), or use the embedded backend with witnesses"
        );
    }
    Ok(Some(Me {
        node: node.to_string(),
        region: RegionName::new(&o.region),
        campaigns: role.acts(),
    }))
}

/// The client's timing from the policy: keep-alives and call deadlines a fifth of the
/// TTL (1 s at the default 5 s), so a keep-alive can fail and be retried on another
/// member inside the acting window.
pub fn settings(c: &EtcdCoordination) -> EtcdSettings {
    let step = (c.lease_ttl / 5).clamp(Duration::from_millis(200), Duration::from_secs(1));
    EtcdSettings {
        lease_ttl: c.lease_ttl,
        safety_margin: c.safety_margin,
        keep_alive: step,
        call_deadline: step,
        ..EtcdSettings::new(c.members.clone(), &c.cluster)
    }
}

/// Starts the task. It ends when the engine's channel closes.
pub fn spawn(
    policy: &Policy,
    c: &EtcdCoordination,
    me: Me,
    events: mpsc::Sender<Event>,
) -> JoinHandle<()> {
    let task = Task {
        settings: settings(c),
        service: policy.service.clone(),
        primary: policy.regions.primary.clone(),
        me,
        events,
        clock: WallClock::system(),
        last: None,
    };
    tokio::spawn(task.run())
}

struct Task {
    settings: EtcdSettings,
    service: String,
    primary: RegionName,
    me: Me,
    events: mpsc::Sender<Event>,
    clock: WallClock,
    /// What the engine was last told, to tell it only changes.
    last: Option<(bool, Option<String>, u64)>,
}

impl Task {
    fn pause(&self) -> Duration {
        (self.settings.lease_ttl / 5).max(Duration::from_millis(200))
    }

    async fn run(mut self) {
        loop {
            match self.connected().await {
                Ok(()) => return,
                Err(e) => {
                    warn!("etcd: {e}; this controller does not act, and tries again");
                    if !self.tell(Standing::Following { leader: None }).await {
                        return;
                    }
                    tokio::time::sleep(self.pause()).await;
                }
            }
        }
    }

    /// One session's life. `Ok` when the engine is gone; an error when the session or
    /// the connection is lost.
    async fn connected(&mut self) -> Result<(), CoordError> {
        let etcd = Etcd::connect(self.settings.clone()).await?;
        let svc = etcd.keys().service(&self.service)?;
        let session = etcd.session().await?;
        info!(node = %self.me.node, lease = format!("{:x}", session.lease()), "etcd session open");
        let me = Candidate {
            node: self.me.node.clone(),
            region: self.me.region.clone(),
        };
        loop {
            if session.status().lost {
                return Err(CoordError::LeaseLost {
                    lease: session.lease(),
                });
            }
            self.register(&etcd, &session).await?;
            if !self.share(&etcd, &svc).await {
                return Ok(());
            }
            if !self.me.campaigns {
                tokio::time::sleep(self.pause()).await;
                continue;
            }
            let nodes = etcd.nodes().await.unwrap_or_default();
            let stale = self.settings.lease_ttl * 2;
            if let Placement::Defer { node, .. } = placement(
                &me.node,
                &me.region,
                &self.primary,
                &nodes,
                self.clock.now(),
                stale,
            ) {
                let leader = etcd
                    .leader(&svc)
                    .await
                    .ok()
                    .flatten()
                    .map(|l| l.node)
                    .or(Some(node));
                if !self.tell(Standing::Following { leader }).await {
                    return Ok(());
                }
                tokio::time::sleep(self.pause()).await;
                continue;
            }
            match etcd.campaign(&session, &svc, &me).await? {
                Campaign::Won(l) => {
                    let leading = Standing::Leading {
                        leadership: l.clone(),
                        node: self.me.node.clone(),
                    };
                    if !self.tell(leading).await {
                        return Ok(());
                    }
                    while l.acting() {
                        tokio::time::sleep(self.pause()).await;
                        self.register(&etcd, &session).await.ok();
                        if !self.share(&etcd, &svc).await {
                            return Ok(());
                        }
                    }
                    warn!(epoch = %l.epoch(), "this controller stops acting: its lease is not confirmed recently enough, or a newer leader wrote");
                    if !self.tell(Standing::Following { leader: None }).await {
                        return Ok(());
                    }
                    if l.deposed() {
                        // Someone else leads: our leader key is gone; so is nothing else.
                        tokio::time::sleep(self.pause()).await;
                    }
                }
                Campaign::Lost(info) => {
                    if !self
                        .tell(Standing::Following {
                            leader: Some(info.node),
                        })
                        .await
                    {
                        return Ok(());
                    }
                    etcd.wait_for_vacancy(&svc, self.settings.lease_ttl)
                        .await
                        .ok();
                }
            }
        }
    }

    async fn register(&self, etcd: &Etcd, session: &Session) -> Result<(), CoordError> {
        let record = NodeRecord {
            node: self.me.node.clone(),
            region: self.me.region.clone(),
            version: env!("CARGO_PKG_VERSION").to_string(),
            last_loop: self.clock.now(),
        };
        etcd.register_node(session, &record).await.map(|_| ())
    }

    /// Hands the shared state (the serving region) to the engine. False when the
    /// engine is gone.
    async fn share(&self, etcd: &Etcd, svc: &ServiceKeys) -> bool {
        match etcd.get(&svc.state()).await {
            Ok(Some(s)) => match s.json::<SharedState>() {
                Ok(state) => self.events.send(Event::Shared(state)).await.is_ok(),
                Err(e) => {
                    warn!("etcd: {e}");
                    true
                }
            },
            Ok(None) => true,
            Err(e) => {
                warn!("etcd: reading the shared state: {e}");
                true
            }
        }
    }

    /// Tells the engine, when it changed. False when the engine is gone.
    async fn tell(&mut self, s: Standing) -> bool {
        let key = match &s {
            Standing::Leading { leadership, .. } => (true, None, leadership.epoch().0),
            Standing::Following { leader } => (false, leader.clone(), 0),
        };
        if self.last.as_ref() == Some(&key) {
            return true;
        }
        self.last = Some(key);
        self.events.send(Event::Standing(s)).await.is_ok()
    }
}
