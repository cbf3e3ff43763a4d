//! Benchmark (not a test; not part of `make test`): what a fleet costs in one process.
//!
//! Run: `cargo bench --bench fleet` (release; `FLEET_SERVICES`, and `FLEET_WRAP` to run the
//! daemon under a profiler). It writes SERVICES policies (default 200,
//! `FLEET_SERVICES`) with `sandbox::fleet`, each with 10 probes on a 1 s interval (per
//! region two HTTP probes of the API, one of the workers and two TCP probes of storage),
//! against local servers in this process, and starts the release `lifeboat run
//! --policies` on them. Then:
//! - resident memory (VmRSS, and its peak VmHWM) of the daemon, after a warm-up;
//! - the daemon's CPU (user + system, from /proc) per probe round over MEASURE_FOR;
//! - how late probe rounds started after they were due, p50/p99, from the daemon's
//!   `lifeboat_probe_round_delay_seconds` histogram over the same window;
//! - fault to decision: VICTIMS times, one service's primary API starts failing and the
//!   time until that service's controller decides (its `last_decision`, "down, manual
//!   mode holds the failover") is read; min/p50/p99. The same is measured on a daemon
//!   running that one service alone, for comparison.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use lifeboat::sandbox::endpoint::{self, Faults, Mode};
use lifeboat::sandbox::fleet;

const WARM_UP: Duration = Duration::from_secs(10);
const MEASURE_FOR: Duration = Duration::from_secs(30);
const VICTIMS: usize = 20;

