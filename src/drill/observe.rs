//! What a drill watches while it runs, each in its own task: a write load that follows
//! DNS like a client would, a sampler that checks whether more than one database takes
//! writes, and a watcher of the daemon's status.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::clients::aws::AwsClients;
use crate::daemon::status::StatusView;
use crate::sandbox::aws::active_region;
use crate::sandbox::postgres::{APP_DATABASE, APP_USER};
use crate::sandbox::world::World;

/// Milliseconds since the drill began.
pub type Ms = u64;

fn ms(t0: Instant) -> Ms {
    t0.elapsed().as_millis() as u64
}

/// One numbered insert the load attempted.
#[derive(Clone, Debug, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Write {
    pub n: i64,
    pub at: Ms,
    pub region: String,
    /// The API answered 201: the row committed.
    pub acked: bool,
    pub latency_ms: u64,
}

/// A background task and the switch that stops it.
pub struct Running<T> {
    stop: watch::Sender<bool>,
    task: JoinHandle<T>,
}

impl<T> Running<T> {
    pub async fn stop(self) -> T
    where
        T: Default,
    {
        let _ = self.stop.send(true);
        self.task.await.unwrap_or_default()
    }
}

/// Which region DNS sends clients to, refreshed every 200 ms from Route 53 (moto).
/// The region clients are sent to, shared with the write load.
pub type Active = Arc<Mutex<String>>;

pub fn follow_dns(world: &World, t0: Instant) -> (Active, Running<Vec<(Ms, String)>>) {
    let active = Arc::new(Mutex::new(crate::sandbox::world::PRIMARY.to_string()));
    let (stop, mut stopped) = watch::channel(false);
    let (clients, zone, record, hc) = (
        AwsClients::for_emulator(&world.moto_url()),
        world.aws.zone_id.clone(),
        world.record.clone(),
        world.aws.health_check_id.clone(),
    );
    let shared = active.clone();
    let task = tokio::spawn(async move {
        let mut changes = Vec::new();
        loop {
            if let Ok(r) = active_region(&clients, &zone, &record, &hc).await {
                let mut a = shared.lock().unwrap_or_else(|e| e.into_inner());
                if *a != r || changes.is_empty() {
                    changes.push((ms(t0), r.clone()));
                    *a = r;
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(200)) => {}
                _ = stopped.changed() => break,
            }
        }
        changes
    });
    (active, Running { stop, task })
}

/// Every write the load attempted, readable while it runs.
pub type WriteLog = Arc<Mutex<Vec<Write>>>;

/// Numbered inserts at `per_second`, each sent to the region DNS points at now.
pub fn write_load(
    world: &World,
    per_second: u32,
    active: Active,
    t0: Instant,
) -> (WriteLog, Running<()>) {
    let apis: BTreeMap<String, String> = world
        .regions
        .keys()
        .filter_map(|r| world.api_url(r).map(|u| (r.clone(), u)))
        .collect();
    let log: WriteLog = Arc::new(Mutex::new(Vec::new()));
    let shared = log.clone();
    let (stop, mut stopped) = watch::channel(false);
    let gap = Duration::from_secs_f64(1.0 / f64::from(per_second.max(1)));
    let task = tokio::spawn(async move {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_millis(1500))
            .build()
            .unwrap_or_default();
        let mut n = 1;
        let mut tick = tokio::time::interval(gap);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = stopped.changed() => break,
            }
            let region = active.lock().unwrap_or_else(|e| e.into_inner()).clone();
            let Some(api) = apis.get(&region) else {
                continue;
            };
            let at = ms(t0);
            let started = Instant::now();
            let acked = http
                .post(format!("{api}/orders"))
                .json(&serde_json::json!({"n": n}))
                .send()
                .await
                .is_ok_and(|r| r.status().as_u16() == 201);
            let w = Write {
                n,
                at,
                region,
                acked,
                latency_ms: started.elapsed().as_millis() as u64,
            };
            shared.lock().unwrap_or_else(|e| e.into_inner()).push(w);
            n += 1;
        }
    });
    (log, Running { stop, task })
}

/// Whether each region's database would take a write, sampled every 100 ms. Two `true`s
/// in one sample is the split brain lifeboat must never allow.
#[derive(Clone, Debug, Default, Serialize, Deserialize, schemars::JsonSchema)]
pub struct WritableLog {
    pub samples: usize,
    /// Times (ms) at which more than one database was writable.
    pub both_writable_at: Vec<Ms>,
}

