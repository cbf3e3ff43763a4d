//! Benchmark (not a test; not part of `make test`): controller handover time on etcd —
//! from the acting controller's process being killed (SIGKILL) to another controller
//! acting — over 10 rounds, with the production timing (lease TTL 5 s, keep-alive 1 s,
//! deadline 1 s, margin 2 s) against a 3-member etcd on loopback with etcd's default raft
//! timing (heartbeat 100 ms, election 1 s).
//!
//! Run: `cargo bench --bench handover` (needs etcd: tests/setup/install-deps.sh); add
//! `--profile dev` to reuse the debug build (the figures are dominated by the lease TTL).
//! `--rounds N` changes the number of rounds. The leader is this binary re-run with
//! `--lead <endpoints>`; the contender in this process watches the leader key and
//! campaigns as soon as it goes. Each round kills the leader at a random point of its
//! keep-alive interval, so the figures spread over what a real crash would see.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{Context, bail};
use lifeboat::coord::etcd::{Campaign, Etcd, EtcdSettings};
use lifeboat::coord::records::Candidate;
use lifeboat::core::model::RegionName;
use lifeboat::sandbox::etcd::{ClusterOptions, EtcdCluster};
use tokio::time::Instant;

const SERVICE: &str = "bench";

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    if let Some(i) = args.iter().position(|a| a == "--lead") {
        let endpoints = args.get(i + 1).context("--lead needs the endpoints")?;
        return runtime.block_on(lead(endpoints.split(',').map(String::from).collect()));
    }
    let rounds = match args.iter().position(|a| a == "--rounds") {
        Some(i) => args.get(i + 1).context("--rounds N")?.parse()?,
        None => 10,
    };
    runtime.block_on(bench(rounds))
}

fn candidate(node: &str, region: &str) -> Candidate {
    Candidate {
        node: node.to_string(),
        region: RegionName::new(region),
    }
}

/// The child: lead, say so, and keep the lease alive until killed.
async fn lead(endpoints: Vec<String>) -> anyhow::Result<()> {
    let etcd = Etcd::connect(EtcdSettings::new(endpoints, "bench")).await?;
    let svc = etcd.keys().service(SERVICE)?;
    let session = etcd.session().await?;
    loop {
        match etcd
            .campaign(&session, &svc, &candidate("doomed", "us-east-1"))
            .await?
        {
            Campaign::Won(l) => {
                println!("leading {}", l.epoch());
                std::future::pending::<()>().await;
            }
            Campaign::Lost(_) => {
                etcd.wait_for_vacancy(&svc, Duration::from_secs(1)).await?;
            }
        }
    }
}

async fn bench(rounds: usize) -> anyhow::Result<()> {
    let dir = tempfile::Builder::new()
        .prefix("lifeboat-handover-")
        .tempdir()?;
    let cluster = EtcdCluster::start(dir.path(), ClusterOptions::etcd_defaults()).await?;
    println!(
        "etcd: 3 members healthy after {} ms",
        cluster.healthy_after.as_millis()
    );
    let settings = EtcdSettings::new(cluster.endpoints(), "bench");
    println!(
        "lease TTL {} s, keep-alive {} ms, call deadline {} ms, safety margin {} ms",
        settings.lease_ttl.as_secs(),
        settings.keep_alive.as_millis(),
        settings.call_deadline.as_millis(),
        settings.safety_margin.as_millis()
    );
    let etcd = Etcd::connect(settings).await?;
    let svc = etcd.keys().service(SERVICE)?;
    let mut figures = Vec::new();
    for round in 1..=rounds {
        let mut child = Command::new(std::env::current_exe()?)
            .args(["--lead", &cluster.endpoints().join(",")])
            .stdout(Stdio::piped())
            .stdin(Stdio::null())
            .spawn()?;
        let mut line = String::new();
        BufReader::new(child.stdout.take().context("piped stdout")?).read_line(&mut line)?;
        if !line.starts_with("leading ") {
            let _ = child.kill();
            bail!("the leader process said {line:?}");
        }
        let session = etcd.session().await?;
        // A random point in the leader's keep-alive interval.
        tokio::time::sleep(Duration::from_millis(500 + fastrand::u64(..1000))).await;
        child.kill()?;
        let killed = Instant::now();
        child.wait()?;
        let me = candidate("survivor", "us-west-2");
        let leadership = loop {
            match etcd.campaign(&session, &svc, &me).await {
                Ok(Campaign::Won(l)) => break l,
                Ok(Campaign::Lost(_)) | Err(_) => {
                    let _ = etcd.wait_for_vacancy(&svc, Duration::from_secs(1)).await;
                }
            }
            if killed.elapsed() > Duration::from_secs(30) {
                bail!("no handover within 30 s");
            }
        };
        if !leadership.acting() {
            bail!("the new leader does not act");
        }
        let took = killed.elapsed();
        println!(
            "round {round}: handover {} ms (epoch {})",
            took.as_millis(),
            leadership.epoch()
        );
        figures.push(took);
        session.revoke(&etcd).await?;
    }
    figures.sort();
    let n = figures.len();
    let median = (figures[(n - 1) / 2] + figures[n / 2]) / 2;
    println!(
        "handover over {n} rounds: min {} ms, median {} ms, max {} ms",
        figures[0].as_millis(),
        median.as_millis(),
        figures[n - 1].as_millis()
    );
    Ok(())
}