fn main() -> anyhow::Result<()> {
    if std::env::args().any(|a| a == "--list") {
        return Ok(());
    }
    let services: usize = std::env::var("FLEET_SERVICES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(bench(services))
}

/// One fleet service (`lifeboat::sandbox::fleet`): ten probes at a 1 s interval.
fn policy(name: &str, east: u16, west: u16) -> String {
    fleet::policy(&fleet::Service {
        name: name.to_string(),
        east,
        west,
        interval: Duration::from_secs(1),
    })
}

struct Daemon {
    child: Child,
    url: String,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts the release daemon on `dir` and waits until it runs `n` services.
async fn start(dir: &Path, state: &Path, n: usize) -> anyhow::Result<Daemon> {
    std::fs::create_dir_all(state)?;
    // FLEET_WRAP runs the daemon under a profiler: `FLEET_WRAP="heaptrack -o /tmp/fleet"`.
    let wrap = std::env::var("FLEET_WRAP").unwrap_or_default();
    let mut words = wrap.split_whitespace();
    let mut command = match words.next() {
        Some(program) => {
            let mut c = Command::new(program);
            c.args(words).arg(env!("CARGO_BIN_EXE_lifeboat"));
            c
        }
        None => Command::new(env!("CARGO_BIN_EXE_lifeboat")),
    };
    let child = command
        .args(["run", "--policies"])
        .arg(dir)
        .arg("--state-dir")
        .arg(state)
        .env("LIFEBOAT_API_TOKEN", "")
        .env("LIFEBOAT_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(state.join("daemon.log"))?)
        .spawn()?;
    let mut d = Daemon {
        child,
        url: String::new(),
    };
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if let Some(f) = lifeboat::daemon::discovery::find_fleet(state)
            && f.services.len() == n
        {
            d.url = f.url;
            return Ok(d);
        }
        if Instant::now() > deadline {
            anyhow::bail!(
                "the daemon did not start {n} services in 120 s; see {}",
                state.join("daemon.log").display()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A service faults are injected into: its name, its primary's switch, port and server.
type Victim = (
    String,
    std::sync::Arc<Faults>,
    u16,
    tokio::task::JoinHandle<()>,
);

async fn bench(services: usize) -> anyhow::Result<()> {
    let tmp = tempfile::tempdir()?;
    let east_faults = Faults::new("us-east-1");
    let (east, _t1) = endpoint::spawn(east_faults.clone(), 0).await?;
    let (west, _t2) = endpoint::spawn(Faults::new("us-west-2"), 0).await?;
    // The services faults are injected into: each its own primary endpoint.
    let mut victims = Vec::new();
    for i in 0..VICTIMS.min(services) {
        let faults = Faults::new("us-east-1");
        let (port, task) = endpoint::spawn(faults.clone(), 0).await?;
        victims.push((format!("svc-{i:03}"), faults, port, task));
    }
    let dir = tmp.path().join("fleet");
    std::fs::create_dir_all(&dir)?;
    for i in 0..services {
        let name = format!("svc-{i:03}");
        let port = victims.iter().find(|v| v.0 == name).map_or(east, |v| v.2);
        std::fs::write(dir.join(format!("{name}.toml")), policy(&name, port, west))?;
    }
    println!(
        "fleet benchmark: {services} services × 10 probes at a 1 s interval ({} probe rounds/s) against local HTTP/TCP servers; {} CPUs",
        services * 10,
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    let http = reqwest::Client::new();
    let fleet = start(&dir, &tmp.path().join("state"), services).await?;
    let pid = fleet.child.id();
    tokio::time::sleep(WARM_UP).await;

    let (cpu0, hist0, wall0) = (
        cpu(pid)?,
        histogram(&http, &fleet.url).await?,
        Instant::now(),
    );
    tokio::time::sleep(MEASURE_FOR).await;
    let (cpu1, hist1, wall) = (
        cpu(pid)?,
        histogram(&http, &fleet.url).await?,
        wall0.elapsed(),
    );
    let (rss, peak) = (memory(pid, "VmRSS")?, memory(pid, "VmHWM")?);
    let rounds = hist1.count - hist0.count;
    let used = cpu1 - cpu0;
    println!(
        "memory:  {:.1} MB resident ({:.1} MB peak)",
        rss as f64 / 1024.0,
        peak as f64 / 1024.0
    );
    println!(
        "cpu:     {rounds} probe rounds in {:.1}s ({:.0}/s); {:.1} µs of CPU per round, {:.1}% of one core",
        wall.as_secs_f64(),
        rounds as f64 / wall.as_secs_f64(),
        used.as_secs_f64() * 1e6 / rounds.max(1) as f64,
        100.0 * used.as_secs_f64() / wall.as_secs_f64()
    );
    let delays = hist1.minus(&hist0);
    println!(
        "delay:   round start after its due time p50 ≤ {} ms, p99 ≤ {} ms ({:.2}% of rounds later than 20 ms)",
        delays.quantile_ms(0.5),
        delays.quantile_ms(0.99),
        100.0 * delays.above(0.02) as f64 / delays.count.max(1) as f64
    );
    let in_fleet = decisions(&http, &fleet.url, &victims).await?;
    report("decision (fleet)", &in_fleet);
    drop(fleet);

    // The same service alone in its daemon.
    let alone_dir = tmp.path().join("alone");
    std::fs::create_dir_all(&alone_dir)?;
    let (name, _, port, _) = &victims[0];
    std::fs::write(
        alone_dir.join(format!("{name}.toml")),
        policy(name, *port, west),
    )?;
    let alone = start(&alone_dir, &tmp.path().join("alone-state"), 1).await?;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let mut single = Vec::new();
    for _ in 0..victims.len() {
        single.extend(decisions(&http, &alone.url, &victims[..1]).await?);
    }
    report("decision (alone)", &single);
    drop(alone);
    Ok(())
}

/// Injects a fault into each victim's primary in turn; returns each time to decision.
async fn decisions(
    http: &reqwest::Client,
    url: &str,
    victims: &[Victim],
) -> anyhow::Result<Vec<Duration>> {
    let mut out = Vec::new();
    for (name, faults, _, _) in victims {
        let status = format!("{url}/v1/services/{name}/status");
        // Healthy and settled first.
        wait(http, &status, Duration::from_secs(30), |s| {
            verdict(s) == "healthy"
        })
        .await?;
        let t0 = now_ms();
        faults.set_mode(Mode::Error);
        let s = wait(http, &status, Duration::from_secs(30), |s| {
            verdict(s) == "down" && s["last_decision"]["at"].as_u64().is_some_and(|at| at >= t0)
        })
        .await?;
        let at = s["last_decision"]["at"].as_u64().unwrap_or(t0);
        out.push(Duration::from_millis(at.saturating_sub(t0)));
        faults.set_mode(Mode::Healthy);
    }
    Ok(out)
}

fn report(what: &str, xs: &[Duration]) {
    let mut v: Vec<u128> = xs.iter().map(Duration::as_millis).collect();
    v.sort();
    let at = |q: f64| v[((v.len() as f64 - 1.0) * q).round() as usize];
    println!(
        "{what}: fault to decision over {} faults: min {} ms, p50 {} ms, p99 {} ms, max {} ms",
        v.len(),
        v[0],
        at(0.5),
        at(0.99),
        v[v.len() - 1]
    );
}

fn verdict(s: &serde_json::Value) -> String {
    s["regions"]
        .as_array()
        .and_then(|rs| rs.iter().find(|r| r["region"] == "us-east-1"))
        .and_then(|r| r["verdict"]["verdict"].as_str())
        .unwrap_or("?")
        .to_string()
}

async fn wait(
    http: &reqwest::Client,
    url: &str,
    within: Duration,
    ok: impl Fn(&serde_json::Value) -> bool,
) -> anyhow::Result<serde_json::Value> {
    let deadline = Instant::now() + within;
    loop {
        let s: serde_json::Value = http.get(url).send().await?.json().await?;
        if ok(&s) {
            return Ok(s);
        }
        if Instant::now() > deadline {
            anyhow::bail!("{url}: not as expected within {within:?}: {s}");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// The cumulative buckets of `lifeboat_probe_round_delay_seconds`.
#[derive(Default)]
struct Hist {
    buckets: BTreeMap<u64, u64>,
    count: u64,
}

impl Hist {
    fn minus(&self, before: &Hist) -> Hist {
        Hist {
            buckets: self
                .buckets
                .iter()
                .map(|(le, n)| (*le, n - before.buckets.get(le).copied().unwrap_or(0)))
                .collect(),
            count: self.count - before.count,
        }
    }

    /// The smallest bucket bound (ms) holding at least `q` of the rounds.
    fn quantile_ms(&self, q: f64) -> String {
        let want = (self.count as f64 * q).ceil() as u64;
        for (le_us, n) in &self.buckets {
            if *n >= want {
                return format!("{}", *le_us as f64 / 1000.0);
            }
        }
        "∞ (over 1 s)".to_string()
    }

    /// Rounds later than `secs`.
    fn above(&self, secs: f64) -> u64 {
        let le = (secs * 1e6).round() as u64;
        self.count - self.buckets.get(&le).copied().unwrap_or(0)
    }
}

async fn histogram(http: &reqwest::Client, url: &str) -> anyhow::Result<Hist> {
    let text = http
        .get(format!("{url}/metrics"))
        .send()
        .await?
        .text()
        .await?;
    let mut h = Hist::default();
    for l in text.lines() {
        if let Some(rest) = l.strip_prefix("lifeboat_probe_round_delay_seconds_bucket{le=\"") {
            let (le, n) = rest.split_once("\"} ").unwrap_or(("", ""));
            if le == "+Inf" {
                continue;
            }
            let le_us = (le.parse::<f64>()? * 1e6).round() as u64;
            h.buckets.insert(le_us, n.trim().parse()?);
        } else if let Some(n) = l.strip_prefix("lifeboat_probe_round_delay_seconds_count ") {
            h.count = n.trim().parse()?;
        }
    }
    Ok(h)
}

/// User + system CPU time of `pid`, all threads, from /proc (USER_HZ is 100).
fn cpu(pid: u32) -> anyhow::Result<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let rest = stat
        .rsplit_once(") ")
        .map(|(_, r)| r)
        .ok_or_else(|| anyhow::anyhow!("unexpected /proc stat format"))?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = fields[11].parse::<u64>()? + fields[12].parse::<u64>()?;
    Ok(Duration::from_millis(ticks * 10))
}

/// A `/proc/PID/status` size field, in KiB.
fn memory(pid: u32, field: &str) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .ok_or_else(|| anyhow::anyhow!("no {field} in /proc/{pid}/status"))
}
