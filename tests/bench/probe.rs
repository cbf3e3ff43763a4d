//! Benchmark (not a test; not part of `make test`): how fast lifeboat probes, and what a
//! probe costs in CPU, for 1,000 HTTP probes against one local server.
//!
//! Run: `cargo bench --bench probe`. The server is the sandbox's fault endpoint, in a
//! child process (this binary re-run with `--serve`), so the CPU time measured here is
//! the prober's alone. Two figures:
//! - burst: every probe at once, round after round, as fast as they complete — rounds
//!   per second and CPU per probe at full load;
//! - scheduled: the real scheduler running the 1,000 probes on a 1 s interval with
//!   jitter — CPU per probe and the share of a core a steady watch costs.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use lifeboat::core::model::{
    Component, Endpoint, ProbeCheck, ProbeSpec, RegionName, Target, TargetKind,
};
use lifeboat::probe::scheduler::{Cadence, Scheduler};
use lifeboat::probe::{self, Clock, Context, RegionProbe};
use lifeboat::sandbox::endpoint::{self, Faults};

const PROBES: usize = 1_000;
const BURST_ROUNDS: usize = 10;
const SCHEDULED_FOR: Duration = Duration::from_secs(10);

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    if args.iter().any(|a| a == "--serve") {
        return runtime.block_on(serve());
    }
    let mut server = Command::new(std::env::current_exe()?)
        .arg("--serve")
        .stdout(Stdio::piped())
        .stdin(Stdio::piped())
        .spawn()?;
    let mut line = String::new();
    BufReader::new(server.stdout.take().expect("piped stdout")).read_line(&mut line)?;
    let port: u16 = line.trim().parse()?;
    let result = runtime.block_on(bench(port, server.id()));
    let _ = server.kill();
    let _ = server.wait();
    result
}

/// The child: serve the endpoint until the parent goes away (stdin closes).
async fn serve() -> anyhow::Result<()> {
    let (port, _task) = endpoint::spawn(Faults::new("bench"), 0).await?;
    println!("{port}");
    tokio::task::spawn_blocking(|| {
        let mut sink = String::new();
        let _ = std::io::stdin().read_line(&mut sink);
    })
    .await?;
    Ok(())
}

fn probes(port: u16) -> anyhow::Result<Vec<RegionProbe>> {
    let region = RegionName::new("bench-1");
    // Generous: under a full burst the server queues requests, and a timeout would
    // measure the timer instead of the probe.
    let ctx = Context::new(None, Duration::from_secs(5), Duration::from_secs(1));
    let mut out = Vec::with_capacity(PROBES);
    for i in 0..PROBES {
        let spec = ProbeSpec {
            name: format!("api-{i}"),
            component: Component::Api,
            critical: true,
            target: Some("api".into()),
            regions: vec![region.clone()],
            check: ProbeCheck::Http {
                expect_status: vec![200],
                body_contains: None,
                json_field: Some("status".into()),
                json_equals: Some("ok".into()),
                max_latency: None,
            },
        };
        let target = Target {
            name: "api".into(),
            kind: TargetKind::Http,
            regions: BTreeMap::from([(
                region.clone(),
                Endpoint::Http {
                    url: format!("http://127.0.0.1:{port}/health"),
                },
            )]),
        };
        out.push(probe::build(&spec, Some(&target), &region, &ctx)?);
    }
    Ok(out)
}

async fn bench(port: u16, server_pid: u32) -> anyhow::Result<()> {
    let all = probes(port)?;
    let clock = Clock::system();
    println!(
        "probe benchmark: {PROBES} HTTP probes (GET /health, JSON field check) against one local server; {} CPUs",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );

    // Burst: warm the connection pool with one round, then measure.
    let mut failed = round(&all, clock).await;
    let (cpu0, server0, wall0) = (cpu(None)?, cpu(Some(server_pid))?, Instant::now());
    for _ in 0..BURST_ROUNDS {
        failed += round(&all, clock).await;
    }
    let wall = wall0.elapsed();
    let (used, served) = (cpu(None)? - cpu0, cpu(Some(server_pid))? - server0);
    let n = (PROBES * BURST_ROUNDS) as f64;
    println!(
        "burst:     {BURST_ROUNDS} rounds in {:.2}s = {:.2} rounds/s ({:.0} probes/s); prober CPU {:.1} µs/probe (server {:.1} µs/request)",
        wall.as_secs_f64(),
        BURST_ROUNDS as f64 / wall.as_secs_f64(),
        n / wall.as_secs_f64(),
        used.as_secs_f64() * 1e6 / n,
        served.as_secs_f64() * 1e6 / n,
    );

    // Scheduled: the real scheduler, every probe once a second (±10%).
    let (tx, mut rx) = tokio::sync::mpsc::channel(PROBES * 2);
    let (cpu0, wall0) = (cpu(None)?, Instant::now());
    let scheduler = Scheduler::start(all, Cadence::steady(Duration::from_secs(1)), clock, tx, 1);
    let mut seen = 0usize;
    let deadline = tokio::time::Instant::now() + SCHEDULED_FOR;
    while let Ok(Some(obs)) = tokio::time::timeout_at(deadline, rx.recv()).await {
        seen += 1;
        if !obs.is_ok() {
            failed += 1;
        }
    }
    scheduler.stop().await;
    let (wall, used) = (wall0.elapsed(), cpu(None)? - cpu0);
    println!(
        "scheduled: {seen} observations in {:.1}s ({:.0}/s, interval 1s); prober CPU {:.1} µs/probe, {:.1}% of one core",
        wall.as_secs_f64(),
        seen as f64 / wall.as_secs_f64(),
        used.as_secs_f64() * 1e6 / seen.max(1) as f64,
        100.0 * used.as_secs_f64() / wall.as_secs_f64(),
    );
    println!("failed rounds: {failed}");
    Ok(())
}

/// Runs every probe once, concurrently; returns how many failed.
async fn round(all: &[RegionProbe], clock: Clock) -> usize {
    let mut set = tokio::task::JoinSet::new();
    for p in all {
        let p = p.clone();
        set.spawn(async move { p.run(&clock).await });
    }
    let mut failed = 0;
    while let Some(done) = set.join_next().await {
        if !done.is_ok_and(|o| o.is_ok()) {
            failed += 1;
        }
    }
    failed
}

/// User + system CPU time of this process (or `pid`), all threads, from /proc.
fn cpu(pid: Option<u32>) -> anyhow::Result<Duration> {
    let path = match pid {
        Some(p) => format!("/proc/{p}/stat"),
        None => "/proc/self/stat".to_string(),
    };
    let stat = std::fs::read_to_string(path)?;
    // Fields after the command name (which may contain spaces) start at field 3;
    // utime and stime are fields 14 and 15.
    let rest = stat
        .rsplit_once(") ")
        .map(|(_, r)| r)
        .ok_or_else(|| anyhow::anyhow!("unexpected /proc stat format"))?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = fields[11].parse::<u64>()? + fields[12].parse::<u64>()?;
    // /proc reports in USER_HZ, which Linux fixes at 100 for user space on every
    // mainstream architecture (reading sysconf(_SC_CLK_TCK) would need libc).
    Ok(Duration::from_millis(ticks * 10))
}
