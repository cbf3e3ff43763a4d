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

use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tracing::{info, warn};

use anyhow::bail;

use super::engine::Event;
use super::role::Role;
use crate::clock::WallClock;
use crate::coord::etcd::{Campaign, Etcd, EtcdSettings, Leadership, Session};
use crate::coord::placement::{Placement, placement};
use crate::coord::records::{
    Candidate, CountedVote, NodeRecord, SharedState, Vote, down_majority, fresh_votes,
};
use crate::coord::{CoordError, ServiceKeys, Standing};
use crate::core::controller::ObserverVote;
use crate::core::health::HealthTracker;
use crate::core::model::{Coordination, EtcdCoordination, Policy, RegionName};
use crate::core::time::Ts;

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
/// the policy's observers do not list, on an etcd policy.
pub fn me(policy: &Policy, node: Option<&str>, role: Role) -> anyhow::Result<Option<Me>> {
    let Coordination::Etcd(c) = &policy.coordination else {
        if let Some(n) = node {
            bail!(
                "--node {n} names a controller among an etcd policy's observers, but the policy of `{}` has no [coordination] backend = \"etcd\": give it one, or run it without --node (with --policies, from a directory of its own: two controllers on the embedded backend would both act)",
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
        tls: c.tls.clone(),
        auth: c.auth.clone(),
        ..EtcdSettings::new(c.members.clone(), &c.cluster)
    }
}

/// Starts the task. It ends when the engine's channel closes. `votes` is this
/// controller's own latest vote, which the task publishes under its lease.
pub fn spawn(
    policy: &Policy,
    c: &EtcdCoordination,
    me: Me,
    votes: watch::Receiver<Option<Vote>>,
    events: mpsc::Sender<Event>,
) -> JoinHandle<()> {
    let task = Task {
        votes,
        published: None,
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
    votes: watch::Receiver<Option<Vote>>,
    /// The round of the vote last published.
    published: Option<u64>,
    settings: EtcdSettings,
    service: String,
    primary: RegionName,
    me: Me,
    events: mpsc::Sender<Event>,
    clock: WallClock,
    /// What the engine was last told, to tell it only changes.
    last: Option<(bool, Option<String>, u64)>,
}

/// How often a leading coordinator checks the acting rule while a pass waits on etcd.
const ACTING_CHECK: Duration = Duration::from_millis(50);

/// Returns once `l` may no longer act: its lease not confirmed in time, or deposed.
async fn lapsed(l: &Leadership) {
    while l.acting() {
        tokio::time::sleep(ACTING_CHECK).await;
    }
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
            // A call that fails while the session's lease lives (etcd electing a new raft
            // leader, a member down) keeps the session: the lease, and the leader key
            // under it, outlive a short raft election, and campaigning again on the same
            // lease wins back the same epoch instead of waiting out our own key.
            if let Err(e) = self.register(&etcd, &session).await {
                keep_session(e)?;
                tokio::time::sleep(self.pause()).await;
                continue;
            }
            if !self.share(&etcd, &svc).await || !self.vote(&etcd, &session, &svc).await {
                return Ok(());
            }
            if !self.me.campaigns {
                // An observer never leads, but its status says who does.
                let leader = etcd.leader(&svc).await.ok().flatten().map(|l| l.node);
                if !self.tell(Standing::Following { leader }).await {
                    return Ok(());
                }
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
            let campaign = match etcd.campaign(&session, &svc, &me).await {
                Ok(c) => c,
                Err(e) => {
                    keep_session(e)?;
                    tokio::time::sleep(self.pause()).await;
                    continue;
                }
            };
            match campaign {
                Campaign::Won(l) => {
                    let leading = Standing::Leading {
                        leadership: l.clone(),
                        node: self.me.node.clone(),
                    };
                    if !self.tell(leading).await {
                        return Ok(());
                    }
                    // A pass against an unreachable etcd takes a deadline per call, several
                    // seconds in all: the acting rule is watched beside it, so the engine
                    // hears that this controller stopped acting when it does.
                    loop {
                        let pass = async {
                            tokio::time::sleep(self.pause()).await;
                            self.register(&etcd, &session).await.ok();
                            self.share(&etcd, &svc).await && self.vote(&etcd, &session, &svc).await
                        };
                        tokio::select! {
                            () = lapsed(&l) => break,
                            alive = pass => if !alive {
                                return Ok(());
                            },
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
            campaigns: self.me.campaigns,
        };
        etcd.register_node(session, &record).await.map(|_| ())
    }

    /// Publishes this controller's newest vote under the session's lease, and hands every
    /// live vote to the engine. False when the engine is gone.
    async fn vote(&mut self, etcd: &Etcd, session: &Session, svc: &ServiceKeys) -> bool {
        let own = self.votes.borrow().clone();
        if let Some(v) = own
            && self.published != Some(v.round)
        {
            match etcd.publish_vote(session, svc, &v).await {
                Ok(_) => self.published = Some(v.round),
                Err(e) => warn!("etcd: publishing this controller's vote: {e}"),
            }
        }
        match etcd.votes(svc).await {
            Ok(all) => self.events.send(Event::Votes(all)).await.is_ok(),
            Err(e) => {
                warn!("etcd: reading the observers' votes: {e}");
                true
            }
        }
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

/// `Ok` (after a warning) for an error the session survives; the error itself when the
/// lease is gone, which ends the session.
fn keep_session(e: CoordError) -> Result<(), CoordError> {
    if matches!(e, CoordError::LeaseLost { .. }) {
        return Err(e);
    }
    warn!("etcd: {e}; this controller does not act meanwhile, and tries again on the same session");
    Ok(())
}

/// The engine's side of the votes on etcd: it publishes this controller's own view after
/// each probe round (the coordinator task puts it in etcd) and counts every observer's
/// fresh vote.
pub struct Votes {
    node: String,
    region: RegionName,
    own: watch::Sender<Option<Vote>>,
    round: u64,
    latest: Vec<CountedVote>,
    max_age: Duration,
    configured: usize,
}

impl Votes {
    /// A vote is fresh for two lease TTLs plus a probe interval after its observer's
    /// round (a coordinator publishes on each pass: a fifth of the TTL, or up to a TTL
    /// while it waits on another leader).
    pub fn new(
        policy: &Policy,
        c: &EtcdCoordination,
        me: &Me,
    ) -> (Votes, watch::Receiver<Option<Vote>>) {
        let (own, rx) = watch::channel(None);
        let votes = Votes {
            node: me.node.clone(),
            region: me.region.clone(),
            own,
            round: 0,
            latest: Vec::new(),
            max_age: c.lease_ttl * 2 + policy.detection.interval,
            configured: c.observers.len(),
        };
        (votes, rx)
    }

    /// This controller's view after a probe round, for the coordinator to publish.
    pub fn publish(&mut self, tracker: &HealthTracker, now: Ts) {
        self.round += 1;
        let evidence: Vec<String> = tracker
            .probes()
            .filter(|p| p.critical && p.consecutive_failures > 0)
            .map(|p| format!("{}@{}×{}", p.probe, p.region, p.consecutive_failures))
            .collect();
        let vote = Vote {
            observer: self.node.clone(),
            region: self.region.clone(),
            round: self.round,
            observed_at: now,
            verdicts: tracker.verdicts().into_iter().collect(),
            evidence: evidence.join(" "),
        };
        let _ = self.own.send(Some(vote));
    }

    /// Every live vote, as the coordinator read it from etcd.
    pub fn record(&mut self, all: Vec<CountedVote>) {
        self.latest = all;
    }

    /// The other observers' fresh votes on `active` (this controller's own comes from
    /// its tracker, newer than what etcd holds).
    pub fn others(&self, active: &RegionName, now: Ts) -> Vec<ObserverVote> {
        fresh_votes(&self.latest, now, self.max_age)
            .into_iter()
            .filter(|v| v.vote.observer != self.node)
            .map(|v| ObserverVote {
                observer: v.vote.observer.clone(),
                sees_down: v.vote.says_down(active),
            })
            .collect()
    }

    /// The fresh votes that make a majority saying `active` is down, whose revisions the
    /// run's start must find unchanged; empty when they are no majority.
    pub fn counted(&self, active: &RegionName, now: Ts) -> Vec<CountedVote> {
        let fresh = fresh_votes(&self.latest, now, self.max_age);
        down_majority(&fresh, active, self.configured).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::model::{EtcdAuth, EtcdTls, SecretRef};

    #[test]
    fn the_daemon_connects_with_the_policys_tls_and_login() {
        let c = EtcdCoordination {
            cluster: "prod".into(),
            members: vec!["https://etcd-a.internal:2379".into()],
            member_regions: vec!["us-east-1".into()],
            observers: Vec::new(),
            lease_ttl: Duration::from_secs(5),
            safety_margin: Duration::from_secs(2),
            quorum: 1,
            tls: Some(EtcdTls {
                ca_file: Some("/etc/lifeboat/etcd/ca.pem".into()),
                client: None,
            }),
            auth: Some(EtcdAuth {
                user: "lifeboat".into(),
                password: SecretRef::Env("LIFEBOAT_ETCD_PASSWORD".into()),
            }),
        };
        let s = settings(&c);
        assert_eq!(
            (s.tls.as_ref(), s.auth.as_ref()),
            (c.tls.as_ref(), c.auth.as_ref())
        );
        s.validate().expect("consistent settings");
    }
}
