//! Slow clients cannot starve the daemon. Hundreds of connections that send half a
//! request and dribble a header line every half second (slowloris), reconnecting when
//! dropped, while `/healthz` is asked every 100 ms on fresh connections and the status is
//! read: `/healthz` answers every time, promptly; the control loop keeps turning; the
//! probes keep passing. The daemon runs with 256 file descriptors, so a server without
//! a connection cap runs out of them (then neither `/healthz` nor the probes can open a
//! socket, and the controller sees an outage that is not there).

mod support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use lifeboat::sandbox::endpoint::{self, Faults};
use tokio::io::AsyncWriteExt;

const SLOW_CLIENTS: usize = 400;
const ATTACK: Duration = Duration::from_secs(8);
const FD_LIMIT: u32 = 256;

fn policy(dir: &Path, east: u16, west: u16) -> PathBuf {
    let text = format!(
        r#"
[service]
name = "slow-clients"

[regions]
primary = "us-east-1"
secondaries = ["us-west-2"]

[detection]
interval = "500ms"
timeout = "300ms"
failure_threshold = 3
mode = "manual"

[journal]
path = "journal.db"

[targets.api]
kind = "http"
regions.us-east-1.url = "http://127.0.0.1:{east}/health"
regions.us-west-2.url = "http://127.0.0.1:{west}/health"

[[probes]]
name = "api"
component = "api"
kind = "http"
target = "api"

[[failover.steps]]
name = "confirm"
kind = "manual_approval"
prompt = "go?"

[[failback.steps]]
name = "healthy"
kind = "wait_healthy"
"#
    );
    let path = dir.join("policy.toml");
    std::fs::write(&path, text).expect("write policy");
    path
}

struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// One slowloris client: half a request, then a header line every 500 ms, forever;
/// reconnects a second after the server drops it. Counts the connections it made.
async fn slow_client(addr: String, stop: Arc<AtomicBool>, connects: Arc<AtomicUsize>) {
    while !stop.load(Ordering::Relaxed) {
        let Ok(mut s) = tokio::net::TcpStream::connect(&addr).await else {
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        };
        connects.fetch_add(1, Ordering::Relaxed);
        let mut ok = s
            .write_all(b"GET /v1/status HTTP/1.1\r\nHost: 127.0.0.1\r\n")
            .await
            .is_ok();
        while ok && !stop.load(Ordering::Relaxed) {
            tokio::time::sleep(Duration::from_millis(500)).await;
            ok = s.write_all(b"X-Slow: 1\r\n").await.is_ok();
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn slow_clients_delay_neither_healthz_nor_the_control_loop() {
    let dir = support::tempdir();
    let (east, _t1) = endpoint::spawn(Faults::new("us-east-1"), 0)
        .await
        .expect("east");
    let (west, _t2) = endpoint::spawn(Faults::new("us-west-2"), 0)
        .await
        .expect("west");
    let policy = policy(dir.path(), east, west);
    let _daemon = Proc(
        Command::new("sh")
            .arg("-c")
            .arg(format!("ulimit -n {FD_LIMIT} && exec \"$0\" \"$@\""))
            .arg(env!("CARGO_BIN_EXE_lifeboat"))
            .args(["run", "--policy"])
            .arg(&policy)
            .env("LIFEBOAT_API_TOKEN", "")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.path().join("daemon.log")).expect("log"))
            .spawn()
            .expect("start lifeboat run"),
    );
    let journal = dir.path().join("journal.db");
    let deadline = Instant::now() + Duration::from_secs(20);
    let url = loop {
        if let Some(p) = lifeboat::daemon::discovery::find(&journal) {
            break p.url;
        }
        assert!(
            Instant::now() < deadline,
            "the daemon did not publish its API"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    // Fresh connections every time, as a load balancer's health check makes them.
    let fresh = || {
        reqwest::Client::builder()
            .pool_max_idle_per_host(0)
            .timeout(Duration::from_secs(2))
            .build()
            .expect("client")
    };
    let healthy = |v: &serde_json::Value| {
        v["regions"]
            .as_array()
            .is_some_and(|r| r.iter().all(|x| x["verdict"]["verdict"] == "healthy"))
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let v: serde_json::Value = fresh()
            .get(format!("{url}/v1/status"))
            .send()
            .await
            .expect("status")
            .json()
            .await
            .expect("json");
        if healthy(&v) {
            break;
        }
        assert!(Instant::now() < deadline, "never healthy: {v:#}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let addr = url.trim_start_matches("http://").to_string();
    let stop = Arc::new(AtomicBool::new(false));
    let connects = Arc::new(AtomicUsize::new(0));
    let attackers: Vec<_> = (0..SLOW_CLIENTS)
        .map(|_| tokio::spawn(slow_client(addr.clone(), stop.clone(), connects.clone())))
        .collect();
    // Let the slow clients take their places first.
    tokio::time::sleep(Duration::from_millis(500)).await;

    let started = Instant::now();
    let mut latencies = Vec::new();
    let mut failures = Vec::new();
    let mut loop_ages = Vec::new();
    let mut unhealthy = Vec::new();
    while started.elapsed() < ATTACK {
        let t = Instant::now();
        match fresh().get(format!("{url}/healthz")).send().await {
            Ok(r) if r.status() == 200 => latencies.push(t.elapsed()),
            Ok(r) => failures.push(format!("HTTP {}", r.status())),
            Err(e) => failures.push(format!("{e}")),
        }
        if latencies.len() % 5 == 0 {
            match fresh().get(format!("{url}/v1/status")).send().await {
                Ok(r) => {
                    let v: serde_json::Value = r.json().await.expect("json");
                    let now = std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .expect("clock")
                        .as_millis() as u64;
                    let observed = v["observed_at"].as_u64().expect("observed_at");
                    loop_ages.push(now.saturating_sub(observed));
                    if !healthy(&v) {
                        unhealthy.push(v["regions"].to_string());
                    }
                }
                Err(e) => failures.push(format!("status: {e}")),
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    stop.store(true, Ordering::Relaxed);
    for a in attackers {
        a.abort();
    }

    latencies.sort();
    let max = latencies.last().copied().unwrap_or_default();
    let p50 = latencies
        .get(latencies.len() / 2)
        .copied()
        .unwrap_or_default();
    let max_loop_age = loop_ages.iter().copied().max().unwrap_or_default();
    eprintln!(
        "slowloris: {SLOW_CLIENTS} slow clients, {} connections made in {ATTACK:?}; daemon fd limit {FD_LIMIT}; /healthz answered {} times, p50 {p50:?}, max {max:?}, {} failures; status observed at most {max_loop_age} ms before it was read",
        connects.load(Ordering::Relaxed),
        latencies.len(),
        failures.len(),
    );
    assert!(failures.is_empty(), "{failures:?}");
    assert!(
        latencies.len() >= 40,
        "only {} health checks in {ATTACK:?}",
        latencies.len()
    );
    assert!(max < Duration::from_millis(500), "/healthz took {max:?}");
    assert!(
        max_loop_age < 2_000,
        "the control loop fell {max_loop_age} ms behind"
    );
    assert!(unhealthy.is_empty(), "the probes failed: {unhealthy:?}");
    assert!(
        connects.load(Ordering::Relaxed) > SLOW_CLIENTS,
        "the slow clients were dropped and came back"
    );
}