pub fn sample_writable(world: &World, t0: Instant) -> anyhow::Result<Running<WritableLog>> {
    let password = world.password()?;
    let ports: Vec<(String, u16)> = world.pg.iter().map(|(r, i)| (r.clone(), i.port)).collect();
    let (stop, mut stopped) = watch::channel(false);
    let task = tokio::spawn(async move {
        let mut log = WritableLog::default();
        let mut conns: BTreeMap<String, tokio_postgres::Client> = BTreeMap::new();
        loop {
            let mut writable = 0;
            for (region, port) in &ports {
                if conns.get(region).is_none_or(|c| c.is_closed())
                    && let Some(c) = connect(*port, &password).await
                {
                    conns.insert(region.clone(), c);
                }
                let Some(c) = conns.get(region) else { continue };
                let q = c.query_one(
                    "SELECT pg_is_in_recovery(), current_setting('default_transaction_read_only')",
                    &[],
                );
                match tokio::time::timeout(Duration::from_millis(300), q).await {
                    Ok(Ok(row)) => {
                        let (recovery, ro): (bool, String) = (row.get(0), row.get(1));
                        if !recovery && ro == "off" {
                            writable += 1;
                        }
                    }
                    _ => {
                        conns.remove(region);
                    }
                }
            }
            log.samples += 1;
            if writable > 1 {
                log.both_writable_at.push(ms(t0));
            }
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(100)) => {}
                _ = stopped.changed() => break,
            }
        }
        log
    });
    Ok(Running { stop, task })
}

async fn connect(port: u16, password: &str) -> Option<tokio_postgres::Client> {
    let mut c = tokio_postgres::Config::new();
    c.host("127.0.0.1")
        .port(port)
        .user(APP_USER)
        .dbname(APP_DATABASE)
        .password(password)
        .connect_timeout(Duration::from_millis(300));
    let (client, conn) =
        tokio::time::timeout(Duration::from_millis(500), c.connect(tokio_postgres::NoTls))
            .await
            .ok()?
            .ok()?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Some(client)
}

/// What the daemon said, whenever it changed.
#[derive(Clone, Debug, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Seen {
    pub at: Ms,
    pub state: String,
    pub why: Option<String>,
    pub primary_verdict: String,
    /// The primary's failing critical probes, with their latest error: what a verdict
    /// was based on.
    #[serde(default)]
    pub failing: Vec<String>,
}

/// Polls the controllers' status every 100 ms (with several, the view of the one that
/// leads, or of the first that answers during a handover); keeps the changes and the
/// latest view.
pub fn watch_daemon(
    urls: Vec<String>,
    primary: String,
    t0: Instant,
) -> (Arc<Mutex<Option<StatusView>>>, Running<Vec<Seen>>) {
    let latest: Arc<Mutex<Option<StatusView>>> = Arc::new(Mutex::new(None));
    let shared = latest.clone();
    let (stop, mut stopped) = watch::channel(false);
    let task = tokio::spawn(async move {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_millis(500))
            .build()
            .unwrap_or_default();
        let mut seen: Vec<Seen> = Vec::new();
        loop {
            let mut view: Option<StatusView> = None;
            for url in &urls {
                if let Ok(r) = http.get(format!("{url}/v1/status")).send().await
                    && let Ok(v) = r.json::<StatusView>().await
                {
                    let leads = v.leadership.leads();
                    if view.is_none() || leads {
                        view = Some(v);
                    }
                    if leads {
                        break;
                    }
                }
            }
            if let Some(v) = view {
                let verdict = v
                    .regions
                    .iter()
                    .find(|r| r.region.as_str() == primary)
                    .map(|r| r.verdict.to_string())
                    .unwrap_or_default();
                let failing = v
                    .probes
                    .iter()
                    .filter(|p| p.critical && !p.ok && p.region.as_str() == primary)
                    .map(|p| format!("{}: {}", p.probe, p.last_error.clone().unwrap_or_default()))
                    .collect();
                let s = Seen {
                    at: ms(t0),
                    state: v.state.clone(),
                    why: v.why.clone(),
                    primary_verdict: verdict,
                    failing,
                };
                if seen.last().is_none_or(|l| {
                    l.state != s.state || l.why != s.why || l.primary_verdict != s.primary_verdict
                }) {
                    seen.push(s);
                }
                *shared.lock().unwrap_or_else(|e| e.into_inner()) = Some(v);
            }
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(100)) => {}
                _ = stopped.changed() => break,
            }
        }
        seen
    });
    (latest, Running { stop, task })
}
