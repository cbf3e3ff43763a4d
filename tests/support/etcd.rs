//! Helpers for the coordination tests: a real 3-member etcd cluster per test (fast raft
//! timeouts), client settings with a short lease, and controllers that campaign.
#![allow(dead_code)]

use std::path::Path;
use std::time::Duration;

use lifeboat::coord::etcd::{Campaign, Etcd, EtcdSettings, Leadership};
use lifeboat::coord::records::Candidate;
use lifeboat::core::model::RegionName;
use lifeboat::sandbox::etcd::{ClusterOptions, EtcdCluster};
use tokio::sync::oneshot;
use tokio::time::Instant;

/// The service every test leads.
pub const SERVICE: &str = "checkout";

/// A scratch directory, removed at the end of the test.
pub fn tempdir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("lifeboat-etcd-")
        .tempdir()
        .expect("create a temporary directory")
}

/// A 3-member cluster under `dir`; fails the test with how to install etcd. etcd's own
/// raft timing (heartbeat 100 ms, election 1 s): with shorter timeouts, a machine busy
/// with the rest of the suite starved the members into needless elections, and every
/// election extends the leases a test waits on.
pub async fn cluster(dir: &Path) -> EtcdCluster {
    let c = EtcdCluster::start(dir, ClusterOptions::etcd_defaults())
        .await
        .unwrap_or_else(|e| panic!("could not start a 3-member etcd cluster: {e:#}"));
    eprintln!(
        "etcd cluster healthy after {} ms",
        c.healthy_after.as_millis()
    );
    c
}

/// Test timing: lease TTL 3 s, keep-alive 250 ms, deadline 500 ms, margin 1 s (so a
/// controller acts for 2 s after its last confirmed keep-alive, which leaves room for a
/// keep-alive that hangs on a silent member and its retry on another).
pub fn settings(endpoints: Vec<String>) -> EtcdSettings {
    EtcdSettings {
        lease_ttl: Duration::from_secs(3),
        keep_alive: Duration::from_millis(250),
        call_deadline: Duration::from_millis(500),
        safety_margin: Duration::from_secs(1),
        endpoint_cooldown: Duration::from_secs(2),
        ..EtcdSettings::new(endpoints, "test")
    }
}

pub async fn connect(settings: EtcdSettings) -> Etcd {
    Etcd::connect(settings).await.expect("etcd client")
}

pub fn candidate(node: &str, region: &str) -> Candidate {
    Candidate {
        node: node.to_string(),
        region: RegionName::new(region),
    }
}

/// Campaigns until this controller leads (at most `within`).
pub async fn lead(etcd: &Etcd, me: &Candidate, within: Duration) -> Leadership {
    let service = etcd.keys().service(SERVICE).expect("service");
    let session = etcd.session().await.expect("session");
    let give_up = Instant::now() + within;
    loop {
        match etcd.campaign(&session, &service, me).await {
            Ok(Campaign::Won(l)) => return l,
            Ok(Campaign::Lost(_)) | Err(_) if Instant::now() < give_up => {
                let _ = etcd
                    .wait_for_vacancy(&service, Duration::from_millis(500))
                    .await;
            }
            other => panic!(
                "{} did not come to lead within {within:?}: {other:?}",
                me.node
            ),
        }
    }
}

/// A controller that keeps campaigning in the background (watching for the leader key
/// to go, then campaigning) and reports when it won.
pub struct Contender {
    pub won: oneshot::Receiver<(Instant, Leadership)>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Contender {
    fn drop(&mut self) {
        self.task.abort();
    }
}

pub async fn contend(etcd: Etcd, me: Candidate) -> Contender {
    let service = etcd.keys().service(SERVICE).expect("service");
    let session = etcd.session().await.expect("session");
    let (tx, won) = oneshot::channel();
    let task = tokio::spawn(async move {
        let leadership = loop {
            if let Ok(Campaign::Won(l)) = etcd.campaign(&session, &service, &me).await {
                break l;
            }
            let _ = etcd
                .wait_for_vacancy(&service, Duration::from_millis(500))
                .await;
        };
        let _ = tx.send((Instant::now(), leadership));
        // Keep the session (and so the lease) alive while the test runs.
        std::future::pending::<()>().await;
    });
    Contender { won, task }
}

/// Whether the leadership stays acting for all of `period` (sampled every 20 ms); the
/// error is how long it lasted.
pub async fn acting_throughout(l: &Leadership, period: Duration) -> Result<(), Duration> {
    let start = Instant::now();
    while start.elapsed() < period {
        if !l.acting() {
            return Err(start.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

/// Waits until `f` holds (sampled every 20 ms), at most `within`; returns how long it took.
pub async fn until(within: Duration, mut f: impl FnMut() -> bool) -> Option<Duration> {
    let start = Instant::now();
    while start.elapsed() <= within {
        if f() {
            return Some(start.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    None
}
